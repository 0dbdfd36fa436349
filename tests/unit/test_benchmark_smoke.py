"""The emissions benchmark: its synthetic lines are real parser output, and a small run agrees with the baseline.

The benchmark's figures are only worth something if (1) the generated table is what
``parse_activity`` would have produced, so the SQL path is timed on realistic input, and (2) the naive
baseline does the same arithmetic as the SQL, which the benchmark itself checks on a sample. Both are
checked here on small sizes (seconds, not minutes).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import duckdb
import pandas as pd
import pytest

from accounting.activity import COLUMNS, SourceFile, parse_activity
from accounting.factors import load_library
from pipelines.warehouse import fuel_rules

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_emissions.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark script as a module (``benchmarks/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_emissions", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_emissions"] = module
    spec.loader.exec_module(module)
    return module


def test_synthetic_lines_are_exactly_what_the_parser_returns_for_them(bench: ModuleType) -> None:
    with duckdb.connect() as conn:
        bench.generate_lines(conn, 5_000)
        generated = conn.execute("select * from activity_lines order by source_file, row_number").df()
        generated_types = conn.execute("describe activity_lines").fetchall()
        # Every template occurs, so every kind of line went through the parser below.
        kinds = conn.execute("select count(distinct (activity, item, quantity_kind, unit)) from activity_lines")
        assert kinds.fetchall()[0][0] == len({(t.activity, t.item, t.quantity_kind, t.unit) for t in bench.TEMPLATES})

        # Written out as one template file and read back by the real parser, the lines must be unchanged.
        csv = generated[list(COLUMNS)].to_csv(index=False).encode()
        parsed = parse_activity(SourceFile("bench.csv", csv), rules=fuel_rules(load_library()))
        conn.register("parsed", parsed)
        parsed_types = conn.execute("describe parsed").fetchall()

    assert [(c[0], c[1]) for c in generated_types] == [(c[0], c[1]) for c in parsed_types]
    assert tuple(generated.columns) == bench.LINE_COLUMNS
    compared = [c for c in generated.columns if c not in ("source_file", "source_sha256", "row_number")]
    pd.testing.assert_frame_equal(parsed[compared].astype({"month": "int64"}), generated[compared],
                                  check_dtype=False, check_exact=True)


def test_a_small_run_reports_every_figure_and_sql_agrees_with_the_baseline(
        bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "emissions.json"

    code = bench.main(["--sizes", "20000", "--baseline-sample", "2000", "--out", str(out)])

    assert code == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["agree"] is True
    (result,) = document["results"]
    assert result["size"] == 20_000
    assert result["sql"]["lines"] == 20_000 and result["sql"]["balances"] > 0
    assert result["sample"] == 2_000
    assert set(result["relative_differences"]) == {"tco2e", "energy_tce", "net_tco2e", "quantity_canonical"}
    assert result["max_relative_difference"] <= bench.AGREEMENT
    assert result["sample_sql"]["tco2e"] == pytest.approx(result["sample_baseline"]["tco2e"], rel=1e-9)
    for key in ("calculate_s", "lines_per_s", "baseline_lines_per_s", "ratio", "peak_rss_mb"):
        assert result[key] > 0, key
    assert set(result["verdicts"]) == {"lines_per_s", "ratio", "peak_rss", "agreement"}
    assert "20,000" in capsys.readouterr().out


def test_targets_are_judged_pass_or_fail_separately(bench: ModuleType) -> None:
    result = {"size": 10, "calculate_s": 1.0, "lines_per_s": 2_000_000.0, "baseline_lines_per_s": 50_000.0,
              "ratio": 40.0, "peak_rss_mb": 3000.0, "max_relative_difference": 0.0, "agree": True}

    assert bench.verdicts(result) == {"lines_per_s": True, "ratio": False, "peak_rss": False, "agreement": True}
    assert "PASS" in bench.format_table([result]) and "FAIL" in bench.format_table([result])

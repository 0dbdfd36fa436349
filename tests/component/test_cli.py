"""The ``carbon`` command: calculate prints JSON and stores nothing; invalid input exits 2 with every error."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.support import csv_file

SAMPLE_MONTH = Path(__file__).resolve().parents[2] / "data" / "sample" / "activity" / "2024-01.csv"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    status = main(args)
    return status, json.loads(capsys.readouterr().out)


def test_calculate_prints_one_result_per_enterprise_and_period(capsys: pytest.CaptureFixture[str]) -> None:
    status, document = run(["calculate", str(SAMPLE_MONTH)], capsys)
    assert status == 0
    keys = [(r["enterprise_id"], r["period"]) for r in document["results"]]
    assert len(keys) == len(set(keys)) >= 30
    first = document["results"][0]
    assert {"scope1_tco2e", "scope2_tco2e", "exported_tco2e", "net_tco2e", "energy_tce"} <= set(first["totals"])
    assert {"row", "activity", "item", "tco2e", "factor_ids", "fallback"} <= set(first["lines"][0])
    for result in document["results"]:
        totals = result["totals"]
        assert totals["net_tco2e"] == pytest.approx(
            totals["scope1_tco2e"] + totals["scope2_tco2e"] - totals["exported_tco2e"], rel=1e-12, abs=1e-9)


def test_grid_region_changes_only_electricity(capsys: pytest.CaptureFixture[str]) -> None:
    _, national = run(["calculate", str(SAMPLE_MONTH)], capsys)
    _, henan = run(["calculate", str(SAMPLE_MONTH), "--grid-region", "henan"], capsys)
    for left, right in zip(national["results"], henan["results"], strict=True):
        assert left["totals"]["scope1_tco2e"] == right["totals"]["scope1_tco2e"]
        electricity = left["totals"]["purchased_electricity_tco2e"]
        if electricity:
            assert right["totals"]["purchased_electricity_tco2e"] != electricity


def test_an_invalid_file_exits_2_with_the_full_report_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_file([
        {"activity": "fuel_combustion", "item": "bituminous_coal", "quantity": "10", "unit": "ton"},
        {"activity": "fuel_combustion", "item": "diesel", "quantity": "-1", "unit": "t", "facility": "F2"},
    ]).content)
    status, report = run(["calculate", str(bad)], capsys)
    assert status == 2
    assert report["code"] == "invalid_file"
    found = [(e["row"], e["column"], e["value"]) for e in report["errors"]]
    assert found == [(2, "unit", "ton"), (3, "quantity", "-1")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, report = run(["calculate", "no-such-file.csv"], capsys)
    assert (status, report["code"]) == (2, "file_not_found")


def test_factors_describes_the_verified_library(capsys: pytest.CaptureFixture[str]) -> None:
    status, report = run(["factors"], capsys)
    assert status == 0
    assert report["latest"] == "2026.1" and report["factor_count"] > 100 and report["hashes_verified"]


@pytest.fixture
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the CLI's settings at a temporary data folder (and the committed sample)."""
    from pipelines.settings import get_settings

    monkeypatch.setenv("CARBON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CARBON_SAMPLE_DIR", str(SAMPLE_MONTH.parents[1]))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_ingest_stores_a_valid_file_once_and_refuses_an_invalid_one_whole(
        cli_settings: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = cli_settings / "good.csv"
    good.write_bytes(csv_file([{"activity": "purchased_electricity", "quantity": "10", "unit": "MWh"}]).content)
    status, first = run(["ingest", str(good)], capsys)
    assert status == 0
    (receipt,) = first["accepted"]
    assert [p.name for p in (cli_settings / "inbox").iterdir()] == [f"{receipt['content_sha256']}.csv"]
    status, again = run(["ingest", str(good)], capsys)
    assert status == 0 and again["accepted"][0]["submission_id"] == receipt["submission_id"]
    bad = cli_settings / "bad.csv"
    bad.write_bytes(csv_file([{"activity": "purchased_electricity", "quantity": "10", "unit": "MT"}]).content)
    status, report = run(["ingest", str(bad)], capsys)
    assert status == 2 and report["errors"][0]["column"] == "unit"
    assert len(list((cli_settings / "inbox").iterdir())) == 1


def test_registry_lists_the_sample_zone(cli_settings: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, registry = run(["registry"], capsys)
    assert status == 0
    assert registry["total"] == 34
    categories = {item["category"] for item in registry["items"]}
    assert {"heat_power_supplier", "manufacturer", "construction_project"} <= categories
    assert all(item["province_code"] == "410000" for item in registry["items"])

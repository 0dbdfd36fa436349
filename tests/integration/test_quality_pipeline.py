"""Data-quality checks in the real pipeline: the sample is plausible, planted unit errors are held and named.

Planted errors are the two a person makes most: a quantity typed in kilograms into a tonne column
(coal x1000) and a coal NCV copied from a certificate in kJ/kg with the unit GJ/t (x1000).
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from sqlalchemy import select

from api.services.quality import data_docs_dir
from api.services.submissions import accept_submission
from api.store.db import session_factory
from api.store.schema import PeriodReview, QualityFinding
from pipelines.assets.accounts import core_factors__factors
from pipelines.assets.quality import QualityResource, factor_edition_is_plausible
from pipelines.resources import AccountingResource, WarehouseResource
from pipelines.runner import materialize_all
from pipelines.settings import Settings
from tests.conftest import zone_settings
from tests.support import LOADER, library_with_edition, load_zone, sample_rows, to_csv

pytestmark = pytest.mark.integration

CHP_PLANT = "914101022286058318"
CEMENT_PLANT = "91410100437387498P"
PLANTED = "2024-03-planted.csv"


def published(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.serving), read_only=True) as conn:
        return conn.execute(sql).fetchall()





def submit(settings: Settings, filename: str, content: bytes) -> None:
    with session_factory(settings)() as session:
        accept_submission(session, settings=settings, actor=LOADER, filename=filename, content=content)


def run(settings: Settings) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        summary = materialize_all(settings, instance=instance)
    assert summary.success, summary  # holds are findings, not failures: the run goes on


def planted_march() -> tuple[bytes, int, int]:
    """2024-03 with the cement plant's L1 coal x1000 and the CHP plant's B1 NCV in kJ/kg; their file rows."""
    header, rows = sample_rows("2024-03")
    coal_row = ncv_row = 0
    for number, row in enumerate(rows, start=2):
        if (row["enterprise_id"], row["item"], row["facility"]) == (CEMENT_PLANT, "bituminous_coal", "L1"):
            row["quantity"], coal_row = str(float(row["quantity"]) * 1000), number
        if (row["enterprise_id"], row["item"], row["facility"]) == (CHP_PLANT, "bituminous_coal", "B1"):
            row["ncv"], ncv_row = str(round(float(row["ncv"]) * 1000)), number
    assert coal_row and ncv_row
    return to_csv(header, rows), coal_row, ncv_row


# --- the published sample zone ----------------------------------------------------------------------


def test_the_plausible_sample_zone_yields_warnings_and_no_hold(published_zone: Settings) -> None:
    rows = published(published_zone, "select enterprise_id, period, rule, severity from out_quality__findings")
    assert rows, "the sample has seasonal jumps that must at least be listed as warnings"
    assert [r for r in rows if r[3] == "hold"] == []
    assert {r[2] for r in rows} <= {"emissions_month_over_month", "energy_month_over_month"}
    with session_factory(published_zone)() as session:
        stored = session.scalars(select(QualityFinding)).all()
        assert {f.severity for f in stored} == {"warn"}
        assert len({f.run_id for f in stored}) == 1 and len(stored) == len(rows)
        assert session.scalars(select(PeriodReview).where(PeriodReview.held.is_(True))).all() == []


def test_the_data_docs_of_the_latest_run_are_built(published_zone: Settings) -> None:
    folder = data_docs_dir(published_zone)
    assert folder.is_symlink() and (folder / "index.html").is_file()
    pages = sorted(p.relative_to(folder.resolve()).as_posix() for p in folder.resolve().rglob("*.html"))
    assert "expectations/plausibility_enterprise_months.html" in pages
    assert any(p.startswith("validations/plausibility_fuel_lines/") for p in pages)
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".data_docs-")] == [folder.resolve().name]


def test_the_next_run_builds_its_docs_beside_the_published_link_not_inside_its_target(tmp_path: Path) -> None:
    published = tmp_path / ".data_docs-0123"
    published.mkdir()
    (tmp_path / "data_docs").symlink_to(published.name)
    folder = QualityResource(data_docs_path=str(tmp_path / "data_docs")).data_docs
    assert folder == tmp_path / "data_docs" and folder.is_absolute()  # a resolved link would nest each run deeper


# --- planted errors ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, int, int]:
    root = tmp_path_factory.mktemp("planted")
    settings = zone_settings(root)
    load_zone(settings, months=["2024-02"])
    content, coal_row, ncv_row = planted_march()
    submit(settings, PLANTED, content)
    run(settings)
    return settings, coal_row, ncv_row


def findings_of(settings: Settings, enterprise_id: str, period: str) -> list[dict]:
    rows = published(settings, "select rule, severity, source_file, row_number, detail from out_quality__findings "
                               f"where enterprise_id = '{enterprise_id}' and period = '{period}' order by rule")
    return [{"rule": r[0], "severity": r[1], "source_file": r[2], "row_number": r[3], "detail": json.loads(r[4])}
            for r in rows]


def test_a_coal_quantity_typed_1000_times_too_large_is_held_and_its_row_named(planted) -> None:
    settings, coal_row, _ = planted
    found = {f["rule"]: f for f in findings_of(settings, CEMENT_PLANT, "2024-03")}
    jump = found["emissions_month_over_month"]
    assert jump["severity"] == "hold" and jump["detail"]["value"] > 100
    culprit = jump["detail"]["lines"][0]
    assert (culprit["source_file"], culprit["row_number"]) == (PLANTED, coal_row)
    assert culprit["quantity"] / culprit["previous_quantity"] > 100  # the same line a month before
    assert found["carbon_intensity_in_sector_range"]["severity"] == "hold"
    assert found["carbon_intensity_in_sector_range"]["detail"]["lines"][0]["row_number"] == coal_row


def test_a_coal_ncv_given_in_kj_per_kg_is_held_and_its_row_named(planted) -> None:
    settings, _, ncv_row = planted
    found = {f["rule"]: f for f in findings_of(settings, CHP_PLANT, "2024-03")}
    ncv = found["ncv_in_fuel_range"]
    assert ncv["severity"] == "hold" and (ncv["source_file"], ncv["row_number"]) == (PLANTED, ncv_row)
    assert ncv["detail"]["value"] > 10_000 and ncv["detail"]["expected"]["high"] == 32.0
    assert "8-32 GJ/t" in ncv["detail"]["ncv_source"]


def test_holds_keep_only_their_enterprise_months_back_and_the_others_are_calculated(planted) -> None:
    settings, _, _ = planted
    with session_factory(settings)() as session:
        reviews = {(r.enterprise_id, r.period): r for r in session.scalars(select(PeriodReview)).all()}
    held = {k for k, r in reviews.items() if r.held}
    assert held == {(CEMENT_PLANT, "2024-03"), (CHP_PLANT, "2024-03")}
    assert {r["rule"] for r in reviews[(CHP_PLANT, "2024-03")].held_reasons} >= {"ncv_in_fuel_range"}
    months = {k: r for k, r in reviews.items() if len(k[1]) == 7}
    assert len(months) > 60 and all(r.status == "calculated" for r in months.values())


def test_a_corrected_submission_releases_the_hold_at_the_next_run(planted) -> None:
    settings, _, _ = planted
    header, rows = sample_rows("2024-03")
    submit(settings, "2024-03-chp-corrected.csv", to_csv(header, [r for r in rows if r["enterprise_id"] == CHP_PLANT]))
    run(settings)
    with session_factory(settings)() as session:
        chp = session.get(PeriodReview, {"enterprise_id": CHP_PLANT, "period": "2024-03"})
        cement = session.get(PeriodReview, {"enterprise_id": CEMENT_PLANT, "period": "2024-03"})
        assert chp is not None and cement is not None
        assert (chp.held, chp.status) == (False, "calculated") and cement.held
    assert [f["severity"] for f in findings_of(settings, CHP_PLANT, "2024-03")] == []


# --- factor editions --------------------------------------------------------------------------------


def test_a_new_edition_with_a_factor_1000_times_too_large_fails_the_blocking_check(tmp_path: Path) -> None:
    root = tmp_path / "factors"
    library_with_edition(root, old=b",19.570,GJ/t,", new=b",19570,GJ/t,")
    settings = zone_settings(tmp_path)
    result = dg.materialize(
        [core_factors__factors, factor_edition_is_plausible],
        resources={"warehouse": WarehouseResource(path=str(settings.warehouse), serving_path=str(settings.serving)),
                   "accounting": AccountingResource(
                       inbox_folder=str(settings.inbox), factor_root=str(root), factor_edition=None,
                       ruleset="cn", grid_region="national", gwp_set="AR5", max_factor_lag_years=3,
                       key_emitter_tco2e=26000.0, key_emitter_tce=10000.0, first_period="2023-01",
                       submission_deadline_day=15),
                   "quality": QualityResource(data_docs_path=str(tmp_path / "docs"))},
        raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "factor_edition_is_plausible" and evaluation.blocking and not evaluation.passed
    findings = evaluation.metadata["findings"].value
    [unit_error] = [f for f in findings if f["check"] == "unit_error_suspected"]
    assert unit_error["factor_ids"] == ["cn.c1.bituminous_coal.ncv"]
    assert (unit_error["old_value"], unit_error["new_value"]) == (19.57, 19570.0)
    assert unit_error["suspected_conversion"].startswith("x10^3")
    assert evaluation.metadata["previous_edition"].value == "2026.1"

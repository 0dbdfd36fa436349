"""Restatement diffs on a zone with a locked year, in a real database (SQLite and PostgreSQL).

The zone is the sample registry with the twelve months of 2024 submitted and calculated
(``tests.review_support.review_zone``); the CHP plant and the two enterprises that burn LPG have
every month and the year locked (verified emissions version 1). A new factor edition, built in a
temporary library, corrects the LPG NCV (50.179 -> 51.000 GJ/t): the diff must list exactly the
LPG burners' months and years, name the factor and the lines, and move them by the hand-computed
amounts; a corrected submission shows up as a data correction; applying the edition's diff reopens
exactly the moved periods; a real run under the new edition and a re-lock make version 2 with the diff.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import select

from accounting.audit import content_hash
from accounting.factors import FactorLibrary
from accounting.review import Actor, ReviewError
from api.services.restatement import apply_restatement, restatement_report
from api.services.review import act
from api.store.schema import AuditEntry, PeriodReview, VerifiedEmissions
from pipelines import definitions
from pipelines.cli import main
from pipelines.resources import AccountingResource
from pipelines.runner import materialize_all
from pipelines.settings import Settings, get_settings
from tests.auth_support import OFFICER, VERIFIER, enterprise
from tests.conftest import dagster_home
from tests.review_support import CHP_PLANT, Zone, review_zone, sample_rows, to_csv
from tests.support import library_with_edition

YEAR_2024 = tuple(f"2024-{m:02d}" for m in range(1, 13))
LPG_USERS = ("91410100MABJBD86XX", "91410100MAQ1L8U101")
OLD_NCV, NEW_NCV, LPG_CC, LPG_OF = 50.179, 51.0, 0.0172, 0.98  # GJ/t, GJ/t, tC/GJ, 1 (edition 2026.1)
NEW_EDITION = "2027.1"
OFFICER_ACTOR = Actor(actor_id="officer-li", role="officer")
EXPECTED = {(e, m) for e in LPG_USERS for m in YEAR_2024} | {(e, "2024") for e in LPG_USERS}


def lpg_edition(root: Path) -> FactorLibrary:
    """A copy of the factor library with a new edition that changes only the LPG NCV."""
    return library_with_edition(root, old=b",50.179,", new=b",51.000,", name=NEW_EDITION,
                                description="LPG NCV erratum")


def lpg_lines(enterprise_id: str, month: str) -> list[tuple[int, float]]:
    """(row, tonnes) of the LPG lines of an enterprise-month in the sample file, all on default factors."""
    found = []
    for row in sample_rows(month)[1]:
        if row["enterprise_id"] == enterprise_id and row["item"] == "lpg":
            assert row["unit"] == "t" and not (row["ncv"] or row["carbon_content"] or row["oxidation_rate"])
            found.append((int(row["_row"]), float(row["quantity"])))
    assert found
    return found


def lpg_tco2e(tonnes: float, ncv: float) -> float:
    return tonnes * ncv * LPG_CC * LPG_OF * 44 / 12


def lock(session_zone: Zone, enterprise_id: str, period: str) -> None:
    with session_zone.sessions() as session:
        for action in ("start_review", "approve", "lock"):
            act(session, actor=OFFICER_ACTOR, enterprise_id=enterprise_id, period=period, action=action)


@pytest.fixture
def locked_zone(tmp_path: Path, database_url: str, published_zone: Settings) -> Iterator[Zone]:
    with review_zone(tmp_path, database_url=database_url, published=published_zone, months=YEAR_2024) as zone:
        for enterprise_id in (CHP_PLANT, *LPG_USERS):
            for period in (*YEAR_2024, "2024"):
                lock(zone, enterprise_id, period)
        yield zone


def report_of(zone: Zone, **options: Any) -> dict[str, Any]:
    with zone.sessions() as session:
        return restatement_report(session, settings=zone.settings, **options)


def by_period(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["enterprise_id"], p["period"]): p for p in report["periods"]}


def test_a_new_edition_moves_exactly_the_periods_that_burn_its_fuel_and_a_corrected_month_is_a_data_change(
        locked_zone: Zone, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    library = lpg_edition(tmp_path / "factors")
    report = report_of(locked_zone, factor_edition=NEW_EDITION, library=library)
    periods = by_period(report)
    assert set(periods) == EXPECTED
    assert report["factor_edition"] == NEW_EDITION and report["basis_editions"] == ["2026.1"]
    assert [(f["factor_id"], f["old_value"], f["new_value"]) for f in report["factor_changes"]] == [
        ("cn.c1.lpg.ncv", OLD_NCV, NEW_NCV)]
    assert report["summary"]["moved"] == 26 and report["summary"]["years_moved"] == 2
    for enterprise_id in LPG_USERS:
        year_change = 0.0
        for month in YEAR_2024:
            entry = periods[(enterprise_id, month)]
            assert entry["status"] == "locked" and entry["reasons"] == ["factor_edition"]
            assert [f["factor_id"] for f in entry["factors"]] == ["cn.c1.lpg.ncv"]
            expected_lines = lpg_lines(enterprise_id, month)
            assert [(x["source_file"], x["row_number"], x["activity"], x["item"]) for x in entry["lines"]] == [
                (f"{month}.csv", row, "fuel_combustion", "lpg") for row, _ in expected_lines]
            for changed, (_, tonnes) in zip(entry["lines"], expected_lines, strict=True):
                assert changed["old_tco2e"] == pytest.approx(lpg_tco2e(tonnes, OLD_NCV), rel=1e-12)
                assert changed["new_tco2e"] == pytest.approx(lpg_tco2e(tonnes, NEW_NCV), rel=1e-12)
            change = sum(lpg_tco2e(t, NEW_NCV) - lpg_tco2e(t, OLD_NCV) for _, t in expected_lines)
            assert entry["net_tco2e"]["change"] == pytest.approx(change, rel=1e-6)
            assert entry["change"]["combustion_tco2e"]["change"] == pytest.approx(change, rel=1e-6)
            assert "purchased_electricity_tco2e" not in entry["change"]
            year_change += change
        year = periods[(enterprise_id, "2024")]
        assert year["basis"] == {"kind": "verified_emissions", "version": 1,
                                 "calculation_ids": year["basis"]["calculation_ids"]}
        assert year["net_tco2e"]["change"] == pytest.approx(year_change, rel=1e-6)
        assert [m["period"] for m in year["months"]] == list(YEAR_2024) and year["reasons"] == ["factor_edition"]

    # A data correction: March of the CHP plant is reopened and corrected (B1 burnt 10 % more coal).
    assert locked_zone.act(CHP_PLANT, "2024-03", "reopen", reason="B1 weighbridge recalibrated").status_code == 200
    header, rows = sample_rows("2024-03")
    corrected = [{**r, "quantity": str(round(float(r["quantity"]) * 1.1, 2))}
                 if r["item"] == "bituminous_coal" and r["facility"] == "B1" else r
                 for r in rows if r["enterprise_id"] == CHP_PLANT]
    changed_rows = [int(r["_row"]) for r in rows if r["enterprise_id"] == CHP_PLANT
                    and r["item"] == "bituminous_coal" and r["facility"] == "B1"]
    late = locked_zone.client.post("/v1/submissions", headers=OFFICER,
                                   files={"file": ("march-fix.csv", to_csv(header, corrected), "text/csv")})
    assert late.status_code == 201, late.text
    served = locked_zone.client.get("/v1/restatements/diff", headers=VERIFIER)
    assert served.status_code == 200, served.text
    periods = by_period(served.json())
    assert set(periods) == {(CHP_PLANT, "2024-03"), (CHP_PLANT, "2024")}  # the packaged edition moves nothing else
    march = periods[(CHP_PLANT, "2024-03")]
    assert march["reasons"] == ["data_correction"] and march["status"] == "submitted" and march["moved"]
    assert march["new_submission_ids"] == [late.json()["submission_id"]] and march["factors"] == []
    assert [x["old_row_number"] for x in march["lines"]] == changed_rows
    assert all(x["source_file"] == "march-fix.csv" and x["old_source_file"] == "2024-03.csv" for x in march["lines"])
    for line in march["lines"]:
        assert line["new_tco2e"] / line["old_tco2e"] == pytest.approx(1.1, rel=1e-3)
    assert march["net_tco2e"]["change"] == pytest.approx(sum(x["change_tco2e"] for x in march["lines"]), rel=1e-9)
    year = periods[(CHP_PLANT, "2024")]
    assert year["status"] == "locked" and year["basis"]["kind"] == "verified_emissions"
    assert year["reasons"] == ["data_correction"] and [m["period"] for m in year["months"]] == ["2024-03"]
    assert year["net_tco2e"]["change"] == pytest.approx(march["net_tco2e"]["change"], rel=1e-9)
    refused = locked_zone.client.get("/v1/restatements/diff", headers=enterprise(LPG_USERS[0]))
    assert refused.status_code == 403 and refused.json()["code"] == "role_not_allowed"
    unknown = locked_zone.client.get("/v1/restatements/diff", params={"factor_edition": "1999.1"}, headers=OFFICER)
    assert unknown.status_code == 422 and unknown.json()["code"] == "factor_error"

    # The CLI prints the same report and refuses to apply it without a reason.
    monkeypatch.setenv("CARBON_DATA_DIR", str(locked_zone.settings.data_dir))
    monkeypatch.setenv("CARBON_DATABASE_URL", locked_zone.settings.database)
    get_settings.cache_clear()
    try:
        assert main(["restate", "--dry-run"]) == 0
        assert json.loads(capsys.readouterr().out) == served.json()
        assert main(["restate", "--actor", "officer-li"]) == 2
        assert json.loads(capsys.readouterr().out)["code"] == "reason_required"
    finally:
        get_settings.cache_clear()


def with_library(root: Path, edition: str) -> Any:
    """``build_resources`` whose accounting resource reads the factor library at ``root`` and pins ``edition``."""
    original = definitions.build_resources

    def build(settings: Settings) -> dict[str, dg.ConfigurableResource]:
        resources = original(settings)
        accounting = resources["accounting"]
        fields = {name: getattr(accounting, name) for name in AccountingResource.model_fields}
        resources["accounting"] = AccountingResource(**{**fields, "factor_root": str(root), "factor_edition": edition})
        return resources

    return build


def test_applying_a_restatement_reopens_exactly_the_moved_locked_periods_and_relocking_makes_version_2(
        locked_zone: Zone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = lpg_edition(tmp_path / "factors")
    with locked_zone.sessions() as session:
        with pytest.raises(ReviewError) as refused:
            apply_restatement(session, settings=locked_zone.settings, actor=Actor(actor_id="v", role="verifier"),
                              reason="erratum", factor_edition=NEW_EDITION, library=library)
        assert refused.value.code == "role_not_allowed"
        applied = apply_restatement(session, settings=locked_zone.settings, actor=OFFICER_ACTOR,
                                    reason="GB/T 32151.34 erratum: LPG NCV", factor_edition=NEW_EDITION,
                                    library=library)
    assert {(r["enterprise_id"], r["period"]) for r in applied["reopened"]} == EXPECTED
    assert applied["report_sha256"] == content_hash(applied["report"])
    with locked_zone.sessions() as session:
        states = {(r.enterprise_id, r.period): r.status for r in session.scalars(select(PeriodReview)).all()}
        (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.action == "restatement.apply")).all()
    assert {k for k, s in states.items() if s == "reopened"} == EXPECTED
    assert all(states[(CHP_PLANT, p)] == "locked" for p in (*YEAR_2024, "2024"))
    assert entry.after_hash == applied["report_sha256"] and entry.detail["report_sha256"] == applied["report_sha256"]
    assert entry.detail["reason"] == "GB/T 32151.34 erratum: LPG NCV" and len(entry.detail["reopened"]) == 26
    year_changes = {e: by_period(applied["report"])[(e, "2024")]["net_tco2e"]["change"] for e in LPG_USERS}

    # A real run under the new edition recalculates the reopened months; they are reviewed and locked again.
    monkeypatch.setattr(definitions, "build_resources", with_library(tmp_path / "factors", NEW_EDITION))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(tmp_path / "dagster")))
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize_all(locked_zone.settings, instance=instance).success
    for enterprise_id in LPG_USERS:
        assert locked_zone.state(enterprise_id, "2024-01")["calculation"]["edition"] == NEW_EDITION
        for month in YEAR_2024:
            lock(locked_zone, enterprise_id, month)
        with locked_zone.sessions() as session:
            for action in ("start_review", "approve"):
                act(session, actor=OFFICER_ACTOR, enterprise_id=enterprise_id, period="2024", action=action)
            act(session, actor=OFFICER_ACTOR, enterprise_id=enterprise_id, period="2024", action="lock",
                reason="LPG NCV erratum restated")
            first, second = session.scalars(select(VerifiedEmissions).where(
                VerifiedEmissions.enterprise_id == enterprise_id).order_by(VerifiedEmissions.version)).all()
        assert (first.version, second.version) == (1, 2) and second.reason == "LPG NCV erratum restated"
        assert second.diff is not None
        assert second.diff["net_tco2e"]["change"] == pytest.approx(year_changes[enterprise_id], rel=1e-9)
        assert second.net_tco2e == pytest.approx(first.net_tco2e + year_changes[enterprise_id], rel=1e-12)
    # Once restated, the new edition moves nothing any more.
    assert report_of(locked_zone, factor_edition=NEW_EDITION, library=library)["periods"] == []

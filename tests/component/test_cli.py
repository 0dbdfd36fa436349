"""The ``carbon`` command: calculate prints JSON and stores nothing; invalid input exits 2 with every error."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.settings import Settings
from tests.conftest import SAMPLE_DIR, zone_settings
from tests.support import csv_file

SAMPLE_MONTH = SAMPLE_DIR / "activity" / "2024-01.csv"
CHP_PLANT = "914101022286058318"


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
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Path]:
    """Point the CLI's settings at a temporary data folder, the committed sample, and the test's database."""
    from api.store.db import session_factory_for
    from pipelines.settings import get_settings

    for name in [n for n in os.environ if n.upper().startswith("CARBON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CARBON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CARBON_SAMPLE_DIR", str(SAMPLE_DIR))
    monkeypatch.setenv("CARBON_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    session_factory_for(database_url).kw["bind"].dispose()


def submissions_in(database_url: str) -> int:
    from api.store import submissions
    from api.store.db import session_factory_for

    with session_factory_for(database_url)() as session:
        return submissions.count(session)


def test_ingest_stores_a_valid_file_once_and_refuses_an_invalid_one_whole(
        cli_settings: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, imported = run(["registry", "--import", str(SAMPLE_DIR / "enterprises.csv")], capsys)
    assert status == 0 and imported["added"] == 34
    lines = [{"enterprise_id": CHP_PLANT, "period": "2024-01", "activity": "purchased_electricity",
              "quantity": "10", "unit": "MWh"}]
    good = cli_settings / "good.csv"
    good.write_bytes(csv_file(lines).content)
    status, first = run(["ingest", str(good), "--actor", "engineer-chen"], capsys)
    assert status == 0
    (receipt,) = first["accepted"]
    assert receipt["submitter_id"] == "engineer-chen" and receipt["periods"] == ["2024-01"]
    assert submissions_in(database_url) == 1
    status, again = run(["ingest", str(good)], capsys)
    assert status == 0 and again["accepted"][0]["submission_id"] == receipt["submission_id"]
    bad = cli_settings / "bad.csv"
    bad.write_bytes(csv_file([{**lines[0], "unit": "MT"}]).content)
    status, report = run(["ingest", str(bad)], capsys)
    assert status == 2 and report["errors"][0]["column"] == "unit"
    late = cli_settings / "late.csv"
    late.write_bytes(csv_file([{**lines[0], "quantity": "11"}]).content)
    status, report = run(["ingest", str(late), "--role", "enterprise", "--enterprise", CHP_PLANT], capsys)
    assert status == 2 and {e["code"] for e in report["errors"]} == {"late_submission"}
    assert submissions_in(database_url) == 1
    assert sorted(p.name for p in cli_settings.iterdir() if not p.name.startswith("carbon.sqlite")) == [
        "bad.csv", "good.csv", "late.csv"]  # the database is the only store: no inbox file


def test_registry_lists_the_zone_imported_into_the_database(cli_settings: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    status, empty = run(["registry"], capsys)
    assert status == 0 and empty["total"] == 0
    status, counts = run(["registry", "--import", str(SAMPLE_DIR / "enterprises.csv")], capsys)
    assert status == 0 and counts == {"added": 34, "changed": 0, "unchanged": 0}
    status, registry = run(["registry"], capsys)
    assert status == 0
    assert registry["total"] == 34
    categories = {item["category"] for item in registry["items"]}
    assert {"heat_power_supplier", "manufacturer", "construction_project"} <= categories
    assert all(item["province_code"] == "410000" for item in registry["items"])
    status, again = run(["registry", "--import", str(SAMPLE_DIR / "enterprises.csv")], capsys)
    assert again == {"added": 0, "changed": 0, "unchanged": 34}


def test_review_commands_show_act_and_queue_and_audit_shows_and_verifies_the_log(
        cli_settings: Path, database_url: str, published_zone: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.review_support import record_published

    run(["registry", "--import", str(SAMPLE_DIR / "enterprises.csv")], capsys)
    status, ingested = run(["ingest", str(SAMPLE_MONTH)], capsys)
    assert status == 0 and ingested["accepted"][0]["periods"] == ["2024-01"]
    status, state = run(["review", "status", CHP_PLANT, "2024-01"], capsys)
    assert status == 0 and state["status"] == "submitted" and state["calculation"] is None
    status, refused = run(["review", "act", CHP_PLANT, "2024-01", "start_review", "--actor", "o1", "--role",
                           "officer"], capsys)
    assert status == 2 and refused["code"] == "transition_not_allowed" and refused["current"]["status"] == "submitted"

    record_published(zone_settings(cli_settings, database_url=database_url), published_zone, months=["2024-01"])
    status, state = run(["review", "status", CHP_PLANT, "2024-01"], capsys)
    assert state["status"] == "calculated" and state["calculation"]["net_tco2e"] > 0
    status, stale = run(["review", "act", CHP_PLANT, "2024-01", "start_review", "--actor", "o1", "--role", "officer",
                         "--expected-version", "1"], capsys)
    assert status == 2 and stale["code"] == "stale_state" and stale["current"]["version"] == 2
    status, role = run(["review", "act", CHP_PLANT, "2024-01", "approve", "--actor", "v1", "--role", "verifier"],
                       capsys)
    assert status == 2 and role["code"] == "role_not_allowed"
    status, started = run(["review", "act", CHP_PLANT, "2024-01", "start_review", "--actor", "v1", "--role",
                           "verifier", "--expected-version", "2"], capsys)
    assert status == 0 and started["status"] == "in_review"
    status, commented = run(["review", "act", CHP_PLANT, "2024-01", "comment", "--actor", "v1", "--role", "verifier",
                             "--reason", "B1 NCV?", "--row-number", "2"], capsys)
    assert status == 0 and commented["history"][-1]["row_number"] == 2

    status, queue = run(["review", "queue", "--status", "in_review"], capsys)
    assert status == 0 and [(i["enterprise_id"], i["period"]) for i in queue["items"]] == [(CHP_PLANT, "2024-01")]
    status, calculated = run(["review", "queue", "--status", "calculated", "--limit", "5"], capsys)
    assert calculated["total"] >= 30 and len(calculated["items"]) == 5
    status, own = run(["review", "queue", "--role", "enterprise", "--enterprise", CHP_PLANT], capsys)
    assert [i["enterprise_id"] for i in own["items"]] == [CHP_PLANT]
    status, hidden = run(["review", "status", CHP_PLANT, "2024-01", "--role", "enterprise", "--enterprise",
                          "91410102170679896E"], capsys)
    assert status == 2 and hidden["code"] == "period_not_found"

    status, log = run(["audit", "show", "--target", f"period:{CHP_PLANT}:2024-01"], capsys)
    assert status == 0 and [e["action"] for e in log["items"]] == [
        "review.comment", "review.start_review", "review.calculate", "review.submit"]
    assert log["items"][0]["detail"] == {"reason": "B1 NCV?", "row_number": 2}
    status, verified = run(["audit", "verify"], capsys)
    assert status == 0 and verified["intact"] and verified["entries"] == log["items"][0]["seq"]

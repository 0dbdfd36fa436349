"""The review workflow through the API, on a small zone in a real database (SQLite and PostgreSQL).

Each test gets its own database with the sample registry and some sample months submitted and
calculated (``tests/review_support.py``), and drives ``/v1/review`` as officers, verifiers and
enterprises would. A refusal must change nothing: tests compare the database's footprint (row
counts of every table, every period's state and the audit head) before and after.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from accounting.review import Actor
from api.services import review
from api.services.review import PeriodStateError, StaleStateError, record_findings
from pipelines.runner import materialize_all
from pipelines.settings import Settings
from tests.auth_support import ENGINEER, OFFICER, OFFICER_2, VERIFIER, enterprise, enterprise_user_id
from tests.conftest import dagster_home
from tests.review_support import (
    CEMENT_PLANT,
    CHP_PLANT,
    GAS_HEATING,
    Zone,
    enterprise_month,
    review_zone,
    sample_rows,
    to_csv,
)

PROBLEM = "application/problem+json"
YEAR_2024 = tuple(f"2024-{m:02d}" for m in range(1, 13))
OFFICER_ACTOR = Actor(actor_id="officer-li", role="officer")


@pytest.fixture
def zone(tmp_path: Path, database_url: str, published_zone: Settings) -> Iterator[Zone]:
    with review_zone(tmp_path, database_url=database_url, published=published_zone,
                     max_upload_bytes=64 * 1024) as built:
        yield built


def problem(response: Any, *, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def rows_of(enterprise_id: str, month: str) -> list[int]:
    return [int(r["_row"]) for r in sample_rows(month)[1] if r["enterprise_id"] == enterprise_id]


def submit(zone: Zone, content: bytes, headers: dict[str, str], name: str = "lines.csv") -> Any:
    return zone.client.post("/v1/submissions", files={"file": (name, content, "text/csv")}, headers=headers)


# ---------------------------------------------------------------------------------------------
# The path of a month


def test_a_calculated_month_is_reviewed_commented_per_line_recommended_approved_and_locked(zone: Zone) -> None:
    state = zone.state(CHP_PLANT, "2024-01")
    assert state["status"] == "calculated" and not state["held"] and not state["is_substituted"]
    assert state["calculation"]["calculation_id"] == state["calculation_id"]
    assert state["calculation"]["totals"]["net_tco2e"] == pytest.approx(state["calculation"]["net_tco2e"])
    assert state["calculation"]["submission_ids"] == [state["submission_id"]]
    assert [e["action"] for e in state["history"]] == ["submit", "calculate"]

    started = zone.act(CHP_PLANT, "2024-01", "start_review", VERIFIER, expected_version=state["version"])
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "in_review" and started.json()["version"] == state["version"] + 1
    first, second = rows_of(CHP_PLANT, "2024-01")[:2]
    for row, text in ((first, "NCV of B1 coal above the lab report"), (second, "oxidation rate needs a source")):
        commented = zone.act(CHP_PLANT, "2024-01", "comment", VERIFIER, reason=text, row_number=row)
        assert commented.status_code == 200 and commented.json()["status"] == "in_review"
    problem(zone.act(CHP_PLANT, "2024-01", "recommend", VERIFIER, recommendation="approve"),
            status=422, code="reason_required")
    recommended = zone.act(CHP_PLANT, "2024-01", "recommend", VERIFIER, recommendation="approve",
                           reason="lab reports support the parameters")
    assert recommended.status_code == 200 and recommended.json()["version"] == state["version"] + 1
    problem(zone.act(CHP_PLANT, "2024-01", "approve", VERIFIER), status=403, code="role_not_allowed")
    problem(zone.act(CHP_PLANT, "2024-01", "lock", OFFICER), status=409, code="transition_not_allowed")

    approved = zone.act(CHP_PLANT, "2024-01", "approve", OFFICER, expected_version=state["version"] + 1)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "verified"
    locked = zone.act(CHP_PLANT, "2024-01", "lock", OFFICER)
    assert locked.json()["status"] == "locked" and locked.json()["version"] == state["version"] + 3

    seen_by_enterprise = zone.state(CHP_PLANT, "2024-01", enterprise(CHP_PLANT))
    history = seen_by_enterprise["history"]
    assert [e["action"] for e in history] == ["submit", "calculate", "start_review", "comment", "comment",
                                              "recommend", "approve", "lock"]
    comments = [(e["row_number"], e["comment"], e["actor_id"]) for e in history if e["action"] == "comment"]
    assert comments == [(first, "NCV of B1 coal above the lab report", "verifier-zhao"),
                        (second, "oxidation rate needs a source", "verifier-zhao")]
    assert history[5]["recommendation"] == "approve" and history[-1]["to_status"] == "locked"
    assert seen_by_enterprise["calculation"] == state["calculation"]

    audit = zone.client.get("/v1/review/audit", params={"target": f"period:{CHP_PLANT}:2024-01"}, headers=OFFICER)
    assert [e["action"] for e in reversed(audit.json()["items"])] == [
        "review.submit", "review.calculate", "review.start_review", "review.comment", "review.comment",
        "review.recommend", "review.approve", "review.lock"]
    assert audit.json()["items"][0]["actor_id"] == "officer-li"


def test_a_period_is_hidden_from_other_enterprises_and_actions_need_the_right_role(zone: Zone) -> None:
    missing = problem(zone.client.get(f"/v1/review/periods/{CHP_PLANT}/2019-01", headers=OFFICER),
                      status=404, code="period_not_found")
    assert missing["detail"]
    # another enterprise's period is refused by the access gate exactly as a period or enterprise that does not exist
    other = problem(zone.client.get(f"/v1/review/periods/{CHP_PLANT}/2024-01", headers=enterprise(GAS_HEATING)),
                    status=404, code="not_found")
    for absent in (f"{CHP_PLANT}/2019-01", "91410100MA00000000/2024-01"):
        nowhere = problem(zone.client.get(f"/v1/review/periods/{absent}", headers=enterprise(GAS_HEATING)),
                          status=404, code="not_found")
        assert nowhere["detail"] == other["detail"]
    own_missing = problem(zone.client.get(f"/v1/review/periods/{GAS_HEATING}/2019-01", headers=enterprise(GAS_HEATING)),
                          status=404, code="period_not_found")
    assert own_missing["detail"].replace(GAS_HEATING, "E") == missing["detail"].replace(CHP_PLANT, "E")
    assert zone.state(CHP_PLANT, "2024-01", enterprise(GAS_HEATING, CHP_PLANT))["status"] == "calculated"
    assert zone.state(CHP_PLANT, "2024-01", ENGINEER)["status"] == "calculated"
    problem(zone.client.get(f"/v1/review/periods/{CHP_PLANT}/2024-01"), status=401, code="authentication_required")
    problem(zone.client.get(f"/v1/review/periods/{CHP_PLANT}/2024-13", headers=OFFICER), status=422,
            code="invalid_request")

    before = zone.footprint()
    problem(zone.act(CHP_PLANT, "2024-01", "start_review", enterprise(CHP_PLANT)), status=403, code="role_not_allowed")
    problem(zone.act(CHP_PLANT, "2024-01", "start_review", ENGINEER), status=403, code="role_not_allowed")
    problem(zone.act(CHP_PLANT, "2024-01", "reopen", VERIFIER, reason="x"), status=403, code="role_not_allowed")
    problem(zone.act(CHP_PLANT, "2024-01", "reject", OFFICER), status=422, code="reason_required")
    problem(zone.act(CHP_PLANT, "2024-01", "reject", OFFICER, reason="   "), status=422, code="reason_required")
    problem(zone.act(CHP_PLANT, "2024-01", "approve", OFFICER), status=409, code="transition_not_allowed")
    problem(zone.act(CHP_PLANT, "2024-01", "substitute", OFFICER, reason="x"), status=422, code="invalid_request")
    problem(zone.act(CHP_PLANT, "2024-01", "start_review", OFFICER, colour="red"), status=422, code="invalid_request")
    problem(zone.act(CHP_PLANT, "2024-01", "comment", VERIFIER, reason="x", recommendation="approve"),
            status=422, code="invalid_request")
    nothing = problem(zone.act(CHP_PLANT, "2019-01", "start_review", OFFICER), status=409,
                      code="transition_not_allowed")
    assert nothing["current"] is None
    stale = problem(zone.act(CHP_PLANT, "2024-01", "start_review", OFFICER, expected_version=0), status=409,
                    code="stale_state")
    assert stale["current"]["status"] == "calculated" and stale["current"]["version"] == 2
    assert zone.footprint() == before


def test_a_rejected_month_shows_the_comment_to_the_enterprise_and_reopens_for_a_corrected_submission(
        zone: Zone) -> None:
    rejected = zone.act(CEMENT_PLANT, "2024-02", "reject", OFFICER, reason="clinker output missing for kiln 2")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    seen = zone.state(CEMENT_PLANT, "2024-02", enterprise(CEMENT_PLANT))
    assert seen["status"] == "rejected"
    assert seen["history"][-1] | {"at": None} == {
        "action": "reject", "from_status": "calculated", "to_status": "rejected", "actor_id": "officer-li",
        "role": "officer", "comment": "clinker output missing for kiln 2", "row_number": None,
        "recommendation": None, "at": None}
    queue = zone.client.get("/v1/review/queue", params={"status": "rejected"}, headers=enterprise(CEMENT_PLANT))
    assert [(i["enterprise_id"], i["period"]) for i in queue.json()["items"]] == [(CEMENT_PLANT, "2024-02")]

    corrected = enterprise_month(CEMENT_PLANT, "2024-02", note="kiln 2 added")
    problem(zone.act(CEMENT_PLANT, "2024-02", "reopen", OFFICER), status=422, code="reason_required")
    reopened = zone.act(CEMENT_PLANT, "2024-02", "reopen", OFFICER, reason="enterprise sends kiln 2 data late")
    assert reopened.json()["status"] == "reopened"
    problem(zone.act(CEMENT_PLANT, "2024-02", "start_review", VERIFIER), status=409, code="transition_not_allowed")
    first_submission = reopened.json()["submission_id"]
    accepted = submit(zone, corrected, enterprise(CEMENT_PLANT), name="cement-2024-02.csv")  # past its deadline
    assert accepted.status_code == 201, accepted.text
    state = zone.state(CEMENT_PLANT, "2024-02", enterprise(CEMENT_PLANT))
    assert state["status"] == "submitted" and state["submission_id"] == accepted.json()["submission_id"]
    assert state["submission_id"] != first_submission and state["calculation_id"] is None
    assert [e["action"] for e in state["history"]][-3:] == ["reject", "reopen", "submit"]
    assert state["history"][-2]["comment"] == "enterprise sends kiln 2 data late"


def test_only_a_month_sent_back_takes_the_enterprise_correction_after_its_deadline(zone: Zone) -> None:
    corrected = enterprise_month(GAS_HEATING, "2024-02", note="meter 3 added")
    before = zone.footprint()
    late = problem(submit(zone, corrected, enterprise(GAS_HEATING)), status=422, code="invalid_file")
    assert {e["code"] for e in late["errors"]} == {"late_submission"}
    assert zone.footprint() == before
    assert zone.act(GAS_HEATING, "2024-02", "reject", OFFICER, reason="meter 3 missing").status_code == 200
    accepted = submit(zone, corrected, enterprise(GAS_HEATING))
    assert accepted.status_code == 201, accepted.text
    assert zone.state(GAS_HEATING, "2024-02", enterprise(GAS_HEATING))["status"] == "submitted"


# ---------------------------------------------------------------------------------------------
# Years, held periods, two officers


def _lock_month(session_zone: Zone, enterprise_id: str, month: str) -> None:
    with session_zone.sessions() as session:
        for action in ("start_review", "approve", "lock"):
            review.act(session, actor=OFFICER_ACTOR, enterprise_id=enterprise_id, period=month, action=action)


def test_a_year_locks_only_after_its_twelve_months_and_a_restatement_makes_version_2_with_a_diff(
        tmp_path: Path, database_url: str, published_zone: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with review_zone(tmp_path, database_url=database_url, published=published_zone, months=YEAR_2024) as zone:
        year = zone.state(CHP_PLANT, "2024")
        assert year["status"] == "calculated" and year["verified"] == []
        first_year_calculation = year["calculation_id"]
        months = {m: zone.state(CHP_PLANT, m)["calculation"]["net_tco2e"] for m in YEAR_2024}
        assert year["calculation"]["net_tco2e"] == pytest.approx(sum(months.values()), rel=1e-9)
        for action in ("start_review", "approve"):
            assert zone.act(CHP_PLANT, "2024", action).status_code == 200
        refused = problem(zone.act(CHP_PLANT, "2024", "lock"), status=409, code="months_not_locked")
        assert refused["detail_items"] == list(YEAR_2024) and refused["current"]["status"] == "verified"
        for month in YEAR_2024[:-1]:
            _lock_month(zone, CHP_PLANT, month)
        refused = problem(zone.act(CHP_PLANT, "2024", "lock"), status=409, code="months_not_locked")
        assert refused["detail_items"] == ["2024-12"]
        _lock_month(zone, CHP_PLANT, "2024-12")
        locked = zone.act(CHP_PLANT, "2024", "lock")
        assert locked.status_code == 200, locked.text
        (first,) = locked.json()["verified"]
        assert first["version"] == 1 and first["diff"] is None and first["reason"] is None
        assert first["net_tco2e"] == pytest.approx(sum(months.values()), rel=1e-9)
        assert len(first["calculation_ids"]) == 12

        # A restatement: March is corrected (B1 burnt more coal), recalculated by a real run, reviewed, relocked.
        assert zone.act(CHP_PLANT, "2024-03", "reopen", reason="B1 coal weighbridge recalibrated").status_code == 200
        problem(zone.act(CHP_PLANT, "2024", "reopen"), status=422, code="reason_required")
        assert zone.act(CHP_PLANT, "2024", "reopen", reason="March restated").json()["status"] == "reopened"
        header, rows = sample_rows("2024-03")
        corrected = [{**r, "quantity": str(round(float(r["quantity"]) * 1.1, 2))}
                     if r["item"] == "bituminous_coal" and r["facility"] == "B1" else r
                     for r in rows if r["enterprise_id"] == CHP_PLANT]
        assert submit(zone, to_csv(header, corrected), OFFICER).status_code == 201
        monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(tmp_path / "dagster")))
        with dg.DagsterInstance.ephemeral() as instance:
            assert materialize_all(zone.settings, instance=instance).success
        march = zone.state(CHP_PLANT, "2024-03")
        assert march["status"] == "calculated" and march["calculation"]["net_tco2e"] > months["2024-03"]
        _lock_month(zone, CHP_PLANT, "2024-03")
        year = zone.state(CHP_PLANT, "2024")
        assert year["status"] == "calculated" and year["calculation_id"] != first_year_calculation
        for action in ("start_review", "approve"):
            assert zone.act(CHP_PLANT, "2024", action).status_code == 200
        relocked = zone.act(CHP_PLANT, "2024", "lock", reason="March restated after recalibration")
        assert relocked.status_code == 200, relocked.text
        versions = relocked.json()["verified"]
        assert [v["version"] for v in versions] == [1, 2] and versions[0] == first
        second = versions[1]
        change = march["calculation"]["net_tco2e"] - months["2024-03"]
        assert second["reason"] == "March restated after recalibration" and second["locked_by"] == "officer-li"
        assert second["diff"]["net_tco2e"]["old"] == pytest.approx(first["net_tco2e"])
        assert second["diff"]["net_tco2e"]["change"] == pytest.approx(change, rel=1e-6)
        assert second["net_tco2e"] == pytest.approx(first["net_tco2e"] + change, rel=1e-9)
        assert "scope1_tco2e" in second["diff"] and "purchased_electricity_tco2e" not in second["diff"]


def test_approving_a_period_held_by_data_quality_checks_is_refused_until_it_is_released(zone: Zone) -> None:
    finding = {"enterprise_id": GAS_HEATING, "period": "2024-01", "rule": "intensity_out_of_range",
               "severity": "hold", "detail": {"net_tco2e_per_tce": 9.9}}
    with zone.sessions() as session:
        record_findings(session, findings=[finding], periods=[(GAS_HEATING, "2024-01")], run_id="checks-1")
    assert zone.act(GAS_HEATING, "2024-01", "start_review", VERIFIER).status_code == 200
    state = zone.state(GAS_HEATING, "2024-01")
    assert state["held"] and state["held_reasons"] == [{"rule": "intensity_out_of_range",
                                                        "detail": {"net_tco2e_per_tce": 9.9}}]
    held = zone.client.get("/v1/review/queue", params={"held": "true"}, headers=VERIFIER).json()
    assert [(i["enterprise_id"], i["period"]) for i in held["items"]] == [(GAS_HEATING, "2024-01")]

    before = zone.footprint()
    refused = problem(zone.act(GAS_HEATING, "2024-01", "approve"), status=409, code="held_by_checks")
    assert refused["detail_items"][0]["rule"] == "intensity_out_of_range"
    assert refused["current"]["status"] == "in_review"
    assert zone.footprint() == before
    assert zone.act(GAS_HEATING, "2024-01", "reject", reason="intensity implausible").status_code == 200

    with zone.sessions() as session:
        record_findings(session, findings=[], periods=[(GAS_HEATING, "2024-02")], run_id="checks-2")
        record_findings(session, findings=[{**finding, "period": "2024-02"}], periods=[(GAS_HEATING, "2024-02")],
                        run_id="checks-3")
        record_findings(session, findings=[], periods=[(GAS_HEATING, "2024-02")], run_id="checks-4")
    assert zone.act(GAS_HEATING, "2024-02", "start_review").status_code == 200
    assert zone.act(GAS_HEATING, "2024-02", "approve").json()["status"] == "verified"


def test_two_officers_acting_at_once_on_a_period_one_wins_and_the_other_gets_409_with_the_current_state(
        zone: Zone) -> None:
    version = zone.act(CHP_PLANT, "2024-02", "start_review").json()["version"]

    def approve(headers: dict[str, str]) -> Any:
        return zone.act(CHP_PLANT, "2024-02", "approve", headers, expected_version=version)

    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(approve, (OFFICER, OFFICER_2)))
    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(r for r in responses if r.status_code == 200).json()
    loser = problem(next(r for r in responses if r.status_code == 409), status=409, code="stale_state")
    assert loser["current"]["status"] == "verified" and loser["current"]["version"] == winner["version"]
    assert [e["action"] for e in winner["history"]].count("approve") == 1

    # Without a version: two officers, each in a session of their own, lock and reject at the same moment.
    barrier = threading.Barrier(2)

    def decide(action: str) -> str:
        actor = Actor(actor_id=f"officer-{action}", role="officer")
        with zone.sessions() as session:
            barrier.wait()
            try:
                review.act(session, actor=actor, enterprise_id=CHP_PLANT, period="2024-02", action=action,
                           reason="both at once")
            except (PeriodStateError, StaleStateError) as err:
                assert err.current is not None and err.current["status"] in ("locked", "rejected")
                return f"refused:{err.code}"
            return "won"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(decide, ("lock", "reject")))
    assert sorted(outcomes) == ["refused:transition_not_allowed", "won"]
    state = zone.state(CHP_PLANT, "2024-02")
    assert state["status"] == ("locked" if outcomes[0] == "won" else "rejected")
    assert state["version"] == winner["version"] + 1
    assert zone.client.get("/v1/review/audit/verify", headers=OFFICER).json()["intact"]


# ---------------------------------------------------------------------------------------------
# Submissions that the review state or the rules refuse


def test_a_submission_to_a_locked_period_is_refused_with_409_and_stores_nothing(zone: Zone) -> None:
    _lock_month(zone, CHP_PLANT, "2024-01")
    before = zone.footprint()
    for headers in (OFFICER, ENGINEER):
        body = problem(submit(zone, enterprise_month(CHP_PLANT, "2024-01", note="again"), headers),
                       status=409, code="period_not_open")
        assert body["periods"] == [{"enterprise_id": CHP_PLANT, "period": "2024-01", "status": "locked"}]
    assert zone.footprint() == before


def test_late_out_of_period_and_foreign_submissions_get_their_own_error_and_store_nothing(zone: Zone) -> None:
    before = zone.footprint()
    late = problem(submit(zone, enterprise_month(GAS_HEATING, "2024-02", note="late"), enterprise(GAS_HEATING)),
                   status=422, code="invalid_file")
    assert {(e["column"], e["code"]) for e in late["errors"]} == {("period", "late_submission")}
    assert len(late["errors"]) == len(rows_of(GAS_HEATING, "2024-02"))

    early = enterprise_month(GAS_HEATING, "2024-02", period="2022-12")
    future = enterprise_month(GAS_HEATING, "2024-02", period="2099-01")
    for content in (early, future):
        body = problem(submit(zone, content, OFFICER), status=422, code="invalid_file")
        assert {(e["column"], e["code"]) for e in body["errors"]} == {("period", "out_of_period")}

    foreign = problem(submit(zone, enterprise_month(CHP_PLANT, "2024-02"), enterprise(GAS_HEATING)),
                      status=403, code="not_own_enterprise")
    assert foreign["enterprise_ids"] == [CHP_PLANT]
    assert zone.footprint() == before


# ---------------------------------------------------------------------------------------------
# The queue


def test_the_review_queue_filters_by_status_sector_category_checks_period_and_enterprise_and_pages(
        zone: Zone) -> None:
    def queue(headers: dict[str, str] = VERIFIER, **params: Any) -> dict[str, Any]:
        response = zone.client.get("/v1/review/queue", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = queue(limit=1000)
    assert everything["total"] == len(everything["items"]) == 68
    keys = [(i["period"], i["enterprise_id"]) for i in everything["items"]]
    assert keys == sorted(keys) and {i["status"] for i in everything["items"]} == {"calculated"}
    assert all(i["net_tco2e"] is not None and i["name"] for i in everything["items"])

    assert zone.act(CHP_PLANT, "2024-01", "start_review").status_code == 200
    assert zone.act(GAS_HEATING, "2024-02", "reject", reason="missing boiler HB4").status_code == 200
    assert [(i["enterprise_id"], i["period"]) for i in queue(status="in_review")["items"]] == [(CHP_PLANT, "2024-01")]
    both = queue(status=["in_review", "rejected"])
    assert [(i["enterprise_id"], i["period"], i["status"]) for i in both["items"]] == [
        (CHP_PLANT, "2024-01", "in_review"), (GAS_HEATING, "2024-02", "rejected")]
    assert queue(status="calculated")["total"] == 66

    sector = queue(sector_code="4412", limit=1000)
    assert sector["total"] > 0 and {i["sector_code"] for i in sector["items"]} == {"4412"}
    suppliers = queue(category="heat_power_supplier", period="2024-02", limit=1000)
    assert {i["category"] for i in suppliers["items"]} == {"heat_power_supplier"}
    assert {i["period"] for i in suppliers["items"]} == {"2024-02"}
    assert GAS_HEATING in {i["enterprise_id"] for i in suppliers["items"]}
    assert queue(period="2024")["total"] == 68 and queue(period="2023")["total"] == 0
    assert queue(held="false")["total"] == 68 and queue(held="true")["total"] == 0
    one = queue(enterprise_id=CHP_PLANT)
    assert [i["period"] for i in one["items"]] == ["2024-01", "2024-02"]

    pages = [queue(limit=30, offset=o) for o in (0, 30, 60)]
    assert [len(p["items"]) for p in pages] == [30, 30, 8] and {p["total"] for p in pages} == {68}
    assert [(i["period"], i["enterprise_id"]) for p in pages for i in p["items"]] == keys

    own = queue(enterprise(CHP_PLANT))
    assert own["total"] == 2 and {i["enterprise_id"] for i in own["items"]} == {CHP_PLANT}
    assert queue(enterprise(CHP_PLANT), enterprise_id=GAS_HEATING)["total"] == 0
    problem(zone.client.get("/v1/review/queue", params={"limit": 1001}, headers=VERIFIER), status=422,
            code="invalid_request")
    problem(zone.client.get("/v1/review/queue", params={"status": "done"}, headers=VERIFIER), status=422,
            code="invalid_request")
    problem(zone.client.get("/v1/review/queue", params={"period": "24"}, headers=VERIFIER), status=422,
            code="invalid_request")
    problem(zone.client.get("/v1/review/queue"), status=401, code="authentication_required")


# ---------------------------------------------------------------------------------------------
# Evidence


def upload(zone: Zone, content: bytes, headers: dict[str, str], name: str = "invoice.pdf", **fields: Any) -> Any:
    return zone.client.post("/v1/review/evidence", headers=headers,
                            files={"file": (name, content, "application/pdf")},
                            data={k: str(v) for k, v in fields.items()})


def test_evidence_is_stored_once_by_sha256_linked_to_a_line_and_read_only_by_who_may_see_it(zone: Zone) -> None:
    submission_id = zone.state(CHP_PLANT, "2024-01")["submission_id"]
    row = rows_of(CHP_PLANT, "2024-01")[0]
    content = b"%PDF-1.7 coal invoice B1 January"
    sha = hashlib.sha256(content).hexdigest()
    owner = enterprise(CHP_PLANT)
    link = {"enterprise_id": CHP_PLANT, "period": "2024-01", "submission_id": submission_id, "row_number": row}

    first = upload(zone, content, owner, **link)
    assert first.status_code == 201, first.text
    record = first.json()
    assert record["sha256"] == sha and record["size_bytes"] == len(content) and record["created"]
    assert record["linked"] and record["link"]["row_number"] == row
    assert first.headers["location"] == f"/v1/review/evidence/{sha}"
    again = upload(zone, content, owner, name="copy.pdf", **link)
    assert again.status_code == 200 and again.json()["sha256"] == sha and again.json()["filename"] == "invoice.pdf"
    assert not again.json()["created"] and not again.json()["linked"]
    whole_period = upload(zone, content, VERIFIER, enterprise_id=CHP_PLANT, period="2024-01")
    assert whole_period.status_code == 200 and whole_period.json()["linked"]

    listed = zone.client.get(f"/v1/review/periods/{CHP_PLANT}/2024-01/evidence", headers=owner).json()["items"]
    assert [(i["sha256"], i["link"]["row_number"]) for i in listed] == [(sha, row), (sha, None)]
    hidden = problem(zone.client.get(f"/v1/review/periods/{CHP_PLANT}/2024-01/evidence",
                                     headers=enterprise(GAS_HEATING)), status=404, code="not_found")
    absent = problem(zone.client.get(f"/v1/review/periods/{CHP_PLANT}/2019-01/evidence",
                                     headers=enterprise(GAS_HEATING)), status=404, code="not_found")
    assert hidden["detail"] == absent["detail"]

    for headers in (owner, VERIFIER, OFFICER):
        download = zone.client.get(f"/v1/review/evidence/{sha}", headers=headers)
        assert download.status_code == 200 and download.content == content
        assert download.headers["content-type"] == "application/pdf"
        assert "invoice.pdf" in download.headers["content-disposition"]
    foreign = problem(zone.client.get(f"/v1/review/evidence/{sha}", headers=enterprise(GAS_HEATING)), status=404,
                      code="evidence_not_found")
    unknown = problem(zone.client.get(f"/v1/review/evidence/{'0' * 64}", headers=enterprise(GAS_HEATING)),
                      status=404, code="evidence_not_found")
    assert foreign["detail"].replace(sha, "S") == unknown["detail"].replace("0" * 64, "S")
    problem(zone.client.get(f"/v1/review/evidence/{sha}", headers=ENGINEER), status=403, code="role_not_allowed")
    problem(zone.client.get(f"/v1/review/evidence/{'0' * 64}", headers=OFFICER), status=404,
            code="evidence_not_found")

    entries = zone.client.get("/v1/review/audit", params={"action": "evidence.link"}, headers=OFFICER).json()
    assert entries["total"] == 2 and {e["target"] for e in entries["items"]} == {f"period:{CHP_PLANT}:2024-01"}
    stored = zone.client.get("/v1/review/audit", params={"target": f"evidence:{sha}"}, headers=OFFICER).json()
    assert [e["action"] for e in stored["items"]] == ["evidence.store"]
    assert stored["items"][0]["actor_id"] == enterprise_user_id((CHP_PLANT,))


def test_evidence_for_another_enterprise_a_wrong_line_or_too_large_is_refused_and_stores_nothing(zone: Zone) -> None:
    submission_id = zone.state(CHP_PLANT, "2024-01")["submission_id"]
    gas_row = rows_of(GAS_HEATING, "2024-01")[0]
    owner = enterprise(CHP_PLANT)
    before = zone.footprint()
    problem(upload(zone, b"meter photo", owner, enterprise_id=GAS_HEATING, period="2024-01"), status=403,
            code="not_own_enterprise")
    problem(upload(zone, b"meter photo", owner), status=422, code="incomplete_link")
    problem(upload(zone, b"meter photo", owner, enterprise_id=CHP_PLANT), status=422, code="incomplete_link")
    problem(upload(zone, b"meter photo", owner, enterprise_id=CHP_PLANT, period="2024-01", row_number=2),
            status=422, code="incomplete_link")
    problem(upload(zone, b"meter photo", owner, enterprise_id=CHP_PLANT, period="2024-01",
                   submission_id=submission_id, row_number=gas_row), status=422, code="row_not_in_submission")
    problem(upload(zone, b"meter photo", owner, enterprise_id=CHP_PLANT, period="2024-02",
                   submission_id=submission_id), status=422, code="submission_not_for_period")
    problem(upload(zone, b"meter photo", OFFICER, enterprise_id=CHP_PLANT, period="2024-01", submission_id="nope"),
            status=422, code="unknown_submission")
    problem(upload(zone, b"meter photo", OFFICER, enterprise_id="91410100MA00000000", period="2024-01"),
            status=422, code="unknown_enterprise")
    problem(upload(zone, b"meter photo", OFFICER, enterprise_id=CHP_PLANT, period="2024-13"), status=422,
            code="invalid_request")
    problem(upload(zone, b"", OFFICER), status=422, code="empty_file")
    too_large = b"x" * (zone.settings.max_upload_bytes + 1)
    body = problem(upload(zone, too_large, OFFICER), status=413, code="payload_too_large")
    assert body["limit_bytes"] == zone.settings.max_upload_bytes
    problem(zone.client.post("/v1/review/evidence", content=b"raw", headers={**OFFICER, "content-type": "image/png"}),
            status=415, code="unsupported_media_type")
    problem(zone.client.post("/v1/review/evidence", files={"other": ("a.pdf", b"x")}, headers=OFFICER),
            status=422, code="invalid_request")
    assert zone.footprint() == before


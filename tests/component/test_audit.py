"""The audit trail in a real database (SQLite and PostgreSQL): queried, verified, tampered with, and crashed into.

Every write of the review cycle leaves an entry; the chain verifies after all of them. Whoever holds
the database can switch off the append-only trigger and edit or delete an entry: the chain names
the place. A process killed while it accepts a submission leaves no trace of it at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from pipelines.settings import Settings
from tests.auth_support import ENGINEER, OFFICER, VERIFIER, enterprise
from tests.conftest import ROOT
from tests.review_support import CHP_PLANT, GAS_HEATING, Zone, enterprise_month, review_zone


@pytest.fixture
def zone(tmp_path: Path, database_url: str, published_zone: Settings) -> Iterator[Zone]:
    with review_zone(tmp_path, database_url=database_url, published=published_zone, months=("2024-01",)) as built:
        yield built


def verification(zone: Zone) -> dict[str, Any]:
    response = zone.client.get("/v1/review/audit/verify", headers=OFFICER)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def review_cycle(zone: Zone) -> None:
    """Writes of every kind: review actions and comments, a refused action, evidence, a correction."""
    for action, headers, extra in (("start_review", VERIFIER, {}), ("comment", VERIFIER, {"reason": "check B2"}),
                                   ("approve", OFFICER, {}), ("lock", OFFICER, {}),
                                   ("reopen", OFFICER, {"reason": "B2 meter replaced"})):
        response = zone.act(CHP_PLANT, "2024-01", action, headers, **extra)
        assert response.status_code == 200, response.text
    assert zone.act(CHP_PLANT, "2024-01", "approve", OFFICER).status_code == 409
    evidence = zone.client.post("/v1/review/evidence", headers=enterprise(CHP_PLANT),
                                files={"file": ("meter.jpg", b"\xff\xd8 meter B2", "image/jpeg")},
                                data={"enterprise_id": CHP_PLANT, "period": "2024-01"})
    assert evidence.status_code == 201, evidence.text
    corrected = zone.client.post("/v1/submissions", headers=OFFICER, files={
        "file": ("chp.csv", enterprise_month(CHP_PLANT, "2024-01", note="meter B2 replaced"), "text/csv")})
    assert corrected.status_code == 201, corrected.text


def allow_tampering(zone: Zone) -> None:
    """Switch off the append-only trigger, as someone with full access to the database could."""
    if make_url(zone.settings.database).get_backend_name() == "sqlite":
        zone.execute("drop trigger audit_log_no_update")
        zone.execute("drop trigger audit_log_no_delete")
    else:
        zone.execute("alter table audit_log disable trigger audit_log_no_change")


def test_the_audit_log_is_queried_by_target_actor_and_action_in_pages_by_officers_and_engineers(zone: Zone) -> None:
    review_cycle(zone)
    every = zone.client.get("/v1/review/audit", params={"limit": 1000}, headers=ENGINEER).json()
    seqs = [e["seq"] for e in every["items"]]
    assert seqs == sorted(seqs, reverse=True) and every["total"] == len(seqs) == seqs[0]
    actions = {e["action"] for e in every["items"]}
    assert {"registry.add", "submission.accept", "review.submit", "review.calculate", "review.start_review",
            "review.comment", "review.approve", "review.lock", "review.reopen", "evidence.store",
            "evidence.link"} <= actions
    assert all(len(e["entry_hash"]) == 64 and len(e["prev_hash"]) == 64 for e in every["items"])

    period = zone.client.get("/v1/review/audit", params={"target": f"period:{CHP_PLANT}:2024-01"},
                             headers=OFFICER).json()
    assert [e["action"] for e in reversed(period["items"])] == [
        "review.submit", "review.calculate", "review.start_review", "review.comment", "review.approve",
        "review.lock", "review.reopen", "evidence.link", "review.submit"]
    reopen = next(e for e in period["items"] if e["action"] == "review.reopen")
    assert reopen["detail"] == {"reason": "B2 meter replaced"} and reopen["before_hash"] != reopen["after_hash"]
    by_verifier = zone.client.get("/v1/review/audit", params={"actor_id": "verifier-zhao"}, headers=OFFICER).json()
    assert [e["action"] for e in by_verifier["items"]] == ["review.comment", "review.start_review"]
    accepted = zone.client.get("/v1/review/audit", params={"action": "submission.accept", "limit": 1, "offset": 1},
                               headers=OFFICER).json()
    assert accepted["total"] == 2 and len(accepted["items"]) == 1  # the sample month and the correction
    assert accepted["items"][0]["actor_id"] == "test-loader"

    for headers in (VERIFIER, enterprise(CHP_PLANT)):
        for path in ("/v1/review/audit", "/v1/review/audit/verify"):
            response = zone.client.get(path, headers=headers)
            assert response.status_code == 403 and response.json()["code"] == "role_not_allowed"
    assert zone.client.get("/v1/review/audit").status_code == 401
    assert zone.client.get("/v1/review/audit", params={"limit": 1001}, headers=OFFICER).status_code == 422


@pytest.mark.parametrize("tampering", ["edit", "delete"])
def test_the_chain_holds_after_a_review_cycle_and_names_an_edited_or_deleted_entry(zone: Zone, tampering: str) -> None:
    review_cycle(zone)
    intact = verification(zone)
    assert intact == {"entries": intact["entries"], "intact": True, "problems": []} and intact["entries"] > 30
    entries = zone.client.get("/v1/review/audit", params={"action": "review.approve"}, headers=OFFICER).json()
    (approve,) = entries["items"]
    target = approve["seq"]
    with pytest.raises(DBAPIError):  # the trigger refuses while it is there
        zone.execute(f"update audit_log set actor_id = 'mallory' where seq = {target}")

    allow_tampering(zone)
    if tampering == "edit":
        zone.execute(f"update audit_log set actor_id = 'mallory' where seq = {target}")
        expected = [(target, "edited")]
    else:
        zone.execute(f"delete from audit_log where seq = {target}")
        expected = [(target + 1, "gap"), (target + 1, "broken_link")]
    broken = verification(zone)
    assert not broken["intact"]
    assert [(p["seq"], p["code"]) for p in broken["problems"]] == expected
    assert all(p["detail"] for p in broken["problems"])


CRASH = """
import os
import sys
from pathlib import Path

from sqlalchemy import func, select

from accounting.review import Actor
from api.services.submissions import submit
from api.store import audit
from api.store.db import session_factory_for
from api.store.schema import AuditEntry, Submission, SubmissionPeriod
from pipelines.settings import Settings

real_append = audit.append


def append(session, **fields):
    if fields["action"] == "submission.accept":  # the submission row and its periods are flushed by now
        tables = (Submission, SubmissionPeriod, AuditEntry)
        written = [session.scalar(select(func.count()).select_from(t)) for t in tables]
        print("flushed", *written, flush=True)
        os.kill(os.getpid(), 9)
    return real_append(session, **fields)


audit.append = append
settings = Settings(database_url=sys.argv[1])
with session_factory_for(sys.argv[1])() as session:
    submit(session, settings=settings, actor=Actor(actor_id="officer-crash", role="officer"),
           filename="correction.csv", content=Path(sys.argv[2]).read_bytes())
print("committed", flush=True)
"""


def test_a_process_killed_while_accepting_a_submission_leaves_none_of_it(zone: Zone, tmp_path: Path) -> None:
    correction = tmp_path / "correction.csv"
    correction.write_bytes(enterprise_month(CHP_PLANT, "2024-01", note="corrected") +
                           enterprise_month(GAS_HEATING, "2024-01", note="corrected").split(b"\n", 1)[1])
    before = zone.footprint()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CARBON_")}
    crashed = subprocess.run([sys.executable, "-c", CRASH, zone.settings.database, str(correction)], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    counts = before["counts"]
    # Inside the killed transaction, the submission, its two periods and their review.submit entries were written.
    assert crashed.stdout.split() == ["flushed", str(counts["submissions"] + 1), str(counts["submission_periods"] + 2),
                                      str(counts["audit_log"] + 2)]

    assert zone.footprint() == before  # no submission, no submission periods, no review events, no audit entries
    assert verification(zone)["intact"]
    state = zone.state(CHP_PLANT, "2024-01")
    assert state["status"] == "calculated" and [e["action"] for e in state["history"]] == ["submit", "calculate"]

    accepted = zone.client.post("/v1/submissions", headers=OFFICER,
                                files={"file": ("correction.csv", correction.read_bytes(), "text/csv")})
    assert accepted.status_code == 201, accepted.text  # nothing half-done stands in the way
    assert sorted(accepted.json()["enterprise_ids"]) == sorted([CHP_PLANT, GAS_HEATING])
    assert zone.state(GAS_HEATING, "2024-01")["status"] == "submitted"
    assert verification(zone)["intact"]

"""Compliance through the real API (SQLite, and again on PostgreSQL): surrender, the balance view, closing a year.

The zone: the sample registry, three enterprises whose 2024 emissions are locked (written as the review
service writes a locked year: the year's review ``locked`` and version 1 of its verified emissions; locking
twelve months through the workflow would cost a pipeline run), allowances allocated from the issuance
account through ``api.services.ledger.post``, and reference prices recorded by an officer through the API.
Every figure checked below is worked out by hand in the comments.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from accounting.ledger import LedgerError, reversing_entry, transfer_entry
from accounting.review import Actor
from api.main import create_app
from api.services import ledger as ledger_service
from api.store import ledger as repository
from api.store.db import create_db_engine, make_session_factory, session_factory
from api.store.schema import (
    AllocationRow,
    EncumbranceRow,
    JournalEntryRow,
    PeriodReview,
    PostingRow,
    VerifiedEmissions,
)
from pipelines.settings import Settings
from tests.auth_support import OFFICER, OFFICER_2, TRADER, VERIFIER, enterprise
from tests.component.web_support import Page
from tests.conftest import SAMPLE_DIR, zone_settings
from tests.support import load_zone

CHP_PLANT = "914101022286058318"
GAS_HEATING = "91410102170679896E"
CEMENT_PLANT = "91410100437387498P"
ISSUER = Actor(actor_id="officer-li", role="officer")
#: Verified 2024 emissions (t CO2e) and the allowances each enterprise holds at the start.
VERIFIED = {CHP_PLANT: 1000.4, GAS_HEATING: 300.0, CEMENT_PLANT: 100.0}
HOLDINGS = {CHP_PLANT: {"CEA-2023": 50, "CEA-2024": 900, "CEA-2025": 40, "CCER": 80},
            GAS_HEATING: {"CEA-2024": 500}, CEMENT_PLANT: {"CEA-2024": 100}}


@dataclass
class Zone:
    settings: Settings
    client: TestClient
    sessions: sessionmaker[Session]

    def surrender(self, enterprise_id: str, instrument: str, quantity: int, *, key: str, year: int = 2024,
                  headers: dict[str, str] | None = None) -> Any:
        return self.client.post("/v1/compliance/surrenders",
                                headers={**(headers or enterprise(enterprise_id)), "Idempotency-Key": key},
                                json={"enterprise_id": enterprise_id, "year": year, "instrument": instrument,
                                      "quantity": quantity})

    def view(self, enterprise_id: str, *, year: int = 2024, headers: dict[str, str] = OFFICER) -> dict[str, Any]:
        response = self.client.get(f"/v1/compliance/{year}/enterprises/{enterprise_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def journal_size(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(JournalEntryRow)) or 0

    def balance(self, account_id: str, instrument: str) -> int:
        with self.sessions() as session:
            return repository.balances_of(session, account_id=account_id).get(instrument, 0)


def lock_year(session: Session, *, enterprise_id: str, year: str, net_tco2e: float) -> None:
    """What ``api.services.review`` stores when a year is locked: the year's review and its verified emissions."""
    now = datetime.now(UTC)
    session.add(PeriodReview(enterprise_id=enterprise_id, period=year, status="locked", version=1,
                             submission_id=None, calculation_id=None, is_substituted=False, held=False,
                             held_reasons=[], updated_at=now, updated_by="officer-li"))
    session.add(VerifiedEmissions(enterprise_id=enterprise_id, year=year, version=1,
                                  totals={"net_tco2e": net_tco2e}, net_tco2e=net_tco2e, calculation_ids=[],
                                  locked_by="officer-li", locked_at=now))


@pytest.fixture
def zone(tmp_path: Path, database_url: str, published_zone: Settings) -> Iterator[Zone]:
    # a banking limit of 150 t (no sales): GAS_HEATING's 200 t surplus loses 50 t when the year closes;
    # the pages read the zone's published snapshot (materialized once per test session)
    settings = zone_settings(tmp_path, database_url=database_url, banking_base_t=150,
                             serving_path=published_zone.serving)
    load_zone(settings, months=())
    with session_factory(settings)() as session:
        ledger_service.ensure_system_accounts(session)
        ledger_service.ensure_compliance_accounts(session, list(HOLDINGS))
        for enterprise_id, net in VERIFIED.items():
            lock_year(session, enterprise_id=enterprise_id, year="2024", net_tco2e=net)
        for enterprise_id, held in HOLDINGS.items():
            for instrument, quantity in held.items():
                entry = transfer_entry(entry_id=ledger_service.new_entry_id(), kind="allocate",
                                       from_account="SYS-ISSUANCE",
                                       to_account=ledger_service.compliance_account_id(enterprise_id),
                                       instrument=instrument, quantity=quantity)
                row = ledger_service.post(session, entry=entry, actor=ISSUER, reference="test-allocation")
                if instrument == "CEA-2024":
                    session.add(AllocationRow(plan_id="test-plan", version=1, enterprise_id=enterprise_id,
                                              instrument=instrument, stage="pre", quantity=quantity, basis={},
                                              entry_id=row.entry_id))
        session.commit()
    engine = create_db_engine(settings.database)
    try:
        with TestClient(create_app(settings)) as client:
            yield Zone(settings=settings, client=client, sessions=make_session_factory(engine))
    finally:
        engine.dispose()
        session_factory(settings).kw["bind"].dispose()


def record_prices(zone: Zone) -> None:
    """November 2025 (the month before the 2024 deadline's month) averages 9875 fen; the latest is 10000 fen."""
    for day, price, volume in (("2025-11-10", 9800, 100), ("2025-11-20", 9900, 300), ("2026-01-05", 10000, 10)):
        response = zone.client.post("/v1/prices", headers=OFFICER, json={
            "instrument": "CEA-2024", "day": day, "price_fen": price, "volume": volume, "source": "CEEX daily"})
        assert response.status_code == 201, response.text


def test_prices_are_recorded_by_officers_and_read_by_everyone(zone: Zone) -> None:
    record_prices(zone)
    again = zone.client.post("/v1/prices", headers=OFFICER, json={
        "instrument": "CEA-2024", "day": "2025-11-10", "price_fen": 9800, "volume": 100, "source": "CEEX daily"})
    assert again.status_code == 200  # the same values: nothing changes
    other = {"instrument": "CEA-2024", "day": "2025-11-10", "price_fen": 9700, "volume": 100, "source": "CEEX daily"}
    refused = zone.client.post("/v1/prices", headers=OFFICER, json=other)
    assert (refused.status_code, refused.json()["code"]) == (409, "price_already_recorded")
    corrected = zone.client.post("/v1/prices", headers=OFFICER, json={**other, "replace": True})
    assert (corrected.status_code, corrected.json()["price_fen"]) == (200, 9700)
    for body, code in (({**other, "instrument": "CNY", "day": "2025-11-11"}, "instrument_not_priced"),
                       ({**other, "day": "2999-01-01"}, "future_price_day")):
        response = zone.client.post("/v1/prices", headers=OFFICER, json=body)
        assert (response.status_code, response.json()["code"]) == (422, code)
    assert zone.client.post("/v1/prices", headers=TRADER, json=other).status_code == 403
    listed = zone.client.get("/v1/prices", headers=TRADER,
                             params={"instrument": "CEA-2024", "from": "2025-11-01", "to": "2025-11-30"})
    assert listed.status_code == 200
    assert [(p["day"], p["price_fen"]) for p in listed.json()["items"]] == [("2025-11-20", 9900),
                                                                           ("2025-11-10", 9700)]


def test_surrender_is_confined_to_own_eligible_available_units_under_the_offset_cap(zone: Zone) -> None:
    # CHP_PLANT: 1000.4 t verified -> obligation 1001 t; CCER cap = floor(5 % x 1001) = 50 t
    first = zone.surrender(CHP_PLANT, "CEA-2024", 600, key="s1")
    assert first.status_code == 201, first.text
    assert first.json()["surrendered"] == {"allowances_t": 600, "ccer_t": 0, "total_t": 600}
    assert first.json()["remaining_t"] == 401
    replay = zone.surrender(CHP_PLANT, "CEA-2024", 600, key="s1")
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    reused = zone.surrender(CHP_PLANT, "CEA-2024", 1, key="s1")
    assert (reused.status_code, reused.json()["code"]) == (409, "idempotency_key_reused")

    before = zone.journal_size()
    over_cap = zone.surrender(CHP_PLANT, "CCER", 51, key="s2")
    assert (over_cap.status_code, over_cap.json()["code"]) == (409, "offset_cap_exceeded")
    assert zone.journal_size() == before and zone.balance(f"CA-{CHP_PLANT}", "CCER") == 80
    assert zone.surrender(CHP_PLANT, "CCER", 50, key="s3").status_code == 201

    others = zone.surrender(GAS_HEATING, "CEA-2024", 10, key="s4", headers=enterprise(CHP_PLANT))
    assert (others.status_code, others.json()["code"]) == (403, "not_own_account")
    officer = zone.surrender(CHP_PLANT, "CEA-2024", 10, key="s5", headers=OFFICER)
    assert officer.status_code == 403  # the access table: only enterprises surrender
    future = zone.surrender(CHP_PLANT, "CEA-2025", 10, key="s6")
    assert (future.status_code, future.json()["code"]) == (409, "vintage_not_eligible")
    not_locked = zone.surrender(CHP_PLANT, "CEA-2023", 10, key="s7", year=2023)
    assert (not_locked.status_code, not_locked.json()["code"]) == (409, "emissions_not_locked")
    fractional = zone.client.post("/v1/compliance/surrenders", headers={**enterprise(CHP_PLANT),
                                                                         "Idempotency-Key": "s8"},
                                  json={"enterprise_id": CHP_PLANT, "year": 2024, "instrument": "CEA-2024",
                                        "quantity": 1.5})
    assert fractional.status_code == 422
    no_key = zone.client.post("/v1/compliance/surrenders", headers=enterprise(CHP_PLANT),
                              json={"enterprise_id": CHP_PLANT, "year": 2024, "instrument": "CEA-2024",
                                    "quantity": 1})
    assert no_key.status_code == 422

    # 300 CEA-2024 left, 250 of them frozen: 50 available
    with zone.sessions() as session:
        session.add(EncumbranceRow(encumbrance_id="freeze-1", kind="freeze", account_id=f"CA-{CHP_PLANT}",
                                   instrument="CEA-2024", quantity=250, reason="court order",
                                   imposed_by="officer-li", created_at=datetime.now(UTC)))
        session.commit()
    before = zone.journal_size()
    frozen = zone.surrender(CHP_PLANT, "CEA-2024", 100, key="s9")
    assert (frozen.status_code, frozen.json()["code"]) == (409, "units_encumbered")
    assert zone.journal_size() == before
    assert zone.surrender(CHP_PLANT, "CEA-2024", 50, key="s10").status_code == 201


def test_retired_units_never_move_again(zone: Zone) -> None:
    surrendered = zone.surrender(CEMENT_PLANT, "CEA-2024", 100, key="all")
    assert surrendered.status_code == 201
    entry_id = surrendered.json()["entry_id"]
    with zone.sessions() as session:
        original = repository.entry_of(session.scalars(select(JournalEntryRow).where(
            JournalEntryRow.entry_id == entry_id)).one(), repository.postings_of(session, entry_id))
        attempts = [reversing_entry(original, entry_id="undo"),
                    transfer_entry(entry_id="out", kind="transfer", from_account="SYS-RETIREMENT",
                                   to_account=f"CA-{CEMENT_PLANT}", instrument="CEA-2024", quantity=1)]
        for attempt in attempts:
            with pytest.raises(LedgerError) as refused:
                ledger_service.post(session, entry=attempt, actor=ISSUER)
            assert refused.value.code == "retired_units_immutable"
            session.rollback()
    assert zone.balance("SYS-RETIREMENT", "CEA-2024") == 100


def test_balance_view_close_with_four_eyes_and_zone_report(zone: Zone) -> None:
    record_prices(zone)
    for enterprise_id, instrument, quantity in ((CHP_PLANT, "CEA-2024", 600), (CHP_PLANT, "CCER", 50),
                                                (GAS_HEATING, "CEA-2024", 300), (CEMENT_PLANT, "CEA-2024", 100)):
        assert zone.surrender(enterprise_id, instrument, quantity, key=f"{enterprise_id}{instrument}"
                              ).status_code == 201
    with zone.sessions() as session:
        session.add(EncumbranceRow(encumbrance_id="freeze-1", kind="freeze", account_id=f"CA-{CHP_PLANT}",
                                   instrument="CEA-2024", quantity=250, reason="court order",
                                   imposed_by="officer-li", created_at=datetime.now(UTC)))
        session.commit()

    view = zone.view(CHP_PLANT)
    # obligation 1001; surrendered 600 + 50 CCER = 650; shortfall 351
    assert (view["status"], view["obligation_t"], view["shortfall_t"]) == ("deficit", 1001, 351)
    assert view["surrendered"] == {"allowances_t": 600, "ccer_t": 50, "total_t": 650}
    assert view["free_allocation"] == {"pre_t": 900, "true_up_t": 0, "total_t": 900}
    assert view["paid_allocation"] == {"quantity_t": 0, "cost_fen": 0}
    holdings = {h["instrument"]: (h["balance"], h["frozen"], h["pledged"], h["available"], h["eligible"])
                for h in view["holdings"]}
    assert holdings == {"CEA-2023": (50, 0, 0, 50, True), "CEA-2024": (300, 250, 0, 50, True),
                        "CEA-2025": (40, 0, 0, 40, False), "CCER": (30, 0, 0, 30, True)}
    # the CCER cap is used up: none of the 30 CCER left is usable
    assert view["offsets"] == {"cap_t": 50, "surrendered_t": 50, "held_available_t": 30, "usable_t": 0}
    # eligible available 50 + 50 = 100 against 351: net -251; latest CEA-2024 price 10000 fen
    assert (view["eligible_available_t"], view["net_position_t"], view["uncovered_t"]) == (100, -251, 251)
    assert (view["shortfall_value_fen"], view["uncovered_value_fen"]) == (3_510_000, 2_510_000)
    # after the deadline (2025-12-31): 351 t x 9875 fen (November 2025) x 5
    assert (view["deadline"], view["deadline_passed"], view["penalty_average_price_fen"]) == ("2025-12-31", True,
                                                                                              9875)
    assert view["penalty_estimate_fen"] == 17_330_625
    assert zone.view(CHP_PLANT, headers=enterprise(CHP_PLANT))["obligation_t"] == 1001
    hidden = zone.client.get(f"/v1/compliance/2024/enterprises/{CHP_PLANT}", headers=enterprise(GAS_HEATING))
    assert hidden.status_code == 404
    assert zone.view(CHP_PLANT, year=2025)["status"] == "not_locked"

    report = zone.client.get("/v1/compliance/2024/report", headers=VERIFIER).json()
    assert (report["deficit"], report["surplus"], report["compliant"]) == ([CHP_PLANT], [GAS_HEATING],
                                                                         [CEMENT_PLANT])
    assert report["totals"] == {"obligation_t": 1401, "surrendered_t": 1050, "shortfall_t": 351, "surplus_t": 200,
                                "penalty_estimate_fen": 17_330_625}
    assert CHP_PLANT not in report["not_locked"]

    early = zone.client.post("/v1/compliance/2059/close", headers={**OFFICER, "Idempotency-Key": "c0"})
    assert (early.status_code, early.json()["code"]) == (409, "deadline_not_passed")
    proposed = zone.client.post("/v1/compliance/2024/close", headers={**OFFICER, "Idempotency-Key": "c1"})
    assert proposed.status_code == 202, proposed.text
    approval = proposed.json()
    assert approval["status"] == "pending" and zone.balance(f"CA-{CHP_PLANT}", "CEA-2025") == 40
    decision = {"decision": "approve", "payload_digest": approval["payload_digest"]}
    decide = f"/v1/approvals/{approval['approval_id']}/decision"
    same = zone.client.post(decide, headers={**OFFICER, "Idempotency-Key": "d1"}, json=decision)
    assert (same.status_code, same.json()["code"]) == (409, "same_officer")
    assert zone.balance(f"CA-{CHP_PLANT}", "CEA-2025") == 40
    approved = zone.client.post(decide, headers={**OFFICER_2, "Idempotency-Key": "d2"}, json=decision)
    assert approved.status_code == 200, approved.text
    decided = approved.json()
    assert decided["status"] == "approved"
    lines = {line["enterprise_id"]: line for line in decided["result"]["enterprises"]}
    # CHP_PLANT: 40 CEA-2025 deducted, 311 t still owed; GAS_HEATING: 200 surplus, 150 banked, 50 cancelled
    assert (lines[CHP_PLANT]["deducted_t"], lines[CHP_PLANT]["owed_t"]) == (40, 311)
    assert lines[CHP_PLANT]["penalty_estimate_fen"] == 17_330_625
    assert (lines[GAS_HEATING]["banked_t"], lines[GAS_HEATING]["cancelled"]) == (
        150, [{"instrument": "CEA-2024", "quantity": 50}])
    assert zone.balance(f"CA-{CHP_PLANT}", "CEA-2025") == 0
    assert zone.balance("SYS-CANCELLATION", "CEA-2025") == 40
    assert zone.balance(f"CA-{GAS_HEATING}", "CEA-2024") == 150
    with zone.sessions() as session:
        kinds = dict(session.execute(select(JournalEntryRow.kind, func.count()).group_by(JournalEntryRow.kind)).all())
        assert (kinds["deduction"], kinds["cancel"]) == (1, 1)
        assert session.scalar(select(func.count()).select_from(PostingRow)
                              .where(PostingRow.account_id == "SYS-CANCELLATION")) == 2
        assert ledger_service.verify(session)["ok"]

    assert zone.view(CHP_PLANT)["closed"]["owed_t"] == 311
    late = zone.surrender(CHP_PLANT, "CEA-2023", 10, key="late")
    assert (late.status_code, late.json()["code"]) == (409, "year_closed")
    again = zone.client.post("/v1/compliance/2024/close", headers={**OFFICER, "Idempotency-Key": "c2"})
    assert (again.status_code, again.json()["code"]) == (409, "year_already_closed")
    assert zone.client.get("/v1/compliance/2024/report", headers=OFFICER).json()["closed"] is True


PLAN_2025 = f"""
plan_id = "zone-2025-free"
version = 1
year = 2025
benchmark_edition = "2026.1"
pre_allocation_share = 0.70

[[enterprises]]
enterprise_id = "{CHP_PLANT}"
method = "grandfathering"
lines = [{{ product = "power", historical_intensity = 1, base_year_output = 1000, decline_factor = 1 }}]
"""


def decide(zone: Zone, approval: dict[str, Any], key: str, decision: str = "approve") -> Any:
    return zone.client.post(f"/v1/approvals/{approval['approval_id']}/decision",
                            headers={**OFFICER_2, "Idempotency-Key": key},
                            json={"decision": decision, "payload_digest": approval["payload_digest"]})


def test_a_shortfall_the_close_could_not_deduct_is_deducted_from_the_next_allocations(zone: Zone) -> None:
    record_prices(zone)
    loaded = zone.client.post("/v1/allocation/plans", content=PLAN_2025.encode(), headers={
        **OFFICER, "Idempotency-Key": "plan", "Content-Type": "application/toml"})
    assert loaded.status_code == 201, loaded.text
    pre = "/v1/allocation/plans/zone-2025-free/1/pre-allocation"
    early = zone.client.post(pre, headers={**OFFICER, "Idempotency-Key": "pre1"})
    assert early.status_code == 202, early.text
    assert [m.get("owed_deduction_t") for m in early.json()["approval"]["payload"]["allocations"]] == [None]

    # CHP_PLANT surrendered nothing: it owes 1001 t; the close takes its 40 CEA-2025 and 961 t stay owed
    assert zone.surrender(GAS_HEATING, "CEA-2024", 300, key="gas").status_code == 201
    proposed = zone.client.post("/v1/compliance/2024/close", headers={**OFFICER, "Idempotency-Key": "c1"})
    assert decide(zone, proposed.json(), "d1").status_code == 200
    closed = zone.view(CHP_PLANT)
    assert (closed["closed"]["deducted_t"], closed["closed"]["owed_t"], closed["still_owed_t"]) == (40, 961, 961)
    assert zone.view(CEMENT_PLANT)["still_owed_t"] == 100  # it held no CEA-2025 at all
    assert zone.view(GAS_HEATING)["still_owed_t"] == 0

    # the pre-allocation proposed before the close would now also deduct: its approver must see that
    entries = zone.journal_size()
    stale = decide(zone, early.json()["approval"], "d2")
    assert (stale.status_code, stale.json()["code"]) == (409, "plan_not_approvable")
    assert zone.journal_size() == entries
    assert decide(zone, early.json()["approval"], "d3", "reject").status_code == 200
    again = zone.client.post(pre, headers={**OFFICER, "Idempotency-Key": "pre2"})
    assert again.status_code == 202, again.text
    # pre-allocation: 70 % of 1 × 1000 × 1 = 700 t issued, all 700 deducted
    [move] = again.json()["approval"]["payload"]["allocations"]
    assert (move["quantity"], move["owed_deduction_t"]) == (700, 700)
    assert decide(zone, again.json()["approval"], "d4").status_code == 200
    assert zone.balance(f"CA-{CHP_PLANT}", "CEA-2025") == 0
    assert zone.balance("SYS-CANCELLATION", "CEA-2025") == 40 + 700
    assert zone.view(CHP_PLANT)["still_owed_t"] == 261
    shown = zone.client.get(f"/ui/rights/{CHP_PLANT}?year=2024", headers=OFFICER)
    assert shown.status_code == 200, shown.text
    facts = Page.parse(shown.text).one(testid="balance-facts")
    assert [c.text for c in facts.children if c.attrs.get("data-field") == "still_owed_t"] == ["261"]

    # true-up at 1200 of actual output: 500 t more, 261 of them deducted, 239 t kept; nothing owed any more
    with zone.sessions() as session:
        lock_year(session, enterprise_id=CHP_PLANT, year="2025", net_tco2e=900.0)
        session.commit()
    true_up = zone.client.post("/v1/allocation/plans/zone-2025-free/1/true-up",
                               headers={**OFFICER, "Idempotency-Key": "t1"},
                               json={"actual_outputs": {CHP_PLANT: {"power": 1200}}})
    assert true_up.status_code == 202, true_up.text
    [move] = true_up.json()["approval"]["payload"]["allocations"]
    assert (move["quantity"], move["owed_deduction_t"]) == (500, 261)
    assert decide(zone, true_up.json()["approval"], "d5").status_code == 200
    assert zone.balance(f"CA-{CHP_PLANT}", "CEA-2025") == 239
    assert zone.balance("SYS-CANCELLATION", "CEA-2025") == 40 + 700 + 261
    assert zone.view(CHP_PLANT)["still_owed_t"] == 0
    year = zone.client.get(f"/v1/allocation/enterprises/{CHP_PLANT}", headers=OFFICER).json()["years"][-1]
    assert (year["year"], year["final_t"], year["owed_deducted_t"]) == (2025, 1200, 961)
    with zone.sessions() as session:
        carried = session.execute(select(JournalEntryRow.kind, JournalEntryRow.memo, PostingRow.quantity)
                                  .join(PostingRow, PostingRow.entry_id == JournalEntryRow.entry_id)
                                  .where(JournalEntryRow.reference == f"compliance-owed:{CHP_PLANT}:2024",
                                         PostingRow.account_id == "SYS-CANCELLATION")
                                  .order_by(JournalEntryRow.seq)).all()
        owed = "deduction", "2024 shortfall still owed after its close, deducted from"
        assert [tuple(row) for row in carried] == [(owed[0], f"{owed[1]} pre zone-2025-free v1", 700),
                                                   (owed[0], f"{owed[1]} true_up zone-2025-free v1", 261)]
        assert ledger_service.verify(session)["ok"]


def test_cli_reports_records_prices_and_proposes_the_close(zone: Zone, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main
    from pipelines.settings import get_settings

    for name in [n for n in os.environ if n.upper().startswith("CARBON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CARBON_DATA_DIR", str(zone.settings.data_dir))
    monkeypatch.setenv("CARBON_SAMPLE_DIR", str(SAMPLE_DIR))
    monkeypatch.setenv("CARBON_DATABASE_URL", zone.settings.database)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    get_settings.cache_clear()
    try:
        def carbon(*args: str) -> tuple[int, Any]:
            status = main(list(args))
            return status, json.loads(capsys.readouterr().out)

        status, price = carbon("prices", "record", "CEA-2024", "2025-11-10", "9800", "--volume", "100",
                               "--source", "CEEX daily")
        assert (status, price["created"], price["recorded_by"].startswith("cli:")) == (0, True, True)
        assert carbon("prices", "list", "--instrument", "CEA-2024")[1]["total"] == 1
        status, done = carbon("compliance", "surrender", CEMENT_PLANT, "2024", "CEA-2024", "100")
        assert (status, done["remaining_t"]) == (0, 0)
        status, refused = carbon("compliance", "surrender", CHP_PLANT, "2024", "CCER", "51")
        assert (status, refused["code"]) == (2, "offset_cap_exceeded")
        assert carbon("compliance", "show", "2024", CEMENT_PLANT)[1]["status"] == "compliant"
        assert carbon("compliance", "report", "2024")[1]["compliant"] == [CEMENT_PLANT]
        status, proposal = carbon("compliance", "close", "2024")
        assert (status, proposal["status"], proposal["kind"]) == (0, "pending", "compliance_close")
    finally:
        get_settings.cache_clear()


def test_a_close_needs_the_penalty_price_and_is_refused_when_the_plan_changed(zone: Zone) -> None:
    unpriced = zone.client.post("/v1/compliance/2024/close", headers={**OFFICER, "Idempotency-Key": "c1"})
    assert (unpriced.status_code, unpriced.json()["code"]) == (409, "price_required")
    record_prices(zone)
    too_much = zone.surrender(CEMENT_PLANT, "CEA-2024", 101, key="s1")  # the obligation is 100 t
    assert (too_much.status_code, too_much.json()["code"]) == (409, "surrender_exceeds_obligation")
    unknown = zone.client.get("/v1/compliance/2024/enterprises/000000000000000000", headers=OFFICER)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "enterprise_not_found")

    approval = zone.client.post("/v1/compliance/2024/close", headers={**OFFICER, "Idempotency-Key": "c2"}).json()
    pending = zone.client.post("/v1/compliance/2024/close", headers={**OFFICER_2, "Idempotency-Key": "c3"})
    assert (pending.status_code, pending.json()["code"]) == (409, "close_pending")
    assert zone.surrender(CEMENT_PLANT, "CEA-2024", 100, key="s2").status_code == 201  # after the proposal
    before = zone.journal_size()
    stale = zone.client.post(f"/v1/approvals/{approval['approval_id']}/decision",
                             headers={**OFFICER_2, "Idempotency-Key": "d1"},
                             json={"decision": "approve", "payload_digest": approval["payload_digest"]})
    assert (stale.status_code, stale.json()["code"]) == (409, "close_plan_changed")
    assert zone.journal_size() == before
    assert zone.client.get("/v1/compliance/2024/report", headers=OFFICER).json()["closed"] is False

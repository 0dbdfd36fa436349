"""Paid allocation by auction through the API (issue 5 §3): prefunded sealed bids, uniform-price clearing with a
partial marginal fill and the time-priority tie rule, four-eyes settlement in one entry, cancellation, report.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from accounting.ledger import transfer_entry
from accounting.review import Actor
from api.main import create_app
from api.services import auctions
from api.services.ledger import ensure_system_accounts, new_entry_id, open_account, post, verify
from api.services.registry import import_registry
from api.store.db import create_db_engine, make_session_factory, session_factory
from api.store.schema import AuctionBidRow, JournalEntryRow, LedgerBalance
from tests.auth_support import OFFICER, OFFICER_2, TRADER, VERIFIER, enterprise, headers_for
from tests.conftest import zone_settings

ROOT = Path(__file__).resolve().parents[2]
CHP = "914101022286058318"
ZHOU = headers_for("trader-zhou")
SETUP = Actor(actor_id="test-setup", role="officer")
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


@dataclass
class Zone:
    client: TestClient
    sessions: sessionmaker[Session]
    clock: list[datetime] = field(default_factory=lambda: [T0])

    def at(self, minutes: int) -> None:
        self.clock[0] = T0 + timedelta(minutes=minutes)

    def post(self, url: str, headers: dict[str, str], **kwargs: Any) -> Any:
        return self.client.post(url, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, **kwargs)

    def deposit(self, account_id: str, fen: int) -> None:
        with self.sessions() as session:
            post(session, entry=transfer_entry(entry_id=new_entry_id(), kind="deposit", from_account="SYS-BANK",
                                               to_account=account_id, instrument="CNY", quantity=fen), actor=SETUP)
            session.commit()

    def balance(self, account_id: str, instrument: str) -> int:
        with self.sessions() as session:
            row = session.get(LedgerBalance, (account_id, instrument))
            return row.quantity if row else 0

    def decide(self, approval: dict[str, Any], headers: dict[str, str]) -> Any:
        return self.post(f"/v1/approvals/{approval['approval_id']}/decision", headers,
                         json={"decision": "approve", "payload_digest": approval["payload_digest"]})

    def footprint(self) -> tuple[int, int, dict[tuple[str, str], int]]:
        with self.sessions() as session:
            entries = int(session.scalar(select(func.count()).select_from(JournalEntryRow)) or 0)
            bids = int(session.scalar(select(func.count()).select_from(AuctionBidRow)) or 0)
            balances = {(r.account_id, r.instrument): r.quantity for r in session.scalars(select(LedgerBalance))}
        return entries, bids, balances

    def assert_conserved(self) -> None:
        with self.sessions() as session:
            report = verify(session)
        assert report["ok"], report


@pytest.fixture
def zone(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Zone]:
    settings = zone_settings(tmp_path, database_url=database_url)
    with session_factory(settings)() as session:
        import_registry(session, content=(ROOT / "data" / "sample" / "enterprises.csv").read_bytes(),
                        source="enterprises.csv", actor=Actor(actor_id="test-loader", role="engineer"))
        ensure_system_accounts(session)
        from api.services.ledger import ensure_compliance_accounts

        ensure_compliance_accounts(session, [CHP])
        for account_id, owner in (("TR-QIAN", "trader-qian"), ("TR-ZHOU", "trader-zhou")):
            open_account(session, actor=SETUP, account_id=account_id, kind="trader", owner_id=owner, name=owner,
                         commit=False)
        session.commit()
    engine = create_db_engine(settings.database)
    created = Zone(client=None, sessions=make_session_factory(engine))  # type: ignore[arg-type]
    monkeypatch.setattr(auctions, "now", lambda: created.clock[0])
    try:
        with TestClient(create_app(settings)) as client:
            created.client = client
            yield created
    finally:
        engine.dispose()
        session_factory(settings).kw["bind"].dispose()


def create(zone: Zone, **changes: Any) -> dict[str, Any]:
    terms = {"auction_id": "A-2024-1", "instrument": "CEA-2024", "offered_t": 100, "reserve_price_fen": 5000,
             "min_bid_t": 10, "bidder_cap_t": 80, "lot_t": 10, "opens_at": T0.isoformat(),
             "closes_at": (T0 + timedelta(hours=2)).isoformat(), "cover_ratio": "1", **changes}
    response = zone.post("/v1/auctions", OFFICER, json=terms)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bid(zone: Zone, headers: dict[str, str], account_id: str, price_fen: int, quantity_t: int,
        auction_id: str = "A-2024-1") -> Any:
    return zone.post(f"/v1/auctions/{auction_id}/bids", headers,
                     json={"account_id": account_id, "price_fen": price_fen, "quantity_t": quantity_t})


def close_and_settle(zone: Zone, auction_id: str = "A-2024-1") -> dict[str, Any]:
    zone.at(121)
    closed = zone.post(f"/v1/auctions/{auction_id}/close", OFFICER)
    assert closed.status_code == 202, closed.text
    approval = closed.json()["approval"]
    assert approval["kind"] == "auction_settlement"
    same = zone.decide(approval, OFFICER)
    assert (same.status_code, same.json()["code"]) == (409, "same_officer")
    settled = zone.decide(approval, OFFICER_2)
    assert settled.status_code == 200, settled.text
    body: dict[str, Any] = closed.json()
    return body


def test_an_auction_clears_at_the_lowest_accepted_bid_and_settles_in_one_entry(zone: Zone) -> None:
    create(zone)
    assert zone.balance("SYS-AUCTION", "CEA-2024") == 100
    zone.deposit("TR-QIAN", 400_000)
    zone.deposit("TR-ZHOU", 200_000)
    zone.deposit(f"CA-{CHP}", 200_000)
    zone.at(10)
    assert bid(zone, TRADER, "TR-QIAN", 6000, 60).status_code == 201
    zone.at(20)
    assert bid(zone, ZHOU, "TR-ZHOU", 5500, 30).status_code == 201  # same price as CHP's, but earlier
    zone.at(30)
    chp = bid(zone, enterprise(CHP), f"CA-{CHP}", 5500, 30)
    assert chp.status_code == 201, chp.text
    assert zone.balance("SYS-AUCTION", "CNY") == 360_000 + 165_000 + 165_000
    early = zone.post("/v1/auctions/A-2024-1/close", OFFICER)
    assert (early.status_code, early.json()["code"]) == (409, "bid_window_open")
    closed = close_and_settle(zone)
    fills = [(b["account_id"], b["filled_t"]) for b in closed["result"]["bids"]]
    # rank: price, then earlier bid: QIAN 60, ZHOU 30 (earlier at 5500), CHP gets the 10 t left (partial)
    assert fills == [("TR-QIAN", 60), ("TR-ZHOU", 30), (f"CA-{CHP}", 10)]
    assert closed["result"]["clearing_price_fen"] == 5500
    assert zone.balance("TR-QIAN", "CEA-2024") == 60
    assert zone.balance("TR-ZHOU", "CEA-2024") == 30
    assert zone.balance(f"CA-{CHP}", "CEA-2024") == 10
    assert zone.balance("TR-QIAN", "CNY") == 400_000 - 60 * 5500
    assert zone.balance("TR-ZHOU", "CNY") == 200_000 - 30 * 5500
    assert zone.balance(f"CA-{CHP}", "CNY") == 200_000 - 10 * 5500
    assert zone.balance("SYS-FEES", "CNY") == 100 * 5500
    assert (zone.balance("SYS-AUCTION", "CNY"), zone.balance("SYS-AUCTION", "CEA-2024")) == (0, 0)
    zone.assert_conserved()
    report = zone.client.get("/v1/auctions/A-2024-1/report", headers=VERIFIER).json()
    assert report["status"] == "settled"
    assert report["revenue_fen"] == report["fee_account_increase_fen"] == zone.balance("SYS-FEES", "CNY") == 550_000
    assert {b["account_id"]: (b["allocated_t"], b["paid_fen"], b["refund_fen"]) for b in report["bidders"]} == {
        "TR-QIAN": (60, 330_000, 30_000), "TR-ZHOU": (30, 165_000, 0), f"CA-{CHP}": (10, 55_000, 110_000)}
    statuses = {b["account_id"]: b["status"] for b in
                zone.client.get("/v1/auctions/A-2024-1/bids", headers=OFFICER).json()["items"]}
    assert statuses == {"TR-QIAN": "filled", "TR-ZHOU": "filled", f"CA-{CHP}": "partial"}
    assert zone.client.get("/v1/auctions/A-2024-1", headers=TRADER).json()["status"] == "settled"


def test_bids_are_sealed_prefunded_and_only_on_ones_own_account(zone: Zone) -> None:
    create(zone)
    zone.deposit("TR-QIAN", 100_000)
    zone.deposit("TR-ZHOU", 100_000)
    zone.at(-5)
    early = bid(zone, TRADER, "TR-QIAN", 5000, 10)
    assert (early.status_code, early.json()["code"]) == (409, "auction_not_open")
    zone.at(5)
    assert bid(zone, TRADER, "TR-QIAN", 5000, 10).status_code == 201
    assert bid(zone, ZHOU, "TR-ZHOU", 6000, 10).status_code == 201
    before = zone.footprint()
    poor = bid(zone, TRADER, "TR-QIAN", 9000, 20)  # 180 000 fen needed, 50 000 available
    assert (poor.status_code, poor.json()["code"]) == (409, "insufficient_funds")
    foreign = bid(zone, ZHOU, "TR-QIAN", 5000, 10)
    assert (foreign.status_code, foreign.json()["code"]) == (403, "not_own_account")
    below = bid(zone, TRADER, "TR-QIAN", 4999, 10)
    assert (below.status_code, below.json()["code"]) == (422, "below_reserve_price")
    capped = bid(zone, TRADER, "TR-QIAN", 5000, 80)
    assert (capped.status_code, capped.json()["code"]) == (409, "bidder_cap_exceeded")
    assert zone.footprint() == before
    reserve = zone.client.get("/v1/ledger/accounts/TR-QIAN/entries", headers=TRADER).json()["items"][0]
    by_hand = zone.post("/v1/ledger/reversals", OFFICER, json={"entry_id": reserve["entry_id"]})
    assert (by_hand.status_code, by_hand.json()["code"]) == (409, "not_reversible")  # withdraw the bid instead
    assert zone.footprint() == before
    own = zone.client.get("/v1/auctions/A-2024-1/bids", headers=ZHOU).json()["items"]
    assert [b["account_id"] for b in own] == ["TR-ZHOU"]
    assert len(zone.client.get("/v1/auctions/A-2024-1/bids", headers=OFFICER).json()["items"]) == 2
    assert zone.client.get("/v1/auctions/A-2024-1/bids", headers=enterprise(CHP)).json()["items"] == []
    qian_bid = zone.client.get("/v1/auctions/A-2024-1/bids", headers=TRADER).json()["items"][0]["bid_id"]
    stolen = zone.client.delete(f"/v1/auctions/A-2024-1/bids/{qian_bid}",
                                headers={**ZHOU, "Idempotency-Key": "w1"})
    assert (stolen.status_code, stolen.json()["code"]) == (404, "unknown_bid")
    withdrawn = zone.client.delete(f"/v1/auctions/A-2024-1/bids/{qian_bid}",
                                   headers={**TRADER, "Idempotency-Key": "w1"})
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert zone.balance("TR-QIAN", "CNY") == 100_000
    zone.at(200)
    late = bid(zone, ZHOU, "TR-ZHOU", 6000, 10)
    assert (late.status_code, late.json()["code"]) == (409, "bid_window_closed")
    zone.assert_conserved()


def test_an_undercovered_auction_is_cancelled_and_refunds_everyone(zone: Zone) -> None:
    create(zone, auction_id="A-2024-2", cover_ratio="1.5")
    zone.deposit("TR-QIAN", 500_000)
    zone.deposit("TR-ZHOU", 500_000)
    zone.at(10)
    assert bid(zone, TRADER, "TR-QIAN", 7000, 70, auction_id="A-2024-2").status_code == 201
    assert bid(zone, ZHOU, "TR-ZHOU", 6000, 60, auction_id="A-2024-2").status_code == 201  # 130 t < 1.5 × 100 t
    zone.at(121)
    first = zone.post("/v1/auctions/A-2024-2/close", OFFICER).json()["approval"]
    again = zone.post("/v1/auctions/A-2024-2/close", OFFICER)
    assert (again.status_code, again.json()["code"]) == (409, "auction_closed")  # a settlement is pending
    rejected = zone.post(f"/v1/approvals/{first['approval_id']}/decision", OFFICER_2,
                         json={"decision": "reject", "payload_digest": first["payload_digest"]})
    assert rejected.status_code == 200, rejected.text
    assert zone.balance("TR-QIAN", "CNY") == 500_000 - 490_000  # nothing moved on rejection
    closed = close_and_settle(zone, "A-2024-2")  # proposed again after the rejection
    assert closed["result"]["status"] == "cancelled"
    assert (zone.balance("TR-QIAN", "CNY"), zone.balance("TR-ZHOU", "CNY")) == (500_000, 500_000)
    assert (zone.balance("TR-QIAN", "CEA-2024"), zone.balance("TR-ZHOU", "CEA-2024")) == (0, 0)
    assert zone.balance("SYS-ISSUANCE", "CEA-2024") == 0  # every offered allowance went back
    assert zone.balance("SYS-FEES", "CNY") == 0
    zone.assert_conserved()
    report = zone.client.get("/v1/auctions/A-2024-2/report", headers=OFFICER).json()
    assert report["status"] == "cancelled"
    assert report["revenue_fen"] == report["fee_account_increase_fen"] == 0
    assert {b["account_id"]: b["refund_fen"] for b in report["bidders"]} == {"TR-QIAN": 490_000, "TR-ZHOU": 360_000}

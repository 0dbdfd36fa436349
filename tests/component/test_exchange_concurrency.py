"""Sixteen clients trading one instrument at once through a live API of two worker processes, on PostgreSQL.

Each client is a trader of its own (a user with an API key and a funded trading account) and sends a mix
of limit buys and sells around the close, IOC and market orders, cancels of its own open orders, resends
of a client order id it already used, and pairs of the same new order sent at once (so two workers may
race for one client order id). The two workers share nothing but the database: each keeps its own engine
and catches up from the command log under the instrument's row lock.

Afterwards no acknowledged order is missing or different, no (account, client order id) has two orders,
every resend answered the same order, each order's fills are its trades, order ids and the log have no
gap or duplicate, the exchange's replay equals what is stored, the ledger verifies, cash and units are
conserved, and no available balance is negative.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from accounting.ledger import CNY
from accounting.market_rules import CHINA_TZ, InstrumentRules
from accounting.review import Actor
from api.security import password_hasher
from api.services import exchange
from api.services import ledger as ledger_service
from api.store import ledger as ledger_store
from api.store.db import create_db_engine, make_session_factory
from api.store.schema import ApiKey, ExchangeCommand, ExchangeInstrument, ExchangeOrder, ExchangeTrade, User
from tests.auth_support import api_key_of
from tests.conftest import zone_settings
from tests.exchange_support import fund
from tests.faults.harness import Answer, LiveServer, request

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 16
ACTIONS_EACH = 24
INSTRUMENT = "CEA-2025"
CLOSE_FEN = 5000
FEE_BP = 10
CASH_FEN = 3_000_000
UNITS_T = 600
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ)
SETUP = Actor(actor_id="test-setup", role="officer")
#: Refusals a client may meet (anything else, and any 5xx, fails the test).
EXPECTED_REFUSALS = {(409, "insufficient_funds"), (409, "insufficient_holdings"), (409, "order_not_open")}


def account_of(n: int) -> str:
    return f"TR-C{n:02d}"


def user_of(n: int) -> str:
    return f"trader-c{n:02d}"


def headers_of(n: int) -> dict[str, str]:
    key_id, secret = api_key_of(user_of(n))
    return {"Authorization": f"Bearer ck_{key_id}_{secret}"}


def prepare(database_url: str) -> None:
    """The clients' users and keys, their funded trading accounts, the listed instrument and a paused clock."""
    engine = create_db_engine(database_url)
    now = datetime.now(UTC)
    hasher = password_hasher(time_cost=1, memory_kib=32)
    try:
        with engine.begin() as conn:
            conn.execute(insert(User), [
                {"user_id": user_of(n), "role": "trader", "password_hash": None, "enterprise_ids": [],
                 "account_ids": [account_of(n)], "created_at": now, "disabled_at": None} for n in range(CLIENTS)])
            conn.execute(insert(ApiKey), [
                {"key_id": api_key_of(user_of(n))[0], "user_id": user_of(n), "name": "tests",
                 "secret_hash": hasher.hash(api_key_of(user_of(n))[1]), "created_at": now,
                 "expires_at": now + timedelta(days=1), "revoked_at": None} for n in range(CLIENTS)])
        with make_session_factory(engine)() as session:
            ledger_service.ensure_system_accounts(session)
            for n in range(CLIENTS):
                ledger_service.open_account(session, actor=SETUP, account_id=account_of(n), kind="trader",
                                           owner_id=user_of(n), name=account_of(n), commit=False)
                fund(session, account_of(n), fen=CASH_FEN, tonnes=UNITS_T)
            session.commit()
            exchange.set_clock(session, actor=SETUP, mode="simulated", start=MONDAY_10, speed=0, step_seconds=60)
            exchange.list_instrument(session, actor=SETUP, instrument=INSTRUMENT, reference_price_fen=CLOSE_FEN,
                                     fee_bp=FEE_BP, settlement="trade", rules=InstrumentRules(instrument=INSTRUMENT))
    finally:
        engine.dispose()


@dataclass
class Client:
    """One trader's thread: what it sent and what the API answered."""

    n: int
    base_url: str
    placed: list[tuple[dict[str, Any], Answer]] = field(default_factory=list)
    cancels: list[tuple[int, Answer]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/exchange/instruments/{INSTRUMENT}/orders"

    def send(self, body: dict[str, Any]) -> Answer:
        answer = request("POST", self.url, headers=headers_of(self.n), json_body=body, timeout=30)
        self.placed.append((body, answer))
        self.judge(answer, expected={200, 201})
        return answer

    def judge(self, answer: Answer, *, expected: set[int]) -> None:
        code = answer.body.get("code") if isinstance(answer.body, dict) else None
        if answer.status not in expected and (answer.status, code) not in EXPECTED_REFUSALS:
            self.unexpected.append(f"{answer.status} {code} {answer.body}")

    def new_order(self, rng: random.Random, number: int) -> dict[str, Any]:
        body: dict[str, Any] = {"account_id": account_of(self.n), "client_order_id": f"c{self.n:02d}-{number}",
                                "side": rng.choice(("buy", "sell")), "quantity_t": rng.randint(1, 30)}
        kind = rng.random()
        if kind < 0.70:
            body["price_fen"] = CLOSE_FEN + rng.randint(-5, 5) * 10
        elif kind < 0.82:
            body.update(price_fen=CLOSE_FEN + rng.randint(-3, 3) * 10, time_in_force="ioc")
        else:
            body.update(order_type="market", time_in_force=rng.choice(("day", "ioc", "fok")),
                        quantity_t=rng.randint(1, 12))
        return body

    def open_orders(self) -> list[int]:
        return [a.body["order_id"] for _, a in self.placed
                if a.status in (200, 201) and a.body["state"] in ("new", "partially_filled")]

    def run(self, seed: int, start: threading.Barrier) -> None:
        rng = random.Random(seed)  # noqa: S311 - a reproducible mix
        start.wait(timeout=60)
        for number in range(ACTIONS_EACH):
            roll = rng.random()
            acknowledged = [b for b, a in self.placed if a.status in (200, 201)]
            if roll < 0.15 and (open_ids := self.open_orders()):
                order_id = rng.choice(open_ids)
                answer = request("DELETE", f"{self.url}/{order_id}", headers=headers_of(self.n), timeout=30)
                self.cancels.append((order_id, answer))
                self.judge(answer, expected={200})
            elif roll < 0.25 and acknowledged:
                self.send(rng.choice(acknowledged))  # the same client order id again: the same order
            elif roll < 0.33:
                body = self.new_order(rng, number)  # the same new order twice at once: one order
                with ThreadPoolExecutor(max_workers=2) as pair:
                    list(pair.map(self.send, (body, dict(body))))
            else:
                self.send(self.new_order(rng, number))


@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[tuple[str, str]]:
    if not database_url.startswith("postgresql"):
        pytest.skip("row-lock concurrency across worker processes is PostgreSQL's (SQLite serializes every writer)")
    settings = zone_settings(tmp_path, database_url=database_url)
    prepare(settings.database)
    server = LiveServer(tmp_path, settings.database, name="workers", workers=2)
    try:
        yield server.start(), settings.database
    finally:
        server.stop()


def test_sixteen_clients_on_two_workers_lose_duplicate_or_double_spend_nothing(live: tuple[str, str],
                                                                             record_property: Any) -> None:
    base_url, database_url = live
    clients = [Client(n, base_url) for n in range(CLIENTS)]
    start = threading.Barrier(CLIENTS)
    began = time.monotonic()
    threads = [threading.Thread(target=c.run, args=(1000 + c.n, start)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    seconds = time.monotonic() - began
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not [u for c in clients for u in c.unexpected], [u for c in clients for u in c.unexpected][:10]

    engine = create_db_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            report = check_store(session, clients)
    finally:
        engine.dispose()
    requests_sent = sum(len(c.placed) + len(c.cancels) for c in clients)
    record_property("exchange_concurrency", {**report, "requests": requests_sent, "seconds": round(seconds, 1)})
    print(f"exchange concurrency: {requests_sent} requests in {seconds:.1f}s: {report}")  # noqa: T201
    assert report["trades"] > 50 and report["created"] > CLIENTS * 10, report


def check_store(session: Session, clients: list[Client]) -> dict[str, int]:
    """Compare what the clients were told with what is stored; check the invariants. Returns a few counts."""
    rows = {(r.account_id, r.client_order_id): r for r in session.scalars(
        select(ExchangeOrder).where(ExchangeOrder.instrument == INSTRUMENT))}
    duplicates = session.execute(select(ExchangeOrder.account_id, ExchangeOrder.client_order_id, func.count())
                                 .group_by(ExchangeOrder.instrument, ExchangeOrder.account_id,
                                           ExchangeOrder.client_order_id).having(func.count() > 1)).all()
    assert not duplicates, duplicates
    answered: dict[tuple[str, str], set[int]] = defaultdict(set)
    created: Counter[tuple[str, str]] = Counter()
    for client in clients:
        for body, answer in client.placed:
            if answer.status not in (200, 201):
                continue
            key = (body["account_id"], body["client_order_id"])
            row = rows.get(key)
            assert row is not None, f"acknowledged order {key} is missing"
            assert (row.order_id, row.side, row.quantity_t) == (answer.body["order_id"], body["side"],
                                                                body["quantity_t"]), key
            answered[key].add(answer.body["order_id"])
            created[key] += answer.status == 201
        for order_id, answer in client.cancels:
            if answer.status == 200:
                cancelled = next(r for r in rows.values() if r.order_id == order_id)
                assert cancelled.state == "cancelled" and cancelled.held == 0, order_id
    assert all(len(ids) == 1 for ids in answered.values()), "a resend answered another order"
    assert all(created[key] == 1 for key in answered), [k for k in answered if created[k] != 1][:5]
    assert set(rows) == set(answered), "an order is stored that no client was told about"

    filled: Counter[int] = Counter()
    for trade in session.scalars(select(ExchangeTrade).where(ExchangeTrade.instrument == INSTRUMENT)):
        assert trade.buy_account_id != trade.sell_account_id
        assert 4500 <= trade.price_fen <= 5500 and trade.entry_id is not None
        filled[trade.buy_order_id] += trade.quantity_t
        filled[trade.sell_order_id] += trade.quantity_t
    for row in rows.values():
        assert filled[row.order_id] == row.filled_t, (row.order_id, filled[row.order_id], row.filled_t)
        assert row.filled_t + row.remaining_t + row.cancelled_t == row.quantity_t, row.order_id
    order_ids = sorted(r.order_id for r in rows.values())
    assert order_ids == list(range(1, len(order_ids) + 1)), "order ids have a gap or a duplicate"
    seqs = list(session.scalars(select(ExchangeCommand.seq).where(ExchangeCommand.instrument == INSTRUMENT)
                                .order_by(ExchangeCommand.seq)))
    instrument = session.get(ExchangeInstrument, INSTRUMENT)
    assert instrument is not None and seqs == list(range(1, instrument.last_seq + 1)), "the log has a gap"

    replayed = exchange.verify(session, instrument=INSTRUMENT)
    assert replayed["ok"], replayed["problems"][:10]
    ledger_report = ledger_service.verify(session)
    assert ledger_report["ok"], ledger_report
    balances = ledger_store.stored_balances(session)
    encumbered = ledger_store.encumbered_totals(session)
    holders = [account_of(n) for n in range(CLIENTS)] + [exchange.clearing_account_id(INSTRUMENT)]
    fees = balances.get((ledger_service.system_account_id("fees"), CNY), 0)
    assert sum(balances.get((a, CNY), 0) for a in holders) + fees == CASH_FEN * CLIENTS
    assert sum(balances.get((a, INSTRUMENT), 0) for a in holders) == UNITS_T * CLIENTS
    for account_id in holders:
        for asset in (CNY, INSTRUMENT):
            key = (account_id, asset)
            assert balances.get(key, 0) - encumbered.get(key, 0) >= 0, key
    answers = [a for c in clients for _, a in c.placed]
    return {"orders": len(rows), "acknowledged": sum(a.status in (200, 201) for a in answers),
            "created": sum(created.values()), "refused": sum(a.status >= 300 for a in answers),
            "cancelled": sum(a.status == 200 for c in clients for _, a in c.cancels),
            "trades": int(session.scalar(select(func.count()).select_from(ExchangeTrade)) or 0),
            "commands": len(seqs), **{f"log_{kind}": n for kind, n in session.execute(
                select(ExchangeCommand.kind, func.count()).group_by(ExchangeCommand.kind)).all()}}

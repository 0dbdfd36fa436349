"""A listed zone for exchange tests: two traders and an enterprise with cash and allowances, a rehearsal clock.

``market(tmp_path, database_url)`` gives a running app (TestClient) on a fresh database with CEA-2025 listed
at 50.00 CNY, the clock paused on Monday 2026-03-02 10:00 China time (a trading session), TR-QIAN and
TR-ZHOU each holding 10,000,000 fen (CNY 100,000) and 20,000 t, and the CHP plant's compliance account the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from accounting.ledger import transfer_entry
from accounting.market_rules import CHINA_TZ
from accounting.review import Actor
from api.main import create_app
from api.services import exchange
from api.services.ledger import ensure_compliance_accounts, ensure_system_accounts, new_entry_id, open_account, post
from api.services.ledger import verify as verify_ledger
from api.services.registry import import_registry
from api.store.db import create_db_engine, make_session_factory, session_factory
from api.store.schema import LedgerBalance
from pipelines.settings import Settings
from tests.auth_support import OFFICER, enterprise, headers_for
from tests.conftest import zone_settings

ROOT = Path(__file__).resolve().parents[1]
CHP = "914101022286058318"
CHP_ACCOUNT = f"CA-{CHP}"
QIAN, ZHOU = headers_for("trader-qian"), headers_for("trader-zhou")
CHP_USER = enterprise(CHP)
SETUP = Actor(actor_id="test-setup", role="officer")
INSTRUMENT = "CEA-2025"
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ)
CASH_FEN = 10_000_000
UNITS_T = 20_000


@dataclass
class Market:
    client: TestClient
    sessions: sessionmaker[Session]
    settings: Settings

    def call(self, method: str, url: str, headers: dict[str, str], **kwargs: Any) -> Any:
        return self.client.request(method, url, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, **kwargs)

    def order(self, headers: dict[str, str], account_id: str, side: str, quantity_t: int, price_fen: int | None = None,
              **extra: Any) -> Any:
        body = {"account_id": account_id, "client_order_id": extra.pop("client_order_id", uuid.uuid4().hex[:20]),
                "side": side, "quantity_t": quantity_t, **extra}
        if price_fen is not None:
            body["price_fen"] = price_fen
        return self.client.post(f"/v1/exchange/instruments/{INSTRUMENT}/orders", headers=headers, json=body)

    def clock(self, moment: datetime, *, speed: int = 0) -> None:
        response = self.call("PUT", "/v1/exchange/clock", OFFICER,
                             json={"mode": "simulated", "start": moment.isoformat(), "speed": speed})
        assert response.status_code == 200, response.text

    def balance(self, account_id: str, instrument: str) -> int:
        with self.sessions() as session:
            row = session.get(LedgerBalance, (account_id, instrument))
            return row.quantity if row else 0

    def verify(self) -> None:
        """The ledger's invariants and the exchange's replay both hold."""
        with self.sessions() as session:
            ledger_report = verify_ledger(session)
            assert ledger_report["ok"], ledger_report
            report = exchange.verify(session, instrument=INSTRUMENT)
            assert report["ok"], report


def fund(session: Session, account_id: str, *, fen: int = CASH_FEN, tonnes: int = UNITS_T) -> None:
    """Deposit cash from the bank and issue allowances to ``account_id`` (setup, not under test)."""
    for source, instrument, quantity, kind in (("SYS-BANK", "CNY", fen, "deposit"),
                                               ("SYS-ISSUANCE", INSTRUMENT, tonnes, "issue")):
        if quantity:
            post(session, entry=transfer_entry(entry_id=new_entry_id(), kind=kind, from_account=source,
                                               to_account=account_id, instrument=instrument, quantity=quantity),
                 actor=SETUP)


@contextmanager
def market(tmp_path: Path, database_url: str, **settings_changes: Any) -> Iterator[Market]:
    settings = zone_settings(tmp_path, database_url=database_url, **settings_changes)
    with session_factory(settings)() as session:
        import_registry(session, content=(ROOT / "data" / "sample" / "enterprises.csv").read_bytes(),
                        source="enterprises.csv", actor=Actor(actor_id="test-loader", role="engineer"))
        ensure_system_accounts(session)
        ensure_compliance_accounts(session, [CHP])
        for account_id, owner in (("TR-QIAN", "trader-qian"), ("TR-ZHOU", "trader-zhou")):
            open_account(session, actor=SETUP, account_id=account_id, kind="trader", owner_id=owner, name=owner,
                         commit=False)
        for account_id in ("TR-QIAN", "TR-ZHOU", CHP_ACCOUNT):
            fund(session, account_id)
        session.commit()
    engine = create_db_engine(settings.database)
    try:
        with TestClient(create_app(settings)) as client:
            created = Market(client=client, sessions=make_session_factory(engine), settings=settings)
            created.clock(MONDAY_10)
            listed = created.call("POST", "/v1/exchange/instruments", OFFICER,
                                  json={"instrument": INSTRUMENT, "reference_price_fen": 5000, "fee_bp": 10})
            assert listed.status_code == 201, listed.text
            yield created
    finally:
        engine.dispose()
        session_factory(settings).kw["bind"].dispose()

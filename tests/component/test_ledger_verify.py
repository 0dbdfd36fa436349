"""``carbon ledger verify`` finds a balance that disagrees with the journal or an account below zero; ``rebuild``
restores the balances from the journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from accounting.ledger import transfer_entry
from accounting.review import Actor
from api.services.ledger import ensure_system_accounts, new_entry_id, open_account, post, system_account_id, verify
from api.store.db import session_factory
from pipelines.cli import main
from pipelines.settings import get_settings
from tests.conftest import zone_settings

OFFICER = Actor(actor_id="officer-li", role="officer")


def test_verify_reports_a_tampered_balance_and_rebuild_restores_it_from_the_journal(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    settings = zone_settings(tmp_path, database_url=database_url)
    with session_factory(settings)() as session:
        ensure_system_accounts(session)
        open_account(session, actor=OFFICER, account_id="TR-A", kind="trader", owner_id="TR-A", name="A")
        post(session, entry=transfer_entry(entry_id=new_entry_id(), kind="issue", instrument="CEA-2024",
                                           from_account=system_account_id("issuance"), to_account="TR-A",
                                           quantity=500), actor=OFFICER)
        session.commit()
        assert verify(session)["ok"]
    engine = create_engine(settings.database)
    with engine.begin() as conn:  # a stored balance edited behind the ledger's back
        conn.execute(text("update ledger_balances set quantity = 900 where account_id = 'TR-A'"))
    engine.dispose()
    monkeypatch.setenv("CARBON_DATABASE_URL", settings.database)
    monkeypatch.setenv("CARBON_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    assert main(["ledger", "verify"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["differences"] == [{"account_id": "TR-A", "instrument": "CEA-2024", "stored": 900, "journal": 500}]
    assert report["negative_available"] == []
    assert main(["ledger", "rebuild"]) == 0
    rebuilt = json.loads(capsys.readouterr().out)
    assert rebuilt["ok"] and rebuilt["changed"] == [
        {"account_id": "TR-A", "instrument": "CEA-2024", "stored": 900, "journal": 500}]
    assert main(["ledger", "verify"]) == 0
    capsys.readouterr()
    engine = create_engine(settings.database)
    with engine.begin() as conn:  # more frozen than held: written around the rules, found by verify
        conn.execute(text("insert into ledger_encumbrances (encumbrance_id, kind, account_id, instrument, quantity,"
                          " reason, imposed_by, created_at) values ('e1', 'freeze', 'TR-A', 'CEA-2024', 600, 'x',"
                          " 'officer-li', '2026-01-01 00:00:00')"))
    engine.dispose()
    assert main(["ledger", "verify"]) == 1
    assert json.loads(capsys.readouterr().out)["negative_available"] == [
        {"account_id": "TR-A", "instrument": "CEA-2024", "available": -100}]
    get_settings.cache_clear()

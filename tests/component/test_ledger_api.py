"""The ledger's API: accounts, transfers to trusted counterparties, four eyes, encumbrances, refusals, idempotency.

Each test runs on SQLite and PostgreSQL; every refusal is checked for its status and code and for
having changed nothing (balances, journal, encumbrances, approvals and the audit log are the same).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from accounting.ledger import ISSUANCE, RETIREMENT, transfer_entry
from accounting.review import Actor
from api.main import create_app
from api.services.ledger import compliance_account_id, ensure_system_accounts, new_entry_id, post, system_account_id
from api.services.transfers import require_account
from api.store import ledger as repository
from api.store.db import session_factory
from api.store.schema import (
    ApprovalRow,
    AuditEntry,
    EncumbranceRow,
    JournalEntryRow,
    ReferencePrice,
    TrustedCounterparty,
)
from pipelines.cli import main
from pipelines.settings import get_settings
from tests.auth_support import ENGINEER, OFFICER, OFFICER_2, TRADER, VERIFIER, enterprise, headers_for
from tests.conftest import SAMPLE_DIR, zone_settings
from tests.support import load_zone

CHP_PLANT = "914101022286058318"
CEMENT_PLANT = "91410100437387498P"
CA_CHP = compliance_account_id(CHP_PLANT)
CA_CEMENT = compliance_account_id(CEMENT_PLANT)
CHP = enterprise(CHP_PLANT)
ZHOU = headers_for("trader-zhou")
VINTAGE = "CEA-2025"
ISSUER = Actor(actor_id="test-issuer", role="officer")


class Ledger:
    """An API client over a fresh zone database, with the helpers the tests share."""

    def __init__(self, client: TestClient, sessions: sessionmaker[Session]) -> None:
        self.client = client
        self.sessions = sessions

    def call(self, method: str, path: str, headers: dict[str, str], *, key: str | None = None,
             json: Any = None) -> Any:
        all_headers = {**headers, "Idempotency-Key": key or uuid.uuid4().hex} if method != "GET" else headers
        return self.client.request(method, path, headers=all_headers, json=json)

    def issue(self, account_id: str, quantity: int, instrument: str = VINTAGE) -> None:
        """Units from the issuance account, as an allocation would post them."""
        with self.sessions() as session:
            ensure_system_accounts(session)
            require_account(session, account_id)
            post(session, entry=transfer_entry(entry_id=new_entry_id(), kind="issue",
                                               from_account=system_account_id(ISSUANCE), to_account=account_id,
                                               instrument=instrument, quantity=quantity), actor=ISSUER)
            session.commit()

    def balance(self, account_id: str, instrument: str = VINTAGE) -> int:
        with self.sessions() as session:
            return repository.balances_of(session, account_id=account_id).get(instrument, 0)

    def trust_now(self, account_id: str, counterparty_id: str, headers: dict[str, str]) -> None:
        """Add a counterparty through the API, then let its delay pass (moved into the past in the database)."""
        answer = self.call("POST", f"/v1/ledger/accounts/{account_id}/counterparties", headers,
                           json={"counterparty_id": counterparty_id})
        assert answer.status_code in (200, 201), answer.text
        with self.sessions() as session:
            session.execute(update(TrustedCounterparty).where(
                TrustedCounterparty.account_id == account_id, TrustedCounterparty.counterparty_id == counterparty_id)
                .values(effective_at=datetime.now(UTC) - timedelta(seconds=1)))
            session.commit()

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a refused request must leave as it was."""
        with self.sessions() as session:
            return (repository.stored_balances(session),
                    session.scalar(select(func.count()).select_from(JournalEntryRow)),
                    session.scalar(select(func.count()).select_from(EncumbranceRow)),
                    sorted(session.execute(select(ApprovalRow.approval_id, ApprovalRow.status)).all()),
                    session.scalar(select(func.count()).select_from(AuditEntry)))

    def approve(self, approval: dict[str, Any], headers: dict[str, str] = OFFICER_2) -> Any:
        return self.call("POST", f"/v1/approvals/{approval['approval_id']}/decision", headers,
                         json={"decision": "approve", "payload_digest": approval["payload_digest"]})


@pytest.fixture
def ledger(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """A zone database with the registry and three accounts; the CLI's settings (CARBON_*) point at it too."""
    settings = zone_settings(tmp_path, database_url=database_url)
    load_zone(settings, months=[])  # the registry only
    with TestClient(create_app(settings)) as client:
        ledger = Ledger(client, session_factory(settings))
        for account_id, kind, owner in (("TR-QIAN", "trader", "trader-qian"), ("TR-ZHOU", "trader", "trader-zhou"),
                                        ("LENDER-BANK", "lender", "bank-of-zhengzhou")):
            answer = ledger.call("POST", "/v1/ledger/accounts", OFFICER,
                                 json={"account_id": account_id, "kind": kind, "owner_id": owner})
            assert answer.status_code == 201, answer.text
        for name in [n for n in os.environ if n.upper().startswith("CARBON_")]:
            monkeypatch.delenv(name)
        for name, value in (("DATA_DIR", str(tmp_path)), ("SAMPLE_DIR", str(SAMPLE_DIR)),
                            ("DATABASE_URL", database_url)):
            monkeypatch.setenv(f"CARBON_{name}", value)
        get_settings.cache_clear()
        yield ledger
        get_settings.cache_clear()


def problem(answer: Any, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    code: str = answer.json()["code"]
    return code


def test_a_holder_transfers_only_to_a_counterparty_whose_addition_has_taken_effect(ledger: Ledger) -> None:
    ledger.issue(CA_CHP, 1000)
    added = ledger.call("POST", f"/v1/ledger/accounts/{CA_CHP}/counterparties", CHP,
                        json={"counterparty_id": "TR-QIAN"})
    assert added.status_code == 201 and added.json()["is_effective"] is False
    assert datetime.fromisoformat(added.json()["effective_at"]) > datetime.now(UTC) + timedelta(hours=23)
    body = {"from_account": CA_CHP, "to_account": "TR-QIAN", "instrument": VINTAGE, "quantity": 300}
    assert problem(ledger.call("POST", "/v1/ledger/transfers", CHP, json=body), 409) == "counterparty_not_trusted"

    ledger.trust_now(CA_CHP, "TR-QIAN", CHP)
    listed = ledger.call("GET", f"/v1/ledger/accounts/{CA_CHP}/counterparties", CHP).json()
    assert [(c["counterparty_id"], c["is_effective"]) for c in listed["items"]] == [("TR-QIAN", True)]
    moved = ledger.call("POST", "/v1/ledger/transfers", CHP, json=body)
    assert moved.status_code == 201, moved.text
    assert moved.json()["status"] == "posted" and moved.json()["entry"]["kind"] == "transfer"
    assert (ledger.balance(CA_CHP), ledger.balance("TR-QIAN")) == (700, 300)

    statement = ledger.call("GET", "/v1/ledger/accounts/TR-QIAN/entries", TRADER).json()
    assert [(i["kind"], i["change"]) for i in statement["items"]] == [("transfer", 300)]
    removed = ledger.call("DELETE", f"/v1/ledger/accounts/{CA_CHP}/counterparties/TR-QIAN", CHP)
    assert removed.status_code == 200, removed.text
    assert problem(ledger.call("POST", "/v1/ledger/transfers", CHP, json=body), 409) == "counterparty_not_trusted"
    again = ledger.call("DELETE", f"/v1/ledger/accounts/{CA_CHP}/counterparties/TR-QIAN", CHP)
    assert problem(again, 404) == "unknown_counterparty"


REFUSED_TRANSFERS: list[tuple[dict[str, Any], int, str]] = [
    ({"quantity": 2.5}, 422, "fractional_quantity"),
    ({"quantity": 2.0}, 422, "not_an_integer"),
    ({"quantity": -5}, 422, "negative_quantity"),
    ({"quantity": 0}, 422, "zero_quantity"),
    ({"quantity": 10**18}, 422, "quantity_too_large"),
    ({"instrument": "CEA-1990"}, 422, "unknown_vintage"),
    ({"instrument": "GOLD"}, 422, "unknown_instrument"),
    ({"to_account": "TR-NOBODY"}, 404, "unknown_account"),
    ({"to_account": "SYS-RETIREMENT"}, 422, "system_account"),
    ({"to_account": "TR-ZHOU"}, 409, "counterparty_not_trusted"),
    ({"quantity": 901}, 409, "units_encumbered"),
    ({"quantity": 5000}, 409, "insufficient_available"),
    ({"from_account": "TR-ZHOU"}, 403, "not_own_account"),
]


def test_every_refused_transfer_gets_its_code_and_changes_nothing(ledger: Ledger) -> None:
    ledger.issue(CA_CHP, 1000)
    ledger.issue("TR-ZHOU", 50)
    ledger.trust_now(CA_CHP, "TR-QIAN", CHP)
    frozen = ledger.call("POST", "/v1/ledger/freezes", OFFICER,
                         json={"account_id": CA_CHP, "instrument": VINTAGE, "quantity": 100, "reason": "court order"})
    assert frozen.status_code == 201, frozen.text
    before = ledger.snapshot()
    for change, status, code in REFUSED_TRANSFERS:
        body = {"from_account": CA_CHP, "to_account": "TR-QIAN", "instrument": VINTAGE, "quantity": 10, **change}
        assert problem(ledger.call("POST", "/v1/ledger/transfers", CHP, json=body), status) == code, change
        assert ledger.snapshot() == before, change
    assert ledger.call("POST", "/v1/ledger/transfers", CHP, json={
        "from_account": CA_CHP, "to_account": "TR-QIAN", "instrument": VINTAGE, "quantity": 900}).status_code == 201


def test_a_trader_cannot_move_someone_elses_units_nor_read_their_account(ledger: Ledger) -> None:
    ledger.issue(CA_CHP, 100)
    before = ledger.snapshot()
    body = {"from_account": CA_CHP, "to_account": "TR-QIAN", "instrument": VINTAGE, "quantity": 10}
    assert problem(ledger.call("POST", "/v1/ledger/transfers", TRADER, json=body), 403) == "not_own_account"
    pledge = {"account_id": CA_CHP, "instrument": VINTAGE, "quantity": 10, "lender_account_id": "LENDER-BANK"}
    assert problem(ledger.call("POST", "/v1/ledger/pledges", TRADER, json=pledge), 403) == "not_own_account"
    assert ledger.call("GET", f"/v1/ledger/accounts/{CA_CHP}", TRADER).status_code == 404
    assert ledger.snapshot() == before
    mine = ledger.call("GET", "/v1/ledger/accounts", TRADER).json()
    assert [a["account_id"] for a in mine["items"]] == ["TR-QIAN"]
    ours = ledger.call("GET", "/v1/ledger/accounts", CHP).json()
    assert [a["account_id"] for a in ours["items"]] == [CA_CHP]
    everything = ledger.call("GET", "/v1/ledger/accounts", VERIFIER).json()
    assert {"SYS-ISSUANCE", "TR-QIAN", "TR-ZHOU", "LENDER-BANK", CA_CHP} <= {a["account_id"]
                                                                             for a in everything["items"]}


def test_a_replayed_request_returns_the_first_answer_and_a_reused_key_is_refused(ledger: Ledger) -> None:
    ledger.issue("TR-QIAN", 100)
    ledger.trust_now("TR-QIAN", "TR-ZHOU", TRADER)
    body = {"from_account": "TR-QIAN", "to_account": "TR-ZHOU", "instrument": VINTAGE, "quantity": 10}
    first = ledger.call("POST", "/v1/ledger/transfers", TRADER, key="transfer-1", json=body)
    again = ledger.call("POST", "/v1/ledger/transfers", TRADER, key="transfer-1", json=body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert ledger.balance("TR-ZHOU") == 10
    before = ledger.snapshot()
    other = ledger.call("POST", "/v1/ledger/transfers", TRADER, key="transfer-1", json={**body, "quantity": 11})
    assert problem(other, 409) == "idempotency_key_reused"
    no_key = ledger.client.post("/v1/ledger/transfers", headers=TRADER, json=body)
    assert problem(no_key, 422) == "invalid_request"
    assert ledger.snapshot() == before


def test_officer_actions_happen_only_when_a_second_officer_approves_the_digest_they_reviewed(ledger: Ledger) -> None:
    proposed = ledger.call("POST", "/v1/ledger/deposits", OFFICER,
                           json={"account_id": "TR-QIAN", "quantity": 1_000_000, "memo": "prefunding"})
    assert proposed.status_code == 202, proposed.text
    approval = proposed.json()["approval"]
    assert approval["kind"] == "deposit" and approval["status"] == "pending"
    assert ledger.balance("TR-QIAN", "CNY") == 0
    before = ledger.snapshot()
    assert problem(ledger.approve(approval, OFFICER), 409) == "same_officer"
    assert problem(ledger.approve({**approval, "payload_digest": "0" * 64}), 409) == "payload_mismatch"
    assert problem(ledger.approve(approval, TRADER), 403) == "role_not_allowed"
    assert ledger.snapshot() == before
    listed = ledger.call("GET", "/v1/approvals?status=pending", OFFICER_2).json()
    assert [a["approval_id"] for a in listed["items"]] == [approval["approval_id"]]
    approved = ledger.approve(approval)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["decided_by"] == "officer-wang"
    assert ledger.balance("TR-QIAN", "CNY") == 1_000_000
    assert problem(ledger.approve(approval), 409) == "already_decided"

    ledger.issue(CA_CHP, 500)
    moved = ledger.call("POST", "/v1/ledger/transfers", OFFICER, json={
        "from_account": CA_CHP, "to_account": CA_CEMENT, "instrument": VINTAGE, "quantity": 200, "memo": "correction"})
    assert moved.status_code == 202 and moved.json()["status"] == "pending_approval"
    assert ledger.balance(CA_CEMENT) == 0
    assert ledger.approve(moved.json()["approval"]).status_code == 200
    assert (ledger.balance(CA_CHP), ledger.balance(CA_CEMENT)) == (300, 200)

    entry_id = ledger.call(
        "GET", f"/v1/approvals/{moved.json()['approval']['approval_id']}", OFFICER).json()["result"]["entry_id"]
    reversal = ledger.call("POST", "/v1/ledger/reversals", OFFICER_2, json={"entry_id": entry_id, "memo": "undo"})
    assert reversal.status_code == 202, reversal.text
    rejected = ledger.call("POST", f"/v1/approvals/{reversal.json()['approval']['approval_id']}/decision", OFFICER,
                           json={"decision": "reject", "payload_digest": reversal.json()["approval"]["payload_digest"]})
    assert rejected.json()["status"] == "rejected" and ledger.balance(CA_CEMENT) == 200
    reversal = ledger.call("POST", "/v1/ledger/reversals", OFFICER_2, json={"entry_id": entry_id})
    assert ledger.approve(reversal.json()["approval"], OFFICER).status_code == 200
    assert (ledger.balance(CA_CHP), ledger.balance(CA_CEMENT)) == (500, 0)
    assert problem(ledger.call("POST", "/v1/ledger/reversals", OFFICER, json={"entry_id": entry_id}),
                   409) == "already_reversed"
    assert problem(ledger.call("POST", "/v1/ledger/reversals", OFFICER, json={"entry_id": "nope"}),
                   404) == "unknown_entry"
    verified = ledger.call("GET", "/v1/ledger/verify", ENGINEER).json()
    assert verified["ok"] is True and verified["differences"] == []


def test_retired_units_never_move_again_not_even_by_a_reversal(ledger: Ledger) -> None:
    ledger.issue(CA_CHP, 100)
    with ledger.sessions() as session:
        entry = transfer_entry(entry_id=new_entry_id(), kind="surrender", from_account=CA_CHP,
                               to_account=system_account_id(RETIREMENT), instrument=VINTAGE, quantity=40)
        post(session, entry=entry, actor=ISSUER)
        session.commit()
    before = ledger.snapshot()
    answer = ledger.call("POST", "/v1/ledger/reversals", OFFICER, json={"entry_id": entry.entry_id})
    assert problem(answer, 409) == "retired_units_immutable"
    assert ledger.snapshot() == before


def test_frozen_and_pledged_units_stay_put_until_a_four_eyes_release(ledger: Ledger) -> None:
    ledger.issue(CA_CHP, 1000)
    ledger.trust_now(CA_CHP, "TR-QIAN", CHP)
    with ledger.sessions() as session:
        session.add_all([ReferencePrice(instrument=VINTAGE, day=day, price_fen=price, volume=1, source="test",
                                        recorded_by="officer-li", recorded_at=datetime.now(UTC))
                         for day, price in (("2026-01-05", 9000), ("2026-01-06", 9800))])
        session.commit()
    frozen = ledger.call("POST", "/v1/ledger/freezes", OFFICER,
                         json={"account_id": CA_CHP, "instrument": VINTAGE, "quantity": 300, "reason": "inquiry"})
    pledged = ledger.call("POST", "/v1/ledger/pledges", CHP, json={
        "account_id": CA_CHP, "instrument": VINTAGE, "quantity": 500, "lender_account_id": "LENDER-BANK",
        "reason": "loan 2026-17"})
    assert (frozen.status_code, pledged.status_code) == (201, 201), pledged.text
    assert pledged.json()["consent_by"] == CHP_PLANT
    view = ledger.call("GET", f"/v1/ledger/accounts/{CA_CHP}", CHP).json()
    assert view["holdings"] == [{"instrument": VINTAGE, "balance": 1000, "encumbered": 800, "frozen": 300,
                                 "pledged": 500, "available": 200, "price_fen": 9800, "price_day": "2026-01-06",
                                 "pledged_value_fen": 500 * 9800}]
    before = ledger.snapshot()
    too_much = {"account_id": CA_CHP, "instrument": VINTAGE, "quantity": 201, "lender_account_id": "LENDER-BANK"}
    assert problem(ledger.call("POST", "/v1/ledger/pledges", CHP, json=too_much), 409) == "insufficient_available"
    not_lender = {**too_much, "quantity": 1, "lender_account_id": "TR-QIAN"}
    assert problem(ledger.call("POST", "/v1/ledger/pledges", CHP, json=not_lender), 422) == "not_a_lender"
    body = {"from_account": CA_CHP, "to_account": "TR-QIAN", "instrument": VINTAGE, "quantity": 201}
    assert problem(ledger.call("POST", "/v1/ledger/transfers", CHP, json=body), 409) == "units_encumbered"
    assert ledger.snapshot() == before

    listed = ledger.call("GET", "/v1/ledger/encumbrances", CHP).json()
    assert sorted(e["kind"] for e in listed["items"]) == ["freeze", "pledge"]
    assert ledger.call("GET", "/v1/ledger/encumbrances", TRADER).json()["items"] == []
    release = ledger.call("POST", f"/v1/ledger/encumbrances/{frozen.json()['encumbrance_id']}/release", OFFICER,
                          json={"reason": "inquiry closed"})
    assert release.status_code == 202, release.text
    assert problem(ledger.call("POST", "/v1/ledger/transfers", CHP, json=body), 409) == "units_encumbered"
    assert ledger.approve(release.json()["approval"]).status_code == 200
    assert ledger.call("POST", "/v1/ledger/transfers", CHP, json=body).status_code == 201
    assert problem(ledger.call("POST", f"/v1/ledger/encumbrances/{frozen.json()['encumbrance_id']}/release",
                               OFFICER, json={"reason": "again"}), 409) == "already_released"
    assert ledger.call("GET", "/v1/ledger/verify", OFFICER).json()["ok"] is True


def carbon(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """Run ``carbon ARGS``: the exit status and the printed JSON."""
    status = main(args)
    return status, json.loads(capsys.readouterr().out)


def test_the_cli_acts_as_an_officer_through_the_same_services_and_rules(ledger: Ledger,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ledger.issue(CA_CHP, 100)
    status, accounts = carbon(["ledger", "accounts", "--kind", "trader"], capsys)
    assert status == 0 and [a["account_id"] for a in accounts["items"]] == ["TR-QIAN", "TR-ZHOU"]
    status, refused = carbon(["ledger", "freeze", CA_CHP, VINTAGE, "2.5", "--reason", "inquiry"], capsys)
    assert (status, refused["code"]) == (2, "fractional_quantity")
    assert carbon(["ledger", "freeze", CA_CHP, VINTAGE, "10", "--reason", "inquiry"], capsys)[0] == 0
    status, proposed = carbon(["ledger", "transfer", CA_CHP, "TR-QIAN", VINTAGE, "5", "--memo", "fix"], capsys)
    assert status == 0 and proposed["status"] == "pending_approval"
    approval = proposed["approval"]
    status, same = carbon(["approvals", "approve", approval["approval_id"], "--digest", approval["payload_digest"]],
                          capsys)
    assert (status, same["code"]) == (2, "same_officer")
    assert ledger.approve(approval).status_code == 200
    status, shown = carbon(["ledger", "show", CA_CHP], capsys)
    assert shown["holdings"][0] == {
        "instrument": VINTAGE, "balance": 95, "encumbered": 10, "frozen": 10, "pledged": 0, "available": 85,
        "price_fen": None, "price_day": None, "pledged_value_fen": None}
    status, report = carbon(["ledger", "verify"], capsys)
    assert status == 0 and report["ok"] is True
    status, missing = carbon(["approvals", "show", "nope"], capsys)
    assert (status, missing["code"]) == (2, "approval_not_found")

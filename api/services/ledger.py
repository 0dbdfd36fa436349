"""The carbon-rights ledger's core use cases: accounts, posting an entry, reading balances, verifying.

Every change of holdings goes through :func:`post`: it locks the balances the entry touches, asks
``accounting.ledger`` whether the entry may be posted (balanced, whole units, enough available, nothing
moving out of retirement...), writes the entry, its postings, the new balances and an audit record. It
does not commit: a use case (a transfer, an auction settlement, an allocation) posts one or several
entries and commits once, so either all of them are in the ledger or none.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from accounting.ledger import (
    AUCTION,
    BANK,
    CANCELLATION,
    COMPLIANCE,
    FEES,
    ISSUANCE,
    LENDER,
    RETIREMENT,
    RISK_RESERVE,
    TRADER,
    Account,
    JournalEntry,
    LedgerError,
    derive_balances,
    instrument_totals,
    parse_instrument,
)
from accounting.review import Actor
from api.store import audit
from api.store import ledger as repository
from api.store.ledger import account_of
from api.store.schema import Enterprise, JournalEntryRow, LedgerAccount, LedgerBalance

#: The system accounts, one of each kind; opened on first use.
SYSTEM_ACCOUNTS: dict[str, tuple[str, str]] = {
    ISSUANCE: ("SYS-ISSUANCE", "Issuance (allowances, offsets and discharge rights come from here)"),
    AUCTION: ("SYS-AUCTION", "Auction (allowances offered for paid allocation)"),
    FEES: ("SYS-FEES", "Fee revenue (auction proceeds and trading fees)"),
    RETIREMENT: ("SYS-RETIREMENT", "Retirement (surrendered units; they never move again)"),
    CANCELLATION: ("SYS-CANCELLATION", "Cancellation (deducted or withdrawn units; they never move again)"),
    RISK_RESERVE: ("SYS-RISK-RESERVE", "Risk reserve"),
    BANK: ("SYS-BANK", "Settlement bank (cash enters and leaves the zone here)"),
}
SYSTEM_OWNER = "zone"


def system_account_id(kind: str) -> str:
    return SYSTEM_ACCOUNTS[kind][0]


def compliance_account_id(enterprise_id: str) -> str:
    """The compliance account of an enterprise of the registry."""
    return f"CA-{enterprise_id}"


def new_entry_id() -> str:
    """A journal entry id no other entry has: this process's random prefix and a counter (32 hex digits).

    Cheaper than a random id per entry (a batch of exchange commands makes dozens); a forked process draws
    a prefix of its own.
    """
    return f"{_ENTRY_PREFIX}{next(_ENTRY_COUNTER):016x}"


def _draw_entry_prefix() -> None:
    global _ENTRY_PREFIX, _ENTRY_COUNTER  # noqa: PLW0603 - per process, redrawn in a forked child
    _ENTRY_PREFIX, _ENTRY_COUNTER = secrets.token_hex(8), itertools.count()


_ENTRY_PREFIX, _ENTRY_COUNTER = "", itertools.count()
_draw_entry_prefix()
os.register_at_fork(after_in_child=_draw_entry_prefix)


def acting_for(actor: Actor) -> frozenset[str]:
    """The account owners a user speaks for: its enterprises and its trading accounts."""
    return actor.enterprise_ids | actor.account_ids


def owns_account(actor: Actor, account_id: str) -> bool:
    """True when ``account_id`` is one of the user's trading accounts or its enterprises' compliance accounts."""
    return account_id in actor.account_ids or any(account_id == compliance_account_id(e)
                                                  for e in actor.enterprise_ids)


def _insert_missing_accounts(session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(LedgerAccount).values(rows).on_conflict_do_nothing())


def ensure_system_accounts(session: Session) -> None:
    """Open the system accounts that are not open yet (idempotent, safe under concurrency)."""
    now = datetime.now(UTC)
    _insert_missing_accounts(session, [
        {"account_id": account_id, "kind": kind, "owner_id": None, "name": name, "created_at": now,
         "created_by": "system"} for kind, (account_id, name) in SYSTEM_ACCOUNTS.items()])


def ensure_compliance_accounts(session: Session, enterprise_ids: Iterable[str]) -> list[str]:
    """The compliance accounts of these registry enterprises, opened if needed; ``unknown_enterprise`` otherwise."""
    wanted = sorted(set(enterprise_ids))
    if not wanted:
        return []
    known = {e.enterprise_id: e.name for e in session.scalars(select(Enterprise).where(
        Enterprise.enterprise_id.in_(wanted)))}
    if missing := [e for e in wanted if e not in known]:
        raise LedgerError(f"not in the registry: {', '.join(missing)}", code="unknown_enterprise")
    now = datetime.now(UTC)
    _insert_missing_accounts(session, [
        {"account_id": compliance_account_id(e), "kind": COMPLIANCE, "owner_id": e, "name": known[e],
         "created_at": now, "created_by": "system"} for e in wanted])
    return [compliance_account_id(e) for e in wanted]


def open_account(session: Session, *, actor: Actor, account_id: str, kind: str, owner_id: str, name: str,
                 commit: bool = True) -> dict[str, Any]:
    """Open a trader or lender account (compliance accounts open with the registry, system ones by themselves)."""
    if kind not in (TRADER, LENDER):
        raise LedgerError(f"an officer opens trader and lender accounts, not {kind}", code="unknown_account_kind")
    Account(account_id=account_id, kind=kind, owner_id=owner_id)  # the rules' own checks
    if not account_id.isascii() or not account_id.replace("-", "").replace("_", "").isalnum() or len(account_id) > 64:
        raise LedgerError("an account id is 1-64 letters, digits, '-' or '_'", code="invalid_account_id")
    if repository.get_account(session, account_id) is not None:
        raise LedgerError(f"account '{account_id}' already exists", code="duplicate_account")
    row = LedgerAccount(account_id=account_id, kind=kind, owner_id=owner_id, name=name.strip() or account_id,
                        created_at=datetime.now(UTC), created_by=actor.actor_id)
    repository.add_account(session, row)
    audit.append(session, actor=actor, action="ledger.open_account", target=f"account/{account_id}",
                 detail={"kind": kind, "owner_id": owner_id})
    if commit:  # False when the caller commits (with its Idempotency-Key record)
        session.commit()
    return describe_account(row)


def describe_account(row: LedgerAccount) -> dict[str, Any]:
    return {"account_id": row.account_id, "kind": row.kind, "owner_id": row.owner_id, "name": row.name}


def post(session: Session, *, entry: JournalEntry, actor: Actor, reference: str | None = None,
         audited: bool = True) -> JournalEntryRow:
    """Check and write one entry (without committing); LedgerError, with nothing written, when refused.

    ``audited=False`` leaves out the audit-log record, for a caller whose own append-only record names the
    entry (the exchange's command log: every command with its actor, time and entry id); the entry itself
    still names its actor and reference.
    """
    keys = [(p.account_id, p.instrument) for p in entry.postings]
    state = repository.lock_state(session, keys=keys, reverses=entry.reverses)
    after = state.post(entry)
    row = repository.append(session, entry=entry, after=after, actor_id=actor.actor_id, role=actor.role,
                            reference=reference)
    if audited:
        audit.append(session, actor=actor, action=f"ledger.{entry.kind}", target=f"entry/{entry.entry_id}",
                     after=describe_entry(entry), detail={"reference": reference, "memo": entry.memo})
    return row


def describe_entry(entry: JournalEntry) -> dict[str, Any]:
    return {"entry_id": entry.entry_id, "kind": entry.kind, "memo": entry.memo, "reverses": entry.reverses,
            "postings": [{"account_id": p.account_id, "instrument": p.instrument, "side": p.side,
                          "quantity": p.quantity} for p in entry.postings]}


def account_view(session: Session, *, account_id: str) -> dict[str, Any]:
    """An account with its holdings: balance, encumbered (frozen or pledged) and available, per instrument."""
    row = repository.get_account(session, account_id)
    if row is None:
        raise LedgerError(f"unknown account '{account_id}'", code="unknown_account")
    balances = repository.balances_of(session, account_id=account_id)
    encumbered = repository.encumbered_of(session, account_id=account_id)
    holdings = [{"instrument": i, "balance": balances.get(i, 0), "encumbered": encumbered.get(i, 0),
                 "available": balances.get(i, 0) - encumbered.get(i, 0)}
                for i in sorted(set(balances) | set(encumbered))]
    return {**describe_account(row), "holdings": holdings}


def verify(session: Session) -> dict[str, Any]:
    """Check the ledger's invariants.

    Every balance rebuilt from the journal equals the stored one; every instrument sums to zero over all
    accounts (issued = held + reserved + surrendered + cancelled; cash in = cash out + balances + fees);
    no account holds less than its kind allows (available = balance - frozen - pledged is never negative
    outside the issuance account and the bank).
    """
    rebuilt = derive_balances(repository.journal(session))
    stored = repository.stored_balances(session)
    keys = sorted(set(rebuilt) | set(stored))
    differences = [{"account_id": a, "instrument": i, "stored": stored.get((a, i), 0),
                    "journal": rebuilt.get((a, i), 0)}
                   for a, i in keys if stored.get((a, i), 0) != rebuilt.get((a, i), 0)]
    totals = {i: t for i, t in instrument_totals(rebuilt).items() if t}
    accounts = {row.account_id: account_of(row) for row in session.scalars(select(LedgerAccount))}
    encumbered = repository.encumbered_totals(session)
    negative = []
    for account_id, instrument in sorted(set(rebuilt) | set(encumbered)):
        account = accounts.get(account_id)
        if account is not None and parse_instrument(instrument).kind in account.may_go_negative:
            continue
        available = rebuilt.get((account_id, instrument), 0) - encumbered.get((account_id, instrument), 0)
        if available < 0:
            negative.append({"account_id": account_id, "instrument": instrument, "available": available})
    return {"ok": not (differences or totals or negative), "balances_checked": len(keys),
            "differences": differences, "unbalanced_instruments": totals, "negative_available": negative}


def rebuild_balances(session: Session, *, actor: Actor) -> dict[str, Any]:
    """Rewrite the stored balances from the journal (the journal is the truth, the balances its cache)."""
    stored = {(r.account_id, r.instrument): r for r in session.scalars(
        select(LedgerBalance).order_by(LedgerBalance.account_id, LedgerBalance.instrument).with_for_update())}
    rebuilt = derive_balances(repository.journal(session))
    changed = []
    for account_id, instrument in sorted(set(stored) | set(rebuilt)):
        value = rebuilt.get((account_id, instrument), 0)
        row = stored.get((account_id, instrument))
        before = row.quantity if row is not None else 0
        if before == value:
            continue
        if row is None:
            session.add(LedgerBalance(account_id=account_id, instrument=instrument, quantity=value))
        else:
            row.quantity = value
        changed.append({"account_id": account_id, "instrument": instrument, "stored": before, "journal": value})
    audit.append(session, actor=actor, action="ledger.rebuild_balances", target="ledger/balances",
                 detail={"changed": changed})
    session.commit()
    return {"changed": changed, **verify(session)}

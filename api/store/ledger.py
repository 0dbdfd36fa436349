"""Repository of the carbon-rights ledger: accounts, the journal, balances and encumbrances.

:func:`lock_state` is how every change starts: it locks the balance rows the change touches (in one
sorted order, so two transactions never wait on each other in a circle) and loads the part of the
ledger the rules of ``accounting.ledger`` need to judge it. :func:`append` then writes the entry, its
postings and the new balances. On SQLite the whole transaction already holds the write lock
(``BEGIN IMMEDIATE``); on PostgreSQL the row locks serialize changes to the same balances.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from accounting.ledger import Account, Encumbrance, JournalEntry, LedgerState, Posting
from api.store.schema import EncumbranceRow, JournalEntryRow, LedgerAccount, LedgerBalance, PostingRow

Key = tuple[str, str]  # (account id, instrument)


def account_of(row: LedgerAccount) -> Account:
    return Account(account_id=row.account_id, kind=row.kind, owner_id=row.owner_id)


def encumbrance_of(row: EncumbranceRow) -> Encumbrance:
    return Encumbrance(encumbrance_id=row.encumbrance_id, kind=row.kind, account_id=row.account_id,
                       instrument=row.instrument, quantity=row.quantity, imposed_by=row.imposed_by,
                       lender_account_id=row.lender_account_id, consent_by=row.consent_by)


def entry_of(row: JournalEntryRow, postings: Iterable[PostingRow]) -> JournalEntry:
    return JournalEntry(entry_id=row.entry_id, kind=row.kind, memo=row.memo, reverses=row.reverses,
                        postings=tuple(Posting(account_id=p.account_id, instrument=p.instrument, side=p.side,
                                               quantity=p.quantity) for p in postings))


def get_account(session: Session, account_id: str) -> LedgerAccount | None:
    return session.get(LedgerAccount, account_id)


def add_account(session: Session, row: LedgerAccount) -> None:
    session.add(row)
    session.flush()


def _ensure_balance_rows(session: Session, keys: list[Key]) -> None:
    """Create the missing (account, instrument) balance rows at zero; concurrent creators do not conflict."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = [{"account_id": a, "instrument": i, "quantity": 0} for a, i in keys]
    session.execute(insert(LedgerBalance).values(values).on_conflict_do_nothing())


def _locked_balances(session: Session, keys: list[Key]) -> tuple[dict[Key, int], dict[str, Encumbrance]]:
    """The balances of ``keys``, their rows locked in key order until commit (created at zero when missing),
    and the encumbrances on them not yet released, in one statement.

    The rows are selected as every account of ``keys`` in every instrument of ``keys`` (two short lists
    instead of a list of pairs, much cheaper to send): a row of that product outside ``keys`` is locked too.
    """
    account_ids, instruments = sorted({a for a, _ in keys}), sorted({i for _, i in keys})
    wanted = set(keys)

    def read() -> tuple[dict[Key, int], dict[str, Encumbrance]]:
        balances: dict[Key, int] = {}
        encumbrances: dict[str, Encumbrance] = {}
        for a, i, q, encumbrance in session.execute(_LOCKED_BALANCES, {"account_ids": account_ids,
                                                                         "instruments": instruments}):
            if (a, i) in wanted:
                balances[(a, i)] = q
                if encumbrance is not None:
                    encumbrances[encumbrance.encumbrance_id] = encumbrance_of(encumbrance)
        return balances, encumbrances

    found, encumbrances = read()
    if len(found) < len(keys):  # a balance seen for the first time: create its row, then lock them all
        _ensure_balance_rows(session, [k for k in keys if k not in found])
        found, encumbrances = read()
    return found, encumbrances


#: Built once: every change of balances runs it.
_LOCKED_BALANCES = (select(LedgerBalance.account_id, LedgerBalance.instrument, LedgerBalance.quantity, EncumbranceRow)
                    .outerjoin(EncumbranceRow, and_(EncumbranceRow.account_id == LedgerBalance.account_id,
                                                    EncumbranceRow.instrument == LedgerBalance.instrument,
                                                    EncumbranceRow.released_at.is_(None)))
                    .where(LedgerBalance.account_id.in_(bindparam("account_ids", expanding=True)),
                           LedgerBalance.instrument.in_(bindparam("instruments", expanding=True)))
                    .order_by(LedgerBalance.account_id, LedgerBalance.instrument)
                    .with_for_update(of=LedgerBalance))


def lock_state(session: Session, *, keys: Iterable[Key], reverses: str | None = None,
               known_accounts: Mapping[str, Account] | None = None) -> LedgerState:
    """The ledger as far as a change touching ``keys`` needs it, with those balances locked until commit.

    Unknown accounts are not opened here: they are absent from the state and the rules refuse them.
    ``known_accounts`` are accounts the caller read before (an account's kind and owner never change):
    only the others are read.
    """
    ordered = sorted(set(keys))
    account_ids = sorted({a for a, _ in ordered})
    known_accounts = known_accounts or {}
    accounts = {a: known_accounts[a] for a in account_ids if a in known_accounts}
    if unread := [a for a in account_ids if a not in accounts]:
        accounts.update((a, Account(account_id=a, kind=kind, owner_id=owner)) for a, kind, owner in session.execute(
            select(LedgerAccount.account_id, LedgerAccount.kind, LedgerAccount.owner_id)
            .where(LedgerAccount.account_id.in_(unread))))
    known = [k for k in ordered if k[0] in accounts]
    locked, encumbrances = _locked_balances(session, known) if known else ({}, {})
    balances = {k: q for k, q in locked.items() if q}
    for row in encumbrances.values():  # a pledge's lender must be known to the rules too
        if row.lender_account_id and row.lender_account_id not in accounts:
            lender = get_account(session, row.lender_account_id)
            if lender is not None:
                accounts[lender.account_id] = account_of(lender)
    journal: tuple[JournalEntry, ...] = ()
    reversed_ids: frozenset[str] = frozenset()
    if reverses is not None:
        original = session.scalar(select(JournalEntryRow).where(JournalEntryRow.entry_id == reverses))
        if original is not None:
            journal = (entry_of(original, postings_of(session, reverses)),)
            if session.scalar(select(JournalEntryRow.entry_id).where(JournalEntryRow.reverses == reverses)):
                reversed_ids = frozenset({reverses})
    return LedgerState(accounts=MappingProxyType(accounts), journal=journal, balances=MappingProxyType(balances),
                       encumbrances=MappingProxyType(encumbrances), reversed_ids=reversed_ids)


def postings_of(session: Session, entry_id: str) -> list[PostingRow]:
    return list(session.scalars(select(PostingRow).where(PostingRow.entry_id == entry_id).order_by(PostingRow.id)))


def append(session: Session, *, entry: JournalEntry, after: LedgerState, actor_id: str, role: str,
           reference: str | None) -> JournalEntryRow:
    """Write ``entry`` and the balances of ``after`` (the state ``lock_state(...).post(entry)`` returned)."""
    row = JournalEntryRow(entry_id=entry.entry_id, kind=entry.kind, memo=entry.memo, reverses=entry.reverses,
                          reference=reference, actor_id=actor_id, role=role, created_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    session.add_all(PostingRow(entry_id=entry.entry_id, account_id=p.account_id, instrument=p.instrument,
                               side=p.side, quantity=p.quantity) for p in entry.postings)
    for account_id, instrument in entry.changes():
        balance = session.get(LedgerBalance, (account_id, instrument))
        assert balance is not None  # created and locked by lock_state  # noqa: S101
        balance.quantity = after.balance(account_id=account_id, instrument=instrument)
    session.flush()
    return row


def balances_of(session: Session, *, account_id: str) -> dict[str, int]:
    rows = session.scalars(select(LedgerBalance).where(LedgerBalance.account_id == account_id,
                                                       LedgerBalance.quantity != 0))
    return {r.instrument: r.quantity for r in rows}


def encumbered_of(session: Session, *, account_id: str) -> dict[str, int]:
    rows = session.execute(select(EncumbranceRow.instrument, func.sum(EncumbranceRow.quantity))
                           .where(EncumbranceRow.account_id == account_id, EncumbranceRow.released_at.is_(None))
                           .group_by(EncumbranceRow.instrument))
    return {instrument: int(total) for instrument, total in rows}


def encumbered_totals(session: Session) -> dict[Key, int]:
    """Frozen and pledged units in force, by (account, instrument)."""
    rows = session.execute(select(EncumbranceRow.account_id, EncumbranceRow.instrument,
                                  func.sum(EncumbranceRow.quantity))
                           .where(EncumbranceRow.released_at.is_(None))
                           .group_by(EncumbranceRow.account_id, EncumbranceRow.instrument))
    return {(account_id, instrument): int(total) for account_id, instrument, total in rows}


def journal(session: Session, *, batch: int = 1000) -> Iterable[JournalEntry]:
    """The whole journal in order, streamed."""
    last = 0
    while True:
        rows = list(session.scalars(select(JournalEntryRow).where(JournalEntryRow.seq > last)
                                    .order_by(JournalEntryRow.seq).limit(batch)))
        if not rows:
            return
        postings: dict[str, list[PostingRow]] = {r.entry_id: [] for r in rows}
        for posting in session.scalars(select(PostingRow).where(PostingRow.entry_id.in_(list(postings)))
                                       .order_by(PostingRow.id)):
            postings[posting.entry_id].append(posting)
        for row in rows:
            yield entry_of(row, postings[row.entry_id])
        last = rows[-1].seq


def stored_balances(session: Session) -> dict[Key, int]:
    return {(r.account_id, r.instrument): r.quantity for r in session.scalars(
        select(LedgerBalance).where(LedgerBalance.quantity != 0))}

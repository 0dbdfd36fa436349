"""Ledger use cases around accounts and movements: listing and opening accounts, statements, trusted
counterparties, transfers, deposits of simulated cash and reversals.

Who may move what:

* a holder (an enterprise user, a trader) moves units only out of its own accounts, and only to an
  account on that account's trusted-counterparty list whose addition has taken effect: an addition
  takes effect :data:`COUNTERPARTY_DELAY` after it is made (a stolen credential cannot add an account
  and empty the holdings into it at once); a removal takes effect immediately;
* an officer's transfer, a deposit (cash from the settlement bank ``SYS-BANK``) and a reversal are
  not carried out when asked: they are proposed (four eyes, ``api.services.approvals``) and happen
  when a second officer approves them, checked again by the ledger's rules at that moment. An
  officer's transfer is an administrative correction and needs no trusted counterparty: the second
  officer is the safeguard.

Every function writes without committing when it is a change (the router commits it together with the
``Idempotency-Key`` record through ``run_once``); reads commit only the compliance accounts they open
on demand. Compliance accounts (``CA-<enterprise id>``) of registry enterprises exist implicitly: they
are opened the first time anything names them.

The counterparty delay is a module constant, not a setting: a delay that an operator could set to zero
would defeat the rule. Tests pass ``delay=`` to
:func:`add_counterparty` (or ``now=`` to :func:`transfer`) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accounting.ledger import (
    BANK,
    CNY,
    FREEZE,
    HOLDER_KINDS,
    PLEDGE,
    LedgerError,
    check_quantity,
    parse_instrument,
    pledge_value_fen,
    reversing_entry,
    transfer_entry,
)
from accounting.review import Actor
from api.services import approvals, prices
from api.services.ledger import (
    account_view,
    compliance_account_id,
    describe_account,
    describe_entry,
    ensure_compliance_accounts,
    ensure_system_accounts,
    new_entry_id,
    open_account,
    owns_account,
    post,
    system_account_id,
)
from api.store import audit
from api.store import ledger as repository
from api.store.schema import (
    EncumbranceRow,
    Enterprise,
    JournalEntryRow,
    LedgerAccount,
    PostingRow,
    TrustedCounterparty,
)

#: How long after its addition a trusted counterparty may receive transfers (removals are immediate).
COUNTERPARTY_DELAY = timedelta(hours=24)
#: The largest quantity one request may move: far above any real holding, far below the database's 2^63.
MAX_QUANTITY = 10**15
HOLDER_ROLES = frozenset({"enterprise", "trader"})
POSTED = "posted"
PENDING_APPROVAL = "pending_approval"




# --- accounts ---------------------------------------------------------------------------------------------


def open_if_compliance(session: Session, account_id: str) -> None:
    """Open ``CA-<enterprise id>`` when the enterprise is in the registry (compliance accounts exist implicitly)."""
    prefix = compliance_account_id("")
    if account_id.startswith(prefix) and repository.get_account(session, account_id) is None:
        enterprise_id = account_id.removeprefix(prefix)
        if session.get(Enterprise, enterprise_id) is not None:
            ensure_compliance_accounts(session, [enterprise_id])


def require_account(session: Session, account_id: str) -> LedgerAccount:
    """The account (a compliance account is opened on demand); ``unknown_account`` otherwise."""
    open_if_compliance(session, account_id)
    row = repository.get_account(session, account_id)
    if row is None:
        raise LedgerError(f"unknown account '{account_id}'", code="unknown_account")
    return row


def check_holder_account(row: LedgerAccount) -> None:
    """``system_account`` for the zone's system accounts: units leave or enter them only by their own use cases
    (allocation, auctions, surrender, deposits), never by a transfer."""
    if row.kind not in HOLDER_KINDS:
        raise LedgerError(f"'{row.account_id}' is a system account ({row.kind}); transfers are between enterprise,"
                          " trader and lender accounts", code="system_account")


def check_amount(*, instrument: str, quantity: object) -> int:
    """``quantity`` of ``instrument`` as a whole positive int (the rules' codes), at most :data:`MAX_QUANTITY`."""
    unit = parse_instrument(instrument).unit
    amount = check_quantity(quantity, unit=unit)
    if amount > MAX_QUANTITY:
        raise LedgerError(f"quantity {amount} is above the limit of {MAX_QUANTITY} {unit}", code="quantity_too_large")
    return amount


def own_account_ids(session: Session, actor: Actor) -> list[str]:
    """A holder's accounts: its trading accounts and its registry enterprises' compliance accounts (opened)."""
    registered = list(session.scalars(select(Enterprise.enterprise_id).where(
        Enterprise.enterprise_id.in_(sorted(actor.enterprise_ids))))) if actor.enterprise_ids else []
    return sorted(set(ensure_compliance_accounts(session, registered)) | actor.account_ids)


def list_accounts(session: Session, *, actor: Actor, kind: str | None = None, limit: int = 100,
                  offset: int = 0) -> dict[str, Any]:
    """Every account (officers, verifiers) or the user's own (enterprise, trader users), by id."""
    statement = select(LedgerAccount)
    if actor.role in HOLDER_ROLES:
        statement = statement.where(LedgerAccount.account_id.in_(own_account_ids(session, actor)))
    else:
        ensure_system_accounts(session)
    if kind is not None:
        statement = statement.where(LedgerAccount.kind == kind)
    session.commit()  # the accounts opened on demand
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(statement.order_by(LedgerAccount.account_id).limit(limit).offset(offset))
    return {"total": total, "items": [describe_account(r) for r in rows]}


def open_holder_account(session: Session, *, actor: Actor, account_id: str, kind: str, owner_id: str,
                        name: str) -> tuple[int, dict[str, Any]]:
    """Open a trader or lender account (officer); written, not committed."""
    return 201, open_account(session, actor=actor, account_id=account_id, kind=kind, owner_id=owner_id, name=name,
                             commit=False)


def _encumbered_by_kind(session: Session, account_id: str) -> dict[tuple[str, str], int]:
    rows = session.execute(select(EncumbranceRow.instrument, EncumbranceRow.kind, func.sum(EncumbranceRow.quantity))
                           .where(EncumbranceRow.account_id == account_id, EncumbranceRow.released_at.is_(None))
                           .group_by(EncumbranceRow.instrument, EncumbranceRow.kind))
    return {(instrument, kind): int(total) for instrument, kind, total in rows}


def account_detail(session: Session, *, account_id: str) -> dict[str, Any]:
    """An account's holdings per instrument: balance, frozen, pledged, available, and the pledge's value.

    The pledged units are marked to market at the latest reference price of the instrument
    (``pledged_value_fen`` = pledged × price; null when the instrument has no price yet).
    """
    require_account(session, account_id)
    session.commit()
    view = account_view(session, account_id=account_id)
    by_kind = _encumbered_by_kind(session, account_id)
    for holding in view["holdings"]:
        instrument = holding["instrument"]
        holding["frozen"] = by_kind.get((instrument, FREEZE), 0)
        holding["pledged"] = by_kind.get((instrument, PLEDGE), 0)
        price = prices.latest_price(session, instrument)
        holding["price_fen"] = price.price_fen if price else None
        holding["price_day"] = price.day if price else None
        holding["pledged_value_fen"] = (pledge_value_fen(quantity=holding["pledged"], price_fen=price.price_fen)
                                        if price else None)
    return view


def account_entries(session: Session, *, account_id: str, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """The account's statement: its postings, newest first, with the entry each belongs to."""
    require_account(session, account_id)
    session.commit()
    statement = (select(PostingRow, JournalEntryRow).join(JournalEntryRow, PostingRow.entry_id
                                                          == JournalEntryRow.entry_id)
                 .where(PostingRow.account_id == account_id))
    total = session.scalar(select(func.count()).select_from(PostingRow)
                           .where(PostingRow.account_id == account_id)) or 0
    rows = session.execute(statement.order_by(JournalEntryRow.seq.desc(), PostingRow.id.desc())
                           .limit(limit).offset(offset)).all()
    items = [{"seq": entry.seq, "entry_id": entry.entry_id, "kind": entry.kind, "memo": entry.memo,
              "reverses": entry.reverses, "reference": entry.reference, "actor_id": entry.actor_id,
              "created_at": entry.created_at, "instrument": posting.instrument, "side": posting.side,
              "quantity": posting.quantity,
              "change": posting.quantity if posting.side == "credit" else -posting.quantity}
             for posting, entry in rows]
    return {"account_id": account_id, "total": total, "items": items}


# --- trusted counterparties -------------------------------------------------------------------------------


def describe_counterparty(row: TrustedCounterparty, *, now: datetime | None = None) -> dict[str, Any]:
    at = now or datetime.now(UTC)
    effective_at = row.effective_at
    return {"account_id": row.account_id, "counterparty_id": row.counterparty_id, "added_by": row.added_by,
            "added_at": row.added_at, "effective_at": effective_at,
            "is_effective": row.removed_at is None and effective_at <= at}


def add_counterparty(session: Session, *, actor: Actor, account_id: str, counterparty_id: str,
                     delay: timedelta = COUNTERPARTY_DELAY) -> tuple[int, dict[str, Any]]:
    """Trust ``counterparty_id`` as a recipient of ``account_id``'s transfers from now + ``delay``.

    Adding one already on the list changes nothing (its first ``effective_at`` stays). Written, not committed.
    """
    require_account(session, account_id)
    check_holder_account(require_account(session, counterparty_id))
    if counterparty_id == account_id:
        raise LedgerError("an account is not its own counterparty", code="same_account")
    row = session.get(TrustedCounterparty, (account_id, counterparty_id))
    if row is not None and row.removed_at is None:
        return 200, describe_counterparty(row)
    now = datetime.now(UTC)
    if row is None:
        row = TrustedCounterparty(account_id=account_id, counterparty_id=counterparty_id)
        session.add(row)
    row.added_by, row.added_at, row.effective_at, row.removed_at = actor.actor_id, now, now + delay, None
    session.flush()
    audit.append(session, actor=actor, action="ledger.counterparty_added", target=f"account/{account_id}",
                 detail={"counterparty_id": counterparty_id, "effective_at": (now + delay).isoformat()})
    return 201, describe_counterparty(row, now=now)


def list_counterparties(session: Session, *, account_id: str) -> dict[str, Any]:
    """The account's trusted counterparties (removed ones are not listed), with whether each is effective yet."""
    require_account(session, account_id)
    session.commit()
    rows = session.scalars(select(TrustedCounterparty).where(TrustedCounterparty.account_id == account_id,
                                                             TrustedCounterparty.removed_at.is_(None))
                           .order_by(TrustedCounterparty.counterparty_id))
    return {"account_id": account_id, "items": [describe_counterparty(r) for r in rows]}


def remove_counterparty(session: Session, *, actor: Actor, account_id: str, counterparty_id: str
                        ) -> tuple[int, dict[str, Any]]:
    """Remove a trusted counterparty at once; ``unknown_counterparty`` when it is not on the list."""
    row = session.get(TrustedCounterparty, (account_id, counterparty_id))
    if row is None or row.removed_at is not None:
        raise LedgerError(f"'{counterparty_id}' is not a trusted counterparty of '{account_id}'",
                          code="unknown_counterparty")
    row.removed_at = datetime.now(UTC)
    session.flush()
    audit.append(session, actor=actor, action="ledger.counterparty_removed", target=f"account/{account_id}",
                 detail={"counterparty_id": counterparty_id})
    return 200, {**describe_counterparty(row), "removed_at": row.removed_at}


def check_trusted(session: Session, *, account_id: str, counterparty_id: str, now: datetime) -> None:
    """``counterparty_not_trusted`` unless ``counterparty_id`` is an effective trusted counterparty of the account."""
    row = session.get(TrustedCounterparty, (account_id, counterparty_id))
    if row is None or row.removed_at is not None:
        raise LedgerError(f"'{counterparty_id}' is not a trusted counterparty of '{account_id}'",
                          code="counterparty_not_trusted")
    if row.effective_at > now:
        raise LedgerError(f"'{counterparty_id}' becomes a trusted counterparty of '{account_id}' at "
                          f"{row.effective_at.isoformat()}", code="counterparty_not_trusted")


# --- transfers, deposits, reversals -----------------------------------------------------------------------


def _posted(row: JournalEntryRow, entry: dict[str, Any]) -> dict[str, Any]:
    return {"status": POSTED, "entry": {**entry, "seq": row.seq, "reference": row.reference,
                                        "created_at": row.created_at}, "approval": None}


def _pending(approval: dict[str, Any]) -> dict[str, Any]:
    return {"status": PENDING_APPROVAL, "entry": None, "approval": approval}


def _dry_run(session: Session, entry: Any) -> None:
    """Refuse now what the rules would refuse now (the executor checks again when approved)."""
    keys = [(p.account_id, p.instrument) for p in entry.postings]
    repository.lock_state(session, keys=keys, reverses=entry.reverses).post(entry)


def transfer(session: Session, *, actor: Actor, from_account: str, to_account: str, instrument: str,
             quantity: object, memo: str = "", now: datetime | None = None) -> tuple[int, dict[str, Any]]:
    """Move units: a holder's transfer is posted (201); an officer's is proposed for a second officer (202).

    Refusals (nothing written): ``not_own_account`` (403), ``unknown_account`` (404),
    ``counterparty_not_trusted``, ``insufficient_available``, ``units_encumbered`` (409), and the
    rules' 422s (``fractional_quantity``, ``not_an_integer``, ``negative_quantity``, ``unknown_vintage``...).
    """
    amount = check_amount(instrument=instrument, quantity=quantity)
    if actor.role in HOLDER_ROLES and not owns_account(actor, from_account):
        raise LedgerError(f"account '{from_account}' does not belong to {actor.actor_id}", code="not_own_account")
    for account in (require_account(session, from_account), require_account(session, to_account)):
        check_holder_account(account)
    entry = transfer_entry(entry_id=new_entry_id(), kind="transfer", from_account=from_account, to_account=to_account,
                           instrument=instrument, quantity=amount, memo=memo)
    if actor.role == "officer":
        _dry_run(session, entry)
        payload = {"from_account": from_account, "to_account": to_account, "instrument": instrument,
                   "quantity": amount, "memo": memo}
        return 202, _pending(approvals.propose(session, kind="officer_transfer", payload=payload, actor=actor,
                                               commit=False))
    check_trusted(session, account_id=from_account, counterparty_id=to_account, now=now or datetime.now(UTC))
    row = post(session, entry=entry, actor=actor)
    return 201, _posted(row, describe_entry(entry))


@approvals.executor("officer_transfer")
def _execute_officer_transfer(session: Session, payload: Mapping[str, Any], approved: approvals.Approved
                              ) -> dict[str, Any]:
    entry = transfer_entry(entry_id=new_entry_id(), kind="transfer", from_account=payload["from_account"],
                           to_account=payload["to_account"], instrument=payload["instrument"],
                           quantity=payload["quantity"], memo=payload.get("memo", ""))
    post(session, entry=entry, actor=approved.approver, reference=f"approval/{approved.approval_id}")
    return describe_entry(entry)


def propose_deposit(session: Session, *, actor: Actor, account_id: str, quantity: object, memo: str = ""
                    ) -> tuple[int, dict[str, Any]]:
    """Propose simulated cash (fen) from the settlement bank into an account (officer; four eyes)."""
    amount = check_amount(instrument=CNY, quantity=quantity)
    ensure_system_accounts(session)
    require_account(session, account_id)
    entry = transfer_entry(entry_id=new_entry_id(), kind="deposit", from_account=system_account_id(BANK),
                           to_account=account_id, instrument=CNY, quantity=amount, memo=memo)
    _dry_run(session, entry)
    payload = {"account_id": account_id, "quantity": amount, "memo": memo}
    return 202, _pending(approvals.propose(session, kind="deposit", payload=payload, actor=actor, commit=False))


@approvals.executor("deposit")
def _execute_deposit(session: Session, payload: Mapping[str, Any], approved: approvals.Approved) -> dict[str, Any]:
    entry = transfer_entry(entry_id=new_entry_id(), kind="deposit", from_account=system_account_id(BANK),
                           to_account=payload["account_id"], instrument=CNY, quantity=payload["quantity"],
                           memo=payload.get("memo", ""))
    post(session, entry=entry, actor=approved.approver, reference=f"approval/{approved.approval_id}")
    return describe_entry(entry)


#: Entries that a process owns are corrected through it, never reversed by hand: a bid is withdrawn, an
#: allocation trued up or replaced by a new plan version, an auction or a compliance year settled once.
PROCESS_REFERENCES = ("allocation/", "auction/", "compliance-close:")


def _reversal_of(session: Session, *, entry_id: str, memo: str) -> Any:
    original = session.scalar(select(JournalEntryRow).where(JournalEntryRow.entry_id == entry_id))
    if original is None:
        raise LedgerError(f"unknown entry '{entry_id}'", code="unknown_entry")
    if original.reference and original.reference.startswith(PROCESS_REFERENCES):
        raise LedgerError(f"entry '{entry_id}' belongs to {original.reference}: correct it through that process"
                          " (withdraw the bid, a true-up or a new plan version), not by a reversal",
                          code="not_reversible")
    return reversing_entry(repository.entry_of(original, repository.postings_of(session, entry_id)),
                           entry_id=new_entry_id(), memo=memo)


def propose_reversal(session: Session, *, actor: Actor, entry_id: str, memo: str = "") -> tuple[int, dict[str, Any]]:
    """Propose the reversing entry of ``entry_id`` (officer; four eyes). Retired or cancelled units never move:
    the rules refuse (``retired_units_immutable``), as they refuse a second reversal (``already_reversed``)."""
    _dry_run(session, _reversal_of(session, entry_id=entry_id, memo=memo))
    payload = {"entry_id": entry_id, "memo": memo}
    return 202, _pending(approvals.propose(session, kind="reversal", payload=payload, actor=actor, commit=False))


@approvals.executor("reversal")
def _execute_reversal(session: Session, payload: Mapping[str, Any], approved: approvals.Approved) -> dict[str, Any]:
    entry = _reversal_of(session, entry_id=payload["entry_id"], memo=payload.get("memo", ""))
    post(session, entry=entry, actor=approved.approver, reference=f"approval/{approved.approval_id}")
    return describe_entry(entry)

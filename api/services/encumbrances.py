"""Encumbrances for carbon finance: freezes (an officer, immediate), pledges (the holder, to a lender) and
releases (an officer, four eyes).

Encumbered units stay in the account but are not available: ``accounting.ledger`` refuses to move them
(``units_encumbered``) in any entry, so a transfer, a sale or a surrender of them is refused alike. A
freeze or a pledge locks the balance it encumbers (``lock_state``), so it and a concurrent movement of
the same units are serialized. A release only makes units available again; it is an officer's
proposal carried out when a second officer approves it (kind ``release``).

Changes are written without committing; the router commits them with the ``Idempotency-Key`` record.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accounting.ledger import FREEZE, PLEDGE, Encumbrance, LedgerError
from accounting.review import Actor
from api.services import approvals
from api.services.ledger import owns_account
from api.services.transfers import HOLDER_ROLES, check_amount, own_account_ids, require_account
from api.store import audit
from api.store import ledger as repository
from api.store.schema import EncumbranceRow


def describe(row: EncumbranceRow) -> dict[str, Any]:
    return {"encumbrance_id": row.encumbrance_id, "kind": row.kind, "account_id": row.account_id,
            "instrument": row.instrument, "quantity": row.quantity, "lender_account_id": row.lender_account_id,
            "reason": row.reason, "imposed_by": row.imposed_by, "consent_by": row.consent_by,
            "created_at": row.created_at, "released_at": row.released_at,
            "released_by": row.released_by}


def _encumber(session: Session, *, actor: Actor, encumbrance: Encumbrance, reason: str) -> dict[str, Any]:
    """Check ``encumbrance`` against the locked balance and write it (not committed)."""
    state = repository.lock_state(session, keys=[(encumbrance.account_id, encumbrance.instrument)])
    if encumbrance.lender_account_id and encumbrance.lender_account_id not in state.accounts:
        lender = repository.get_account(session, encumbrance.lender_account_id)
        if lender is not None:
            state = state.with_accounts(repository.account_of(lender))
    officers = frozenset({actor.actor_id}) if actor.role == "officer" else frozenset()
    state.encumber(encumbrance, officer_ids=officers)
    row = EncumbranceRow(encumbrance_id=encumbrance.encumbrance_id, kind=encumbrance.kind,
                         account_id=encumbrance.account_id, instrument=encumbrance.instrument,
                         quantity=encumbrance.quantity, lender_account_id=encumbrance.lender_account_id,
                         reason=reason, imposed_by=encumbrance.imposed_by, consent_by=encumbrance.consent_by,
                         created_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action=f"ledger.{encumbrance.kind}", target=f"encumbrance/{row.encumbrance_id}",
                 after=describe(row), detail={"reason": reason})
    return describe(row)


def freeze(session: Session, *, actor: Actor, account_id: str, instrument: str, quantity: object, reason: str
           ) -> tuple[int, dict[str, Any]]:
    """Freeze available units of an account at once (officer), with a reason."""
    amount = check_amount(instrument=instrument, quantity=quantity)
    require_account(session, account_id)
    encumbrance = Encumbrance(encumbrance_id=uuid.uuid4().hex, kind=FREEZE, account_id=account_id,
                              instrument=instrument, quantity=amount, imposed_by=actor.actor_id)
    return 201, _encumber(session, actor=actor, encumbrance=encumbrance, reason=reason)


def pledge(session: Session, *, actor: Actor, account_id: str, instrument: str, quantity: object,
           lender_account_id: str, reason: str) -> tuple[int, dict[str, Any]]:
    """Pledge available units of the user's own account to a lender account; the request is the owner's consent."""
    amount = check_amount(instrument=instrument, quantity=quantity)
    if not owns_account(actor, account_id):
        raise LedgerError(f"account '{account_id}' does not belong to {actor.actor_id}", code="not_own_account")
    account = require_account(session, account_id)
    require_account(session, lender_account_id)
    encumbrance = Encumbrance(encumbrance_id=uuid.uuid4().hex, kind=PLEDGE, account_id=account_id,
                              instrument=instrument, quantity=amount, imposed_by=actor.actor_id,
                              lender_account_id=lender_account_id, consent_by=account.owner_id)
    return 201, _encumber(session, actor=actor, encumbrance=encumbrance, reason=reason)


def _in_force(session: Session, encumbrance_id: str, *, lock: bool = False) -> EncumbranceRow:
    statement = select(EncumbranceRow).where(EncumbranceRow.encumbrance_id == encumbrance_id)
    row = session.scalar(statement.with_for_update() if lock else statement)
    if row is None:
        raise LedgerError(f"unknown encumbrance '{encumbrance_id}'", code="unknown_encumbrance")
    if row.released_at is not None:
        raise LedgerError(f"encumbrance '{encumbrance_id}' was released at {row.released_at}",
                          code="already_released")
    return row


def propose_release(session: Session, *, actor: Actor, encumbrance_id: str, reason: str
                    ) -> tuple[int, dict[str, Any]]:
    """Propose releasing a freeze or a pledge (officer; carried out when a second officer approves)."""
    row = _in_force(session, encumbrance_id)
    payload = {"encumbrance_id": encumbrance_id, "account_id": row.account_id, "instrument": row.instrument,
               "quantity": row.quantity, "kind": row.kind, "reason": reason}
    return 202, {"status": "pending_approval", "entry": None, "approval": approvals.propose(
        session, kind="release", payload=payload, actor=actor, commit=False)}


@approvals.executor("release")
def _execute_release(session: Session, payload: Mapping[str, Any], approved: approvals.Approved) -> dict[str, Any]:
    row = _in_force(session, payload["encumbrance_id"], lock=True)
    row.released_at = datetime.now(UTC)
    row.released_by = approved.approver.actor_id
    session.flush()
    audit.append(session, actor=approved.approver, action="ledger.release",
                 target=f"encumbrance/{row.encumbrance_id}", after=describe(row),
                 detail={"approval_id": approved.approval_id, "proposed_by": approved.proposer.actor_id,
                         "reason": payload.get("reason", "")})
    released = describe(row)  # stored as the approval's JSON result: times as ISO 8601 text
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in released.items()}


def list_encumbrances(session: Session, *, actor: Actor, account_id: str | None = None, in_force: bool = True,
                      limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """Encumbrances, newest first (a holder: of its own accounts only; ``in_force=False`` includes released)."""
    statement = select(EncumbranceRow)
    if actor.role in HOLDER_ROLES:
        owned = own_account_ids(session, actor)
        session.commit()
        statement = statement.where(EncumbranceRow.account_id.in_(owned))
    if account_id is not None:
        statement = statement.where(EncumbranceRow.account_id == account_id)
    if in_force:
        statement = statement.where(EncumbranceRow.released_at.is_(None))
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(statement.order_by(EncumbranceRow.created_at.desc(), EncumbranceRow.encumbrance_id)
                           .limit(limit).offset(offset))
    return {"total": total, "items": [describe(r) for r in rows]}

"""The four-eyes rule in the store: an officer proposes, a second officer approves, and only then it happens.

An action that moves rights or money on an officer's initiative (an officer transfer, a deposit of
simulated cash, an allocation, an auction settlement, a reversal, releasing a freeze...) is not carried
out when asked: :func:`propose` stores it as a pending approval. When a *different* officer approves it
(stating the digest of the payload they reviewed), :func:`decide` runs the action's executor in the
same transaction that records the decision, so an approved action has happened and a refused or failed
one has not. Executors are registered by kind with :func:`executor` by the services that own them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accounting.four_eyes import APPROVED, PENDING, Proposal
from accounting.four_eyes import decide as decide_rule
from accounting.four_eyes import propose as propose_rule
from accounting.review import Actor
from api.store import audit
from api.store.schema import ApprovalRow

#: An executor carries an approved action out (without committing) and says what it did.
Executor = Callable[[Session, Mapping[str, Any], "Approved"], dict[str, Any]]
EXECUTORS: dict[str, Executor] = {}


class ApprovalNotFoundError(LookupError):
    code = "approval_not_found"


class Approved:
    """What an executor knows of the approval: who proposed it, who approved it, and its id."""

    def __init__(self, *, approval_id: str, proposer: Actor, approver: Actor) -> None:
        self.approval_id = approval_id
        self.proposer = proposer
        self.approver = approver


def executor(kind: str) -> Callable[[Executor], Executor]:
    """Register the function that carries out approved actions of ``kind``."""

    def register(function: Executor) -> Executor:
        EXECUTORS[kind] = function
        return function

    return register




def describe(row: ApprovalRow) -> dict[str, Any]:
    return {"approval_id": row.approval_id, "kind": row.kind, "payload": row.payload,
            "payload_digest": row.payload_digest, "status": row.status, "proposed_by": row.proposed_by,
            "proposed_at": row.proposed_at, "expires_at": row.expires_at,
            "decided_by": row.decided_by, "decided_at": row.decided_at,
            "comment": row.comment, "result": row.result}


def propose(session: Session, *, kind: str, payload: Mapping[str, Any], actor: Actor,
            valid_for: timedelta = timedelta(hours=24), commit: bool = True) -> dict[str, Any]:
    """Store a pending action for a second officer (the payload is checked by its owner before this)."""
    if kind not in EXECUTORS:
        raise KeyError(f"no executor for approvals of kind {kind}")  # a programming error, not a client's
    now = datetime.now(UTC)
    proposal = propose_rule(proposal_id=uuid.uuid4().hex, kind=kind, payload=payload, proposed_by=actor,
                            proposed_at=now, valid_for=valid_for)
    row = ApprovalRow(approval_id=proposal.proposal_id, kind=kind, payload=dict(payload),
                      payload_digest=proposal.payload_digest, status=PENDING, proposed_by=actor.actor_id,
                      proposed_at=now, expires_at=proposal.expires_at)
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="approval.proposed", target=f"approval/{row.approval_id}",
                 after=row.payload, detail={"kind": kind})
    if commit:
        session.commit()
    return describe(row)


def get(session: Session, approval_id: str) -> dict[str, Any]:
    row = session.get(ApprovalRow, approval_id)
    if row is None:
        raise ApprovalNotFoundError(f"no approval '{approval_id}'")
    return describe(row)


def listed(session: Session, *, status: str | None = None, limit: int = 100, offset: int = 0
           ) -> tuple[int, list[dict[str, Any]]]:
    statement = select(ApprovalRow)
    if status is not None:
        statement = statement.where(ApprovalRow.status == status)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(statement.order_by(ApprovalRow.proposed_at.desc(), ApprovalRow.approval_id)
                           .limit(limit).offset(offset))
    return total, [describe(r) for r in rows]


def decide(session: Session, *, approval_id: str, decision: str, payload_digest: str, actor: Actor,
           comment: str | None = None, commit: bool = True) -> dict[str, Any]:
    """Approve (and carry out) or reject a pending action; one transaction, nothing done when anything fails.

    ``commit=False`` leaves the commit to the caller (``run_once`` commits it with its Idempotency-Key record).
    """
    row = session.execute(select(ApprovalRow).where(ApprovalRow.approval_id == approval_id)
                          .with_for_update()).scalar_one_or_none()
    if row is None:
        raise ApprovalNotFoundError(f"no approval '{approval_id}'")
    proposal = Proposal(proposal_id=row.approval_id, kind=row.kind, payload_digest=row.payload_digest,
                        proposed_by=row.proposed_by, proposed_at=row.proposed_at,
                        expires_at=row.expires_at, status=row.status, decided_by=row.decided_by,
                        decided_at=row.decided_at)
    decided = decide_rule(proposal, decision=decision, decided_by=actor, at=datetime.now(UTC),
                          payload_digest=payload_digest)
    if decided.status == APPROVED:
        proposer = Actor(actor_id=row.proposed_by, role="officer")
        row.result = EXECUTORS[row.kind](session, row.payload, Approved(approval_id=row.approval_id,
                                                                       proposer=proposer, approver=actor))
    row.status, row.decided_by, row.decided_at, row.comment = (decided.status, decided.decided_by,
                                                               decided.decided_at, comment)
    audit.append(session, actor=actor, action=f"approval.{decided.status}", target=f"approval/{row.approval_id}",
                 detail={"kind": row.kind, "comment": comment})
    if commit:
        session.commit()
    else:
        session.flush()
    return describe(row)

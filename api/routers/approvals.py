"""``/v1/approvals``: four eyes. What one officer proposed (an officer's transfer, a deposit, a reversal, a
release...), a second officer approves (carrying it out in the same transaction) or rejects.

The deciding officer restates the ``payload_digest`` of what they reviewed; a different digest, the
proposer deciding, a decision on a decided or expired proposal are refused (409) and change nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ActorDep, LimitQuery, OffsetQuery, RequiredIdempotencyKeyDep, SessionDep, answer_once
from api.schemas import ApprovalOut, Problem
from api.services import approvals as service
from api.services import encumbrances as _encumbrances  # noqa: F401  (registers the release executor)
from api.services import transfers as _transfers  # noqa: F401  (registers the transfer, deposit, reversal executors)

router = APIRouter(prefix="/v1/approvals", tags=["approvals"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}})


class ApprovalList(BaseModel):
    total: int
    items: list[ApprovalOut]


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    payload_digest: str = Field(min_length=64, max_length=64, description="SHA-256 of the payload you reviewed")
    comment: str | None = Field(None, max_length=4000)


@router.get("", response_model=ApprovalList)
def list_approvals(session: SessionDep, limit: LimitQuery = 100, offset: OffsetQuery = 0,
                   status: Annotated[Literal["pending", "approved", "rejected"] | None, Query()] = None
                   ) -> dict[str, Any]:
    """Proposals, newest first (``status=pending``: those waiting for a second officer)."""
    total, items = service.listed(session, status=status, limit=limit, offset=offset)
    return {"total": total, "items": items}


@router.get("/{approval_id}", response_model=ApprovalOut, responses={404: {"model": Problem}})
def get_approval(approval_id: str, session: SessionDep) -> dict[str, Any]:
    """One proposal, its payload and digest, and once decided, who decided and what it did."""
    return service.get(session, approval_id)


@router.post("/{approval_id}/decision", response_model=ApprovalOut,
             responses={404: {"model": Problem}, 409: {"model": Problem}})
def decide(approval_id: str, body: DecisionRequest, actor: ActorDep, session: SessionDep, response: Response,
           idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Approve (and carry out) or reject a proposal of another officer."""
    return answer_once(session, actor=actor, key=idempotency_key,
                       operation=f"approvals.decide:{approval_id}", body=body,
                response=response, change=lambda: (200, service.decide(
                    session, approval_id=approval_id, decision=body.decision, payload_digest=body.payload_digest,
                    actor=actor, comment=body.comment, commit=False)))

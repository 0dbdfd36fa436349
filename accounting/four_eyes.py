"""The four-eyes rule: an officer's sensitive action takes effect only once a *different* officer approves it.

Why: the 2010–2011 EU registry thefts (market-rules.md §2.5) moved allowances with one stolen
login; the Union Registry since requires a second representative to approve. Here an officer
proposes an action (an officer-initiated transfer, a freeze, an allocation plan, an auction
settlement...) and a second officer approves or rejects it before it expires.

What is approved is the **payload digest** (SHA-256 of the canonical JSON of the action's payload):
the approver states the digest of what they reviewed, so a payload changed after proposal cannot be
approved (``payload_mismatch``). The proposer can never approve (``same_officer``); a decided
proposal cannot be decided again (``already_decided``); an expired one cannot be approved
(``proposal_expired``). Pure rules: the service stores the proposal and checks its version.

>>> from datetime import UTC, datetime, timedelta
>>> alice = Actor(actor_id="alice", role="officer")
>>> bob = Actor(actor_id="bob", role="officer")
>>> at = datetime(2026, 3, 2, 9, tzinfo=UTC)
>>> proposal = propose(proposal_id="p1", kind="officer_transfer", payload={"quantity": 10},
...                    proposed_by=alice, proposed_at=at)
>>> decide(proposal, decision="approve", decided_by=alice, at=at, payload_digest=proposal.payload_digest)
Traceback (most recent call last):
...
accounting.four_eyes.FourEyesError: alice proposed p1 and cannot also approve it
>>> decide(proposal, decision="approve", decided_by=bob, at=at + timedelta(hours=1),
...        payload_digest=proposal.payload_digest).status
'approved'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from accounting.errors import AccountingError
from accounting.review import Actor

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
DECISIONS = {"approve": APPROVED, "reject": REJECTED}
KINDS = frozenset({"officer_transfer", "freeze", "release", "allocation_plan", "auction_settlement",
                   "cancellation", "trusted_counterparty", "deposit", "reversal",
                   "allocation_true_up", "compliance_close"})
#: How long a proposal waits for its second officer by default.
DEFAULT_VALIDITY = timedelta(hours=24)


class FourEyesError(AccountingError):
    """A proposal or decision the four-eyes rule refuses; ``code`` says which rule."""

    code = "four_eyes_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise FourEyesError(f"payload value {value!r} has no canonical JSON form", code="invalid_payload")


def payload_digest(payload: Mapping[str, object]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``payload``: sorted keys, no spaces, Decimals as strings.

    Floats are refused (``invalid_payload``): their text form is not canonical across platforms.

    >>> payload_digest({"b": 1, "a": "x"}) == payload_digest({"a": "x", "b": 1})
    True
    """
    if _has_float(payload):
        raise FourEyesError("payload must not contain floats (use int or Decimal)", code="invalid_payload")
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, Mapping):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_float(v) for v in value)
    return False


def _aware(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise FourEyesError(f"times must be timezone-aware, got {moment!r}", code="naive_datetime")
    return moment


def _officer(actor: Actor) -> Actor:
    if actor.role != "officer":
        raise FourEyesError(f"{actor.actor_id} is {actor.role}, not an officer", code="role_not_allowed")
    return actor


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """An officer action waiting for (or decided by) a second officer."""

    proposal_id: str
    kind: str
    payload_digest: str
    proposed_by: str
    proposed_at: datetime
    expires_at: datetime
    status: str = PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None


def propose(*, proposal_id: str, kind: str, payload: Mapping[str, object], proposed_by: Actor,
            proposed_at: datetime, valid_for: timedelta = DEFAULT_VALIDITY) -> Proposal:
    """A pending proposal of ``kind`` by an officer, valid for ``valid_for``."""
    if kind not in KINDS:
        raise FourEyesError(f"unknown action kind '{kind}'; one of {', '.join(sorted(KINDS))}",
                            code="unknown_action")
    if not proposal_id:
        raise FourEyesError("a proposal id is required", code="missing_value")
    if valid_for <= timedelta(0):
        raise FourEyesError("a proposal must be valid for a positive time", code="invalid_validity")
    return Proposal(proposal_id=proposal_id, kind=kind, payload_digest=payload_digest(payload),
                    proposed_by=_officer(proposed_by).actor_id, proposed_at=_aware(proposed_at),
                    expires_at=proposed_at + valid_for)


def decide(proposal: Proposal, *, decision: str, decided_by: Actor, at: datetime, payload_digest: str) -> Proposal:
    """The proposal approved or rejected by a second officer, or FourEyesError naming the rule.

    ``payload_digest`` is the digest of what the deciding officer reviewed; it must match the
    proposal's. Rejection is allowed after expiry (it only closes the proposal); approval is not.
    """
    status = DECISIONS.get(decision)
    if status is None:
        raise FourEyesError(f"decision must be approve or reject, got {decision!r}", code="unknown_decision")
    _officer(decided_by)
    if proposal.status != PENDING:
        raise FourEyesError(f"{proposal.proposal_id} is already {proposal.status}", code="already_decided")
    if decided_by.actor_id == proposal.proposed_by:
        raise FourEyesError(f"{decided_by.actor_id} proposed {proposal.proposal_id} and cannot also {decision} it",
                            code="same_officer")
    if _aware(at) < proposal.proposed_at:
        raise FourEyesError("a decision cannot precede its proposal", code="invalid_time")
    if status == APPROVED and at >= proposal.expires_at:
        raise FourEyesError(f"{proposal.proposal_id} expired at {proposal.expires_at.isoformat()}",
                            code="proposal_expired")
    if payload_digest != proposal.payload_digest:
        raise FourEyesError("the reviewed payload is not the proposed one", code="payload_mismatch")
    return replace(proposal, status=status, decided_by=decided_by.actor_id, decided_at=at)


def is_effective(proposal: Proposal) -> bool:
    """True when the action may be carried out: approved by a second officer."""
    return proposal.status == APPROVED and proposal.decided_by not in (None, proposal.proposed_by)

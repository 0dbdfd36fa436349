"""The four-eyes rule (issue 5 §6): only a different officer approves, once, before expiry, and only
exactly what was proposed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounting.four_eyes import (
    APPROVED,
    PENDING,
    REJECTED,
    FourEyesError,
    decide,
    is_effective,
    payload_digest,
    propose,
)
from accounting.review import Actor

ALICE = Actor(actor_id="alice", role="officer")
BOB = Actor(actor_id="bob", role="officer")
CAROL = Actor(actor_id="carol", role="officer")
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PAYLOAD = {"from": "e1", "to": "e2", "instrument": "CEA-2025", "quantity": 1000, "price": Decimal("98.00")}


def proposal(**overrides: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {"proposal_id": "p1", "kind": "officer_transfer", "payload": PAYLOAD,
                                 "proposed_by": ALICE, "proposed_at": AT}
    values.update(overrides)
    return propose(**values)  # type: ignore[arg-type]


def test_a_second_officer_approves_and_the_action_takes_effect() -> None:
    pending = proposal()
    assert pending.status == PENDING and not is_effective(pending)
    assert pending.expires_at == AT + timedelta(hours=24)
    approved = decide(pending, decision="approve", decided_by=BOB, at=AT + timedelta(minutes=5),
                      payload_digest=payload_digest(PAYLOAD))
    assert (approved.status, approved.decided_by, approved.decided_at) == (APPROVED, "bob", AT + timedelta(minutes=5))
    assert is_effective(approved)
    assert pending.status == PENDING  # the proposal object itself never changes


def test_the_proposer_cannot_approve_their_own_action() -> None:
    with pytest.raises(FourEyesError) as error:
        decide(proposal(), decision="approve", decided_by=ALICE, at=AT, payload_digest=payload_digest(PAYLOAD))
    assert error.value.code == "same_officer"


def test_a_decided_proposal_cannot_be_decided_again() -> None:
    approved = decide(proposal(), decision="approve", decided_by=BOB, at=AT, payload_digest=payload_digest(PAYLOAD))
    rejected = decide(proposal(), decision="reject", decided_by=BOB, at=AT, payload_digest=payload_digest(PAYLOAD))
    assert rejected.status == REJECTED and not is_effective(rejected)
    for decided in (approved, rejected):
        with pytest.raises(FourEyesError) as error:
            decide(decided, decision="approve", decided_by=CAROL, at=AT, payload_digest=payload_digest(PAYLOAD))
        assert error.value.code == "already_decided"


def test_an_expired_proposal_cannot_be_approved_but_can_be_rejected() -> None:
    pending = proposal(valid_for=timedelta(hours=1))
    with pytest.raises(FourEyesError) as error:
        decide(pending, decision="approve", decided_by=BOB, at=AT + timedelta(hours=1),
               payload_digest=payload_digest(PAYLOAD))
    assert error.value.code == "proposal_expired"
    closed = decide(pending, decision="reject", decided_by=BOB, at=AT + timedelta(hours=2),
                    payload_digest=payload_digest(PAYLOAD))
    assert closed.status == REJECTED


def test_only_the_reviewed_payload_can_be_approved() -> None:
    changed = {**PAYLOAD, "quantity": 10_000}
    with pytest.raises(FourEyesError) as error:
        decide(proposal(), decision="approve", decided_by=BOB, at=AT, payload_digest=payload_digest(changed))
    assert error.value.code == "payload_mismatch"


def test_the_digest_is_canonical_and_refuses_floats() -> None:
    assert payload_digest({"a": 1, "b": [1, 2]}) == payload_digest({"b": [1, 2], "a": 1})
    assert payload_digest({"price": Decimal("98.00")}) != payload_digest({"price": Decimal("98.0")})
    with pytest.raises(FourEyesError) as error:
        payload_digest({"quantity": 1.5})
    assert error.value.code == "invalid_payload"
    with pytest.raises(FourEyesError) as error:
        payload_digest({"who": object()})
    assert error.value.code == "invalid_payload"


@pytest.mark.parametrize(("call", "expected"), [
    (lambda: proposal(proposed_by=Actor(actor_id="e", role="enterprise")), "role_not_allowed"),
    (lambda: decide(proposal(), decision="approve", decided_by=Actor(actor_id="v", role="verifier"), at=AT,
                    payload_digest=payload_digest(PAYLOAD)), "role_not_allowed"),
    (lambda: proposal(kind="delete_everything"), "unknown_action"),
    (lambda: proposal(proposal_id=""), "missing_value"),
    (lambda: proposal(proposed_at=datetime(2026, 3, 2, 9)), "naive_datetime"),
    (lambda: proposal(valid_for=timedelta(0)), "invalid_validity"),
    (lambda: decide(proposal(), decision="maybe", decided_by=BOB, at=AT, payload_digest=""), "unknown_decision"),
    (lambda: decide(proposal(), decision="approve", decided_by=BOB, at=AT - timedelta(seconds=1),
                    payload_digest=payload_digest(PAYLOAD)), "invalid_time"),
])
def test_bad_proposals_and_decisions_are_refused(call, expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FourEyesError) as error:
        call()
    assert error.value.code == expected

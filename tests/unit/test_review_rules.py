"""The review state machine: every role × action × status, against a table written here by hand from the issue.

The table below is the specification (issue 3, "Review workflow"), not a copy of ``RULES``: each
allowed (action, role, from) triple with the status it leads to. Every other combination of
``ROLES × ACTIONS × STATUSES`` (and "none", a period with no state yet) must be refused, with
``role_not_allowed`` when the role never takes the action and ``transition_not_allowed`` otherwise.
"""

from __future__ import annotations

import itertools

import pytest

from accounting.review import ACTIONS, NONE, ROLES, STATUSES, Actor, ReviewError, next_status

ENTERPRISE_ID = "914101022286058318"
OTHER_ID = "91410102170679896E"
KEEP = "(same)"  # comments and recommendations leave the status as it is

# action        role         from        -> to
ALLOWED_TABLE = """
submit          enterprise   none        submitted
submit          enterprise   submitted   submitted
submit          enterprise   calculated  submitted
submit          enterprise   rejected    submitted
submit          enterprise   reopened    submitted
submit          officer      none        submitted
submit          officer      submitted   submitted
submit          officer      calculated  submitted
submit          officer      rejected    submitted
submit          officer      reopened    submitted
submit          engineer     none        submitted
submit          engineer     submitted   submitted
submit          engineer     calculated  submitted
submit          engineer     rejected    submitted
submit          engineer     reopened    submitted
calculate       system       submitted   calculated
calculate       system       calculated  calculated
calculate       system       reopened    calculated
start_review    verifier     calculated  in_review
start_review    officer      calculated  in_review
comment         verifier     submitted   (same)
comment         verifier     calculated  (same)
comment         verifier     in_review   (same)
comment         verifier     verified    (same)
comment         verifier     rejected    (same)
comment         verifier     reopened    (same)
comment         officer      submitted   (same)
comment         officer      calculated  (same)
comment         officer      in_review   (same)
comment         officer      verified    (same)
comment         officer      rejected    (same)
comment         officer      reopened    (same)
recommend       verifier     in_review   (same)
approve         officer      in_review   verified
reject          officer      calculated  rejected
reject          officer      in_review   rejected
reject          officer      verified    rejected
lock            officer      verified    locked
reopen          officer      verified    reopened
reopen          officer      locked      reopened
reopen          officer      rejected    reopened
substitute      officer      none        calculated
substitute      officer      rejected    calculated
substitute      officer      reopened    calculated
"""
ALLOWED = {(action, role, source): target
           for action, role, source, target in (line.split() for line in ALLOWED_TABLE.strip().splitlines())}
NEEDS_REASON = {"comment", "recommend", "reject", "reopen", "substitute"}
STATES = (NONE, *STATUSES)
MATRIX = list(itertools.product(ROLES, ACTIONS, STATES))


def actor(role: str) -> Actor:
    return Actor(actor_id=f"{role}-1", role=role,
                 enterprise_ids=frozenset({ENTERPRISE_ID}) if role == "enterprise" else frozenset())


def test_the_hand_written_table_names_only_known_roles_actions_and_statuses() -> None:
    assert len(ALLOWED) == len(ALLOWED_TABLE.strip().splitlines()) == 44
    assert {a for a, _, _ in ALLOWED} == set(ACTIONS)
    assert {r for _, r, _ in ALLOWED} <= set(ROLES) and {s for _, _, s in ALLOWED} <= set(STATES)
    assert set(ALLOWED.values()) <= {*STATUSES, KEEP}
    assert len(MATRIX) == len(ROLES) * len(ACTIONS) * len(STATES) == 7 * 10 * 8


@pytest.mark.parametrize(("role", "action", "state"), MATRIX)
def test_every_role_action_and_status_is_allowed_or_refused_as_the_table_says(role: str, action: str,
                                                                              state: str) -> None:
    current = None if state == NONE else state
    call = {"current": current, "actor": actor(role), "enterprise_id": ENTERPRISE_ID, "reason": "because"}
    expected = ALLOWED.get((action, role, state))
    if expected is not None:
        assert next_status(action, **call) == (state if expected == KEEP else expected)
        return
    with pytest.raises(ReviewError) as refused:
        next_status(action, **call)
    role_takes_action = any(a == action and r == role for a, r, _ in ALLOWED)
    assert refused.value.code == ("transition_not_allowed" if role_takes_action else "role_not_allowed")


def test_none_and_a_missing_status_are_the_same_state() -> None:
    assert next_status("submit", current=None, actor=actor("officer"), enterprise_id=ENTERPRISE_ID) == "submitted"
    assert next_status("submit", current=NONE, actor=actor("officer"), enterprise_id=ENTERPRISE_ID) == "submitted"


@pytest.mark.parametrize(("action", "role", "state"), sorted(ALLOWED))
def test_an_action_that_needs_a_reason_is_refused_without_one_and_the_others_are_not(action: str, role: str,
                                                                                     state: str) -> None:
    current = None if state == NONE else state
    for reason in (None, "", "   \n"):
        call = {"current": current, "actor": actor(role), "enterprise_id": ENTERPRISE_ID, "reason": reason}
        if action in NEEDS_REASON:
            with pytest.raises(ReviewError) as refused:
                next_status(action, **call)
            assert refused.value.code == "reason_required"
        else:
            assert next_status(action, **call)


def test_an_enterprise_user_cannot_act_for_another_enterprise() -> None:
    user = actor("enterprise")
    assert next_status("submit", current="rejected", actor=user, enterprise_id=ENTERPRISE_ID) == "submitted"
    for state in (None, "submitted", "calculated", "rejected", "reopened"):
        with pytest.raises(ReviewError) as refused:
            next_status("submit", current=state, actor=user, enterprise_id=OTHER_ID)
        assert refused.value.code == "not_own_enterprise"
    nobody = Actor(actor_id="user-x", role="enterprise")
    with pytest.raises(ReviewError, match="does not act for"):
        next_status("submit", current=None, actor=nobody, enterprise_id=ENTERPRISE_ID)
    # Other roles act for every enterprise; their enterprise list is irrelevant.
    assert next_status("submit", current=None, actor=actor("officer"), enterprise_id=OTHER_ID) == "submitted"


def test_an_unknown_action_role_or_actor_is_refused_by_name() -> None:
    with pytest.raises(ReviewError) as unknown_action:
        next_status("delete", current="locked", actor=actor("officer"), enterprise_id=ENTERPRISE_ID)
    assert unknown_action.value.code == "unknown_action"
    with pytest.raises(ReviewError) as unknown_role:
        Actor(actor_id="x", role="auditor")
    assert unknown_role.value.code == "unknown_role"
    with pytest.raises(ReviewError) as no_id:
        Actor(actor_id="", role="officer")
    assert no_id.value.code == "unknown_actor"


def test_the_api_offers_exactly_the_review_actions_and_statuses_of_the_rules() -> None:
    from typing import get_args

    from api.routers.review import ActionName, StatusName

    assert set(get_args(StatusName)) == set(STATUSES)
    assert set(get_args(ActionName)) == set(ACTIONS) - {"submit", "calculate", "substitute"}

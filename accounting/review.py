"""The review workflow of an enterprise-month (and enterprise-year): who may move it where.

submitted → calculated → in_review → verified → locked, with rejected (back to the enterprise with
comments) and reopened (only by an officer, with a reason). A locked enterprise-year is what the
allowance ledger uses; changing it afterwards is a restatement (``accounting.restatement``).

Pure rules: the service loads the current state, asks ``next_status``, and writes the new state and
its audit entry in one transaction, with a version check so that two officers acting at once cannot
both win.

>>> officer = Actor(actor_id="o1", role="officer")
>>> next_status("start_review", current="calculated", actor=officer, enterprise_id="X")
'in_review'
>>> next_status("lock", current="in_review", actor=officer, enterprise_id="X")
Traceback (most recent call last):
...
accounting.review.ReviewError: lock is not allowed from in_review (allowed from: verified)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounting.errors import AccountingError

STATUSES = ("submitted", "calculated", "in_review", "verified", "locked", "rejected", "reopened")
ROLES = ("enterprise", "verifier", "officer", "trader", "engineer", "admin", "system")
#: The roles a user or an API key can hold; ``system`` is the pipeline's own and never a login.
USER_ROLES = tuple(r for r in ROLES if r != "system")
#: The roles that see every enterprise of the zone.
ZONE_STAFF = frozenset({"verifier", "officer", "engineer", "system"})
#: A period with no state yet (no submission, no substitution).
NONE = "none"


class ReviewError(AccountingError):
    """A review action that the rules refuse; ``code`` says which rule."""

    code = "review_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who acts: an id, a role, the enterprises it speaks for (enterprise role) and its trading accounts."""

    actor_id: str
    role: str
    enterprise_ids: frozenset[str] = field(default_factory=frozenset)
    account_ids: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ReviewError(f"unknown role '{self.role}'; one of {', '.join(ROLES)}", code="unknown_role")
        if not self.actor_id:
            raise ReviewError("an actor id is required", code="unknown_actor")

    def speaks_for(self, enterprise_id: str) -> bool:
        """True when this actor may see and act on ``enterprise_id``'s own data.

        Enterprise users speak for their own enterprises, the zone's staff and the pipeline for all;
        traders and administrators for none (they see no enterprise's production data).
        """
        if self.role == "enterprise":
            return enterprise_id in self.enterprise_ids
        return self.role in ZONE_STAFF


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One action: the states it starts from, where it leads, who may take it, and whether it needs a reason."""

    sources: frozenset[str]
    target: str | None  # None: the status stays what it is (a comment, a recommendation)
    roles: frozenset[str]
    needs_reason: bool = False


def _rule(sources: str, target: str | None, roles: str, *, needs_reason: bool = False) -> Rule:
    return Rule(sources=frozenset(sources.split()), target=target, roles=frozenset(roles.split()),
                needs_reason=needs_reason)


#: The whole workflow. A submission is a new version of the data: allowed until the period is under
#: review; a verified or locked period must be reopened first.
RULES: dict[str, Rule] = {
    "submit": _rule("none submitted calculated rejected reopened", "submitted", "enterprise officer engineer"),
    "calculate": _rule("submitted calculated reopened", "calculated", "system"),
    "start_review": _rule("calculated", "in_review", "verifier officer"),
    "comment": _rule("submitted calculated in_review verified rejected reopened", None, "verifier officer",
                     needs_reason=True),
    "recommend": _rule("in_review", None, "verifier", needs_reason=True),
    "approve": _rule("in_review", "verified", "officer"),
    "reject": _rule("calculated in_review verified", "rejected", "officer", needs_reason=True),
    "lock": _rule("verified", "locked", "officer"),
    "reopen": _rule("verified locked rejected", "reopened", "officer", needs_reason=True),
    "substitute": _rule("none rejected reopened", "calculated", "officer", needs_reason=True),
}
ACTIONS = tuple(RULES)


def next_status(action: str, *, current: str | None, actor: Actor, enterprise_id: str,
                reason: str | None = None) -> str:
    """The status after ``action``, or ReviewError naming the rule that refuses it."""
    rule = RULES.get(action)
    if rule is None:
        raise ReviewError(f"unknown action '{action}'; one of {', '.join(ACTIONS)}", code="unknown_action")
    state = current or NONE
    if actor.role not in rule.roles:
        raise ReviewError(f"{action} is for {', '.join(sorted(rule.roles))}, not {actor.role}",
                          code="role_not_allowed")
    if not actor.speaks_for(enterprise_id):
        raise ReviewError(f"{actor.actor_id} does not act for enterprise {enterprise_id}", code="not_own_enterprise")
    if state not in rule.sources:
        raise ReviewError(f"{action} is not allowed from {state} (allowed from: {', '.join(sorted(rule.sources))})",
                          code="transition_not_allowed")
    if rule.needs_reason and not (reason or "").strip():
        raise ReviewError(f"{action} needs a reason or comment", code="reason_required")
    return rule.target or state

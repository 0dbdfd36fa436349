"""What each role may see of the review: a period's state and history, the review queue, the audit log.

Who sees what: verifiers, officers and data engineers see every enterprise; an enterprise user sees
only the enterprises it acts for, and another enterprise's period is reported as not found (so that
its existence does not leak). The audit log is for officers and data engineers.

Used by the API router and by ``carbon review`` / ``carbon audit``; no FastAPI here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from accounting.review import Actor, ReviewError
from api.store import audit
from api.store import review as repository
from api.store.review import QueueFilter
from api.store.schema import AuditEntry, Calculation, PeriodReview, ReviewEvent, VerifiedEmissions

#: Roles that see every enterprise's review state.
READERS = frozenset({"verifier", "officer", "engineer"})
#: Roles that may read and verify the audit log.
AUDITORS = frozenset({"officer", "engineer", "admin"})
PERIOD = re.compile(r"^\d{4}(-(0[1-9]|1[0-2]))?$")


class PeriodNotFoundError(LookupError):
    """No review state for this enterprise-period, or none the actor may see."""

    code = "period_not_found"

    def __init__(self, enterprise_id: str, period: str) -> None:
        super().__init__(f"no review state for enterprise {enterprise_id!r} and period {period!r}")


def utc(moment: datetime | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite returns naive UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def may_see(actor: Actor, enterprise_id: str) -> bool:
    """True when ``actor`` may see ``enterprise_id``'s review state, comments and evidence list."""
    return actor.role in READERS or (actor.role == "enterprise" and actor.speaks_for(enterprise_id))


def require_auditor(actor: Actor) -> None:
    if actor.role not in AUDITORS:
        raise ReviewError(f"the audit log is for {', '.join(sorted(AUDITORS))}, not {actor.role}",
                          code="role_not_allowed")


def _calculation(calculation: Calculation | None) -> dict[str, Any] | None:
    if calculation is None:
        return None
    return {"calculation_id": calculation.calculation_id, "run_id": calculation.run_id,
            "edition": calculation.edition, "ruleset": calculation.ruleset, "grid_region": calculation.grid_region,
            "gwp_set": calculation.gwp_set, "net_tco2e": calculation.net_tco2e, "totals": dict(calculation.totals),
            "submission_ids": list(calculation.submission_ids), "is_substituted": calculation.is_substituted,
            "created_at": utc(calculation.created_at)}


def _event(event: ReviewEvent) -> dict[str, Any]:
    return {"action": event.action, "from_status": event.from_status, "to_status": event.to_status,
            "actor_id": event.actor_id, "role": event.role, "comment": event.comment, "row_number": event.row_number,
            "recommendation": event.recommendation, "at": utc(event.created_at)}


def _verified(version: VerifiedEmissions) -> dict[str, Any]:
    return {"version": version.version, "net_tco2e": version.net_tco2e, "totals": dict(version.totals),
            "calculation_ids": list(version.calculation_ids), "locked_by": version.locked_by,
            "locked_at": utc(version.locked_at), "reason": version.reason, "diff": version.diff}


def state_of(row: PeriodReview) -> dict[str, Any]:
    """The current state of a period as shown to clients (without calculation and history)."""
    return {"enterprise_id": row.enterprise_id, "period": row.period, "status": row.status, "version": row.version,
            "held": row.held, "held_reasons": list(row.held_reasons or []), "is_substituted": row.is_substituted,
            "submission_id": row.submission_id, "calculation_id": row.calculation_id,
            "updated_at": utc(row.updated_at), "updated_by": row.updated_by}


def period_view(session: Session, *, actor: Actor, enterprise_id: str, period: str) -> dict[str, Any]:
    """State, calculation (with its totals), verified versions (years) and history of one enterprise-period."""
    row = repository.get_period(session, enterprise_id=enterprise_id, period=period) if PERIOD.match(period) else None
    if row is None or not may_see(actor, enterprise_id):
        raise PeriodNotFoundError(enterprise_id, period)
    calculation = repository.get_calculation(session, calculation_id=row.calculation_id)
    versions = (repository.verified_versions(session, enterprise_id=enterprise_id, year=period)
                if len(period) == 4 else [])
    return {**state_of(row), "calculation": _calculation(calculation),
            "verified": [_verified(v) for v in versions],
            "history": [_event(e) for e in repository.history(session, enterprise_id=enterprise_id, period=period)]}


def queue(session: Session, *, actor: Actor, where: QueueFilter, limit: int, offset: int) -> dict[str, Any]:
    """A page of the review queue; an enterprise user's queue holds only its own enterprises."""
    if actor.role not in READERS:
        if actor.role != "enterprise":
            raise ReviewError(f"the review queue is for enterprises and {', '.join(sorted(READERS))}",
                              code="role_not_allowed")
        visible = actor.enterprise_ids if where.visible is None else where.visible & actor.enterprise_ids
        where = QueueFilter(statuses=where.statuses, sector_code=where.sector_code, category=where.category,
                            held=where.held, period_prefix=where.period_prefix, enterprise_id=where.enterprise_id,
                            visible=visible)
    rows, total = repository.queue(session, where=where, limit=limit, offset=offset)
    items = [{**state_of(review), "name": enterprise.name if enterprise else None,
              "sector_code": enterprise.sector_code if enterprise else None,
              "category": enterprise.category if enterprise else None, "net_tco2e": net}
             for review, enterprise, net in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def audit_entry(entry: AuditEntry) -> dict[str, Any]:
    return {"seq": entry.seq, "at": utc(entry.at), "actor_id": entry.actor_id, "role": entry.role,
            "action": entry.action, "target": entry.target, "before_hash": entry.before_hash,
            "after_hash": entry.after_hash, "detail": entry.detail, "prev_hash": entry.prev_hash,
            "entry_hash": entry.entry_hash}


def audit_log(session: Session, *, actor: Actor, target: str | None = None, actor_id: str | None = None,
              action: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """Audit entries, newest first, filtered by target (prefix), actor and action; officers and engineers only."""
    require_auditor(actor)
    entries = audit.query(session, target=target, actor_id=actor_id, action=action, limit=limit, offset=offset)
    total = repository.audit_count(session, target=target, actor_id=actor_id, action=action)
    return {"items": [audit_entry(e) for e in entries], "total": total, "limit": limit, "offset": offset}


def verify_audit(session: Session, *, actor: Actor) -> dict[str, Any]:
    """Check the whole hash chain: the number of entries read and every problem found."""
    require_auditor(actor)
    count, problems = audit.verify(session)
    return {"entries": count, "intact": not problems,
            "problems": [{"seq": p.seq, "code": p.code, "detail": p.detail} for p in problems]}

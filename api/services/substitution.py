"""Substituting a missing month of a key emitter with a conservative value (officer only, with a reason).

Why: a key emitter that does not report a month would otherwise lower its own emissions by its
silence. An officer puts a conservative value in its place, chosen by a configurable rule
(``accounting.restatement.SUBSTITUTION_RULES``; default ``settings.substitution_rule``, the highest
month of the last 12). The month must have no submission in force (state ``none``, ``rejected`` or
``reopened``, per ``accounting.review.RULES["substitute"]``) and its deadline must have passed.

One transaction: a ``substitutions`` row (rule, basis month, totals, reason), a calculation flagged
``is_substituted`` with the basis month's full totals, the month's review state moved to
``calculated`` (substituted, with no submission of its own), a review event and two audit entries.
The pipeline's sensor asks for a run of the month (``pipelines.sensors``), which publishes it with
``is_substituted`` in the monthly and yearly balances and the zone indicators
(``api.store.substitutions.in_force``). A later submission for the month
replaces the substitution.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounting.audit import content_hash
from accounting.periods import is_late, period_problem
from accounting.restatement import RestatementError, substitution_rule
from accounting.review import Actor, ReviewError, next_status
from api.services.review import PeriodStateError, StaleStateError
from api.services.submissions import review_state
from api.store import audit
from api.store import substitutions as repository
from api.store.schema import Calculation, Enterprise, PeriodReview, ReviewEvent, Substitution
from pipelines.settings import Settings

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
#: States of a month whose balance may serve as a basis: calculated from reported data and not rejected.
BASIS_STATUSES = ("calculated", "in_review", "verified", "locked", "reopened")


def record_of(substitution: Substitution) -> dict[str, Any]:
    """The JSON-ready form of a stored substitution."""
    created_at = substitution.created_at
    if created_at.tzinfo is None:  # SQLite keeps no offset; everything is stored in UTC
        created_at = created_at.replace(tzinfo=UTC)
    return {
        "substitution_id": substitution.substitution_id, "enterprise_id": substitution.enterprise_id,
        "period": substitution.period, "rule": substitution.rule, "basis_period": substitution.basis_period,
        "totals": dict(substitution.totals), "net_tco2e": substitution.totals.get("net_tco2e"),
        "actor_id": substitution.actor_id, "reason": substitution.reason,
        "created_at": created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def _locked_row(session: Session, enterprise_id: str, period: str) -> PeriodReview | None:
    statement = select(PeriodReview).where(PeriodReview.enterprise_id == enterprise_id, PeriodReview.period == period)
    return session.execute(statement.with_for_update()).scalar_one_or_none()


def _check_period(period: str, *, settings: Settings, today: date) -> None:
    problem = period_problem(period, today=today, first_period=settings.first_period)
    if problem:
        raise RestatementError(f"{period} cannot be substituted: expected {problem}", code="out_of_period")
    if not is_late(period, today=today, day=settings.submission_deadline_day):
        raise RestatementError(f"{period} is not missing yet: its reporting deadline has not passed",
                               code="not_yet_due")


def _is_key_emitter(session: Session, enterprise: Enterprise, *, settings: Settings) -> bool:
    """Declared in the registry, or a calculated year at or above a threshold (emissions or energy input)."""
    if enterprise.key_emitter_declared:
        return True
    years = session.scalars(select(Calculation).where(Calculation.enterprise_id == enterprise.enterprise_id)
                            .where(Calculation.period.not_like("%-%")).order_by(Calculation.created_at)).all()
    latest = {c.period: c.totals for c in years}
    return any(float(t.get("scope1_tco2e") or 0.0) + float(t.get("scope2_tco2e") or 0.0) >= settings.key_emitter_tco2e
               or float(t.get("energy_input_tce") or 0.0) >= settings.key_emitter_tce for t in latest.values())


def _basis_candidates(session: Session, *, enterprise_id: str, window: list[str]) -> dict[str, Calculation]:
    """The current calculations of the window's months that were calculated from reported data."""
    reviews = session.scalars(select(PeriodReview).where(
        PeriodReview.enterprise_id == enterprise_id, PeriodReview.period.in_(window),
        PeriodReview.calculation_id.is_not(None), PeriodReview.is_substituted.is_(False),
        PeriodReview.status.in_(BASIS_STATUSES))).all()
    ids = {r.calculation_id: r.period for r in reviews}
    calculations = session.scalars(select(Calculation).where(Calculation.calculation_id.in_(list(ids)),
                                                             Calculation.is_substituted.is_(False))).all()
    return {ids[c.calculation_id]: c for c in calculations}


def substitute(session: Session, *, settings: Settings, actor: Actor, enterprise_id: str, period: str, reason: str,
               rule: str | None = None, expected_version: int | None = None, today: date | None = None
               ) -> dict[str, Any]:
    """Substitute the missing month ``period`` of ``enterprise_id``; return the substitution and the new state.

    Refusals (nothing is written): ``role_not_allowed`` (not an officer), ``reason_required``,
    ``submission_in_force`` (the month has data in force: submitted, calculated, under review,
    verified or locked), ``unknown_enterprise``, ``not_key_emitter``, ``invalid_period``,
    ``out_of_period``, ``not_yet_due``, ``unknown_substitution_rule``, ``no_basis_month`` (no month of
    the rule's window has a balance calculated from reported data), and StaleStateError when the
    month changed since ``expected_version`` or another officer substituted it at the same time.
    """
    if not MONTH.match(period):
        raise RestatementError(f"a substitution is for one month (YYYY-MM), not '{period}'", code="invalid_period")
    today = today or datetime.now(UTC).date()
    chosen_rule = substitution_rule(rule or settings.substitution_rule)
    try:
        row = _locked_row(session, enterprise_id, period)
        before = review_state(row)
        if expected_version is not None and (row.version if row else 0) != expected_version:
            raise StaleStateError(before)
        try:
            status = next_status("substitute", current=row.status if row else None, actor=actor,
                                 enterprise_id=enterprise_id, reason=reason)
        except ReviewError as err:
            if err.code == "transition_not_allowed":
                status_now = before["status"] if before else "none"
                raise PeriodStateError(f"{enterprise_id} {period} has a submission in force ({status_now}); only a"
                                       " missing, rejected or reopened month can be substituted",
                                       code="submission_in_force", current=before) from err
            raise
        _check_period(period, settings=settings, today=today)
        enterprise = session.get(Enterprise, enterprise_id)
        if enterprise is None:
            raise ReviewError(f"no enterprise {enterprise_id} in the registry", code="unknown_enterprise")
        if not _is_key_emitter(session, enterprise, settings=settings):
            raise PeriodStateError(f"{enterprise_id} is not a key emitter: its missing months are not substituted",
                                   code="not_key_emitter", current=before)
        window = chosen_rule.window(period)
        candidates = _basis_candidates(session, enterprise_id=enterprise_id, window=window)
        basis_period = chosen_rule.choose(period, {m: c.net_tco2e for m, c in candidates.items()})
        if basis_period is None:
            raise PeriodStateError(f"{enterprise_id} has no calculated month from {window[0]} to {window[-1]} to base"
                                   f" a substitution of {period} on", code="no_basis_month", current=before,
                                   detail=window)
        record = _write(session, actor=actor, row=row, status=status, enterprise_id=enterprise_id, period=period,
                        reason=reason, rule=chosen_rule.name, basis=candidates[basis_period], before=before)
        session.commit()
    except IntegrityError:
        # Another officer created the month's review row between our read and our insert.
        session.rollback()
        raise StaleStateError(review_state(session.get(PeriodReview, (enterprise_id, period)))) from None
    except BaseException:
        session.rollback()
        raise
    return record


def _write(session: Session, *, actor: Actor, row: PeriodReview | None, status: str, enterprise_id: str, period: str,
           reason: str, rule: str, basis: Calculation, before: dict[str, Any] | None) -> dict[str, Any]:
    now = datetime.now(UTC)
    totals = dict(basis.totals)
    substitution = Substitution(substitution_id=str(uuid.uuid4()), enterprise_id=enterprise_id, period=period,
                                rule=rule, basis_period=basis.period, totals=totals, actor_id=actor.actor_id,
                                reason=reason, created_at=now)
    calculation = Calculation(
        calculation_id=str(uuid.uuid4()), enterprise_id=enterprise_id, period=period,
        run_id=f"substitution:{substitution.substitution_id}", edition=basis.edition, ruleset=basis.ruleset,
        grid_region=basis.grid_region, gwp_set=basis.gwp_set, totals=totals, totals_sha256=content_hash(totals),
        net_tco2e=float(basis.net_tco2e), submission_ids=[], is_substituted=True, created_at=now)
    session.add_all([substitution, calculation])
    if row is None:
        row = PeriodReview(enterprise_id=enterprise_id, period=period, version=0, held=False, held_reasons=[])
        session.add(row)
    from_status = before["status"] if before else "none"
    row.status, row.version = status, row.version + 1
    row.submission_id, row.calculation_id, row.is_substituted = None, calculation.calculation_id, True
    row.held, row.held_reasons = False, []
    row.updated_at, row.updated_by = now, actor.actor_id
    session.add(ReviewEvent(enterprise_id=enterprise_id, period=period, action="substitute", from_status=from_status,
                            to_status=status, actor_id=actor.actor_id, role=actor.role, comment=reason, created_at=now))
    session.flush()
    record = record_of(substitution)
    target = f"substitution:{substitution.substitution_id}"
    audit.append(session, actor=actor, action="substitution.create", target=target, after=record,
                 detail={"enterprise_id": enterprise_id, "period": period, "rule": rule, "basis_period": basis.period,
                         "basis_calculation_id": basis.calculation_id, "net_tco2e": basis.net_tco2e, "reason": reason})
    state = review_state(row)
    audit.append(session, actor=actor, action="review.substitute", target=f"period:{enterprise_id}:{period}",
                 before=before, after=state, detail={"reason": reason, "substitution_id": substitution.substitution_id,
                                                     "calculation_id": calculation.calculation_id})
    return {**record, "calculation_id": calculation.calculation_id, "review": state}


def list_substitutions(session: Session, *, actor: Actor, enterprise_id: str | None = None, limit: int = 1000,
                       offset: int = 0) -> dict[str, Any]:
    """A page of the substitutions an actor may see, newest first: an enterprise user sees only its own enterprises'."""
    if enterprise_id is not None and not actor.speaks_for(enterprise_id):
        raise ReviewError(f"{actor.actor_id} does not act for enterprise {enterprise_id}", code="not_own_enterprise")
    wanted = {enterprise_id} if enterprise_id is not None else (
        actor.enterprise_ids if actor.role == "enterprise" else None)
    total, rows = repository.listed(session, enterprise_ids=wanted, limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "items": [record_of(s) for s in rows]}

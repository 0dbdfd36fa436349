"""Review use cases: act on an enterprise-period, and record what a pipeline run calculated.

Each call is one transaction: the period's row is locked, the rules of ``accounting.review`` decide,
and the new state, its review event and its audit entry are written together. A caller that names
the version it saw gets ``StaleStateError`` (409 with the current state) when someone acted first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from accounting.audit import content_hash
from accounting.calculation import TOTAL_COLUMNS
from accounting.review import Actor, ReviewError, next_status
from api.services.submissions import review_state
from api.store import audit
from api.store.schema import Calculation, PeriodReview, ReviewEvent, Submission, VerifiedEmissions

SYSTEM = Actor(actor_id="pipeline", role="system")
#: Totals that add up over months (intensities and ratios do not).
ADDITIVE = tuple(c for c in TOTAL_COLUMNS if "_per_" not in c)


class StaleStateError(Exception):
    """The period changed since the caller looked: its current state is attached."""

    code = "stale_state"

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("the period changed since you loaded it; reload and decide again")
        self.current = current


class PeriodStateError(ReviewError):
    """A review action refused because of the period's data, not its status (held, months not locked...)."""

    def __init__(self, message: str, *, code: str, current: dict[str, Any] | None, detail: Any = None) -> None:
        super().__init__(message, code=code)
        self.current = current
        self.detail = detail


def _locked_row(session: Session, enterprise_id: str, period: str) -> PeriodReview | None:
    statement = select(PeriodReview).where(PeriodReview.enterprise_id == enterprise_id, PeriodReview.period == period)
    return session.execute(statement.with_for_update()).scalar_one_or_none()


def _event(session: Session, row: PeriodReview, *, action: str, from_status: str, actor: Actor, now: datetime,
           comment: str | None = None, row_number: int | None = None, recommendation: str | None = None) -> None:
    session.add(ReviewEvent(enterprise_id=row.enterprise_id, period=row.period, action=action,
                            from_status=from_status, to_status=row.status, actor_id=actor.actor_id, role=actor.role,
                            comment=comment, row_number=row_number, recommendation=recommendation, created_at=now))


def act(session: Session, *, actor: Actor, enterprise_id: str, period: str, action: str, reason: str | None = None,
        expected_version: int | None = None, row_number: int | None = None,
        recommendation: str | None = None) -> dict[str, Any]:
    """Take a review action; return the period's new state. See the module docstring."""
    try:
        row = _locked_row(session, enterprise_id, period)
        before = review_state(row)
        if expected_version is not None and (row.version if row else 0) != expected_version:
            raise StaleStateError(before)
        if action == "substitute":
            raise ReviewError("substitution goes through the substitution service", code="unknown_action")
        try:
            status = next_status(action, current=row.status if row else None, actor=actor,
                                 enterprise_id=enterprise_id, reason=reason)
        except ReviewError as err:
            if err.code == "transition_not_allowed":
                raise PeriodStateError(str(err), code=err.code, current=before) from err
            raise
        if row is None:
            raise PeriodStateError(f"{enterprise_id} {period} has no submission", code="transition_not_allowed",
                                   current=None)
        if recommendation is not None and recommendation not in ("approve", "reject"):
            raise ReviewError("a recommendation is approve or reject", code="invalid_recommendation")
        now = datetime.now(UTC)
        _guard(session, row, action=action, before=before)
        from_status = row.status
        if status != row.status:
            row.status, row.version = status, row.version + 1
            row.updated_at, row.updated_by = now, actor.actor_id
        _event(session, row, action=action, from_status=from_status, actor=actor, now=now, comment=reason,
               row_number=row_number, recommendation=recommendation)
        detail: dict[str, Any] = {"reason": reason} if reason else {}
        if action == "lock" and len(period) == 4:
            detail["verified_version"] = _lock_year(session, row, actor=actor, reason=reason, now=now)
        audit.append(session, actor=actor, action=f"review.{action}", target=f"period:{enterprise_id}:{period}",
                     before=before, after=review_state(row),
                     detail={**detail, **({"row_number": row_number} if row_number else {}),
                             **({"recommendation": recommendation} if recommendation else {})})
        state = review_state(row)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    assert state is not None
    return state


def _guard(session: Session, row: PeriodReview, *, action: str, before: dict[str, Any] | None) -> None:
    """Refusals that depend on the period's data: held by checks, no calculation, months not locked."""
    if action == "approve" and row.held:
        raise PeriodStateError(f"{row.enterprise_id} {row.period} is held back by data-quality checks",
                               code="held_by_checks", current=before, detail=row.held_reasons)
    if action in ("start_review", "approve", "lock") and row.calculation_id is None:
        raise PeriodStateError(f"{row.enterprise_id} {row.period} has no calculated balance yet",
                               code="not_calculated", current=before)
    if action == "lock" and len(row.period) == 4:
        open_months = [m for m, status in _month_statuses(session, row.enterprise_id, row.period).items()
                       if status != "locked"]
        if open_months:
            raise PeriodStateError(f"{row.enterprise_id} {row.period}: every month must be locked first",
                                   code="months_not_locked", current=before, detail=open_months)


def _month_statuses(session: Session, enterprise_id: str, year: str) -> dict[str, str]:
    months = {f"{year}-{m:02d}": "none" for m in range(1, 13)}
    for review in session.scalars(select(PeriodReview).where(PeriodReview.enterprise_id == enterprise_id,
                                                             PeriodReview.period.startswith(f"{year}-"))).all():
        months[review.period] = review.status
    return months


def year_totals(session: Session, enterprise_id: str, year: str) -> tuple[dict[str, float], list[str]]:
    """The sum of the twelve months' current calculations (substituted months included), and their ids."""
    ids = list(session.scalars(select(PeriodReview.calculation_id).where(
        PeriodReview.enterprise_id == enterprise_id, PeriodReview.period.startswith(f"{year}-"),
        PeriodReview.calculation_id.is_not(None))).all())
    totals = dict.fromkeys(ADDITIVE, 0.0)
    for calculation in session.scalars(select(Calculation).where(Calculation.calculation_id.in_(ids))).all():
        for key in ADDITIVE:
            totals[key] += float(calculation.totals.get(key) or 0.0)
    return totals, sorted(i for i in ids if i)


def totals_diff(old: dict[str, float], new: dict[str, float]) -> dict[str, dict[str, float]]:
    """The totals that moved: old, new and the change."""
    return {k: {"old": old.get(k, 0.0), "new": new.get(k, 0.0), "change": new.get(k, 0.0) - old.get(k, 0.0)}
            for k in sorted(set(old) | set(new)) if abs(new.get(k, 0.0) - old.get(k, 0.0)) > 1e-9}


def _lock_year(session: Session, row: PeriodReview, *, actor: Actor, reason: str | None, now: datetime) -> int:
    """Store the verified emissions of a locked year: version 1, or the next version with its diff (a restatement)."""
    totals, ids = year_totals(session, row.enterprise_id, row.period)
    previous = session.scalars(select(VerifiedEmissions).where(
        VerifiedEmissions.enterprise_id == row.enterprise_id, VerifiedEmissions.year == row.period)
        .order_by(VerifiedEmissions.version.desc()).limit(1)).one_or_none()
    version = previous.version + 1 if previous else 1
    session.add(VerifiedEmissions(
        enterprise_id=row.enterprise_id, year=row.period, version=version, totals=totals,
        net_tco2e=totals["net_tco2e"], calculation_ids=ids, locked_by=actor.actor_id, locked_at=now,
        reason=reason if previous else None, diff=totals_diff(previous.totals, totals) if previous else None))
    return version


# ---------------------------------------------------------------------------------------------
# What the pipeline calculated


def record_calculations(session: Session, *, balances: Iterable[dict[str, Any]], run_id: str) -> dict[str, int]:
    """Store each changed balance as a calculation and move periods waiting for it to ``calculated``.

    ``balances`` are published enterprise-period balances (monthly and yearly) with the SHA-256 of the
    submissions behind them (``source_sha256s``). A period moves to calculated only when the balance
    was made from its current submission; a period already under review keeps its state (a change
    after review is a restatement, reported by the restatement diff).
    """
    counts = {"calculations": 0, "calculated": 0}
    now = datetime.now(UTC)
    try:
        sha_to_id = dict(session.execute(select(Submission.content_sha256, Submission.submission_id)).all())
        for balance in balances:
            enterprise_id, period = balance["enterprise_id"], balance["period"]
            totals = {k: balance.get(k) for k in TOTAL_COLUMNS}
            digest = content_hash(totals)
            latest = session.scalars(select(Calculation).where(
                Calculation.enterprise_id == enterprise_id, Calculation.period == period)
                .order_by(Calculation.created_at.desc()).limit(1)).one_or_none()
            if latest is None or latest.totals_sha256 != digest or latest.edition != balance["edition"]:
                latest = Calculation(
                    calculation_id=str(uuid.uuid4()), enterprise_id=enterprise_id, period=period, run_id=run_id,
                    edition=balance["edition"], ruleset=balance["ruleset"], grid_region=balance["grid_region"],
                    gwp_set=balance["gwp_set"], totals=totals, totals_sha256=digest,
                    net_tco2e=float(balance["net_tco2e"]),
                    submission_ids=sorted(sha_to_id.get(s, s) for s in _sources(balance)),
                    is_substituted=bool(balance.get("is_substituted", False)), created_at=now)
                session.add(latest)
                counts["calculations"] += 1
            counts["calculated"] += _advance(session, latest, now=now)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return counts


def _sources(balance: dict[str, Any]) -> list[str]:
    """The submissions (SHA-256) behind a balance; none for a substituted month."""
    sources = balance.get("source_sha256s")
    return [] if sources is None else [str(s) for s in sources]


def _advance(session: Session, calculation: Calculation, *, now: datetime) -> int:
    """Move the period to calculated when it waits for this calculation; 1 when it moved."""
    row = _locked_row(session, calculation.enterprise_id, calculation.period)
    if len(calculation.period) == 4 and row is None:
        months = _month_statuses(session, calculation.enterprise_id, calculation.period)
        if "none" in months.values() or "submitted" in months.values():
            return 0
        row = PeriodReview(enterprise_id=calculation.enterprise_id, period=calculation.period, status="submitted",
                           version=0, is_substituted=False, held=False, held_reasons=[], updated_at=now,
                           updated_by=SYSTEM.actor_id)
        session.add(row)
    if row is None or row.status not in ("submitted", "reopened", "calculated"):
        return 0
    if len(calculation.period) == 7 and row.is_substituted and row.submission_id is None \
            and not calculation.is_substituted:
        return 0  # a substituted month keeps its substitution until a submission of its own replaces it
    if len(calculation.period) == 7 and row.submission_id not in calculation.submission_ids:
        return 0  # calculated from an older submission; the run for the newer one will follow
    if row.status == "calculated" and row.calculation_id == calculation.calculation_id:
        return 0
    before = review_state(row)
    from_status = row.status
    row.status = next_status("calculate", current=row.status, actor=SYSTEM, enterprise_id=row.enterprise_id)
    row.calculation_id, row.version = calculation.calculation_id, row.version + 1
    row.is_substituted = bool(calculation.is_substituted)  # a submission's data replaces a substitution
    row.updated_at, row.updated_by = now, SYSTEM.actor_id
    _event(session, row, action="calculate", from_status=from_status, actor=SYSTEM, now=now,
           comment=f"calculation {calculation.calculation_id}")
    audit.append(session, actor=SYSTEM, action="review.calculate",
                 target=f"period:{row.enterprise_id}:{row.period}", before=before, after=review_state(row),
                 detail={"calculation_id": calculation.calculation_id, "net_tco2e": calculation.net_tco2e})
    return 1


def record_findings(session: Session, *, findings: Iterable[dict[str, Any]], periods: Iterable[tuple[str, str]],
                    run_id: str) -> int:
    """Store a run's data-quality findings and hold (or release) each checked period accordingly.

    ``periods`` are all enterprise-periods the run checked: one without a ``hold`` finding is released.
    """
    from api.store.schema import QualityFinding

    now = datetime.now(UTC)
    by_period: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        for finding in findings:
            key = (finding["enterprise_id"], finding["period"])
            by_period.setdefault(key, []).append(finding)
            session.add(QualityFinding(enterprise_id=key[0], period=key[1], rule=finding["rule"],
                                       severity=finding["severity"], detail=finding.get("detail", {}),
                                       run_id=run_id, created_at=now))
        changed = 0
        for enterprise_id, period in periods:
            holds = [f for f in by_period.get((enterprise_id, period), []) if f["severity"] == "hold"]
            row = _locked_row(session, enterprise_id, period)
            if row is None or row.held == bool(holds):
                continue
            before = review_state(row)
            row.held = bool(holds)
            row.held_reasons = [{"rule": f["rule"], "detail": f.get("detail", {})} for f in holds]
            audit.append(session, actor=SYSTEM, action="review.hold" if holds else "review.release",
                         target=f"period:{enterprise_id}:{period}", before=before, after=review_state(row),
                         detail={"run_id": run_id, "rules": [f["rule"] for f in holds]})
            changed += 1
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return changed

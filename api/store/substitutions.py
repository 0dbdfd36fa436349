"""Repository of substitutions: the conservative values standing in for missing enterprise-months.

A substitution is in force for an enterprise-month while the month's review row says it is
substituted and no submission of its own has come since (``submission_id`` is empty): the pipeline
then publishes the substituted totals for that month, flagged, and ignores any earlier rejected
lines of it. A later submission replaces it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.store.schema import Calculation, PeriodReview, Substitution


def latest(session: Session, *, enterprise_id: str, period: str) -> Substitution | None:
    """The most recent substitution of an enterprise-month (None if it was never substituted)."""
    return session.scalars(select(Substitution).where(
        Substitution.enterprise_id == enterprise_id, Substitution.period == period)
        .order_by(Substitution.created_at.desc()).limit(1)).one_or_none()


def listed(session: Session, *, enterprise_ids: Collection[str] | None = None, limit: int = 1000, offset: int = 0
           ) -> tuple[int, list[Substitution]]:
    """One page of the substitutions (of these enterprises), newest first, and how many there are."""
    statement = select(Substitution)
    if enterprise_ids is not None:
        statement = statement.where(Substitution.enterprise_id.in_(sorted(enterprise_ids)))
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    page = statement.order_by(Substitution.created_at.desc(), Substitution.substitution_id).limit(limit).offset(offset)
    return total, list(session.scalars(page).all())


def made_after(session: Session, *, after: str) -> list[tuple[str, str, str]]:
    """(cursor, substitution id, month) of the substitutions made after ``after`` (empty: all), oldest first.

    The cursor is ``"<created_at ISO>|<substitution id>"``, which sorts as the substitutions do.
    """
    rows = session.execute(select(Substitution.created_at, Substitution.substitution_id, Substitution.period)
                           .order_by(Substitution.created_at, Substitution.substitution_id)).all()
    found = [(f"{created.isoformat()}|{substitution_id}", substitution_id, period)
             for created, substitution_id, period in rows]
    return [row for row in found if row[0] > after]


def in_force(session: Session, *, months: list[str] | None = None) -> list[dict[str, Any]]:
    """The substitutions in force (for ``months``, or all): totals and calculation choices of each, by month."""
    statement = (select(PeriodReview, Calculation)
                 .join(Calculation, Calculation.calculation_id == PeriodReview.calculation_id)
                 .where(PeriodReview.is_substituted.is_(True), PeriodReview.submission_id.is_(None),
                        Calculation.is_substituted.is_(True))
                 .order_by(PeriodReview.enterprise_id, PeriodReview.period))
    if months is not None:
        statement = statement.where(PeriodReview.period.in_(months))
    found = []
    for review, calculation in session.execute(statement).all():
        substitution = latest(session, enterprise_id=review.enterprise_id, period=review.period)
        found.append({
            "enterprise_id": review.enterprise_id, "period": review.period, "totals": dict(calculation.totals),
            "calculation_id": calculation.calculation_id, "edition": calculation.edition,
            "ruleset": calculation.ruleset, "grid_region": calculation.grid_region, "gwp_set": calculation.gwp_set,
            "substitution_id": substitution.substitution_id if substitution else None,
            "rule": substitution.rule if substitution else None,
            "basis_period": substitution.basis_period if substitution else None,
        })
    return found


def keys_in_force(session: Session, *, months: list[str] | None = None) -> set[tuple[str, str]]:
    """(enterprise, month) of the substitutions in force: their lines, if any, are not counted."""
    return {(s["enterprise_id"], s["period"]) for s in in_force(session, months=months)}

"""Repository of review reads and evidence: period states with their history, the review queue, evidence links.

Writes of review states go through ``api.services.review.act``; this module only reads them, and
stores evidence files and their links for ``api.services.evidence`` (which audits each write).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from api.store.schema import (
    AuditEntry,
    Calculation,
    Enterprise,
    Evidence,
    EvidenceLink,
    PeriodReview,
    ReviewEvent,
    SubmissionPeriod,
    VerifiedEmissions,
)


def get_period(session: Session, *, enterprise_id: str, period: str) -> PeriodReview | None:
    return session.get(PeriodReview, (enterprise_id, period))


def history(session: Session, *, enterprise_id: str, period: str) -> list[ReviewEvent]:
    """Every review event of the period, oldest first."""
    return list(session.scalars(select(ReviewEvent).where(ReviewEvent.enterprise_id == enterprise_id,
                                                          ReviewEvent.period == period)
                                .order_by(ReviewEvent.created_at, ReviewEvent.id)).all())


def get_calculation(session: Session, *, calculation_id: str | None) -> Calculation | None:
    return None if calculation_id is None else session.get(Calculation, calculation_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFilter:
    """What the review queue shows; ``None`` means no restriction.

    ``visible`` restricts the queue to the enterprises an enterprise user acts for (an empty set shows nothing).
    """

    statuses: Sequence[str] = ()
    sector_code: str | None = None
    category: str | None = None
    held: bool | None = None
    period_prefix: str | None = None
    enterprise_id: str | None = None
    visible: frozenset[str] | None = None


def _conditions(where: QueueFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.statuses:
        conditions.append(PeriodReview.status.in_(list(where.statuses)))
    if where.sector_code is not None:
        conditions.append(Enterprise.sector_code == where.sector_code)
    if where.category is not None:
        conditions.append(Enterprise.category == where.category)
    if where.held is not None:
        conditions.append(PeriodReview.held == where.held)
    if where.period_prefix:
        conditions.append(PeriodReview.period.startswith(where.period_prefix, autoescape=True))
    if where.enterprise_id is not None:
        conditions.append(PeriodReview.enterprise_id == where.enterprise_id)
    if where.visible is not None:
        conditions.append(PeriodReview.enterprise_id.in_(sorted(where.visible)))
    return conditions


def _queue_select(where: QueueFilter) -> Select[PeriodReview, Enterprise, float]:
    return (select(PeriodReview, Enterprise, Calculation.net_tco2e)
            .outerjoin(Enterprise, Enterprise.enterprise_id == PeriodReview.enterprise_id)
            .outerjoin(Calculation, Calculation.calculation_id == PeriodReview.calculation_id)
            .where(and_(True, *_conditions(where))))


def queue(session: Session, *, where: QueueFilter, limit: int, offset: int
          ) -> tuple[list[tuple[PeriodReview, Enterprise | None, float | None]], int]:
    """One page of enterprise-periods matching ``where`` (by period, then enterprise) and the number of all matches."""
    counted = _queue_select(where).with_only_columns(func.count(), maintain_column_froms=True)
    total = int(session.scalar(counted) or 0)
    rows = session.execute(_queue_select(where).order_by(PeriodReview.period, PeriodReview.enterprise_id)
                           .limit(limit).offset(offset)).all()
    return [(review, enterprise, net) for review, enterprise, net in rows], total


def verified_versions(session: Session, *, enterprise_id: str, year: str) -> list[VerifiedEmissions]:
    """The verified emissions of a locked enterprise-year, version 1 first."""
    return list(session.scalars(select(VerifiedEmissions).where(
        VerifiedEmissions.enterprise_id == enterprise_id, VerifiedEmissions.year == year)
        .order_by(VerifiedEmissions.version)).all())


def enterprise_exists(session: Session, *, enterprise_id: str) -> bool:
    return session.get(Enterprise, enterprise_id) is not None


def reports_period(session: Session, *, submission_id: str, enterprise_id: str, period: str) -> bool:
    """True when the submission holds lines of the enterprise-period (superseded or not)."""
    found = session.scalar(select(SubmissionPeriod.id).where(
        SubmissionPeriod.submission_id == submission_id, SubmissionPeriod.enterprise_id == enterprise_id,
        SubmissionPeriod.period == period).limit(1))
    return found is not None


# ---------------------------------------------------------------------------------------------
# Evidence


def get_evidence(session: Session, *, sha256: str) -> Evidence | None:
    return session.get(Evidence, sha256)


def add_evidence(session: Session, evidence: Evidence) -> None:
    """Stage the file and send it now, so that a concurrent upload of the same bytes surfaces here."""
    session.add(evidence)
    session.flush()


def _is(column: Any, value: Any) -> ColumnElement[bool]:
    """``column = value``, or ``column IS NULL`` for None (a unique constraint treats NULLs as distinct)."""
    return column.is_(None) if value is None else column == value  # type: ignore[no-any-return]


def find_link(session: Session, *, sha256: str, enterprise_id: str, period: str, submission_id: str | None,
              row_number: int | None) -> EvidenceLink | None:
    return session.scalars(select(EvidenceLink).where(
        EvidenceLink.evidence_sha256 == sha256, EvidenceLink.enterprise_id == enterprise_id,
        EvidenceLink.period == period, _is(EvidenceLink.submission_id, submission_id),
        _is(EvidenceLink.row_number, row_number)).limit(1)).one_or_none()


def add_link(session: Session, link: EvidenceLink) -> None:
    session.add(link)
    session.flush()


def links_of_period(session: Session, *, enterprise_id: str, period: str, limit: int = 1000, offset: int = 0
                    ) -> tuple[int, list[tuple[EvidenceLink, Evidence]]]:
    """A page of the evidence linked to an enterprise-period (or its lines), oldest link first, and the count."""
    where = (EvidenceLink.enterprise_id == enterprise_id, EvidenceLink.period == period)
    total = session.scalar(select(func.count()).select_from(EvidenceLink).where(*where)) or 0
    rows = session.execute(select(EvidenceLink, Evidence)
                           .join(Evidence, Evidence.sha256 == EvidenceLink.evidence_sha256).where(*where)
                           .order_by(EvidenceLink.linked_at, EvidenceLink.id).limit(limit).offset(offset)).all()
    return total, [(link, evidence) for link, evidence in rows]


def evidence_enterprises(session: Session, *, sha256: str) -> set[str]:
    """The enterprises an evidence file is linked to."""
    return set(session.scalars(select(EvidenceLink.enterprise_id).where(EvidenceLink.evidence_sha256 == sha256)
                               .distinct()).all())


# ---------------------------------------------------------------------------------------------
# Audit log


def audit_count(session: Session, *, target: str | None = None, actor_id: str | None = None,
                action: str | None = None) -> int:
    """How many audit entries match the filters of ``api.store.audit.query``."""
    conditions: Iterable[ColumnElement[bool]] = [
        *([AuditEntry.target.startswith(target)] if target else []),
        *([AuditEntry.actor_id == actor_id] if actor_id else []),
        *([AuditEntry.action == action] if action else []),
    ]
    return int(session.scalar(select(func.count()).select_from(AuditEntry).where(and_(True, *conditions))) or 0)

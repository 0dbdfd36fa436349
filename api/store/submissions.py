"""Repository of accepted submissions: lookups by id, content hash and idempotency key, and insert."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.store.schema import Submission, SubmissionPeriod


def get(session: Session, *, submission_id: str) -> Submission | None:
    return session.get(Submission, submission_id)


def find_by_sha256(session: Session, *, content_sha256: str) -> Submission | None:
    return session.scalars(select(Submission).where(Submission.content_sha256 == content_sha256)).one_or_none()


def find_by_idempotency_key(session: Session, *, idempotency_key: str) -> Submission | None:
    return session.scalars(select(Submission).where(Submission.idempotency_key == idempotency_key)).one_or_none()


def add(session: Session, submission: Submission) -> None:
    """Stage the row and send it to the database now, so a unique conflict surfaces here."""
    session.add(submission)
    session.flush()


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Submission)) or 0)


def in_force(session: Session, *, months: list[str]) -> list[tuple[Submission, set[tuple[str, str]]]]:
    """The submissions in force for ``months`` (annual periods count for December) and which of their
    enterprise-periods are still theirs (not superseded), oldest first."""
    years = sorted({m[:4] for m in months if m.endswith("-12")})
    rows = session.execute(
        select(SubmissionPeriod.submission_id, SubmissionPeriod.enterprise_id, SubmissionPeriod.period)
        .where(SubmissionPeriod.superseded_by.is_(None))
        .where(SubmissionPeriod.period.in_([*months, *years]))).all()
    keys: dict[str, set[tuple[str, str]]] = {}
    for submission_id, enterprise_id, period in rows:
        keys.setdefault(submission_id, set()).add((enterprise_id, period))
    submissions = session.scalars(select(Submission).where(Submission.submission_id.in_(keys))
                                  .order_by(Submission.received_at, Submission.submission_id)).all()
    return [(s, keys[s.submission_id]) for s in submissions]


def months_reported(session: Session) -> list[str]:
    """Every month partition some submission in force reports (annual periods count for December)."""
    periods = session.scalars(select(SubmissionPeriod.period).where(SubmissionPeriod.superseded_by.is_(None))
                              .distinct()).all()
    return sorted({p if len(p) == 7 else f"{p}-12" for p in periods})


def received_after(session: Session, *, after: str) -> list[tuple[str, str, list[str]]]:
    """(cursor, submission id, periods) of the submissions received after ``after`` (empty: all), oldest first.

    The cursor is ``"<received_at ISO>|<submission id>"``, which sorts as the submissions do.
    """
    rows = session.execute(select(Submission.received_at, Submission.submission_id, Submission.periods)
                           .order_by(Submission.received_at, Submission.submission_id)).all()
    found = [(f"{received.isoformat()}|{submission_id}", submission_id, list(periods))
             for received, submission_id, periods in rows]
    return [row for row in found if row[0] > after]

"""Repository of accepted submissions: lookups by id, content hash and idempotency key, and insert."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.store.schema import Submission


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

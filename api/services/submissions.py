"""Accepting an activity-data file: validate it whole, check who sends it for which periods, store it.

Why this order: a file with any invalid line is refused as a whole and leaves no trace, because the
pipeline would otherwise count a half-understood file. Beyond the template, a submission is refused
(with every offending row) when it names an enterprise outside the registry, a period before the
zone's first or not yet begun, a period whose deadline has passed (for the enterprise role, unless an
officer sent the period back: rejected or reopened periods take the enterprise's correction at any time;
otherwise an officer must reopen it or submit on its behalf), another enterprise than the sender's own (403), or
a period under review, verified or locked (409: an officer must reopen it first).

A valid file is stored whole (exact bytes, hash, sender, time, template version) with the
enterprise-periods it reports; for each of them it supersedes the earlier submission (a correction
is a new submission, never an edit), moves the period to ``submitted`` and writes review events and
audit entries, all in one transaction. The pipeline reads the submissions in force from here.

Why idempotency by content and by key: clients retry. The same bytes (with or without a key) or the
same ``Idempotency-Key`` with the same bytes get the first receipt back and store nothing new; the
same key with other bytes is a client bug and is refused. Validation failures are not remembered.

Used by the API router, by ``carbon ingest`` and by the inbox sensor; no FastAPI here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounting.activity import TEMPLATE_VERSION, SourceFile, parse_activity
from accounting.errors import InvalidFileError, RowError
from accounting.factors import FactorLibrary, load_library
from accounting.periods import deadline, is_late, period_problem
from accounting.review import NONE, Actor, ReviewError, next_status
from api.store import audit
from api.store import submissions as repository
from api.store.schema import Enterprise, PeriodReview, ReviewEvent, Submission, SubmissionPeriod
from pipelines.settings import Settings
from pipelines.warehouse import fuel_rules

MEDIA_TYPES = {
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".json": "application/json",
}
MAX_FILENAME = 255
#: Review states in which an officer has sent a period back to the enterprise for correction.
SENT_BACK = ("rejected", "reopened")


class IdempotencyKeyReusedError(Exception):
    """The client sent an ``Idempotency-Key`` it already used, with different content."""

    code = "idempotency_key_reused"

    def __init__(self, idempotency_key: str, first_submission_id: str) -> None:
        super().__init__(f"Idempotency-Key {idempotency_key!r} was already used for submission "
                         f"{first_submission_id} with different content; use a new key for new content")
        self.idempotency_key = idempotency_key
        self.first_submission_id = first_submission_id


class SubmissionNotFoundError(LookupError):
    """No submission has this id."""

    code = "submission_not_found"

    def __init__(self, submission_id: str) -> None:
        super().__init__(f"no submission with id {submission_id!r}")
        self.submission_id = submission_id


class ForeignEnterpriseError(PermissionError):
    """An enterprise user sent lines of an enterprise it does not act for."""

    code = "not_own_enterprise"

    def __init__(self, actor: Actor, enterprise_ids: list[str]) -> None:
        super().__init__(f"{actor.actor_id} does not act for {', '.join(enterprise_ids)}; nothing was stored")
        self.enterprise_ids = enterprise_ids


class PeriodClosedError(Exception):
    """A period is under review, verified or locked: a new submission must wait for an officer's reopen."""

    code = "period_not_open"

    def __init__(self, periods: list[dict[str, Any]]) -> None:
        names = ", ".join(f"{p['enterprise_id']} {p['period']} ({p['status']})" for p in periods)
        super().__init__(f"these periods do not take submissions now: {names}; an officer must reopen them first")
        self.periods = periods


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionOutcome:
    """The receipt (JSON-ready) and whether this call stored it (False: a replay of the first one)."""

    receipt: dict[str, Any]
    created: bool


def file_suffix(source: SourceFile) -> str:
    """The suffix under which the pipeline reads the file as the validator did (``read_table``'s dispatch)."""
    suffix = PurePath(source.name).suffix.lower()
    if suffix == ".xlsx" or source.content[:2] == b"PK":
        return ".xlsx"
    if suffix == ".json" or source.content.lstrip()[:1] in (b"[", b"{"):
        return ".json"
    return ".csv"


def clean_filename(filename: str | None) -> str:
    """The client's file name without any folder part, for display only (never used as a path)."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:MAX_FILENAME] or "upload"


def receipt_of(submission: Submission) -> dict[str, Any]:
    """The JSON-ready receipt of a stored submission."""
    received_at = submission.received_at
    if received_at.tzinfo is None:  # SQLite keeps no offset; everything is stored in UTC
        received_at = received_at.replace(tzinfo=UTC)
    return {
        "submission_id": submission.submission_id,
        "content_sha256": submission.content_sha256,
        "received_at": received_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "filename": submission.filename,
        "line_count": submission.line_count,
        "enterprise_ids": list(submission.enterprise_ids),
        "periods": list(submission.periods),
        "submitter_id": submission.submitter_id,
        "template_version": submission.template_version,
        "status": submission.status,
    }


def get_receipt(session: Session, *, submission_id: str, actor: Actor) -> dict[str, Any]:
    """The receipt of a submission; SubmissionNotFoundError if there is none or it is not the actor's to see.

    An enterprise user sees the submissions that report only its own enterprises.
    """
    submission = repository.get(session, submission_id=submission_id)
    if submission is None or not all(actor.speaks_for(e) for e in submission.enterprise_ids):
        raise SubmissionNotFoundError(submission_id)
    return receipt_of(submission)


def _earlier(session: Session, *, content_sha256: str, idempotency_key: str | None) -> Submission | None:
    """The first submission this request repeats; IdempotencyKeyReusedError if its key names other bytes."""
    if idempotency_key is not None:
        keyed = repository.find_by_idempotency_key(session, idempotency_key=idempotency_key)
        if keyed is not None:
            if keyed.content_sha256 != content_sha256:
                raise IdempotencyKeyReusedError(idempotency_key, keyed.submission_id)
            return keyed
    return repository.find_by_sha256(session, content_sha256=content_sha256)


def _sent_back(session: Session, lines: pd.DataFrame) -> set[tuple[str, str]]:
    """The file's enterprise-periods that an officer sent back for correction (rejected or reopened)."""
    keys = set(zip(lines["enterprise_id"], lines["period"], strict=True))
    rows = session.execute(select(PeriodReview.enterprise_id, PeriodReview.period).where(
        PeriodReview.enterprise_id.in_({e for e, _ in keys}), PeriodReview.period.in_({p for _, p in keys}),
        PeriodReview.status.in_(SENT_BACK))).all()
    return {(e, p) for e, p in rows} & keys


def _refusals(session: Session, lines: pd.DataFrame, *, settings: Settings, actor: Actor,
              today: date) -> list[RowError]:
    """Every row that names an unknown enterprise, an impossible period, or a period past its deadline.

    The deadline binds the enterprise's own submissions; a period an officer sent back takes its correction
    whenever it comes (that is what sending it back asks for).
    """
    known = set(session.scalars(select(Enterprise.enterprise_id)).all())
    errors: list[RowError] = []
    late_allowed = actor.role in ("officer", "engineer")
    sent_back = set() if late_allowed else _sent_back(session, lines)
    for enterprise_id, period, row in zip(lines["enterprise_id"], lines["period"], lines["row_number"], strict=True):
        if enterprise_id not in known:
            errors.append(RowError(int(row), "enterprise_id", enterprise_id,
                                   "an enterprise of the zone registry", "unknown_enterprise"))
        problem = period_problem(period, today=today, first_period=settings.first_period)
        if problem:
            errors.append(RowError(int(row), "period", period, problem, "out_of_period"))
        elif (not late_allowed and (enterprise_id, period) not in sent_back
              and is_late(period, today=today, day=settings.submission_deadline_day)):
            due = deadline(period, day=settings.submission_deadline_day).isoformat()
            errors.append(RowError(int(row), "period", period, f"a period whose deadline ({due}) has not passed;"
                                   " ask an officer to reopen it or to submit on your behalf", "late_submission"))
    return errors


def _open_periods(session: Session, keys: list[tuple[str, str]], *,
                  actor: Actor) -> dict[tuple[str, str], PeriodReview]:
    """The review rows of the periods, locked for this transaction; PeriodClosedError if any refuses a submission.

    A period reported for the first time gets a placeholder row (status ``none``) inserted with "do nothing
    if it exists" before the lock, so two first submissions for one period at once queue on the same row
    instead of both inserting it; the placeholder becomes ``submitted`` or rolls back with the transaction.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    placeholders = [{"enterprise_id": e, "period": p, "status": NONE, "version": 0, "is_substituted": False,
                     "held": False, "held_reasons": [], "updated_at": datetime.now(UTC), "updated_by": actor.actor_id}
                    for e, p in keys]
    session.execute(insert(PeriodReview).values(placeholders).on_conflict_do_nothing())
    rows = {(r.enterprise_id, r.period): r for r in session.scalars(
        select(PeriodReview).where(PeriodReview.enterprise_id.in_({k[0] for k in keys}))
        .where(PeriodReview.period.in_({k[1] for k in keys})).with_for_update()).all()}
    closed = []
    for enterprise_id, period in keys:
        current = rows[(enterprise_id, period)]
        try:
            next_status("submit", current=current.status, actor=actor, enterprise_id=enterprise_id)
        except ReviewError as err:
            if err.code != "transition_not_allowed":
                raise
            closed.append({"enterprise_id": enterprise_id, "period": period, "status": current.status})
    if closed:
        raise PeriodClosedError(closed)
    return rows


def review_state(row: PeriodReview | None) -> dict[str, Any] | None:
    """The audited form of a period's review state."""
    if row is None:
        return None
    return {"enterprise_id": row.enterprise_id, "period": row.period, "status": row.status, "version": row.version,
            "submission_id": row.submission_id, "calculation_id": row.calculation_id,
            "is_substituted": row.is_substituted, "held": bool(row.held),
            "held_reasons": list(row.held_reasons or [])}


def _record(session: Session, submission: Submission, lines: pd.DataFrame, *, actor: Actor,
            reviews: dict[tuple[str, str], PeriodReview], now: datetime) -> list[str]:
    """Store the submission's periods, supersede earlier ones, move each period to ``submitted``, audit it all."""
    counts = lines.groupby(["enterprise_id", "period"]).size()
    superseded: list[str] = []
    for (enterprise_id, period), line_count in counts.items():
        earlier = session.scalars(select(SubmissionPeriod).where(
            SubmissionPeriod.enterprise_id == enterprise_id, SubmissionPeriod.period == period,
            SubmissionPeriod.superseded_by.is_(None))).all()
        for row in earlier:
            row.superseded_by = submission.submission_id
            superseded.append(row.submission_id)
        session.add(SubmissionPeriod(submission_id=submission.submission_id, enterprise_id=enterprise_id,
                                     period=period, line_count=int(line_count)))
        review = reviews[(enterprise_id, period)]
        before = review_state(review) if review.status != NONE else None
        from_status = review.status
        review.status, review.version = "submitted", review.version + 1
        review.submission_id, review.calculation_id = submission.submission_id, None
        review.is_substituted = False  # reported data replaces a substituted value
        review.updated_at, review.updated_by = now, actor.actor_id
        session.add(ReviewEvent(enterprise_id=enterprise_id, period=period, action="submit", from_status=from_status,
                                to_status="submitted", actor_id=actor.actor_id, role=actor.role,
                                comment=f"submission {submission.submission_id}", created_at=now))
        audit.append(session, actor=actor, action="review.submit", target=f"period:{enterprise_id}:{period}",
                     before=before, after=review_state(review), detail={"submission_id": submission.submission_id})
    return sorted(set(superseded))


def submit(session: Session, *, settings: Settings, actor: Actor, filename: str | None, content: bytes,
           media_type: str | None = None, idempotency_key: str | None = None,
           library: FactorLibrary | None = None, today: date | None = None) -> SubmissionOutcome:
    """Validate, check and store one file; see the module docstring for the rules.

    Raises InvalidFileError (nothing stored), ForeignEnterpriseError, PeriodClosedError,
    IdempotencyKeyReusedError, or whatever the database raises (the transaction is rolled back).
    """
    source = SourceFile(clean_filename(filename), content)
    sha256 = source.sha256
    earlier = _earlier(session, content_sha256=sha256, idempotency_key=idempotency_key)
    if earlier is not None:
        session.rollback()
        return SubmissionOutcome(receipt=receipt_of(earlier), created=False)

    lines = parse_activity(source, rules=fuel_rules(library or load_library(), settings.factor_edition),
                           max_rows=settings.max_rows_per_file)
    foreign = sorted({e for e in lines["enterprise_id"] if not actor.speaks_for(e)})
    if foreign:
        raise ForeignEnterpriseError(actor, foreign)
    now = datetime.now(UTC)
    refusals = _refusals(session, lines, settings=settings, actor=actor, today=today or now.date())
    if refusals:
        raise InvalidFileError(refusals, source=source.name)
    keys = sorted(set(zip(lines["enterprise_id"], lines["period"], strict=True)))
    suffix = file_suffix(source)
    submission = Submission(
        submission_id=str(uuid.uuid4()), content_sha256=sha256, idempotency_key=idempotency_key,
        filename=source.name, media_type=media_type or MEDIA_TYPES[suffix], size_bytes=len(content),
        content=content, template_version=TEMPLATE_VERSION, line_count=len(lines),
        enterprise_ids=sorted({k[0] for k in keys}), periods=sorted({k[1] for k in keys}),
        submitter_id=actor.actor_id, submitter_role=actor.role, status="accepted", received_at=now,
    )
    try:
        reviews = _open_periods(session, keys, actor=actor)
        repository.add(session, submission)
        superseded = _record(session, submission, lines, actor=actor, reviews=reviews, now=now)
        receipt = receipt_of(submission)
        audit.append(session, actor=actor, action="submission.accept", target=f"submission:{submission.submission_id}",
                     after={**receipt, "content_sha256": sha256},
                     detail={"superseded": superseded, "filename": source.name, "line_count": len(lines)})
        session.commit()
    except IntegrityError:
        # A concurrent request stored the same bytes or key between our lookup and our insert.
        session.rollback()
        earlier = _earlier(session, content_sha256=sha256, idempotency_key=idempotency_key)
        if earlier is None:
            raise
        return SubmissionOutcome(receipt=receipt_of(earlier), created=False)
    except BaseException:
        session.rollback()
        raise
    return SubmissionOutcome(receipt=receipt, created=True)


def accept_submission(session: Session, *, settings: Settings, actor: Actor, filename: str, content: bytes,
                      idempotency_key: str | None = None) -> dict[str, Any]:
    """``carbon ingest`` and the inbox sensor: submit one file and return its receipt (new or first)."""
    return submit(session, settings=settings, actor=actor, filename=filename, content=content,
                  idempotency_key=idempotency_key).receipt

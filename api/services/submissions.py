"""Accepting an activity-data file: validate it whole, store it in one transaction, drop it in the inbox.

Why this order: a file with any invalid line is refused as a whole and leaves no trace (no row, no
inbox file), because the pipeline would otherwise count a half-understood file. A valid file is
stored (exact bytes, hash, what it holds) and then written to the inbox under its SHA-256 with a
temporary name and ``os.replace``, so the Dagster sensor never sees a half-written file; if the
inbox write fails the row is rolled back, so the database never claims a file the pipeline will
not see.

Why idempotency by content and by key: clients retry. The same bytes (with or without a key) or the
same ``Idempotency-Key`` with the same bytes get the first receipt back and store nothing new; the
same key with other bytes is a client bug and is refused. Validation failures are not remembered.

Used by the API router and by ``carbon ingest``; no FastAPI here.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounting.activity import TEMPLATE_VERSION, SourceFile, parse_activity
from accounting.factors import FactorLibrary, load_library
from api.store import submissions as repository
from api.store.schema import Submission
from pipelines.settings import Settings
from pipelines.warehouse import fuel_rules

MEDIA_TYPES = {
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".json": "application/json",
}
MAX_FILENAME = 255


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
        "status": submission.status,
    }


def get_receipt(session: Session, *, submission_id: str) -> dict[str, Any]:
    """The receipt of a submission; SubmissionNotFoundError if there is none."""
    submission = repository.get(session, submission_id=submission_id)
    if submission is None:
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


def _write_atomically(target: Path, content: bytes) -> None:
    """Write ``content`` to ``target`` under a hidden temporary name, fsync, then rename over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def submit(session: Session, *, settings: Settings, filename: str | None, content: bytes,
           media_type: str | None = None, idempotency_key: str | None = None,
           library: FactorLibrary | None = None) -> SubmissionOutcome:
    """Validate, store and hand over one file; see the module docstring for the rules.

    Raises InvalidFileError (nothing stored), IdempotencyKeyReusedError, or whatever the database or
    the file system raise (the transaction is rolled back and no inbox file is left behind).
    """
    source = SourceFile(clean_filename(filename), content)
    sha256 = source.sha256
    earlier = _earlier(session, content_sha256=sha256, idempotency_key=idempotency_key)
    if earlier is not None:
        return SubmissionOutcome(receipt=receipt_of(earlier), created=False)

    rules = fuel_rules(library or load_library(), settings.factor_edition)
    lines = parse_activity(source, rules=rules)
    suffix = file_suffix(source)
    target = settings.inbox / f"{sha256}{suffix}"
    submission = Submission(
        submission_id=str(uuid.uuid4()), content_sha256=sha256, idempotency_key=idempotency_key,
        filename=source.name, media_type=media_type or MEDIA_TYPES[suffix], size_bytes=len(content),
        content=content, template_version=TEMPLATE_VERSION, line_count=len(lines),
        enterprise_ids=sorted(set(lines["enterprise_id"])), periods=sorted(set(lines["period"])),
        inbox_name=target.name, status="accepted", received_at=datetime.now(UTC),
    )
    target_existed = target.exists()
    written = False
    try:
        repository.add(session, submission)
        _write_atomically(target, content)
        written = True
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
        if written and not target_existed:
            target.unlink(missing_ok=True)
        raise
    return SubmissionOutcome(receipt=receipt_of(submission), created=True)


def accept_submission(session: Session, *, settings: Settings, filename: str, content: bytes,
                      idempotency_key: str | None = None) -> dict[str, Any]:
    """``carbon ingest``: submit one file and return its receipt (new or first)."""
    return submit(session, settings=settings, filename=filename, content=content,
                  idempotency_key=idempotency_key).receipt

"""Evidence files (invoices, meter photos, lab reports, certificates): stored by SHA-256, linked to periods and lines.

A file is stored once, under the SHA-256 of its bytes: the same bytes uploaded again are the same
record (its first name and uploader are kept), and a new link to it is all that a second upload may
add. A link names an enterprise-period, and optionally the submission and the row of that
submission's file that the evidence supports; each is checked before anything is written, so a bad
link stores neither the file nor the link. Storing and linking each write an audit entry in the
same transaction.

Who may do what: an enterprise user uploads only for its own enterprises (and must say which) and
downloads only evidence linked to them (anything else is "not found"); verifiers and officers
upload and download everything; data engineers upload but do not read documents.

Used by the API router; no FastAPI here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256 as sha256_of
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounting.activity import SourceFile, read_table
from accounting.errors import AccountingError, InvalidFileError
from accounting.review import Actor, ReviewError
from api.services.review_views import PERIOD, PeriodNotFoundError, may_see, utc
from api.services.submissions import clean_filename
from api.store import audit
from api.store import review as repository
from api.store import submissions as submissions_repository
from api.store.schema import Evidence, EvidenceLink

#: Roles that may download any evidence file; an enterprise user downloads its own.
DOCUMENT_READERS = frozenset({"verifier", "officer"})
UPLOADERS = frozenset({"enterprise", "verifier", "officer", "engineer"})


class EvidenceLinkError(AccountingError):
    """A link that names something that does not exist or does not fit (422); ``code`` says which."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class EvidenceNotFoundError(LookupError):
    """No evidence file with this SHA-256, or none the actor may read."""

    code = "evidence_not_found"

    def __init__(self, sha256: str) -> None:
        super().__init__(f"no evidence file {sha256!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkTarget:
    """Where an evidence file belongs: an enterprise-period, optionally one row of one of its submissions."""

    enterprise_id: str
    period: str
    submission_id: str | None = None
    row_number: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceOutcome:
    """The stored record (JSON-ready), whether this call stored the file, and whether it added a link."""

    record: dict[str, Any]
    created: bool
    linked: bool


def link_target(*, enterprise_id: str | None, period: str | None, submission_id: str | None,
                row_number: int | None) -> LinkTarget | None:
    """The link that the optional upload fields describe; None when they name none."""
    if enterprise_id is None and period is None and submission_id is None and row_number is None:
        return None
    if not enterprise_id or not period:
        raise EvidenceLinkError("a link names both an enterprise_id and a period", code="incomplete_link")
    if row_number is not None and submission_id is None:
        raise EvidenceLinkError("a row_number is a row of a submission: name its submission_id", code="incomplete_link")
    return LinkTarget(enterprise_id=enterprise_id, period=period, submission_id=submission_id, row_number=row_number)


def _row_fits(content: bytes, filename: str, *, target: LinkTarget) -> bool:
    try:
        table = read_table(SourceFile(filename, content))
    except InvalidFileError:
        return False
    row = table.loc[table["row_number"] == target.row_number]
    return bool(len(row)) and row.iloc[0].get("enterprise_id") == target.enterprise_id \
        and row.iloc[0].get("period") == target.period


def _check_link(session: Session, target: LinkTarget) -> None:
    """Refuse, naming the problem, a link to an unknown enterprise, period, submission or row."""
    if not PERIOD.match(target.period):
        raise EvidenceLinkError(f"period {target.period!r} is not YYYY-MM or YYYY", code="invalid_period")
    if not repository.enterprise_exists(session, enterprise_id=target.enterprise_id):
        raise EvidenceLinkError(f"no enterprise {target.enterprise_id!r} in the registry", code="unknown_enterprise")
    if target.submission_id is None:
        return
    submission = submissions_repository.get(session, submission_id=target.submission_id)
    if submission is None:
        raise EvidenceLinkError(f"no submission {target.submission_id!r}", code="unknown_submission")
    if not repository.reports_period(session, submission_id=target.submission_id, enterprise_id=target.enterprise_id,
                                     period=target.period):
        raise EvidenceLinkError(f"submission {target.submission_id} has no lines of {target.enterprise_id}"
                                f" {target.period}", code="submission_not_for_period")
    if target.row_number is not None and not _row_fits(submission.content, submission.filename, target=target):
        raise EvidenceLinkError(f"row {target.row_number} of submission {target.submission_id} is not a line of"
                                f" {target.enterprise_id} {target.period}", code="row_not_in_submission")


def _authorize_upload(actor: Actor, target: LinkTarget | None) -> None:
    if actor.role not in UPLOADERS:
        raise ReviewError(f"evidence is uploaded by {', '.join(sorted(UPLOADERS))}, not {actor.role}",
                          code="role_not_allowed")
    if actor.role != "enterprise":
        return
    if target is None:
        raise EvidenceLinkError("an enterprise links its evidence to one of its periods: send enterprise_id and"
                                " period", code="incomplete_link")
    if not actor.speaks_for(target.enterprise_id):
        raise ReviewError(f"{actor.actor_id} does not act for enterprise {target.enterprise_id}",
                          code="not_own_enterprise")


def evidence_record(evidence: Evidence) -> dict[str, Any]:
    return {"sha256": evidence.sha256, "filename": evidence.filename, "media_type": evidence.media_type,
            "size_bytes": evidence.size_bytes, "uploaded_by": evidence.uploaded_by,
            "uploaded_at": utc(evidence.uploaded_at)}


def link_record(link: EvidenceLink) -> dict[str, Any]:
    return {"enterprise_id": link.enterprise_id, "period": link.period, "submission_id": link.submission_id,
            "row_number": link.row_number, "linked_by": link.linked_by, "linked_at": utc(link.linked_at)}


def _store(session: Session, *, actor: Actor, filename: str, content: bytes, media_type: str,
           target: LinkTarget | None) -> EvidenceOutcome:
    digest = sha256_of(content).hexdigest()
    now = datetime.now(UTC)
    evidence = repository.get_evidence(session, sha256=digest)
    created = evidence is None
    if evidence is None:
        evidence = Evidence(sha256=digest, filename=filename, media_type=media_type, size_bytes=len(content),
                            content=content, uploaded_by=actor.actor_id, uploaded_at=now)
        repository.add_evidence(session, evidence)
        audit.append(session, actor=actor, action="evidence.store", target=f"evidence:{digest}",
                     after=evidence_record(evidence), detail={"filename": filename, "size_bytes": len(content)})
    link = None if target is None else repository.find_link(
        session, sha256=digest, enterprise_id=target.enterprise_id, period=target.period,
        submission_id=target.submission_id, row_number=target.row_number)
    linked = target is not None and link is None
    if target is not None and link is None:
        link = EvidenceLink(evidence_sha256=digest, enterprise_id=target.enterprise_id, period=target.period,
                            submission_id=target.submission_id, row_number=target.row_number,
                            linked_by=actor.actor_id, linked_at=now)
        repository.add_link(session, link)
        audit.append(session, actor=actor, action="evidence.link",
                     target=f"period:{target.enterprise_id}:{target.period}", after=link_record(link),
                     detail={"sha256": digest, **({"submission_id": target.submission_id} if target.submission_id
                                                  else {}),
                             **({"row_number": target.row_number} if target.row_number is not None else {})})
    record = {**evidence_record(evidence), "link": link_record(link) if link is not None else None}
    return EvidenceOutcome(record=record, created=created, linked=linked)


def store_evidence(session: Session, *, actor: Actor, filename: str | None, content: bytes, media_type: str | None,
                   target: LinkTarget | None = None) -> EvidenceOutcome:
    """Store a file (once per SHA-256) and link it to ``target``; all or nothing, audited. See the module docstring."""
    _authorize_upload(actor, target)
    if not content:
        raise EvidenceLinkError("the evidence file is empty", code="empty_file")
    name = clean_filename(filename)
    kind = (media_type or "application/octet-stream")[:255]
    for attempt in (1, 2):
        try:
            if target is not None:
                _check_link(session, target)
            outcome = _store(session, actor=actor, filename=name, content=content, media_type=kind, target=target)
            session.commit()
            return outcome
        except IntegrityError:
            # Someone stored the same bytes (or link) between our lookup and our insert: theirs is ours.
            session.rollback()
            if attempt == 2:
                raise
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def evidence_file(session: Session, *, actor: Actor, sha256: str) -> Evidence:
    """The stored file, if the actor may read it (EvidenceNotFoundError otherwise, or role_not_allowed)."""
    evidence = repository.get_evidence(session, sha256=sha256.lower())
    if actor.role == "enterprise":
        if evidence is None or not repository.evidence_enterprises(session, sha256=evidence.sha256) \
                & actor.enterprise_ids:
            raise EvidenceNotFoundError(sha256)
        return evidence
    if actor.role not in DOCUMENT_READERS:
        raise ReviewError(f"evidence files are read by enterprises (their own), verifiers and officers,"
                          f" not {actor.role}", code="role_not_allowed")
    if evidence is None:
        raise EvidenceNotFoundError(sha256)
    return evidence


def period_evidence(session: Session, *, actor: Actor, enterprise_id: str, period: str, limit: int = 1000,
                    offset: int = 0) -> dict[str, Any]:
    """A page of the evidence linked to an enterprise-period; another enterprise's period is not found."""
    if not may_see(actor, enterprise_id):
        raise PeriodNotFoundError(enterprise_id, period)
    total, links = repository.links_of_period(session, enterprise_id=enterprise_id, period=period, limit=limit,
                                              offset=offset)
    return {"total": total, "limit": limit, "offset": offset,
            "items": [{**evidence_record(evidence), "link": link_record(link)} for link, evidence in links]}

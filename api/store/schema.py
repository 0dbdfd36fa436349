"""The OLTP tables, in one place. Alembic migrations (``api/store/migrations``) create and change them.

Types are portable between SQLite (embedded default) and PostgreSQL (production): generic ``JSON``,
``LargeBinary`` (BLOB / bytea) and timezone-aware ``DateTime`` (stored in UTC).

Nothing here is ever edited in place where history matters: submissions, evidence, calculations,
review events, substitutions, verified-emission versions and the audit log are append-only; only
``period_reviews`` (the current state of each enterprise-period, guarded by ``version``),
``submission_periods.superseded_by`` and the ``enterprises`` registry change, and each such change
writes an audit entry in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names fixed by convention, so that Alembic migrations can refer to them on any backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is the whole OLTP schema."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = Base.metadata
UTCDateTime = DateTime(timezone=True)


class Enterprise(Base):
    """An enterprise of the zone registry (imported from the registry file, changes audited)."""

    __tablename__ = "enterprises"

    enterprise_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    name_en: Mapped[str] = mapped_column(String(255), default="")
    category: Mapped[str] = mapped_column(String(32))
    sector_code: Mapped[str] = mapped_column(String(4))
    sector_name: Mapped[str] = mapped_column(String(255), default="")
    zone_code: Mapped[str] = mapped_column(String(32))
    city_code: Mapped[str] = mapped_column(String(6))
    province_code: Mapped[str] = mapped_column(String(6))
    county_code: Mapped[str] = mapped_column(String(6))
    facilities: Mapped[list[str]] = mapped_column(JSON)
    key_emitter_declared: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Submission(Base):
    """An accepted activity-data file: the exact bytes, what they hold, who sent them and when.

    ``content_sha256`` is unique so that the same file is never accepted twice; ``idempotency_key``
    is unique (NULLs allowed) so that a client retry with its key gets the first receipt.
    """

    __tablename__ = "submissions"

    submission_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    template_version: Mapped[str] = mapped_column(String(8))
    line_count: Mapped[int] = mapped_column(Integer)
    enterprise_ids: Mapped[list[str]] = mapped_column(JSON)
    periods: Mapped[list[str]] = mapped_column(JSON)
    submitter_id: Mapped[str] = mapped_column(String(255))
    submitter_role: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    def __repr__(self) -> str:
        return f"Submission({self.submission_id!r}, sha256={self.content_sha256[:12]}…)"


class SubmissionPeriod(Base):
    """Which enterprise-periods a submission reports; a later submission for one supersedes it."""

    __tablename__ = "submission_periods"
    __table_args__ = (UniqueConstraint("submission_id", "enterprise_id", "period"),
                      Index("ix_submission_periods_current", "enterprise_id", "period", "superseded_by"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.submission_id"))
    enterprise_id: Mapped[str] = mapped_column(String(18))
    period: Mapped[str] = mapped_column(String(7))
    line_count: Mapped[int] = mapped_column(Integer)
    superseded_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Evidence(Base):
    """A supporting document (invoice, meter photo, lab report, certificate), stored by its SHA-256."""

    __tablename__ = "evidence"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(255))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EvidenceLink(Base):
    """An evidence file linked to a submission line (``row_number``) or to a whole enterprise-period."""

    __tablename__ = "evidence_links"
    __table_args__ = (UniqueConstraint("evidence_sha256", "enterprise_id", "period", "submission_id",
                                       "row_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evidence_sha256: Mapped[str] = mapped_column(ForeignKey("evidence.sha256"))
    enterprise_id: Mapped[str] = mapped_column(String(18), index=True)
    period: Mapped[str] = mapped_column(String(7))
    submission_id: Mapped[str | None] = mapped_column(ForeignKey("submissions.submission_id"), nullable=True)
    row_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    linked_by: Mapped[str] = mapped_column(String(255))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PeriodReview(Base):
    """The current review state of one enterprise-month (``YYYY-MM``) or enterprise-year (``YYYY``).

    ``version`` grows with every change; a change names the version it saw, so of two officers acting
    at once one wins and the other is told the current state.
    """

    __tablename__ = "period_reviews"

    enterprise_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer)
    submission_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    calculation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    is_substituted: Mapped[bool] = mapped_column(Boolean, default=False)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    held_reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(255))


class ReviewEvent(Base):
    """Every review action and comment, in order: the history shown to enterprises and officers."""

    __tablename__ = "review_events"
    __table_args__ = (Index("ix_review_events_period", "enterprise_id", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(String(18))
    period: Mapped[str] = mapped_column(String(7))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    row_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recommendation: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Calculation(Base):
    """A calculated balance of one enterprise-period as published by a pipeline run (full precision)."""

    __tablename__ = "calculations"
    __table_args__ = (Index("ix_calculations_period", "enterprise_id", "period", "created_at"),)

    calculation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(String(18))
    period: Mapped[str] = mapped_column(String(7))
    run_id: Mapped[str] = mapped_column(String(64))
    edition: Mapped[str] = mapped_column(String(32))
    ruleset: Mapped[str] = mapped_column(String(16))
    grid_region: Mapped[str] = mapped_column(String(32))
    gwp_set: Mapped[str] = mapped_column(String(8))
    totals: Mapped[dict[str, Any]] = mapped_column(JSON)
    totals_sha256: Mapped[str] = mapped_column(String(64))
    net_tco2e: Mapped[float] = mapped_column(Float)
    submission_ids: Mapped[list[str]] = mapped_column(JSON)
    is_substituted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QualityFinding(Base):
    """A data-quality finding on an enterprise-period from a pipeline run; ``hold`` keeps it from approval."""

    __tablename__ = "quality_findings"
    __table_args__ = (Index("ix_quality_findings_period", "enterprise_id", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(String(18))
    period: Mapped[str] = mapped_column(String(7))
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    run_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Substitution(Base):
    """A conservative value put in place of a missing month by an officer, with its rule and basis."""

    __tablename__ = "substitutions"

    substitution_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(String(18), index=True)
    period: Mapped[str] = mapped_column(String(7))
    rule: Mapped[str] = mapped_column(String(64))
    basis_period: Mapped[str] = mapped_column(String(7))
    totals: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor_id: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class VerifiedEmissions(Base):
    """A locked enterprise-year: version 1 at the first lock, a new version with diff at each restatement."""

    __tablename__ = "verified_emissions"
    __table_args__ = (UniqueConstraint("enterprise_id", "year", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(String(18))
    year: Mapped[str] = mapped_column(String(4))
    version: Mapped[int] = mapped_column(Integer)
    totals: Mapped[dict[str, Any]] = mapped_column(JSON)
    net_tco2e: Mapped[float] = mapped_column(Float)
    calculation_ids: Mapped[list[str]] = mapped_column(JSON)
    locked_by: Mapped[str] = mapped_column(String(255))
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    diff: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AuditEntry(Base):
    """One entry of the hash-chained audit log; never updated or deleted (database triggers refuse it)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(255), index=True)
    before_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    after_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row naming the last audit entry; appending locks it, so the chain never forks."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    entry_hash: Mapped[str] = mapped_column(String(64))


class User(Base):
    """Someone (or a machine client) who may sign in: a login name, one role, and what the role is bound to.

    Passwords are stored only as Argon2id hashes; a user without a password signs in with API keys only.
    Users are never deleted (the audit log names them): they are disabled.
    """

    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    enterprise_ids: Mapped[list[str]] = mapped_column(JSON)
    account_ids: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiKey(Base):
    """A long-lived key of a user for machines: shown once, stored as an Argon2id hash, expiring, revocable."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuthSession(Base):
    """A signed-in session: a bearer access token (OAuth2 password flow) or a browser cookie with its CSRF token.

    Only the SHA-256 of the 256-bit random token is stored (a random token of that size needs no slow hash).
    """

    __tablename__ = "auth_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # bearer | cookie
    csrf_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginFailure(Base):
    """A failed password sign-in, by the login name as typed; too many in the window throttle that name."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

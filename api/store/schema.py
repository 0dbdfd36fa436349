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

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

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


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Aware moments are stored as UTC: SQLite keeps the wall-clock fields and drops the offset."""
        return value.astimezone(UTC) if value is not None and value.tzinfo is not None else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


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
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

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
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    diff: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AuditEntry(Base):
    """One entry of the hash-chained audit log; never updated or deleted (database triggers refuse it)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKey(Base):
    """A long-lived key of a user for machines: shown once, stored as an Argon2id hash, expiring, revocable."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuthSession(Base):
    """A signed-in session: a bearer access token (OAuth2 password flow) or a browser cookie with its CSRF token.

    Only the SHA-256 of the 256-bit random token is stored (a random token of that size needs no slow hash).
    """

    __tablename__ = "auth_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # bearer | cookie
    csrf_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoginFailure(Base):
    """A failed password sign-in, by the login name as typed; too many in the window throttle that name."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- the carbon-rights ledger --------------------------------------------------------------------------
# The journal (entries and their postings) is append-only; balances are a cache of the journal kept in
# the same transaction and rebuilt from it by ``carbon ledger verify``.


class LedgerAccount(Base):
    """An account of the ledger (``accounting.ledger.Account``): holder accounts and the system accounts."""

    __tablename__ = "ledger_accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(255))


class JournalEntryRow(Base):
    """A balanced journal entry; ``seq`` orders the journal, ``reverses`` is unique (one reversal at most)."""

    __tablename__ = "journal_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    memo: Mapped[str] = mapped_column(Text)
    reverses: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    reference: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    actor_id: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PostingRow(Base):
    """One leg of an entry: a positive whole quantity out of (debit) or into (credit) an account."""

    __tablename__ = "journal_postings"
    __table_args__ = (Index("ix_journal_postings_account", "account_id", "instrument"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("journal_entries.entry_id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.account_id"))
    instrument: Mapped[str] = mapped_column(String(16))
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[int] = mapped_column(BigInteger)


class LedgerBalance(Base):
    """The balance of one account in one instrument: credits - debits of the journal (a cache, locked on change)."""

    __tablename__ = "ledger_balances"

    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.account_id"), primary_key=True)
    instrument: Mapped[str] = mapped_column(String(16), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)


class EncumbranceRow(Base):
    """Units frozen (by an officer) or pledged (to a lender, with the owner's consent) until released."""

    __tablename__ = "ledger_encumbrances"
    __table_args__ = (Index("ix_ledger_encumbrances_key", "account_id", "instrument", "released_at"),)

    encumbrance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.account_id"))
    instrument: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(BigInteger)
    lender_account_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    imposed_by: Mapped[str] = mapped_column(String(255))
    consent_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class TrustedCounterparty(Base):
    """An account another account may transfer to, from ``effective_at`` (additions take effect after a delay)."""

    __tablename__ = "trusted_counterparties"

    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.account_id"), primary_key=True)
    counterparty_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.account_id"), primary_key=True)
    added_by: Mapped[str] = mapped_column(String(255))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IdempotencyRecord(Base):
    """The first answer to a mutating call with an ``Idempotency-Key``: replayed for the same body, else refused."""

    __tablename__ = "idempotency_records"

    actor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(128))
    request_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApprovalRow(Base):
    """A four-eyes proposal (``accounting.four_eyes``): an officer's action waiting for a second officer."""

    __tablename__ = "approvals"

    approval_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    proposed_by: Mapped[str] = mapped_column(String(255))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AllocationPlanRow(Base):
    """A versioned allocation plan as loaded (the TOML text, hashed) and its approval."""

    __tablename__ = "allocation_plans"

    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    year: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # loaded | proposed | pre_allocated | trued_up | superseded
    loaded_by: Mapped[str] = mapped_column(String(255))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AllocationRow(Base):
    """One enterprise's allocation of one instrument by one plan stage, and the entry that issued it."""

    __tablename__ = "allocations"
    __table_args__ = (UniqueConstraint("plan_id", "version", "enterprise_id", "instrument", "stage"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    enterprise_id: Mapped[str] = mapped_column(String(18), index=True)
    instrument: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16))  # pre | true_up | pollutant
    quantity: Mapped[int] = mapped_column(BigInteger)  # signed: a true-up may take units back
    basis: Mapped[dict[str, Any]] = mapped_column(JSON)  # output, benchmark, factors: how it was computed
    entry_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuctionRow(Base):
    """A sealed-bid, uniform-price auction of allowances, its terms and, once closed, its result."""

    __tablename__ = "auctions"

    auction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instrument: Mapped[str] = mapped_column(String(16))
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # open | closing | settled | cancelled
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    settled_entry_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuctionBidRow(Base):
    """A sealed bid; its cash is reserved in the ledger when placed (prefunding)."""

    __tablename__ = "auction_bids"

    bid_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    auction_id: Mapped[str] = mapped_column(ForeignKey("auctions.auction_id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.account_id"))
    price_fen: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    placed_by: Mapped[str] = mapped_column(String(255))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reserve_entry_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # active | withdrawn | filled | partial | unfilled
    filled: Mapped[int] = mapped_column(BigInteger, default=0)


class ReferencePrice(Base):
    """A price of an instrument on a day (fen per unit): recorded by officers, later the exchange's closes."""

    __tablename__ = "reference_prices"

    instrument: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    price_fen: Mapped[int] = mapped_column(BigInteger)
    volume: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(255))
    recorded_by: Mapped[str] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- the mock exchange ---------------------------------------------------------------------------------
# The command log is the truth (append-only); orders, trades and daily bars are its projections, written in
# the same transaction as the command and the ledger entry that prefunds or settles it.


class ExchangeInstrument(Base):
    """A listed instrument: its genesis (the rules and close the log replays from) and where its day stands.

    The row is the instrument's lock: every command locks it first, so commands apply one at a time.
    """

    __tablename__ = "exchange_instruments"

    instrument: Mapped[str] = mapped_column(String(16), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)  # accounting.market_rules.InstrumentRules, genesis
    genesis_close_fen: Mapped[int] = mapped_column(BigInteger)
    fee_bp: Mapped[int] = mapped_column(Integer)
    settlement: Mapped[str] = mapped_column(String(16))  # trade | end_of_day
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    trading_day: Mapped[str | None] = mapped_column(String(10), nullable=True)  # YYYY-MM-DD, the last opened
    day_open: Mapped[bool] = mapped_column(Boolean, default=False)
    previous_close_fen: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExchangeCommand(Base):
    """One command as the engine received it (append-only); replaying them in ``seq`` order rebuilds everything."""

    __tablename__ = "exchange_commands"

    instrument: Mapped[str] = mapped_column(ForeignKey("exchange_instruments.instrument"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    command: Mapped[dict[str, Any]] = mapped_column(JSON)
    events: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    actor_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    entry_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ExchangeOrder(Base):
    """An order, quote, take or block proposal: where it stands and what it still holds in clearing."""

    __tablename__ = "exchange_orders"
    __table_args__ = (UniqueConstraint("instrument", "account_id", "client_order_id"),
                      Index("ix_exchange_orders_account", "account_id", "instrument", "order_id"))

    instrument: Mapped[str] = mapped_column(ForeignKey("exchange_instruments.instrument"), primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # order | quote | take | block
    account_id: Mapped[str] = mapped_column(String(64))
    client_order_id: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(8))
    price_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quantity_t: Mapped[int] = mapped_column(BigInteger)
    filled_t: Mapped[int] = mapped_column(BigInteger, default=0)
    remaining_t: Mapped[int] = mapped_column(BigInteger)
    cancelled_t: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    counterparty_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    held: Mapped[int] = mapped_column(BigInteger, default=0)  # fen for a buy, tonnes for a sell
    hold_open_t: Mapped[int] = mapped_column(BigInteger, default=0)
    placed_by: Mapped[str] = mapped_column(String(255))
    created_seq: Mapped[int] = mapped_column(BigInteger)
    updated_seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExchangeTrade(Base):
    """A trade (append-only) with both parties' fees and the entry that delivered it (none until end of day)."""

    __tablename__ = "exchange_trades"
    __table_args__ = (Index("ix_exchange_trades_day", "instrument", "trading_day"),
                      Index("ix_exchange_trades_buyer", "buy_account_id", "instrument", "trading_day"),
                      Index("ix_exchange_trades_seller", "sell_account_id", "instrument"),
                      Index("ix_exchange_trades_buy_order", "instrument", "buy_order_id"),
                      Index("ix_exchange_trades_sell_order", "instrument", "sell_order_id"))

    instrument: Mapped[str] = mapped_column(ForeignKey("exchange_instruments.instrument"), primary_key=True)
    trade_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    mode: Mapped[str] = mapped_column(String(20))
    price_fen: Mapped[int] = mapped_column(BigInteger)
    quantity_t: Mapped[int] = mapped_column(BigInteger)
    buy_order_id: Mapped[int] = mapped_column(BigInteger)
    sell_order_id: Mapped[int] = mapped_column(BigInteger)
    buy_account_id: Mapped[str] = mapped_column(String(64))
    sell_account_id: Mapped[str] = mapped_column(String(64))
    aggressor_side: Mapped[str] = mapped_column(String(4))
    buyer_fee_fen: Mapped[int] = mapped_column(BigInteger)
    seller_fee_fen: Mapped[int] = mapped_column(BigInteger)
    trading_day: Mapped[str] = mapped_column(String(10))
    executed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    entry_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ExchangeSettlement(Base):
    """The end-of-day settlement of one instrument's day: the entry that delivered its trades."""

    __tablename__ = "exchange_settlements"

    instrument: Mapped[str] = mapped_column(ForeignKey("exchange_instruments.instrument"), primary_key=True)
    trading_day: Mapped[str] = mapped_column(String(10), primary_key=True)
    entry_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    trades: Mapped[int] = mapped_column(Integer)
    settled_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExchangeDay(Base):
    """One instrument's trading day: open, high, low, close (the listed trades' VWAP, else carried) and volumes."""

    __tablename__ = "exchange_days"

    instrument: Mapped[str] = mapped_column(ForeignKey("exchange_instruments.instrument"), primary_key=True)
    trading_day: Mapped[str] = mapped_column(String(10), primary_key=True)
    previous_close_fen: Mapped[int] = mapped_column(BigInteger)
    open_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    high_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    low_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    close_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # set at the close
    listed_volume_t: Mapped[int] = mapped_column(BigInteger, default=0)
    listed_value_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    block_volume_t: Mapped[int] = mapped_column(BigInteger, default=0)
    block_value_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    trades: Mapped[int] = mapped_column(Integer, default=0)


class ExchangeClock(Base):
    """The exchange's clock: real time, or a rehearsal clock officers run faster, pause and step (one row)."""

    __tablename__ = "exchange_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))  # real | simulated
    start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    speed: Mapped[int] = mapped_column(Integer, default=1)
    step_seconds: Mapped[int] = mapped_column(Integer, default=60)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
    set_by: Mapped[str] = mapped_column(String(255))

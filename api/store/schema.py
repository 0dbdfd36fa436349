"""The OLTP tables, in one place: ``metadata.create_all`` at startup now, Alembic later.

Types are portable between SQLite (embedded default) and PostgreSQL (production): generic
``JSON``, ``LargeBinary`` (BLOB / bytea) and timezone-aware ``DateTime``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Integer, LargeBinary, MetaData, String
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


class Submission(Base):
    """An accepted activity-data file: the exact bytes, what they hold, and when they arrived.

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
    inbox_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Submission({self.submission_id!r}, sha256={self.content_sha256[:12]}…)"


"""The OLTP database: SQLAlchemy 2 engine and sessions from ``settings.database``.

SQLite (the embedded default under ``data/``) gets WAL and a busy timeout on every connection, so
the API and the ``carbon`` CLI can write while others read; PostgreSQL URLs
(``postgresql+psycopg://``) need nothing special. Nothing is created at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.store.schema import metadata
from pipelines.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("pragma journal_mode=WAL")
        cursor.execute(f"pragma busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("pragma foreign_keys=ON")
    finally:
        cursor.close()


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; for a SQLite file, its folder is created and WAL is switched on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create missing tables (idempotent); Alembic will take this over."""
    metadata.create_all(engine, checkfirst=True)


class DatabaseUnavailableError(Exception):
    """The OLTP database does not answer."""

    code = "database_unavailable"


def ping(engine: Engine) -> None:
    """Raise DatabaseUnavailableError if the database does not answer a trivial query."""
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1")).fetchall()
    except SQLAlchemyError as err:
        raise DatabaseUnavailableError(f"the database does not answer: {str(err).splitlines()[0]}") from err


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def session_factory(settings: Settings) -> sessionmaker[Session]:
    """Sessions on ``settings.database`` with the schema in place: the entry point of the CLI."""
    engine = create_db_engine(settings.database)
    create_schema(engine)
    return make_session_factory(engine)

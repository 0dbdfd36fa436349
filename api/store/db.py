"""The OLTP database: SQLAlchemy 2 engine and sessions from ``settings.database``.

SQLite (the embedded default under ``data/``) gets WAL and a busy timeout on every connection, so
the API and the ``carbon`` CLI can write while others read; PostgreSQL URLs
(``postgresql+psycopg://``) need nothing special. Nothing is created at import time.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Connection, Engine, Table, bindparam, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pipelines.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is switched off, so that ``_begin_immediate`` decides.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("pragma journal_mode=WAL")
        cursor.execute(f"pragma busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("pragma foreign_keys=ON")
    finally:
        cursor.close()


#: Execution options of a transaction that only reads (``session.connection(execution_options=READ_ONLY)``).
READ_ONLY = {"carbon_read_only": True}


def _begin_immediate(connection: Any) -> None:
    """SQLite: take the write lock when a transaction starts, not at its first write.

    Two writers that both read first and then write would otherwise fail at the write with
    "database is locked" instead of waiting their turn; with BEGIN IMMEDIATE the second one waits
    (busy timeout) and then reads what the first wrote, as under PostgreSQL's row locks. A transaction
    marked :data:`READ_ONLY` (checking a sign-in) begins deferred: in WAL mode it never waits for a writer.
    """
    read_only = connection.get_execution_options().get("carbon_read_only", False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; for a SQLite file, its folder is created and WAL is switched on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    # A pool as large as the requests a process serves at once (its worker threads): under load a connection is
    # taken from the pool, not opened (a PostgreSQL connection is a server process of its own).
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=20)


MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine, *, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the Alembic migrations (idempotent)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def create_schema(engine: Engine) -> None:
    """The schema at its latest migration: what the API, the CLI and the pipeline run on."""
    migrate(engine)


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


@lru_cache(maxsize=8)
def session_factory_for(url: str) -> sessionmaker[Session]:
    """Sessions on ``url`` with the schema in place, one engine per URL and process."""
    engine = create_db_engine(url)
    create_schema(engine)
    return make_session_factory(engine)


def session_factory(settings: Settings) -> sessionmaker[Session]:
    """Sessions on ``settings.database``: the entry point of the CLI and the pipeline."""
    return session_factory_for(settings.database)


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in one go: COPY on PostgreSQL, else executemany.

    COPY streams the rows in one statement; an executemany is a statement per row. Each value goes through
    its column type's bind processing first, as in any other insert.
    """
    if not rows:
        return
    dialect = connection.dialect
    if dialect.name != "postgresql":
        connection.execute(table.insert(), rows)
        return
    from psycopg import sql

    columns = list(rows[0])
    processors = [(name, json.dumps if isinstance(table.c[name].type, JSON)  # COPY takes a JSON document as text
                   else table.c[name].type.bind_processor(dialect)) for name in columns]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns)))
    driver: Any = connection.connection.driver_connection  # the transaction's own psycopg connection
    with driver.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row([row[name] if process is None else process(row[name]) for name, process in processors])


def update_rows(connection: Connection, table: Table, rows: list[dict[str, Any]], *, key: tuple[str, ...]) -> None:
    """Update the rows of ``table`` named by the ``key`` columns of ``rows`` to the other values of ``rows``.

    One statement on PostgreSQL (the rows sent as arrays, joined with ``unnest``), an executemany elsewhere.
    """
    if not rows:
        return
    dialect = connection.dialect
    columns = list(rows[0])
    changed = [name for name in columns if name not in key]
    if dialect.name != "postgresql":
        statement = (table.update().where(*(table.c[name] == bindparam(f"key_{name}") for name in key))
                     .values({name: bindparam(f"new_{name}") for name in changed}))
        connection.execute(statement, [{**{f"key_{n}": row[n] for n in key}, **{f"new_{n}": row[n] for n in changed}}
                                       for row in rows])
        return
    arrays = {}
    for name in columns:
        process = table.c[name].type.bind_processor(dialect)
        arrays[name] = [row[name] if process is None else process(row[name]) for row in rows]
    element = {name: table.c[name].type.compile(dialect=dialect) for name in columns}
    joined = text(
        f'UPDATE "{table.name}" AS t SET '
        + ", ".join(f'"{name}" = v."{name}"' for name in changed)
        + " FROM unnest(" + ", ".join(f"CAST(:{name} AS {element[name]}[])" for name in columns) + ") AS v("
        + ", ".join(f'"{name}"' for name in columns) + ") WHERE "
        + " AND ".join(f't."{name}" = v."{name}"' for name in key))
    connection.execute(joined, arrays)


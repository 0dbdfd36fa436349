"""The OLTP database: SQLAlchemy 2 engine and sessions from ``settings.database``.

SQLite (the embedded default under ``data/``) gets WAL and a busy timeout on every connection, so
the API and the ``carbon`` CLI can write while others read; PostgreSQL URLs
(``postgresql+psycopg://``) need nothing special. Nothing is created at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Connection, Engine, Table, bindparam, create_engine, event, inspect, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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


Rows = list[dict[str, Any]]


def write_rows(connection: Connection, *, inserts: Sequence[tuple[Table, Rows]] = (),
               updates: Sequence[tuple[Table, Rows, tuple[str, ...]]] = (),
               additions: Sequence[tuple[Table, Rows, tuple[str, ...], str]] = ()) -> None:
    """Write rows to several tables at once: ONE statement on PostgreSQL, an executemany per table elsewhere.

    Each list of rows is dicts with the same keys. ``inserts`` are (table, rows); ``updates`` (table, rows,
    key) set the row named by the ``key`` columns to the other values; ``additions`` (table, rows, key,
    column) add the value of ``column`` to the row named by ``key``, creating the row when it is missing.
    On PostgreSQL each list travels as a JSON document that ``json_populate_recordset`` turns back into
    rows of the table's type, every part a data-modifying ``WITH`` query of the one statement: one round
    trip for the lot, and their foreign keys are checked at its end. The tables' rows must not overlap.
    """
    inserts = [(table, rows) for table, rows in inserts if rows]
    updates = [(table, rows, key) for table, rows, key in updates if rows]
    additions = [(table, rows, key, column) for table, rows, key, column in additions if rows]
    if connection.dialect.name == "postgresql":
        _write_rows_in_one_statement(connection, inserts, updates, additions)
        return
    for table, rows in inserts:
        connection.execute(table.insert(), rows)
    for table, rows, key, column in additions:
        added = sqlite_insert(table)
        connection.execute(added.on_conflict_do_update(index_elements=[table.c[name] for name in key],
                                                       set_={column: table.c[column] + added.excluded[column]}), rows)
    for table, rows, key in updates:
        changed = [name for name in rows[0] if name not in key]
        statement = (table.update().where(*(table.c[name] == bindparam(f"key_{name}") for name in key))
                     .values({name: bindparam(f"new_{name}") for name in changed}))
        connection.execute(statement, [{**{f"key_{n}": row[n] for n in key}, **{f"new_{n}": row[n] for n in changed}}
                                       for row in rows])


def take_updates(session: Session, kinds: tuple[type, ...]) -> list[tuple[Table, Rows, tuple[str, ...]]]:
    """The updates the session would flush for its changed rows of ``kinds``, as :func:`write_rows` takes them.

    Those rows leave the session (they are the caller's to write, not flushed again); their loaded values
    stay readable.
    """
    updates = []
    for row in [r for r in session.dirty if isinstance(r, kinds)]:
        state = inspect(row)
        changed = {prop.columns[0].name: getattr(row, prop.key) for prop in state.mapper.column_attrs
                   if state.attrs[prop.key].history.added}
        if changed:
            key = {column.name: value for column, value in zip(state.mapper.primary_key, state.identity or (),
                                                                strict=True)}
            updates.append((cast(Table, state.mapper.local_table), [{**key, **changed}], tuple(key)))
        session.expunge(row)
    return updates


def _write_rows_in_one_statement(connection: Connection, inserts: list[tuple[Table, Rows]],
                                 updates: list[tuple[Table, Rows, tuple[str, ...]]],
                                 additions: list[tuple[Table, Rows, tuple[str, ...], str]]) -> None:
    parts: list[str] = []
    documents: dict[str, str] = {}
    keys: dict[str, Any] = {}

    def rows_of(table: Table, rows: Rows) -> tuple[list[str], str]:
        """The rows' columns (quoted) and the rows, expanded from their JSON document (a parameter)."""
        name = f"rows{len(documents)}"
        documents[name] = _json_document(connection, table, rows)
        return ([f'"{column}"' for column in rows[0]],
                f"json_populate_recordset(NULL::{_qualified(table)}, CAST(%({name})s AS json))")

    def keys_of(table: Table, rows: Rows, key: tuple[str, ...]) -> str:
        """The rows' keys, listed (parameters): the planner then reads each row to update by its unique key,
        whatever the table's statistics say. Joined with a function's rows alone, or with a list of values
        per key column, it may scan the whole table (or all of an instrument's orders) instead."""
        processors = [table.c[column].type.bind_processor(connection.dialect) for column in key]
        listed = []
        for row in rows:
            names = []
            for column, process in zip(key, processors, strict=True):
                names.append(f"%(key{len(keys)})s")
                keys[f"key{len(keys)}"] = row[column] if process is None else process(row[column])
            listed.append(f"({', '.join(names)})")
        columns = ", ".join(f't."{k}"' for k in key)
        return f"({columns}) IN ({', '.join(listed)})"

    for table, rows in inserts:
        columns, source = rows_of(table, rows)
        listed = ", ".join(columns)
        parts.append(f"INSERT INTO {_qualified(table)} ({listed}) SELECT {listed} FROM {source}")
    for table, rows, key, column in additions:
        columns, source = rows_of(table, rows)
        listed, conflict = ", ".join(columns), ", ".join(f'"{k}"' for k in key)
        parts.append(f"INSERT INTO {_qualified(table)} ({listed}) SELECT {listed} FROM {source} "
                     f"ON CONFLICT ({conflict}) "
                     f'DO UPDATE SET "{column}" = {_qualified(table)}."{column}" + excluded."{column}"')
    for table, rows, key in updates:
        columns, source = rows_of(table, rows)
        changed = [c for c in columns if c.strip('"') not in key]
        parts.append(f"UPDATE {_qualified(table)} AS t SET " + ", ".join(f"{c} = v.{c}" for c in changed)
                     + f" FROM {source} AS v WHERE " + " AND ".join(f't."{k}" = v."{k}"' for k in key)
                     + f" AND {keys_of(table, rows, key)}")
    if not parts:
        return
    named = ", ".join(f"w{number} AS ({part})" for number, part in enumerate(parts))
    connection.exec_driver_sql(f"WITH {named} SELECT 1", {**documents, **keys})


def _qualified(table: Table) -> str:
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


def _json_document(connection: Connection, table: Table, rows: Rows) -> str:
    """The rows as a JSON array of objects, each value through its column type's bind processing first.

    Moments become ISO 8601 strings; a value of any other type JSON has no form for fails the write (orjson
    raises TypeError) rather than being written as something else.
    """
    processors = [(str(name), None if isinstance(table.c[name].type, JSON)  # a JSON column keeps the document
                   else table.c[name].type.bind_processor(connection.dialect)) for name in rows[0]]  # str: no subclass
    return orjson.dumps([{name: row[name] if process is None else process(row[name])
                          for name, process in processors} for row in rows]).decode()

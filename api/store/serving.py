"""Read-only access to the published snapshot (``settings.serving``), never to the warehouse.

Why a snapshot: DuckDB allows one read-write process *or* many readers on a file, never both, so
the API reading the warehouse would stall pipeline runs (and be stalled by them). The pipeline's
last asset copies the served tables into a snapshot file and swaps it in with ``os.replace``.

Why generations: one DuckDB connection must not be shared between threads, and a read-only
``duckdb.connect(path)`` in a process that still holds the same path open returns the cached,
stale database instance. So each *generation* is an in-memory connection with the snapshot
ATTACHed read-only; every request gets its own cursor of the current generation. When the file's
inode, mtime or size changes, a new generation is opened; the old one is closed once its last
cursor is released (closing a connection closes its cursors, which would break requests in flight).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

_ALIAS = "snap"


class SnapshotUnavailableError(Exception):
    """The published snapshot is missing or unreadable; the pipeline has to publish one first."""

    code = "snapshot_unavailable"

    def __init__(self, path: Path | None, reason: str) -> None:
        super().__init__(f"the published snapshot{f' {path}' if path else ''} is not available ({reason}); "
                         "run `carbon run` to materialize and publish it")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _FileIdentity:
    inode: int
    mtime_ns: int
    size: int


class _Generation:
    """One opened version of the snapshot file and how many cursors still use it."""

    def __init__(self, path: Path, identity: _FileIdentity) -> None:
        self.identity = identity
        self.connection = duckdb.connect()
        quoted = str(path).replace("'", "''")
        try:
            self.connection.execute(f"attach '{quoted}' as {_ALIAS} (read_only)")
        except duckdb.Error:
            self.connection.close()
            raise
        self.users = 0
        self.retired = False

    def close(self) -> None:
        self.connection.close()


class SnapshotReader:
    """Hands out one cursor per request on the current version of the snapshot file."""

    def __init__(self, *, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._current: _Generation | None = None

    def _identity(self) -> _FileIdentity:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError as err:
            raise SnapshotUnavailableError(self.path, "the file does not exist") from err
        return _FileIdentity(stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _acquire(self) -> _Generation:
        identity = self._identity()
        with self._lock:
            current = self._current
            if current is None or current.identity != identity:
                try:
                    fresh = _Generation(self.path, identity)
                except duckdb.Error as err:
                    raise SnapshotUnavailableError(self.path, str(err).splitlines()[0]) from err
                if current is not None:
                    current.retired = True
                    if current.users == 0:
                        current.close()
                self._current = current = fresh
            current.users += 1
            return current

    def _release(self, generation: _Generation) -> None:
        with self._lock:
            generation.users -= 1
            if generation.retired and generation.users == 0:
                generation.close()

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one request, on the snapshot as it is now."""
        generation = self._acquire()
        try:
            cursor = generation.connection.cursor()
            try:
                cursor.execute(f"use {_ALIAS}")
                yield cursor
            finally:
                cursor.close()
        finally:
            self._release(generation)

    def close(self) -> None:
        """Close the current generation (at shutdown); a later request reopens the file."""
        with self._lock:
            current, self._current = self._current, None
            if current is not None:
                current.retired = True
                if current.users == 0:
                    current.close()


# ---------------------------------------------------------------------------------------------
# Queries. Every function takes a cursor, fetches everything (DuckDB 2.0 refuses a second
# statement on a connection with an unfinished result) and returns plain dicts.


def _records(cursor: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    try:
        rows = cursor.execute(sql, params or {}).fetchall()
    except duckdb.CatalogException as err:
        # A table the snapshot lacks (published before any month had data, or by an older pipeline).
        raise SnapshotUnavailableError(None, str(err).splitlines()[0]) from err
    columns = [d[0] for d in cursor.description or []]
    return [{c: _clean(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def _clean(value: Any) -> Any:
    """NaN (from pandas frames copied into the warehouse) is a missing value; JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def table_counts(cursor: duckdb.DuckDBPyConnection, *, tables: list[str]) -> dict[str, int]:
    """Row count of each served table: what readiness checks."""
    return {t: int(_records(cursor, f"select count(*) as n from {t}")[0]["n"]) for t in tables}


_ENTERPRISES_SQL = """
with latest as (
    select enterprise_id, arg_max(is_key_emitter, period) as key_emitter,
           max(period)::integer as key_emitter_year
    from out_emissions__yearly_enterprise_balances
    where length(period) = 4
    group by enterprise_id
)
select r.*, l.key_emitter, l.key_emitter_year
from core_registry__enterprises r left join latest l using (enterprise_id)
where ($enterprise_id is null or r.enterprise_id = $enterprise_id)
  and ($category is null or r.category = $category)
  and ($sector_code is null or r.sector_code = $sector_code)
  and ($key_emitter is null or coalesce(l.key_emitter, false) = $key_emitter)
"""


def list_enterprises(cursor: duckdb.DuckDBPyConnection, *, category: str | None = None,
                     sector_code: str | None = None, key_emitter: bool | None = None,
                     only: frozenset[str] | None = None, limit: int = 100, offset: int = 0
                     ) -> tuple[list[dict[str, Any]], int]:
    """Registry entries with their latest-year key-emitter status, one page, and the filtered total.

    ``only`` confines the list to those enterprises (an enterprise user's own).
    """
    params: dict[str, Any] = {"enterprise_id": None, "category": category, "sector_code": sector_code,
                              "key_emitter": key_emitter}
    listed = _ENTERPRISES_SQL
    if only is not None:
        listed = f"{_ENTERPRISES_SQL} and list_contains($only, r.enterprise_id)"
        params["only"] = sorted(only)
    total = _records(cursor, f"select count(*) as n from ({listed})", params)[0]["n"]
    rows = _records(cursor, f"{listed} order by r.enterprise_id limit $limit offset $offset",
                    {**params, "limit": limit, "offset": offset})
    return rows, int(total)


def get_enterprise(cursor: duckdb.DuckDBPyConnection, *, enterprise_id: str) -> dict[str, Any] | None:
    """One registry entry with its latest-year key-emitter status, or None."""
    rows = _records(cursor, _ENTERPRISES_SQL, {"enterprise_id": enterprise_id, "category": None,
                                               "sector_code": None, "key_emitter": None})
    return rows[0] if rows else None


def enterprise_is_known(cursor: duckdb.DuckDBPyConnection, *, enterprise_id: str) -> bool:
    """Registered, or at least reported: unregistered reporters have balances too."""
    rows = _records(cursor, """
        select exists(select 1 from core_registry__enterprises where enterprise_id = $id)
            or exists(select 1 from out_emissions__yearly_enterprise_balances where enterprise_id = $id) as known
        """, {"id": enterprise_id})
    return bool(rows[0]["known"])


def monthly_balances(cursor: duckdb.DuckDBPyConnection, *, enterprise_id: str,
                     year: int | None = None) -> list[dict[str, Any]]:
    """The enterprise's monthly balances (a ``YYYY`` period holds its annual-only lines), by period."""
    return _records(cursor, """
        select * from out_emissions__monthly_enterprise_balances
        where enterprise_id = $id and ($year is null or left(period, 4) = $year::varchar)
        order by period""", {"id": enterprise_id, "year": year})


def yearly_balances(cursor: duckdb.DuckDBPyConnection, *, enterprise_id: str) -> list[dict[str, Any]]:
    """The enterprise's yearly balances with key-emitter status and months reported, by year."""
    return _records(cursor, """
        select * from out_emissions__yearly_enterprise_balances where enterprise_id = $id
        order by period""", {"id": enterprise_id})


def lineage_lines(cursor: duckdb.DuckDBPyConnection, *, enterprise_id: str, period: str) -> list[dict[str, Any]]:
    """Every emission line of the enterprise in a month (``YYYY-MM``) or a whole year (``YYYY``)."""
    condition = "period = $period" if len(period) == 7 else "year::varchar = $period"
    return _records(cursor, f"""
        select * from core_emissions__monthly_lines
        where enterprise_id = $id and {condition}
        order by period, source_file, row_number""", {"id": enterprise_id, "period": period})


def factors_by_id(cursor: duckdb.DuckDBPyConnection, *, factor_ids: list[str]) -> list[dict[str, Any]]:
    """Provenance of the given factors in the edition the snapshot was calculated with."""
    if not factor_ids:
        return []
    return _records(cursor, """
        select * from core_factors__factors where factor_id in (select unnest($ids))
        order by factor_id""", {"ids": sorted(set(factor_ids))})


def zone_indicators(cursor: duckdb.DuckDBPyConnection, *, period: str | None,
                    sector_code: str) -> list[dict[str, Any]]:
    """Zone indicators per month for one sector code (``all`` = the whole zone)."""
    return _records(cursor, """
        select * from out_zone__monthly_indicators
        where sector_code = $sector and ($period is null or period = $period)
        order by period, category""", {"sector": sector_code, "period": period})

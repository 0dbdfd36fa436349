"""``api.store.db.write_rows``: the exchange batch's bulk write, one statement on PostgreSQL, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import JSON, BigInteger, Column, ForeignKey, MetaData, String, Table, UniqueConstraint, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, registry

from api.store.db import session_factory_for, take_updates, write_rows
from api.store.schema import UTCDateTime
from tests.conftest import postgres_database

METADATA = MetaData()
ACCOUNTS = Table("wr_accounts", METADATA, Column("account_id", String(16), primary_key=True),
                 Column("name", String(64)), Column("opened_at", UTCDateTime()), Column("document", JSON),
                 Column("note", String(64), nullable=True))
HOLDINGS = Table("wr_holdings", METADATA,
                 Column("account_id", String(16), ForeignKey("wr_accounts.account_id"), primary_key=True),
                 Column("instrument", String(16), primary_key=True), Column("quantity", BigInteger))
ORDERS = Table("wr_orders", METADATA, Column("instrument", String(16), primary_key=True),
               Column("order_id", BigInteger, primary_key=True), Column("account_id", String(16)),
               Column("client_order_id", String(16)), Column("state", String(16)),
               UniqueConstraint("instrument", "account_id", "client_order_id"))
BEIJING = timezone(timedelta(hours=8))


class Account:
    """An ORM row of ``wr_accounts``, for :func:`take_updates`."""

    account_id: str
    name: str
    opened_at: datetime
    document: Any
    note: str | None


registry().map_imperatively(Account, ACCOUNTS)


def rows(connection: Any, table: Table) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in connection.execute(select(table).order_by(*table.primary_key.columns))]


@pytest.fixture
def engine(database_url: str) -> Any:
    bind = session_factory_for(database_url).kw["bind"]
    METADATA.create_all(bind)
    yield bind
    bind.dispose()


def test_inserts_additions_and_updates_land_with_every_value_as_given(engine: Any) -> None:
    opened = datetime(2026, 3, 2, 9, 30, tzinfo=BEIJING)
    with engine.begin() as connection:
        write_rows(connection, inserts=[
            (ACCOUNTS, [{"account_id": "A", "name": "郑州热力", "opened_at": opened,
                         "document": {"kind": "trader", "limits": [1, 2], "big": 9_007_199_254_740_993},
                         "note": None},
                        {"account_id": "B", "name": "O'Brien \"quoted\" \\ slash", "opened_at": opened,
                         "document": [], "note": "n"}]),
            (HOLDINGS, [{"account_id": "A", "instrument": "CNY", "quantity": 10**15}])])
    with engine.begin() as connection:
        write_rows(connection,
                   additions=[(HOLDINGS, [{"account_id": "A", "instrument": "CNY", "quantity": -7},
                                          {"account_id": "B", "instrument": "CEA-2025", "quantity": 5}],
                               ("account_id", "instrument"), "quantity")],
                   updates=[(ACCOUNTS, [{"account_id": "B", "note": None, "name": "renamed"}], ("account_id",))])
        accounts, holdings = rows(connection, ACCOUNTS), rows(connection, HOLDINGS)
    assert accounts == [
        {"account_id": "A", "name": "郑州热力", "opened_at": opened.astimezone(UTC),
         "document": {"kind": "trader", "limits": [1, 2], "big": 9_007_199_254_740_993}, "note": None},
        {"account_id": "B", "name": "renamed", "opened_at": opened.astimezone(UTC), "document": [], "note": None}]
    assert holdings == [{"account_id": "A", "instrument": "CNY", "quantity": 10**15 - 7},
                        {"account_id": "B", "instrument": "CEA-2025", "quantity": 5}]


def test_a_failing_part_leaves_nothing_written(engine: Any) -> None:
    opened = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    account = {"account_id": "A", "name": "a", "opened_at": opened, "document": {}, "note": None}
    with engine.begin() as connection:
        write_rows(connection, inserts=[(ACCOUNTS, [account])])
    with pytest.raises(IntegrityError), engine.begin() as connection:
        write_rows(connection, inserts=[
            (ACCOUNTS, [{**account, "account_id": "C"}]),
            (HOLDINGS, [{"account_id": "C", "instrument": "CNY", "quantity": 1},
                        {"account_id": "missing", "instrument": "CNY", "quantity": 1}])])
    with engine.begin() as connection:
        assert [a["account_id"] for a in rows(connection, ACCOUNTS)] == ["A"]
        assert rows(connection, HOLDINGS) == []


def test_a_value_json_has_no_form_for_fails_the_write(engine: Any) -> None:
    opened = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    odd = {"account_id": "A", "name": "a", "opened_at": opened, "document": {"price": Decimal("50.01")}, "note": None}
    with pytest.raises((TypeError, StatementError)), engine.begin() as connection:  # SQLite: wrapped
        write_rows(connection, inserts=[(ACCOUNTS, [odd])])
    with engine.begin() as connection:
        assert rows(connection, ACCOUNTS) == []


def test_nothing_to_write_sends_nothing(engine: Any) -> None:
    with engine.begin() as connection:
        write_rows(connection, inserts=[(ACCOUNTS, [])], updates=[(ACCOUNTS, [], ("account_id",))],
                   additions=[(HOLDINGS, [], ("account_id", "instrument"), "quantity")])
        assert rows(connection, ACCOUNTS) == []


def test_take_updates_hands_over_what_the_session_would_flush(engine: Any) -> None:
    opened = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    with engine.begin() as connection:
        write_rows(connection, inserts=[(ACCOUNTS, [
            {"account_id": a, "name": a, "opened_at": opened, "document": {}, "note": None} for a in "ABC"])])
    with Session(engine) as session:
        changed, same, untouched = (session.get(Account, a) for a in "ABC")
        assert changed is not None and same is not None and untouched is not None
        changed.note, changed.document, same.name = "noted", {"v": 2}, "B"
        updates = take_updates(session, (Account,))
        assert updates == [(ACCOUNTS, [{"account_id": "A", "note": "noted", "document": {"v": 2}}], ("account_id",))]
        assert changed not in session and same not in session and untouched in session
        assert changed.note == "noted"  # still readable
        write_rows(session.connection(), updates=updates)
        session.flush()  # nothing left to flush for the rows handed over
        session.commit()
    with engine.begin() as connection:
        assert [(a["account_id"], a["note"], a["document"]) for a in rows(connection, ACCOUNTS)] == [
            ("A", "noted", {"v": 2}), ("B", None, {}), ("C", None, {})]


@pytest.mark.postgres
def test_an_update_reads_only_the_rows_it_changes_however_stale_the_statistics() -> None:
    """The table grew 2,000-fold since it was analyzed: the update still finds each row by its key."""
    with postgres_database() as url:
        bind = session_factory_for(url).kw["bind"]
        try:
            METADATA.create_all(bind, tables=[ORDERS])
            with bind.begin() as connection:
                connection.execute(text("alter table wr_orders set (autovacuum_enabled = false)"))
                connection.execute(text("insert into wr_orders select 'CEA-2025', g, 'A' || g % 32, 'c' || g, 'new' "
                                        "from generate_series(1, 10) g"))
                connection.execute(text("analyze wr_orders"))
                connection.execute(text("insert into wr_orders select 'CEA-2025', g, 'A' || g % 32, 'c' || g, 'new' "
                                        "from generate_series(11, 20000) g"))

            def reads() -> tuple[int, int]:
                with bind.begin() as connection:
                    connection.execute(text("select pg_stat_force_next_flush()"))
                with bind.begin() as connection:
                    connection.execute(text("select pg_stat_clear_snapshot()"))
                    seq, fetched = connection.execute(text(
                        "select seq_scan, coalesce(idx_tup_fetch, 0) from pg_stat_user_tables "
                        "where relid = 'wr_orders'::regclass")).one()
                    return seq, fetched

            seq_before, fetched_before = reads()
            changed = [{"instrument": "CEA-2025", "order_id": i, "state": "filled"} for i in (8426, 8459, 15001)]
            with bind.begin() as connection:
                write_rows(connection, updates=[(ORDERS, changed, ("instrument", "order_id"))])
            seq_after, fetched_after = reads()
            with bind.begin() as connection:
                states = connection.execute(text("select order_id, state from wr_orders where state = 'filled' "
                                                 "order by order_id")).all()
        finally:
            bind.dispose()
    assert [tuple(r) for r in states] == [(8426, "filled"), (8459, "filled"), (15001, "filled")]
    assert seq_after == seq_before, "the update scanned the whole table"
    assert fetched_after - fetched_before <= 10, "the update read rows it does not change"

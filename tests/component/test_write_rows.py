"""``api.store.db.write_rows``: the exchange batch's bulk write, one statement on PostgreSQL, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import JSON, BigInteger, Column, ForeignKey, MetaData, String, Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, registry

from api.store.db import session_factory_for, take_updates, write_rows
from api.store.schema import UTCDateTime

METADATA = MetaData()
ACCOUNTS = Table("wr_accounts", METADATA, Column("account_id", String(16), primary_key=True),
                 Column("name", String(64)), Column("opened_at", UTCDateTime()), Column("document", JSON),
                 Column("note", String(64), nullable=True))
HOLDINGS = Table("wr_holdings", METADATA,
                 Column("account_id", String(16), ForeignKey("wr_accounts.account_id"), primary_key=True),
                 Column("instrument", String(16), primary_key=True), Column("quantity", BigInteger))
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

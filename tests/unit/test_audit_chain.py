"""The audit hash chain: an edited entry, a deleted entry in the middle and a deleted last entry are each named.

The first tests check ``accounting.audit.verify_chain`` on entries built in memory; the last ones
check the store's ``verify`` on a real database (SQLite and PostgreSQL), where deleting the last
entry leaves the chain itself consistent and only the head row betrays it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from accounting.audit import GENESIS, ChainEntry, chain_entry, content_hash, entry_hash, verify_chain
from accounting.review import Actor
from api.store import audit
from api.store.db import create_db_engine, make_session_factory, migrate
from api.store.schema import AuditEntry


def chain(length: int) -> list[ChainEntry]:
    entries: list[ChainEntry] = []
    previous = GENESIS
    for seq in range(1, length + 1):
        entry = chain_entry(seq=seq, prev_hash=previous, fields={"action": f"review.step{seq}", "actor_id": "o1",
                                                                  "detail": {"n": seq}})
        entries.append(entry)
        previous = entry.entry_hash
    return entries


def codes(entries: list[ChainEntry]) -> list[tuple[int, str]]:
    return [(p.seq, p.code) for p in verify_chain(entries)]


def test_an_intact_chain_has_no_problems_and_each_hash_covers_the_one_before() -> None:
    entries = chain(5)
    assert verify_chain(entries) == []
    assert [e.prev_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]
    assert entries[0].prev_hash == GENESIS and len({e.entry_hash for e in entries}) == 5


@pytest.mark.parametrize("field", ["action", "actor_id", "detail"])
def test_an_edited_entry_is_named_by_its_own_hash(field: str) -> None:
    entries = chain(5)
    forged = {**entries[2].fields, field: "something else"}
    entries[2] = dataclasses.replace(entries[2], fields=forged)
    assert codes(entries) == [(3, "edited")]


def test_an_edit_that_also_rewrites_its_own_hash_breaks_the_link_of_the_next_entry() -> None:
    entries = chain(5)
    forged = {**entries[2].fields, "actor_id": "mallory"}
    entries[2] = chain_entry(seq=3, prev_hash=entries[2].prev_hash, fields=forged)
    assert codes(entries) == [(4, "broken_link")]


def test_a_changed_sequence_number_is_an_edit() -> None:
    entries = chain(3)
    entries[2] = dataclasses.replace(entries[2], seq=7)
    assert codes(entries) == [(7, "gap"), (7, "edited")]


def test_a_deleted_entry_in_the_middle_leaves_a_gap_and_a_broken_link() -> None:
    entries = chain(5)
    del entries[2]
    assert codes(entries) == [(4, "gap"), (4, "broken_link")]


def test_a_deleted_first_entry_is_detected_too() -> None:
    assert codes(chain(3)[1:]) == [(2, "gap"), (2, "broken_link")]


def test_a_deleted_last_entry_leaves_the_chain_itself_consistent() -> None:
    """Why the store keeps a head row: the truncated chain verifies on its own (see the database test below)."""
    assert verify_chain(chain(5)[:-1]) == []


def test_the_hash_covers_sequence_previous_hash_and_fields_canonically() -> None:
    fields = {"b": 1, "a": [1, 2], "c": "税"}
    assert entry_hash(seq=1, prev_hash=GENESIS, fields=fields) == entry_hash(
        seq=1, prev_hash=GENESIS, fields=dict(reversed(list(fields.items()))))
    assert entry_hash(seq=2, prev_hash=GENESIS, fields=fields) != entry_hash(seq=1, prev_hash=GENESIS, fields=fields)
    assert entry_hash(seq=1, prev_hash="1" * 64, fields=fields) != entry_hash(seq=1, prev_hash=GENESIS, fields=fields)
    assert content_hash({"x": 1.0}) != content_hash({"x": 1.5})


# ---------------------------------------------------------------------------------------------
# The store's verify, on a real database


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = create_db_engine(database_url)
    migrate(created)
    yield created
    created.dispose()


def write_entries(engine: Engine, count: int) -> None:
    actor = Actor(actor_id="officer-1", role="officer")
    with make_session_factory(engine)() as session:
        for n in range(count):
            audit.append(session, actor=actor, action="review.comment", target=f"period:X:2024-0{n + 1}",
                         before={"n": n}, after={"n": n + 1}, detail={"reason": f"comment {n}"})
        session.commit()


def tamper(engine: Engine, statement: str) -> None:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("drop trigger if exists audit_log_no_update"))
            connection.execute(text("drop trigger if exists audit_log_no_delete"))
        else:
            connection.execute(text("alter table audit_log disable trigger audit_log_no_change"))
        connection.execute(text(statement))
        connection.commit()


def verify(engine: Engine) -> tuple[int, list[tuple[int, str]]]:
    with Session(engine) as session:
        count, problems = audit.verify(session)
    return count, [(p.seq, p.code) for p in problems]


def test_the_store_verifies_an_untouched_chain_read_back_from_the_database(engine: Engine) -> None:
    write_entries(engine, 5)
    assert verify(engine) == (5, [])
    with Session(engine) as session:
        stored = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5] and stored[0].prev_hash == GENESIS


def test_the_store_names_an_entry_edited_in_the_database(engine: Engine) -> None:
    write_entries(engine, 5)
    tamper(engine, "update audit_log set target = 'period:Y:2024-03' where seq = 3")
    assert verify(engine) == (5, [(3, "edited")])


def test_the_store_names_an_entry_deleted_from_the_middle(engine: Engine) -> None:
    write_entries(engine, 5)
    tamper(engine, "delete from audit_log where seq = 3")
    assert verify(engine) == (4, [(4, "gap"), (4, "broken_link")])


def test_the_store_detects_a_deleted_last_entry_by_the_head(engine: Engine) -> None:
    write_entries(engine, 5)
    tamper(engine, "delete from audit_log where seq = 5")
    assert verify(engine) == (4, [(5, "head_mismatch")])


def test_the_database_refuses_to_update_or_delete_an_audit_entry(engine: Engine) -> None:
    from sqlalchemy.exc import DBAPIError

    write_entries(engine, 2)
    for statement in ("update audit_log set actor_id = 'mallory' where seq = 1", "delete from audit_log where seq = 2"):
        with engine.connect() as connection, pytest.raises(DBAPIError):
            connection.execute(text(statement))
    assert verify(engine) == (2, [])

"""Many clients moving the same units at once on PostgreSQL never create or lose a unit.

Eight threads, each with its own session, move units of one vintage back and forth between the same
four accounts through the transfer service. Refusals (not enough available at that moment) are
expected and change nothing; at the end the units of the pool are exactly those issued, every
acknowledged transfer is in the journal, and ``verify`` rebuilds the stored balances from the journal.
"""

from __future__ import annotations

import itertools
import random
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from accounting.ledger import ISSUANCE, LedgerError, transfer_entry
from accounting.review import Actor
from api.services import transfers
from api.services.ledger import ensure_system_accounts, new_entry_id, open_account, post, system_account_id, verify
from api.store import ledger as repository
from api.store.db import session_factory
from api.store.schema import JournalEntryRow
from tests.conftest import zone_settings

OFFICER = Actor(actor_id="officer-li", role="officer")
POOL = ("POOL-0", "POOL-1", "POOL-2", "POOL-3")
VINTAGE = "CEA-2025"
ISSUED_EACH = 1000
THREADS = 8
TRANSFERS_EACH = 20


def open_pool(sessions: sessionmaker[Session], holder: Actor) -> int:
    """The pool's accounts, each trusting the others at once, with ``ISSUED_EACH`` units; the journal's length."""
    with sessions() as session:
        ensure_system_accounts(session)
        for account_id in POOL:
            open_account(session, actor=OFFICER, account_id=account_id, kind="trader", owner_id="pool",
                         name=account_id)
        for source, target in itertools.permutations(POOL, 2):
            transfers.add_counterparty(session, actor=holder, account_id=source, counterparty_id=target,
                                       delay=timedelta(0))
        for account_id in POOL:
            post(session, entry=transfer_entry(entry_id=new_entry_id(), kind="issue", to_account=account_id,
                                               from_account=system_account_id(ISSUANCE), instrument=VINTAGE,
                                               quantity=ISSUED_EACH), actor=OFFICER)
        session.commit()
        return session.scalar(select(func.count()).select_from(JournalEntryRow)) or 0


class Clients:
    """What the threads saw: the transfers acknowledged, the refusals' codes, and any unexpected failure."""

    def __init__(self, sessions: sessionmaker[Session], holder: Actor) -> None:
        self.sessions, self.holder = sessions, holder
        self.acknowledged: list[str] = []
        self.refused: list[str] = []
        self.failures: list[BaseException] = []
        self.lock = threading.Lock()
        self.start = threading.Barrier(THREADS)

    def move_once(self, rng: random.Random) -> None:
        source, target = rng.sample(POOL, 2)
        with self.sessions() as session:
            try:
                _, answer = transfers.transfer(session, actor=self.holder, from_account=source, to_account=target,
                                               instrument=VINTAGE, quantity=rng.randint(1, 600))
                session.commit()
            except LedgerError as err:
                session.rollback()
                with self.lock:
                    self.refused.append(err.code)
                return
        with self.lock:
            self.acknowledged.append(answer["entry"]["entry_id"])

    def run(self, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - a test's reproducible choices
        try:
            self.start.wait()
            for _ in range(TRANSFERS_EACH):
                self.move_once(rng)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            with self.lock:
                self.failures.append(err)


def test_eight_clients_moving_the_same_units_at_once_never_create_or_lose_a_unit(tmp_path: Path,
                                                                               database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("row-lock concurrency is PostgreSQL's (SQLite serializes every writer)")
    sessions = session_factory(zone_settings(tmp_path, database_url=database_url))
    holder = Actor(actor_id="pool-holder", role="trader", account_ids=frozenset(POOL))
    entries_before = open_pool(sessions, holder)
    clients = Clients(sessions, holder)
    threads = [threading.Thread(target=clients.run, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client hung (a deadlock?)"
    assert not clients.failures, clients.failures
    assert set(clients.refused) <= {"insufficient_available"}, clients.refused
    assert len(clients.acknowledged) > THREADS * TRANSFERS_EACH // 2

    with sessions() as session:
        report = verify(session)
        assert report["ok"], report
        pool = {a: repository.balances_of(session, account_id=a).get(VINTAGE, 0) for a in POOL}
        assert sum(pool.values()) == ISSUED_EACH * len(POOL), pool
        assert min(pool.values()) >= 0, pool
        stored = set(session.scalars(select(JournalEntryRow.entry_id).where(JournalEntryRow.kind == "transfer")))
        assert stored == set(clients.acknowledged)
        journal_length = session.scalar(select(func.count()).select_from(JournalEntryRow))
        assert journal_length == entries_before + len(clients.acknowledged)

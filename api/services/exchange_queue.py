"""Group commit for the exchange: requests queue their commands, one writer applies a batch in one transaction.

Why: the commands of one instrument are applied one after the other anyway (the book has one order), and
a durable command pays for a transaction of its own: the instrument's lock, a dozen round trips, and a
commit that waits for the disk. Under load most of a request's time went to waiting for the others' commits.
A writer that takes every command waiting (up to a bound), applies them in order in ONE transaction and
commits once pays that price once per batch, and answers every request of the batch after the commit:
nobody is acknowledged before their command is durable.

How: each queue has one writer thread, started by the first command that finds none at work; it writes
batches while commands wait and ends after :data:`LINGER_SECONDS` without any. Under load it lets a batch
fill for a few milliseconds while commands keep arriving (:data:`GATHER_SECONDS`). A request waits for its
ticket's outcome: a thread blocks on an event (:meth:`CommandQueue.run`), a coroutine awaits a future
(:meth:`CommandQueue.run_async`) and so holds no worker thread while it waits. The queue's ``write_batch``
decides each ticket's outcome (a value or an error) or puts tickets back with :meth:`CommandQueue.retry`
when their batch failed through no fault of theirs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: At most this many commands go into one transaction: a bound on a batch's latency and on its memory.
MAX_BATCH = 64
#: An idle writer thread ends after this long without a command.
LINGER_SECONDS = 1.0
#: After a batch of several commands, the writer waits up to this long for more while they keep coming (each
#: within a quarter of it): the requesters it just answered are sending their next commands, and one batch
#: for all of them costs less than two (the batch's locks, reads, writes and commit are paid once).
GATHER_SECONDS = 0.004


@dataclass(slots=True, eq=False)
class Ticket:
    """One request's command: ``work`` runs in the writer's transaction; the outcome comes back after commit."""

    work: Callable[..., Any]
    #: Who sent the command (the log and the ledger entry name them).
    actor: Any = None
    #: Accounts the command may take cash or units from, known before it runs (their balances are locked first).
    accounts: tuple[str, ...] = ()
    #: What the writer opens its transaction on (the requester's database engine).
    bind: Any = None
    attempts: int = 0
    done: bool = False
    value: Any = None
    error: BaseException | None = None
    #: Set by the writer while the batch runs: the answer before it is resolved and committed.
    pending: Any = field(default=None, repr=False)
    #: Called once in the writer's thread when the outcome is decided and its batch is over (a thread waits).
    wake: Callable[[], object] | None = field(default=None, repr=False)
    #: Resolved on its event loop when the outcome is decided and its batch is over (a coroutine waits).
    decided: asyncio.Future[None] | None = field(default=None, repr=False)

    def succeed(self, value: Any) -> None:
        self.value, self.error, self.done = value, None, True

    def fail(self, error: BaseException) -> None:
        self.value, self.error, self.done = None, error, True

    def outcome(self) -> Any:
        """The value, or the error raised in the requester's thread."""
        if self.error is not None:
            raise self.error
        return self.value


class CommandQueue:
    """The waiting tickets of one instrument in this process and the thread that writes them."""

    def __init__(self, write_batch: Callable[[list[Ticket]], None], *, max_batch: int = MAX_BATCH,
                 on_idle: Callable[[], None] | None = None, name: str = "exchange-writer") -> None:
        self.write_batch = write_batch
        #: Called by the writer thread as it ends (nothing waited for :data:`LINGER_SECONDS`).
        self.on_idle = on_idle
        self.max_batch = max_batch
        self.name = name
        self._condition = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._writing = False
        self._thread: threading.Thread | None = None
        self._last_batch = 0
        #: Batches written and commands in them (for tests and the benchmark).
        self.batches = 0
        self.commands = 0

    @property
    def waiting(self) -> int:
        """Tickets queued and not yet taken by the writer."""
        with self._condition:
            return len(self._waiting)

    @property
    def writing(self) -> bool:
        """A batch is being written (with waiting == 0: the writer has taken every ticket queued so far)."""
        with self._condition:
            return self._writing

    def run(self, ticket: Ticket) -> Any:
        """Queue ``ticket`` and block this thread until its outcome is decided; return it (or raise its error)."""
        decided = threading.Event()
        ticket.wake = decided.set
        self._submit(ticket)
        decided.wait()
        return ticket.outcome()

    async def run_async(self, ticket: Ticket) -> Any:
        """Queue ``ticket`` and wait on the event loop (no thread held) until its outcome is decided."""
        ticket.decided = asyncio.get_running_loop().create_future()
        self._submit(ticket)
        await ticket.decided
        return ticket.outcome()

    def retry(self, tickets: Iterable[Ticket]) -> None:
        """Put ``tickets`` back at the head of the queue, in their order (their batch was rolled back)."""
        with self._condition:
            for ticket in reversed(list(tickets)):
                ticket.attempts += 1
                ticket.pending = None
                self._waiting.appendleft(ticket)

    # -- the writer ---------------------------------------------------------------------------------------

    def _submit(self, ticket: Ticket) -> None:
        with self._condition:
            self._waiting.append(ticket)
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_while_waiting, name=self.name, daemon=True)
                self._thread.start()
            else:
                self._condition.notify()

    def _write_while_waiting(self) -> None:
        try:
            self._write_batches()
        finally:
            if self.on_idle is not None:
                self.on_idle()

    def _write_batches(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self.write_batch(batch)
            except BaseException as err:  # noqa: BLE001 - a writer that died would leave its requesters waiting
                for ticket in batch:
                    if not ticket.done:
                        ticket.fail(err)
            finally:
                self._finish(batch)

    def _next_batch(self) -> list[Ticket] | None:
        """The next tickets to write, or None (the writer ends) after :data:`LINGER_SECONDS` without any."""
        with self._condition:
            if not self._waiting:
                self._condition.wait(LINGER_SECONDS)
            if not self._waiting:
                self._thread = None
                return None
            if self._last_batch > 1:
                self._gather()
            self._writing = True
            batch = [self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))]
            self._last_batch = len(batch)
            return batch

    def _gather(self) -> None:
        """Wait (at most :data:`GATHER_SECONDS`) while more commands keep coming, each within a quarter of it."""
        deadline = time.monotonic() + GATHER_SECONDS
        while len(self._waiting) < self.max_batch and (left := deadline - time.monotonic()) > 0:
            before = len(self._waiting)
            self._condition.wait(min(left, GATHER_SECONDS / 4))
            if len(self._waiting) == before:
                return

    def _finish(self, batch: list[Ticket]) -> None:
        """Count the batch and wake the requesters whose outcome is decided."""
        with self._condition:
            self._writing = False
            self.batches += 1
            self.commands += sum(1 for t in batch if t.done)
            retried = set(self._waiting)
            for ticket in batch:  # a ticket write_batch neither decided nor put back fails loudly
                if not ticket.done and ticket not in retried:
                    ticket.fail(RuntimeError("the command's batch ended without an answer"))
        waiting_loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for ticket in batch:
            if not ticket.done:
                continue
            if ticket.wake is not None:
                ticket.wake()
            if ticket.decided is not None:  # one wake-up per event loop for the whole batch
                waiting_loops.setdefault(ticket.decided.get_loop(), []).append(ticket.decided)
        for loop, decided in waiting_loops.items():
            loop.call_soon_threadsafe(_settle, decided)


def _settle(decided: list[asyncio.Future[None]]) -> None:
    for future in decided:
        if not future.done():  # a requester that went away cancelled its future
            future.set_result(None)

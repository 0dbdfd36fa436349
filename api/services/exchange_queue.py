"""Group commit for the exchange: requests queue their commands, one writer applies a batch in one transaction.

Why: the commands of one instrument are applied one after the other anyway (the book has one order), and
a durable command pays for a transaction of its own: the instrument's lock, a dozen round trips, and a
commit that waits for the disk. Under load most of a request's time went to waiting for the others' commits.
A writer that takes every command waiting (up to a bound), applies them in order in ONE transaction and
commits once pays that price once per batch, and answers every request of the batch after the commit:
nobody is acknowledged before their command is durable.

How (leader and followers, no thread of our own): a request puts a :class:`Ticket` in the queue; if no
writer is at work it becomes the writer and runs batches until its own ticket is answered, then hands over
(the next waiting request becomes the writer). The others wait for their ticket's outcome. The caller's
``write_batch`` decides each ticket's outcome (a value or an error) or puts tickets back with
:meth:`CommandQueue.retry` when their batch failed through no fault of theirs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: At most this many commands go into one transaction: a bound on a batch's latency and on its memory.
MAX_BATCH = 64


@dataclass(slots=True, eq=False)
class Ticket:
    """One request's command: ``work`` runs in the writer's transaction; the outcome comes back after commit."""

    work: Callable[..., Any]
    #: Who sent the command (the log and the ledger entry name them).
    actor: Any = None
    #: Accounts the command may take cash or units from, known before it runs (their balances are locked first).
    accounts: tuple[str, ...] = ()
    attempts: int = 0
    done: bool = False
    value: Any = None
    error: BaseException | None = None
    #: Set by the writer while the batch runs: the answer before it is resolved and committed.
    pending: Any = field(default=None, repr=False)

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
    """The waiting tickets of one instrument in this process and who writes them."""

    def __init__(self, *, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._condition = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._writing = False
        #: Batches written and commands in them (for tests and the benchmark).
        self.batches = 0
        self.commands = 0

    @property
    def waiting(self) -> int:
        """Tickets queued and not yet taken by a writer."""
        with self._condition:
            return len(self._waiting)

    @property
    def writing(self) -> bool:
        """A writer is at work (with waiting == 0: it has taken every ticket queued so far)."""
        with self._condition:
            return self._writing

    def run(self, ticket: Ticket, write_batch: Callable[[list[Ticket]], None]) -> Any:
        """Queue ``ticket``, write batches if nobody else does, and return its outcome once decided."""
        with self._condition:
            self._waiting.append(ticket)
            while not ticket.done and self._writing:
                self._condition.wait()
            if ticket.done:
                return ticket.outcome()
            self._writing = True
        try:
            while not ticket.done:
                with self._condition:
                    batch = [self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))]
                try:
                    write_batch(batch)
                finally:
                    with self._condition:
                        self.batches += 1
                        self.commands += sum(1 for t in batch if t.done)
                        for waiting in batch:  # a ticket write_batch neither decided nor put back fails loudly
                            if not waiting.done and waiting not in self._waiting:
                                waiting.fail(RuntimeError("the command's batch ended without an answer"))
                        self._condition.notify_all()
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()
        return ticket.outcome()

    def retry(self, tickets: Iterable[Ticket]) -> None:
        """Put ``tickets`` back at the head of the queue, in their order (their batch was rolled back)."""
        with self._condition:
            for ticket in reversed(list(tickets)):
                ticket.attempts += 1
                ticket.pending = None
                self._waiting.appendleft(ticket)

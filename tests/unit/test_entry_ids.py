"""Journal entry ids: unique within a process and between processes, forked ones included."""

from __future__ import annotations

import os
import re

from api.services.ledger import new_entry_id


def test_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [new_entry_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_process_draws_a_prefix_of_its_own() -> None:
    before = new_entry_id()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next id, to the parent
        os.write(write, new_entry_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    ours = new_entry_id()
    assert len(theirs) == 32
    assert theirs[:16] != ours[:16] == before[:16]
    assert theirs != ours

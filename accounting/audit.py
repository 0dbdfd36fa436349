"""The audit chain: every write is an entry whose hash covers the entry before it.

Why a chain: the log is append-only by rule and by database trigger, but whoever holds the database
could still edit or delete a row. Each entry's hash covers its own fields and the previous entry's
hash, so changing any past entry breaks its own hash, and deleting one breaks the link of the next
(and leaves a gap in the sequence). ``verify_chain`` names the first place where either happens.

>>> first = chain_entry(seq=1, prev_hash=GENESIS, fields={"action": "submit", "actor": "a"})
>>> second = chain_entry(seq=2, prev_hash=first.entry_hash, fields={"action": "lock", "actor": "b"})
>>> verify_chain([first, second])
[]
>>> [p.code for p in verify_chain([second])]
['gap', 'broken_link']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no spaces, UTF-8 kept, non-JSON values as strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value``: the before/after hash of an audited object."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainEntry:
    """One audit entry as stored: its sequence number, fields, and the two hashes that chain it."""

    seq: int
    prev_hash: str
    fields: Mapping[str, Any]
    entry_hash: str


def entry_hash(*, seq: int, prev_hash: str, fields: Mapping[str, Any]) -> str:
    """The hash of an entry: covers its sequence number, its fields and the previous entry's hash."""
    return content_hash({"seq": seq, "prev_hash": prev_hash, "fields": dict(fields)})


def chain_entry(*, seq: int, prev_hash: str, fields: Mapping[str, Any]) -> ChainEntry:
    """A new entry following ``prev_hash``."""
    return ChainEntry(seq=seq, prev_hash=prev_hash, fields=dict(fields),
                      entry_hash=entry_hash(seq=seq, prev_hash=prev_hash, fields=fields))


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """Where the chain breaks and how: ``edited``, ``broken_link`` or ``gap``."""

    seq: int
    code: str
    detail: str


def verify_chain(entries: Iterable[ChainEntry], *, start_hash: str = GENESIS, start_seq: int = 1) -> list[ChainProblem]:
    """Check entries in sequence order; return every problem found (empty when the chain holds)."""
    problems: list[ChainProblem] = []
    expected_prev, expected_seq = start_hash, start_seq
    for entry in entries:
        if entry.seq != expected_seq:
            problems.append(ChainProblem(entry.seq, "gap", f"expected entry {expected_seq}, found {entry.seq}:"
                                         " an entry was deleted"))
        if entry.prev_hash != expected_prev:
            problems.append(ChainProblem(entry.seq, "broken_link", "its previous-hash does not match the entry"
                                         " before it: an entry before it was deleted or edited"))
        recomputed = entry_hash(seq=entry.seq, prev_hash=entry.prev_hash, fields=entry.fields)
        if recomputed != entry.entry_hash:
            problems.append(ChainProblem(entry.seq, "edited", "its content no longer matches its hash"))
        expected_prev, expected_seq = entry.entry_hash, entry.seq + 1
    return problems

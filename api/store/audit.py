"""The audit log: append an entry in the caller's transaction, read it back, verify the chain.

Appending locks the single ``audit_head`` row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
transactions start with BEGIN IMMEDIATE, see ``api.store.db``), so two writers never chain onto the
same entry. The entry is part of the caller's transaction: the change it records and the entry
commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from accounting.audit import ChainEntry, ChainProblem, chain_entry, content_hash, verify_chain
from accounting.review import Actor
from api.store.schema import AuditEntry, AuditHead


def utc_text(moment: datetime) -> str:
    """A timestamp as hashed: UTC, microseconds, 'Z' (SQLite returns naive UTC datetimes)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fields(*, at: str, actor_id: str, role: str, action: str, target: str, before_hash: str | None,
            after_hash: str | None, detail: dict[str, Any]) -> dict[str, Any]:
    return {"at": at, "actor_id": actor_id, "role": role, "action": action, "target": target,
            "before_hash": before_hash, "after_hash": after_hash, "detail": detail}


def append(session: Session, *, actor: Actor, action: str, target: str, before: Any = None, after: Any = None,
           detail: dict[str, Any] | None = None) -> AuditEntry:
    """Append one entry for a change of ``target`` from ``before`` to ``after`` (hashed, not stored)."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    at = datetime.now(UTC)
    fields = _fields(at=utc_text(at), actor_id=actor.actor_id, role=actor.role, action=action, target=target,
                     before_hash=None if before is None else content_hash(before),
                     after_hash=None if after is None else content_hash(after), detail=detail or {})
    link = chain_entry(seq=head.seq + 1, prev_hash=head.entry_hash, fields=fields)
    entry = AuditEntry(seq=link.seq, at=at, actor_id=actor.actor_id, role=actor.role, action=action, target=target,
                       before_hash=fields["before_hash"], after_hash=fields["after_hash"], detail=fields["detail"],
                       prev_hash=link.prev_hash, entry_hash=link.entry_hash)
    session.add(entry)
    head.seq, head.entry_hash = link.seq, link.entry_hash
    session.flush()
    return entry


def chain_of(row: AuditEntry) -> ChainEntry:
    """The stored row as a chain entry, fields rebuilt exactly as they were hashed."""
    fields = _fields(at=utc_text(row.at), actor_id=row.actor_id, role=row.role, action=row.action, target=row.target,
                     before_hash=row.before_hash, after_hash=row.after_hash, detail=row.detail)
    return ChainEntry(seq=row.seq, prev_hash=row.prev_hash, fields=fields, entry_hash=row.entry_hash)


def entries(session: Session, *, batch: int = 1000) -> Iterator[AuditEntry]:
    """Every entry in sequence order, read in batches."""
    last = 0
    while True:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq)
                               .limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(session: Session) -> tuple[int, list[ChainProblem]]:
    """Check the whole chain and that the head names its last entry; return (entries read, problems)."""
    count = 0
    last: AuditEntry | None = None

    def stream() -> Iterator[ChainEntry]:
        nonlocal count, last
        for row in entries(session):
            count += 1
            last = row
            yield chain_of(row)

    problems = verify_chain(stream())
    head = session.get(AuditHead, 1)
    if head is not None:
        last_seq, last_hash = (last.seq, last.entry_hash) if last is not None else (0, "0" * 64)
        if (head.seq, head.entry_hash) != (last_seq, last_hash):
            problems.append(ChainProblem(head.seq, "head_mismatch", f"the head names entry {head.seq} but the last"
                                         f" entry is {last_seq}: entries at the end were deleted"))
    return count, problems


def query(session: Session, *, target: str | None = None, actor_id: str | None = None, action: str | None = None,
          limit: int = 100, offset: int = 0) -> list[AuditEntry]:
    """Entries filtered by target (prefix match), actor and action, newest first."""
    statement = select(AuditEntry)
    if target:
        statement = statement.where(AuditEntry.target.startswith(target))
    if actor_id:
        statement = statement.where(AuditEntry.actor_id == actor_id)
    if action:
        statement = statement.where(AuditEntry.action == action)
    return list(session.scalars(statement.order_by(AuditEntry.seq.desc()).limit(limit).offset(offset)).all())

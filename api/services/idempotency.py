"""``Idempotency-Key`` for mutating calls: a replay returns the first answer, another body with the key is refused.

The key is scoped to the signed-in user. The record is written in the transaction of the change itself,
so an answer is remembered exactly when its change is committed; two requests racing with one key both
try to insert the record, one wins and the other is answered with the winner's result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.store.schema import IdempotencyRecord


class IdempotencyConflictError(Exception):
    """The key was used before with another request."""

    code = "idempotency_key_reused"


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def request_digest(operation: str, body: Any) -> str:
    canonical = json.dumps({"operation": operation, "body": body}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(record: IdempotencyRecord, digest: str) -> Outcome:
    if record.request_sha256 != digest:
        raise IdempotencyConflictError(f"Idempotency-Key {record.key!r} was used for another request "
                                       f"({record.operation}); use a new key")
    return Outcome(record.status_code, record.response, replayed=True)


def run_once(session: Session, *, actor_id: str, key: str, operation: str, body: Any,
             change: Callable[[], tuple[int, dict[str, Any]]]) -> Outcome:
    """Run ``change`` (which writes without committing) once per (user, key), and commit it with its answer."""
    digest = request_digest(operation, body)
    existing = session.get(IdempotencyRecord, (actor_id, key))
    if existing is not None:
        return _replay(existing, digest)
    status_code, response = change()
    session.add(IdempotencyRecord(actor_id=actor_id, key=key, operation=operation, request_sha256=digest,
                                  status_code=status_code, response=json.loads(json.dumps(response, default=str)),
                                  created_at=datetime.now(UTC)))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        winner = session.get(IdempotencyRecord, (actor_id, key))
        if winner is None:
            raise
        return _replay(winner, digest)
    return Outcome(status_code, response, replayed=False)

"""Credentials: Argon2id hashes of passwords and API keys, random session tokens, and their formats.

- A password is stored as an Argon2id hash (``argon2-cffi``), with the cost set in the settings.
- An API key is ``ck_<key id>_<secret>``: the key id (public, 16 hex digits) finds the row, the secret
  (32 random bytes) is checked against its Argon2id hash. Keys are shown once, when issued.
- A session token (bearer access token or browser cookie) is ``cs_<43 url-safe characters>``: 256 random
  bits, stored as its SHA-256 (a guess of 2^256 needs no slow hash), as is the CSRF token of a cookie session.

Argon2 is slow on purpose (about 0.1 s a check at the default cost), so a process remembers which API
keys it has verified (:class:`VerifiedKeys`, by SHA-256 of the whole key).

A process also remembers, for a few seconds, whom a credential it has just checked belongs to
(:class:`CredentialCache`): otherwise every request opened a read transaction of its own (key or session,
then user) before its route ran, the largest part of a small request's cost. How stale it may be:

- a change made in this process (sign-out, key revocation, a user disabled, re-bound or given a new
  password) forgets the user's entries when its transaction commits: the next request reads the database;
- a change made by another process (a second API worker, the ``carbon users`` command, SQL) is seen at
  most ``ttl_seconds`` later (the ``credential_cache_seconds`` setting, 5 s by default; 0 switches the
  cache off);
- a credential's own expiry is checked on every request, cached or not.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_KEY_PATTERN = re.compile(r"ck_(?P<key_id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})")
SESSION_TOKEN_PATTERN = re.compile(r"cs_[A-Za-z0-9_-]{43}")


def password_hasher(*, time_cost: int, memory_kib: int) -> PasswordHasher:
    """The Argon2id hasher for new hashes; a stored hash carries its own cost, so old hashes keep verifying."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=4)


def verify_hash(hasher: PasswordHasher, stored: str | None, candidate: str) -> bool:
    """True when ``candidate`` matches ``stored``; a missing or malformed hash never matches."""
    if not stored:
        hasher.hash(candidate)  # the time of one check: an unknown name answers as slowly as a wrong password
        return False
    try:
        return hasher.verify(stored, candidate)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """An API key as issued: ``plaintext`` is shown once and never stored."""

    key_id: str
    secret: str

    @property
    def plaintext(self) -> str:
        return f"ck_{self.key_id}_{self.secret}"


def new_api_key() -> NewApiKey:
    return NewApiKey(key_id=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def parse_api_key(text: str) -> NewApiKey | None:
    """The parts of a well-formed API key, or None."""
    match = API_KEY_PATTERN.fullmatch(text)
    return NewApiKey(key_id=match["key_id"], secret=match["secret"]) if match else None


def new_session_token() -> str:
    return "cs_" + secrets.token_urlsafe(32)


def is_session_token(text: str) -> bool:
    return SESSION_TOKEN_PATTERN.fullmatch(text) is not None


def token_digest(token: str) -> str:
    """The stored form of a session or CSRF token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_digest(token: str, digest: str | None) -> bool:
    """Constant-time comparison of a presented token with a stored digest."""
    return digest is not None and hmac.compare_digest(token_digest(token), digest)


class VerifiedKeys:
    """API keys this process has already checked against their Argon2 hash: SHA-256 of the key → key id.

    Bounded (least recently used first out); a hit saves the slow hash, never the revocation check.
    """

    def __init__(self, *, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._known: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def key_id(self, plaintext: str) -> str | None:
        digest = token_digest(plaintext)
        with self._lock:
            key_id = self._known.get(digest)
            if key_id is not None:
                self._known.move_to_end(digest)
            return key_id

    def remember(self, plaintext: str, key_id: str) -> None:
        with self._lock:
            self._known[token_digest(plaintext)] = key_id
            while len(self._known) > self.capacity:
                self._known.popitem(last=False)


Identity = TypeVar("Identity")


@dataclass(frozen=True, slots=True)
class _Remembered(Generic[Identity]):
    identity: Identity
    user_id: str
    fresh_until: float  # on the cache's clock
    expires_at: datetime | None  # the credential's own end (a key's or a session's)


class CredentialCache(Generic[Identity]):
    """Who a recently checked credential belongs to, for ``ttl_seconds``: (kind, SHA-256 of the token) → identity.

    Only successful checks are remembered (an unknown token always goes to the database, so a key or session
    issued a moment ago works at once). :meth:`forget_user` drops a user's entries; a check that read the
    database before such a change and finishes after it must not put its stale answer back, so
    :meth:`remember` takes the :attr:`generation` read before the check and is ignored when a change came
    in between. Thread-safe (misses are checked in worker threads); bounded, least recently used out first.
    """

    def __init__(self, *, ttl_seconds: float, capacity: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.capacity = capacity
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str], _Remembered[Identity]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0

    @property
    def generation(self) -> int:
        """Changes forgotten so far; read it before a database check and hand it to :meth:`remember`."""
        return self._generation

    def __len__(self) -> int:
        return len(self._entries)

    def recall(self, *, kind: str, token: str, now: datetime) -> Identity | None:
        """The identity remembered for this credential, or None (never seen, too old, or the credential expired)."""
        if not self.enabled:
            return None
        entry_key = (kind, token_digest(token))
        with self._lock:
            entry = self._entries.get(entry_key)
            if entry is None:
                return None
            if entry.fresh_until <= self.clock() or (entry.expires_at is not None and entry.expires_at <= now):
                del self._entries[entry_key]
                return None
            self._entries.move_to_end(entry_key)
            return entry.identity

    def remember(self, *, kind: str, token: str, identity: Identity, user_id: str, expires_at: datetime | None,
                 generation: int) -> None:
        """Keep a successful check, unless a credential change was forgotten since ``generation`` was read."""
        if not self.enabled:
            return
        entry = _Remembered(identity=identity, user_id=user_id, fresh_until=self.clock() + self.ttl_seconds,
                            expires_at=expires_at)
        with self._lock:
            if generation != self._generation:
                return
            self._entries[(kind, token_digest(token))] = entry
            self._entries.move_to_end((kind, token_digest(token)))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def forget_user(self, user_id: str) -> None:
        """Drop every entry of ``user_id`` (their keys, sessions, role or bindings changed)."""
        with self._lock:
            self._generation += 1
            for entry_key in [k for k, e in self._entries.items() if e.user_id == user_id]:
                del self._entries[entry_key]

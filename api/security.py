"""Credentials: Argon2id hashes of passwords and API keys, random session tokens, and their formats.

- A password is stored as an Argon2id hash (``argon2-cffi``), with the cost set in the settings.
- An API key is ``ck_<key id>_<secret>``: the key id (public, 16 hex digits) finds the row, the secret
  (32 random bytes) is checked against its Argon2id hash. Keys are shown once, when issued.
- A session token (bearer access token or browser cookie) is ``cs_<43 url-safe characters>``: 256 random
  bits, stored as its SHA-256 (a guess of 2^256 needs no slow hash), as is the CSRF token of a cookie session.

Argon2 is slow on purpose (about 0.1 s a check at the default cost), so a process remembers which API
keys it has verified (:class:`VerifiedKeys`, by SHA-256 of the whole key); revocation and expiry are still
read from the database on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

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

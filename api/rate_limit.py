"""A per-client rate limit: a token bucket per client, answered with 429 and ``Retry-After``.

The client is the signed-in user, once ``api.access`` has authenticated the request
(:func:`limit_client`); a request without credentials, or whose credentials fail, is limited by its
address (in the middleware, before routing, or by :func:`limit_client` after the failed check).
Each bucket holds up to ``burst`` tokens and refills at ``per_minute / 60`` tokens a second; a request
takes one token.

The state lives in process memory, so each worker limits on its own (with N workers a client gets up to
N times the rate): this is a guard against one client flooding a process, not an accounting quota.
Memory is bounded: a bucket idle long enough to be full again is the same as no bucket and is dropped,
and at most ``max_clients`` buckets are kept (the least recently used go first).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import RateLimitedError, rate_limited

#: Paths never limited: probes must answer however busy a client is.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
MAX_CLIENTS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by client key; :meth:`take` answers ``None`` (allowed) or the seconds to wait."""

    def __init__(self, *, per_minute: int, burst: int, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("a rate limit needs per_minute > 0, burst >= 1 and max_clients >= 1")
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> int | None:
        now = self.clock()
        self._evict_idle(now)
        bucket = self._buckets.pop(key, None) or _Bucket(tokens=float(self.burst), updated=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))

    def _evict_idle(self, now: float) -> None:
        """Drop buckets, oldest first, that have refilled completely (bounded work per call, amortized O(1))."""
        full_after = self.burst / self.rate
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.updated < full_after:
                break
            self._buckets.popitem(last=False)


def address_key(scope: Scope) -> str:
    client = scope.get("client")
    return "address:" + (str(client[0]) if client else "unknown")


def carries_credentials(scope: Scope) -> bool:
    """True when the request presents a credential (``Authorization``, or the session cookie)."""
    for name, value in scope.get("headers") or []:
        if name == b"authorization" or (name == b"cookie" and b"carbon_session=" in value):
            return True
    return False


def limit_client(request: HTTPConnection, *, key: str | None) -> None:
    """Take a token for ``key`` (a signed-in user) or, when None, for the request's address; 429 when empty."""
    buckets: TokenBuckets | None = getattr(request.app.state, "rate_limits", None)
    if buckets is None:
        return
    retry_after = buckets.take(key or address_key(request.scope))
    if retry_after is not None:
        raise RateLimitedError(retry_after)


class RateLimitMiddleware:
    """Limits requests without credentials by address, answering 429 problem+json with ``Retry-After``.

    Requests with credentials are limited per user once authenticated (``limit_client`` in ``api.access``).
    """

    def __init__(self, app: ASGIApp, *, buckets: TokenBuckets) -> None:
        self.app = app
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") not in EXEMPT_PATHS and not carries_credentials(scope):
            retry_after = self.buckets.take(address_key(scope))
            if retry_after is not None:
                await rate_limited(retry_after)(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""Limits on requests that must hold before anything parses them: JSON nesting depth, NUL characters.

A JSON body nested thousands of levels deep costs the parser (and pydantic after it) recursion and
time for nothing; none of this API's bodies nests more than a few levels. ``RequestLimits``
reads a JSON body (one that fits ``max_bytes``; a larger one is left to the route's 413), measures its
depth with ``json_depth`` (a scan, no recursion and no parse) and answers 422 ``json_too_deep`` when
it passes the limit. A NUL character is refused too (422 ``nul_character``), as ``%00`` in the path or
the query of any request or as a ``\\u0000`` escape in a JSON string: PostgreSQL text cannot hold NUL, so
such a value would otherwise fail only in the database, as a 500. Anything else is handed on unchanged.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import json_too_deep, nul_character

MAX_JSON_DEPTH = 32

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # an odd run of backslashes, then u0000


def has_nul_escape(body: bytes) -> bool:
    """Whether a JSON text has ``\\u0000`` in a string (``\\\\u0000``, an escaped backslash, does not count)."""
    return _NUL_ESCAPE.search(body) is not None


def json_depth(body: bytes, *, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in a JSON text (0 for a scalar), brackets in strings ignored.

    Iterative; returns as soon as the depth passes ``stop_above``. Invalid JSON gets a depth too: the
    parser refuses it afterwards.
    """
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        else:
            depth -= 1
    return deepest


def _header(scope: Scope, name: bytes) -> bytes:
    value: bytes = dict(scope.get("headers") or []).get(name, b"")
    return value


def _is_json(scope: Scope) -> bool:
    media_type = _header(scope, b"content-type").split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")


def _declared_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    return int(value) if value.isdigit() else None


class RequestLimits:
    """Answers 422 ``json_too_deep`` for a JSON body nested deeper than ``max_depth``, ``nul_character`` for NUL."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for where in ("raw_path", "query_string"):
            raw = scope.get(where) or b""
            if b"%00" in raw or b"\x00" in raw:
                await nul_character("path" if where == "raw_path" else "query")(scope, receive, send)
                return
        declared = _declared_length(scope)
        if not _is_json(scope) or (declared is not None and declared > self.max_bytes):
            await self.app(scope, receive, send)
            return
        messages, body = await self._buffer(receive)
        if body is not None:
            if json_depth(body, stop_above=self.max_depth) > self.max_depth:
                await json_too_deep(limit=self.max_depth)(scope, receive, send)
                return
            if has_nul_escape(body):
                await nul_character("body")(scope, receive, send)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _buffer(self, receive: Receive) -> tuple[list[Message], bytes | None]:
        """The messages read, and the whole body when it ended within ``max_bytes`` (else None: the route 413s)."""
        messages: list[Message] = []
        size, more = 0, True
        while more and size <= self.max_bytes:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages, None
            size += len(message.get("body", b""))
            more = bool(message.get("more_body", False))
        if more or size > self.max_bytes:
            return messages, None
        return messages, b"".join(m.get("body", b"") for m in messages)

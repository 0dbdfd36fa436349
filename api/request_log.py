"""One structured JSON log line per request, and the request id that ties it to the response.

What a line holds, and why nothing more: the method, the route *template* (``/enterprises/{enterprise_id}``,
never the concrete path or query, which carry enterprise ids), the status, the duration, the request id,
a keyed hash of the client address (stable within one process, not reversible to the address), and the
acting role. Never the actor id, enterprise ids, headers or bodies: the service's logs hold no secrets or
personal data.

The request id comes from a valid incoming ``X-Request-ID`` (at most 64 characters of ``A-Za-z0-9._-``),
else a new UUID4; it is returned in the ``X-Request-ID`` response header and in every problem+json body
(``request_id``, read by ``api.errors.problem`` from :data:`current_request_id`).

The acting role is read from ``request.state.actor_role``, which the actor dependency (``api.access.authorize``)
sets once it has authenticated the user.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import sys
import time
import traceback
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGGER_NAME = "carbon"
REQUEST_LOGGER_NAME = "carbon.request"
REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

#: The id of the request being served: set by :class:`RequestLogMiddleware`, read by ``api.errors.problem``.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def accept_request_id(incoming: str | None) -> str:
    """The client's request id when it is safe to echo and log, else a new UUID4."""
    if incoming is not None and _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return str(uuid.uuid4())


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, logger, message and the record's ``fields`` extra."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__  # the type and where, not the message: it may hold data
            entry["exc_frames"] = [f"{frame.filename}:{frame.lineno} in {frame.name}"
                                   for frame in traceback.extract_tb(record.exc_info[2])][-12:]
        return json.dumps(entry, ensure_ascii=False, default=str)


class StderrHandler(logging.Handler):
    """Writes to the *current* ``sys.stderr`` (so a test's captured stream is never kept after the test)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - the logging module's own convention
            self.handleError(record)


#: uvicorn's own loggers: its errors (a 500's traceback) become JSON lines too; its access log is replaced by
#: ``carbon.request`` (which logs no client address), so it is silenced.
SERVER_ERROR_LOGGER = "uvicorn.error"
SERVER_ACCESS_LOGGER = "uvicorn.access"


def configure_logging() -> None:
    """Send the ``carbon`` loggers and uvicorn's errors to stderr as JSON lines (idempotent, no root logger)."""
    for name in (LOGGER_NAME, SERVER_ERROR_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(h, StderrHandler) for h in logger.handlers):
            handler = StderrHandler()
            handler.setFormatter(JsonFormatter())
            logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logging.getLogger(SERVER_ACCESS_LOGGER).setLevel(logging.WARNING)


class RequestLogMiddleware:
    """Assigns the request id, returns it in a header, and logs one JSON line when the response is done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.logger = logging.getLogger(REQUEST_LOGGER_NAME)
        self._client_key = secrets.token_bytes(16)  # per process: hashes correlate, but never reverse
        self._templates: list[tuple[re.Pattern[str], str]] | None = None

    def client_hash(self, scope: Scope) -> str | None:
        client = scope.get("client")
        if not client:
            return None
        return hmac.new(self._client_key, str(client[0]).encode(), hashlib.sha256).hexdigest()[:16]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(REQUEST_ID_HEADER.lower().encode())
        request_id = accept_request_id(incoming.decode("latin-1") if incoming is not None else None)
        scope.setdefault("state", {})["request_id"] = request_id
        current_request_id.set(request_id)  # not reset: the server error handler, outside us, still reads it
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in response_headers:
                    response_headers.append(REQUEST_ID_HEADER, request_id)
            await send(message)

        error: str | None = None
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            self.log(scope, request_id=request_id, status=status if status is not None else 500, error=error,
                     duration_ms=(time.perf_counter() - started) * 1000)

    def route_template(self, scope: Scope) -> str:
        """The matched route's template; for a request answered before routing (a 429), the documented path."""
        template = getattr(scope.get("route"), "path", None)
        app = scope.get("app")
        if template is not None or app is None or not hasattr(app, "openapi"):
            return template or "<unmatched>"
        path = str(scope.get("path", ""))
        if path in {getattr(app, name, None) for name in ("openapi_url", "docs_url", "redoc_url",
                                                            "swagger_ui_oauth2_redirect_url")}:
            return path
        if self._templates is None:  # once: the OpenAPI paths as patterns, "{x}" matching one segment
            self._templates = [(re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)) + "$"), t)
                               for t in app.openapi().get("paths", {})]
        exact = next((t for _, t in self._templates if t == path), None)
        return exact or next((t for pattern, t in self._templates if pattern.match(path)), "<unmatched>")

    def log(self, scope: Scope, *, request_id: str, status: int, error: str | None, duration_ms: float) -> None:
        state = scope.get("state") or {}
        fields: dict[str, Any] = {
            "event": "request",
            "request_id": request_id,
            "method": scope.get("method"),
            "path": self.route_template(scope),
            "status": status,
            "duration_ms": round(duration_ms, 1),
            "client": self.client_hash(scope),
            "role": state.get("actor_role"),
        }
        if error is not None:
            fields["error"] = error
        level = logging.ERROR if status >= 500 else logging.INFO
        self.logger.log(level, "request", extra={"fields": fields})

"""The one place where errors become HTTP: problem+json bodies (RFC 9457) with a stable ``code``.

Domain code (``accounting/``), the stores and the services raise their own exceptions and know
nothing of HTTP; this module maps each of them to a status, so a router never builds an error
response and the same error has the same status everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from accounting.errors import AccountingError, FactorError, InvalidFileError, UnitError
from accounting.review import ReviewError
from api.request_log import REQUEST_ID_HEADER, current_request_id
from api.schemas import Order
from api.services.approvals import ApprovalNotFoundError
from api.services.evidence import EvidenceNotFoundError
from api.services.exchange import CommandRefusedError
from api.services.idempotency import IdempotencyConflictError
from api.services.quality import DataDocsUnavailableError
from api.services.review import PeriodStateError, StaleStateError
from api.services.review_views import PeriodNotFoundError
from api.services.submissions import (
    ForeignEnterpriseError,
    IdempotencyKeyReusedError,
    PeriodClosedError,
    SubmissionNotFoundError,
)
from api.services.users import InvalidCredentialsError, LoginThrottledError, UserError
from api.store.db import DatabaseUnavailableError
from api.store.serving import SnapshotUnavailableError

PROBLEM_MEDIA_TYPE = "application/problem+json"


class NotFoundError(LookupError):
    """A resource the client named does not exist (an unknown enterprise, a period without lines)."""

    def __init__(self, detail: str, *, code: str = "not_found") -> None:
        super().__init__(detail)
        self.code = code


class AuthenticationRequiredError(Exception):
    """The request carries no credentials, or ones that are unknown, expired or revoked."""

    code = "authentication_required"


class AccessDeniedError(Exception):
    """The access table (``api.access``) gives the user's role no rule for this route."""

    code = "role_not_allowed"


class CsrfError(Exception):
    """A change made with a session cookie without the session's CSRF token."""

    code = "csrf_failed"


class RateLimitedError(Exception):
    """The client (a signed-in user, or an address) has used its request allowance."""

    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry in {retry_after} s")
        self.retry_after = retry_after


class PayloadTooLargeError(Exception):
    """The request body is larger than ``settings.max_upload_bytes``."""

    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the limit of {limit} bytes")
        self.limit = limit


class UnsupportedMediaTypeError(Exception):
    """The body is neither a multipart upload nor JSON."""

    code = "unsupported_media_type"


class InvalidOptionsError(ValueError):
    """A calculation option out of range: the ValueError of ``CalculationOptions``, raised as a client error.

    Only this subclass maps to 422: a bare ValueError elsewhere is a bug and stays a 500.
    """

    code = "invalid_option"


def problem(*, status_code: int, code: str, detail: str, title: str | None = None,
            headers: dict[str, str] | None = None, encoded: dict[str, Any] | None = None,
            **extra: Any) -> JSONResponse:
    """A problem+json response; ``extra`` members (``errors``, ``source``...) are added as they are, and
    ``encoded`` members, already in their JSON form (a model's ``model_dump(mode="json")``), without a second pass."""
    body = {
        "type": f"/problems/{code}",
        "title": title or HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "code": code,
        **jsonable_encoder(extra),
        **(encoded or {}),
    }
    if (request_id := current_request_id.get()) is not None:  # set per request by RequestLogMiddleware
        body["request_id"] = request_id
        headers = {REQUEST_ID_HEADER: request_id, **(headers or {})}
    return JSONResponse(body, status_code=status_code, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def rate_limited(retry_after: int) -> JSONResponse:
    """The 429 of the per-client rate limit (``api.rate_limit``), answered before routing."""
    return problem(status_code=status.HTTP_429_TOO_MANY_REQUESTS, code="rate_limited", title="Too many requests",
                   detail=f"this client has used its request allowance; retry in {retry_after} s",
                   headers={"Retry-After": str(retry_after)}, retry_after_s=retry_after)


def nul_character(where: str) -> JSONResponse:
    """The 422 of a NUL character in the ``query``, ``path`` or JSON ``body`` (``api.body_limits``).

    No stored text may hold NUL (PostgreSQL refuses it), so it is refused before it reaches a query.
    """
    return problem(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, code="nul_character", title="Invalid request",
                   detail=f"the request {where} contains the NUL character, which no text field accepts",
                   errors=[{"loc": [where], "msg": "no NUL character (%00, \\u0000)", "type": "nul_character"}])


def json_too_deep(*, limit: int) -> JSONResponse:
    """The 422 of a JSON body nested deeper than ``limit`` (``api.body_limits``), answered before parsing."""
    return problem(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, code="json_too_deep", title="Invalid request",
                   detail=f"the JSON body is nested deeper than {limit} levels of arrays and objects",
                   limit_depth=limit, errors=[{"loc": ["body"], "msg": f"at most {limit} levels of nesting",
                                               "type": "json_too_deep"}])


def _invalid_file(_: Request, exc: InvalidFileError) -> JSONResponse:
    report = exc.to_report()
    return problem(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, code=exc.code, title="Invalid activity file",
                   detail=f"{exc}; the file was refused as a whole and nothing was stored",
                   source=report["source"], error_count=report["error_count"], errors=report["errors"])


#: Rules of the ledger, allocation, auctions, compliance and the four-eyes rule that are not about the
#: input's form: the state forbids it (409), it names something that is not there (404), or it is not
#: the user's to do (403). Every other refusal of an ``AccountingError`` is 422.
RULE_STATUS = {
    **dict.fromkeys(("insufficient_available", "units_encumbered", "retired_units_immutable",
                     "cancelled_units_immutable", "already_reversed", "duplicate_account", "duplicate_entry",
                     "duplicate_encumbrance", "already_decided", "proposal_expired", "same_officer",
                     "payload_mismatch", "counterparty_not_trusted", "insufficient_funds", "auction_not_open",
                     "auction_closed", "bid_window_closed", "bidder_cap_exceeded", "offset_cap_exceeded",
                     "vintage_not_eligible", "emissions_not_locked", "plan_not_approvable", "already_released",
                     "already_applied", "plan_version_exists", "plan_superseded", "duplicate_auction",
                     "bid_window_open", "bid_not_active", "auction_not_settled", "not_reversible"),
                    status.HTTP_409_CONFLICT),
    **dict.fromkeys(("unknown_account", "unknown_entry", "unknown_encumbrance", "enterprise_not_found",
                     "unknown_auction", "unknown_plan", "unknown_bid", "unknown_counterparty"),
                    status.HTTP_404_NOT_FOUND),
    **dict.fromkeys(("not_own_account", "officer_required", "consent_required", "role_not_allowed",
                     "account_restricted"), status.HTTP_403_FORBIDDEN),
    # compliance and prices (state conflicts: the request may succeed once the state changes)
    **dict.fromkeys(("surrender_exceeds_obligation", "year_closed", "year_already_closed", "deadline_not_passed",
                     "close_pending", "close_plan_changed", "price_required", "price_already_recorded"),
                    status.HTTP_409_CONFLICT),
    # the exchange: the market's state and the account's balances conflict; a malformed order is 422
    **dict.fromkeys(("market_closed", "halted", "insufficient_holdings", "order_not_open", "quote_not_open",
                     "proposal_not_open", "already_listed", "already_halted", "not_halted", "already_restricted",
                     "not_restricted", "open_order_cap", "duplicate_client_order_id", "clock_backwards",
                     "clock_not_simulated", "self_take", "not_in_best_levels", "quantity_exceeds_quote"),
                    status.HTTP_409_CONFLICT),
    **dict.fromkeys(("instrument_not_listed", "unknown_order", "unknown_quote", "unknown_proposal"),
                    status.HTTP_404_NOT_FOUND),
    **dict.fromkeys(("not_own_order", "not_own_quote", "not_counterparty", "not_initiator"),
                    status.HTTP_403_FORBIDDEN),
}


def _accounting(_: Request, exc: AccountingError, *, encoded: dict[str, Any] | None = None) -> JSONResponse:
    titles = {UnitError: "Unusable unit", FactorError: "Factor library cannot answer"}
    title = next((t for kind, t in titles.items() if isinstance(exc, kind)), "Accounting rule refused the input")
    return problem(status_code=RULE_STATUS.get(exc.code, status.HTTP_422_UNPROCESSABLE_CONTENT), code=exc.code,
                   title=title, detail=str(exc), encoded=encoded)


def _command_refused(request: Request, exc: CommandRefusedError) -> JSONResponse:
    """An exchange rule refused the command; one on an order that has already ended shows it (``order``)."""
    shown = None if exc.order is None else {"order": Order.model_validate(exc.order).model_dump(mode="json")}
    return _accounting(request, exc, encoded=shown)


def _idempotency_conflict(_: Request, exc: IdempotencyConflictError) -> JSONResponse:
    return problem(status_code=status.HTTP_409_CONFLICT, code=exc.code, title="Idempotency-Key reused",
                   detail=str(exc))


def _invalid_options(_: Request, exc: InvalidOptionsError) -> JSONResponse:
    return problem(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, code=exc.code, title="Invalid option",
                   detail=str(exc))


def _not_found(_: Request, exc: NotFoundError | SubmissionNotFoundError | PeriodNotFoundError
               | EvidenceNotFoundError | ApprovalNotFoundError) -> JSONResponse:
    return problem(status_code=status.HTTP_404_NOT_FOUND, code=exc.code, detail=str(exc.args[0]))


def _snapshot_unavailable(_: Request, exc: SnapshotUnavailableError) -> JSONResponse:
    return problem(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, code=exc.code, title="No published results",
                   detail=str(exc), headers={"Retry-After": "60"})


def _data_docs_unavailable(_: Request, exc: DataDocsUnavailableError) -> JSONResponse:
    return problem(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, code=exc.code, title="No data docs yet",
                   detail=str(exc), headers={"Retry-After": "60"})


def _database_unavailable(_: Request, exc: DatabaseUnavailableError) -> JSONResponse:
    return problem(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, code=exc.code, title="Database unavailable",
                   detail=str(exc))


def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
    """A lost or refused database connection (a restart, a failover) is an outage (503); other DBAPI errors are bugs."""
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return problem(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, code=DatabaseUnavailableError.code,
                       title="Database unavailable", detail="the database does not answer; retry later",
                       headers={"Retry-After": "5"})
    return _unexpected(request, exc)


def _idempotency_reused(_: Request, exc: IdempotencyKeyReusedError) -> JSONResponse:
    return problem(status_code=status.HTTP_409_CONFLICT, code=exc.code, title="Idempotency-Key reused",
                   detail=str(exc), first_submission_id=exc.first_submission_id)


REVIEW_STATUS = {
    "role_not_allowed": status.HTTP_403_FORBIDDEN,
    "not_own_enterprise": status.HTTP_403_FORBIDDEN,
    "transition_not_allowed": status.HTTP_409_CONFLICT,
    "held_by_checks": status.HTTP_409_CONFLICT,
    "not_calculated": status.HTTP_409_CONFLICT,
    "months_not_locked": status.HTTP_409_CONFLICT,
    "submission_in_force": status.HTTP_409_CONFLICT,
    "no_basis_month": status.HTTP_409_CONFLICT,
    "not_key_emitter": status.HTTP_409_CONFLICT,
    "unknown_enterprise": status.HTTP_404_NOT_FOUND,
}


def _review(_: Request, exc: ReviewError) -> JSONResponse:
    extra: dict[str, Any] = {}
    if isinstance(exc, PeriodStateError):
        extra = {"current": exc.current, **({"detail_items": exc.detail} if exc.detail is not None else {})}
    return problem(status_code=REVIEW_STATUS.get(exc.code, status.HTTP_422_UNPROCESSABLE_CONTENT), code=exc.code,
                   title="Review rule refused the action", detail=str(exc), **extra)


def _unauthenticated(_: Request, exc: AuthenticationRequiredError) -> JSONResponse:
    return problem(status_code=status.HTTP_401_UNAUTHORIZED, code=exc.code, title="Sign in", detail=str(exc),
                   headers={"WWW-Authenticate": "Bearer"})


def _invalid_credentials(_: Request, exc: InvalidCredentialsError) -> JSONResponse:
    return problem(status_code=status.HTTP_401_UNAUTHORIZED, code="invalid_credentials", title="Sign-in refused",
                   detail=str(exc), headers={"WWW-Authenticate": "Bearer"})


def _login_throttled(_: Request, exc: LoginThrottledError) -> JSONResponse:
    return problem(status_code=status.HTTP_429_TOO_MANY_REQUESTS, code="login_throttled", title="Too many sign-ins",
                   detail=str(exc), headers={"Retry-After": str(exc.retry_after)}, retry_after_s=exc.retry_after)


def _rate_limited(_: Request, exc: RateLimitedError) -> JSONResponse:
    return rate_limited(exc.retry_after)


def _access_denied(_: Request, exc: AccessDeniedError) -> JSONResponse:
    return problem(status_code=status.HTTP_403_FORBIDDEN, code=exc.code, title="Not allowed", detail=str(exc))


def _csrf(_: Request, exc: CsrfError) -> JSONResponse:
    return problem(status_code=status.HTTP_403_FORBIDDEN, code=exc.code, title="CSRF check failed", detail=str(exc))


def _user(_: Request, exc: UserError) -> JSONResponse:
    return problem(status_code=exc.status, code=exc.code, title="User or key change refused", detail=str(exc))


def _stale(_: Request, exc: StaleStateError) -> JSONResponse:
    return problem(status_code=status.HTTP_409_CONFLICT, code=exc.code, title="Changed by someone else",
                   detail=str(exc), current=exc.current)


def _foreign_enterprise(_: Request, exc: ForeignEnterpriseError) -> JSONResponse:
    return problem(status_code=status.HTTP_403_FORBIDDEN, code=exc.code, title="Not your enterprise",
                   detail=str(exc), enterprise_ids=exc.enterprise_ids)


def _period_closed(_: Request, exc: PeriodClosedError) -> JSONResponse:
    return problem(status_code=status.HTTP_409_CONFLICT, code=exc.code, title="Period not open for submissions",
                   detail=str(exc), periods=exc.periods)


def _too_large(_: Request, exc: PayloadTooLargeError) -> JSONResponse:
    return problem(status_code=status.HTTP_413_CONTENT_TOO_LARGE, code=exc.code, detail=str(exc),
                   limit_bytes=exc.limit)


def _unsupported(_: Request, exc: UnsupportedMediaTypeError) -> JSONResponse:
    return problem(status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, code=exc.code, detail=str(exc))


def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]
    return problem(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, code="invalid_request",
                   title="Invalid request", detail=f"{len(errors)} problem(s) in the request", errors=errors)


def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return problem(status_code=exc.status_code, code=code, detail=str(exc.detail),
                   headers=dict(exc.headers) if exc.headers else None)


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    """A bug or an outage: the body says nothing of internals (the traceback goes to the server log)."""
    return problem(status_code=status.HTTP_500_INTERNAL_SERVER_ERROR, code="internal_error",
                   detail=f"an unexpected {type(exc).__name__}; the server log has the details")


_Handler = Callable[[Request, Any], JSONResponse | Awaitable[JSONResponse]]

#: Most specific first; Starlette picks the handler of the nearest class in the exception's MRO.
HANDLERS: dict[type[Exception], _Handler] = {
    InvalidFileError: _invalid_file,
    PeriodStateError: _review,
    ReviewError: _review,
    AccountingError: _accounting,
    CommandRefusedError: _command_refused,
    StaleStateError: _stale,
    AuthenticationRequiredError: _unauthenticated,
    InvalidCredentialsError: _invalid_credentials,
    LoginThrottledError: _login_throttled,
    RateLimitedError: _rate_limited,
    AccessDeniedError: _access_denied,
    CsrfError: _csrf,
    UserError: _user,
    ForeignEnterpriseError: _foreign_enterprise,
    PeriodClosedError: _period_closed,
    InvalidOptionsError: _invalid_options,
    NotFoundError: _not_found,
    SubmissionNotFoundError: _not_found,
    PeriodNotFoundError: _not_found,
    EvidenceNotFoundError: _not_found,
    ApprovalNotFoundError: _not_found,
    IdempotencyConflictError: _idempotency_conflict,
    SnapshotUnavailableError: _snapshot_unavailable,
    DataDocsUnavailableError: _data_docs_unavailable,
    DatabaseUnavailableError: _database_unavailable,
    DBAPIError: _database_error,
    IdempotencyKeyReusedError: _idempotency_reused,
    PayloadTooLargeError: _too_large,
    UnsupportedMediaTypeError: _unsupported,
    RequestValidationError: _request_validation,
    StarletteHTTPException: _http,
    Exception: _unexpected,
}


def problem_body(connection: HTTPConnection | None, exc: Exception) -> dict[str, Any]:
    """The problem+json body a request failing with ``exc`` is answered with (for a WebSocket's messages)."""
    handler = next(HANDLERS[kind] for kind in type(exc).__mro__ if kind in HANDLERS)
    response = handler(connection, exc)  # type: ignore[arg-type]
    if not isinstance(response, JSONResponse):
        raise TypeError(f"the handler of {type(exc).__name__} is not a plain function")
    body: dict[str, Any] = json.loads(bytes(response.body))
    return body


def install_error_handlers(app: FastAPI) -> None:
    for exception, handler in HANDLERS.items():
        app.add_exception_handler(exception, handler)

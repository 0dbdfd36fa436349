"""The FastAPI application: ``create_app(settings)`` builds it; the lifespan opens what requests share.

Nothing happens at import time: uvicorn calls the factory (``uvicorn api.main:create_app --factory``)
and tests call it with their own ``Settings``. The lifespan creates the database tables
(``metadata.create_all`` until Alembic arrives), opens and verifies the factor library once, and
prepares the snapshot reader (which opens the published snapshot lazily, per request, so the API
starts, and answers 503, before the first ``carbon run``). The web pages (``api.web``) are served by the same
application under ``/ui``, their static files from the package at ``/ui/static``.

The settings live on ``app.state.settings`` (read by ``api.deps.SettingsDep`` and ``api.access``) rather than
in a dependency override: FastAPI re-analyses every dependency of every request while any override is set.
The process's credential cache (``api.security.CredentialCache``) lives on ``app.state.credentials``; the
lifespan makes committed credential changes (``api.services.users.forget_on_commit``) forget their users.
The exchange's per-account order buckets (``api.routers.exchange.limit_account``) live on
``app.state.exchange_limits``, None when that limit is off.
Once per process, the lifespan also moves what start-up made out of the garbage collector's reach
(``gc.freeze``): full collections then walk only what requests made since. While the application runs, it
rolls the exchange's trading days by the clock every ``exchange_roll_seconds``
(``api.services.exchange.roll_due_days``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from accounting.factors import load_library
from api.access import authorize
from api.body_limits import RequestLimits
from api.docs_pages import install_docs
from api.errors import install_error_handlers
from api.openapi import problem_openapi
from api.rate_limit import EXEMPT_PATHS, RateLimitMiddleware, TokenBuckets
from api.request_log import REQUEST_ID_HEADER, RequestLogMiddleware, configure_logging
from api.routers import ROUTERS
from api.schemas import Problem
from api.security import CredentialCache, VerifiedKeys
from api.services import exchange
from api.services.users import Authenticated, forget_on_commit
from api.store import db
from api.store.serving import SnapshotReader
from api.web import WEB_ROUTERS
from api.web.render import STATIC
from api.web.shell import install_page_errors
from pipelines.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DESCRIPTION = """Carbon and emissions accounting for the Zhengzhou high-tech zone.

Published results (registry, balances, lineage, zone indicators) are read from the snapshot the
pipeline publishes; calculations compute without storing; submissions hand files to the pipeline.
Errors are `application/problem+json` with a stable `code`."""


@functools.cache  # once per process
def _freeze_what_start_up_made() -> None:
    """Move the objects start-up made (modules, mappers, schemas, the factor library: some 270,000) out of the
    cyclic garbage collector's reach. A full collection then walks only what requests made since: under load
    it came every second or so and stopped every request for 150 ms."""
    gc.collect()  # what is garbage already is freed, not frozen
    gc.freeze()


async def _roll_trading_days(sessions: sessionmaker[Session], *, every: float) -> None:
    """Every ``every`` seconds, roll the exchange's trading days that its clock says are due, until cancelled."""
    def roll() -> None:
        with sessions() as session:
            exchange.roll_due_days(session)

    while True:
        await asyncio.sleep(every)
        try:
            await run_in_threadpool(roll)
        except Exception:  # the next tick tries again; a command would roll the day meanwhile
            logger.exception("rolling the exchange's trading days failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; ``settings`` (tests) replaces ``get_settings()`` (environment) everywhere."""
    resolved = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.create_db_engine(resolved.database)
        db.create_schema(engine)
        app.state.engine = engine
        app.state.sessions = db.make_session_factory(engine)
        app.state.library = load_library()
        app.state.snapshot_reader = SnapshotReader(path=resolved.serving)
        stop_forgetting = forget_on_commit(app.state.credentials)
        roller = (asyncio.create_task(_roll_trading_days(app.state.sessions, every=resolved.exchange_roll_seconds))
                  if resolved.exchange_roll_seconds > 0 else None)
        _freeze_what_start_up_made()
        try:
            yield
        finally:
            if roller is not None:
                roller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await roller
            stop_forgetting()
            app.state.snapshot_reader.close()
            engine.dispose()

    app = FastAPI(title="Zone carbon accounting API", version="1", description=DESCRIPTION, lifespan=lifespan,
                  dependencies=[Depends(authorize)],  # every route: deny by default (api.access)
                  docs_url=None, redoc_url=None)  # api.docs_pages serves them without a CDN
    app.state.settings = resolved
    app.state.verified_keys = VerifiedKeys()
    app.state.credentials = CredentialCache[Authenticated](ttl_seconds=resolved.credential_cache_seconds)
    app.state.exchange_limits = (TokenBuckets(per_minute=resolved.exchange_orders_per_minute,
                                              burst=resolved.exchange_order_burst)
                                 if resolved.exchange_orders_per_minute > 0 else None)
    install_error_handlers(app)
    limited: dict[int | str, dict[str, Any]] = {429: {"model": Problem, "description": "Rate limited (Retry-After)"}}
    for router in ROUTERS:
        exempt = all(getattr(route, "path", None) in EXEMPT_PATHS for route in router.routes)
        app.include_router(router, responses=None if exempt or not resolved.rate_limit_per_minute else limited)
    for page_router in WEB_ROUTERS:  # the web pages (api.web), before the static files they share a prefix with
        app.include_router(page_router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="static")
    install_docs(app)
    install_page_errors(app)  # a page asks to sign in (303) and shows other errors as a page
    app.add_middleware(RequestLimits, max_bytes=resolved.max_upload_bytes)  # innermost: next to the routes
    install_middleware(app, resolved)
    app.openapi = problem_openapi(app)  # type: ignore[method-assign]
    return app


#: Request headers a browser on an allowed origin may send, and response headers it may read.
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "If-Match", REQUEST_ID_HEADER,
                        "X-CSRF-Token"]
CORS_RESPONSE_HEADERS = [REQUEST_ID_HEADER, "Retry-After", "Location", "ETag", "Idempotent-Replayed"]


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """From the outside in: the request log (every answer, 429s and preflights too), CORS, the rate limit.

    CORS is installed only for the configured origins (none by default: same-origin only).
    """
    configure_logging()
    app.state.rate_limits = None
    if settings.rate_limit_per_minute > 0:
        app.state.rate_limits = TokenBuckets(per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst)
        app.add_middleware(RateLimitMiddleware, buckets=app.state.rate_limits)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=CORS_REQUEST_HEADERS, expose_headers=CORS_RESPONSE_HEADERS)
    app.add_middleware(RequestLogMiddleware)  # added last: the outermost

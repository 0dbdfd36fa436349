"""Request dependencies: settings, a snapshot cursor, a database session, the factor library, uploads, the user.

Every dependency is declared as an ``Annotated`` alias so routers stay declarative. Per-process
state (the settings, the snapshot reader, the session factory, the verified factor library) lives on
``app.state``, created by ``api.main``; nothing here reads the environment.

Dependencies that do no I/O are coroutines: FastAPI runs a plain function in a worker thread, and a hop
to a thread and back costs more than most of them do (under load, a good part of a small request).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import duckdb
from fastapi import Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import HTTPConnection

from accounting.calculation import CalculationOptions
from accounting.factors import FactorLibrary
from accounting.review import Actor
from api.access import ActorDep as ActorDep  # the signed-in user (api.access enforces the access table)
from api.errors import InvalidOptionsError, PayloadTooLargeError, UnsupportedMediaTypeError
from api.schemas import ActivityLinesRequest
from api.services.idempotency import run_once
from api.services.submissions import clean_filename
from api.store.serving import SnapshotReader
from pipelines.settings import Settings


async def current_settings(request: HTTPConnection) -> Settings:
    """The application's settings (``create_app``'s, or the environment's when it was given none)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(current_settings)]

#: Paging of every list route: at most 1000 items a page, and an offset a database integer can hold.
MAX_PAGE_SIZE = 1000
MAX_OFFSET = 1_000_000_000
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"page size, at most {MAX_PAGE_SIZE}")]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]


def get_snapshot_cursor(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of its own on the published snapshot for this request (503 when there is none)."""
    reader: SnapshotReader = request.app.state.snapshot_reader
    with reader.cursor() as cursor:
        yield cursor


SnapshotDep = Annotated[duckdb.DuckDBPyConnection, Depends(get_snapshot_cursor)]


async def get_session(request: HTTPConnection) -> AsyncIterator[Session]:
    """A database session for this request; services commit, anything left open is rolled back.

    A coroutine: opening a session does no I/O (it takes a connection at its first statement), and neither
    does closing one whose work was committed, so both stay on the event loop. Only a session that still has
    a transaction open (a read, or a change that failed) is closed in a worker thread: its rollback is a
    round trip to the database, which must not hold up the loop.
    """
    sessions: sessionmaker[Session] = request.app.state.sessions
    session = sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]


async def get_engine(request: HTTPConnection) -> Engine:
    """The database engine, for a route that only hands a command to the exchange's writer
    (``api.services.exchange.submit_async``): no session is opened and closed for it."""
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


async def get_library(request: Request) -> FactorLibrary:
    """The factor library, opened and hash-verified once at startup."""
    library: FactorLibrary = request.app.state.library
    return library


LibraryDep = Annotated[FactorLibrary, Depends(get_library)]


def get_calculation_options(
    settings: SettingsDep,
    by: Annotated[str, Query(description="one result per `month` or per `year`")] = "month",
    grid_region: Annotated[str | None, Query(description="national, central_china or henan")] = None,
    ruleset: Annotated[str | None, Query(description="cn or ipcc2006")] = None,
    gwp_set: Annotated[str | None, Query(description="GWP-100 vintage, e.g. AR5")] = None,
    factor_edition: Annotated[str | None, Query(description="pin a factor edition (default: latest)")] = None,
) -> CalculationOptions:
    """Calculation options from the query, defaulting to the service's settings (the pipeline's choices)."""
    try:
        return CalculationOptions(
            edition=factor_edition or settings.factor_edition, ruleset=ruleset or settings.ruleset,
            grid_region=grid_region or settings.grid_region, gwp_set=gwp_set or settings.gwp_set,
            max_factor_lag_years=settings.max_factor_lag_years, by=by)
    except ValueError as err:
        raise InvalidOptionsError(str(err)) from err


OptionsDep = Annotated[CalculationOptions, Depends(get_calculation_options)]


@dataclass(frozen=True, slots=True)
class Upload:
    """An activity file as received: from a multipart ``file`` field, or a JSON ``lines`` body."""

    filename: str
    content: bytes
    media_type: str


async def read_limited(request: Request, *, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (before reading it all when declared)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def replayed_form(request: Request, body: bytes, *, limit: int, max_fields: int) -> FormData:
    """Parse a multipart form from the bytes already read (and size-checked) by replaying them as a new request."""

    async def replay() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    return await Request(request.scope, receive=replay).form(max_files=1, max_fields=max_fields, max_part_size=limit)


async def _from_multipart(request: Request, body: bytes, *, limit: int) -> Upload:
    """The ``file`` field of a multipart upload."""
    form = await replayed_form(request, body, limit=limit, max_fields=16)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise RequestValidationError([{"loc": ("body", "file"), "msg": "a file in the multipart field 'file'",
                                           "type": "missing"}])
        content = await upload.read()
        return Upload(clean_filename(upload.filename), content, upload.content_type or "application/octet-stream")
    finally:
        await form.close()


def _from_json(body: bytes) -> Upload:
    """Validate the body, then re-serialize it: the stored and hashed file is the JSON of what was validated."""
    try:
        payload = ActivityLinesRequest.model_validate_json(body)
    except ValidationError as err:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
                                     ) from err
    content = json.dumps(payload.model_dump(exclude_unset=True), ensure_ascii=False).encode()
    return Upload("request.json", content, "application/json")


async def read_upload(request: Request, settings: SettingsDep) -> Upload:
    """The uploaded activity file, whichever of the two accepted forms the client used."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in ("multipart/form-data", "application/json") and not media_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"send the file as multipart/form-data (field 'file') or a JSON body {{\"lines\": [...]}},"
            f" not {media_type or 'no content type'}")
    body = await read_limited(request, limit=settings.max_upload_bytes)
    if media_type == "multipart/form-data":
        return await _from_multipart(request, body, limit=settings.max_upload_bytes)
    return _from_json(body)


UploadDep = Annotated[Upload, Depends(read_upload)]

#: The key every change of the ledger, allocation, auctions and compliance requires (``answer_once``).
RequiredIdempotencyKeyDep = Annotated[str, Header(
    alias="Idempotency-Key", min_length=1, max_length=255,
    description="required: any client-chosen key, e.g. a UUIDv4; a replay returns the first answer, the key "
                "with another body is refused (409)")]


def answer_once(session: Session, *, actor: Actor, key: str, operation: str, body: BaseModel | dict[str, Any],
                response: Response, change: Callable[[], tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Run ``change`` once per (user, key): the status and body of the first answer, replayed after with
    ``Idempotent-Replayed: true``."""
    document = body.model_dump() if isinstance(body, BaseModel) else body
    outcome = run_once(session, actor_id=actor.actor_id, key=key, operation=operation, body=document, change=change)
    response.status_code = outcome.status_code
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return outcome.body


IdempotencyKeyDep = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255,
                                                 description="any client-chosen key, e.g. a UUIDv4")]

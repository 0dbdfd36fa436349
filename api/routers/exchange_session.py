"""Order entry over one WebSocket: a trader's session places, cancels and reads orders without a request each.

``/v1/exchange/session`` signs in once, at the handshake, with the ``Authorization`` header (an API key or
access token of an enterprise or trader user; never the session cookie, which a browser would send from any
site). Then each text message is one command, a JSON object:

* ``{"op": "place", "ref": "r1", "instrument": "CEA-2025", "account_id": ..., "client_order_id": ..., "side":
  "buy", "order_type": "limit", "time_in_force": "day", "price_fen": 5000, "quantity_t": 10}`` (the fields of
  ``POST /v1/exchange/instruments/{instrument}/orders``);
* ``{"op": "cancel", "ref": "r2", "instrument": "CEA-2025", "order_id": 17}``;
* ``{"op": "get", "ref": "r3", "instrument": "CEA-2025", "order_id": 17}``: the order with its fills, as
  ``GET /v1/exchange/instruments/{instrument}/orders/{order_id}`` answers.

Each is answered with one message carrying the command's ``ref``, the ``status`` the REST route would answer
and either ``order`` (the order with its fills, as the REST route's body) or ``problem`` (its problem+json
body, the same codes; a cancel of an order that has already ended answers ``order_not_open`` with the order in
the problem's ``order``). A command is the REST route's: the same access rules (the credential is checked again
for every command, so a revocation holds), the same per-account order limit and the same service, and its
answer comes once its batch is committed. Commands may be sent without waiting for answers (at most
:data:`MAX_IN_FLIGHT` at once; the session reads no more until one is answered); those of one instrument
are applied in the order they arrive, and answers may come in another order. Closing the socket cancels no
order: a command sent is applied whether or not its answer can still be delivered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import MutableMapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, WebSocket
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from accounting.review import Actor
from api.access import signed_in_again
from api.deps import ActorDep, EngineDep
from api.errors import AuthenticationRequiredError, PayloadTooLargeError, UnsupportedMediaTypeError, problem_body
from api.rate_limit import TokenBuckets
from api.request_log import REQUEST_LOGGER_NAME
from api.routers.exchange import MAX_ID, Instrument, OrderLimitDep, OrderRequest, limit_account
from api.schemas import Order
from api.services import exchange

router = APIRouter(prefix="/v1/exchange", tags=["exchange"])

#: Commands of one session sent and not yet answered; the session reads the next one when fewer are.
MAX_IN_FLIGHT = 64
#: A command is a small JSON object; a longer message is refused without being parsed.
MAX_MESSAGE_CHARS = 4096
#: The socket closes with this code when its credential no longer signs in (RFC 6455: policy violation).
CLOSE_SIGNED_OUT = 1008

_REF = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
Ref = Annotated[str, Field(pattern=f"^{_REF.pattern}$", description="your id for the command's answer")]


class PlaceCommand(OrderRequest):
    op: Literal["place"]
    ref: Ref
    instrument: Instrument


class OrderCommand(BaseModel):
    """A command on an existing order: ``cancel`` it, or ``get`` it."""

    model_config = ConfigDict(extra="forbid")
    op: Literal["cancel", "get"]
    ref: Ref
    instrument: Instrument
    order_id: Annotated[int, Field(ge=1, le=MAX_ID)]


SessionCommand = TypeAdapter(Annotated[PlaceCommand | OrderCommand, Field(discriminator="op")])


class Answer(BaseModel):
    ref: str | None
    status: int
    order: Order


@router.websocket("/session")
async def order_session(websocket: WebSocket, actor: ActorDep, engine: EngineDep, buckets: OrderLimitDep) -> None:
    """Place, cancel and read orders over one socket (see the module's description of the messages)."""
    await websocket.accept()
    started = time.perf_counter()
    served = _Session(websocket, engine, buckets)
    try:
        await served.serve()
    finally:
        logging.getLogger(REQUEST_LOGGER_NAME).info("session", extra={"fields": {
            "event": "session", "path": "/v1/exchange/session", "role": actor.role, "answered": served.answered,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1)}})


class _Session:
    """One socket's commands in flight and their answers."""

    def __init__(self, websocket: WebSocket, engine: Engine, buckets: TokenBuckets | None) -> None:
        self.websocket, self.engine, self.buckets = websocket, engine, buckets
        self.answered = 0
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.sending = asyncio.Lock()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.signed_out = False
        self.closed = False

    async def serve(self) -> None:
        """Read commands until the client closes (or its credential no longer signs in); answer each."""
        try:
            while not self.signed_out:
                await self.slots.acquire()
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                command = _parse(message)
                if isinstance(command, str):  # refused before it was a command: answered at once
                    self.slots.release()
                    await self.send(command)
                    continue
                task = asyncio.create_task(self.run(command))
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
        except WebSocketDisconnect:
            pass
        finally:
            if self.in_flight:
                await asyncio.wait(set(self.in_flight))
        await self.sign_out()

    async def run(self, command: PlaceCommand | OrderCommand) -> None:
        try:
            await self.send(await _answer(self.websocket, self.engine, self.buckets, command))
            self.answered += 1
        except AuthenticationRequiredError as err:
            self.signed_out = True
            await self.send(_problem(self.websocket, command.ref, err))
            await self.sign_out()
        finally:
            self.slots.release()

    async def sign_out(self) -> None:
        """Close the socket (once) when its credential no longer signs in; the reading loop then ends."""
        if self.signed_out and not self.closed:
            self.closed = True
            async with self.sending:
                await self.websocket.close(code=CLOSE_SIGNED_OUT, reason="the credential no longer signs in")

    async def send(self, text: str) -> None:
        async with self.sending:
            try:
                await self.websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError):  # gone: the command stands, its answer is lost
                pass


async def _answer(websocket: WebSocket, engine: Engine, buckets: TokenBuckets | None,
                  command: PlaceCommand | OrderCommand) -> str:
    """The answer to one command: its order, or the problem the REST route would answer."""
    try:
        actor = await signed_in_again(websocket)
        if isinstance(command, PlaceCommand):
            limit_account(buckets, command.account_id)
            order = command.model_dump(exclude={"op", "ref", "instrument"})
            created, placed = await exchange.submit_async(engine, exchange.placing(
                actor=actor, instrument=command.instrument, **order))
            return _answered(command.ref, 201 if created else 200, placed)
        if command.op == "get":
            order = await run_in_threadpool(_read_order, websocket, actor, command)
        else:
            _, order = await exchange.submit_async(engine, exchange.cancelling(
                actor=actor, instrument=command.instrument, order_id=command.order_id))
        return _answered(command.ref, 200, order)
    except AuthenticationRequiredError:
        raise
    except Exception as err:  # noqa: BLE001 - every failure is answered as the REST route would answer it
        return _problem(websocket, command.ref, err)


def _answered(ref: str, status: int, order: dict[str, Any]) -> str:
    return Answer.model_validate({"ref": ref, "status": status, "order": order}).model_dump_json()


def _read_order(websocket: WebSocket, actor: Actor, command: OrderCommand) -> dict[str, Any]:
    """The order as its REST route reads it, in a session of its own (the socket's commands run concurrently)."""
    with websocket.app.state.sessions() as session:
        return exchange.get_order(session, actor=actor, instrument=command.instrument, order_id=command.order_id)


def _parse(message: MutableMapping[str, Any]) -> PlaceCommand | OrderCommand | str:
    """The command of a message, or the answer refusing it (a problem naming what is wrong)."""
    text = message.get("text")
    if text is None:
        return _problem(None, None, UnsupportedMediaTypeError("a command is a JSON object in a text message"))
    if len(text) > MAX_MESSAGE_CHARS:
        return _problem(None, None, PayloadTooLargeError(MAX_MESSAGE_CHARS))
    try:
        return SessionCommand.validate_json(text)
    except ValidationError as err:  # answered as the REST route answers an invalid body
        return _problem(None, _ref_of(text), RequestValidationError(err.errors()))


def _ref_of(text: str) -> str | None:
    """The ``ref`` of a command that failed validation, when it has a usable one."""
    try:
        ref = json.loads(text).get("ref")
    except (ValueError, AttributeError):
        return None
    return ref if isinstance(ref, str) and _REF.fullmatch(ref) else None


def _problem(websocket: WebSocket | None, ref: str | None, err: Exception) -> str:
    body = problem_body(websocket, err)
    return json.dumps({"ref": ref, "status": body["status"], "problem": body})

"""The mock carbon exchange: instruments and officer controls, orders, listed and block agreements, market data.

Prices are integer fen per tonne, quantities whole tonnes. An order's ``client_order_id`` makes it
idempotent: sending the same id again answers the existing order (200 instead of 201). A refused order
answers problem+json with a machine-readable ``code``: ``outside_band``, ``tick_size``, ``lot_size``,
``order_too_large``, ``market_closed``, ``halted``, ``account_restricted``, ``open_order_cap``
(the engine's rules, with the command kept in the log), ``insufficient_funds`` or
``insufficient_holdings`` (the ledger's, with nothing written). Order entry is rate-limited per
trading account as well as per user (429 with ``Retry-After``).

The busiest routes are coroutines. Order entry and cancels hand their command to the instrument's writer
and wait for its batch on the event loop (no worker thread, and no database session of their own: they
take the engine). The clock sends only its read to a worker thread: a plain route costs two hops to a
thread and back (the call, then the validation of its answer), and under load a hop costs more than
validating a small answer on the event loop does; the read ends in that thread, so the request's session
closes on the loop without a round trip to the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from accounting.market_rules import InstrumentRules, TradingCalendar
from api.deps import (
    ActorDep,
    EngineDep,
    LimitQuery,
    OffsetQuery,
    RequiredIdempotencyKeyDep,
    SessionDep,
    SettingsDep,
    answer_once,
)
from api.errors import RateLimitedError
from api.rate_limit import TokenBuckets
from api.schemas import Order, Problem
from api.services import exchange
from api.store.db import READ_ONLY
from pipelines.settings import Settings

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/exchange", tags=["exchange"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}})

Instrument = Annotated[str, Field(pattern=r"^(CEA-\d{4}|CCER)$", description="CEA-<vintage> or CCER")]
Tonnes = Annotated[int, Field(gt=0, le=10**9, description="whole tonnes")]
Fen = Annotated[int, Field(gt=0, le=10**9, description="fen per tonne (CNY 0.01)")]
ClientOrderId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="your id for the order")]
AccountId = Annotated[str, Field(min_length=1, max_length=64, description="your compliance or trading account")]
Side = Literal["buy", "sell"]
#: Order, quote and proposal ids, trade ids and log positions: positive integers a database column holds.
MAX_ID = 2**53
OrderId = Annotated[int, Path(ge=1, le=MAX_ID, description="the exchange's id of the order, quote or proposal")]
REFUSED: dict[int | str, dict[str, Any]] = {status: {"model": Problem} for status in (404, 409, 422, 429)}


async def order_rate_limit(request: HTTPConnection) -> TokenBuckets | None:
    """The per-account buckets of order entry (one per process, made by ``create_app``), or None when disabled."""
    buckets: TokenBuckets | None = request.app.state.exchange_limits
    return buckets


OrderLimitDep = Annotated[TokenBuckets | None, Depends(order_rate_limit)]


def limit_account(buckets: TokenBuckets | None, account_id: str) -> None:
    if buckets is not None and (retry_after := buckets.take("account:" + account_id)) is not None:
        raise RateLimitedError(retry_after)


# -- order entry ------------------------------------------------------------------------------------------------
# Declared first: the application tries the routes in the order they are declared (see api.routers.ROUTERS), and
# these two answer most of its requests.


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: AccountId
    client_order_id: ClientOrderId
    side: Side
    order_type: Literal["limit", "market"] = "limit"
    time_in_force: Literal["day", "ioc", "fok"] = "day"
    price_fen: Fen | None = Field(None, description="limit orders only")
    quantity_t: Tonnes


def _created(response: Response, outcome: tuple[bool, dict[str, Any]]) -> dict[str, Any]:
    created, order = outcome
    response.status_code = 201 if created else 200
    return order


@router.post("/instruments/{instrument}/orders", response_model=Order, status_code=201, responses=REFUSED)
async def place_order(instrument: str, body: OrderRequest, response: Response, engine: EngineDep, actor: ActorDep,
                      buckets: OrderLimitDep) -> dict[str, Any]:
    """Place a limit or market order (day, IOC or FOK); a buy holds cash, a sell holds units, until it ends."""
    limit_account(buckets, body.account_id)
    placed = await exchange.submit_async(engine, exchange.placing(actor=actor, instrument=instrument,
                                                                   **body.model_dump()))
    return _created(response, placed)


@router.delete("/instruments/{instrument}/orders/{order_id}", response_model=Order, responses=REFUSED)
async def cancel_order(instrument: str, order_id: OrderId, engine: EngineDep, actor: ActorDep) -> dict[str, Any]:
    """Cancel the open remainder; what it held comes back.

    An order that has already ended (filled, cancelled, expired) answers 409 ``order_not_open`` with the order as
    it is now, fills included, in the problem's ``order``: no need to read it again to learn how it ended.
    """
    cancelled = await exchange.submit_async(engine, exchange.cancelling(actor=actor, instrument=instrument,
                                                                         order_id=order_id))
    order: dict[str, Any] = cancelled[1]
    return order


# -- instruments, clock and officer controls -----------------------------------------------------------------


class ListingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instrument: Instrument
    reference_price_fen: Fen = Field(description="the previous close of the first trading day")
    fee_bp: int = Field(5, ge=0, le=1000, description="trading fee per side, basis points of the trade's value")
    settlement: Literal["trade", "end_of_day"] = Field(
        "trade", description="deliver each trade in the transaction that records it, or all at the day's close")
    listed_band_bp: int = Field(1000, ge=0, le=9999, description="listed band, basis points of the previous close")
    block_band_bp: int = Field(3000, ge=0, le=9999, description="block band, basis points of the previous close")
    block_min_t: Tonnes = 100_000
    max_open_orders: int | None = Field(200, ge=1, le=100_000, description="open orders and quotes per account")
    quote_partial_takes: bool = True
    holidays: list[date] = Field(default_factory=list, max_length=400, description="closed weekdays")
    extra_trading_days: list[date] = Field(default_factory=list, max_length=100, description="weekend trading days")


class Band(BaseModel):
    low_fen: int
    high_fen: int


class InstrumentOut(BaseModel):
    instrument: str
    fee_bp: int
    settlement: str
    trading_day: str | None
    day_open: bool
    previous_close_fen: int
    halted: bool
    listed_open: bool = Field(description="listed trading is in session now (and not halted)")
    block_open: bool
    now: datetime = Field(description="the exchange's clock")
    listed_band: Band
    block_band: Band
    rules: dict[str, Any]
    restricted_accounts: list[str]
    last_seq: int = Field(description="commands in the log so far")


class InstrumentList(BaseModel):
    items: list[InstrumentOut]


@router.post("/instruments", response_model=InstrumentOut, status_code=201, responses=REFUSED)
def list_instrument(body: ListingRequest, response: Response, session: SessionDep, actor: ActorDep,
                    idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """List an allowance vintage or CCER for trading, with its rules; opens its clearing account."""
    rules = InstrumentRules(instrument=body.instrument, listed_band_bp=body.listed_band_bp,
                            block_band_bp=body.block_band_bp, block_min_t=body.block_min_t,
                            max_open_orders=body.max_open_orders, quote_partial_takes=body.quote_partial_takes,
                            calendar=TradingCalendar(holidays=frozenset(body.holidays),
                                                     extra_trading_days=frozenset(body.extra_trading_days)))
    return answer_once(session, actor=actor, key=idempotency_key, response=response, operation="exchange.list",
                       body=body.model_dump(mode="json"),
                       change=lambda: (201, exchange.list_instrument(
                           session, actor=actor, instrument=body.instrument,
                           reference_price_fen=body.reference_price_fen, fee_bp=body.fee_bp,
                           settlement=body.settlement, rules=rules)))


@router.get("/instruments", response_model=InstrumentList)
def list_instruments(session: SessionDep) -> InstrumentList:
    """Every listed instrument with its day, bands and session state."""
    return InstrumentList.model_validate({"items": exchange.list_instruments(session)})


@router.get("/instruments/{instrument}", response_model=InstrumentOut, responses={404: {"model": Problem}})
def get_instrument(instrument: str, session: SessionDep) -> dict[str, Any]:
    """An instrument's rules, trading day, bands, halt and restrictions."""
    return exchange.instrument_view(session, instrument=instrument)


class HaltRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("officer", min_length=1, max_length=500)


class BandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["listed", "block"]
    band_bp: int = Field(ge=0, le=9999, description="basis points of the previous close (1000 = 10 %)")


class RestrictionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: AccountId
    reason: str = Field("officer", min_length=1, max_length=500)


def _officer(session: SessionDep, actor: ActorDep, response: Response, key: str, instrument: str, action: str,
             body: dict[str, Any]) -> dict[str, Any]:
    return answer_once(session, actor=actor, key=key, response=response, operation=f"exchange.{action}",
                       body={"instrument": instrument, **body},
                       change=lambda: (200, exchange.officer_command(session, actor=actor, instrument=instrument,
                                                                     action=action, **body)))


@router.post("/instruments/{instrument}/halt", response_model=InstrumentOut, responses=REFUSED)
def halt(instrument: str, body: HaltRequest, response: Response, session: SessionDep, actor: ActorDep,
         idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Halt trading: new orders are refused (``halted``); resting orders stay and may be cancelled."""
    return _officer(session, actor, response, idempotency_key, instrument, "halt", body.model_dump())


@router.post("/instruments/{instrument}/resume", response_model=InstrumentOut, responses=REFUSED)
def resume(instrument: str, response: Response, session: SessionDep, actor: ActorDep,
           idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Resume trading after a halt."""
    return _officer(session, actor, response, idempotency_key, instrument, "resume", {})


@router.post("/instruments/{instrument}/band", response_model=InstrumentOut, responses=REFUSED)
def change_band(instrument: str, body: BandRequest, response: Response, session: SessionDep, actor: ActorDep,
                idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Change the listed or block band at once; orders outside the new band expire (``outside_band``)."""
    return _officer(session, actor, response, idempotency_key, instrument, "band", body.model_dump())


@router.post("/instruments/{instrument}/restrictions", response_model=InstrumentOut, responses=REFUSED)
def restrict(instrument: str, body: RestrictionRequest, response: Response, session: SessionDep, actor: ActorDep,
             idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Restrict an account: its new orders, quotes, takes and blocks are refused; it may still cancel."""
    return _officer(session, actor, response, idempotency_key, instrument, "restrict", body.model_dump())


@router.delete("/instruments/{instrument}/restrictions/{account_id}", response_model=InstrumentOut,
               responses=REFUSED)
def lift_restriction(instrument: str, account_id: str, response: Response, session: SessionDep, actor: ActorDep,
                     idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Lift an account's restriction."""
    return _officer(session, actor, response, idempotency_key, instrument, "lift", {"account_id": account_id})


@router.post("/instruments/{instrument}/roll", response_model=InstrumentOut, responses=REFUSED)
def roll(instrument: str, response: Response, session: SessionDep, actor: ActorDep,
         idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Close the trading day after its last session and open the next at its first (commands also do this)."""
    return _officer(session, actor, response, idempotency_key, instrument, "roll", {})


class ClockOut(BaseModel):
    mode: str = Field(description="real | simulated")
    now: datetime
    speed: int
    step_seconds: int
    set_by: str | None
    set_at: datetime | None


class ClockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["real", "simulated"]
    start: AwareDatetime | None = Field(None, description="simulated: where the clock starts (default: now)")
    speed: int = Field(1, ge=0, le=100_000, description="simulated seconds per real second; 0 pauses")
    step_seconds: int = Field(60, ge=1, le=7 * 86_400, description="how far one step moves a simulated clock")


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(1, ge=1, le=100_000)


def _read_clock(session: Session) -> dict[str, Any]:
    """The clock, with the read's transaction ended in the same worker thread (its session then closes on the loop)."""
    try:
        return exchange.describe_clock(session)
    finally:
        session.rollback()


@router.get("/clock", response_model=ClockOut)
async def get_clock(session: SessionDep) -> dict[str, Any]:
    """The exchange's clock."""
    return await run_in_threadpool(_read_clock, session)


def _clock_moved(session: Session, settings: Settings, answer: dict[str, Any]) -> dict[str, Any]:
    """When the clock rolls the trading days (``exchange_roll_seconds``), it rolls them at once after a change.

    The change is committed by then: a roll that fails is left to the clock's next tick, not answered.
    """
    if settings.exchange_roll_seconds > 0:
        try:
            exchange.roll_due_days(session)
        except Exception:  # noqa: BLE001 - the clock's change stands; its next tick rolls the day
            logger.exception("rolling the trading days after a clock change failed")
    return answer


@router.put("/clock", response_model=ClockOut, responses=REFUSED)
def set_clock(body: ClockRequest, response: Response, session: SessionDep, actor: ActorDep, settings: SettingsDep,
              idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Real time, or a rehearsal clock running faster, paused (speed 0) or stepped."""
    return _clock_moved(session, settings, answer_once(
        session, actor=actor, key=idempotency_key, response=response, operation="exchange.clock",
        body=body.model_dump(mode="json"),
        change=lambda: (200, exchange.set_clock(session, actor=actor, **body.model_dump()))))


@router.post("/clock/step", response_model=ClockOut, responses=REFUSED)
def step_clock(body: StepRequest, response: Response, session: SessionDep, actor: ActorDep, settings: SettingsDep,
               idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Move a simulated clock forward by whole steps."""
    return _clock_moved(session, settings, answer_once(
        session, actor=actor, key=idempotency_key, response=response, operation="exchange.step",
        body=body.model_dump(), change=lambda: (200, exchange.step_clock(session, actor=actor, steps=body.steps))))


# -- orders, quotes and blocks --------------------------------------------------------------------------------


class OrderList(BaseModel):
    items: list[Order]
    limit: int
    offset: int


@router.get("/orders", response_model=OrderList)
def list_orders(session: SessionDep, actor: ActorDep, limit: LimitQuery = 100, offset: OffsetQuery = 0,
                instrument: str | None = None, account_id: str | None = None,
                state: Annotated[str | None, Query(description="open, or one state")] = None) -> dict[str, Any]:
    """Orders, quotes, takes and block proposals, newest first (yours; officers see every account's)."""
    return exchange.list_orders(session, actor=actor, instrument=instrument, account_id=account_id, state=state,
                                limit=limit, offset=offset)


@router.get("/instruments/{instrument}/orders/{order_id}", response_model=Order, responses={404: {"model": Problem}})
def get_order(instrument: str, order_id: OrderId, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """One order with its fills."""
    return exchange.get_order(session, actor=actor, instrument=instrument, order_id=order_id)


class ReplaceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price_fen: Fen
    quantity_t: Tonnes = Field(description="the new open quantity (tonnes still to trade)")


@router.post("/instruments/{instrument}/orders/{order_id}/replace", response_model=Order, responses=REFUSED)
def replace_order(instrument: str, order_id: OrderId, body: ReplaceRequest, session: SessionDep, actor: ActorDep,
                  buckets: OrderLimitDep) -> dict[str, Any]:
    """Cancel-replace: keeps its priority only when the price is the same and the quantity does not grow.

    An order that has already ended answers 409 ``order_not_open`` with the order in the problem's ``order``."""
    session.connection(execution_options=READ_ONLY)  # finding the account to rate-limit takes no write lock
    row = exchange.get_order(session, actor=actor, instrument=instrument, order_id=order_id)
    limit_account(buckets, row["account_id"])
    return exchange.replace_order(session, actor=actor, instrument=instrument, order_id=order_id, **body.model_dump())


class QuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: AccountId
    client_order_id: ClientOrderId
    side: Side
    price_fen: Fen
    quantity_t: Tonnes
    allow_partial: bool | None = Field(None, description="false: all or none; default: the instrument's rule")


class TakeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: AccountId
    client_order_id: ClientOrderId
    quantity_t: Tonnes


@router.post("/instruments/{instrument}/quotes", response_model=Order, status_code=201, responses=REFUSED)
def post_quote(instrument: str, body: QuoteRequest, response: Response, session: SessionDep, actor: ActorDep,
               buckets: OrderLimitDep) -> dict[str, Any]:
    """Listed agreement (挂牌): post a quote that others take from the best five levels at its price."""
    limit_account(buckets, body.account_id)
    return _created(response, exchange.post_quote(session, actor=actor, instrument=instrument, **body.model_dump()))


@router.post("/instruments/{instrument}/quotes/{quote_id}/take", response_model=Order, status_code=201,
             responses=REFUSED)
def take_quote(instrument: str, quote_id: OrderId, body: TakeRequest, response: Response, session: SessionDep,
               actor: ActorDep, buckets: OrderLimitDep) -> dict[str, Any]:
    """Listed agreement (摘牌): take (part of) a quote at its price; settles like any trade."""
    limit_account(buckets, body.account_id)
    return _created(response, exchange.take_quote(session, actor=actor, instrument=instrument, quote_id=quote_id,
                                                  **body.model_dump()))


@router.delete("/instruments/{instrument}/quotes/{quote_id}", response_model=Order, responses=REFUSED)
def cancel_quote(instrument: str, quote_id: OrderId, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Withdraw the untaken remainder of your quote; one that has already ended answers 409 ``quote_not_open``
    with the quote in the problem's ``order``."""
    return exchange.cancel_quote(session, actor=actor, instrument=instrument, quote_id=quote_id)


class BlockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: AccountId
    client_order_id: ClientOrderId
    counterparty_id: AccountId
    side: Side = Field(description="your side")
    price_fen: Fen
    quantity_t: Tonnes


@router.post("/instruments/{instrument}/blocks", response_model=Order, status_code=201, responses=REFUSED)
def propose_block(instrument: str, body: BlockRequest, response: Response, session: SessionDep, actor: ActorDep,
                  buckets: OrderLimitDep) -> dict[str, Any]:
    """Block agreement (大宗协议): propose price and quantity to a named counterparty, who must confirm."""
    limit_account(buckets, body.account_id)
    return _created(response, exchange.propose_block(session, actor=actor, instrument=instrument,
                                                     **body.model_dump()))


@router.post("/instruments/{instrument}/blocks/{proposal_id}/{answer}", response_model=Order, responses=REFUSED)
def answer_block(instrument: str, proposal_id: OrderId, answer: Literal["confirm", "decline", "withdraw"],
                 session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The counterparty confirms (the trade settles) or declines; the proposer may withdraw."""
    return exchange.answer_block(session, actor=actor, instrument=instrument, proposal_id=proposal_id, answer=answer)


# -- market data ----------------------------------------------------------------------------------------------


class Level(BaseModel):
    price_fen: int
    quantity_t: int
    orders: int


class QuoteLevels(BaseModel):
    bids: list[Level]
    asks: list[Level]


class DepthOut(BaseModel):
    instrument: str
    seq: int = Field(description="the log position this depth reflects (resume the stream after it)")
    bids: list[Level]
    asks: list[Level]
    quotes: QuoteLevels = Field(description="listed-agreement quotes, best five levels")


@router.get("/instruments/{instrument}/depth", response_model=DepthOut, responses={404: {"model": Problem}})
def depth(instrument: str, session: SessionDep,
          levels: Annotated[int, Query(ge=1, le=1000, description="price levels per side")] = 5,
          full: Annotated[bool, Query(description="the whole book by price level")] = False) -> dict[str, Any]:
    """The order book by price level, best first (five levels, or the full book)."""
    return exchange.depth(session, instrument=instrument, levels=None if full else levels)


class PublicTrade(BaseModel):
    trade_id: int
    price_fen: int
    quantity_t: int
    aggressor_side: str
    mode: str = Field(description="continuous | listed_agreement | block")
    trading_day: str
    executed_at: datetime


class TradeList(BaseModel):
    items: list[PublicTrade]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


@router.get("/instruments/{instrument}/trades", response_model=TradeList, responses={404: {"model": Problem}})
def trades(instrument: str, session: SessionDep, limit: LimitQuery = 100,
           before_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="trades before this id")] = None,
           trading_day: date | None = None) -> dict[str, Any]:
    """Trades, newest first, without the parties."""
    return exchange.trades(session, instrument=instrument, limit=limit, before_id=before_id,
                           trading_day=trading_day.isoformat() if trading_day else None)


class DayOut(BaseModel):
    trading_day: str
    previous_close_fen: int
    open_fen: int | None
    high_fen: int | None
    low_fen: int | None
    close_fen: int | None = Field(description="VWAP of the day's listed trades, else the previous close; set at close")
    listed_volume_t: int
    listed_value_fen: int
    block_volume_t: int
    block_value_fen: int
    volume_t: int
    trades: int


class DayList(BaseModel):
    items: list[DayOut]


@router.get("/instruments/{instrument}/days", response_model=DayList, responses={404: {"model": Problem}})
def days(instrument: str, session: SessionDep, limit: LimitQuery = 250,
         day_from: Annotated[date | None, Query(alias="from")] = None,
         day_to: Annotated[date | None, Query(alias="to")] = None) -> DayList:
    """Daily open, high, low, close and volumes; the close sets the next day's bands."""
    return DayList.model_validate({"items": exchange.daily(session, instrument=instrument, day_from=day_from,
                                                           day_to=day_to, limit=limit)})


class Candle(BaseModel):
    start: datetime
    open_fen: int
    high_fen: int
    low_fen: int
    close_fen: int
    volume_t: int
    value_fen: int


class CandleList(BaseModel):
    items: list[Candle]


@router.get("/instruments/{instrument}/candles", response_model=CandleList, responses={404: {"model": Problem}})
def candles(instrument: str, trading_day: date, session: SessionDep,
            granularity: Annotated[int, Query(description="seconds: 60, 300, 900 or 3600")] = 300) -> CandleList:
    """Intraday candles of one day's listed trades (no trade in an interval, no candle)."""
    return CandleList.model_validate({"items": exchange.candles(session, instrument=instrument,
                                                                trading_day=trading_day.isoformat(),
                                                                seconds=granularity)})


@router.get("/instruments/{instrument}/stream", responses={200: {"content": {"text/event-stream": {}}},
                                                           404: {"model": Problem}})
def stream(instrument: str, request: Request,
           after_seq: Annotated[int, Query(ge=0, le=MAX_ID, description="resume after this log position")] = 0,
           max_seconds: Annotated[float, Query(gt=0, le=3600, description="end the stream after this long")] = 300,
           max_events: Annotated[int, Query(ge=1, le=100_000, description="end after this many events")] = 10_000,
           ) -> StreamingResponse:
    """Server-sent events: trades, book level changes and trading status, as the log records them.

    Each event's ``id`` is its log position: reconnect with ``after_seq`` (or ``Last-Event-ID``) to resume.
    Each poll reads in a short read-only transaction of its own, so a long stream never holds a lock.
    """
    resume = request.headers.get("last-event-id", "")
    start = int(resume) if resume.isdigit() and int(resume) <= MAX_ID else after_seq
    sessions = request.app.state.sessions

    def poll(seq: int) -> tuple[int, list[dict[str, Any]]]:
        with sessions() as reader:
            reader.connection(execution_options=READ_ONLY)
            return exchange.stream_after(reader, instrument=instrument, seq=seq)

    first = poll(start)  # 404 for an unknown instrument, before the stream starts

    async def events() -> AsyncIterator[str]:
        seq, sent, deadline = start, 0, time.monotonic() + max_seconds
        yield ": stream of exchange events\n\n"
        pending: tuple[int, list[dict[str, Any]]] | None = first
        while sent < max_events and time.monotonic() < deadline and not await request.is_disconnected():
            seq_after, batch = pending if pending is not None else await run_in_threadpool(poll, seq)
            pending = None
            for event in batch[: max_events - sent]:
                yield f"id: {event['log_seq']}\nevent: {event['type']}\ndata: {json.dumps(event, default=str)}\n\n"
                sent += 1
            if seq_after == seq:
                await asyncio.sleep(0.2)
            seq = seq_after

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


# -- accounts and checks ------------------------------------------------------------------------------------


class StatementOut(BaseModel):
    account_id: str
    holdings: list[dict[str, Any]] = Field(description="per instrument: balance, encumbered, available")
    held_by_open_orders: dict[str, int] = Field(description="what open orders hold in clearing, per instrument")
    fills: list[dict[str, Any]]
    fees_fen: int
    bought_t: int
    sold_t: int
    open_orders: list[Order]
    limit: int
    offset: int


@router.get("/accounts/{account_id}/statement", response_model=StatementOut, responses={404: {"model": Problem}})
def statement(account_id: str, session: SessionDep, limit: LimitQuery = 500, offset: OffsetQuery = 0,
              day_from: Annotated[date | None, Query(alias="from")] = None,
              day_to: Annotated[date | None, Query(alias="to")] = None) -> dict[str, Any]:
    """An account's statement: holdings and cash, what open orders hold, fills with fees, open orders."""
    return exchange.statement(session, account_id=account_id, day_from=day_from, day_to=day_to, limit=limit,
                              offset=offset)


class VerifyOut(BaseModel):
    instrument: str
    ok: bool
    commands: int
    trades: int
    problems: list[str]


@router.get("/instruments/{instrument}/verify", response_model=VerifyOut, responses={404: {"model": Problem}})
def verify(instrument: str, session: SessionDep) -> dict[str, Any]:
    """Replay the log from empty and compare book, orders, trades, holds and ledger entries with the stored ones."""
    return exchange.verify(session, instrument=instrument)

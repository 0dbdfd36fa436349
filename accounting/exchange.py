"""The matching core of the mock carbon exchange: a pure, deterministic state machine.

Commands go in (``PlaceOrder``, ``CancelOrder``, ``ReplaceOrder``, and the officers' ``Halt``,
``Resume``, ``OpenDay``, ``CloseDay``); events come out (``OrderAccepted``, ``OrderRejected``,
``TradeExecuted``, ``OrderCancelled``, ``OrderExpired``, ``OrderReplaced``, ``BookChanged``,
``TradingStatusChanged``). No database, no web framework, no clock, no randomness: the moment of
a command is in the command (``at``), order ids, trade ids and event sequence numbers are counters,
so replaying the same commands from an empty engine yields the same events and the same book.
The service appends accepted commands to its event log and replays them on
start.

Why the engine keeps mutable state: an immutable book copied per command would cost O(book) per
order; the engine instead owns its book privately. What crosses its boundary is immutable: commands
and events are frozen, and the engine copies what it needs out of a command, so it never changes
an object the caller holds. ``book()``, ``depth()`` and ``order_status()`` return frozen snapshots.

Funds and holdings are **not** checked here: the ledger reserves cash for a buy and allowances
for a sell before the service passes the command in. The engine checks the market rules
(``accounting.market_rules``): session and halt, tick, band, lot, maximum order size.

Rules and policies:

* **Price-time priority.** Best price first; at one price, the order that reached the level first.
  A trade executes at the resting (maker) order's price.
* **Limit orders** (``time_in_force="day"``) rest until filled, cancelled, or expired by
  ``CloseDay`` (reason ``end_of_day``) or by an ``OpenDay`` whose new band excludes their price
  (reason ``outside_band``).
* **Market orders** execute against resting orders up to the band limit (a buy up to the band's
  high, a sell down to its low), never outside it; the remainder is **cancelled** (reason
  ``market_remainder``). A market order never rests. ``time_in_force="fok"`` makes it all or nothing.
* **IOC**: execute what crosses now; the remainder **expires** (reason ``ioc_remainder``).
* **FOK**: the quantity available at acceptable prices from other accounts is summed first,
  without touching the book; if it falls short the whole order **expires** (reason
  ``fok_unfilled``) and nothing else happens; otherwise it fills completely.
* **Self-trade prevention: cancel the resting order** ("cancel oldest"). When an incoming order
  would trade with a resting order of the same account, the resting order's remainder is cancelled
  (reason ``self_trade_prevention``) and the incoming order goes on matching the rest of the book.
  Why: the newer instruction reflects the trader's current intent, and the incoming order still
  reaches other accounts' liquidity behind the stale quote. No trade ever has the same account on
  both sides.
* **Cancel-replace** (``ReplaceOrder``) sets a resting order's price and its *open* quantity. It
  keeps the order's place in the queue when the price is unchanged and the quantity does not grow
  (a reduction counts as cancelled quantity); it loses priority (goes to the back of the new price
  level, and matches as an incoming order first if the new price crosses) when the price changes or
  the quantity grows (the increase counts as ordered quantity). So for every order
  ``filled + remaining + cancelled == ordered``.
* **Cancels** are accepted while the market is closed or halted (taking risk off is always
  allowed); new orders and replaces are not (``market_closed``, ``halted``).
* **Rejections** (``OrderRejected.code``), checked in this order: ``halted``, ``market_closed``,
  ``duplicate_client_order_id`` (per account), ``tick_size``, ``outside_band``, ``lot_size``,
  ``order_too_large``; for cancel and replace first ``unknown_order``, ``not_own_order``,
  ``order_not_open``. Malformed commands (a float price, a market order with a price, an unknown
  side) cannot be built: their constructors raise ``ExchangeError``.
* **Order states**: ``new``, ``partially_filled``, ``filled``, ``cancelled``, ``expired``; a
  rejected command creates no order (its state ``rejected`` lives in the ``OrderRejected`` event).

Events of one command come in this order: accepted (or rejected), then trades and self-trade
cancellations as they happen, then the incoming order's own end (cancelled or expired), then one
``BookChanged`` per touched price level (bids before asks, by price) with the level's new total.

>>> from datetime import datetime
>>> from accounting.market_rules import CHINA_TZ, InstrumentRules
>>> at = datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ)
>>> engine = MatchingEngine(rules=InstrumentRules(instrument="CEA-2025"), previous_close_fen=5000)
>>> _ = engine.apply(PlaceOrder(account_id="A", client_order_id="a1", side=SELL, price_fen=5010,
...                             quantity_t=300, at=at))
>>> events = engine.apply(PlaceOrder(account_id="B", client_order_id="b1", side=BUY, order_type=MARKET,
...                                  quantity_t=500, at=at))
>>> [type(e).__name__ for e in events]
['OrderAccepted', 'TradeExecuted', 'OrderCancelled', 'BookChanged']
>>> events[1].price_fen, events[1].quantity_t, events[2].reason, events[2].quantity_t
(5010, 300, 'market_remainder', 200)
>>> engine.apply(PlaceOrder(account_id="B", client_order_id="b2", side=BUY, price_fen=5600,
...                         quantity_t=1, at=at))[0].code
'outside_band'
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from accounting.errors import AccountingError
from accounting.market_rules import (
    LISTED,
    InstrumentRules,
    PriceBand,
    band,
    price_rejection,
    quantity_rejection,
    session_rejection,
)

BUY = "buy"
SELL = "sell"
LIMIT = "limit"
MARKET = "market"
DAY = "day"
IOC = "ioc"
FOK = "fok"

NEW = "new"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELLED = "cancelled"
EXPIRED = "expired"
REJECTED = "rejected"
OPEN_STATES = frozenset({NEW, PARTIALLY_FILLED})

#: Why an order ended without a full fill (``OrderCancelled.reason`` / ``OrderExpired.reason``).
REASON_TRADER = "cancelled_by_trader"
REASON_SELF_TRADE = "self_trade_prevention"
REASON_MARKET_REMAINDER = "market_remainder"
REASON_IOC = "ioc_remainder"
REASON_FOK = "fok_unfilled"
REASON_END_OF_DAY = "end_of_day"
REASON_OUTSIDE_BAND = "outside_band"


class ExchangeError(AccountingError):
    """A malformed command (it cannot be built); ``code`` says what is wrong."""

    code = "exchange_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def _int(value: object, *, name: str, positive: bool = True) -> None:
    if type(value) is not int:
        raise ExchangeError(f"{name} must be an int, got {type(value).__name__} {value!r}", code="not_an_integer")
    if positive and value <= 0:
        raise ExchangeError(f"{name} must be positive, got {value}", code=f"invalid_{name.split('_')[0]}")


def _moment(at: object) -> None:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ExchangeError(f"at must be a timezone-aware datetime, got {at!r}", code="naive_datetime")


def _ids(**values: object) -> None:
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            raise ExchangeError(f"{name} must be a non-empty string, got {value!r}", code="missing_value")


# ---------------------------------------------------------------------------------------------
# Commands


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder:
    """A new order: ``quantity_t`` tonnes, a limit price in fen per tonne or ``None`` for a market order."""

    account_id: str
    client_order_id: str
    side: str
    quantity_t: int
    at: datetime
    order_type: str = LIMIT
    time_in_force: str = DAY
    price_fen: int | None = None

    def __post_init__(self) -> None:
        _ids(account_id=self.account_id, client_order_id=self.client_order_id)
        if self.side not in (BUY, SELL):
            raise ExchangeError(f"side must be buy or sell, got {self.side!r}", code="unknown_side")
        if self.order_type not in (LIMIT, MARKET):
            raise ExchangeError(f"order type must be limit or market, got {self.order_type!r}",
                                code="unknown_order_type")
        if self.time_in_force not in (DAY, IOC, FOK):
            raise ExchangeError(f"time in force must be day, ioc or fok, got {self.time_in_force!r}",
                                code="unknown_time_in_force")
        _int(self.quantity_t, name="quantity_t")
        if self.order_type == LIMIT:
            if self.price_fen is None:
                raise ExchangeError("a limit order needs a price", code="price_required")
            _int(self.price_fen, name="price_fen")
        elif self.price_fen is not None:
            raise ExchangeError("a market order has no price", code="price_not_allowed")
        _moment(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrder:
    """Cancel the open remainder of ``order_id``, which must belong to ``account_id``."""

    account_id: str
    order_id: int
    at: datetime

    def __post_init__(self) -> None:
        _ids(account_id=self.account_id)
        _int(self.order_id, name="order_id")
        _moment(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceOrder:
    """Cancel-replace a resting order: new limit price and new *open* quantity (tonnes still to trade)."""

    account_id: str
    order_id: int
    price_fen: int
    quantity_t: int
    at: datetime

    def __post_init__(self) -> None:
        _ids(account_id=self.account_id)
        _int(self.order_id, name="order_id")
        _int(self.price_fen, name="price_fen")
        _int(self.quantity_t, name="quantity_t")
        _moment(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Halt:
    """An officer halts the instrument: new orders and replaces are rejected; resting orders stay."""

    at: datetime
    reason: str = "officer"


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    """An officer resumes trading after a halt."""

    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenDay:
    """A new trading day (or an officer's band change): the band is set around ``previous_close_fen``.

    Resting orders whose price falls outside the new band expire (reason ``outside_band``).
    """

    at: datetime
    previous_close_fen: int

    def __post_init__(self) -> None:
        _int(self.previous_close_fen, name="previous_close_fen")


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseDay:
    """End of the trading day: every resting (day) order expires (reason ``end_of_day``)."""

    at: datetime


Command = PlaceOrder | CancelOrder | ReplaceOrder | Halt | Resume | OpenDay | CloseDay


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAccepted:
    """An order entered the engine; ``order_id`` is the exchange's id for it."""

    seq: int
    order_id: int
    account_id: str
    client_order_id: str
    side: str
    order_type: str
    time_in_force: str
    price_fen: int | None
    quantity_t: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected:
    """A command refused by a market rule; nothing changed. ``order_id`` is set for cancel and replace."""

    seq: int
    account_id: str
    code: str
    client_order_id: str | None = None
    order_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeExecuted:
    """A fill of ``quantity_t`` tonnes at ``price_fen`` (the resting order's price)."""

    seq: int
    trade_id: int
    price_fen: int
    quantity_t: int
    buy_order_id: int
    sell_order_id: int
    buy_account_id: str
    sell_account_id: str
    aggressor_side: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled:
    """``quantity_t`` tonnes of ``order_id`` will not trade: cancelled for ``reason``."""

    seq: int
    order_id: int
    account_id: str
    quantity_t: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderExpired:
    """``quantity_t`` tonnes of ``order_id`` will not trade: expired for ``reason``."""

    seq: int
    order_id: int
    account_id: str
    quantity_t: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderReplaced:
    """A resting order's new price and open quantity; ``priority_kept`` says whether it kept its place."""

    seq: int
    order_id: int
    account_id: str
    price_fen: int
    quantity_t: int
    priority_kept: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BookChanged:
    """The total resting quantity at one price level after a command (0: the level is gone)."""

    seq: int
    side: str
    price_fen: int
    quantity_t: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingStatusChanged:
    """Halted, resumed, day opened (with the new band) or day closed."""

    seq: int
    status: str
    band_low_fen: int
    band_high_fen: int
    reason: str = ""


Event = (OrderAccepted | OrderRejected | TradeExecuted | OrderCancelled | OrderExpired | OrderReplaced
         | BookChanged | TradingStatusChanged)


# ---------------------------------------------------------------------------------------------
# Snapshots


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderStatus:
    """Where an order stands: ``filled_t + remaining_t + cancelled_t == ordered_t`` (expired counts as cancelled)."""

    order_id: int
    account_id: str
    client_order_id: str
    side: str
    order_type: str
    time_in_force: str
    price_fen: int | None
    ordered_t: int
    filled_t: int
    remaining_t: int
    cancelled_t: int
    state: str
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RestingOrder:
    """One order in the book, as listed in priority order by ``MatchingEngine.book``."""

    order_id: int
    account_id: str
    price_fen: int
    remaining_t: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BookSnapshot:
    """Every resting order, each side in priority order (best price first, then first come)."""

    bids: tuple[RestingOrder, ...]
    asks: tuple[RestingOrder, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Level:
    """One price level of the depth: total quantity and number of orders."""

    price_fen: int
    quantity_t: int
    orders: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Depth:
    """The best ``levels`` price levels of each side, best first."""

    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


# ---------------------------------------------------------------------------------------------
# Internal state


class _Order:
    """The engine's private, mutable record of an order (never handed out)."""

    __slots__ = ("account_id", "cancelled", "client_order_id", "filled", "order_id", "order_type", "ordered",
                 "price", "reason", "remaining", "side", "state", "time_in_force")

    def __init__(self, *, order_id: int, command: PlaceOrder) -> None:
        self.order_id = order_id
        self.account_id = command.account_id
        self.client_order_id = command.client_order_id
        self.side = command.side
        self.order_type = command.order_type
        self.time_in_force = command.time_in_force
        self.price = command.price_fen
        self.ordered = command.quantity_t
        self.remaining = command.quantity_t
        self.filled = 0
        self.cancelled = 0
        self.state = NEW
        self.reason: str | None = None

    def requeued(self) -> _Order:
        """A copy that takes this order's place in the engine; this object becomes a dead queue entry."""
        clone = object.__new__(_Order)
        for name in _Order.__slots__:
            setattr(clone, name, getattr(self, name))
        self.remaining = 0
        return clone

    def status(self) -> OrderStatus:
        return OrderStatus(order_id=self.order_id, account_id=self.account_id, client_order_id=self.client_order_id,
                           side=self.side, order_type=self.order_type, time_in_force=self.time_in_force,
                           price_fen=self.price, ordered_t=self.ordered, filled_t=self.filled,
                           remaining_t=self.remaining, cancelled_t=self.cancelled, state=self.state,
                           reason=self.reason)


class _Side:
    """One side of the book: FIFO queues per price, live totals per price, and the sorted prices.

    A queue may hold dead entries (remaining 0: cancelled in the middle of a queue, or moved by a
    replace); they are skipped and dropped when they reach the front. ``totals`` counts live tonnes only.
    """

    __slots__ = ("is_bid", "prices", "queues", "totals")

    def __init__(self, *, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.prices: list[int] = []  # ascending
        self.queues: dict[int, deque[_Order]] = {}
        self.totals: dict[int, int] = {}

    def add(self, order: _Order, price: int) -> None:
        queue = self.queues.get(price)
        if queue is None:
            insort(self.prices, price)
            self.queues[price] = deque((order,))
            self.totals[price] = order.remaining
        else:
            queue.append(order)
            self.totals[price] += order.remaining

    def take_out(self, order: _Order, price: int) -> None:
        """Remove a live order's remainder from its level (the caller then zeroes or moves it)."""
        total = self.totals[price] - order.remaining
        queue = self.queues[price]
        if total == 0:
            self.drop_level(price)
            return
        self.totals[price] = total
        if queue[0] is order:
            queue.popleft()
        elif queue[-1] is order:
            queue.pop()

    def drop_level(self, price: int) -> None:
        del self.queues[price]
        del self.totals[price]
        prices = self.prices
        if prices[-1] == price:
            prices.pop()
        elif prices[0] == price:
            del prices[0]
        else:
            prices.remove(price)

    def live(self) -> Iterable[_Order]:
        """Live orders in priority order."""
        prices = reversed(self.prices) if self.is_bid else iter(self.prices)
        for price in prices:
            for order in self.queues[price]:
                if order.remaining:
                    yield order


class MatchingEngine:
    """The order book of one instrument and its matching rules; ``apply`` one command at a time."""

    def __init__(self, *, rules: InstrumentRules, previous_close_fen: int) -> None:
        self._rules = rules
        self._band: PriceBand = band(previous_close_fen, LISTED, rules=rules)
        self._halted = False
        self._seq = 0
        self._last_order_id = 0
        self._last_trade_id = 0
        self._bids = _Side(is_bid=True)
        self._asks = _Side(is_bid=False)
        self._orders: dict[int, _Order] = {}
        self._client_ids: set[tuple[str, str]] = set()
        self._last_at: datetime | None = None
        self._last_session: str | None = None

    # -- read side --------------------------------------------------------------------------

    @property
    def price_band(self) -> PriceBand:
        """Today's listed price band."""
        return self._band

    @property
    def halted(self) -> bool:
        """True while an officer has halted the instrument."""
        return self._halted

    @property
    def last_seq(self) -> int:
        """The sequence number of the last event emitted (0 before any)."""
        return self._seq

    def order_status(self, order_id: int) -> OrderStatus | None:
        """The status of an accepted order, or ``None`` for an id the engine never gave out."""
        order = self._orders.get(order_id)
        return None if order is None else order.status()

    def orders(self) -> tuple[OrderStatus, ...]:
        """The status of every accepted order, by order id."""
        return tuple(order.status() for order in self._orders.values())

    def book(self) -> BookSnapshot:
        """Every resting order, each side in priority order."""
        def side(book: _Side) -> tuple[RestingOrder, ...]:
            return tuple(RestingOrder(order_id=o.order_id, account_id=o.account_id, price_fen=o.price or 0,
                                      remaining_t=o.remaining) for o in book.live())
        return BookSnapshot(bids=side(self._bids), asks=side(self._asks))

    def depth(self, levels: int = 5) -> Depth:
        """The best ``levels`` price levels per side (five by default, as traders see them)."""
        def side(book: _Side) -> tuple[Level, ...]:
            prices = list(reversed(book.prices) if book.is_bid else book.prices)[:levels]
            return tuple(Level(price_fen=p, quantity_t=book.totals[p],
                               orders=sum(1 for o in book.queues[p] if o.remaining)) for p in prices)
        return Depth(bids=side(self._bids), asks=side(self._asks))

    # -- write side -------------------------------------------------------------------------

    def apply(self, command: Command) -> tuple[Event, ...]:
        """The events of one command, in order; the engine's state moves on accordingly."""
        events: list[Event] = []
        touched: set[tuple[str, int]] = set()
        if isinstance(command, PlaceOrder):
            self._place(command, events, touched)
        elif isinstance(command, CancelOrder):
            self._cancel(command, events, touched)
        elif isinstance(command, ReplaceOrder):
            self._replace(command, events, touched)
        else:
            self._officer(command, events, touched)
        if touched:
            for side, price in sorted(touched):
                book = self._bids if side == BUY else self._asks
                self._seq += 1
                events.append(BookChanged(seq=self._seq, side=side, price_fen=price,
                                          quantity_t=book.totals.get(price, 0)))
        return tuple(events)

    def _session_rejection(self, at: datetime) -> str | None:
        """``halted``, ``market_closed`` or ``None``; the last moment's answer is reused (commands come in bursts)."""
        if self._halted:
            return "halted"
        if at != self._last_at:
            self._last_at, self._last_session = at, session_rejection(at, rules=self._rules)
        return self._last_session

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _reject(self, events: list[Event], *, account_id: str, code: str, client_order_id: str | None = None,
                order_id: int | None = None) -> None:
        events.append(OrderRejected(seq=self._next_seq(), account_id=account_id, code=code,
                                    client_order_id=client_order_id, order_id=order_id))

    def _place(self, command: PlaceOrder, events: list[Event], touched: set[tuple[str, int]]) -> None:
        rules = self._rules
        key = (command.account_id, command.client_order_id)
        code = self._session_rejection(command.at)
        if code is None and key in self._client_ids:
            code = "duplicate_client_order_id"
        if code is None and command.price_fen is not None:
            code = price_rejection(command.price_fen, price_band=self._band, rules=rules)
        if code is None:
            code = quantity_rejection(command.quantity_t, LISTED, rules=rules)
        if code is not None:
            self._reject(events, account_id=command.account_id, code=code, client_order_id=command.client_order_id)
            return
        self._client_ids.add(key)
        self._last_order_id += 1
        order = _Order(order_id=self._last_order_id, command=command)
        self._orders[order.order_id] = order
        events.append(OrderAccepted(seq=self._next_seq(), order_id=order.order_id, account_id=order.account_id,
                                    client_order_id=order.client_order_id, side=order.side,
                                    order_type=order.order_type, time_in_force=order.time_in_force,
                                    price_fen=order.price, quantity_t=order.ordered))
        buy = order.side == BUY
        limit = order.price if order.price is not None else (self._band.high_fen if buy else self._band.low_fen)
        if order.time_in_force == FOK and self._available(order, limit) < order.remaining:
            self._end(order, EXPIRED, REASON_FOK, events)
            return
        self._match(order, limit, events, touched)
        if not order.remaining:
            return
        if order.order_type == MARKET:
            self._end(order, CANCELLED, REASON_MARKET_REMAINDER, events)
        elif order.time_in_force != DAY:
            self._end(order, EXPIRED, REASON_IOC, events)
        else:
            (self._bids if buy else self._asks).add(order, limit)
            touched.add((order.side, limit))

    def _available(self, taker: _Order, limit: int) -> int:
        """Tonnes other accounts offer at prices ``taker`` accepts, up to what it needs; reads only."""
        need = taker.remaining
        buy = taker.side == BUY
        book = self._asks if buy else self._bids
        found = 0
        for price in (book.prices if buy else reversed(book.prices)):
            if (price > limit) if buy else (price < limit):
                break
            for maker in book.queues[price]:
                if maker.remaining and maker.account_id != taker.account_id:
                    found += maker.remaining
                    if found >= need:
                        return found
        return found

    def _match(self, taker: _Order, limit: int, events: list[Event], touched: set[tuple[str, int]]) -> None:  # noqa: C901
        buy = taker.side == BUY
        book = self._asks if buy else self._bids
        book_side = SELL if buy else BUY
        prices = book.prices
        totals = book.totals
        while taker.remaining and prices:
            price = prices[0] if buy else prices[-1]
            if (price > limit) if buy else (price < limit):
                break
            queue = book.queues[price]
            touched.add((book_side, price))
            while taker.remaining and queue:
                maker = queue[0]
                if not maker.remaining:
                    queue.popleft()
                    continue
                if maker.account_id == taker.account_id:
                    queue.popleft()
                    totals[price] -= maker.remaining
                    self._end(maker, CANCELLED, REASON_SELF_TRADE, events)
                    continue
                quantity = min(taker.remaining, maker.remaining)
                taker.remaining -= quantity
                taker.filled += quantity
                maker.remaining -= quantity
                maker.filled += quantity
                totals[price] -= quantity
                if maker.remaining:
                    maker.state = PARTIALLY_FILLED
                else:
                    maker.state = FILLED
                    queue.popleft()
                self._last_trade_id += 1
                self._seq += 1
                if buy:
                    events.append(TradeExecuted(
                        seq=self._seq, trade_id=self._last_trade_id, price_fen=price, quantity_t=quantity,
                        buy_order_id=taker.order_id, sell_order_id=maker.order_id, buy_account_id=taker.account_id,
                        sell_account_id=maker.account_id, aggressor_side=BUY))
                else:
                    events.append(TradeExecuted(
                        seq=self._seq, trade_id=self._last_trade_id, price_fen=price, quantity_t=quantity,
                        buy_order_id=maker.order_id, sell_order_id=taker.order_id, buy_account_id=maker.account_id,
                        sell_account_id=taker.account_id, aggressor_side=SELL))
            if not totals[price]:
                book.drop_level(price)
        taker.state = FILLED if not taker.remaining else (PARTIALLY_FILLED if taker.filled else NEW)

    def _end(self, order: _Order, state: str, reason: str, events: list[Event]) -> None:
        """Close ``order``'s remainder (already out of the book) as cancelled or expired."""
        quantity = order.remaining
        order.cancelled += quantity
        order.remaining = 0
        order.state = state
        order.reason = reason
        kind = OrderCancelled if state == CANCELLED else OrderExpired
        events.append(kind(seq=self._next_seq(), order_id=order.order_id, account_id=order.account_id,
                           quantity_t=quantity, reason=reason))

    def _own_open_order(self, account_id: str, order_id: int, events: list[Event]) -> _Order | None:
        order = self._orders.get(order_id)
        code = None
        if order is None:
            code = "unknown_order"
        elif order.account_id != account_id:
            code = "not_own_order"
        elif order.state not in OPEN_STATES:
            code = "order_not_open"
        if code is not None:
            self._reject(events, account_id=account_id, code=code, order_id=order_id)
            return None
        return order

    def _cancel(self, command: CancelOrder, events: list[Event], touched: set[tuple[str, int]]) -> None:
        order = self._own_open_order(command.account_id, command.order_id, events)
        if order is None:
            return
        price = order.price or 0
        (self._bids if order.side == BUY else self._asks).take_out(order, price)
        touched.add((order.side, price))
        self._end(order, CANCELLED, REASON_TRADER, events)

    def _replace(self, command: ReplaceOrder, events: list[Event], touched: set[tuple[str, int]]) -> None:
        order = self._own_open_order(command.account_id, command.order_id, events)
        if order is None:
            return
        rules = self._rules
        code = self._session_rejection(command.at)
        if code is None:
            code = price_rejection(command.price_fen, price_band=self._band, rules=rules)
        if code is None:
            code = quantity_rejection(command.quantity_t, LISTED, rules=rules)
        if code is not None:
            self._reject(events, account_id=command.account_id, code=code, client_order_id=order.client_order_id,
                         order_id=order.order_id)
            return
        book = self._bids if order.side == BUY else self._asks
        old_price = order.price or 0
        new_price, new_quantity = command.price_fen, command.quantity_t
        touched.add((order.side, old_price))
        if new_price == old_price and new_quantity <= order.remaining:
            reduction = order.remaining - new_quantity
            order.remaining = new_quantity
            order.cancelled += reduction
            book.totals[old_price] -= reduction
            events.append(OrderReplaced(seq=self._next_seq(), order_id=order.order_id, account_id=order.account_id,
                                        price_fen=new_price, quantity_t=new_quantity, priority_kept=True))
            return
        book.take_out(order, old_price)
        moved = order.requeued()
        self._orders[moved.order_id] = moved
        if new_quantity > moved.remaining:
            moved.ordered += new_quantity - moved.remaining
        else:
            moved.cancelled += moved.remaining - new_quantity
        moved.remaining = new_quantity
        moved.price = new_price
        events.append(OrderReplaced(seq=self._next_seq(), order_id=moved.order_id, account_id=moved.account_id,
                                    price_fen=new_price, quantity_t=new_quantity, priority_kept=False))
        self._match(moved, new_price, events, touched)
        if moved.filled and moved.state == NEW:
            moved.state = PARTIALLY_FILLED
        if moved.remaining:
            book.add(moved, new_price)
            touched.add((moved.side, new_price))

    def _officer(self, command: Halt | Resume | OpenDay | CloseDay, events: list[Event],
                 touched: set[tuple[str, int]]) -> None:
        if isinstance(command, Halt):
            self._halted = True
            status, reason = "halted", command.reason
        elif isinstance(command, Resume):
            self._halted = False
            status, reason = "resumed", ""
        elif isinstance(command, OpenDay):
            self._band = band(command.previous_close_fen, LISTED, rules=self._rules)
            self._expire(lambda o: not self._band.contains(o.price or 0), REASON_OUTSIDE_BAND, events, touched)
            status, reason = "day_opened", ""
        else:
            self._expire(lambda o: True, REASON_END_OF_DAY, events, touched)
            status, reason = "day_closed", ""
        events.append(TradingStatusChanged(seq=self._next_seq(), status=status, band_low_fen=self._band.low_fen,
                                           band_high_fen=self._band.high_fen, reason=reason))

    def _expire(self, condition: Callable[[_Order], bool], reason: str, events: list[Event],
                touched: set[tuple[str, int]]) -> None:
        resting = sorted((o for side in (self._bids, self._asks) for o in side.live() if condition(o)),
                         key=lambda o: o.order_id)
        for order in resting:
            price = order.price or 0
            (self._bids if order.side == BUY else self._asks).take_out(order, price)
            touched.add((order.side, price))
            self._end(order, EXPIRED, reason, events)


def replay(commands: Iterable[Command], *, rules: InstrumentRules,
           previous_close_fen: int) -> tuple[MatchingEngine, tuple[Event, ...]]:
    """A fresh engine after ``commands``, and every event they produced (the event log's replay).

    >>> from datetime import datetime
    >>> from accounting.market_rules import CHINA_TZ, InstrumentRules
    >>> at = datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ)
    >>> commands = [PlaceOrder(account_id="A", client_order_id="1", side=BUY, price_fen=5000, quantity_t=10, at=at),
    ...             PlaceOrder(account_id="B", client_order_id="1", side=SELL, price_fen=4990, quantity_t=4, at=at)]
    >>> engine, events = replay(commands, rules=InstrumentRules(instrument="CCER"), previous_close_fen=5000)
    >>> engine.book().bids
    (RestingOrder(order_id=1, account_id='A', price_fen=5000, remaining_t=6),)
    """
    engine = MatchingEngine(rules=rules, previous_close_fen=previous_close_fen)
    events: list[Event] = []
    for command in commands:
        events.extend(engine.apply(command))
    return engine, tuple(events)

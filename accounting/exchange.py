"""The matching core of the mock carbon exchange: a pure, deterministic state machine.

Commands go in (``PlaceOrder``, ``CancelOrder``, ``ReplaceOrder``, and the officers' ``Halt``,
``Resume``, ``OpenDay``, ``ChangeBand``, ``CloseDay``, and the listed-agreement, block and restriction commands
below); events come out (``OrderAccepted``, ``OrderRejected``,
``TradeExecuted``, ``OrderCancelled``, ``OrderExpired``, ``OrderReplaced``, ``BookChanged``,
``TradingStatusChanged``). No database, no web framework, no clock, no randomness: the moment of
a command is in the command (``at``), order ids, trade ids and event sequence numbers are counters,
so replaying the same commands from an empty engine yields the same events and the same book.
The service appends accepted commands to its event log and replays them on
start.

Why the engine keeps mutable state: an immutable book copied per command would cost O(book) per
order; the engine instead owns its book privately. What crosses its boundary is not changed: commands
are frozen, and the engine copies what it needs out of a command, so it never changes an object the
caller holds; events are read-only to the type checker (see :func:`_event`); ``book()``, ``depth()`` and
``order_status()`` return frozen snapshots.

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

* **Listed agreement (挂牌/摘牌)**, ``PostQuote`` / ``TakeQuote`` / ``CancelQuote``: a quote (side,
  price inside the listed band, quantity below the block minimum, listed sessions) rests in a quote
  book of its own; quotes never match each other or the continuous book. A taker names one quote and
  a quantity and trades at the quote's price. Rule for the best five levels: the quote's price must be
  among the best ``InstrumentRules.quote_take_levels`` (5) distinct prices of the open quotes on that
  side (lowest asks, highest bids; every account's quotes count, as the public depth shows them);
  within a level any quote may be taken (no time priority, as at SEEE). Partial takes are allowed
  when the instrument allows them (``quote_partial_takes``) and the poster did not ask for
  all-or-none. Codes after the session/halt/restriction/duplicate checks: ``unknown_quote``,
  ``quote_not_open``, ``self_take``, ``not_in_best_levels``, ``lot_size``, ``quantity_exceeds_quote``,
  ``partial_take_not_allowed``; cancel: ``unknown_quote``, ``not_own_quote``, ``quote_not_open``.
  Events: ``QuotePosted``; ``QuoteTaken`` then ``TradeExecuted`` (mode ``listed_agreement``);
  ``QuoteCancelled`` (``cancelled_by_trader``, ``end_of_day``, ``outside_band`` at ``OpenDay``).
* **Block agreement (大宗协议)**, ``ProposeBlock`` / ``ConfirmBlock`` / ``DeclineBlock`` /
  ``WithdrawBlock``: the initiator names the counterparty, side, price (block band, +-30 %) and
  quantity (at least 100,000 t), in the block session (13:00-15:00); nothing trades until the named
  counterparty confirms, in session and not halted, with neither party restricted; then
  ``BlockConfirmed`` and one ``TradeExecuted`` (mode ``block``, both order ids the proposal's id).
  Codes: ``self_counterparty``, ``outside_band``, ``lot_size``, ``block_too_small``;
  ``unknown_proposal``, ``proposal_not_open``, ``not_counterparty``, ``not_initiator``. The
  counterparty may decline and the initiator withdraw at any time; open proposals end at ``CloseDay``
  (``end_of_day``) or at an ``OpenDay`` whose block band excludes them (``outside_band``):
  ``BlockCancelled`` with the reason.
* **Account restriction** (``RestrictAccount`` / ``LiftRestriction``, officers): a restricted
  account's new orders, replaces, quotes, takes, proposals and confirmations are rejected
  (``account_restricted``, checked right after ``halted``/``market_closed``); its cancels, quote
  cancels, declines and withdrawals are accepted, and what it already has in the book stays and can
  be traded against. ``already_restricted`` / ``not_restricted`` for a no-op; event
  ``AccountRestrictionChanged``.
* **Open-order cap** (``InstrumentRules.max_open_orders``, none by default): a day limit order or
  a quote is rejected (``open_order_cap``, the last check) when the account already has that many
  resting orders plus open quotes. Market, IOC and FOK orders never rest, so they are not capped;
  a replace is not a new order.
* **Ids**: orders, quotes, takes and block proposals share one id counter; client order ids are
  unique per account across all of them.

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
from typing import Any, TypeVar, dataclass_transform

from accounting.errors import AccountingError
from accounting.market_rules import (
    BLOCK,
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
#: Block proposal states (``BlockStatus.state``).
PROPOSED = "proposed"
EXECUTED = "executed"

#: How a trade came about (``TradeExecuted.mode``).
MODE_CONTINUOUS = "continuous"
MODE_LISTED_AGREEMENT = "listed_agreement"
MODE_BLOCK = "block"

#: Why an order ended without a full fill (``OrderCancelled.reason`` / ``OrderExpired.reason``).
REASON_TRADER = "cancelled_by_trader"
REASON_SELF_TRADE = "self_trade_prevention"
REASON_MARKET_REMAINDER = "market_remainder"
REASON_IOC = "ioc_remainder"
REASON_FOK = "fok_unfilled"
REASON_END_OF_DAY = "end_of_day"
REASON_OUTSIDE_BAND = "outside_band"
REASON_DECLINED = "declined"
REASON_WITHDRAWN = "withdrawn"


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


def _side(side: object) -> None:
    if side not in (BUY, SELL):
        raise ExchangeError(f"side must be buy or sell, got {side!r}", code="unknown_side")


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
class ChangeBand:
    """An officer sets the band of ``kind`` (listed or block) to ``band_bp`` basis points of the previous close.

    The band is recomputed at once around the same previous close; resting orders, quotes and block
    proposals outside the new band end (reason ``outside_band``), as at ``OpenDay``.
    """

    at: datetime
    kind: str
    band_bp: int

    def __post_init__(self) -> None:
        if self.kind not in (LISTED, BLOCK):
            raise ExchangeError(f"band kind must be {LISTED} or {BLOCK}, got {self.kind!r}", code="unknown_band_kind")
        _int(self.band_bp, name="band_bp", positive=False)
        if self.band_bp >= 10_000:
            raise ExchangeError(f"a band is below 10000 basis points (100 %), got {self.band_bp}", code="invalid_band")
        _moment(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseDay:
    """End of the trading day: every resting (day) order expires (reason ``end_of_day``)."""

    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PostQuote:
    """Listed agreement (挂牌): post a quote of ``quantity_t`` tonnes at ``price_fen`` for others to take.

    ``allow_partial``: ``None`` takes the instrument's setting (``InstrumentRules.quote_partial_takes``);
    ``False`` asks for all-or-none; ``True`` is refused (``partial_take_not_allowed``) where the
    instrument forbids partial takes.
    """

    account_id: str
    client_order_id: str
    side: str
    price_fen: int
    quantity_t: int
    at: datetime
    allow_partial: bool | None = None

    def __post_init__(self) -> None:
        _ids(account_id=self.account_id, client_order_id=self.client_order_id)
        _side(self.side)
        _int(self.price_fen, name="price_fen")
        _int(self.quantity_t, name="quantity_t")
        if self.allow_partial is not None and type(self.allow_partial) is not bool:
            raise ExchangeError(f"allow_partial must be a bool or None, got {self.allow_partial!r}",
                                code="invalid_allow_partial")
        _moment(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class TakeQuote:
    """Listed agreement (摘牌): take ``quantity_t`` tonnes of quote ``quote_id`` at the quote's price."""

    account_id: str
    client_order_id: str
    quote_id: int
    quantity_t: int
    at: datetime

    def __post_init__(self) -> None:
        _ids(account_id=self.account_id, client_order_id=self.client_order_id)
        _int(self.quote_id, name="quote_id")
        _int(self.quantity_t, name="quantity_t")
        _moment(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelQuote:
    """Withdraw the untaken remainder of quote ``quote_id``, which must belong to ``account_id``."""

    account_id: str
    quote_id: int
    at: datetime

    def __post_init__(self) -> None:
        _ids(account_id=self.account_id)
        _int(self.quote_id, name="quote_id")
        _moment(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposeBlock:
    """Block agreement (大宗协议): ``account_id`` proposes to ``counterparty_id`` a trade on its ``side``."""

    account_id: str
    client_order_id: str
    counterparty_id: str
    side: str
    price_fen: int
    quantity_t: int
    at: datetime

    def __post_init__(self) -> None:
        _ids(account_id=self.account_id, client_order_id=self.client_order_id, counterparty_id=self.counterparty_id)
        _side(self.side)
        _int(self.price_fen, name="price_fen")
        _int(self.quantity_t, name="quantity_t")
        _moment(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class _BlockAnswer:
    """An answer of one party to block proposal ``proposal_id``."""

    account_id: str
    proposal_id: int
    at: datetime

    def __post_init__(self) -> None:
        _ids(account_id=self.account_id)
        _int(self.proposal_id, name="proposal_id")
        _moment(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmBlock(_BlockAnswer):
    """The named counterparty confirms block proposal ``proposal_id``: the trade executes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclineBlock(_BlockAnswer):
    """The named counterparty declines block proposal ``proposal_id``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawBlock(_BlockAnswer):
    """The initiator withdraws its block proposal ``proposal_id`` before it is confirmed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RestrictAccount:
    """An officer restricts ``account_id``: its new orders, replaces, quotes, takes and blocks are rejected."""

    account_id: str
    at: datetime
    reason: str = "officer"

    def __post_init__(self) -> None:
        _ids(account_id=self.account_id)
        _moment(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class LiftRestriction:
    """An officer lifts the restriction of ``account_id``."""

    account_id: str
    at: datetime

    def __post_init__(self) -> None:
        _ids(account_id=self.account_id)
        _moment(self.at)


Command = (PlaceOrder | CancelOrder | ReplaceOrder | Halt | Resume | OpenDay | ChangeBand | CloseDay | PostQuote
           | TakeQuote | CancelQuote | ProposeBlock | ConfirmBlock | DeclineBlock | WithdrawBlock | RestrictAccount
           | LiftRestriction)


# ---------------------------------------------------------------------------------------------
# Events


_T = TypeVar("_T")


@dataclass_transform(kw_only_default=True, frozen_default=True)
def _event(cls: type[_T]) -> type[_T]:
    """An event class: read-only to the type checker (an assignment to a field is an error there), a plain
    slotted dataclass at run time.

    Why not ``frozen=True``: a frozen dataclass sets each field through ``object.__setattr__`` when it is made,
    and the engine makes two or three events per command. On the benchmark's stream that was a third of the
    matching core's instructions (``valgrind --tool=callgrind``, 30,000 commands: 1,722 million against 1,185
    million). Nothing changes an event once made: the engine hands them out in a tuple and keeps none.
    """
    return dataclass(slots=True, kw_only=True)(cls)


@_event
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


@_event
class OrderRejected:
    """A command refused by a market rule; nothing changed. ``order_id`` is set for cancel and replace."""

    seq: int
    account_id: str
    code: str
    client_order_id: str | None = None
    order_id: int | None = None


@_event
class TradeExecuted:
    """A fill of ``quantity_t`` tonnes at ``price_fen`` (the resting order's, the quote's or the agreed price).

    ``mode``: ``continuous`` (order book; order ids are orders), ``listed_agreement`` (the quote's id
    and the take's id), ``block`` (both order ids are the proposal's id). ``aggressor_side`` is the
    side of the party whose command executed the trade (the incoming order, the taker, the confirmer).
    """

    seq: int
    trade_id: int
    price_fen: int
    quantity_t: int
    buy_order_id: int
    sell_order_id: int
    buy_account_id: str
    sell_account_id: str
    aggressor_side: str
    mode: str = MODE_CONTINUOUS


@_event
class OrderCancelled:
    """``quantity_t`` tonnes of ``order_id`` will not trade: cancelled for ``reason``."""

    seq: int
    order_id: int
    account_id: str
    quantity_t: int
    reason: str


@_event
class OrderExpired:
    """``quantity_t`` tonnes of ``order_id`` will not trade: expired for ``reason``."""

    seq: int
    order_id: int
    account_id: str
    quantity_t: int
    reason: str


@_event
class OrderReplaced:
    """A resting order's new price and open quantity; ``priority_kept`` says whether it kept its place."""

    seq: int
    order_id: int
    account_id: str
    price_fen: int
    quantity_t: int
    priority_kept: bool


@_event
class BookChanged:
    """The total resting quantity at one price level after a command (0: the level is gone)."""

    seq: int
    side: str
    price_fen: int
    quantity_t: int


@_event
class TradingStatusChanged:
    """Halted, resumed, day opened (with the new band) or day closed."""

    seq: int
    status: str
    band_low_fen: int
    band_high_fen: int
    reason: str = ""


@_event
class QuotePosted:
    """A listed-agreement quote is up; ``partial_allowed`` says whether it may be taken in part."""

    seq: int
    quote_id: int
    account_id: str
    client_order_id: str
    side: str
    price_fen: int
    quantity_t: int
    partial_allowed: bool


@_event
class QuoteTaken:
    """``account_id`` took ``quantity_t`` tonnes of ``quote_id`` (a ``TradeExecuted`` follows)."""

    seq: int
    take_id: int
    quote_id: int
    account_id: str
    client_order_id: str
    side: str
    price_fen: int
    quantity_t: int
    quote_remaining_t: int


@_event
class QuoteCancelled:
    """``quantity_t`` untaken tonnes of ``quote_id`` are withdrawn for ``reason``."""

    seq: int
    quote_id: int
    account_id: str
    quantity_t: int
    reason: str


@_event
class BlockProposed:
    """A block agreement proposed by ``account_id`` to ``counterparty_id``; ``side`` is the initiator's."""

    seq: int
    proposal_id: int
    account_id: str
    client_order_id: str
    counterparty_id: str
    side: str
    price_fen: int
    quantity_t: int


@_event
class BlockConfirmed:
    """The counterparty ``account_id`` confirmed ``proposal_id`` (a ``TradeExecuted`` with mode block follows)."""

    seq: int
    proposal_id: int
    account_id: str


@_event
class BlockCancelled:
    """A block proposal ended without a trade: ``declined``, ``withdrawn``, ``end_of_day`` or ``outside_band``."""

    seq: int
    proposal_id: int
    initiator_id: str
    counterparty_id: str
    reason: str


@_event
class AccountRestrictionChanged:
    """An officer restricted (``restricted=True``) or lifted the restriction of ``account_id``."""

    seq: int
    account_id: str
    restricted: bool
    reason: str = ""


Event = (OrderAccepted | OrderRejected | TradeExecuted | OrderCancelled | OrderExpired | OrderReplaced
         | BookChanged | TradingStatusChanged | QuotePosted | QuoteTaken | QuoteCancelled | BlockProposed
         | BlockConfirmed | BlockCancelled | AccountRestrictionChanged)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteStatus:
    """Where a listed-agreement quote stands: ``taken_t + remaining_t + cancelled_t == quantity_t``."""

    quote_id: int
    account_id: str
    client_order_id: str
    side: str
    price_fen: int
    quantity_t: int
    taken_t: int
    remaining_t: int
    cancelled_t: int
    partial_allowed: bool
    state: str
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockStatus:
    """Where a block proposal stands: ``proposed``, ``executed`` or ``cancelled`` (with ``reason``)."""

    proposal_id: int
    account_id: str
    client_order_id: str
    counterparty_id: str
    side: str
    price_fen: int
    quantity_t: int
    state: str
    reason: str | None


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


class _Quote:
    """The engine's private record of a listed-agreement quote."""

    __slots__ = ("account_id", "cancelled", "client_order_id", "partial", "price", "quantity", "quote_id", "reason",
                 "remaining", "side", "state", "taken")

    def __init__(self, *, quote_id: int, command: PostQuote, partial: bool) -> None:
        self.quote_id = quote_id
        self.account_id = command.account_id
        self.client_order_id = command.client_order_id
        self.side = command.side
        self.price = command.price_fen
        self.quantity = command.quantity_t
        self.remaining = command.quantity_t
        self.taken = 0
        self.cancelled = 0
        self.partial = partial
        self.state = NEW
        self.reason: str | None = None

    def status(self) -> QuoteStatus:
        return QuoteStatus(quote_id=self.quote_id, account_id=self.account_id, client_order_id=self.client_order_id,
                           side=self.side, price_fen=self.price, quantity_t=self.quantity, taken_t=self.taken,
                           remaining_t=self.remaining, cancelled_t=self.cancelled, partial_allowed=self.partial,
                           state=self.state, reason=self.reason)


class _Block:
    """The engine's private record of a block proposal."""

    __slots__ = ("account_id", "client_order_id", "counterparty_id", "price", "proposal_id", "quantity", "reason",
                 "side", "state")

    def __init__(self, *, proposal_id: int, command: ProposeBlock) -> None:
        self.proposal_id = proposal_id
        self.account_id = command.account_id
        self.client_order_id = command.client_order_id
        self.counterparty_id = command.counterparty_id
        self.side = command.side
        self.price = command.price_fen
        self.quantity = command.quantity_t
        self.state = PROPOSED
        self.reason: str | None = None

    def status(self) -> BlockStatus:
        return BlockStatus(proposal_id=self.proposal_id, account_id=self.account_id,
                           client_order_id=self.client_order_id, counterparty_id=self.counterparty_id,
                           side=self.side, price_fen=self.price, quantity_t=self.quantity, state=self.state,
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
        self._previous_close = previous_close_fen
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
        self._block_band: PriceBand = band(previous_close_fen, BLOCK, rules=rules)
        self._restricted: set[str] = set()
        self._cap = rules.max_open_orders
        #: Per account, ids of orders that rested and quotes posted; pruned lazily (only kept with a cap).
        self._open_ids: dict[str, list[int]] = {}
        self._quotes: dict[int, _Quote] = {}
        self._open_quotes: dict[int, _Quote] = {}
        self._blocks: dict[int, _Block] = {}
        self._open_blocks: dict[int, _Block] = {}
        self._handlers: dict[type[Any], Callable[[Any, list[Event], set[tuple[str, int]]], None]] = {
            PostQuote: self._post_quote, TakeQuote: self._take_quote, CancelQuote: self._cancel_quote,
            ProposeBlock: self._propose_block, ConfirmBlock: self._confirm_block,
            DeclineBlock: self._decline_block, WithdrawBlock: self._withdraw_block,
            RestrictAccount: self._restrict, LiftRestriction: self._lift_restriction,
            Halt: self._officer, Resume: self._officer, OpenDay: self._officer, CloseDay: self._officer,
            ChangeBand: self._officer,
        }

    # -- read side --------------------------------------------------------------------------

    @property
    def price_band(self) -> PriceBand:
        """Today's listed price band."""
        return self._band

    @property
    def rules(self) -> InstrumentRules:
        """The rules in force (an officer's band change included)."""
        return self._rules

    @property
    def previous_close_fen(self) -> int:
        """The close today's bands are set around."""
        return self._previous_close

    @property
    def block_band(self) -> PriceBand:
        """Today's block (bulk agreement) price band."""
        return self._block_band

    @property
    def restricted_accounts(self) -> frozenset[str]:
        """The accounts an officer has restricted."""
        return frozenset(self._restricted)

    def quote_status(self, quote_id: int) -> QuoteStatus | None:
        """The status of a posted quote, or ``None`` for an id that is not a quote."""
        quote = self._quotes.get(quote_id)
        return None if quote is None else quote.status()

    def quotes(self) -> tuple[QuoteStatus, ...]:
        """The status of every posted quote, by quote id."""
        return tuple(quote.status() for quote in self._quotes.values())

    def quote_depth(self, levels: int = 5) -> Depth:
        """The best ``levels`` price levels of the open quotes per side (buys highest first, sells lowest)."""
        def side(name: str) -> tuple[Level, ...]:
            totals: dict[int, list[int]] = {}
            for quote in self._open_quotes.values():
                if quote.side == name:
                    level = totals.setdefault(quote.price, [0, 0])
                    level[0] += quote.remaining
                    level[1] += 1
            prices = sorted(totals, reverse=name == BUY)[:levels]
            return tuple(Level(price_fen=p, quantity_t=totals[p][0], orders=totals[p][1]) for p in prices)
        return Depth(bids=side(BUY), asks=side(SELL))

    def block_status(self, proposal_id: int) -> BlockStatus | None:
        """The status of a block proposal, or ``None`` for an id that is not one."""
        block = self._blocks.get(proposal_id)
        return None if block is None else block.status()

    def blocks(self) -> tuple[BlockStatus, ...]:
        """The status of every block proposal, by proposal id."""
        return tuple(block.status() for block in self._blocks.values())

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
            handler = self._handlers.get(type(command))
            if handler is None:
                raise ExchangeError(f"not a command: {command!r}", code="unknown_command")
            handler(command, events, touched)
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

    def _at_cap(self, account_id: str) -> bool:
        """True when ``account_id`` already has ``max_open_orders`` open orders and quotes."""
        ids = self._open_ids.get(account_id)
        cap = self._cap or 0
        if ids is None or len(ids) < cap:
            return False
        orders, quotes = self._orders, self._quotes
        ids[:] = [i for i in ids if (orders[i] if i in orders else quotes[i]).remaining]
        return len(ids) >= cap

    def _count_open(self, account_id: str, some_id: int) -> None:
        if self._cap is not None:
            self._open_ids.setdefault(account_id, []).append(some_id)

    def place_rejection(self, command: PlaceOrder) -> str | None:
        """The code ``apply`` would reject ``command`` with, or ``None``; changes nothing.

        The service asks before it reserves cash or allowances, so a market rule is reported before a
        missing balance.
        """
        rules = self._rules  # the checks stay inline: this is the hot path
        key = (command.account_id, command.client_order_id)
        code = self._session_rejection(command.at)
        if code is None and self._restricted and command.account_id in self._restricted:
            code = "account_restricted"
        if code is None and key in self._client_ids:
            code = "duplicate_client_order_id"
        if code is None and command.price_fen is not None:
            code = price_rejection(command.price_fen, price_band=self._band, rules=rules)
        if code is None:
            code = quantity_rejection(command.quantity_t, LISTED, rules=rules)
        if (code is None and self._cap is not None and command.order_type == LIMIT and command.time_in_force == DAY
                and self._at_cap(command.account_id)):
            code = "open_order_cap"
        return code

    def _place(self, command: PlaceOrder, events: list[Event], touched: set[tuple[str, int]]) -> None:
        code = self.place_rejection(command)
        if code is not None:
            self._reject(events, account_id=command.account_id, code=code, client_order_id=command.client_order_id)
            return
        key = (command.account_id, command.client_order_id)
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
            if self._cap is not None:
                self._count_open(order.account_id, order.order_id)

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
        if code is None and command.account_id in self._restricted:
            code = "account_restricted"
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

    def _officer(self, command: Halt | Resume | OpenDay | ChangeBand | CloseDay, events: list[Event],
                 touched: set[tuple[str, int]]) -> None:
        if isinstance(command, ChangeBand):
            self._rules = self._rules.with_band(kind=command.kind, band_bp=command.band_bp)
            command = OpenDay(at=command.at, previous_close_fen=self._previous_close)
            status_override: str | None = "band_changed"
        else:
            status_override = None
        if isinstance(command, Halt):
            self._halted = True
            status, reason = "halted", command.reason
        elif isinstance(command, Resume):
            self._halted = False
            status, reason = "resumed", ""
        elif isinstance(command, OpenDay):
            self._previous_close = command.previous_close_fen
            self._band = band(command.previous_close_fen, LISTED, rules=self._rules)
            self._block_band = band(command.previous_close_fen, BLOCK, rules=self._rules)
            self._expire(lambda o: not self._band.contains(o.price or 0), REASON_OUTSIDE_BAND, events, touched)
            self._end_quotes(lambda q: not self._band.contains(q.price), REASON_OUTSIDE_BAND, events)
            self._end_blocks(lambda b: not self._block_band.contains(b.price), REASON_OUTSIDE_BAND, events)
            status, reason = "day_opened", ""
        else:
            self._expire(lambda o: True, REASON_END_OF_DAY, events, touched)
            self._end_quotes(lambda q: True, REASON_END_OF_DAY, events)
            self._end_blocks(lambda b: True, REASON_END_OF_DAY, events)
            status, reason = "day_closed", ""
        events.append(TradingStatusChanged(seq=self._next_seq(), status=status_override or status,
                                           band_low_fen=self._band.low_fen,
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


    # -- entry checks shared by quotes and blocks ----------------------------------------------

    def _entry_rejection(self, at: datetime, account_id: str, key: tuple[str, str], kind: str) -> str | None:
        """``halted``, ``market_closed`` (``kind``'s session), ``account_restricted``, ``duplicate_client_order_id``."""
        code = session_rejection(at, rules=self._rules, kind=kind, halted=self._halted)
        if code is None and account_id in self._restricted:
            code = "account_restricted"
        if code is None and key in self._client_ids:
            code = "duplicate_client_order_id"
        return code

    def _new_id(self) -> int:
        self._last_order_id += 1
        return self._last_order_id

    def _trade(self, events: list[Event], *, price: int, quantity: int, buy: tuple[int, str], sell: tuple[int, str],
               aggressor_side: str, mode: str) -> None:
        self._last_trade_id += 1
        events.append(TradeExecuted(seq=self._next_seq(), trade_id=self._last_trade_id, price_fen=price,
                                    quantity_t=quantity, buy_order_id=buy[0], sell_order_id=sell[0],
                                    buy_account_id=buy[1], sell_account_id=sell[1], aggressor_side=aggressor_side,
                                    mode=mode))

    # -- listed agreement (挂牌 / 摘牌) ----------------------------------------------------------

    def _post_quote(self, command: PostQuote, events: list[Event], touched: set[tuple[str, int]]) -> None:
        rules = self._rules
        key = (command.account_id, command.client_order_id)
        code = self._entry_rejection(command.at, command.account_id, key, LISTED)
        if code is None:
            code = price_rejection(command.price_fen, price_band=self._band, rules=rules)
        if code is None:
            code = quantity_rejection(command.quantity_t, LISTED, rules=rules)
        if code is None and command.allow_partial and not rules.quote_partial_takes:
            code = "partial_take_not_allowed"
        if code is None and self._cap is not None and self._at_cap(command.account_id):
            code = "open_order_cap"
        if code is not None:
            self._reject(events, account_id=command.account_id, code=code, client_order_id=command.client_order_id)
            return
        self._client_ids.add(key)
        partial = rules.quote_partial_takes if command.allow_partial is None else command.allow_partial
        quote = _Quote(quote_id=self._new_id(), command=command, partial=partial)
        self._quotes[quote.quote_id] = self._open_quotes[quote.quote_id] = quote
        self._count_open(quote.account_id, quote.quote_id)
        events.append(QuotePosted(seq=self._next_seq(), quote_id=quote.quote_id, account_id=quote.account_id,
                                  client_order_id=quote.client_order_id, side=quote.side, price_fen=quote.price,
                                  quantity_t=quote.quantity, partial_allowed=partial))

    def _take_rejection(self, command: TakeQuote, quote: _Quote | None) -> str | None:  # noqa: C901 - one rule a line
        if quote is None:
            return "unknown_quote"
        if quote.state not in OPEN_STATES:
            return "quote_not_open"
        if quote.account_id == command.account_id:
            return "self_take"
        levels = {q.price for q in self._open_quotes.values() if q.side == quote.side}
        if quote.price not in sorted(levels, reverse=quote.side == BUY)[: self._rules.quote_take_levels]:
            return "not_in_best_levels"
        if command.quantity_t % self._rules.lot_t:
            return "lot_size"
        if command.quantity_t > quote.remaining:
            return "quantity_exceeds_quote"
        if command.quantity_t < quote.remaining and not quote.partial:
            return "partial_take_not_allowed"
        return None

    def _take_quote(self, command: TakeQuote, events: list[Event], touched: set[tuple[str, int]]) -> None:
        key = (command.account_id, command.client_order_id)
        quote = self._quotes.get(command.quote_id)
        code = self._entry_rejection(command.at, command.account_id, key, LISTED)
        if code is None:
            code = self._take_rejection(command, quote)
        if code is not None or quote is None:
            self._reject(events, account_id=command.account_id, code=code or "unknown_quote",
                         client_order_id=command.client_order_id, order_id=command.quote_id)
            return
        self._client_ids.add(key)
        take_id = self._new_id()
        quantity = command.quantity_t
        quote.remaining -= quantity
        quote.taken += quantity
        quote.state = PARTIALLY_FILLED if quote.remaining else FILLED
        if not quote.remaining:
            del self._open_quotes[quote.quote_id]
        side = SELL if quote.side == BUY else BUY
        events.append(QuoteTaken(seq=self._next_seq(), take_id=take_id, quote_id=quote.quote_id,
                                 account_id=command.account_id, client_order_id=command.client_order_id, side=side,
                                 price_fen=quote.price, quantity_t=quantity, quote_remaining_t=quote.remaining))
        maker, taker = (quote.quote_id, quote.account_id), (take_id, command.account_id)
        self._trade(events, price=quote.price, quantity=quantity, buy=taker if side == BUY else maker,
                    sell=maker if side == BUY else taker, aggressor_side=side, mode=MODE_LISTED_AGREEMENT)

    def _cancel_quote(self, command: CancelQuote, events: list[Event], touched: set[tuple[str, int]]) -> None:
        quote = self._quotes.get(command.quote_id)
        code = None
        if quote is None:
            code = "unknown_quote"
        elif quote.account_id != command.account_id:
            code = "not_own_quote"
        elif quote.state not in OPEN_STATES:
            code = "quote_not_open"
        if code is not None or quote is None:
            self._reject(events, account_id=command.account_id, code=code or "unknown_quote",
                         order_id=command.quote_id)
            return
        self._end_quote(quote, REASON_TRADER, events)

    def _end_quote(self, quote: _Quote, reason: str, events: list[Event]) -> None:
        quantity = quote.remaining
        quote.cancelled += quantity
        quote.remaining = 0
        quote.state = CANCELLED
        quote.reason = reason
        del self._open_quotes[quote.quote_id]
        events.append(QuoteCancelled(seq=self._next_seq(), quote_id=quote.quote_id, account_id=quote.account_id,
                                     quantity_t=quantity, reason=reason))

    def _end_quotes(self, condition: Callable[[_Quote], bool], reason: str, events: list[Event]) -> None:
        for quote in sorted((q for q in self._open_quotes.values() if condition(q)), key=lambda q: q.quote_id):
            self._end_quote(quote, reason, events)

    # -- block agreement (大宗协议) ---------------------------------------------------------------

    def _propose_block(self, command: ProposeBlock, events: list[Event], touched: set[tuple[str, int]]) -> None:
        rules = self._rules
        key = (command.account_id, command.client_order_id)
        code = self._entry_rejection(command.at, command.account_id, key, BLOCK)
        if code is None and command.counterparty_id == command.account_id:
            code = "self_counterparty"
        if code is None:
            code = price_rejection(command.price_fen, price_band=self._block_band, rules=rules)
        if code is None:
            code = quantity_rejection(command.quantity_t, BLOCK, rules=rules)
        if code is not None:
            self._reject(events, account_id=command.account_id, code=code, client_order_id=command.client_order_id)
            return
        self._client_ids.add(key)
        block = _Block(proposal_id=self._new_id(), command=command)
        self._blocks[block.proposal_id] = self._open_blocks[block.proposal_id] = block
        events.append(BlockProposed(seq=self._next_seq(), proposal_id=block.proposal_id, account_id=block.account_id,
                                    client_order_id=block.client_order_id, counterparty_id=block.counterparty_id,
                                    side=block.side, price_fen=block.price, quantity_t=block.quantity))

    def _open_block(self, account_id: str, proposal_id: int, party: str, events: list[Event]) -> _Block | None:
        """The open proposal ``proposal_id`` when ``account_id`` is its ``party`` (counterparty or initiator)."""
        block = self._blocks.get(proposal_id)
        code = None
        if block is None:
            code = "unknown_proposal"
        elif block.state != PROPOSED:
            code = "proposal_not_open"
        elif party == "counterparty" and block.counterparty_id != account_id:
            code = "not_counterparty"
        elif party == "initiator" and block.account_id != account_id:
            code = "not_initiator"
        if code is not None:
            self._reject(events, account_id=account_id, code=code, order_id=proposal_id)
            return None
        return block

    def _confirm_block(self, command: ConfirmBlock, events: list[Event], touched: set[tuple[str, int]]) -> None:
        block = self._open_block(command.account_id, command.proposal_id, "counterparty", events)
        if block is None:
            return
        code = session_rejection(command.at, rules=self._rules, kind=BLOCK, halted=self._halted)
        if code is None and (block.account_id in self._restricted or block.counterparty_id in self._restricted):
            code = "account_restricted"
        if code is not None:
            self._reject(events, account_id=command.account_id, code=code, order_id=block.proposal_id)
            return
        block.state = EXECUTED
        del self._open_blocks[block.proposal_id]
        events.append(BlockConfirmed(seq=self._next_seq(), proposal_id=block.proposal_id,
                                     account_id=command.account_id))
        initiator, counterparty = (block.proposal_id, block.account_id), (block.proposal_id, block.counterparty_id)
        buy_initiated = block.side == BUY
        self._trade(events, price=block.price, quantity=block.quantity,
                    buy=initiator if buy_initiated else counterparty, sell=counterparty if buy_initiated else initiator,
                    aggressor_side=SELL if buy_initiated else BUY, mode=MODE_BLOCK)

    def _decline_block(self, command: DeclineBlock, events: list[Event], touched: set[tuple[str, int]]) -> None:
        block = self._open_block(command.account_id, command.proposal_id, "counterparty", events)
        if block is not None:
            self._end_block(block, REASON_DECLINED, events)

    def _withdraw_block(self, command: WithdrawBlock, events: list[Event], touched: set[tuple[str, int]]) -> None:
        block = self._open_block(command.account_id, command.proposal_id, "initiator", events)
        if block is not None:
            self._end_block(block, REASON_WITHDRAWN, events)

    def _end_block(self, block: _Block, reason: str, events: list[Event]) -> None:
        block.state = CANCELLED
        block.reason = reason
        del self._open_blocks[block.proposal_id]
        events.append(BlockCancelled(seq=self._next_seq(), proposal_id=block.proposal_id,
                                     initiator_id=block.account_id, counterparty_id=block.counterparty_id,
                                     reason=reason))

    def _end_blocks(self, condition: Callable[[_Block], bool], reason: str, events: list[Event]) -> None:
        for block in sorted((b for b in self._open_blocks.values() if condition(b)), key=lambda b: b.proposal_id):
            self._end_block(block, reason, events)

    # -- officers' account controls --------------------------------------------------------------

    def _restrict(self, command: RestrictAccount, events: list[Event], touched: set[tuple[str, int]]) -> None:
        if command.account_id in self._restricted:
            self._reject(events, account_id=command.account_id, code="already_restricted")
            return
        self._restricted.add(command.account_id)
        events.append(AccountRestrictionChanged(seq=self._next_seq(), account_id=command.account_id, restricted=True,
                                                reason=command.reason))

    def _lift_restriction(self, command: LiftRestriction, events: list[Event],
                          touched: set[tuple[str, int]]) -> None:
        if command.account_id not in self._restricted:
            self._reject(events, account_id=command.account_id, code="not_restricted")
            return
        self._restricted.discard(command.account_id)
        events.append(AccountRestrictionChanged(seq=self._next_seq(), account_id=command.account_id,
                                                restricted=False))


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

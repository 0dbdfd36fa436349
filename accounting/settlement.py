"""Prefunding and settlement of the mock exchange: which ledger postings the engine's events call for.

Pure rules, no storage: the service passes the events of one engine command and the holds of the
orders they touch; :func:`settle` answers the postings of that command (netted per account and
instrument, ready for one ledger entry), the holds after it and the fees of each trade.

* **Holds.** Every order, quote, take and block proposal holds what it may need in the instrument's
  clearing account (``EX-<instrument>``): a buy holds cash, price x open quantity plus the fee on it
  (a market buy at the band's upper limit), a sell holds the units. A taker of a quote and the
  confirming party of a block agreement hold exactly what their trade costs, in the same command.
  No hold, no order: there is no short selling and no buying on credit.
* **Trades** settle delivery-versus-payment from the clearing account: the units to the buyer, the
  price less the seller's fee to the seller, both fees to the fee account. With end-of-day
  settlement (``settle_trades=False``) the trade's cash and units stay in clearing until
  :func:`settle_pending` moves them at the close.
* **Release.** A buy filled below its limit gets the difference back with the fill: its hold never
  exceeds what its open quantity may cost at its limit. When an order ends (filled, cancelled,
  expired) what it still holds goes back to its account. A cancel-replace re-sizes the hold.
* **Fees** are ``fee_bp`` basis points of the trade's value, rounded **down** to the fen, per side.
  Rounding down keeps the sum of a buy's per-trade fees within the fee held for the whole order.

So the clearing account always holds exactly the open orders' holds plus the unsettled trades, and
every unit and fen that leaves it arrives somewhere: the entry balances by construction.

>>> from accounting.exchange import OrderAccepted, TradeExecuted
>>> events = (OrderAccepted(seq=1, order_id=2, account_id="B", client_order_id="b", side="buy",
...                         order_type="limit", time_in_force="day", price_fen=5000, quantity_t=10),
...           TradeExecuted(seq=2, trade_id=1, price_fen=4990, quantity_t=10, buy_order_id=2, sell_order_id=1,
...                         buy_account_id="B", sell_account_id="S", aggressor_side="buy"))
>>> holds = {(1, "S"): Hold(order_id=1, account_id="S", side="sell", open_t=10, held=10)}
>>> result = settle(events, holds=holds, instrument="CEA-2025", clearing_account="EX-CEA-2025",
...                 fees_account="SYS-FEES", fee_bp=10, band_high_fen=5500)
>>> sorted(result.changes.items())  # doctest: +NORMALIZE_WHITESPACE
[(('B', 'CEA-2025'), 10), (('B', 'CNY'), -49949), (('EX-CEA-2025', 'CEA-2025'), -10),
 (('S', 'CNY'), 49851), (('SYS-FEES', 'CNY'), 98)]
>>> result.holds
{}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from accounting.errors import AccountingError
from accounting.exchange import (
    BUY,
    BlockCancelled,
    BlockProposed,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderReplaced,
    QuoteCancelled,
    QuotePosted,
    TradeExecuted,
)
from accounting.ledger import CNY, CREDIT, DEBIT, Posting
from accounting.market_rules import BP

HoldKey = tuple[int, str]  # (order, quote, take or proposal id; account id)


class SettlementError(AccountingError):
    """The events ask for more than a hold holds: a bug upstream, never a trader's mistake."""

    code = "settlement_error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """What one order holds in clearing: ``held`` fen (a buy) or tonnes (a sell) for ``open_t`` tonnes to go."""

    order_id: int
    account_id: str
    side: str
    open_t: int
    held: int
    #: A buy's limit (a market buy: the band's upper limit when placed): what an open tonne may cost.
    price_fen: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeFees:
    """The fees of one trade, in fen, and whether it settled in the command that made it."""

    trade_id: int
    buyer_fee_fen: int
    seller_fee_fen: int
    settled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """The outcome of one command: net ledger changes, the holds still open, and the fees of its trades."""

    changes: dict[tuple[str, str], int]
    holds: dict[HoldKey, Hold]
    fees: tuple[TradeFees, ...]
    released: tuple[HoldKey, ...]

    def postings(self) -> tuple[Posting, ...]:
        """The changes as ledger postings, in a stable order (an empty tuple when nothing moved)."""
        return postings_of(self.changes)


def fee_fen(value_fen: int, fee_bp: int) -> int:
    """The fee on a trade of ``value_fen``: ``fee_bp`` basis points, rounded down to the fen.

    >>> fee_fen(49_900, 10), fee_fen(9_999, 10)
    (49, 9)
    """
    return value_fen * fee_bp // BP


def buy_hold_fen(price_fen: int, quantity_t: int, fee_bp: int) -> int:
    """The cash a buy of ``quantity_t`` at up to ``price_fen`` holds: the value and the fee on it."""
    value = price_fen * quantity_t
    return value + fee_fen(value, fee_bp)


def hold_for(*, side: str, price_fen: int, quantity_t: int, fee_bp: int) -> int:
    """What an order of ``side`` holds: fen for a buy, tonnes for a sell."""
    return buy_hold_fen(price_fen, quantity_t, fee_bp) if side == BUY else quantity_t


def postings_of(changes: Mapping[tuple[str, str], int]) -> tuple[Posting, ...]:
    """Net changes per (account, instrument) as postings: a debit for a decrease, a credit for an increase."""
    return tuple(Posting(account_id=account, instrument=instrument, side=CREDIT if change > 0 else DEBIT,
                         quantity=abs(change))
                 for (account, instrument), change in sorted(changes.items()) if change)


class _Book:
    """The running state of one settlement: changes and holds, moved together."""

    def __init__(self, *, holds: Mapping[HoldKey, Hold], instrument: str, clearing: str, fees: str,
                 fee_bp: int = 0) -> None:
        self.holds = dict(holds)
        self.fee_bp = fee_bp
        self.changes: dict[tuple[str, str], int] = defaultdict(int)
        self.instrument, self.clearing, self.fees_account = instrument, clearing, fees
        self.released: list[HoldKey] = []

    def asset(self, side: str) -> str:
        return CNY if side == BUY else self.instrument

    def move(self, instrument: str, source: str, target: str, quantity: int) -> None:
        if quantity:
            self.changes[(source, instrument)] -= quantity
            self.changes[(target, instrument)] += quantity

    def open(self, hold: Hold) -> None:
        self.holds[(hold.order_id, hold.account_id)] = hold
        self.move(self.asset(hold.side), hold.account_id, self.clearing, hold.held)

    def resize(self, key: HoldKey, *, open_t: int, held: int) -> None:
        hold = self.holds[key]
        delta = held - hold.held
        if delta > 0:
            self.move(self.asset(hold.side), hold.account_id, self.clearing, delta)
        else:
            self.move(self.asset(hold.side), self.clearing, hold.account_id, -delta)
        self.holds[key] = replace(hold, open_t=open_t, held=held)

    def release(self, key: HoldKey) -> None:
        hold = self.holds.pop(key, None)
        if hold is not None:
            self.move(self.asset(hold.side), self.clearing, hold.account_id, hold.held)
            self.released.append(key)

    def consume(self, key: HoldKey, *, quantity_t: int, amount: int) -> None:
        """Take ``amount`` (fen or t) for ``quantity_t`` tonnes traded out of the hold; release it when done."""
        hold = self.holds.get(key)
        if hold is None or hold.open_t < quantity_t or hold.held < amount:
            raise SettlementError(f"order {key[0]} of {key[1]} holds {hold} and cannot pay {amount} for "
                                  f"{quantity_t} t")
        hold = self.holds[key] = replace(hold, open_t=hold.open_t - quantity_t, held=hold.held - amount)
        if not hold.open_t:
            self.release(key)
        elif hold.side == BUY and hold.held > (most := buy_hold_fen(hold.price_fen, hold.open_t, self.fee_bp)):
            self.resize(key, open_t=hold.open_t, held=most)  # price improvement comes back at once


def settle(events: Iterable[Event], *, holds: Mapping[HoldKey, Hold], instrument: str, clearing_account: str,
           fees_account: str, fee_bp: int, band_high_fen: int, settle_trades: bool = True) -> Settlement:
    """The ledger changes and holds after ``events`` (one command's), starting from ``holds``.

    ``band_high_fen`` is the listed band's upper limit when the command ran: a market buy holds cash at it.
    """
    book = _Book(holds=holds, instrument=instrument, clearing=clearing_account, fees=fees_account, fee_bp=fee_bp)
    fees: list[TradeFees] = []
    for event in events:
        if isinstance(event, OrderAccepted):
            price = event.price_fen if event.price_fen is not None else band_high_fen
            book.open(Hold(order_id=event.order_id, account_id=event.account_id, side=event.side,
                           open_t=event.quantity_t, price_fen=price,
                           held=hold_for(side=event.side, price_fen=price, quantity_t=event.quantity_t,
                                         fee_bp=fee_bp)))
        elif isinstance(event, QuotePosted | BlockProposed):
            key_id = event.quote_id if isinstance(event, QuotePosted) else event.proposal_id
            held = hold_for(side=event.side, price_fen=event.price_fen, quantity_t=event.quantity_t, fee_bp=fee_bp)
            book.open(Hold(order_id=key_id, account_id=event.account_id, side=event.side, open_t=event.quantity_t,
                           price_fen=event.price_fen, held=held))
        elif isinstance(event, TradeExecuted):
            fees.append(_trade(book, event, fee_bp=fee_bp, settle_trades=settle_trades))
        elif isinstance(event, OrderReplaced):
            key = (event.order_id, event.account_id)
            side = book.holds[key].side
            book.resize(key, open_t=event.quantity_t, held=hold_for(side=side, price_fen=event.price_fen,
                                                                    quantity_t=event.quantity_t, fee_bp=fee_bp))
            book.holds[key] = replace(book.holds[key], price_fen=event.price_fen)
        elif isinstance(event, OrderCancelled | OrderExpired | QuoteCancelled):
            book.release((event.order_id if not isinstance(event, QuoteCancelled) else event.quote_id,
                          event.account_id))
        elif isinstance(event, BlockCancelled):
            book.release((event.proposal_id, event.initiator_id))
    return Settlement(changes={k: v for k, v in book.changes.items() if v}, holds=book.holds, fees=tuple(fees),
                      released=tuple(book.released))


def _trade(book: _Book, trade: TradeExecuted, *, fee_bp: int, settle_trades: bool) -> TradeFees:
    value = trade.price_fen * trade.quantity_t
    buyer_fee, seller_fee = fee_fen(value, fee_bp), fee_fen(value, fee_bp)
    buyer: HoldKey = (trade.buy_order_id, trade.buy_account_id)
    seller: HoldKey = (trade.sell_order_id, trade.sell_account_id)
    for key, side, amount in ((buyer, BUY, value + buyer_fee), (seller, "sell", trade.quantity_t)):
        if key not in book.holds:  # a quote's taker or a block's confirming party pays in this command
            book.open(Hold(order_id=key[0], account_id=key[1], side=side, open_t=trade.quantity_t, held=amount,
                           price_fen=trade.price_fen))
    book.consume(buyer, quantity_t=trade.quantity_t, amount=value + buyer_fee)
    book.consume(seller, quantity_t=trade.quantity_t, amount=trade.quantity_t)
    if settle_trades:
        _deliver(book, trade, buyer_fee=buyer_fee, seller_fee=seller_fee)
    return TradeFees(trade_id=trade.trade_id, buyer_fee_fen=buyer_fee, seller_fee_fen=seller_fee, settled=settle_trades)


def _deliver(book: _Book, trade: TradeExecuted, *, buyer_fee: int, seller_fee: int) -> None:
    value = trade.price_fen * trade.quantity_t
    book.move(book.instrument, book.clearing, trade.buy_account_id, trade.quantity_t)
    book.move(CNY, book.clearing, trade.sell_account_id, value - seller_fee)
    book.move(CNY, book.clearing, book.fees_account, buyer_fee + seller_fee)


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingTrade:
    """A trade recorded but not yet delivered (end-of-day settlement)."""

    trade_id: int
    price_fen: int
    quantity_t: int
    buy_account_id: str
    sell_account_id: str
    buyer_fee_fen: int
    seller_fee_fen: int


def settle_pending(trades: Iterable[PendingTrade], *, instrument: str, clearing_account: str,
                   fees_account: str) -> dict[tuple[str, str], int]:
    """The net ledger changes delivering ``trades`` out of clearing (the end-of-day settlement step)."""
    book = _Book(holds={}, instrument=instrument, clearing=clearing_account, fees=fees_account)
    for t in trades:
        value = t.price_fen * t.quantity_t
        book.move(instrument, clearing_account, t.buy_account_id, t.quantity_t)
        book.move(CNY, clearing_account, t.sell_account_id, value - t.seller_fee_fen)
        book.move(CNY, clearing_account, fees_account, t.buyer_fee_fen + t.seller_fee_fen)
    return {k: v for k, v in book.changes.items() if v}

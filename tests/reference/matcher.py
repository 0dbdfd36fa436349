"""An obviously right reference matcher for ``accounting.exchange``: slow on purpose, short, no cleverness.

The book is one flat list of resting orders. Every matching step filters the whole list for the
orders that cross, sorts them by priority (price, then arrival counter) and takes the first: no
levels, no queues, no dead entries, no incremental totals. The command semantics are those written
in the docstring of ``accounting.exchange`` (same rejection codes and check order, self-trade
prevention by cancelling the resting order, FOK checked before anything changes, market orders
bounded by the band, cancel-replace priority rules, officers' account restrictions and the per-account
cap on open orders). Listed-agreement quotes and block agreements are not modelled here: they have no
matching to compare and are covered by hand-written tests. Rule checks reuse ``accounting.market_rules``,
whose functions have their own hand-written tests; what is compared here is the matching.

``apply`` returns plain tuples (no sequence numbers, no book-change events); ``project`` turns the
engine's events into the same tuples, so the differential test compares both streams exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accounting import exchange as ex
from accounting.market_rules import (
    LISTED,
    InstrumentRules,
    band,
    price_rejection,
    quantity_rejection,
    session_rejection,
)


@dataclass
class RefOrder:
    order_id: int
    account_id: str
    client_order_id: str
    side: str
    order_type: str
    time_in_force: str
    price: int | None
    ordered: int
    remaining: int
    filled: int = 0
    cancelled: int = 0
    state: str = "new"
    reason: str | None = None
    arrival: int = 0


@dataclass
class ReferenceMatcher:
    rules: InstrumentRules
    previous_close_fen: int
    halted: bool = False
    resting: list[RefOrder] = field(default_factory=list)
    orders: dict[int, RefOrder] = field(default_factory=dict)
    client_ids: set[tuple[str, str]] = field(default_factory=set)
    last_order_id: int = 0
    clock: int = 0
    restricted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.band = band(self.previous_close_fen, LISTED, rules=self.rules)

    # -- helpers ----------------------------------------------------------------------------

    def priority(self, order: RefOrder) -> tuple[int, int]:
        price = order.price or 0
        return (-price if order.side == "buy" else price, order.arrival)

    def crossing(self, taker: RefOrder, limit: int) -> list[RefOrder]:
        if taker.side == "buy":
            found = [o for o in self.resting if o.side == "sell" and (o.price or 0) <= limit]
        else:
            found = [o for o in self.resting if o.side == "buy" and (o.price or 0) >= limit]
        return sorted(found, key=self.priority)

    def end(self, order: RefOrder, state: str, reason: str, out: list[tuple[Any, ...]]) -> None:
        if order in self.resting:
            self.resting.remove(order)
        out.append(("cancelled" if state == "cancelled" else "expired", order.order_id, order.remaining, reason))
        order.cancelled += order.remaining
        order.remaining = 0
        order.state = state
        order.reason = reason

    def match(self, taker: RefOrder, limit: int, out: list[tuple[Any, ...]]) -> None:
        while taker.remaining:
            candidates = self.crossing(taker, limit)
            if not candidates:
                break
            maker = candidates[0]
            if maker.account_id == taker.account_id:
                self.end(maker, "cancelled", "self_trade_prevention", out)
                continue
            quantity = min(taker.remaining, maker.remaining)
            for order in (taker, maker):
                order.remaining -= quantity
                order.filled += quantity
                order.state = "filled" if order.remaining == 0 else "partially_filled"
            if maker.remaining == 0:
                self.resting.remove(maker)
            buy, sell = (taker, maker) if taker.side == "buy" else (maker, taker)
            out.append(("trade", maker.price, quantity, buy.order_id, sell.order_id))

    def rest(self, order: RefOrder) -> None:
        self.clock += 1
        order.arrival = self.clock
        self.resting.append(order)

    # -- commands ---------------------------------------------------------------------------

    def apply(self, command: ex.Command) -> list[tuple[Any, ...]]:  # noqa: C901 - one flat branch per command
        out: list[tuple[Any, ...]] = []
        if isinstance(command, ex.PlaceOrder):
            self.place(command, out)
        elif isinstance(command, ex.CancelOrder):
            order = self.own_open(command.account_id, command.order_id, out)
            if order is not None:
                self.end(order, "cancelled", "cancelled_by_trader", out)
        elif isinstance(command, ex.ReplaceOrder):
            self.replace(command, out)
        elif isinstance(command, ex.Halt):
            self.halted = True
        elif isinstance(command, ex.Resume):
            self.halted = False
        elif isinstance(command, ex.OpenDay):
            self.band = band(command.previous_close_fen, LISTED, rules=self.rules)
            for order in sorted(self.resting, key=lambda o: o.order_id):
                if not self.band.low_fen <= (order.price or 0) <= self.band.high_fen:
                    self.end(order, "expired", "outside_band", out)
        elif isinstance(command, ex.CloseDay):
            for order in sorted(self.resting, key=lambda o: o.order_id):
                self.end(order, "expired", "end_of_day", out)
        elif isinstance(command, ex.RestrictAccount):
            if command.account_id in self.restricted:
                out.append(("rejected", "already_restricted", None))
            else:
                self.restricted.add(command.account_id)
                out.append(("restriction", command.account_id, True))
        elif isinstance(command, ex.LiftRestriction):
            if command.account_id not in self.restricted:
                out.append(("rejected", "not_restricted", None))
            else:
                self.restricted.remove(command.account_id)
                out.append(("restriction", command.account_id, False))
        return out

    def place(self, command: ex.PlaceOrder, out: list[tuple[Any, ...]]) -> None:  # noqa: C901 - kept flat on purpose
        code = session_rejection(command.at, rules=self.rules, halted=self.halted)
        if code is None and command.account_id in self.restricted:
            code = "account_restricted"
        if code is None and (command.account_id, command.client_order_id) in self.client_ids:
            code = "duplicate_client_order_id"
        if code is None and command.price_fen is not None:
            code = price_rejection(command.price_fen, price_band=self.band, rules=self.rules)
        if code is None:
            code = quantity_rejection(command.quantity_t, LISTED, rules=self.rules)
        cap = self.rules.max_open_orders
        if (code is None and cap is not None and command.order_type == "limit" and command.time_in_force == "day"
                and sum(1 for o in self.resting if o.account_id == command.account_id) >= cap):
            code = "open_order_cap"  # only orders that may rest are capped; resting orders are the open ones
        if code is not None:
            out.append(("rejected", code, None))
            return
        self.client_ids.add((command.account_id, command.client_order_id))
        self.last_order_id += 1
        order = RefOrder(order_id=self.last_order_id, account_id=command.account_id,
                         client_order_id=command.client_order_id, side=command.side, order_type=command.order_type,
                         time_in_force=command.time_in_force, price=command.price_fen, ordered=command.quantity_t,
                         remaining=command.quantity_t)
        self.orders[order.order_id] = order
        out.append(("accepted", order.order_id))
        if order.price is not None:
            limit = order.price
        else:
            limit = self.band.high_fen if order.side == "buy" else self.band.low_fen
        if order.time_in_force == "fok":
            others = [o for o in self.crossing(order, limit) if o.account_id != order.account_id]
            if sum(o.remaining for o in others) < order.remaining:
                self.end(order, "expired", "fok_unfilled", out)
                return
        self.match(order, limit, out)
        if order.remaining == 0:
            return
        if order.order_type == "market":
            self.end(order, "cancelled", "market_remainder", out)
        elif order.time_in_force != "day":
            self.end(order, "expired", "ioc_remainder", out)
        else:
            self.rest(order)

    def own_open(self, account_id: str, order_id: int, out: list[tuple[Any, ...]]) -> RefOrder | None:
        order = self.orders.get(order_id)
        if order is None:
            out.append(("rejected", "unknown_order", order_id))
        elif order.account_id != account_id:
            out.append(("rejected", "not_own_order", order_id))
        elif order not in self.resting:
            out.append(("rejected", "order_not_open", order_id))
        else:
            return order
        return None

    def replace(self, command: ex.ReplaceOrder, out: list[tuple[Any, ...]]) -> None:
        order = self.own_open(command.account_id, command.order_id, out)
        if order is None:
            return
        code = (session_rejection(command.at, rules=self.rules, halted=self.halted)
                or ("account_restricted" if command.account_id in self.restricted else None)
                or price_rejection(command.price_fen, price_band=self.band, rules=self.rules)
                or quantity_rejection(command.quantity_t, LISTED, rules=self.rules))
        if code is not None:
            out.append(("rejected", code, order.order_id))
            return
        if command.price_fen == order.price and command.quantity_t <= order.remaining:
            order.cancelled += order.remaining - command.quantity_t
            order.remaining = command.quantity_t
            out.append(("replaced", order.order_id, order.price, order.remaining, True))
            return
        self.resting.remove(order)
        if command.quantity_t > order.remaining:
            order.ordered += command.quantity_t - order.remaining
        else:
            order.cancelled += order.remaining - command.quantity_t
        order.remaining = command.quantity_t
        order.price = command.price_fen
        out.append(("replaced", order.order_id, order.price, order.remaining, False))
        self.match(order, order.price, out)
        if order.remaining:
            self.rest(order)

    # -- read side --------------------------------------------------------------------------

    def book(self) -> tuple[tuple[tuple[int, str, int, int], ...], tuple[tuple[int, str, int, int], ...]]:
        def side(name: str) -> tuple[tuple[int, str, int, int], ...]:
            ordered = sorted((o for o in self.resting if o.side == name), key=self.priority)
            return tuple((o.order_id, o.account_id, o.price or 0, o.remaining) for o in ordered)
        return side("buy"), side("sell")

    def statuses(self) -> list[tuple[Any, ...]]:
        return [(o.order_id, o.state, o.reason, o.ordered, o.filled, o.remaining, o.cancelled)
                for o in sorted(self.orders.values(), key=lambda o: o.order_id)]


def project(events: tuple[ex.Event, ...]) -> list[tuple[Any, ...]]:
    """The engine's events as the reference's tuples (book changes and status changes left out)."""
    out: list[tuple[Any, ...]] = []
    for event in events:
        if isinstance(event, ex.OrderAccepted):
            out.append(("accepted", event.order_id))
        elif isinstance(event, ex.OrderRejected):
            out.append(("rejected", event.code, event.order_id))
        elif isinstance(event, ex.TradeExecuted):
            out.append(("trade", event.price_fen, event.quantity_t, event.buy_order_id, event.sell_order_id))
        elif isinstance(event, ex.OrderCancelled):
            out.append(("cancelled", event.order_id, event.quantity_t, event.reason))
        elif isinstance(event, ex.OrderExpired):
            out.append(("expired", event.order_id, event.quantity_t, event.reason))
        elif isinstance(event, ex.OrderReplaced):
            out.append(("replaced", event.order_id, event.price_fen, event.quantity_t, event.priority_kept))
        elif isinstance(event, ex.AccountRestrictionChanged):
            out.append(("restriction", event.account_id, event.restricted))
    return out


def engine_book(engine: ex.MatchingEngine) -> tuple[tuple[tuple[int, str, int, int], ...], ...]:
    """The engine's book in the reference's shape."""
    snapshot = engine.book()
    return tuple(tuple((o.order_id, o.account_id, o.price_fen, o.remaining_t) for o in side)
                 for side in (snapshot.bids, snapshot.asks))


def engine_statuses(engine: ex.MatchingEngine) -> list[tuple[Any, ...]]:
    """The engine's order statuses in the reference's shape."""
    return [(s.order_id, s.state, s.reason, s.ordered_t, s.filled_t, s.remaining_t, s.cancelled_t)
            for s in engine.orders()]

"""Trading agents of the exchange rehearsal (``carbon simulate``): pure decisions, no I/O.

An agent looks at a :class:`MarketView` (today's band, the previous close, the touch, how far the
rehearsal has gone) and its :class:`Position` (units, cash, open orders) and answers the actions it
takes this round: :class:`Place`, :class:`Cancel`, :class:`Replace`. The simulation sends those
actions through the API and tells the agent what came of them in the next round's position; the agent
never calls anything. Every random choice comes from the agent's own seeded ``random.Random``, so the
same seed and the same views give the same actions.

Two kinds of agent:

* :class:`ComplianceAgent`, an enterprise with an obligation (its verified emissions, t) and
  holdings. A **deficit** buys; a **surplus** sells. Its limit prices come from its marginal
  abatement cost curve (:class:`AbatementCurve`, fen per tonne): a tonne bought replaces the most
  expensive tonne it would otherwise have to abate, so a bid never exceeds the marginal abatement
  cost of the tonnes it replaces; a surplus is sold no lower than the value of keeping a unit (the
  cost of abating the first tonne). As the rehearsal nears its end the agent bids closer to that
  limit (and takes the best offer when it is below it); every price stays inside today's band.
* :class:`TraderAgent`, a pilot trader: a **noise** trader posts limit orders on either side near the
  middle, sometimes a market order, and cancels some of its resting orders; a **mean-reversion**
  trader buys when the market sits below the previous close and sells when it sits above.

Money is ``int`` fen, quantities ``int`` tonnes; a price is never a float. The rehearsal's progress
is the fraction ``step / steps`` of whole rounds, applied in integer arithmetic.

>>> curve = AbatementCurve(base_fen=4000, slope_fen_per_kt=100)
>>> curve.marginal_cost_fen(5_000)  # 4000 + 100 x 5 kt
4500
>>> view = MarketView(band=PriceBand(low_fen=4500, high_fen=5500), previous_close_fen=5000, step=0, steps=10)
>>> agent = ComplianceAgent(account_id="CA-1", obligation_t=30_000, curve=AbatementCurve(base_fen=5200,
...                         slope_fen_per_kt=50), rng=random.Random(1))
>>> [a.side for a in agent.decide(view, Position(holdings_t=20_000, sellable_t=20_000, cash_fen=10**10))]
['buy']
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from accounting.exchange import BUY, DAY, IOC, SELL
from accounting.market_rules import BP, PriceBand
from accounting.settlement import buy_hold_fen

#: A listed order is below the block minimum (100,000 t by default).
MAX_LISTED_T = 99_999
NOISE = "noise"
MEAN_REVERSION = "mean_reversion"
TRADER_STYLES = (NOISE, MEAN_REVERSION)


# -- what an agent sees, holds and does ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketView:
    """The market as an agent sees it at the start of a round.

    ``step`` counts rounds over the whole rehearsal (0 first), ``steps`` is their number.
    """

    band: PriceBand
    previous_close_fen: int
    best_bid_fen: int | None = None
    best_ask_fen: int | None = None
    step: int = 0
    steps: int = 1

    @property
    def mid_fen(self) -> int:
        """The middle of the touch; one side's best, or the previous close, when the book is thin."""
        if self.best_bid_fen is not None and self.best_ask_fen is not None:
            return (self.best_bid_fen + self.best_ask_fen) // 2
        if self.best_bid_fen is not None:
            return self.best_bid_fen
        if self.best_ask_fen is not None:
            return self.best_ask_fen
        return self.previous_close_fen

    @property
    def steps_left(self) -> int:
        """Rounds left, this one included (at least one)."""
        return max(1, self.steps - self.step)

    def clip(self, price_fen: int) -> int:
        """``price_fen`` moved inside today's band."""
        return min(max(price_fen, self.band.low_fen), self.band.high_fen)

    def progressed(self, low_fen: int, high_fen: int) -> int:
        """The price ``step / steps`` of the way from ``low_fen`` to ``high_fen`` (integer arithmetic)."""
        return low_fen + (high_fen - low_fen) * self.step // max(1, self.steps - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenOrder:
    """One of the agent's resting orders."""

    order_id: int
    side: str
    price_fen: int
    remaining_t: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """What an agent holds now.

    ``holdings_t`` counts every unit it owns (those its open sells hold too); ``sellable_t`` what it may
    still offer now: not held by an open sell, not bought today (T+1); ``cash_fen`` the cash its open buys
    do not hold.
    """

    holdings_t: int
    sellable_t: int
    cash_fen: int
    open_orders: tuple[OpenOrder, ...] = ()

    def open_t(self, side: str) -> int:
        """Tonnes still open on ``side``."""
        return sum(o.remaining_t for o in self.open_orders if o.side == side)


@dataclass(frozen=True, slots=True, kw_only=True)
class Place:
    """Place an order; ``price_fen=None`` is a market order (within the band, the remainder cancelled)."""

    side: str
    quantity_t: int
    price_fen: int | None
    time_in_force: str = DAY

    @property
    def order_type(self) -> str:
        return "market" if self.price_fen is None else "limit"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel:
    """Cancel the open remainder of a resting order."""

    order_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Replace:
    """Cancel-replace a resting order with a new price and open quantity."""

    order_id: int
    price_fen: int
    quantity_t: int


Action = Place | Cancel | Replace


def affordable_t(cash_fen: int, price_fen: int, fee_bp: int) -> int:
    """The most tonnes a buy at ``price_fen`` can hold for with ``cash_fen`` (price x quantity and the fee).

    >>> affordable_t(1_001_000, 5000, 10)  # 200 t hold 1,000,000 fen + a 1,000 fen fee
    200
    """
    if price_fen <= 0 or cash_fen <= 0:
        return 0
    quantity = cash_fen * BP // (price_fen * (BP + fee_bp))
    while quantity > 0 and buy_hold_fen(price_fen, quantity, fee_bp) > cash_fen:
        quantity -= 1
    return quantity


def _percent(rng: random.Random, chance: int) -> bool:
    """True with ``chance`` percent probability."""
    return rng.randrange(100) < chance


# -- compliance enterprises -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AbatementCurve:
    """A linear marginal abatement cost curve: abating the ``q``-th tonne costs ``base + slope x q / 1000`` fen."""

    base_fen: int
    slope_fen_per_kt: int

    def marginal_cost_fen(self, abated_t: int) -> int:
        """The cost of abating one more tonne once ``abated_t`` tonnes are abated (fen, rounded down)."""
        return self.base_fen + self.slope_fen_per_kt * max(abated_t, 0) // 1000


@dataclass(slots=True, kw_only=True)
class ComplianceAgent:
    """An enterprise that covers its obligation on the market, or sells what it will not need.

    A deficit not yet covered by holdings or open bids is bought over the rounds left, a slice a round;
    the bid for a slice is at most the marginal abatement cost of the tonnes the slice replaces. A
    surplus is offered a slice a round at no less than the cost of abating the first tonne.
    """

    account_id: str
    obligation_t: int
    curve: AbatementCurve
    rng: random.Random
    fee_bp: int = 0
    #: Percent chance a round to re-price its oldest resting order when the market has moved.
    reprice_pct: int = 40

    def need_t(self, position: Position) -> int:
        """Tonnes still to buy (positive) or spare (negative), before open orders."""
        return self.obligation_t - position.holdings_t

    def bid_limit_fen(self, *, uncovered_t: int, slice_t: int) -> int:
        """The most it pays a tonne for ``slice_t`` of ``uncovered_t``: the MAC of the cheapest tonne replaced."""
        return self.curve.marginal_cost_fen(uncovered_t - slice_t)

    def ask_floor_fen(self) -> int:
        """The least it takes for a spare unit: what abating the first tonne would cost."""
        return self.curve.base_fen

    def decide(self, view: MarketView, position: Position) -> list[Action]:
        need = self.need_t(position)
        if need > 0:
            return self._buy(view, position, need)
        if need < 0:
            return self._sell(view, position, -need)
        return []

    def _slice(self, uncovered_t: int, view: MarketView) -> int:
        even = -(-uncovered_t // view.steps_left)  # ceiling: the last round buys what is left
        jittered = even * self.rng.randint(50, 150) // 100
        return max(1, min(uncovered_t, jittered, MAX_LISTED_T))

    def _buy(self, view: MarketView, position: Position, need_t: int) -> list[Action]:
        bids = [o for o in position.open_orders if o.side == BUY]
        actions: list[Action] = [Cancel(order_id=o.order_id) for o in position.open_orders if o.side == SELL]
        uncovered = need_t - sum(o.remaining_t for o in bids)
        cash = position.cash_fen
        if bids and _percent(self.rng, self.reprice_pct):
            oldest = bids[0]
            limit = self.bid_limit_fen(uncovered_t=uncovered + oldest.remaining_t, slice_t=oldest.remaining_t)
            price = self._bid_price(view, limit)
            extra = 0 if price is None else (buy_hold_fen(price, oldest.remaining_t, self.fee_bp)
                                             - buy_hold_fen(oldest.price_fen, oldest.remaining_t, self.fee_bp))
            if price is not None and price > oldest.price_fen and extra <= cash:
                actions.append(Replace(order_id=oldest.order_id, price_fen=price, quantity_t=oldest.remaining_t))
                cash -= extra
        if uncovered <= 0:
            return actions
        quantity = self._slice(uncovered, view)
        price = self._bid_price(view, self.bid_limit_fen(uncovered_t=uncovered, slice_t=quantity))
        if price is None:
            return actions  # abating is cheaper than anything the band allows
        quantity = min(quantity, affordable_t(cash, price, self.fee_bp))
        if quantity > 0:
            actions.append(Place(side=BUY, quantity_t=quantity, price_fen=price))
        return actions

    def _bid_price(self, view: MarketView, limit_fen: int) -> int | None:
        """Where to bid under ``limit_fen``: from below the close towards the limit as the rehearsal runs out;
        the best offer when it is within reach. ``None`` when the limit is below the band."""
        if limit_fen < view.band.low_fen:
            return None
        ceiling = min(limit_fen, view.band.high_fen)
        if view.best_ask_fen is not None and view.best_ask_fen <= ceiling and _percent(
                self.rng, 20 + 60 * view.step // max(1, view.steps - 1)):
            return view.best_ask_fen
        opening = min(view.previous_close_fen, view.mid_fen) * self.rng.randint(97, 100) // 100
        return view.clip(min(ceiling, view.progressed(min(opening, ceiling), ceiling)))

    def _sell(self, view: MarketView, position: Position, spare_t: int) -> list[Action]:
        asks = [o for o in position.open_orders if o.side == SELL]
        actions: list[Action] = [Cancel(order_id=o.order_id) for o in position.open_orders if o.side == BUY]
        floor = self.ask_floor_fen()
        if floor > view.band.high_fen:
            return actions  # keeps its spare units: the band allows no price worth selling at
        if asks and _percent(self.rng, self.reprice_pct):
            oldest = asks[0]
            price = self._ask_price(view, floor)
            if price < oldest.price_fen:
                actions.append(Replace(order_id=oldest.order_id, price_fen=price, quantity_t=oldest.remaining_t))
        unoffered = min(spare_t - sum(o.remaining_t for o in asks), position.sellable_t)
        if unoffered <= 0:
            return actions
        quantity = self._slice(unoffered, view)
        actions.append(Place(side=SELL, quantity_t=quantity, price_fen=self._ask_price(view, floor)))
        return actions

    def _ask_price(self, view: MarketView, floor_fen: int) -> int:
        """Where to offer above ``floor_fen``: from above the close down towards the floor as time runs out;
        the best bid when it pays at least the floor."""
        bottom = max(floor_fen, view.band.low_fen)
        if view.best_bid_fen is not None and view.best_bid_fen >= bottom and _percent(
                self.rng, 20 + 60 * view.step // max(1, view.steps - 1)):
            return view.clip(view.best_bid_fen)  # a bid left outside a band changed since it was placed
        opening = max(view.previous_close_fen, view.mid_fen) * self.rng.randint(100, 103) // 100
        return view.clip(max(bottom, view.progressed(max(opening, bottom), bottom)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ComplianceProfile:
    """A compliance agent's seeded setup: its obligation, what it was allocated, its abatement cost curve."""

    enterprise_id: str
    obligation_t: int
    allocated_t: int
    curve: AbatementCurve


def compliance_profiles(enterprises: list[tuple[str, bool]], *, seed: int,
                        reference_price_fen: int) -> list[ComplianceProfile]:
    """Seeded obligations and curves for ``(enterprise id, is a key emitter)`` pairs, in that order.

    A key emitter's obligation is 100-600 kt, another's 5-60 kt (verified emissions stand-ins: a
    rehearsal has no verified year); the allocation is 85-115 % of it, so some are short and some
    long. The cost of the first abated tonne is 60-130 % of the reference price, rising 20-200 fen per
    thousand tonnes abated.

    >>> [p.enterprise_id for p in compliance_profiles([("A", True), ("B", False)], seed=1,
    ...                                               reference_price_fen=5000)]
    ['A', 'B']
    """
    rng = random.Random(f"profiles:{seed}")  # noqa: S311 - a rehearsal's randomness, not a secret
    profiles = []
    for enterprise_id, key_emitter in enterprises:
        obligation = rng.randint(100_000, 600_000) if key_emitter else rng.randint(5_000, 60_000)
        allocated = obligation * rng.randint(85, 115) // 100
        curve = AbatementCurve(base_fen=reference_price_fen * rng.randint(60, 130) // 100,
                               slope_fen_per_kt=rng.randint(20, 200))
        profiles.append(ComplianceProfile(enterprise_id=enterprise_id, obligation_t=obligation,
                                          allocated_t=allocated, curve=curve))
    return profiles


# -- pilot traders ------------------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class TraderAgent:
    """A noise or mean-reversion trader: posts and cancels limit orders near the middle, some market orders."""

    account_id: str
    style: str
    rng: random.Random
    fee_bp: int = 0
    activity_pct: int = 70
    cancel_pct: int = 30
    market_pct: int = 10
    ioc_pct: int = 5
    max_order_t: int = 500
    max_open: int = 6
    #: Price steps of its quotes (fen); the mean-reversion threshold is a few of these.
    step_fen: int = 5

    def __post_init__(self) -> None:
        if self.style not in TRADER_STYLES:
            raise ValueError(f"a trader's style is one of {TRADER_STYLES}, not {self.style!r}")

    def decide(self, view: MarketView, position: Position) -> list[Action]:
        actions: list[Action] = [Cancel(order_id=o.order_id) for o in position.open_orders
                                 if _percent(self.rng, self.cancel_pct)]
        still_open = len(position.open_orders) - len(actions)
        if still_open >= self.max_open:
            cancelled = {a.order_id for a in actions if isinstance(a, Cancel)}
            oldest = next(o for o in position.open_orders if o.order_id not in cancelled)
            actions.append(Cancel(order_id=oldest.order_id))
        if not _percent(self.rng, self.activity_pct):
            return actions
        side = self._side(view)
        quantity = self.rng.randint(1, self.max_order_t)
        price: int | None = None if _percent(self.rng, self.market_pct) else self._price(view, side)
        tif = IOC if price is not None and _percent(self.rng, self.ioc_pct) else DAY
        if side == SELL:
            quantity = min(quantity, position.sellable_t)
        else:
            quantity = min(quantity, affordable_t(position.cash_fen, view.band.high_fen if price is None else price,
                                                  self.fee_bp))
        if quantity > 0:
            actions.append(Place(side=side, quantity_t=quantity, price_fen=price, time_in_force=tif))
        return actions

    def _side(self, view: MarketView) -> str:
        if self.style == MEAN_REVERSION:
            gap = view.mid_fen - view.previous_close_fen
            if gap <= -3 * self.step_fen:
                return BUY
            if gap >= 3 * self.step_fen:
                return SELL
        return BUY if self.rng.randrange(2) == 0 else SELL

    def _price(self, view: MarketView, side: str) -> int:
        """Near the middle: mostly behind it on its own side, sometimes across it (a marketable limit)."""
        anchor = view.previous_close_fen if self.style == MEAN_REVERSION else view.mid_fen
        offset = self.rng.randint(-2, 8) * self.step_fen
        price = anchor - offset if side == BUY else anchor + offset
        return view.clip(price)


def trader_styles(count: int, *, seed: int) -> list[str]:
    """Seeded styles for ``count`` traders: about a third mean-reversion, the rest noise.

    >>> trader_styles(3, seed=1) == trader_styles(3, seed=1)
    True
    """
    rng = random.Random(f"traders:{seed}")  # noqa: S311 - a rehearsal's randomness, not a secret
    return [MEAN_REVERSION if rng.randrange(3) == 0 else NOISE for _ in range(count)]


def agent_rng(seed: int, account_id: str) -> random.Random:
    """The agent's own random stream: the same for the same seed and account, whatever else runs."""
    return random.Random(f"agent:{seed}:{account_id}")  # noqa: S311 - a rehearsal's randomness, not a secret


@dataclass(slots=True)
class Shuffler:
    """The order in which agents act each round, seeded."""

    seed: int
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"order:{self.seed}")  # noqa: S311 - a rehearsal's randomness, not a secret

    def order(self, count: int) -> list[int]:
        indexes = list(range(count))
        self.rng.shuffle(indexes)
        return indexes

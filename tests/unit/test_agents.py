"""The rehearsal's agents (``accounting.agents``): what they decide from a view of the market and a position.

A deficit bids, never above the marginal abatement cost of the tonnes it buys and never outside the band;
a deficit whose abatement is cheaper than the whole band does not bid; a surplus offers what it will not
need, never below the value of keeping a unit; traders stay inside the band and inside what they hold;
the same seed gives the same actions.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from accounting.agents import (
    MAX_LISTED_T,
    MEAN_REVERSION,
    NOISE,
    AbatementCurve,
    Cancel,
    ComplianceAgent,
    MarketView,
    OpenOrder,
    Place,
    Position,
    Replace,
    TraderAgent,
    affordable_t,
    compliance_profiles,
    trader_styles,
)
from accounting.exchange import BUY, SELL
from accounting.market_rules import PriceBand
from accounting.settlement import buy_hold_fen

BAND = PriceBand(low_fen=4500, high_fen=5500)
RICH = 10**12


def view(*, step: int = 0, steps: int = 10, bid: int | None = None, ask: int | None = None,
         band: PriceBand = BAND, close: int = 5000) -> MarketView:
    return MarketView(band=band, previous_close_fen=close, best_bid_fen=bid, best_ask_fen=ask, step=step, steps=steps)


def enterprise(*, obligation_t: int = 30_000, base_fen: int = 5200, slope: int = 50, seed: int = 1) -> ComplianceAgent:
    return ComplianceAgent(account_id="CA-1", obligation_t=obligation_t, rng=random.Random(seed), fee_bp=10,
                           curve=AbatementCurve(base_fen=base_fen, slope_fen_per_kt=slope))


def places(actions: list[object]) -> list[Place]:
    return [a for a in actions if isinstance(a, Place)]


def test_a_deficit_bids_for_part_of_it_inside_the_band() -> None:
    agent = enterprise()
    [bid] = places(agent.decide(view(), Position(holdings_t=20_000, sellable_t=20_000, cash_fen=RICH)))
    assert bid.side == BUY
    assert 1 <= bid.quantity_t <= 10_000
    assert BAND.low_fen <= bid.price_fen <= BAND.high_fen  # type: ignore[operator]


def test_a_deficit_whose_abatement_is_cheaper_than_the_band_does_not_bid() -> None:
    agent = enterprise(base_fen=4000, slope=10)  # abating its whole 10 kt gap costs at most 40.10 CNY a tonne
    assert agent.decide(view(step=9), Position(holdings_t=20_000, sellable_t=20_000, cash_fen=RICH)) == []


def test_a_deficit_never_bids_above_its_marginal_abatement_cost_nor_above_the_band() -> None:
    for seed in range(200):
        rng = random.Random(seed)
        agent = enterprise(base_fen=rng.randint(3000, 7000), slope=rng.randint(0, 400), seed=seed)
        close = rng.randint(3000, 7000)
        band = PriceBand(low_fen=close * 9 // 10, high_fen=close * 11 // 10)
        ask = rng.choice([None, rng.randint(band.low_fen, band.high_fen)])
        bids = [OpenOrder(order_id=1, side=BUY, price_fen=band.low_fen, remaining_t=rng.randint(1, 3000))]
        position = Position(holdings_t=rng.randint(0, 29_000), sellable_t=0, cash_fen=RICH,
                            open_orders=tuple(bids[: rng.randrange(2)]))
        seen = view(step=rng.randrange(10), ask=ask, band=band, close=close)
        uncovered = agent.obligation_t - position.holdings_t - position.open_t(BUY)
        for action in agent.decide(seen, position):
            assert not isinstance(action, Cancel)  # it has no sells to cancel
            if isinstance(action, Place):
                assert action.side == BUY and action.price_fen is not None
                assert band.low_fen <= action.price_fen <= band.high_fen
                # the tonnes bought replace the most expensive ones it would abate: the cheapest of those
                assert action.price_fen <= agent.curve.marginal_cost_fen(uncovered - action.quantity_t), seed
                assert 1 <= action.quantity_t <= min(uncovered, MAX_LISTED_T)
            if isinstance(action, Replace):
                assert band.low_fen <= action.price_fen <= band.high_fen
                assert action.price_fen <= agent.curve.marginal_cost_fen(uncovered), seed


@given(holdings=st.integers(0, 40_000), cash=st.integers(0, 10**9), close=st.integers(1000, 9000),
       bid=st.none() | st.integers(0, 300), ask=st.none() | st.integers(0, 300), step=st.integers(0, 19),
       base=st.integers(500, 12_000), slope=st.integers(0, 1000), seed=st.integers(0, 10**6))
def test_a_compliance_agent_stays_in_the_band_its_cash_and_its_units(holdings: int, cash: int, close: int,
                                                                     bid: int | None, ask: int | None, step: int,
                                                                     base: int, slope: int, seed: int) -> None:
    band = PriceBand(low_fen=close * 9 // 10, high_fen=close * 11 // 10)
    agent = enterprise(base_fen=base, slope=slope, seed=seed)
    seen = view(step=step, steps=20, band=band, close=close, bid=None if bid is None else band.low_fen + bid,
                ask=None if ask is None else band.low_fen + ask)
    position = Position(holdings_t=holdings, sellable_t=holdings, cash_fen=cash)
    for action in places(agent.decide(seen, position)):
        assert action.price_fen is not None and band.low_fen <= action.price_fen <= band.high_fen
        if action.side == BUY:
            assert holdings < agent.obligation_t
            assert buy_hold_fen(action.price_fen, action.quantity_t, agent.fee_bp) <= cash
        else:
            assert holdings > agent.obligation_t
            assert action.quantity_t <= holdings - agent.obligation_t
            assert action.price_fen >= agent.curve.base_fen


def test_a_surplus_offers_what_it_will_not_need_and_no_lower_than_keeping_it_is_worth() -> None:
    agent = enterprise(obligation_t=30_000, base_fen=4800)
    actions = agent.decide(view(step=9, bid=4700), Position(holdings_t=36_000, sellable_t=36_000, cash_fen=0))
    [offer] = places(actions)
    assert offer.side == SELL
    assert 1 <= offer.quantity_t <= 6_000
    assert offer.price_fen is not None and 4800 <= offer.price_fen <= BAND.high_fen  # not the 47.00 bid


def test_a_surplus_does_not_offer_what_its_open_asks_already_offer() -> None:
    agent = enterprise(obligation_t=30_000, base_fen=4800)
    asks = (OpenOrder(order_id=7, side=SELL, price_fen=5100, remaining_t=6_000),)
    actions = agent.decide(view(), Position(holdings_t=36_000, sellable_t=30_000, cash_fen=0, open_orders=asks))
    assert places(actions) == []


def test_a_covered_enterprise_does_nothing() -> None:
    assert enterprise().decide(view(), Position(holdings_t=30_000, sellable_t=30_000, cash_fen=RICH)) == []


def test_the_same_seed_gives_the_same_actions_and_another_seed_others() -> None:
    def run(seed: int) -> list[list[object]]:
        agent = enterprise(seed=seed)
        trader = TraderAgent(account_id="TR-1", style=NOISE, rng=random.Random(seed))
        out: list[list[object]] = []
        for step in range(10):
            seen = view(step=step, bid=4950 + step, ask=5050 - step)
            out.append([*agent.decide(seen, Position(holdings_t=20_000, sellable_t=20_000, cash_fen=RICH)),
                        *trader.decide(seen, Position(holdings_t=1_000, sellable_t=1_000, cash_fen=RICH))])
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_a_trader_stays_inside_the_band_its_units_and_its_cash() -> None:
    for seed in range(300):
        trader = TraderAgent(account_id="TR-1", style=NOISE if seed % 2 else MEAN_REVERSION, rng=random.Random(seed),
                             fee_bp=10)
        position = Position(holdings_t=50, sellable_t=seed % 40, cash_fen=seed * 40_000)
        for action in places(trader.decide(view(bid=4990, ask=5010), position)):
            if action.price_fen is not None:
                assert BAND.low_fen <= action.price_fen <= BAND.high_fen
            if action.side == SELL:
                assert action.quantity_t <= position.sellable_t
            else:  # a market buy holds at the top of the band
                price = action.price_fen or BAND.high_fen
                assert buy_hold_fen(price, action.quantity_t, 10) <= position.cash_fen


def test_a_mean_reversion_trader_buys_below_the_close_and_sells_above_it() -> None:
    position = Position(holdings_t=1_000, sellable_t=1_000, cash_fen=RICH)
    for seed in range(50):
        trader = TraderAgent(account_id="TR-1", style=MEAN_REVERSION, rng=random.Random(seed), activity_pct=100)
        assert {a.side for a in places(trader.decide(view(bid=4800, ask=4820), position))} <= {BUY}
        assert {a.side for a in places(trader.decide(view(bid=5180, ask=5200), position))} <= {SELL}


def test_a_trader_at_its_cap_of_open_orders_cancels_one() -> None:
    resting = tuple(OpenOrder(order_id=i, side=BUY, price_fen=4990, remaining_t=10) for i in range(1, 7))
    trader = TraderAgent(account_id="TR-1", style=NOISE, rng=random.Random(3), cancel_pct=0, max_open=6)
    actions = trader.decide(view(), Position(holdings_t=0, sellable_t=0, cash_fen=RICH, open_orders=resting))
    assert Cancel(order_id=1) in actions


def test_profiles_are_seeded_and_long_and_short_come_out_of_the_allocation() -> None:
    enterprises = [(f"E{i}", i % 5 == 0) for i in range(40)]
    first = compliance_profiles(enterprises, seed=3, reference_price_fen=5000)
    assert first == compliance_profiles(enterprises, seed=3, reference_price_fen=5000)
    assert first != compliance_profiles(enterprises, seed=4, reference_price_fen=5000)
    for profile in first:
        assert profile.obligation_t * 85 // 100 <= profile.allocated_t <= profile.obligation_t * 115 // 100
        assert 3000 <= profile.curve.base_fen <= 6500
    assert any(p.allocated_t < p.obligation_t for p in first) and any(p.allocated_t > p.obligation_t for p in first)
    assert trader_styles(10, seed=3) == trader_styles(10, seed=3)


def test_affordable_is_the_most_the_cash_holds_for() -> None:
    for cash in (0, 1, 5009, 5010, 1_001_000, 1_001_001, 987_654_321):
        quantity = affordable_t(cash, 5000, 10)
        assert buy_hold_fen(5000, quantity, 10) <= cash if quantity else True
        assert buy_hold_fen(5000, quantity + 1, 10) > cash

"""The market rules and the matching core: hand-written cases per rule, differential and property tests.

The differential test runs seeded random command streams (limit, market, IOC, FOK, cancel,
cancel-replace, several accounts, self-trades, rejections, officers' day changes, account restrictions,
with and without a cap on open orders) through the engine
and through the obviously right reference matcher (``tests/reference/matcher.py``) and requires the
same events, order statuses and book after every command. The Hypothesis tests check the issue's
invariants after every command: no crossed book at rest, fills within band and on tick, price-time
priority, quantity conservation, and replay determinism.
"""

from __future__ import annotations

import random
from dataclasses import FrozenInstanceError
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mypy import api as mypy_api

from accounting import exchange as ex
from accounting.exchange import BUY, FOK, IOC, MARKET, SELL, MatchingEngine
from accounting.market_rules import (
    BLOCK,
    CHINA_TZ,
    LISTED,
    InstrumentRules,
    MarketRuleError,
    PriceBand,
    Session,
    SimulationClock,
    TradingCalendar,
    band,
    check_open,
    check_price,
    check_quantity,
    is_open,
    next_open,
)
from tests.reference.matcher import ReferenceMatcher, engine_book, engine_statuses, project

RULES = InstrumentRules(instrument="CEA-2025")
CLOSE = 5000  # CNY 50.00
AT = datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ)  # Monday, morning session


def engine(rules: InstrumentRules = RULES) -> MatchingEngine:
    return MatchingEngine(rules=rules, previous_close_fen=CLOSE)


def place(account: str, cid: str, side: str, qty: int, price: int | None = None, *, kind: str = ex.LIMIT,
          tif: str = ex.DAY, at: datetime = AT) -> ex.PlaceOrder:
    return ex.PlaceOrder(account_id=account, client_order_id=cid, side=side, quantity_t=qty, price_fen=price,
                         order_type=kind, time_in_force=tif, at=at)


def kinds(events: tuple[ex.Event, ...]) -> list[str]:
    return [type(e).__name__ for e in events]


def trades(events: tuple[ex.Event, ...]) -> list[tuple[int, int, int, int]]:
    return [(e.price_fen, e.quantity_t, e.buy_order_id, e.sell_order_id)
            for e in events if isinstance(e, ex.TradeExecuted)]


def rejection(events: tuple[ex.Event, ...]) -> str:
    assert len(events) == 1 and isinstance(events[0], ex.OrderRejected), events
    return events[0].code


# ---------------------------------------------------------------------------------------------
# Market rules


def test_the_listed_band_is_ten_percent_and_the_block_band_thirty_percent_of_the_previous_close() -> None:
    assert band(CLOSE, LISTED, rules=RULES) == PriceBand(low_fen=4500, high_fen=5500)
    assert band(CLOSE, BLOCK, rules=RULES) == PriceBand(low_fen=3500, high_fen=6500)


def test_band_limits_are_rounded_inward_to_the_tick() -> None:
    assert band(9749, LISTED, rules=RULES) == PriceBand(low_fen=8775, high_fen=10723)  # 8774.1 up, 10723.9 down
    coarse = InstrumentRules(instrument="CCER", tick_fen=10)
    assert band(9749, LISTED, rules=coarse) == PriceBand(low_fen=8780, high_fen=10720)
    assert band(1, LISTED, rules=RULES) == PriceBand(low_fen=1, high_fen=1)


def test_a_band_that_no_tick_fits_and_a_bad_close_are_refused() -> None:
    with pytest.raises(MarketRuleError) as empty:
        band(12, LISTED, rules=InstrumentRules(instrument="CCER", tick_fen=5, listed_band_bp=100))
    assert empty.value.code == "empty_band"
    for bad, code in ((0, "invalid_price"), (50.0, "not_an_integer"), (True, "not_an_integer")):
        with pytest.raises(MarketRuleError) as err:
            band(bad, LISTED, rules=RULES)  # type: ignore[arg-type]
        assert err.value.code == code
    with pytest.raises(MarketRuleError) as kind:
        band(CLOSE, "auction", rules=RULES)
    assert kind.value.code == "unknown_kind"


def test_an_officer_can_change_the_band_and_rules_refuse_nonsense() -> None:
    assert band(CLOSE, LISTED, rules=RULES.with_band(kind=LISTED, band_bp=500)) == PriceBand(low_fen=4750,
                                                                                            high_fen=5250)
    assert RULES.with_band(kind=BLOCK, band_bp=2000).block_band_bp == 2000
    for kwargs, code in (({"listed_band_bp": 10_000}, "invalid_band"), ({"tick_fen": 0}, "invalid_rule"),
                         ({"lot_t": 1.0}, "not_an_integer")):
        with pytest.raises(MarketRuleError) as err:
            InstrumentRules(instrument="CCER", **kwargs)  # type: ignore[arg-type]
        assert err.value.code == code


@pytest.mark.parametrize(("price", "code"), [(4499, "outside_band"), (5501, "outside_band"), (0, "invalid_price"),
                                             (5000.0, "not_an_integer"), (-1, "invalid_price")])
def test_check_price_names_the_rule_a_price_breaks(price: Any, code: str) -> None:
    with pytest.raises(MarketRuleError) as err:
        check_price(price, price_band=band(CLOSE, LISTED, rules=RULES), rules=RULES)
    assert err.value.code == code


def test_check_price_accepts_the_band_limits_and_refuses_off_tick_prices() -> None:
    listed = band(CLOSE, LISTED, rules=RULES)
    assert check_price(4500, price_band=listed, rules=RULES) == 4500
    assert check_price(5500, price_band=listed, rules=RULES) == 5500
    coarse = InstrumentRules(instrument="CCER", tick_fen=5)
    with pytest.raises(MarketRuleError) as err:
        check_price(5001, price_band=band(CLOSE, LISTED, rules=coarse), rules=coarse)
    assert err.value.code == "tick_size"


@pytest.mark.parametrize(("quantity", "kind", "code"), [
    (100_000, LISTED, "order_too_large"), (99_999, BLOCK, "block_too_small"), (0, LISTED, "invalid_quantity"),
    (1.5, LISTED, "not_an_integer"), (7, "auction", "unknown_kind"),
])
def test_check_quantity_names_the_rule_a_quantity_breaks(quantity: Any, kind: str, code: str) -> None:
    with pytest.raises(MarketRuleError) as err:
        check_quantity(quantity, kind, rules=RULES)
    assert err.value.code == code


def test_quantities_at_the_size_limits_and_whole_lots_are_accepted() -> None:
    assert check_quantity(99_999, LISTED, rules=RULES) == 99_999
    assert check_quantity(100_000, BLOCK, rules=RULES) == 100_000
    lots = InstrumentRules(instrument="CCER", lot_t=10)
    assert check_quantity(30, LISTED, rules=lots) == 30
    with pytest.raises(MarketRuleError) as err:
        check_quantity(35, LISTED, rules=lots)
    assert err.value.code == "lot_size"


@pytest.mark.parametrize(("wall", "listed", "block"), [
    (time(9, 29, 59), False, False), (time(9, 30), True, False), (time(11, 29, 59), True, False),
    (time(11, 30), False, False), (time(12, 59, 59), False, False), (time(13, 0), True, True),
    (time(14, 59, 59), True, True), (time(15, 0), False, False),
])
def test_sessions_are_half_open_and_block_trading_is_afternoon_only(wall: time, listed: bool, block: bool) -> None:
    moment = datetime.combine(date(2026, 3, 2), wall, tzinfo=CHINA_TZ)
    assert is_open(moment, rules=RULES, kind=LISTED) is listed
    assert is_open(moment, rules=RULES, kind=BLOCK) is block


def test_weekends_and_listed_holidays_are_closed_and_utc_moments_are_judged_in_china_time() -> None:
    calendar = TradingCalendar(holidays=frozenset({date(2026, 3, 3)}), extra_trading_days=frozenset({date(2026, 3, 8)}))
    rules = InstrumentRules(instrument="CCER", calendar=calendar)
    assert not is_open(datetime(2026, 3, 7, 10, tzinfo=CHINA_TZ), rules=rules)  # Saturday
    assert is_open(datetime(2026, 3, 8, 10, tzinfo=CHINA_TZ), rules=rules)  # a worked Sunday
    assert not is_open(datetime(2026, 3, 3, 10, tzinfo=CHINA_TZ), rules=rules)  # holiday
    assert is_open(datetime(2026, 3, 2, 1, 30, tzinfo=UTC), rules=rules)  # 09:30 in Beijing
    with pytest.raises(MarketRuleError) as err:
        is_open(datetime(2026, 3, 2, 10), rules=rules)  # noqa: DTZ001 - naive on purpose
    assert err.value.code == "naive_datetime"
    assert next_open(datetime(2026, 3, 2, 11, 45, tzinfo=CHINA_TZ), rules=rules) == datetime(
        2026, 3, 2, 13, 0, tzinfo=CHINA_TZ)
    assert next_open(datetime(2026, 3, 2, 15, 0, tzinfo=CHINA_TZ), rules=rules) == datetime(
        2026, 3, 4, 9, 30, tzinfo=CHINA_TZ)  # skips the holiday


def test_check_open_names_halted_before_market_closed() -> None:
    closed = datetime(2026, 3, 2, 12, tzinfo=CHINA_TZ)
    for moment, halted, code in ((closed, False, "market_closed"), (closed, True, "halted"), (AT, True, "halted")):
        with pytest.raises(MarketRuleError) as err:
            check_open(moment, rules=RULES, halted=halted)
        assert err.value.code == code
    check_open(AT, rules=RULES)
    with pytest.raises(MarketRuleError):
        Session(opens=time(15), closes=time(13))


def test_the_simulation_clock_runs_faster_pauses_steps_and_never_jumps_when_the_speed_changes() -> None:
    start = datetime(2026, 3, 2, 9, 30, tzinfo=CHINA_TZ)
    clock = SimulationClock(start=start, speed=120, step=timedelta(minutes=15))
    assert clock.now(elapsed=timedelta(minutes=1)) == start + timedelta(hours=2)
    paused = clock.with_speed(0, elapsed=timedelta(seconds=30))
    assert paused.now(elapsed=timedelta(hours=5)) == start + timedelta(hours=1)
    assert paused.stepped(2).now(elapsed=timedelta(0)) == start + timedelta(hours=1, minutes=30)
    assert clock == SimulationClock(start=start, speed=120, step=timedelta(minutes=15))  # value object
    for build, code in ((lambda: SimulationClock(start=start, speed=-1), "invalid_speed"),
                        (lambda: SimulationClock(start=start, step=timedelta(0)), "invalid_step"),
                        (lambda: clock.stepped(-1), "invalid_step"),
                        (lambda: clock.now(elapsed=timedelta(seconds=-1)), "invalid_elapsed"),
                        (lambda: SimulationClock(start=datetime(2026, 3, 2)), "naive_datetime")):  # noqa: DTZ001
        with pytest.raises(MarketRuleError) as err:
            build()
        assert err.value.code == code


# ---------------------------------------------------------------------------------------------
# Matching: hand-written cases


def test_better_prices_trade_first_and_at_one_price_the_earlier_order_trades_first() -> None:
    e = engine()
    e.apply(place("A", "1", SELL, 10, 5010))  # id 1
    e.apply(place("B", "1", SELL, 10, 5005))  # id 2
    e.apply(place("C", "1", SELL, 10, 5005))  # id 3
    events = e.apply(place("D", "1", BUY, 25, 5010))  # id 4
    assert trades(events) == [(5005, 10, 4, 2), (5005, 10, 4, 3), (5010, 5, 4, 1)]
    assert e.order_status(1).state == ex.PARTIALLY_FILLED  # type: ignore[union-attr]
    assert e.order_status(4).state == ex.FILLED  # type: ignore[union-attr]
    assert e.depth().asks == (ex.Level(price_fen=5010, quantity_t=5, orders=1),)
    assert [(c.side, c.price_fen, c.quantity_t) for c in events if isinstance(c, ex.BookChanged)] == [
        (SELL, 5005, 0), (SELL, 5010, 5)]


def test_a_trade_executes_at_the_resting_orders_price_and_the_rest_of_a_limit_order_rests() -> None:
    e = engine()
    e.apply(place("A", "1", BUY, 10, 5100))
    events = e.apply(place("B", "1", SELL, 15, 4900))
    assert trades(events) == [(5100, 10, 1, 2)]
    status = e.order_status(2)
    assert status is not None and (status.state, status.filled_t, status.remaining_t) == (ex.PARTIALLY_FILLED, 10, 5)
    assert e.book().asks == (ex.RestingOrder(order_id=2, account_id="B", price_fen=4900, remaining_t=5),)


def test_a_market_order_trades_only_within_the_band_and_its_remainder_is_cancelled() -> None:
    e = engine()
    e.apply(place("A", "1", SELL, 10, 5500))
    events = e.apply(place("B", "1", BUY, 25, kind=MARKET))
    assert trades(events) == [(5500, 10, 2, 1)]
    assert [(x.reason, x.quantity_t) for x in events if isinstance(x, ex.OrderCancelled)] == [("market_remainder", 15)]
    empty = e.apply(place("B", "2", SELL, 5, kind=MARKET))
    assert kinds(empty) == ["OrderAccepted", "OrderCancelled"]
    assert e.order_status(3).state == ex.CANCELLED  # type: ignore[union-attr]
    assert e.book() == ex.BookSnapshot(bids=(), asks=())


def test_the_band_bounds_a_market_order_after_an_officer_narrows_it() -> None:
    e = engine()
    e.apply(place("A", "1", SELL, 10, 5400))
    e.apply(place("A", "2", SELL, 10, 5200))
    events = e.apply(ex.OpenDay(at=AT, previous_close_fen=4800))  # band 4320-5280: the 5400 ask expires
    assert [(x.order_id, x.reason) for x in events if isinstance(x, ex.OrderExpired)] == [(1, "outside_band")]
    assert e.price_band == PriceBand(low_fen=4320, high_fen=5280)
    assert trades(e.apply(place("B", "1", BUY, 30, kind=MARKET))) == [(5200, 10, 3, 2)]


def test_an_ioc_order_trades_what_crosses_and_its_remainder_expires() -> None:
    e = engine()
    e.apply(place("A", "1", SELL, 10, 5000))
    events = e.apply(place("B", "1", BUY, 25, 5000, tif=IOC))
    assert trades(events) == [(5000, 10, 2, 1)]
    assert [(x.reason, x.quantity_t) for x in events if isinstance(x, ex.OrderExpired)] == [("ioc_remainder", 15)]
    assert e.book().bids == ()


def test_a_fok_order_that_cannot_fill_expires_whole_and_leaves_the_book_untouched() -> None:
    e = engine()
    e.apply(place("A", "1", SELL, 10, 5000))
    e.apply(place("B", "1", SELL, 10, 5000))  # B's own order does not count for B's FOK
    before = e.book()
    events = e.apply(place("B", "2", BUY, 11, 5000, tif=FOK))
    assert kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert events[1].reason == "fok_unfilled" and events[1].quantity_t == 11  # type: ignore[union-attr]
    assert e.book() == before
    filled = e.apply(place("C", "1", BUY, 15, kind=MARKET, tif=FOK))
    assert trades(filled) == [(5000, 10, 4, 1), (5000, 5, 4, 2)]


def test_self_trade_prevention_cancels_the_resting_order_and_the_incoming_order_goes_on() -> None:
    e = engine()
    e.apply(place("A", "1", SELL, 10, 5000))  # 1, A's own stale quote, first in the queue
    e.apply(place("B", "1", SELL, 10, 5000))  # 2
    events = e.apply(place("A", "2", BUY, 15, 5000))  # 3
    assert [(type(x).__name__, getattr(x, "reason", None)) for x in events[:3]] == [
        ("OrderAccepted", None), ("OrderCancelled", "self_trade_prevention"), ("TradeExecuted", None)]
    assert trades(events) == [(5000, 10, 3, 2)]
    assert e.order_status(1).state == ex.CANCELLED  # type: ignore[union-attr]
    assert e.book().bids == (ex.RestingOrder(order_id=3, account_id="A", price_fen=5000, remaining_t=5),)
    assert all(t.buy_account_id != t.sell_account_id for t in events if isinstance(t, ex.TradeExecuted))


@pytest.mark.parametrize(("command", "code"), [
    (place("A", "x", BUY, 1, 5000, at=datetime(2026, 3, 2, 12, tzinfo=CHINA_TZ)), "market_closed"),
    (place("A", "x", BUY, 1, 5000, at=datetime(2026, 3, 7, 10, tzinfo=CHINA_TZ)), "market_closed"),
    (place("A", "1", BUY, 1, 5000), "duplicate_client_order_id"),
    (place("A", "x", BUY, 1, 5501), "outside_band"),
    (place("A", "x", SELL, 1, 4499), "outside_band"),
    (place("A", "x", BUY, 100_000, 5000), "order_too_large"),
    (place("A", "x", BUY, 100_000, kind=MARKET), "order_too_large"),
])
def test_orders_that_break_a_rule_are_rejected_with_its_code_and_change_nothing(command: ex.PlaceOrder,
                                                                                  code: str) -> None:
    e = engine()
    e.apply(place("A", "1", SELL, 5, 5200))
    before, seq = e.book(), e.last_seq
    assert rejection(e.apply(command)) == code
    assert e.book() == before and e.last_seq == seq + 1 and len(e.orders()) == 1


def test_tick_and_lot_rejections_follow_the_instruments_rules() -> None:
    e = engine(InstrumentRules(instrument="CCER", tick_fen=5, lot_t=10))
    assert rejection(e.apply(place("A", "1", BUY, 10, 5001))) == "tick_size"
    assert rejection(e.apply(place("A", "1", BUY, 15, 5005))) == "lot_size"
    assert kinds(e.apply(place("A", "1", BUY, 20, 5005))) == ["OrderAccepted", "BookChanged"]


def test_the_same_client_order_id_is_free_for_another_account_and_a_rejected_id_can_be_reused() -> None:
    e = engine()
    assert rejection(e.apply(place("A", "1", BUY, 1, 9000))) == "outside_band"
    assert kinds(e.apply(place("A", "1", BUY, 1, 5000)))[0] == "OrderAccepted"
    assert kinds(e.apply(place("B", "1", BUY, 1, 5000)))[0] == "OrderAccepted"


def test_a_halt_rejects_orders_and_replaces_but_not_cancels_until_trading_resumes() -> None:
    e = engine()
    e.apply(place("A", "1", BUY, 5, 5000))
    halted = e.apply(ex.Halt(at=AT, reason="abnormal price swing"))
    assert isinstance(halted[0], ex.TradingStatusChanged) and halted[0].status == "halted" and e.halted
    assert rejection(e.apply(place("B", "1", SELL, 5, 5000))) == "halted"
    replace = ex.ReplaceOrder(account_id="A", order_id=1, price_fen=5001, quantity_t=5, at=AT)
    assert rejection(e.apply(replace)) == "halted"
    e.apply(ex.Resume(at=AT))
    assert trades(e.apply(place("B", "1", SELL, 5, 5000))) == [(5000, 5, 1, 2)]


def test_cancel_codes_unknown_not_own_and_not_open_and_a_cancel_is_accepted_after_the_close() -> None:
    e = engine()
    e.apply(place("A", "1", BUY, 5, 5000))
    e.apply(place("A", "2", BUY, 5, 4900))
    e.apply(place("B", "1", SELL, 5, 5000))  # fills order 1
    assert rejection(e.apply(ex.CancelOrder(account_id="A", order_id=99, at=AT))) == "unknown_order"
    assert rejection(e.apply(ex.CancelOrder(account_id="B", order_id=2, at=AT))) == "not_own_order"
    assert rejection(e.apply(ex.CancelOrder(account_id="A", order_id=1, at=AT))) == "order_not_open"
    evening = datetime(2026, 3, 2, 18, tzinfo=CHINA_TZ)
    events = e.apply(ex.CancelOrder(account_id="A", order_id=2, at=evening))
    assert kinds(events) == ["OrderCancelled", "BookChanged"]
    assert (events[0].reason, events[0].quantity_t) == ("cancelled_by_trader", 5)  # type: ignore[union-attr]
    assert rejection(e.apply(ex.CancelOrder(account_id="A", order_id=2, at=AT))) == "order_not_open"


def test_cancel_replace_keeps_priority_when_the_quantity_shrinks_at_the_same_price() -> None:
    e = engine()
    e.apply(place("A", "1", SELL, 10, 5000))
    e.apply(place("B", "1", SELL, 10, 5000))
    events = e.apply(ex.ReplaceOrder(account_id="A", order_id=1, price_fen=5000, quantity_t=4, at=AT))
    assert isinstance(events[0], ex.OrderReplaced) and events[0].priority_kept
    assert trades(e.apply(place("C", "1", BUY, 6, 5000))) == [(5000, 4, 3, 1), (5000, 2, 3, 2)]
    status = e.order_status(1)
    assert status is not None and (status.ordered_t, status.filled_t, status.cancelled_t) == (10, 4, 6)


@pytest.mark.parametrize(("price", "quantity"), [(5000, 11), (5001, 10), (5001, 3)])
def test_cancel_replace_loses_priority_when_the_price_changes_or_the_quantity_grows(price: int,
                                                                                   quantity: int) -> None:
    e = engine()
    e.apply(place("A", "1", SELL, 10, 5001))
    e.apply(place("A", "2", SELL, 10, 5000))
    e.apply(place("B", "1", SELL, 10, 5000))
    e.apply(place("B", "2", SELL, 10, 5001))
    events = e.apply(ex.ReplaceOrder(account_id="A", order_id=2, price_fen=price, quantity_t=quantity, at=AT))
    assert isinstance(events[0], ex.OrderReplaced) and not events[0].priority_kept
    asks = [o.order_id for o in e.book().asks]
    assert asks.index(2) > asks.index(3 if price == 5000 else 4)
    status = e.order_status(2)
    assert status is not None and status.filled_t + status.remaining_t + status.cancelled_t == status.ordered_t


def test_a_replace_that_crosses_trades_as_an_incoming_order_with_self_trade_prevention() -> None:
    e = engine()
    e.apply(place("A", "1", BUY, 10, 4900))  # 1
    e.apply(place("A", "2", SELL, 3, 5000))  # 2: A's own ask, cancelled when A's bid crosses it
    e.apply(place("B", "1", SELL, 4, 5000))  # 3
    events = e.apply(ex.ReplaceOrder(account_id="A", order_id=1, price_fen=5000, quantity_t=10, at=AT))
    assert kinds(events)[:3] == ["OrderReplaced", "OrderCancelled", "TradeExecuted"]
    assert trades(events) == [(5000, 4, 1, 3)]
    assert e.book().bids == (ex.RestingOrder(order_id=1, account_id="A", price_fen=5000, remaining_t=6),)
    assert e.order_status(1).state == ex.PARTIALLY_FILLED  # type: ignore[union-attr]


def test_replace_rejections_name_the_rule_and_keep_the_order() -> None:
    e = engine()
    e.apply(place("A", "1", BUY, 10, 5000))
    for price, quantity, code in ((5600, 10, "outside_band"), (5000, 100_000, "order_too_large")):
        assert rejection(e.apply(ex.ReplaceOrder(account_id="A", order_id=1, price_fen=price, quantity_t=quantity,
                                                 at=AT))) == code
    assert rejection(e.apply(ex.ReplaceOrder(account_id="B", order_id=1, price_fen=5000, quantity_t=1,
                                             at=AT))) == "not_own_order"
    assert e.book().bids == (ex.RestingOrder(order_id=1, account_id="A", price_fen=5000, remaining_t=10),)


def test_the_close_of_day_expires_every_resting_order() -> None:
    e = engine()
    e.apply(place("A", "1", BUY, 10, 5000))
    e.apply(place("B", "1", SELL, 10, 5100))
    events = e.apply(ex.CloseDay(at=datetime(2026, 3, 2, 15, tzinfo=CHINA_TZ)))
    assert [(x.order_id, x.reason) for x in events if isinstance(x, ex.OrderExpired)] == [
        (1, "end_of_day"), (2, "end_of_day")]
    assert e.book() == ex.BookSnapshot(bids=(), asks=()) and e.depth() == ex.Depth(bids=(), asks=())
    assert {s.state for s in e.orders()} == {ex.EXPIRED}


@pytest.mark.parametrize(("build", "code"), [
    (lambda: place("A", "1", BUY, 10, 50.0), "not_an_integer"),  # type: ignore[arg-type]
    (lambda: place("A", "1", BUY, 10, None), "price_required"),
    (lambda: place("A", "1", BUY, 10, 5000, kind=MARKET), "price_not_allowed"),
    (lambda: place("A", "1", "short", 10, 5000), "unknown_side"),
    (lambda: place("A", "1", BUY, 0, 5000), "invalid_quantity"),
    (lambda: place("A", "1", BUY, 10, 5000, tif="gtc"), "unknown_time_in_force"),
    (lambda: place("", "1", BUY, 10, 5000), "missing_value"),
    (lambda: place("A", "1", BUY, 10, 5000, at=datetime(2026, 3, 2, 10)), "naive_datetime"),  # noqa: DTZ001
])
def test_malformed_commands_cannot_be_built(build: Any, code: str) -> None:
    with pytest.raises(ex.ExchangeError) as err:
        build()
    assert err.value.code == code


def test_the_engine_never_changes_the_callers_commands_and_hands_out_only_frozen_snapshots() -> None:
    e = engine()
    command = place("A", "1", BUY, 10, 5000)
    copy = place("A", "1", BUY, 10, 5000)
    e.apply(command)
    e.apply(place("B", "1", SELL, 4, 5000))
    assert command == copy
    snapshot = e.book()
    with pytest.raises(FrozenInstanceError):
        snapshot.bids[0].remaining_t = 0  # type: ignore[misc]
    e.apply(place("B", "2", SELL, 6, 5000))
    assert snapshot.bids[0].remaining_t == 6 and e.book().bids == ()


def test_the_type_checker_refuses_a_change_to_an_event(tmp_path: Path) -> None:
    """Events are plain slotted dataclasses at run time (``ex._event``); mypy must still see them read-only."""
    changed = tmp_path / "changes_an_event.py"
    changed.write_text("from accounting.exchange import BookChanged\n"
                       "event = BookChanged(seq=1, side='buy', price_fen=5000, quantity_t=10)\n"
                       "event.quantity_t = 0\n", encoding="utf-8")
    report, _, status = mypy_api.run(["--cache-dir=/dev/null", "--follow-imports=silent", str(changed)])
    assert status == 1, report
    assert 'Property "quantity_t" defined in "BookChanged" is read-only' in report


# ---------------------------------------------------------------------------------------------
# Differential test against the reference matcher

ACCOUNTS = ("A", "B", "C", "D")


def random_commands(seed: int, count: int) -> list[ex.Command]:  # noqa: C901 - one branch per command kind
    """A seeded stream with every command kind, self-trades, rejections and officers' actions."""
    rng = random.Random(seed)
    commands: list[ex.Command] = []
    placed = 0
    counters = dict.fromkeys(ACCOUNTS, 0)
    for _ in range(count):
        roll = rng.random()
        account = rng.choice(ACCOUNTS)
        at = AT if rng.random() > 0.01 else datetime(2026, 3, 2, 12, tzinfo=CHINA_TZ)
        price = CLOSE + rng.randint(-12, 12) * 5 if rng.random() > 0.02 else rng.choice((4400, 5600))
        quantity = rng.randint(1, 40) if rng.random() > 0.01 else 100_000
        if roll < 0.62:
            counters[account] += 1
            cid = str(counters[account] if rng.random() > 0.02 else max(1, counters[account] - 1))
            side = rng.choice((BUY, SELL))
            kind_roll = rng.random()
            if kind_roll < 0.70:
                commands.append(place(account, cid, side, quantity, price, at=at))
            elif kind_roll < 0.80:
                commands.append(place(account, cid, side, quantity, price, tif=IOC, at=at))
            elif kind_roll < 0.88:
                commands.append(place(account, cid, side, quantity, price, tif=FOK, at=at))
            else:
                tif = FOK if rng.random() < 0.3 else ex.DAY
                commands.append(place(account, cid, side, quantity, kind=MARKET, tif=tif, at=at))
            placed += 1
        elif roll < 0.82:
            commands.append(ex.CancelOrder(account_id=account, order_id=rng.randint(1, placed + 2), at=at))
        elif roll < 0.93:
            commands.append(ex.ReplaceOrder(account_id=account, order_id=rng.randint(1, placed + 2), price_fen=price,
                                            quantity_t=quantity, at=at))
        elif roll < 0.97:
            commands.append(ex.RestrictAccount(account_id=account, at=at) if rng.random() < 0.3
                            else ex.LiftRestriction(account_id=account, at=at))
        else:
            officer: list[ex.Command] = [ex.Halt(at=at), ex.Resume(at=at), ex.Resume(at=at), ex.CloseDay(at=at),
                                         ex.OpenDay(at=at, previous_close_fen=CLOSE + rng.randint(-60, 60))]
            commands.append(rng.choice(officer))
    return commands


CAPPED = InstrumentRules(instrument="CEA-2025", max_open_orders=2)  # small, so that it bites often


@pytest.mark.parametrize(("seed", "rules"), [(seed, RULES) for seed in range(12)]
                         + [(seed, CAPPED) for seed in range(100, 106)])
def test_the_engine_and_the_reference_matcher_agree_on_seeded_random_streams(seed: int,
                                                                            rules: InstrumentRules) -> None:
    e = engine(rules)
    reference = ReferenceMatcher(rules=rules, previous_close_fen=CLOSE)
    trade_count = 0
    codes: set[str] = set()
    for step, command in enumerate(random_commands(seed, 600)):
        events = e.apply(command)
        expected = reference.apply(command)
        assert project(events) == expected, (seed, step, command)
        assert engine_book(e) == reference.book(), (seed, step)
        assert all(x.mode == ex.MODE_CONTINUOUS for x in events if isinstance(x, ex.TradeExecuted))
        trade_count += sum(1 for x in expected if x[0] == "trade")
        codes.update(x[1] for x in expected if x[0] == "rejected")
    assert engine_statuses(e) == reference.statuses()
    assert trade_count > (50 if rules is RULES else 5)  # the stream really trades (a cap of 2 trades less)
    assert "account_restricted" in codes  # restrictions really bite
    assert ("open_order_cap" in codes) == (rules is CAPPED)


# ---------------------------------------------------------------------------------------------
# Properties (Hypothesis)

place_spec = st.tuples(st.just("place"), st.sampled_from(ACCOUNTS), st.sampled_from((BUY, SELL)),
                       st.sampled_from(("limit", "limit", "limit", "ioc", "fok", "market", "market_fok")),
                       st.integers(-12, 12), st.integers(1, 30))
cancel_spec = st.tuples(st.just("cancel"), st.sampled_from(ACCOUNTS), st.integers(1, 40))
replace_spec = st.tuples(st.just("replace"), st.sampled_from(ACCOUNTS), st.integers(1, 40), st.integers(-12, 12),
                         st.integers(1, 30))
streams = st.lists(st.one_of(place_spec, place_spec, cancel_spec, replace_spec), min_size=1, max_size=60)


def build(specs: list[tuple[Any, ...]]) -> list[ex.Command]:
    commands: list[ex.Command] = []
    for number, spec in enumerate(specs):
        if spec[0] == "place":
            _, account, side, kind, offset, quantity = spec
            price = CLOSE + offset * 10
            if kind == "limit":
                commands.append(place(account, str(number), side, quantity, price))
            elif kind in ("ioc", "fok"):
                commands.append(place(account, str(number), side, quantity, price, tif=kind))
            else:
                commands.append(place(account, str(number), side, quantity, kind=MARKET,
                                      tif=FOK if kind == "market_fok" else ex.DAY))
        elif spec[0] == "cancel":
            commands.append(ex.CancelOrder(account_id=spec[1], order_id=spec[2], at=AT))
        else:
            commands.append(ex.ReplaceOrder(account_id=spec[1], order_id=spec[2], price_fen=CLOSE + spec[3] * 10,
                                            quantity_t=spec[4], at=AT))
    return commands


def check_priority(before: ex.BookSnapshot, events: tuple[ex.Event, ...], taker_account: str) -> None:
    """Each trade took the first order in the book's priority that another account had not yet used up."""
    executed = [e for e in events if isinstance(e, ex.TradeExecuted)]
    if not executed:
        return
    fills = [(e.sell_order_id if e.aggressor_side == BUY else e.buy_order_id, e.quantity_t) for e in executed]
    side = before.asks if executed[0].aggressor_side == BUY else before.bids
    queue = [o for o in side if o.account_id != taker_account]
    position = 0
    for maker_id, quantity in fills:
        while queue[position].order_id != maker_id:
            position += 1  # an order skipped must have been used up by an earlier fill of this command
            assert sum(q for m, q in fills if m == queue[position - 1].order_id) == queue[position - 1].remaining_t
        assert quantity <= queue[position].remaining_t


@settings(max_examples=150, deadline=None)
@given(streams)
def test_invariants_hold_after_every_command(specs: list[tuple[Any, ...]]) -> None:
    e = engine()
    price_band = e.price_band
    for command in build(specs):
        before = e.book()
        events = e.apply(command)
        snapshot = e.book()
        if snapshot.bids and snapshot.asks:
            assert snapshot.bids[0].price_fen < snapshot.asks[0].price_fen  # no crossed book at rest
        for event in events:
            if isinstance(event, ex.TradeExecuted):
                assert price_band.contains(event.price_fen) and event.price_fen % RULES.tick_fen == 0
                assert event.buy_account_id != event.sell_account_id
        if isinstance(command, ex.PlaceOrder | ex.ReplaceOrder) and not isinstance(events[0], ex.OrderRejected):
            check_priority(before, events, command.account_id)
        for status in e.orders():
            assert status.filled_t + status.remaining_t + status.cancelled_t == status.ordered_t
            assert min(status.filled_t, status.remaining_t, status.cancelled_t) >= 0
            assert (status.remaining_t > 0) == (status.state in ex.OPEN_STATES)
        resting = {o.order_id: o.remaining_t for o in snapshot.bids + snapshot.asks}
        assert resting == {s.order_id: s.remaining_t for s in e.orders() if s.remaining_t}
        assert [ev.seq for ev in events] == list(range(e.last_seq - len(events) + 1, e.last_seq + 1))


@settings(max_examples=60, deadline=None)
@given(streams)
def test_replaying_the_same_commands_from_empty_gives_the_same_events_and_book(specs: list[tuple[Any, ...]]) -> None:
    commands = build(specs)
    first, first_events = ex.replay(commands, rules=RULES, previous_close_fen=CLOSE)
    second, second_events = ex.replay(list(commands), rules=RULES, previous_close_fen=CLOSE)
    assert first_events == second_events
    assert first.book() == second.book() and first.orders() == second.orders()
    assert commands == build(specs)  # the commands themselves are untouched


# ---------------------------------------------------------------------------------------------
# Listed agreement (挂牌 / 摘牌), block agreement (大宗协议), officers' account controls

PM = datetime(2026, 3, 2, 14, 0, tzinfo=CHINA_TZ)  # Monday afternoon: block session


def post(account: str, cid: str, side: str, qty: int, price: int, *, partial: bool | None = None,
         at: datetime = AT) -> ex.PostQuote:
    return ex.PostQuote(account_id=account, client_order_id=cid, side=side, price_fen=price, quantity_t=qty,
                        allow_partial=partial, at=at)


def take(account: str, cid: str, quote_id: int, qty: int, *, at: datetime = AT) -> ex.TakeQuote:
    return ex.TakeQuote(account_id=account, client_order_id=cid, quote_id=quote_id, quantity_t=qty, at=at)


def propose(account: str, cid: str, counterparty: str, side: str, qty: int = 100_000, price: int = 5000, *,
            at: datetime = PM) -> ex.ProposeBlock:
    return ex.ProposeBlock(account_id=account, client_order_id=cid, counterparty_id=counterparty, side=side,
                           price_fen=price, quantity_t=qty, at=at)


def test_a_quote_is_posted_and_taken_in_part_at_its_price_with_a_listed_agreement_trade() -> None:
    e = engine()
    posted = e.apply(post("A", "q1", SELL, 500, 5100))
    assert kinds(posted) == ["QuotePosted"] and posted[0].partial_allowed  # type: ignore[union-attr]
    events = e.apply(take("B", "t1", 1, 200))
    assert kinds(events) == ["QuoteTaken", "TradeExecuted"]
    taken, trade = events
    assert isinstance(taken, ex.QuoteTaken) and isinstance(trade, ex.TradeExecuted)
    assert (taken.take_id, taken.side, taken.price_fen, taken.quantity_t, taken.quote_remaining_t) == (2, BUY, 5100,
                                                                                                      200, 300)
    assert (trade.mode, trade.price_fen, trade.quantity_t, trade.buy_order_id, trade.sell_order_id) == (
        ex.MODE_LISTED_AGREEMENT, 5100, 200, 2, 1)
    assert (trade.buy_account_id, trade.sell_account_id, trade.aggressor_side) == ("B", "A", BUY)
    e.apply(take("C", "t1", 1, 300))
    status = e.quote_status(1)
    assert status is not None and (status.state, status.taken_t, status.remaining_t) == (ex.FILLED, 500, 0)
    assert e.book() == ex.BookSnapshot(bids=(), asks=())  # quotes never enter the continuous book
    assert rejection(e.apply(take("D", "t1", 1, 1))) == "quote_not_open"


def test_quotes_never_match_each_other_or_the_continuous_book() -> None:
    e = engine()
    e.apply(post("A", "q1", SELL, 10, 5000))
    assert kinds(e.apply(post("B", "q1", BUY, 10, 5100))) == ["QuotePosted"]  # crossing quotes just rest
    assert trades(e.apply(place("C", "o1", BUY, 10, 5100))) == []
    assert e.quote_depth() == ex.Depth(bids=(ex.Level(price_fen=5100, quantity_t=10, orders=1),),
                                       asks=(ex.Level(price_fen=5000, quantity_t=10, orders=1),))


def test_a_taker_may_take_only_among_the_best_five_price_levels_and_any_quote_within_a_level() -> None:
    e = engine()
    for number, price in enumerate((5000, 5010, 5020, 5030, 5040, 5050, 5000)):  # ids 1..7; 1 and 7 share 5000
        e.apply(post("A", f"q{number}", SELL, 10, price))
    assert rejection(e.apply(take("B", "t1", 6, 10))) == "not_in_best_levels"  # 5050 is the sixth level
    assert trades(e.apply(take("B", "t2", 7, 10))) == [(5000, 10, 8, 7)]  # no time priority at one price
    assert trades(e.apply(take("B", "t3", 5, 10))) == [(5040, 10, 9, 5)]  # fifth level
    e.apply(post("C", "b1", BUY, 10, 4900))
    e.apply(post("C", "b2", BUY, 10, 4950))  # bids: best is the highest
    assert [level.price_fen for level in e.quote_depth().bids] == [4950, 4900]
    narrow = engine(InstrumentRules(instrument="CCER", quote_take_levels=1))
    narrow.apply(post("A", "q1", BUY, 10, 4900))
    narrow.apply(post("A", "q2", BUY, 10, 4950))
    assert rejection(narrow.apply(take("B", "t1", 1, 10))) == "not_in_best_levels"
    assert kinds(narrow.apply(take("B", "t2", 2, 10))) == ["QuoteTaken", "TradeExecuted"]


def test_partial_takes_follow_the_quote_and_the_instruments_configuration() -> None:
    e = engine()
    e.apply(post("A", "q1", SELL, 100, 5000, partial=False))  # all-or-none on request
    assert rejection(e.apply(take("B", "t1", 1, 40))) == "partial_take_not_allowed"
    assert rejection(e.apply(take("B", "t1", 1, 101))) == "quantity_exceeds_quote"
    assert kinds(e.apply(take("B", "t1", 1, 100))) == ["QuoteTaken", "TradeExecuted"]
    whole = engine(InstrumentRules(instrument="CCER", quote_partial_takes=False, lot_t=10))
    assert rejection(whole.apply(post("A", "q1", SELL, 100, 5000, partial=True))) == "partial_take_not_allowed"
    posted = whole.apply(post("A", "q1", SELL, 100, 5000))
    assert posted[0].partial_allowed is False  # type: ignore[union-attr]
    assert rejection(whole.apply(take("B", "t1", 1, 15))) == "lot_size"
    assert rejection(whole.apply(take("B", "t1", 1, 50))) == "partial_take_not_allowed"


def test_quote_and_take_rejections_name_their_rule() -> None:
    e = engine()
    closed = datetime(2026, 3, 2, 12, tzinfo=CHINA_TZ)
    assert rejection(e.apply(post("A", "q", SELL, 10, 5000, at=closed))) == "market_closed"
    assert rejection(e.apply(post("A", "q", SELL, 10, 5600))) == "outside_band"
    assert rejection(e.apply(post("A", "q", SELL, 100_000, 5000))) == "order_too_large"
    e.apply(post("A", "q", SELL, 10, 5000))  # quote 1
    assert rejection(e.apply(post("A", "q", SELL, 10, 5000))) == "duplicate_client_order_id"
    e.apply(place("A", "o", BUY, 1, 4800))  # client ids are shared by orders, quotes and takes
    assert rejection(e.apply(place("A", "q", BUY, 1, 4800))) == "duplicate_client_order_id"
    assert rejection(e.apply(take("A", "t", 1, 10))) == "self_take"
    assert rejection(e.apply(take("B", "t", 99, 10))) == "unknown_quote"
    assert rejection(e.apply(take("B", "t", 1, 10, at=closed))) == "market_closed"
    e.apply(ex.Halt(at=AT))
    assert rejection(e.apply(take("B", "t", 1, 10))) == "halted"
    assert rejection(e.apply(post("B", "q", BUY, 10, 5000))) == "halted"


def test_a_quote_is_cancelled_by_its_owner_even_when_closed_and_ends_with_the_day_or_the_band() -> None:
    e = engine()
    e.apply(post("A", "q1", SELL, 10, 5000))  # 1
    e.apply(post("A", "q2", SELL, 10, 5400))  # 2
    e.apply(post("A", "q3", BUY, 10, 4600))  # 3
    assert rejection(e.apply(ex.CancelQuote(account_id="B", quote_id=1, at=AT))) == "not_own_quote"
    assert rejection(e.apply(ex.CancelQuote(account_id="A", quote_id=9, at=AT))) == "unknown_quote"
    evening = datetime(2026, 3, 2, 18, tzinfo=CHINA_TZ)
    cancelled = e.apply(ex.CancelQuote(account_id="A", quote_id=1, at=evening))
    assert kinds(cancelled) == ["QuoteCancelled"]
    assert (cancelled[0].reason, cancelled[0].quantity_t) == ("cancelled_by_trader", 10)  # type: ignore[union-attr]
    assert rejection(e.apply(ex.CancelQuote(account_id="A", quote_id=1, at=AT))) == "quote_not_open"
    opened = e.apply(ex.OpenDay(at=AT, previous_close_fen=4800))  # band 4320-5280: the 5400 quote ends
    assert [(x.quote_id, x.reason) for x in opened if isinstance(x, ex.QuoteCancelled)] == [(2, "outside_band")]
    closed = e.apply(ex.CloseDay(at=evening))
    assert [(x.quote_id, x.reason) for x in closed if isinstance(x, ex.QuoteCancelled)] == [(3, "end_of_day")]
    assert e.quote_depth() == ex.Depth(bids=(), asks=())
    status = e.quote_status(3)
    assert status is not None and status.taken_t + status.remaining_t + status.cancelled_t == status.quantity_t


def test_a_block_trade_executes_only_when_the_named_counterparty_confirms() -> None:
    e = engine()
    proposed = e.apply(propose("A", "b1", "B", SELL, 150_000, 6400))  # within +-30 %, at least 100,000 t
    assert kinds(proposed) == ["BlockProposed"]
    assert rejection(e.apply(ex.ConfirmBlock(account_id="C", proposal_id=1, at=PM))) == "not_counterparty"
    assert rejection(e.apply(ex.ConfirmBlock(account_id="A", proposal_id=1, at=PM))) == "not_counterparty"
    assert e.block_status(1).state == ex.PROPOSED  # type: ignore[union-attr]
    events = e.apply(ex.ConfirmBlock(account_id="B", proposal_id=1, at=PM))
    assert kinds(events) == ["BlockConfirmed", "TradeExecuted"]
    trade = events[1]
    assert isinstance(trade, ex.TradeExecuted)
    assert (trade.mode, trade.price_fen, trade.quantity_t, trade.buy_account_id, trade.sell_account_id,
            trade.buy_order_id, trade.sell_order_id, trade.aggressor_side) == (
        ex.MODE_BLOCK, 6400, 150_000, "B", "A", 1, 1, BUY)
    assert e.block_status(1).state == ex.EXECUTED  # type: ignore[union-attr]
    assert rejection(e.apply(ex.ConfirmBlock(account_id="B", proposal_id=1, at=PM))) == "proposal_not_open"
    assert rejection(e.apply(ex.ConfirmBlock(account_id="B", proposal_id=7, at=PM))) == "unknown_proposal"
    assert e.book() == ex.BookSnapshot(bids=(), asks=())


@pytest.mark.parametrize(("command", "code"), [
    (propose("A", "b", "B", BUY, at=AT), "market_closed"),  # block trading is 13:00-15:00 only
    (propose("A", "b", "A", BUY), "self_counterparty"),
    (propose("A", "b", "B", BUY, 99_999), "block_too_small"),
    (propose("A", "b", "B", BUY, price=6501), "outside_band"),
    (propose("A", "b", "B", BUY, price=3499), "outside_band"),
    (propose("A", "1", "B", BUY), "duplicate_client_order_id"),
])
def test_block_proposals_that_break_a_rule_are_rejected(command: ex.ProposeBlock, code: str) -> None:
    e = engine()
    e.apply(propose("A", "1", "C", SELL))
    assert rejection(e.apply(command)) == code
    assert len(e.blocks()) == 1


def test_block_edges_are_accepted_and_confirmation_needs_the_session_and_no_halt() -> None:
    e = engine()
    assert kinds(e.apply(propose("A", "1", "B", BUY, 100_000, 3500))) == ["BlockProposed"]
    assert kinds(e.apply(propose("A", "2", "B", BUY, 100_000, 6500))) == ["BlockProposed"]
    assert rejection(e.apply(ex.ConfirmBlock(account_id="B", proposal_id=1, at=AT))) == "market_closed"
    e.apply(ex.Halt(at=PM))
    assert rejection(e.apply(ex.ConfirmBlock(account_id="B", proposal_id=1, at=PM))) == "halted"
    e.apply(ex.Resume(at=PM))
    assert kinds(e.apply(ex.ConfirmBlock(account_id="B", proposal_id=1, at=PM))) == ["BlockConfirmed",
                                                                                     "TradeExecuted"]


def test_a_block_proposal_is_declined_withdrawn_or_expires_at_the_end_of_the_day() -> None:
    e = engine()
    for number in range(4):
        e.apply(propose("A", str(number), "B", SELL))  # 1..4
    assert rejection(e.apply(ex.DeclineBlock(account_id="A", proposal_id=1, at=PM))) == "not_counterparty"
    declined = e.apply(ex.DeclineBlock(account_id="B", proposal_id=1, at=PM))
    assert [(x.proposal_id, x.reason) for x in declined] == [(1, "declined")]  # type: ignore[union-attr]
    assert rejection(e.apply(ex.WithdrawBlock(account_id="B", proposal_id=2, at=PM))) == "not_initiator"
    evening = datetime(2026, 3, 2, 18, tzinfo=CHINA_TZ)
    withdrawn = e.apply(ex.WithdrawBlock(account_id="A", proposal_id=2, at=evening))  # allowed when closed
    assert [(x.proposal_id, x.reason) for x in withdrawn] == [(2, "withdrawn")]  # type: ignore[union-attr]
    assert rejection(e.apply(ex.WithdrawBlock(account_id="A", proposal_id=2, at=PM))) == "proposal_not_open"
    opened = e.apply(ex.OpenDay(at=PM, previous_close_fen=7200))  # block band 5040-9360: 5000 is out
    assert [(x.proposal_id, x.reason) for x in opened if isinstance(x, ex.BlockCancelled)] == [
        (3, "outside_band"), (4, "outside_band")]
    e.apply(propose("A", "5", "B", SELL, price=7000))  # 5
    closed = e.apply(ex.CloseDay(at=evening))
    assert [(x.proposal_id, x.reason) for x in closed if isinstance(x, ex.BlockCancelled)] == [(5, "end_of_day")]
    assert [b.state for b in e.blocks()] == [ex.CANCELLED] * 5
    assert e.block_band == PriceBand(low_fen=5040, high_fen=9360)


def test_a_restricted_account_cannot_trade_but_may_cancel_until_the_restriction_is_lifted() -> None:
    e = engine()
    e.apply(place("A", "1", BUY, 10, 4900))  # 1
    e.apply(post("A", "q1", SELL, 10, 5100))  # 2
    e.apply(post("B", "q1", SELL, 10, 5100))  # 3
    e.apply(propose("A", "b1", "B", BUY))  # 4
    e.apply(propose("B", "b2", "A", BUY))  # 5
    restricted = e.apply(ex.RestrictAccount(account_id="A", at=AT, reason="abnormal trading"))
    assert kinds(restricted) == ["AccountRestrictionChanged"]
    assert (restricted[0].restricted, restricted[0].reason) == (True, "abnormal trading")  # type: ignore[union-attr]
    assert e.restricted_accounts == frozenset({"A"})
    assert rejection(e.apply(ex.RestrictAccount(account_id="A", at=AT))) == "already_restricted"
    for command in (place("A", "2", BUY, 10, 4900), place("A", "3", SELL, 1, kind=MARKET),
                    ex.ReplaceOrder(account_id="A", order_id=1, price_fen=4950, quantity_t=10, at=AT),
                    post("A", "q2", SELL, 10, 5100), take("A", "t1", 3, 10), propose("A", "b3", "B", SELL)):
        assert rejection(e.apply(command)) == "account_restricted", command
    # confirmations need both parties unrestricted
    assert rejection(e.apply(ex.ConfirmBlock(account_id="B", proposal_id=4, at=PM))) == "account_restricted"
    assert rejection(e.apply(ex.ConfirmBlock(account_id="A", proposal_id=5, at=PM))) == "account_restricted"
    # what it already has stays and may still be traded against; cancels are allowed
    assert trades(e.apply(place("C", "1", SELL, 4, 4900))) == [(4900, 4, 1, 6)]
    assert kinds(e.apply(ex.CancelOrder(account_id="A", order_id=1, at=AT))) == ["OrderCancelled", "BookChanged"]
    assert kinds(e.apply(ex.CancelQuote(account_id="A", quote_id=2, at=AT))) == ["QuoteCancelled"]
    assert kinds(e.apply(ex.DeclineBlock(account_id="A", proposal_id=5, at=PM))) == ["BlockCancelled"]
    lifted = e.apply(ex.LiftRestriction(account_id="A", at=AT))
    assert kinds(lifted) == ["AccountRestrictionChanged"] and not lifted[0].restricted  # type: ignore[union-attr]
    assert rejection(e.apply(ex.LiftRestriction(account_id="A", at=AT))) == "not_restricted"
    assert kinds(e.apply(place("A", "2", BUY, 10, 4900)))[0] == "OrderAccepted"
    assert kinds(e.apply(ex.ConfirmBlock(account_id="B", proposal_id=4, at=PM))) == ["BlockConfirmed",
                                                                                     "TradeExecuted"]


def test_the_open_order_cap_counts_resting_orders_and_open_quotes_per_account() -> None:
    e = engine(InstrumentRules(instrument="CEA-2025", max_open_orders=2))
    e.apply(place("A", "1", BUY, 10, 4900))  # 1 rests
    e.apply(post("A", "q1", SELL, 10, 5100))  # 2 open quote
    assert rejection(e.apply(place("A", "2", BUY, 10, 4800))) == "open_order_cap"
    assert rejection(e.apply(post("A", "q2", SELL, 10, 5100))) == "open_order_cap"
    assert kinds(e.apply(place("B", "1", BUY, 10, 4800)))[0] == "OrderAccepted"  # per account
    # IOC and market orders never rest, so the cap does not apply to them; this IOC meets A's own bid 1,
    # which self-trade prevention cancels: a slot frees
    assert kinds(e.apply(place("A", "3", SELL, 5, 4900, tif=IOC)))[0] == "OrderAccepted"  # 4
    assert kinds(e.apply(place("A", "4", SELL, 5, kind=MARKET)))[0] == "OrderAccepted"  # 5
    assert e.order_status(1).state == ex.CANCELLED  # type: ignore[union-attr]
    assert kinds(e.apply(place("A", "5", BUY, 10, 4800)))[0] == "OrderAccepted"  # 6: two open again
    assert rejection(e.apply(place("A", "6", BUY, 10, 4800))) == "open_order_cap"
    e.apply(take("C", "t1", 2, 10))  # the quote is taken whole: a slot frees
    assert kinds(e.apply(place("A", "6", BUY, 10, 4800)))[0] == "OrderAccepted"
    replace = ex.ReplaceOrder(account_id="A", order_id=6, price_fen=4810, quantity_t=20, at=AT)
    assert kinds(e.apply(replace))[0] == "OrderReplaced"  # a replace is not a new order
    with pytest.raises(MarketRuleError) as err:
        InstrumentRules(instrument="CCER", max_open_orders=0)
    assert err.value.code == "invalid_rule"


def test_new_commands_are_checked_when_built_and_replay_is_deterministic_across_all_modes() -> None:
    for build_bad, code in ((lambda: post("A", "q", "hold", 10, 5000), "unknown_side"),
                            (lambda: post("A", "q", SELL, 10, 50.0), "not_an_integer"),  # type: ignore[arg-type]
                            (lambda: post("A", "q", SELL, 10, 5000, partial=1), "invalid_allow_partial"),  # type: ignore[arg-type]
                            (lambda: take("A", "t", 0, 10), "invalid_quote"),
                            (lambda: propose("A", "b", "", BUY), "missing_value"),
                            (lambda: ex.RestrictAccount(account_id="A", at=datetime(2026, 3, 2)), "naive_datetime")):  # noqa: DTZ001
        with pytest.raises(ex.ExchangeError) as err:
            build_bad()
        assert err.value.code == code
    with pytest.raises(ex.ExchangeError) as unknown:
        engine().apply("cancel everything")  # type: ignore[arg-type]
    assert unknown.value.code == "unknown_command"
    commands: list[ex.Command] = [
        post("A", "q1", SELL, 50, 5050), take("B", "t1", 1, 20), place("C", "o1", BUY, 10, 5000),
        ex.RestrictAccount(account_id="C", at=AT), place("C", "o2", BUY, 10, 5000),
        propose("A", "b1", "B", SELL, 120_000, 5200), ex.ConfirmBlock(account_id="B", proposal_id=4, at=PM),
        ex.LiftRestriction(account_id="C", at=AT), ex.CloseDay(at=PM)]
    kept = list(commands)
    first, first_events = ex.replay(commands, rules=RULES, previous_close_fen=CLOSE)
    second, second_events = ex.replay(commands, rules=RULES, previous_close_fen=CLOSE)
    assert first_events == second_events and commands == kept
    assert first.quotes() == second.quotes() and first.blocks() == second.blocks()
    assert [x.mode for x in first_events if isinstance(x, ex.TradeExecuted)] == [ex.MODE_LISTED_AGREEMENT,
                                                                                 ex.MODE_BLOCK]
    assert [ev.seq for ev in first_events] == list(range(1, len(first_events) + 1))

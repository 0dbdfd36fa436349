"""Prefunding and settlement (``accounting.settlement``): hand-written cases per rule and a property over the engine.

The cases drive a real ``MatchingEngine`` and feed each command's events to ``settle``, as the service
does: fees rounded down per side, what limit and market buys and sells hold, a buy's price improvement
coming back with the fill, cancel-replace re-sizing the hold, releases on cancel and expiry, quote takers
and block confirmers paying in their own command, and end-of-day settlement with ``settle_pending``.

The Hypothesis property runs random command streams (orders of every kind, cancels, replaces, quotes,
takes, blocks, halts, day changes and band changes; three accounts) through the engine and through
``settle`` in both settlement modes, and checks after every command: each instrument's total change is
zero, no hold is negative and every hold is exactly what its open quantity may cost, the clearing account's
running total is the sum of the holds plus the unsettled trades, each account's cash and units are what its
trades say, a buyer never pays more than its limit plus the fee, and both modes agree once a day is settled.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting import exchange as ex
from accounting.exchange import BUY, FOK, IOC, MARKET, SELL, MatchingEngine
from accounting.ledger import CNY, CREDIT, DEBIT
from accounting.market_rules import CHINA_TZ, InstrumentRules
from accounting.settlement import (
    Hold,
    PendingTrade,
    Settlement,
    SettlementError,
    TradeFees,
    buy_hold_fen,
    fee_fen,
    hold_for,
    postings_of,
    settle,
    settle_pending,
)

INSTRUMENT = "CEA-2025"
CLEARING = "EX-CEA-2025"
FEES = "SYS-FEES"
FEE_BP = 10
CLOSE = 5000  # listed band 4500-5500, block band 3500-6500
RULES = InstrumentRules(instrument=INSTRUMENT)
AT = datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ)  # Monday morning session
PM = datetime(2026, 3, 2, 13, 30, tzinfo=CHINA_TZ)  # Monday afternoon: listed and block sessions
LUNCH = datetime(2026, 3, 2, 12, 0, tzinfo=CHINA_TZ)  # closed


def fee(value: int) -> int:
    return value * FEE_BP // 10_000


@dataclass
class Desk:
    """An engine and its settlement, as the service runs them: the holds kept, the changes summed per command."""

    settle_trades: bool = True
    fee_bp: int = FEE_BP
    engine: MatchingEngine = field(default_factory=lambda: MatchingEngine(rules=RULES, previous_close_fen=CLOSE))
    holds: dict[tuple[int, str], Hold] = field(default_factory=dict)
    totals: Counter[tuple[str, str]] = field(default_factory=Counter)
    pending: list[PendingTrade] = field(default_factory=list)
    last: tuple[ex.Event, ...] = ()

    def apply(self, command: ex.Command) -> Settlement:
        band_high = self.engine.price_band.high_fen
        self.last = self.engine.apply(command)
        result = settle(self.last, holds=self.holds, instrument=INSTRUMENT, clearing_account=CLEARING,
                        fees_account=FEES, fee_bp=self.fee_bp, band_high_fen=band_high,
                        settle_trades=self.settle_trades)
        self.holds = result.holds
        self.totals.update(result.changes)
        trades = [e for e in self.last if isinstance(e, ex.TradeExecuted)]
        assert [f.trade_id for f in result.fees] == [t.trade_id for t in trades]
        if not self.settle_trades:
            self.pending += [PendingTrade(trade_id=t.trade_id, price_fen=t.price_fen, quantity_t=t.quantity_t,
                                          buy_account_id=t.buy_account_id, sell_account_id=t.sell_account_id,
                                          buyer_fee_fen=f.buyer_fee_fen, seller_fee_fen=f.seller_fee_fen)
                             for t, f in zip(trades, result.fees, strict=True)]
        return result

    def settle_day(self) -> dict[tuple[str, str], int]:
        """The end-of-day step: deliver the pending trades out of clearing."""
        changes = settle_pending(self.pending, instrument=INSTRUMENT, clearing_account=CLEARING, fees_account=FEES)
        self.totals.update(changes)
        self.pending = []
        return changes

    def total(self, account: str, asset: str) -> int:
        return self.totals[(account, asset)]


def place(account: str, cid: str, side: str, quantity: int, price: int | None = None, *, tif: str = ex.DAY,
          at: datetime = AT) -> ex.PlaceOrder:
    return ex.PlaceOrder(account_id=account, client_order_id=cid, side=side, quantity_t=quantity, price_fen=price,
                         order_type=ex.LIMIT if price is not None else MARKET, time_in_force=tif, at=at)


def accepted_id(desk: Desk) -> int:
    [accepted] = [e for e in desk.last if isinstance(e, ex.OrderAccepted | ex.QuotePosted | ex.BlockProposed)]
    return accepted.order_id if isinstance(accepted, ex.OrderAccepted) else (
        accepted.quote_id if isinstance(accepted, ex.QuotePosted) else accepted.proposal_id)


# ---------------------------------------------------------------------------------------------
# Fees and holds


def test_fees_are_basis_points_of_the_value_rounded_down_to_the_fen() -> None:
    assert [fee_fen(v, 10) for v in (0, 999, 1_000, 1_999, 9_999, 10_000, 49_900)] == [0, 0, 1, 1, 9, 10, 49]
    assert fee_fen(1_234_567, 0) == 0 and fee_fen(1_234_567, 25) == 3_086  # 3086.4175 down
    assert buy_hold_fen(5001, 3, 10) == 15_003 + 15
    assert hold_for(side=SELL, price_fen=5001, quantity_t=3, fee_bp=10) == 3
    desk = Desk()
    desk.apply(place("S", "s", SELL, 3, 4999))
    result = desk.apply(place("B", "b", BUY, 3, 4999))
    value = 4999 * 3  # 14,997 fen: 14.997 fen of fee per side, 14 charged
    assert result.fees == (TradeFees(trade_id=1, buyer_fee_fen=14, seller_fee_fen=14, settled=True),)
    assert desk.total("B", CNY) == -(value + 14) and desk.total("S", CNY) == value - 14
    assert desk.total(FEES, CNY) == 28 and desk.total("B", INSTRUMENT) == 3 and desk.total("S", INSTRUMENT) == -3


def test_a_limit_buy_holds_the_value_and_the_fee_and_a_sell_holds_the_units() -> None:
    desk = Desk()
    buy = desk.apply(place("B", "b", BUY, 10, 5000))
    assert buy.changes == {("B", CNY): -50_050, (CLEARING, CNY): 50_050}
    assert buy.holds == {(1, "B"): Hold(order_id=1, account_id="B", side=BUY, open_t=10, held=50_050, price_fen=5000)}
    sell = desk.apply(place("S", "s", SELL, 7, 5100))
    assert sell.changes == {("S", INSTRUMENT): -7, (CLEARING, INSTRUMENT): 7}
    assert sell.holds[(2, "S")] == Hold(order_id=2, account_id="S", side=SELL, open_t=7, held=7, price_fen=5100)
    assert sell.holds[(1, "B")] == buy.holds[(1, "B")]  # untouched holds are carried


def test_settle_leaves_the_callers_holds_alone_and_a_quiet_command_moves_nothing() -> None:
    desk = Desk()
    desk.apply(place("B", "b", BUY, 10, 5000))
    before = dict(desk.holds)
    kept = desk.holds
    result = desk.apply(ex.Halt(at=AT))
    assert kept == before and result.holds == before and result.changes == {} and result.postings() == ()
    refused = desk.apply(place("B", "b2", BUY, 10, 5000))  # halted: rejected
    assert refused.changes == {} and refused.released == ()


def test_a_market_buy_holds_cash_at_the_bands_upper_limit_and_pays_only_what_it_traded() -> None:
    desk = Desk()
    desk.apply(place("S", "s", SELL, 30, 5010))
    band_high = desk.engine.price_band.high_fen
    assert band_high == 5500
    result = desk.apply(place("B", "b", BUY, 40))  # 30 trade, the 10 left are cancelled (market remainder)
    value = 5010 * 30
    assert [type(e).__name__ for e in desk.last][:3] == ["OrderAccepted", "TradeExecuted", "OrderCancelled"]
    assert result.changes[("B", CNY)] == -(value + fee(value))  # held at 5500 x 40, the rest came back
    assert result.holds == {} and (2, "B") in result.released
    held_at_band = buy_hold_fen(band_high, 40, FEE_BP)
    assert value + fee(value) < held_at_band
    # a market sell holds its units and gets back what did not trade
    desk.apply(place("B", "b2", BUY, 5, 4990))
    sold = desk.apply(place("S", "s2", SELL, 8))
    assert sold.changes[("S", INSTRUMENT)] == -5 and sold.holds == {}


def test_a_partial_fill_below_the_limit_releases_the_price_improvement_at_once() -> None:
    desk = Desk()
    desk.apply(place("S", "s", SELL, 300, 5010))
    result = desk.apply(place("B", "b", BUY, 500, 5050))
    value = 5010 * 300
    rest = buy_hold_fen(5050, 200, FEE_BP)
    assert result.holds[(2, "B")] == Hold(order_id=2, account_id="B", side=BUY, open_t=200, held=rest, price_fen=5050)
    assert result.changes[("B", CNY)] == -(value + fee(value)) - rest
    assert result.changes[(CLEARING, CNY)] == rest  # clearing keeps only what the open 200 t may cost
    assert result.changes[(CLEARING, INSTRUMENT)] == -300
    # the improvement came back: less than the 5050 x 300 the traded part had held
    assert value + fee(value) + rest < buy_hold_fen(5050, 500, FEE_BP)


def test_a_partial_fill_of_a_resting_buy_keeps_exactly_what_its_open_quantity_may_cost() -> None:
    desk = Desk()
    desk.apply(place("B", "b", BUY, 7, 5003))  # 35,021 + 35 held
    for n, quantity in enumerate((1, 2, 4)):
        desk.apply(place("S", f"s{n}", SELL, quantity, 4990))
        hold = desk.holds.get((1, "B"))
        open_t = desk.engine.order_status(1).remaining_t  # type: ignore[union-attr]
        assert (hold.held if hold else 0) == buy_hold_fen(5003, open_t, FEE_BP)
    assert desk.holds == {}
    paid = sum(5003 * q + fee(5003 * q) for q in (1, 2, 4))  # at the resting buy's price: it is the maker
    assert desk.total("B", CNY) == -paid and desk.total(CLEARING, CNY) == 0


# ---------------------------------------------------------------------------------------------
# Replace and release


def test_a_cancel_replace_resizes_the_hold_up_and_down() -> None:
    desk = Desk()
    desk.apply(place("B", "b", BUY, 10, 5000))
    grown = desk.apply(ex.ReplaceOrder(account_id="B", order_id=1, price_fen=5000, quantity_t=20, at=AT))
    more = buy_hold_fen(5000, 20, FEE_BP) - buy_hold_fen(5000, 10, FEE_BP)
    assert grown.changes == {("B", CNY): -more, (CLEARING, CNY): more}
    cheaper = desk.apply(ex.ReplaceOrder(account_id="B", order_id=1, price_fen=4900, quantity_t=5, at=AT))
    back = buy_hold_fen(5000, 20, FEE_BP) - buy_hold_fen(4900, 5, FEE_BP)
    assert cheaper.changes == {("B", CNY): back, (CLEARING, CNY): -back}
    assert desk.holds[(1, "B")] == Hold(order_id=1, account_id="B", side=BUY, open_t=5,
                                        held=buy_hold_fen(4900, 5, FEE_BP), price_fen=4900)
    desk.apply(place("S", "s", SELL, 9, 5100))
    smaller = desk.apply(ex.ReplaceOrder(account_id="S", order_id=2, price_fen=5100, quantity_t=4, at=AT))
    assert smaller.changes == {("S", INSTRUMENT): 5, (CLEARING, INSTRUMENT): -5}
    refused = desk.apply(ex.ReplaceOrder(account_id="S", order_id=2, price_fen=5600, quantity_t=40, at=AT))
    assert refused.changes == {} and desk.holds[(2, "S")].open_t == 4


def test_a_replace_that_crosses_pays_at_the_resting_price_under_its_new_limit() -> None:
    desk = Desk()
    desk.apply(place("S", "s", SELL, 10, 5020))
    desk.apply(place("B", "b", BUY, 10, 5000))
    result = desk.apply(ex.ReplaceOrder(account_id="B", order_id=2, price_fen=5040, quantity_t=15, at=AT))
    value = 5020 * 10
    rest = buy_hold_fen(5040, 5, FEE_BP)
    assert result.changes[("B", CNY)] == buy_hold_fen(5000, 10, FEE_BP) - (value + fee(value)) - rest
    assert desk.holds[(2, "B")].held == rest and desk.total(CLEARING, CNY) == rest


ENDINGS: dict[str, list[ex.Command]] = {
    "cancel": [ex.CancelOrder(account_id="B", order_id=1, at=AT), ex.CancelOrder(account_id="S", order_id=2, at=AT)],
    "close_day": [ex.CloseDay(at=AT)],
    "band": [ex.ChangeBand(at=AT, kind="listed", band_bp=500)],  # 4750-5250: both outside
    # B's sell cancels B's resting buy; S's IOC buy trades with it, cancels S's own sell and expires the rest
    "self_trade": [place("B", "b2", SELL, 5, 4600), place("S", "s2", BUY, 20, 5400, tif=IOC)],
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_what_an_order_still_holds_comes_back_when_it_ends(ending: str) -> None:
    desk = Desk()
    desk.apply(place("B", "b", BUY, 10, 4600))
    desk.apply(place("S", "s", SELL, 10, 5400))
    released: list[tuple[int, str]] = []
    for command in ENDINGS[ending]:
        released += desk.apply(command).released
    assert {(1, "B"), (2, "S")} <= set(released) and desk.holds == {}
    assert desk.total(CLEARING, CNY) == 0 and desk.total(CLEARING, INSTRUMENT) == 0
    if ending == "self_trade":  # 5 t traded at B's 4600; everything else came back
        value = 4600 * 5
        assert (desk.total("B", CNY), desk.total("B", INSTRUMENT)) == (value - fee(value), -5)
        assert (desk.total("S", CNY), desk.total("S", INSTRUMENT)) == (-(value + fee(value)), 5)
    else:
        assert not +desk.totals, desk.totals  # nothing traded: every account is where it started


def test_ioc_fok_and_market_remainders_come_back_in_the_command_that_placed_them() -> None:
    desk = Desk()
    desk.apply(place("S", "s", SELL, 10, 5400))
    ioc = desk.apply(place("C", "c", BUY, 12, 5400, tif=IOC))  # 10 trade, 2 expire
    value = 5400 * 10
    assert ioc.changes[("C", CNY)] == -(value + fee(value)) and ioc.changes[("C", INSTRUMENT)] == 10
    assert ioc.holds == {} and (2, "C") in ioc.released
    desk.apply(place("S", "s2", SELL, 10, 5400))
    for n, order in enumerate((place("C", "f", BUY, 11, 5400, tif=FOK), place("C", "m", BUY, 11, tif=FOK))):
        fok = desk.apply(order)  # 10 on offer: expires whole; the hold opened and closed in one command
        assert fok.changes == {} and fok.released == ((4 + n, "C"),)
    sell = desk.apply(place("B", "b", SELL, 3, 5000, tif=IOC))  # nothing to sell to
    assert sell.changes == {} and sell.released == ((6, "B"),)


def test_settling_a_trade_its_holds_cannot_pay_for_is_an_error_not_a_silent_overdraft() -> None:
    holds = {(1, "S"): Hold(order_id=1, account_id="S", side=SELL, open_t=5, held=5),
             (2, "B"): Hold(order_id=2, account_id="B", side=BUY, open_t=10, held=100, price_fen=5000)}
    trade = ex.TradeExecuted(seq=3, trade_id=1, price_fen=5000, quantity_t=5, buy_order_id=2, sell_order_id=1,
                             buy_account_id="B", sell_account_id="S", aggressor_side=BUY)
    with pytest.raises(SettlementError) as raised:
        settle((trade,), holds=holds, instrument=INSTRUMENT, clearing_account=CLEARING, fees_account=FEES,
               fee_bp=FEE_BP, band_high_fen=5500)
    assert raised.value.code == "settlement_error"
    oversold = ex.TradeExecuted(seq=3, trade_id=1, price_fen=10, quantity_t=6, buy_order_id=2, sell_order_id=1,
                                buy_account_id="B", sell_account_id="S", aggressor_side=BUY)
    with pytest.raises(SettlementError):
        settle((oversold,), holds=holds, instrument=INSTRUMENT, clearing_account=CLEARING, fees_account=FEES,
               fee_bp=FEE_BP, band_high_fen=5500)


# ---------------------------------------------------------------------------------------------
# Quotes, takes and blocks


def test_a_quote_taker_pays_for_its_take_in_the_same_command() -> None:
    desk = Desk()
    desk.apply(ex.PostQuote(account_id="S", client_order_id="q", side=SELL, price_fen=5100, quantity_t=1000, at=AT))
    quote_id = accepted_id(desk)
    result = desk.apply(ex.TakeQuote(account_id="B", client_order_id="t", quote_id=quote_id, quantity_t=400, at=AT))
    value = 5100 * 400
    assert result.changes == {("B", CNY): -(value + fee(value)), ("B", INSTRUMENT): 400,
                              ("S", CNY): value - fee(value), (CLEARING, INSTRUMENT): -400,
                              (FEES, CNY): 2 * fee(value)}
    assert result.holds == {(quote_id, "S"): Hold(order_id=quote_id, account_id="S", side=SELL, open_t=600, held=600,
                                                  price_fen=5100)}
    take_id = quote_id + 1
    assert (take_id, "B") in result.released  # the taker's hold opened and closed in this command


def test_a_buy_quote_taken_in_part_keeps_exactly_what_its_rest_may_cost() -> None:
    desk = Desk()
    desk.apply(ex.PostQuote(account_id="B", client_order_id="q", side=BUY, price_fen=5003, quantity_t=7, at=AT))
    posted = desk.total("B", CNY)
    assert posted == -buy_hold_fen(5003, 7, FEE_BP)
    result = desk.apply(ex.TakeQuote(account_id="S", client_order_id="t", quote_id=1, quantity_t=3, at=AT))
    value = 5003 * 3
    assert result.holds[(1, "B")].held == buy_hold_fen(5003, 4, FEE_BP)
    assert desk.total("B", CNY) == -(value + fee(value)) - buy_hold_fen(5003, 4, FEE_BP)
    assert desk.total("S", CNY) == value - fee(value) and desk.total("S", INSTRUMENT) == -3
    desk.apply(ex.CancelQuote(account_id="B", quote_id=1, at=AT))
    assert desk.holds == {} and desk.total("B", CNY) == -(value + fee(value))


@pytest.mark.parametrize("initiator_side", [SELL, BUY])
def test_a_block_confirmer_pays_or_delivers_in_the_command_that_confirms(initiator_side: str) -> None:
    desk = Desk()
    quantity, price = 100_000, 5200
    desk.apply(ex.ProposeBlock(account_id="I", client_order_id="p", counterparty_id="K", side=initiator_side,
                               price_fen=price, quantity_t=quantity, at=PM))
    held = hold_for(side=initiator_side, price_fen=price, quantity_t=quantity, fee_bp=FEE_BP)
    asset = CNY if initiator_side == BUY else INSTRUMENT
    assert desk.total("I", asset) == -held and desk.total(CLEARING, asset) == held
    result = desk.apply(ex.ConfirmBlock(account_id="K", proposal_id=1, at=PM))
    value = price * quantity
    buyer, seller = ("I", "K") if initiator_side == BUY else ("K", "I")
    assert result.holds == {}
    assert desk.total(buyer, CNY) == -(value + fee(value)) and desk.total(buyer, INSTRUMENT) == quantity
    assert desk.total(seller, CNY) == value - fee(value) and desk.total(seller, INSTRUMENT) == -quantity
    assert desk.total(CLEARING, CNY) == 0 and desk.total(CLEARING, INSTRUMENT) == 0


@pytest.mark.parametrize("answer", ["decline", "withdraw", "close"])
def test_a_block_that_ends_without_a_trade_gives_its_hold_back(answer: str) -> None:
    desk = Desk()
    desk.apply(ex.ProposeBlock(account_id="I", client_order_id="p", counterparty_id="K", side=BUY, price_fen=5200,
                               quantity_t=100_000, at=PM))
    commands: dict[str, ex.Command] = {"decline": ex.DeclineBlock(account_id="K", proposal_id=1, at=PM),
                                       "withdraw": ex.WithdrawBlock(account_id="I", proposal_id=1, at=PM),
                                       "close": ex.CloseDay(at=PM)}
    result = desk.apply(commands[answer])
    assert result.released == ((1, "I"),) and desk.holds == {} and desk.total("I", CNY) == 0


# ---------------------------------------------------------------------------------------------
# End-of-day settlement


def test_end_of_day_settlement_keeps_trades_in_clearing_until_settle_pending_delivers_them() -> None:
    at_trade, at_close = Desk(), Desk(settle_trades=False)
    commands = [place("S", "s", SELL, 300, 5010), place("B", "b", BUY, 500, 5050),
                ex.PostQuote(account_id="S", client_order_id="q", side=SELL, price_fen=5100, quantity_t=50, at=AT),
                ex.TakeQuote(account_id="C", client_order_id="t", quote_id=3, quantity_t=20, at=AT)]
    for command in commands:
        at_trade.apply(command)
        result = at_close.apply(command)
        assert all(not f.settled for f in result.fees)
    value = 5010 * 300 + 5100 * 20
    buyer_fees = fee(5010 * 300) + fee(5100 * 20)
    open_buy = buy_hold_fen(5050, 200, FEE_BP)
    # the buyers paid into clearing; the sellers and the fee account wait for the close
    assert at_close.total(CLEARING, CNY) == open_buy + value + buyer_fees
    assert at_close.total(CLEARING, INSTRUMENT) == 300 + 20 + 30  # delivered at the close, and the quote's rest
    assert at_close.total("S", CNY) == 0 and at_close.total(FEES, CNY) == 0 and at_close.total("B", INSTRUMENT) == 0
    assert at_close.total("B", CNY) == at_trade.total("B", CNY)
    at_close.apply(ex.CloseDay(at=AT))
    at_trade.apply(ex.CloseDay(at=AT))
    delivered = at_close.settle_day()
    assert delivered[("B", INSTRUMENT)] == 300 and delivered[("C", INSTRUMENT)] == 20
    assert sum(v for (_, asset), v in delivered.items() if asset == CNY) == 0
    assert at_close.totals == at_trade.totals  # once settled, the two modes agree to the fen
    assert settle_pending([], instrument=INSTRUMENT, clearing_account=CLEARING, fees_account=FEES) == {}


def test_postings_debit_what_decreases_and_credit_what_increases_in_a_stable_order() -> None:
    changes = {("S", CNY): 49_851, ("B", CNY): -49_949, (FEES, CNY): 98, ("B", INSTRUMENT): 10,
               (CLEARING, INSTRUMENT): -10, ("X", CNY): 0}
    postings = postings_of(changes)
    assert [(p.account_id, p.instrument, p.side, p.quantity) for p in postings] == [
        ("B", INSTRUMENT, CREDIT, 10), ("B", CNY, DEBIT, 49_949), (CLEARING, INSTRUMENT, DEBIT, 10),
        ("S", CNY, CREDIT, 49_851), (FEES, CNY, CREDIT, 98)]
    assert postings_of({}) == ()


# ---------------------------------------------------------------------------------------------
# Property: random streams through the engine and settle, both modes


ACCOUNTS = ("A", "B", "C")


def owner(engine: MatchingEngine, some_id: int, fallback: str, *, counterparty: bool = False) -> str:
    """The account behind an order, quote or proposal (its counterparty when asked), or ``fallback``."""
    if (order := engine.order_status(some_id)) is not None:
        return order.account_id
    if (quote := engine.quote_status(some_id)) is not None:
        return quote.account_id
    if (block := engine.block_status(some_id)) is not None:
        return block.counterparty_id if counterparty else block.account_id
    return fallback


def pick(rng: random.Random, ids: list[int]) -> int:
    """One of ``ids``, mostly a recent one; now and then an id nobody has."""
    return rng.choice(ids[-8:]) if ids and rng.random() < 0.95 else rng.randint(1, 10_000)


def next_command(rng: random.Random, engine: MatchingEngine, number: int) -> ex.Command:  # noqa: C901 - a kind a branch
    """A random command of every kind, mostly valid (own orders cancelled, open quotes taken), some refused."""
    at = rng.choices((AT, PM, LUNCH), weights=(55, 40, 5))[0]
    acct, side, cid = rng.choice(ACCOUNTS), rng.choice((BUY, SELL)), f"c{number}"
    price = CLOSE + rng.randint(-30, 30) * 10 if rng.random() < 0.95 else rng.choice((4400, 5600, 5005))
    qty = rng.randint(1, 40)
    open_ids = [o.order_id for o in engine.orders() if o.remaining_t]
    quotes = [q.quote_id for q in engine.quotes() if q.remaining_t]
    blocks = [b.proposal_id for b in engine.blocks() if b.state == ex.PROPOSED]
    roll = rng.random()
    if roll < 0.50:
        return place(acct, cid, side, qty, price, tif=rng.choices((ex.DAY, IOC, FOK), weights=(75, 12, 13))[0], at=at)
    if roll < 0.58:
        return place(acct, cid, side, qty, tif=rng.choice((ex.DAY, IOC, FOK)), at=at)
    if roll < 0.68:
        some_id = pick(rng, open_ids)
        return ex.CancelOrder(account_id=owner(engine, some_id, acct) if rng.random() < 0.85 else acct,
                              order_id=some_id, at=at)
    if roll < 0.75:
        some_id = pick(rng, open_ids)
        return ex.ReplaceOrder(account_id=owner(engine, some_id, acct) if rng.random() < 0.85 else acct,
                               order_id=some_id, price_fen=price, quantity_t=qty, at=at)
    if roll < 0.82:
        return ex.PostQuote(account_id=acct, client_order_id=cid, side=side, price_fen=price, quantity_t=qty, at=at,
                            allow_partial=rng.choice((None, None, False)))
    if roll < 0.88:
        some_id = pick(rng, quotes)
        status = engine.quote_status(some_id)
        wanted = status.remaining_t if status is not None and rng.random() < 0.3 else qty
        return ex.TakeQuote(account_id=acct, client_order_id=cid, quote_id=some_id, quantity_t=wanted, at=at)
    if roll < 0.90:
        some_id = pick(rng, quotes)
        return ex.CancelQuote(account_id=owner(engine, some_id, acct), quote_id=some_id, at=at)
    if roll < 0.93:
        others = [a for a in ACCOUNTS if a != acct] if rng.random() < 0.9 else [acct]
        return ex.ProposeBlock(account_id=acct, client_order_id=cid, counterparty_id=rng.choice(others), side=side,
                               price_fen=CLOSE + rng.randint(-160, 160) * 10,
                               quantity_t=rng.choice((99_999, 100_000, 100_000, 100_003)), at=PM)
    if roll < 0.96:
        some_id, kind = pick(rng, blocks), rng.choices(("confirm", "decline", "withdraw"), weights=(6, 2, 2))[0]
        answer = {"confirm": ex.ConfirmBlock, "decline": ex.DeclineBlock, "withdraw": ex.WithdrawBlock}[kind]
        return answer(account_id=owner(engine, some_id, acct, counterparty=kind != "withdraw"), proposal_id=some_id,
                      at=PM if rng.random() < 0.9 else at)
    return rng.choice((ex.Halt(at=at), ex.Resume(at=at), ex.Resume(at=at), ex.Resume(at=at), ex.CloseDay(at=at),
                       ex.OpenDay(at=at, previous_close_fen=CLOSE + rng.randint(-400, 400)),
                       ex.ChangeBand(at=at, kind=rng.choice(("listed", "block")), band_bp=rng.choice((300, 2_000)))))


@dataclass
class TradeTotals:
    """What each account's trades say it paid, received, bought and sold (settled trades only on the receiving side)."""

    cash: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    fees: int = 0


def limits_before(engine: MatchingEngine) -> dict[int, int]:
    """Each resting buy's limit before ``command`` (what a trade of it may cost per tonne)."""
    return {o.order_id: o.price_fen or 0 for o in engine.orders() if o.side == BUY and o.remaining_t}


def check_trade_prices(desk: Desk, command: ex.Command, before: dict[int, int], band_high: int) -> None:
    """A buyer never pays more than its limit plus the fee on it."""
    for event in desk.last:
        if not isinstance(event, ex.TradeExecuted):
            continue
        if event.mode == ex.MODE_CONTINUOUS:
            buy = desk.engine.order_status(event.buy_order_id)
            assert buy is not None
            if isinstance(command, ex.PlaceOrder | ex.ReplaceOrder) and event.aggressor_side == BUY:
                limit = buy.price_fen if buy.price_fen is not None else band_high  # a market buy: the band
            else:
                limit = before[event.buy_order_id]
            assert event.price_fen <= limit, (event, limit)
        else:
            limit = event.price_fen  # quotes and blocks trade at their own price
        value = event.price_fen * event.quantity_t
        assert value + fee_fen(value, FEE_BP) <= buy_hold_fen(limit, event.quantity_t, FEE_BP)


def expected_holds(engine: MatchingEngine) -> dict[tuple[int, str], tuple[int, int]]:
    """(open tonnes, held) of every open order, quote and block proposal, as the engine says they stand."""
    out = {}
    for o in engine.orders():
        if o.remaining_t:
            out[(o.order_id, o.account_id)] = (o.remaining_t, hold_for(side=o.side, price_fen=o.price_fen or 0,
                                                                       quantity_t=o.remaining_t, fee_bp=FEE_BP))
    for q in engine.quotes():
        if q.remaining_t:
            out[(q.quote_id, q.account_id)] = (q.remaining_t, hold_for(side=q.side, price_fen=q.price_fen,
                                                                       quantity_t=q.remaining_t, fee_bp=FEE_BP))
    for b in engine.blocks():
        if b.state == ex.PROPOSED:
            out[(b.proposal_id, b.account_id)] = (b.quantity_t, hold_for(side=b.side, price_fen=b.price_fen,
                                                                         quantity_t=b.quantity_t, fee_bp=FEE_BP))
    return out


def check_desk(desk: Desk, result: Settlement, trades: TradeTotals) -> None:
    for asset in (CNY, INSTRUMENT):  # conservation, per command and in total
        assert sum(v for (_, a), v in result.changes.items() if a == asset) == 0
        assert sum(v for (_, a), v in desk.totals.items() if a == asset) == 0
    assert all(h.held >= 0 and h.open_t > 0 for h in desk.holds.values()), desk.holds
    assert {k: (h.open_t, h.held) for k, h in desk.holds.items()} == expected_holds(desk.engine)
    held_cash = sum(h.held for h in desk.holds.values() if h.side == BUY)
    held_units = sum(h.held for h in desk.holds.values() if h.side == SELL)
    owed_cash = sum(t.price_fen * t.quantity_t + t.buyer_fee_fen for t in desk.pending)
    owed_units = sum(t.quantity_t for t in desk.pending)
    assert desk.total(CLEARING, CNY) == held_cash + owed_cash
    assert desk.total(CLEARING, INSTRUMENT) == held_units + owed_units
    for acct in ACCOUNTS:  # an account's money and units are its trades', apart from what its orders hold
        mine = [h for h in desk.holds.values() if h.account_id == acct]
        assert desk.total(acct, CNY) + sum(h.held for h in mine if h.side == BUY) == trades.cash[acct]
        assert desk.total(acct, INSTRUMENT) + sum(h.held for h in mine if h.side == SELL) == trades.units[acct]
    assert desk.total(FEES, CNY) == trades.fees


def record_trades(desk: Desk, trades: TradeTotals, settled_now: list[PendingTrade]) -> None:
    """The buyer pays (and the seller delivers) at the trade; the receiving side counts once settled."""
    for event in desk.last:
        if isinstance(event, ex.TradeExecuted):
            value = event.price_fen * event.quantity_t
            trades.cash[event.buy_account_id] -= value + fee(value)
            trades.units[event.sell_account_id] -= event.quantity_t
            if desk.settle_trades:
                settled_now.append(PendingTrade(trade_id=event.trade_id, price_fen=event.price_fen,
                                                quantity_t=event.quantity_t, buy_account_id=event.buy_account_id,
                                                sell_account_id=event.sell_account_id, buyer_fee_fen=fee(value),
                                                seller_fee_fen=fee(value)))
    for t in settled_now:
        trades.cash[t.sell_account_id] += t.price_fen * t.quantity_t - t.seller_fee_fen
        trades.units[t.buy_account_id] += t.quantity_t
        trades.fees += t.buyer_fee_fen + t.seller_fee_fen


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 120))
def test_settlement_conserves_cash_and_units_and_clearing_holds_exactly_the_holds(seed: int, count: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible stream
    at_trade, at_close = Desk(), Desk(settle_trades=False)
    ledgers = {True: TradeTotals(), False: TradeTotals()}
    for number in range(count):
        command = next_command(rng, at_trade.engine, number)
        for desk in (at_trade, at_close):
            before, band_high = limits_before(desk.engine), desk.engine.price_band.high_fen
            result = desk.apply(command)
            settled_now = desk.pending if isinstance(command, ex.CloseDay) and not desk.settle_trades else []
            record_trades(desk, ledgers[desk.settle_trades], list(settled_now))
            if settled_now:
                desk.settle_day()
            check_trade_prices(desk, command, before, band_high)
            check_desk(desk, result, ledgers[desk.settle_trades])
        assert at_trade.last == at_close.last  # the engine does not know how trades settle
        if not at_close.pending:
            assert at_close.totals == at_trade.totals  # nothing unsettled: both modes agree to the fen

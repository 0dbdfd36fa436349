"""Sealed-bid uniform-price auctions (issue 5 §3): bid rules, ranking and tie rule, clearing with a partial
marginal fill, cancellation under the cover ratio, prefunding and refunds; properties on random bids."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.auction import (
    CANCELLED,
    CLEARED,
    AuctionError,
    AuctionTerms,
    Bid,
    cash_to_reserve_fen,
    check_bid,
    clear_auction,
    rank_bids,
)
from accounting.errors import AccountingError
from accounting.ledger import LedgerError

OPENS = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLOSES = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


def terms(**overrides: object) -> AuctionTerms:
    values: dict[str, object] = {
        "auction_id": "A-2026-01", "instrument": "CEA-2025", "offered_t": 1000, "reserve_price_fen": 50_00,
        "min_bid_t": 100, "bidder_cap_t": 600, "opens_at": OPENS, "closes_at": CLOSES,
    }
    values.update(overrides)
    return AuctionTerms(**values)  # type: ignore[arg-type]


def bid(bid_id: str, bidder: str, price_fen: int, quantity_t: int, minute: int = 0) -> Bid:
    return Bid(bid_id=bid_id, bidder_id=bidder, price_fen=price_fen, quantity_t=quantity_t,
               submitted_at=OPENS + timedelta(minutes=minute))


# --- clearing ------------------------------------------------------------------------------------


def test_uniform_price_clearing_with_a_partial_marginal_bid() -> None:
    bids = [bid("b1", "X", 70_00, 400), bid("b2", "Y", 65_00, 300), bid("b3", "Z", 60_00, 500),
            bid("b4", "X", 55_00, 200)]
    result = clear_auction(terms=terms(), bids=bids)
    assert result.status == CLEARED
    assert result.clearing_price_fen == 60_00  # the lowest bid that receives units
    assert [(b.bid_id, b.filled_t) for b in result.bids] == [("b1", 400), ("b2", 300), ("b3", 300), ("b4", 0)]
    assert (result.allocated_t, result.unsold_t, result.revenue_fen) == (1000, 0, 6_000_000)
    by_bidder = {b.bidder_id: b for b in result.bidders}
    # X reserved 400 × 7000 + 200 × 5500 = 3 900 000; paid 400 × 6000 = 2 400 000
    assert (by_bidder["X"].allocated_t, by_bidder["X"].reserved_fen, by_bidder["X"].paid_fen,
            by_bidder["X"].refund_fen) == (400, 3_900_000, 2_400_000, 1_500_000)
    # Z reserved 500 × 6000, won 300 at 6000: 1 200 000 back
    assert (by_bidder["Z"].allocated_t, by_bidder["Z"].paid_fen, by_bidder["Z"].refund_fen) == (300, 1_800_000,
                                                                                                1_200_000)
    assert sum(b.paid_fen for b in result.bidders) == result.revenue_fen


def test_at_equal_price_the_earlier_bid_is_filled_first_then_the_smaller_bid_id() -> None:
    bids = [bid("b9", "late", 60_00, 500, minute=30), bid("b5", "early", 60_00, 500, minute=5),
            bid("b1", "first", 80_00, 300, minute=50), bid("b2", "tie", 60_00, 500, minute=30)]
    assert [b.bid_id for b in rank_bids(bids)] == ["b1", "b5", "b2", "b9"]
    result = clear_auction(terms=terms(), bids=bids)
    assert [(b.bid_id, b.filled_t) for b in result.bids] == [("b1", 300), ("b5", 500), ("b2", 200), ("b9", 0)]
    assert result.clearing_price_fen == 60_00


def test_an_auction_below_the_cover_ratio_is_cancelled_and_refunds_everything() -> None:
    bids = [bid("b1", "X", 70_00, 500), bid("b2", "Y", 65_00, 400)]  # 900 t < 1.0 × 1000 t
    result = clear_auction(terms=terms(), bids=bids)
    assert result.status == CANCELLED
    assert (result.clearing_price_fen, result.allocated_t, result.revenue_fen) == (None, 0, 0)
    assert all(b.refund_fen == b.reserved_fen and b.paid_fen == 0 for b in result.bids)
    assert result.cancellation_reason


def test_an_auction_without_bids_is_cancelled() -> None:
    assert clear_auction(terms=terms(cover_ratio=Decimal(0)), bids=[]).status == CANCELLED


def test_with_a_lower_cover_ratio_an_undersubscribed_auction_clears_and_keeps_the_rest() -> None:
    bids = [bid("b1", "X", 70_00, 500), bid("b2", "Y", 65_00, 200)]  # 700 t ≥ 0.6 × 1000 t
    result = clear_auction(terms=terms(cover_ratio=Decimal("0.6")), bids=bids)
    assert result.status == CLEARED
    assert (result.clearing_price_fen, result.allocated_t, result.unsold_t, result.revenue_fen) == (
        65_00, 700, 300, 4_550_000)


def test_prefunding_reserves_price_times_quantity() -> None:
    assert cash_to_reserve_fen(bid("b", "X", 61_23, 100)) == 612_300


# --- bid rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("the_bid", "earlier", "cash", "expected"), [
    (bid("b", "X", 60_00, 100, minute=-1), [], 10**9, "outside_bid_window"),
    (bid("b", "X", 60_00, 100, minute=120), [], 10**9, "outside_bid_window"),  # the window is [open, close)
    (bid("b", "X", 49_99, 100), [], 10**9, "below_reserve_price"),
    (bid("b", "X", 60_00, 99), [], 10**9, "below_minimum_bid"),
    (bid("b", "X", 60_00, 500), [bid("a", "X", 70_00, 200)], 10**9, "bidder_cap_exceeded"),
    (bid("a", "Y", 60_00, 100), [bid("a", "X", 70_00, 200)], 10**9, "duplicate_bid"),
    (bid("b", "X", 60_00, 100), [], 599_999, "insufficient_funds"),
])
def test_bids_breaking_a_rule_are_refused(the_bid: Bid, earlier: list[Bid], cash: int, expected: str) -> None:
    with pytest.raises(AuctionError) as error:
        check_bid(terms=terms(), bid=the_bid, earlier_bids=earlier, available_cash_fen=cash)
    assert error.value.code == expected


def test_a_fully_funded_bid_within_the_cap_returns_the_cash_to_reserve() -> None:
    assert check_bid(terms=terms(), bid=bid("b", "X", 60_00, 400), earlier_bids=[bid("a", "X", 70_00, 200)],
                     available_cash_fen=2_400_000) == 2_400_000


def test_lots_are_enforced() -> None:
    with pytest.raises(AuctionError) as error:
        check_bid(terms=terms(lot_t=50), bid=bid("b", "X", 60_00, 120), available_cash_fen=10**9)
    assert error.value.code == "not_a_lot_multiple"


def test_clearing_checks_every_bid_again() -> None:
    with pytest.raises(AuctionError) as error:
        clear_auction(terms=terms(), bids=[bid("b1", "X", 60_00, 400), bid("b2", "X", 60_00, 400)])
    assert error.value.code == "bidder_cap_exceeded"


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"price_fen": 60.5}, "fractional_quantity"), ({"price_fen": -1}, "negative_quantity"),
    ({"quantity_t": 100.5}, "fractional_quantity"), ({"quantity_t": True}, "not_an_integer"),
    ({"submitted_at": datetime(2026, 3, 2, 9, 30)}, "naive_datetime"), ({"bidder_id": ""}, "missing_value"),
])
def test_malformed_bids_are_refused(kwargs: dict[str, object], expected: str) -> None:
    values: dict[str, object] = {"bid_id": "b", "bidder_id": "X", "price_fen": 60_00, "quantity_t": 100,
                                 "submitted_at": OPENS}
    values.update(kwargs)
    with pytest.raises((AuctionError, LedgerError)) as error:
        Bid(**values)  # type: ignore[arg-type]
    assert isinstance(error.value, AccountingError)
    assert error.value.code == expected


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"instrument": "CCER"}, "not_an_allowance"), ({"instrument": "CEA-1990"}, "unknown_vintage"),
    ({"closes_at": OPENS}, "invalid_bid_window"), ({"opens_at": datetime(2026, 3, 2, 9)}, "naive_datetime"),
    ({"cover_ratio": Decimal(-1)}, "invalid_cover_ratio"), ({"cover_ratio": 1.0}, "invalid_cover_ratio"),
    ({"bidder_cap_t": 50}, "invalid_bidder_cap"), ({"offered_t": 0}, "zero_quantity"),
    ({"reserve_price_fen": 50.0}, "not_an_integer"),
])
def test_bad_terms_are_refused(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises((AuctionError, LedgerError)) as error:
        terms(**overrides)
    assert isinstance(error.value, AccountingError)
    assert error.value.code == expected


# --- properties ----------------------------------------------------------------------------------

RESERVE = 50_00


@st.composite
def auctions(draw: st.DrawFn) -> tuple[AuctionTerms, list[Bid]]:
    offered = draw(st.integers(min_value=1, max_value=5000))
    cap = draw(st.integers(min_value=10, max_value=6000))
    the_terms = terms(offered_t=offered, reserve_price_fen=RESERVE, min_bid_t=10, bidder_cap_t=cap,
                      cover_ratio=draw(st.sampled_from([Decimal(0), Decimal("0.5"), Decimal(1)])))
    bids: list[Bid] = []
    used: dict[str, int] = {}
    for index in range(draw(st.integers(min_value=0, max_value=12))):
        bidder = draw(st.sampled_from("ABCDE"))
        room = cap - used.get(bidder, 0)
        if room < 10:
            continue
        quantity = draw(st.integers(min_value=10, max_value=room))
        used[bidder] = used.get(bidder, 0) + quantity
        bids.append(bid(f"b{index:02d}", bidder, draw(st.integers(min_value=RESERVE, max_value=RESERVE + 30)),
                        quantity, minute=draw(st.integers(min_value=0, max_value=5))))
    return the_terms, bids


@settings(max_examples=300, deadline=None)
@given(case=auctions(), seed=st.integers(min_value=0, max_value=2**16))
def test_an_auction_never_oversells_never_clears_below_reserve_and_collects_exactly(
        case: tuple[AuctionTerms, list[Bid]], seed: int) -> None:
    the_terms, bids = case
    result = clear_auction(terms=the_terms, bids=bids)
    assert 0 <= result.allocated_t <= the_terms.offered_t
    assert result.allocated_t + result.unsold_t == the_terms.offered_t
    assert result.revenue_fen == (result.clearing_price_fen or 0) * result.allocated_t
    assert sum(b.paid_fen for b in result.bids) == result.revenue_fen
    assert sum(b.refund_fen for b in result.bids) + result.revenue_fen == sum(cash_to_reserve_fen(b) for b in bids)
    for outcome in result.bids:
        assert 0 <= outcome.filled_t <= outcome.quantity_t
        assert 0 <= outcome.refund_fen <= outcome.reserved_fen
    if result.status == CLEARED:
        price = result.clearing_price_fen
        assert price is not None and price >= the_terms.reserve_price_fen
        assert all(b.filled_t == b.quantity_t for b in result.bids if b.price_fen > price)
        assert all(b.filled_t == 0 for b in result.bids if b.price_fen < price)
        assert all(b.allocated_t <= the_terms.bidder_cap_t for b in result.bidders)
    shuffled = list(bids)
    random.Random(seed).shuffle(shuffled)
    assert clear_auction(terms=the_terms, bids=shuffled) == result  # the input order never matters

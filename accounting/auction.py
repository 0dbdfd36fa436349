"""Paid allocation: sealed-bid, uniform-price auctions of allowances (pure clearing rules).

The design follows the EU/RGGI/Shanghai format (market-rules.md §2.1, §1.9): one bidding window,
sealed bids, everyone pays the clearing price.

* A bid is a whole number of tonnes (at least ``min_bid_t``, in multiples of ``lot_t``) at a price in
  fen per tonne not below the reserve price, submitted inside the window ``[opens_at, closes_at)``.
  A bidder's bids together stay within ``bidder_cap_t``.
* Prefunding: a bid reserves price × quantity fen of the bidder's available cash
  (``cash_to_reserve_fen``); ``check_bid`` refuses a bid the bidder cannot fund
  (``insufficient_funds``). The service moves the reserved cash to the auction account.
* **Ranking**: price, highest first; at equal price the **earlier bid first** (``submitted_at``),
  then the smaller ``bid_id`` (a total order, so the result never depends on input order). Time
  priority rewards committing early, as in the Shanghai pilot (price, then time).
* **Clearing**: bids are filled in rank order until the offered volume is used up; the bid that
  crosses the offered volume (the marginal bid) gets the remainder (a partial fill) and all later
  bids get nothing. The clearing price is the price of the lowest bid that receives units, and
  every winner pays it.
* **Cancellation**: when total bid volume < ``cover_ratio`` × offered volume, nothing is sold and
  every bidder gets the reserved cash back. With a cover ratio below 1 the auction may clear with
  units unsold; they stay in the auction account.

Amounts are ``int``: tonnes and fen. Revenue = clearing price × allocated tonnes, exactly; a bid's
refund = reserved - paid.

>>> from datetime import UTC, datetime
>>> t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
>>> terms = AuctionTerms(auction_id="A1", instrument="CEA-2025", offered_t=100, reserve_price_fen=5000,
...                      min_bid_t=10, bidder_cap_t=80, opens_at=t0, closes_at=datetime(2026, 3, 2, 11, tzinfo=UTC))
>>> bids = [Bid(bid_id="b1", bidder_id="X", price_fen=6000, quantity_t=60, submitted_at=t0),
...         Bid(bid_id="b2", bidder_id="Y", price_fen=5500, quantity_t=70, submitted_at=t0)]
>>> result = clear_auction(terms=terms, bids=bids)
>>> result.clearing_price_fen, [(b.bid_id, b.filled_t, b.refund_fen) for b in result.bids], result.revenue_fen
(5500, [('b1', 60, 30000), ('b2', 40, 165000)], 550000)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from accounting.errors import AccountingError
from accounting.ledger import ALLOWANCE, check_quantity, parse_instrument

CLEARED = "cleared"
CANCELLED = "cancelled"
#: A cover ratio above this is a typo (e.g. a percentage written as 100).
MAX_COVER_RATIO = Decimal(10)


class AuctionError(AccountingError):
    """An auction term, bid or clearing the rules refuse; ``code`` says which rule."""

    code = "auction_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def _aware(moment: datetime, *, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise AuctionError(f"{name} must be a timezone-aware datetime, got {moment!r}", code="naive_datetime")
    return moment


@dataclass(frozen=True, slots=True, kw_only=True)
class AuctionTerms:
    """What is offered and on which terms; prices in fen per tonne, quantities in whole tonnes."""

    auction_id: str
    instrument: str
    offered_t: int
    reserve_price_fen: int
    min_bid_t: int
    bidder_cap_t: int
    opens_at: datetime
    closes_at: datetime
    lot_t: int = 1
    cover_ratio: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        if parse_instrument(self.instrument).kind != ALLOWANCE:
            raise AuctionError(f"only allowances are auctioned, not {self.instrument}", code="not_an_allowance")
        check_quantity(self.offered_t, unit="t")
        check_quantity(self.reserve_price_fen, unit="fen")
        check_quantity(self.min_bid_t, unit="t")
        check_quantity(self.lot_t, unit="t")
        check_quantity(self.bidder_cap_t, unit="t")
        if self.bidder_cap_t < self.min_bid_t:
            raise AuctionError("the per-bidder cap is below the minimum bid", code="invalid_bidder_cap")
        if not isinstance(self.cover_ratio, Decimal) or not 0 <= self.cover_ratio <= MAX_COVER_RATIO:
            raise AuctionError(f"cover ratio must be a Decimal from 0 to {MAX_COVER_RATIO}, got {self.cover_ratio!r}",
                               code="invalid_cover_ratio")
        if _aware(self.opens_at, name="opens_at") >= _aware(self.closes_at, name="closes_at"):
            raise AuctionError("the bid window must open before it closes", code="invalid_bid_window")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bid:
    """A sealed bid: ``quantity_t`` tonnes at ``price_fen`` per tonne."""

    bid_id: str
    bidder_id: str
    price_fen: int
    quantity_t: int
    submitted_at: datetime

    def __post_init__(self) -> None:
        if not self.bid_id or not self.bidder_id:
            raise AuctionError("a bid needs a bid id and a bidder id", code="missing_value")
        check_quantity(self.price_fen, unit="fen")
        check_quantity(self.quantity_t, unit="t")
        _aware(self.submitted_at, name="submitted_at")


def cash_to_reserve_fen(bid: Bid) -> int:
    """Cash a bid locks while the auction runs: price × quantity, in fen."""
    return bid.price_fen * bid.quantity_t


def _check_terms_of(terms: AuctionTerms, bid: Bid) -> None:
    if not terms.opens_at <= bid.submitted_at < terms.closes_at:
        raise AuctionError(f"bid {bid.bid_id} is outside the bid window", code="outside_bid_window")
    if bid.price_fen < terms.reserve_price_fen:
        raise AuctionError(f"bid {bid.bid_id} is below the reserve price of {terms.reserve_price_fen} fen",
                           code="below_reserve_price")
    if bid.quantity_t < terms.min_bid_t:
        raise AuctionError(f"bid {bid.bid_id} is below the minimum bid of {terms.min_bid_t} t",
                           code="below_minimum_bid")
    if bid.quantity_t % terms.lot_t:
        raise AuctionError(f"bid {bid.bid_id} is not a multiple of {terms.lot_t} t", code="not_a_lot_multiple")


def check_bid(*, terms: AuctionTerms, bid: Bid, earlier_bids: Sequence[Bid] = (), available_cash_fen: int) -> int:
    """The cash to reserve for ``bid``, or AuctionError naming the broken rule.

    ``earlier_bids`` are the bids already accepted in this auction (any bidder); the bidder's total
    must stay within the cap (``bidder_cap_exceeded``) and a bid id is used once (``duplicate_bid``).
    """
    _check_terms_of(terms, bid)
    if any(other.bid_id == bid.bid_id for other in earlier_bids):
        raise AuctionError(f"bid id {bid.bid_id} already used", code="duplicate_bid")
    own = sum(other.quantity_t for other in earlier_bids if other.bidder_id == bid.bidder_id)
    if own + bid.quantity_t > terms.bidder_cap_t:
        raise AuctionError(f"bidder {bid.bidder_id} would bid for {own + bid.quantity_t} t, "
                           f"above the cap of {terms.bidder_cap_t} t", code="bidder_cap_exceeded")
    needed = cash_to_reserve_fen(bid)
    if needed > check_quantity(available_cash_fen, unit="fen", allow_zero=True):
        raise AuctionError(f"bid {bid.bid_id} needs {needed} fen, {available_cash_fen} fen available",
                           code="insufficient_funds")
    return needed


@dataclass(frozen=True, slots=True, kw_only=True)
class BidOutcome:
    """What one bid won, paid and gets back (fen)."""

    bid_id: str
    bidder_id: str
    price_fen: int
    quantity_t: int
    filled_t: int
    reserved_fen: int
    paid_fen: int
    refund_fen: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BidderOutcome:
    """One bidder's totals: allowances won, cash paid, cash returned."""

    bidder_id: str
    allocated_t: int
    reserved_fen: int
    paid_fen: int
    refund_fen: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AuctionResult:
    """The outcome of an auction: per bid in rank order, per bidder, and the totals."""

    auction_id: str
    instrument: str
    status: str
    clearing_price_fen: int | None
    offered_t: int
    allocated_t: int
    unsold_t: int
    revenue_fen: int
    bids: tuple[BidOutcome, ...]
    bidders: tuple[BidderOutcome, ...]
    cancellation_reason: str | None = None


def rank_bids(bids: Sequence[Bid]) -> list[Bid]:
    """Bids in allocation order: price high to low, then earlier submission, then bid id."""
    return sorted(bids, key=lambda b: (-b.price_fen, b.submitted_at, b.bid_id))


def _validate_all(terms: AuctionTerms, bids: Sequence[Bid]) -> None:
    accepted: list[Bid] = []
    for bid in bids:
        check_bid(terms=terms, bid=bid, earlier_bids=accepted, available_cash_fen=cash_to_reserve_fen(bid))
        accepted.append(bid)


def _fills(terms: AuctionTerms, ranked: Sequence[Bid]) -> list[int]:
    remaining = terms.offered_t
    fills = []
    for bid in ranked:
        filled = min(bid.quantity_t, remaining)
        fills.append(filled)
        remaining -= filled
    return fills


def clear_auction(*, terms: AuctionTerms, bids: Sequence[Bid]) -> AuctionResult:
    """Clear the auction (or cancel it when under-covered); every bid is checked again first."""
    _validate_all(terms, bids)
    ranked = rank_bids(bids)
    total_bid_t = sum(bid.quantity_t for bid in ranked)
    if total_bid_t < terms.cover_ratio * terms.offered_t or not ranked:
        fills = [0] * len(ranked)
        price = None
        reason = f"bids for {total_bid_t} t cover less than {terms.cover_ratio} × {terms.offered_t} t offered"
    else:
        fills = _fills(terms, ranked)
        price = min(bid.price_fen for bid, filled in zip(ranked, fills, strict=True) if filled)
        reason = None
    outcomes = tuple(
        BidOutcome(bid_id=bid.bid_id, bidder_id=bid.bidder_id, price_fen=bid.price_fen, quantity_t=bid.quantity_t,
                   filled_t=filled, reserved_fen=cash_to_reserve_fen(bid), paid_fen=filled * (price or 0),
                   refund_fen=cash_to_reserve_fen(bid) - filled * (price or 0))
        for bid, filled in zip(ranked, fills, strict=True))
    allocated = sum(fills)
    return AuctionResult(auction_id=terms.auction_id, instrument=terms.instrument,
                         status=CANCELLED if price is None else CLEARED, clearing_price_fen=price,
                         offered_t=terms.offered_t, allocated_t=allocated, unsold_t=terms.offered_t - allocated,
                         revenue_fen=allocated * (price or 0), bids=outcomes, bidders=_by_bidder(outcomes),
                         cancellation_reason=reason)


def _by_bidder(outcomes: Sequence[BidOutcome]) -> tuple[BidderOutcome, ...]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for outcome in outcomes:
        row = totals[outcome.bidder_id]
        row[0] += outcome.filled_t
        row[1] += outcome.reserved_fen
        row[2] += outcome.paid_fen
        row[3] += outcome.refund_fen
    return tuple(BidderOutcome(bidder_id=bidder, allocated_t=t, reserved_fen=r, paid_fen=p, refund_fen=f)
                 for bidder, (t, r, p, f) in sorted(totals.items()))

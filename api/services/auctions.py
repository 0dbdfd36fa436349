"""Paid allocation as a use case: sealed-bid, uniform-price auctions settled into the ledger.

* **Create** (one officer): the terms are checked by ``accounting.auction.AuctionTerms`` and the offered
  allowances move SYS-ISSUANCE → SYS-AUCTION at once (entry kind ``issue``), so what is on offer is
  visible in the ledger and cannot be allocated twice.
* **Bid** (an enterprise for its compliance account, a trader for its trading account; another's
  account is ``not_own_account``): ``check_bid`` checks window, reserve, minimum, lot, cap and the
  bidder's available cash; the reserved cash moves bidder → SYS-AUCTION (``auction_reserve``). Without
  the cash the bid is refused (``insufficient_funds``) and nothing is written. Bids are sealed: a
  bidder sees its own bids only, officers see all.
* **Withdraw** while the window is open: the reserved cash comes back (``auction_refund``).
* **Close** (officer, after the window): ``clear_auction`` ranks by price, then earlier bid, then bid
  id, and the result is proposed for settlement (four eyes, kind ``auction_settlement``).
* **Settle** on a second officer's approval, one journal entry (``auction_settle``) in one transaction:
  allowances SYS-AUCTION → winners; each winner's cash at the clearing price SYS-AUCTION → SYS-FEES;
  refunds (unfilled part and the price difference) SYS-AUCTION → bidders; unsold allowances back to
  SYS-ISSUANCE. An auction whose bids miss the cover ratio is cancelled by the same approval: every
  reservation is refunded and all allowances return to issuance.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from accounting.auction import CANCELLED, AuctionError, AuctionResult, AuctionTerms, Bid, check_bid, clear_auction
from accounting.ledger import AUCTION, CNY, CREDIT, DEBIT, FEES, ISSUANCE, JournalEntry, Posting, transfer_entry
from accounting.review import Actor
from api.services import approvals
from api.services.ledger import ensure_system_accounts, new_entry_id, owns_account, post, system_account_id
from api.store import audit
from api.store import ledger as ledger_store
from api.store.schema import ApprovalRow, AuctionBidRow, AuctionRow, JournalEntryRow, PostingRow

OPEN, CLOSING, SETTLED = "open", "closing", "settled"
ACTIVE, WITHDRAWN = "active", "withdrawn"
SETTLEMENT_KIND = "auction_settlement"


def now() -> datetime:
    """The service's clock (tests replace it to move through the bid window)."""
    return datetime.now(UTC)




def _terms(row: AuctionRow) -> AuctionTerms:
    t = row.terms
    return AuctionTerms(auction_id=row.auction_id, instrument=row.instrument, offered_t=t["offered_t"],
                        reserve_price_fen=t["reserve_price_fen"], min_bid_t=t["min_bid_t"],
                        bidder_cap_t=t["bidder_cap_t"], lot_t=t["lot_t"], cover_ratio=Decimal(t["cover_ratio"]),
                        opens_at=datetime.fromisoformat(t["opens_at"]),
                        closes_at=datetime.fromisoformat(t["closes_at"]))


def _describe(row: AuctionRow) -> dict[str, Any]:
    return {"auction_id": row.auction_id, "instrument": row.instrument, "status": row.status, **row.terms,
            "created_by": row.created_by, "created_at": row.created_at,
            "clearing_price_fen": (row.result or {}).get("clearing_price_fen") if row.status in (SETTLED, CANCELLED)
            else None,  # revealed with the settlement, not while it waits for its second officer
            "settled_entry_id": row.settled_entry_id}


def _row(session: Session, auction_id: str, *, lock: bool = False) -> AuctionRow:
    statement = select(AuctionRow).where(AuctionRow.auction_id == auction_id)
    row = session.execute(statement.with_for_update() if lock else statement).scalar_one_or_none()
    if row is None:
        raise AuctionError(f"no auction '{auction_id}'", code="unknown_auction")
    return row


def create_auction(session: Session, *, actor: Actor, instrument: str, offered_t: int, reserve_price_fen: int,
                   min_bid_t: int, bidder_cap_t: int, opens_at: datetime, closes_at: datetime, lot_t: int = 1,
                   cover_ratio: Decimal = Decimal(1), auction_id: str | None = None) -> dict[str, Any]:
    """Open an auction and move the offered allowances to SYS-AUCTION (not committed)."""
    auction_id = auction_id or f"AUC-{uuid.uuid4().hex[:12]}"
    terms = AuctionTerms(auction_id=auction_id, instrument=instrument, offered_t=offered_t,
                         reserve_price_fen=reserve_price_fen, min_bid_t=min_bid_t, bidder_cap_t=bidder_cap_t,
                         opens_at=opens_at.astimezone(UTC), closes_at=closes_at.astimezone(UTC), lot_t=lot_t,
                         cover_ratio=cover_ratio)
    if session.get(AuctionRow, auction_id) is not None:
        raise AuctionError(f"auction '{auction_id}' already exists", code="duplicate_auction")
    ensure_system_accounts(session)
    row = AuctionRow(auction_id=auction_id, instrument=instrument, status=OPEN, created_by=actor.actor_id,
                     created_at=now(), terms={
                         "offered_t": offered_t, "reserve_price_fen": reserve_price_fen, "min_bid_t": min_bid_t,
                         "bidder_cap_t": bidder_cap_t, "lot_t": lot_t, "cover_ratio": str(terms.cover_ratio),
                         "opens_at": terms.opens_at.isoformat(), "closes_at": terms.closes_at.isoformat()})
    session.add(row)
    session.flush()
    post(session, entry=transfer_entry(entry_id=new_entry_id(), kind="issue", from_account=system_account_id(ISSUANCE),
                                       to_account=system_account_id(AUCTION), instrument=instrument,
                                       quantity=offered_t, memo=f"offered in auction {auction_id}"),
         actor=actor, reference=f"auction/{auction_id}")
    return _describe(row)


def list_auctions(session: Session, *, status: str | None = None) -> list[dict[str, Any]]:
    statement = select(AuctionRow).order_by(AuctionRow.created_at.desc(), AuctionRow.auction_id)
    if status:
        statement = statement.where(AuctionRow.status == status)
    return [_describe(r) for r in session.scalars(statement)]


def get_auction(session: Session, *, auction_id: str) -> dict[str, Any]:
    return _describe(_row(session, auction_id))


# ---------------------------------------------------------------------------------------------
# Bids


def _bid_view(row: AuctionBidRow) -> dict[str, Any]:
    return {"bid_id": row.bid_id, "auction_id": row.auction_id, "account_id": row.account_id,
            "price_fen": row.price_fen, "quantity_t": row.quantity, "reserved_fen": row.price_fen * row.quantity,
            "status": row.status, "filled_t": row.filled, "placed_by": row.placed_by,
            "placed_at": row.placed_at, "reserve_entry_id": row.reserve_entry_id}


def _pure_bid(row: AuctionBidRow) -> Bid:
    return Bid(bid_id=row.bid_id, bidder_id=row.account_id, price_fen=row.price_fen, quantity_t=row.quantity,
               submitted_at=row.placed_at)


def _active_bids(session: Session, auction_id: str) -> list[AuctionBidRow]:
    return list(session.scalars(select(AuctionBidRow).where(AuctionBidRow.auction_id == auction_id,
                                                            AuctionBidRow.status == ACTIVE)
                                .order_by(AuctionBidRow.placed_at, AuctionBidRow.bid_id)))


def _require_window(row: AuctionRow, terms: AuctionTerms, at: datetime) -> None:
    if row.status != OPEN:
        raise AuctionError(f"auction {row.auction_id} is {row.status}", code="auction_closed")
    if at < terms.opens_at:
        raise AuctionError(f"auction {row.auction_id} opens at {terms.opens_at.isoformat()}", code="auction_not_open")
    if at >= terms.closes_at:
        raise AuctionError(f"the bid window of {row.auction_id} closed at {terms.closes_at.isoformat()}",
                           code="bid_window_closed")


def _available_cash(session: Session, account_id: str) -> int:
    balance = ledger_store.balances_of(session, account_id=account_id).get(CNY, 0)
    return max(balance - ledger_store.encumbered_of(session, account_id=account_id).get(CNY, 0), 0)


def place_bid(session: Session, *, actor: Actor, auction_id: str, account_id: str, price_fen: int,
              quantity_t: int) -> dict[str, Any]:
    """A sealed bid on the user's own account, its cash reserved in SYS-AUCTION (not committed)."""
    if not owns_account(actor, account_id):
        raise AuctionError(f"account '{account_id}' is not yours", code="not_own_account")
    row = _row(session, auction_id, lock=True)  # one bid at a time per auction: the cap sees every earlier bid
    terms = _terms(row)
    at = now()
    _require_window(row, terms, at)
    if ledger_store.get_account(session, account_id) is None:
        raise AuctionError(f"unknown account '{account_id}'", code="unknown_account")
    bid = Bid(bid_id=uuid.uuid4().hex, bidder_id=account_id, price_fen=price_fen, quantity_t=quantity_t,
              submitted_at=at)
    reserved = check_bid(terms=terms, bid=bid, earlier_bids=[_pure_bid(b) for b in _active_bids(session, auction_id)],
                         available_cash_fen=_available_cash(session, account_id))
    entry_id = new_entry_id()
    post(session, entry=transfer_entry(entry_id=entry_id, kind="auction_reserve", from_account=account_id,
                                       to_account=system_account_id(AUCTION), instrument=CNY, quantity=reserved,
                                       memo=f"bid {bid.bid_id} in auction {auction_id}"),
         actor=actor, reference=f"auction/{auction_id}/bid/{bid.bid_id}")
    bid_row = AuctionBidRow(bid_id=bid.bid_id, auction_id=auction_id, account_id=account_id, price_fen=price_fen,
                            quantity=quantity_t, placed_by=actor.actor_id, placed_at=at, reserve_entry_id=entry_id,
                            status=ACTIVE, filled=0)
    session.add(bid_row)
    session.flush()
    return _bid_view(bid_row)


def list_bids(session: Session, *, actor: Actor, auction_id: str) -> list[dict[str, Any]]:
    """Officers see every bid; a bidder only the bids on its own accounts (sealed bids)."""
    _row(session, auction_id)
    rows = session.scalars(select(AuctionBidRow).where(AuctionBidRow.auction_id == auction_id)
                           .order_by(AuctionBidRow.placed_at, AuctionBidRow.bid_id))
    return [_bid_view(r) for r in rows if actor.role == "officer" or owns_account(actor, r.account_id)]


def withdraw_bid(session: Session, *, actor: Actor, auction_id: str, bid_id: str) -> dict[str, Any]:
    """Withdraw one's own active bid while the window is open; its cash comes back (not committed)."""
    row = _row(session, auction_id, lock=True)
    bid_row = session.get(AuctionBidRow, bid_id)
    if bid_row is None or bid_row.auction_id != auction_id or not owns_account(actor, bid_row.account_id):
        raise AuctionError(f"no bid '{bid_id}' of yours in auction {auction_id}", code="unknown_bid")
    _require_window(row, _terms(row), now())
    if bid_row.status != ACTIVE:
        raise AuctionError(f"bid {bid_id} is {bid_row.status}", code="bid_not_active")
    post(session, entry=transfer_entry(entry_id=new_entry_id(), kind="auction_refund",
                                       from_account=system_account_id(AUCTION), to_account=bid_row.account_id,
                                       instrument=CNY, quantity=bid_row.price_fen * bid_row.quantity,
                                       memo=f"bid {bid_id} withdrawn"),
         actor=actor, reference=f"auction/{auction_id}/bid/{bid_id}")
    bid_row.status = WITHDRAWN
    session.flush()
    return _bid_view(bid_row)


# ---------------------------------------------------------------------------------------------
# Close and settle


def _result_document(result: AuctionResult) -> dict[str, Any]:
    return {"status": result.status, "clearing_price_fen": result.clearing_price_fen, "offered_t": result.offered_t,
            "allocated_t": result.allocated_t, "unsold_t": result.unsold_t, "revenue_fen": result.revenue_fen,
            "cancellation_reason": result.cancellation_reason,
            "bids": [{"bid_id": b.bid_id, "account_id": b.bidder_id, "price_fen": b.price_fen,
                      "quantity_t": b.quantity_t, "filled_t": b.filled_t, "reserved_fen": b.reserved_fen,
                      "paid_fen": b.paid_fen, "refund_fen": b.refund_fen} for b in result.bids]}


def _clear(session: Session, row: AuctionRow) -> dict[str, Any]:
    return _result_document(clear_auction(terms=_terms(row),
                                          bids=[_pure_bid(b) for b in _active_bids(session, row.auction_id)]))


def _pending_settlement(session: Session, auction_id: str) -> bool:
    """True while a settlement proposal of the auction waits for its second officer."""
    return any(a.payload.get("auction_id") == auction_id for a in session.scalars(select(ApprovalRow).where(
        ApprovalRow.kind == SETTLEMENT_KIND, ApprovalRow.status == "pending",
        ApprovalRow.expires_at > datetime.now(UTC))))


def close_auction(session: Session, *, actor: Actor, auction_id: str) -> dict[str, Any]:
    """Clear a closed window and propose the settlement for a second officer (not committed).

    A closing auction whose settlement proposal was rejected or expired may be closed (proposed) again.
    """
    row = _row(session, auction_id, lock=True)
    terms = _terms(row)
    if row.status not in (OPEN, CLOSING) or (row.status == CLOSING and _pending_settlement(session, auction_id)):
        raise AuctionError(f"auction {auction_id} is {row.status}", code="auction_closed")
    if now() < terms.closes_at:
        raise AuctionError(f"the bid window of {auction_id} is open until {terms.closes_at.isoformat()}",
                           code="bid_window_open")
    result = _clear(session, row)
    row.status, row.result = CLOSING, result
    approval = approvals.propose(session, kind=SETTLEMENT_KIND, payload={"auction_id": auction_id, **result},
                                 actor=actor, commit=False)
    audit.append(session, actor=actor, action="auction.closed", target=f"auction/{auction_id}",
                 detail={"status": result["status"], "clearing_price_fen": result["clearing_price_fen"]})
    return {"auction": _describe(row), "result": result, "approval": approval}


def _settlement_postings(row: AuctionRow, result: Mapping[str, Any]) -> list[Posting]:
    auction, fees, issuance = (system_account_id(k) for k in (AUCTION, FEES, ISSUANCE))
    moves: dict[tuple[str, str], int] = defaultdict(int)  # (to account, instrument) -> quantity out of SYS-AUCTION
    cancelled = result["status"] == CANCELLED
    for bid in result["bids"]:
        if not cancelled and bid["filled_t"]:
            moves[(bid["account_id"], row.instrument)] += bid["filled_t"]
        if bid["paid_fen"]:
            moves[(fees, CNY)] += bid["paid_fen"]
        if bid["refund_fen"]:
            moves[(bid["account_id"], CNY)] += bid["refund_fen"]
    unsold = result["offered_t"] if cancelled else result["unsold_t"]
    if unsold:
        moves[(issuance, row.instrument)] += unsold
    postings: list[Posting] = []
    for instrument in sorted({i for _, i in moves}):
        total = sum(q for (_, i), q in moves.items() if i == instrument)
        postings.append(Posting(account_id=auction, instrument=instrument, side=DEBIT, quantity=total))
        postings.extend(Posting(account_id=a, instrument=i, side=CREDIT, quantity=q)
                        for (a, i), q in sorted(moves.items()) if i == instrument)
    return postings


@approvals.executor(SETTLEMENT_KIND)
def _settle(session: Session, payload: Mapping[str, Any], approved: approvals.Approved) -> dict[str, Any]:
    row = _row(session, str(payload["auction_id"]), lock=True)
    if row.status != CLOSING:
        raise AuctionError(f"auction {row.auction_id} is {row.status}, not waiting for settlement",
                           code="auction_closed")
    result = _clear(session, row)
    if {"auction_id": row.auction_id, **result} != dict(payload):
        raise AuctionError("the bids changed since the proposal; close again", code="plan_not_approvable")
    entry_id = new_entry_id()
    post(session, entry=JournalEntry(entry_id=entry_id, kind="auction_settle",
                                     postings=tuple(_settlement_postings(row, result)),
                                     memo=f"settlement of auction {row.auction_id} ({result['status']})"),
         actor=approved.approver, reference=f"auction/{row.auction_id}")
    fills = {b["bid_id"]: b["filled_t"] for b in result["bids"]}
    for bid_row in _active_bids(session, row.auction_id):
        filled = fills.get(bid_row.bid_id, 0)
        bid_row.filled = filled
        bid_row.status = "filled" if filled == bid_row.quantity else "partial" if filled else "unfilled"
    row.status = CANCELLED if result["status"] == CANCELLED else SETTLED
    row.settled_entry_id = entry_id
    session.flush()
    return {"auction_id": row.auction_id, "status": row.status, "entry_id": entry_id,
            "clearing_price_fen": result["clearing_price_fen"], "revenue_fen": result["revenue_fen"]}


def report(session: Session, *, auction_id: str) -> dict[str, Any]:
    """Who paid what: per bidder the allowances won, the clearing price, the amount paid and the refund."""
    row = _row(session, auction_id)
    if row.status not in (SETTLED, CANCELLED) or row.result is None:
        raise AuctionError(f"auction {auction_id} is {row.status}; the report follows settlement",
                           code="auction_not_settled")
    result = row.result
    bidders: dict[str, dict[str, int]] = defaultdict(lambda: {"allocated_t": 0, "reserved_fen": 0, "paid_fen": 0,
                                                              "refund_fen": 0, "bids": 0})
    for bid in result["bids"]:
        totals = bidders[bid["account_id"]]
        totals["allocated_t"] += 0 if row.status == CANCELLED else bid["filled_t"]
        totals["reserved_fen"] += bid["reserved_fen"]
        totals["paid_fen"] += bid["paid_fen"]
        totals["refund_fen"] += bid["refund_fen"]
        totals["bids"] += 1
    fees = system_account_id(FEES)
    fee_increase = sum(p.quantity if p.side == CREDIT else -p.quantity for p in session.scalars(
        select(PostingRow).join(JournalEntryRow, JournalEntryRow.entry_id == PostingRow.entry_id).where(
            JournalEntryRow.entry_id == row.settled_entry_id, PostingRow.account_id == fees,
            PostingRow.instrument == CNY)))
    return {"auction_id": auction_id, "instrument": row.instrument, "status": row.status,
            "clearing_price_fen": result["clearing_price_fen"], "offered_t": result["offered_t"],
            "allocated_t": 0 if row.status == CANCELLED else result["allocated_t"],
            "unsold_t": result["offered_t"] if row.status == CANCELLED else result["unsold_t"],
            "revenue_fen": result["revenue_fen"], "fee_account_increase_fen": fee_increase,
            "settled_entry_id": row.settled_entry_id, "cancellation_reason": result["cancellation_reason"],
            "bidders": [{"account_id": a, "clearing_price_fen": result["clearing_price_fen"], **t}
                        for a, t in sorted(bidders.items())]}

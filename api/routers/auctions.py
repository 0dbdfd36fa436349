"""Paid allocation: sealed-bid, uniform-price auctions of allowances, prefunded bids, four-eyes settlement."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import ActorDep, RequiredIdempotencyKeyDep, SessionDep, answer_once
from api.schemas import ApprovalOut, Problem
from api.services import auctions

router = APIRouter(prefix="/v1/auctions", tags=["auctions"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}})

Tonnes = Annotated[int, Field(gt=0, le=10**12)]
Fen = Annotated[int, Field(gt=0, le=10**12)]


class AuctionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    auction_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="default: generated")
    instrument: str = Field(pattern=r"^CEA-\d{4}$", description="the allowance vintage offered, CEA-<year>")
    offered_t: Tonnes
    reserve_price_fen: Fen = Field(description="lowest accepted price, fen per tonne")
    min_bid_t: Tonnes
    bidder_cap_t: Tonnes = Field(description="most tonnes one account may bid for in total")
    lot_t: Tonnes = 1
    opens_at: AwareDatetime
    closes_at: AwareDatetime
    cover_ratio: Annotated[str, Field(pattern=r"^\d+(\.\d+)?$")] = Field(
        "1", description="the auction is cancelled when bid volume < cover_ratio × offered (decimal string)")


class Auction(BaseModel):
    auction_id: str
    instrument: str
    status: str = Field(description="open | closing | settled | cancelled")
    offered_t: int
    reserve_price_fen: int
    min_bid_t: int
    bidder_cap_t: int
    lot_t: int
    cover_ratio: str
    opens_at: datetime
    closes_at: datetime
    created_by: str
    created_at: datetime
    clearing_price_fen: int | None
    settled_entry_id: str | None


class AuctionList(BaseModel):
    items: list[Auction]


class BidRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: str = Field(min_length=1, max_length=64, description="your compliance or trading account")
    price_fen: Fen = Field(description="fen per tonne")
    quantity_t: Tonnes


class AuctionBid(BaseModel):
    bid_id: str
    auction_id: str
    account_id: str
    price_fen: int
    quantity_t: int
    reserved_fen: int
    status: str = Field(description="active | withdrawn | filled | partial | unfilled")
    filled_t: int
    placed_by: str
    placed_at: datetime
    reserve_entry_id: str


class BidList(BaseModel):
    items: list[AuctionBid]


class BidOutcome(BaseModel):
    bid_id: str
    account_id: str
    price_fen: int
    quantity_t: int
    filled_t: int
    reserved_fen: int
    paid_fen: int
    refund_fen: int


class AuctionResult(BaseModel):
    status: str = Field(description="cleared or cancelled")
    clearing_price_fen: int | None
    offered_t: int
    allocated_t: int
    unsold_t: int
    revenue_fen: int
    cancellation_reason: str | None
    bids: list[BidOutcome]


class Closing(BaseModel):
    auction: Auction
    result: AuctionResult
    approval: ApprovalOut


class BidderLine(BaseModel):
    account_id: str
    allocated_t: int
    clearing_price_fen: int | None
    reserved_fen: int
    paid_fen: int
    refund_fen: int
    bids: int


class AuctionReport(BaseModel):
    auction_id: str
    instrument: str
    status: str
    clearing_price_fen: int | None
    offered_t: int
    allocated_t: int
    unsold_t: int
    revenue_fen: int
    fee_account_increase_fen: int = Field(description="what the settlement credited to SYS-FEES (= revenue)")
    settled_entry_id: str | None
    cancellation_reason: str | None
    bidders: list[BidderLine]


@router.post("", response_model=Auction, status_code=201, responses={409: {"model": Problem}, 422: {"model": Problem}})
def create_auction(body: AuctionRequest, response: Response, session: SessionDep, actor: ActorDep,
                   idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Open an auction; the offered allowances move from SYS-ISSUANCE to SYS-AUCTION at once."""
    fields = body.model_dump(exclude={"cover_ratio"})
    return answer_once(session, actor=actor, key=idempotency_key, response=response, operation="auctions.create",
                       body=body.model_dump(mode="json"),
                       change=lambda: (201, auctions.create_auction(session, actor=actor, **fields,
                                                                    cover_ratio=Decimal(body.cover_ratio))))


@router.get("", response_model=AuctionList)
def list_auctions(session: SessionDep, status: Annotated[str | None, Query(
        description="open, closing, settled or cancelled")] = None) -> AuctionList:
    """Every auction, newest first."""
    return AuctionList.model_validate({"items": auctions.list_auctions(session, status=status)})


@router.get("/{auction_id}", response_model=Auction, responses={404: {"model": Problem}})
def get_auction(auction_id: str, session: SessionDep) -> dict[str, Any]:
    """An auction's terms and state."""
    return auctions.get_auction(session, auction_id=auction_id)


@router.post("/{auction_id}/bids", response_model=AuctionBid, status_code=201,
             responses={404: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}})
def place_bid(auction_id: str, body: BidRequest, response: Response, session: SessionDep, actor: ActorDep,
              idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """A sealed bid on your own account; its cash (price × quantity) is reserved at once."""
    return answer_once(session, actor=actor, key=idempotency_key, response=response, operation="auctions.bid",
                       body={"auction_id": auction_id, **body.model_dump()},
                       change=lambda: (201, auctions.place_bid(session, actor=actor, auction_id=auction_id,
                                                               **body.model_dump())))


@router.get("/{auction_id}/bids", response_model=BidList, responses={404: {"model": Problem}})
def list_bids(auction_id: str, session: SessionDep, actor: ActorDep) -> BidList:
    """Bids are sealed: officers see every bid, a bidder its own."""
    return BidList.model_validate({"items": auctions.list_bids(session, actor=actor, auction_id=auction_id)})


@router.delete("/{auction_id}/bids/{bid_id}", response_model=AuctionBid,
               responses={404: {"model": Problem}, 409: {"model": Problem}})
def withdraw_bid(auction_id: str, bid_id: str, response: Response, session: SessionDep, actor: ActorDep,
                 idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Withdraw your bid while the window is open; the reserved cash comes back."""
    return answer_once(session, actor=actor, key=idempotency_key, response=response, operation="auctions.withdraw",
                       body={"auction_id": auction_id, "bid_id": bid_id},
                       change=lambda: (200, auctions.withdraw_bid(session, actor=actor, auction_id=auction_id,
                                                                  bid_id=bid_id)))


@router.post("/{auction_id}/close", response_model=Closing, status_code=202,
             responses={404: {"model": Problem}, 409: {"model": Problem}})
def close_auction(auction_id: str, response: Response, session: SessionDep, actor: ActorDep,
                  idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Clear the auction after its window and propose the settlement to a second officer."""
    return answer_once(session, actor=actor, key=idempotency_key, response=response, operation="auctions.close",
                       body={"auction_id": auction_id},
                       change=lambda: (202, auctions.close_auction(session, actor=actor, auction_id=auction_id)))


@router.get("/{auction_id}/report", response_model=AuctionReport,
            responses={404: {"model": Problem}, 409: {"model": Problem}})
def auction_report(auction_id: str, session: SessionDep) -> dict[str, Any]:
    """Who paid what: per bidder the tonnes won, the clearing price, the amount paid and the refund."""
    return auctions.report(session, auction_id=auction_id)

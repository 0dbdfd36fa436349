"""Reference prices of instruments per day: officers record them, every signed-in user reads them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ActorDep, LimitQuery, OffsetQuery, SessionDep
from api.schemas import Problem
from api.services import prices as price_service

router = APIRouter(prefix="/v1/prices", tags=["prices"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}})


class PriceRequest(BaseModel):
    """A day's reference price; the same values again change nothing, other values need ``replace``."""

    model_config = ConfigDict(extra="forbid")

    instrument: str = Field(min_length=1, max_length=16, description="CEA-<vintage>, CCER, SO2, NOX, COD or NH3N")
    day: date
    price_fen: int = Field(gt=0, description="fen per unit (per tonne, per kg for pollutants)", strict=True)
    volume: int = Field(ge=0, description="units traded that day (weights the monthly average)", strict=True)
    source: str = Field(min_length=1, max_length=255, description="where the price comes from")
    replace: bool = Field(False, description="correct a price already recorded for that day (audited)")


class PriceOut(BaseModel):
    instrument: str
    day: str
    price_fen: int
    volume: int
    source: str
    recorded_by: str
    recorded_at: datetime


class Prices(BaseModel):
    total: int
    items: list[PriceOut]


@router.post("", response_model=PriceOut, status_code=status.HTTP_201_CREATED,
             responses={200: {"model": PriceOut, "description": "already recorded, or corrected"},
                        409: {"model": Problem}})
def record_price(body: PriceRequest, actor: ActorDep, session: SessionDep, response: Response) -> dict[str, Any]:
    """Record the reference price of an instrument on a day (officer)."""
    created, price = price_service.record_price(session, actor=actor, record=price_service.PriceRecord(
        **body.model_dump()))
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return price


@router.get("", response_model=Prices)
def list_prices(session: SessionDep, limit: LimitQuery = 100, offset: OffsetQuery = 0,
                instrument: Annotated[str | None, Query(max_length=16)] = None,
                day_from: Annotated[date | None, Query(alias="from", description="first day, inclusive")] = None,
                day_to: Annotated[date | None, Query(alias="to", description="last day, inclusive")] = None,
                ) -> dict[str, Any]:
    """Recorded prices, newest day first."""
    return price_service.list_prices(session, instrument=instrument, day_from=day_from, day_to=day_to,
                                     limit=limit, offset=offset)

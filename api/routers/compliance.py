"""Compliance: surrender, the balance view of an enterprise-year, the zone report, closing a year.

The rules and their reasons are in ``api.services.compliance``; refusals become problems in ``api.errors``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from accounting.ledger import FIRST_VINTAGE, LAST_VINTAGE
from api.deps import ActorDep, RequiredIdempotencyKeyDep, SessionDep, SettingsDep, answer_once
from api.schemas import ApprovalOut, Problem
from api.services import compliance as compliance_service

router = APIRouter(prefix="/v1/compliance", tags=["compliance"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}})

YearPath = Annotated[int, Path(ge=FIRST_VINTAGE, le=LAST_VINTAGE, description="the compliance year")]


class SurrenderRequest(BaseModel):
    """Surrender units of the enterprise's compliance account for a year's obligation."""

    model_config = ConfigDict(extra="forbid")

    enterprise_id: str = Field(min_length=1, max_length=18)
    year: int = Field(ge=FIRST_VINTAGE, le=LAST_VINTAGE)
    instrument: str = Field(min_length=1, max_length=16, description="CEA-<vintage> or CCER")
    quantity: int = Field(gt=0, description="whole tonnes", strict=True)


class SurrenderedTotals(BaseModel):
    allowances_t: int
    ccer_t: int
    total_t: int


class SurrenderOut(BaseModel):
    entry_id: str
    enterprise_id: str
    account_id: str
    year: int
    instrument: str
    quantity: int
    obligation_t: int
    surrendered: SurrenderedTotals
    remaining_t: int


class PriceUsed(BaseModel):
    instrument: str
    day: str
    price_fen: int


class HoldingOut(BaseModel):
    instrument: str
    vintage: int | None
    eligible: bool
    balance: int
    frozen: int
    pledged: int
    available: int
    price: PriceUsed | None
    value_fen: int | None


class FreeAllocation(BaseModel):
    pre_t: int
    true_up_t: int
    total_t: int


class PaidAllocation(BaseModel):
    quantity_t: int
    cost_fen: int


class Offsets(BaseModel):
    cap_t: int
    surrendered_t: int
    held_available_t: int
    usable_t: int


class VerifiedOut(BaseModel):
    net_tco2e: float
    version: int
    locked_at: datetime


class BalanceView(BaseModel):
    """Where an enterprise stands for a year (status ``not_locked`` while its emissions are not locked)."""

    enterprise_id: str
    name: str
    year: int
    account_id: str
    status: str
    deadline: str
    deadline_passed: bool
    verified_emissions: VerifiedOut | None
    obligation_t: int | None
    free_allocation: FreeAllocation
    paid_allocation: PaidAllocation
    holdings: list[HoldingOut]
    surrendered: SurrenderedTotals
    offsets: Offsets | None
    eligible_available_t: int | None
    net_position_t: int | None
    shortfall_t: int | None
    shortfall_value_fen: int | None
    uncovered_t: int | None
    uncovered_value_fen: int | None
    price: PriceUsed | None
    penalty_price_month: str
    penalty_average_price_fen: int | None
    penalty_estimate_fen: int | None
    closed: dict[str, Any] | None
    still_owed_t: int | None = Field(description="after the close: the part of the shortfall that the close could "
                                     "not deduct and no allocation of the next vintage has since")


class ReportLine(BaseModel):
    enterprise_id: str
    name: str
    status: str
    obligation_t: int
    surrendered_t: int
    shortfall_t: int
    surplus_t: int
    penalty_estimate_fen: int | None


class ReportTotals(BaseModel):
    obligation_t: int
    surrendered_t: int
    shortfall_t: int
    surplus_t: int
    penalty_estimate_fen: int


class ZoneReport(BaseModel):
    year: int
    deadline: str
    deadline_passed: bool
    penalty_price_month: str
    penalty_average_price_fen: int | None
    closed: bool
    compliant: list[str]
    deficit: list[str]
    surplus: list[str]
    not_locked: list[str]
    totals: ReportTotals
    enterprises: list[ReportLine]



@router.post("/surrenders", response_model=SurrenderOut, status_code=status.HTTP_201_CREATED,
             responses={404: {"model": Problem}, 409: {"model": Problem}})
def surrender(body: SurrenderRequest, actor: ActorDep, session: SessionDep, settings: SettingsDep,
              idempotency_key: RequiredIdempotencyKeyDep, response: Response) -> dict[str, Any]:
    """Retire allowances or CCER from the enterprise's own compliance account for a year's obligation."""
    return answer_once(session, actor=actor, key=idempotency_key, response=response, operation="compliance.surrender",
                       body=body.model_dump(), change=lambda: (status.HTTP_201_CREATED, compliance_service.surrender(
                           session, settings=settings, actor=actor, **body.model_dump())))


@router.get("/{year}/report", response_model=ZoneReport)
def report(year: YearPath, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Every enterprise with locked emissions for the year: compliant, in deficit or in surplus, with totals."""
    return compliance_service.zone_report(session, settings=settings, year=year)


@router.get("/{year}/enterprises/{enterprise_id}", response_model=BalanceView,
            responses={404: {"model": Problem}})
def balance_view(year: YearPath, enterprise_id: Annotated[str, Path(max_length=18)], session: SessionDep,
                 settings: SettingsDep) -> dict[str, Any]:
    """The balance view: obligation, allocation, holdings by vintage, surrendered, net position, shortfall."""
    return compliance_service.balance_view(session, settings=settings, enterprise_id=enterprise_id, year=year)


@router.post("/{year}/close", response_model=ApprovalOut, status_code=status.HTTP_202_ACCEPTED,
             responses={409: {"model": Problem}})
def close(year: YearPath, actor: ActorDep, session: SessionDep, settings: SettingsDep,
          idempotency_key: RequiredIdempotencyKeyDep, response: Response) -> dict[str, Any]:
    """Propose closing the year after its deadline; it happens when a second officer approves the plan."""
    return answer_once(session, actor=actor, key=idempotency_key, response=response, operation="compliance.close",
                       body={"year": year}, change=lambda: (status.HTTP_202_ACCEPTED, compliance_service.propose_close(
                           session, settings=settings, actor=actor, year=year)))

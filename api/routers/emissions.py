"""Published balances of one enterprise (monthly, yearly) and the lineage of every number in them."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import SnapshotDep
from api.errors import NotFoundError
from api.schemas import (
    Lineage,
    MonthlyBalances,
    Problem,
    YearlyBalances,
    balance_from_row,
    factor_from_row,
    lineage_line_from_row,
    yearly_balance_from_row,
)
from api.store import serving

router = APIRouter(prefix="/v1/enterprises/{enterprise_id}", tags=["emissions"],
                   responses={404: {"model": Problem}, 503: {"model": Problem}})

PERIOD_PATTERN = r"^\d{4}(-(0[1-9]|1[0-2]))?$"


def _require_known(cursor: SnapshotDep, enterprise_id: str) -> None:
    if not serving.enterprise_is_known(cursor, enterprise_id=enterprise_id):
        raise NotFoundError(f"no enterprise {enterprise_id!r} in the registry or the published balances",
                            code="enterprise_not_found")


@router.get("/emissions/monthly", response_model=MonthlyBalances)
def monthly(enterprise_id: str, cursor: SnapshotDep,
            year: Annotated[int | None, Query(ge=1900, le=2999, description="default: every year")] = None,
            ) -> MonthlyBalances:
    """Monthly balances of the enterprise, by period (empty for a year without data)."""
    _require_known(cursor, enterprise_id)
    rows = serving.monthly_balances(cursor, enterprise_id=enterprise_id, year=year)
    return MonthlyBalances(enterprise_id=enterprise_id, year=year, items=[balance_from_row(r) for r in rows])


@router.get("/emissions/yearly", response_model=YearlyBalances)
def yearly(enterprise_id: str, cursor: SnapshotDep) -> YearlyBalances:
    """Yearly balances of the enterprise with key-emitter status and the number of months reported."""
    _require_known(cursor, enterprise_id)
    rows = serving.yearly_balances(cursor, enterprise_id=enterprise_id)
    return YearlyBalances(enterprise_id=enterprise_id, items=[yearly_balance_from_row(r) for r in rows])


@router.get("/lineage/{period}", response_model=Lineage)
def lineage(enterprise_id: str, cursor: SnapshotDep,
            period: Annotated[str, Path(pattern=PERIOD_PATTERN, description="YYYY-MM, or YYYY for the year")],
            ) -> Lineage:
    """Every emission line of the enterprise-period with its input row, and the provenance of its factors."""
    _require_known(cursor, enterprise_id)
    rows = serving.lineage_lines(cursor, enterprise_id=enterprise_id, period=period)
    if not rows:
        raise NotFoundError(f"no published lines for enterprise {enterprise_id!r} in period {period}",
                            code="period_not_found")
    lines = [lineage_line_from_row(r) for r in rows]
    factor_ids = sorted({f for line in lines for f in line.factor_ids})
    factors = [factor_from_row(r) for r in serving.factors_by_id(cursor, factor_ids=factor_ids)]
    return Lineage(enterprise_id=enterprise_id, period=period, lines=lines, factors=factors)

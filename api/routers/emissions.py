"""Published balances of one enterprise (monthly, yearly) and the lineage of every number in them."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

from api.deps import SnapshotDep
from api.errors import NotFoundError
from api.exports import EXPORT_RESPONSES, ExportFormat, download, flatten
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


FormatQuery = Annotated[ExportFormat, Query(alias="format", description="json, or a csv / xlsx download")]


def _table(fmt: ExportFormat, *, name: str, items: list[BaseModel]) -> Response:
    rows = [flatten(item.model_dump(exclude={"products"})) for item in items]
    columns = list(dict.fromkeys(c for row in rows for c in row)) or ["enterprise_id", "period"]
    return download(fmt, name=name, columns=columns, rows=rows)


@router.get("/emissions/monthly", response_model=MonthlyBalances, responses=EXPORT_RESPONSES)
def monthly(enterprise_id: str, cursor: SnapshotDep,
            year: Annotated[int | None, Query(ge=1900, le=2999, description="default: every year")] = None,
            fmt: FormatQuery = "json") -> MonthlyBalances | Response:
    """Monthly balances of the enterprise, by period (empty for a year without data)."""
    _require_known(cursor, enterprise_id)
    rows = serving.monthly_balances(cursor, enterprise_id=enterprise_id, year=year)
    balances = MonthlyBalances(enterprise_id=enterprise_id, year=year, items=[balance_from_row(r) for r in rows])
    if fmt != "json":
        return _table(fmt, name=f"{enterprise_id}-monthly", items=list(balances.items))
    return balances


@router.get("/emissions/yearly", response_model=YearlyBalances, responses=EXPORT_RESPONSES)
def yearly(enterprise_id: str, cursor: SnapshotDep, fmt: FormatQuery = "json") -> YearlyBalances | Response:
    """Yearly balances of the enterprise with key-emitter status and the number of months reported."""
    _require_known(cursor, enterprise_id)
    rows = serving.yearly_balances(cursor, enterprise_id=enterprise_id)
    balances = YearlyBalances(enterprise_id=enterprise_id, items=[yearly_balance_from_row(r) for r in rows])
    if fmt != "json":
        return _table(fmt, name=f"{enterprise_id}-yearly", items=list(balances.items))
    return balances


@router.get("/lineage/{period}", response_model=Lineage, responses=EXPORT_RESPONSES)
def lineage(enterprise_id: str, cursor: SnapshotDep,
            period: Annotated[str, Path(pattern=PERIOD_PATTERN, description="YYYY-MM, or YYYY for the year")],
            fmt: FormatQuery = "json") -> Lineage | Response:
    """Every emission line of the enterprise-period with its input row, and the provenance of its factors."""
    _require_known(cursor, enterprise_id)
    rows = serving.lineage_lines(cursor, enterprise_id=enterprise_id, period=period)
    if not rows:
        raise NotFoundError(f"no published lines for enterprise {enterprise_id!r} in period {period}",
                            code="period_not_found")
    lines = [lineage_line_from_row(r) for r in rows]
    factor_ids = sorted({f for line in lines for f in line.factor_ids})
    factors = [factor_from_row(r) for r in serving.factors_by_id(cursor, factor_ids=factor_ids)]
    if fmt != "json":
        return _table(fmt, name=f"{enterprise_id}-{period}-lineage", items=list(lines))
    return Lineage(enterprise_id=enterprise_id, period=period, lines=lines, factors=factors)

"""Zone indicators per month: totals and intensities for the whole zone or one sector."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SnapshotDep
from api.schemas import Problem, ZoneIndicator, ZoneIndicators
from api.store import serving

router = APIRouter(prefix="/v1/zone", tags=["zone"], responses={503: {"model": Problem}})


@router.get("/indicators", response_model=ZoneIndicators)
def indicators(
    cursor: SnapshotDep,
    period: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="default: every month")] = None,
    sector_code: Annotated[str, Query(description="GB/T 4754 class code, `unregistered`, or `all`")] = "all",
) -> ZoneIndicators:
    """Indicator rows by month (and category within a sector); sector ``all`` is the whole zone."""
    rows = serving.zone_indicators(cursor, period=period, sector_code=sector_code)
    return ZoneIndicators(items=[ZoneIndicator.model_validate(r) for r in rows])

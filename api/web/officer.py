"""The officers' pages: the zone at a glance, the enterprise list, one enterprise down to its lineage, the review queue.

They read through the services and the snapshot reader the JSON API uses (gathered in ``api.web.views``); the
review actions on them are forms that call ``POST /v1/review/periods/{enterprise_id}/{period}/actions`` and
``POST /v1/restatements/substitutions`` from the browser, so every rule is the API's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from accounting.reports import zone_totals
from accounting.review import STATUSES
from api.deps import ActorDep, SessionDep, SettingsDep, SnapshotDep
from api.errors import NotFoundError
from api.services import review_views
from api.store import serving
from api.store.review import QueueFilter
from api.web import views
from api.web.exports import requested_export
from api.web.render import render
from api.web.report_links import report_links

router = APIRouter(prefix="/ui", include_in_schema=False)

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
PERIOD_PATTERN = r"^\d{4}(-(0[1-9]|1[0-2]))?$"
YearQuery = Annotated[int | None, Query(ge=1900, le=2999, description="default: the latest year with data")]
PageSize = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def paged(request: Request, limit: int, offset: int) -> tuple[int, int]:
    """``limit`` and ``offset`` for a list page; a download of its table holds the whole filtered list."""
    return (views.ALL_ROWS, 0) if requested_export(request) else (limit, offset)
Status = Literal["", "none", "submitted", "calculated", "in_review", "verified", "locked", "rejected", "reopened"]
SortColumn = Literal["enterprise_id", "name", "sector_code", "category", "status", "net_tco2e", "finding_count"]
Group = Literal["combustion", "process", "purchased_electricity", "purchased_heat", "exported_electricity",
                "exported_heat", "scope1", "scope2", "exported", "net", "energy", "all"]
#: Months of a year, for the enterprise page's period picker.
MONTHS = tuple(f"{m:02d}" for m in range(1, 13))


def _require_known(cursor: SnapshotDep, enterprise_id: str) -> dict[str, object]:
    """The registry entry (or a bare one for an unregistered reporter); 404 as the API's for an unknown one."""
    if not serving.enterprise_is_known(cursor, enterprise_id=enterprise_id):
        raise NotFoundError(f"no enterprise {enterprise_id!r} in the registry or the published balances",
                            code="enterprise_not_found")
    return serving.get_enterprise(cursor, enterprise_id=enterprise_id) or {"enterprise_id": enterprise_id}


@router.get("/zone")
def zone_overview(request: Request, cursor: SnapshotDep, session: SessionDep, settings: SettingsDep,
                  actor: ActorDep, year: YearQuery = None) -> Response:
    """Emissions and energy by month, sector and category; intensities against the targets; key emitters; alerts."""
    targets = views.Targets.from_settings(settings)
    months = views.zone_months(cursor, year=year, targets=targets)
    chosen = months["year"]
    breakdown = views.zone_breakdown(cursor, year=chosen) if chosen else {"sectors": [], "categories": []}
    emitters = views.key_emitters(session, cursor, settings=settings, actor=actor, year=chosen) if chosen else []
    findings = views.current_findings(session, actor=actor)
    names = {r["enterprise_id"]: r["name"] for r in serving.list_enterprises(cursor, limit=views.ALL_ROWS)[0]}
    reports = {"year": report_links("zone", period=chosen) if chosen else [],
               "months": [(m["period"], report_links("zone", period=m["period"])) for m in months["months"]]}
    return render(request, "officer/zone.html", targets=targets, **months, **breakdown, emitters=emitters,
                  findings=findings, names=names, totals=zone_totals(months["months"]), reports=reports)


@router.get("/enterprises")
def enterprise_list(
    request: Request, cursor: SnapshotDep, session: SessionDep, actor: ActorDep,
    q: Annotated[str, Query(max_length=200, description="part of the name or the code")] = "",
    sector_code: Annotated[str, Query(max_length=32)] = "",
    category: Annotated[str, Query(max_length=64)] = "",
    status: Status = "",
    failed: bool = False,
    sort: SortColumn = "enterprise_id",
    order: Literal["asc", "desc"] = "asc",
    limit: PageSize = 25,
    offset: Offset = 0,
) -> Response:
    """The registry with search, filters (sector, category, status, failed checks), sorting and paging."""
    limit, offset = paged(request, limit, offset)
    query = views.EnterpriseQuery(q=q, sector_code=sector_code, category=category, status=status, failed=failed,
                                  sort=sort, order=order, limit=limit, offset=offset)
    found = views.enterprise_list(session, cursor, actor=actor, query=query)
    params = {k: v for k, v in {"q": q, "sector_code": sector_code, "category": category, "status": status,
                                "failed": "true" if failed else "", "sort": sort, "order": order,
                                "limit": limit}.items() if v}
    return render(request, "officer/enterprises.html", query=query, params=params, **found)


@router.get("/enterprises/{enterprise_id}")
def enterprise_page(
    request: Request, cursor: SnapshotDep, session: SessionDep, actor: ActorDep,
    enterprise_id: Annotated[str, Path(min_length=1, max_length=18)],
    year: YearQuery = None,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN, description="the month to review")] = None,
) -> Response:
    """Monthly trend by source and scope (each number links to its lineage) and the review of one month."""
    enterprise = _require_known(cursor, enterprise_id)
    balances = views.enterprise_balances(cursor, enterprise_id=enterprise_id,
                                         year=int(period[:4]) if period and year is None else year)
    chosen = balances["year"]
    if period is None and chosen is not None:
        with_data = [b["period"] for b in balances["monthly"] if len(b["period"]) == 7]
        period = with_data[-1] if with_data else f"{chosen}-01"
    review = views.period_review(session, actor=actor, enterprise_id=enterprise_id, period=period) if period else None
    return render(request, "officer/enterprise.html", enterprise=enterprise, enterprise_id=enterprise_id, **balances,
                  period=period, review=review, months=[f"{chosen}-{m}" for m in MONTHS] if chosen else [],
                  column_groups=views.COLUMN_GROUPS, source_columns=views.SOURCE_COLUMNS,
                  scope_columns=views.SCOPE_COLUMNS, report_links=report_links)


@router.get("/enterprises/{enterprise_id}/lineage/{period}")
def lineage_page(
    request: Request, cursor: SnapshotDep,
    enterprise_id: Annotated[str, Path(min_length=1, max_length=18)],
    period: Annotated[str, Path(pattern=PERIOD_PATTERN)],
    line: Annotated[Group, Query(description="which lines: a source, a scope, net, energy or all")] = "all",
) -> Response:
    """The lines behind a number: input row, unit conversion, factor and the document it comes from."""
    enterprise = _require_known(cursor, enterprise_id)
    found = views.lineage(cursor, enterprise_id=enterprise_id, period=period, group=line)
    if not found["line_total"]:
        raise NotFoundError(f"no published lines for enterprise {enterprise_id!r} in period {period}",
                            code="period_not_found")
    return render(request, "officer/lineage.html", enterprise=enterprise, enterprise_id=enterprise_id, period=period,
                  group=line, groups=list(views.LINE_GROUPS), **found)


@router.get("/review")
def review_queue(
    request: Request, session: SessionDep, actor: ActorDep,
    status: Annotated[list[Status], Query()] = [],  # noqa: B006 (FastAPI reads, never changes, the default)
    period: Annotated[str, Query(pattern=r"^(\d{4}(-(0[1-9]|1[0-2]))?)?$")] = "",
    held: Annotated[Literal["", "true", "false"], Query()] = "",
    limit: PageSize = 50,
    offset: Offset = 0,
) -> Response:
    """The review queue of the API (``/v1/review/queue``) with its filters, for verifiers and officers."""
    limit, offset = paged(request, limit, offset)
    statuses = tuple(s for s in status if s and s != "none") or ("calculated", "in_review", "verified")
    where = QueueFilter(statuses=statuses, period_prefix=period or None,
                        held=None if not held else held == "true")
    page = review_views.queue(session, actor=actor, where=where, limit=limit, offset=offset)
    params: dict[str, object] = {k: v for k, v in {"period": period, "held": held, "limit": limit}.items() if v}
    return render(request, "officer/review.html", page=page, statuses=statuses, period=period, held=held,
                  params={**params, "status": list(statuses)}, all_statuses=STATUSES)

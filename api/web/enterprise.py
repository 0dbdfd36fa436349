"""The enterprises' own pages: their months and review comments, emissions, allowances, reports, and the upload.

An enterprise user reaches only its own enterprises (``api.access.PAGE_POLICY``: the ``own_enterprise`` rule, the
same 404 as the API for another's); officers and verifiers may open the same page for any enterprise, as the
routes it reads allow them. Everything shown is read through the services the JSON API uses (the review views,
the published snapshot, the compliance balance view), so a number on the page is the API's number. The upload
is the page's script sending the file to ``POST /v1/submissions``: the page shows the receipt, or every row the
service refused, and stores nothing itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from accounting.calculation import TOTAL_COLUMNS
from accounting.ledger import FIRST_VINTAGE, LAST_VINTAGE
from accounting.review import Actor
from api.deps import ActorDep, SessionDep, SettingsDep, SnapshotDep
from api.schemas import balance_from_row
from api.services import compliance, review_views
from api.store import serving
from api.store.review import QueueFilter
from api.store.schema import Enterprise
from api.web.i18n import Translate, language_of, translator
from api.web.market import default_year, published_years, registered, yuan
from api.web.render import render
from api.web.report_links import report_links

router = APIRouter(prefix="/ui", include_in_schema=False)

#: Periods of one enterprise fit on one page of the review queue (24 months and 2 years in the sample).
PERIOD_PAGE = 1000
#: The sources of the monthly chart and table, in report order (each a published total, tCO2e).
SOURCE_COLUMNS = ("combustion_tco2e", "process_tco2e", "purchased_electricity_tco2e", "purchased_heat_tco2e")
#: The other totals of the monthly table.
TOTAL_TABLE_COLUMNS = ("exported_tco2e", "scope1_tco2e", "scope2_tco2e", "net_tco2e", "energy_tce")
#: Review events whose comment is the reviewer's words (a submission's event only names the submission).
COMMENTED_ACTIONS = frozenset({"comment", "recommend", "reject", "reopen", "approve", "lock", "substitute"})
#: Roles that may send a file (``POST /v1/submissions``), so the page offers them the upload.
UPLOADERS = frozenset({"enterprise", "officer", "engineer"})
YearQuery = Annotated[int | None, Query(ge=FIRST_VINTAGE, le=LAST_VINTAGE, description="the year shown")]

#: The blank activity template (``api/routers/templates.py``).
TEMPLATE_LINKS = (("csv", "/v1/templates/activity.csv"), ("xlsx", "/v1/templates/activity.xlsx"))


def yearly_reports(*, enterprise_id: str, years: list[int]) -> list[dict[str, Any]]:
    """Per year, newest first, the enterprise's annual greenhouse-gas report in every format."""
    return [{"year": year, "links": report_links("ghg", enterprise_id=enterprise_id, year=year)}
            for year in sorted(set(years), reverse=True)]


def periods_of(session: Session, *, actor: Actor, enterprise_id: str) -> list[dict[str, Any]]:
    """Every reported period of the enterprise with its review state, newest first (the review queue's rows)."""
    page = review_views.queue(session, actor=actor, where=QueueFilter(enterprise_id=enterprise_id),
                              limit=PERIOD_PAGE, offset=0)
    return sorted(page["items"], key=lambda item: item["period"], reverse=True)


def comments_of(session: Session, *, actor: Actor, enterprise_id: str,
                periods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reviewers' comments on the enterprise's periods, newest first (with the period each is about)."""
    comments: list[dict[str, Any]] = []
    for item in periods:
        view = review_views.period_view(session, actor=actor, enterprise_id=enterprise_id, period=item["period"])
        comments += [{**event, "period": item["period"]} for event in view["history"]
                     if event["comment"] and event["action"] in COMMENTED_ACTIONS]
    return sorted(comments, key=lambda event: event["at"] or datetime.min.replace(tzinfo=UTC), reverse=True)


def rejections_of(periods: list[dict[str, Any]], *, comments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each period rejected now, with the comment of its latest rejection: what the enterprise must correct."""
    latest: dict[str, dict[str, Any]] = {}
    for event in comments:  # newest first: keep the first rejection seen per period
        if event["action"] == "reject":
            latest.setdefault(event["period"], event)
    return [{"period": item["period"], "event": latest.get(item["period"])}
            for item in periods if item["status"] == "rejected"]


def monthly_emissions(cursor: duckdb.DuckDBPyConnection, *, enterprise_id: str,
                      year: int | None) -> list[dict[str, Any]]:
    """The published balances of the enterprise by period, as the API's ``/emissions/monthly`` serves them."""
    rows = serving.monthly_balances(cursor, enterprise_id=enterprise_id, year=year)
    balances = [balance_from_row(row) for row in rows]
    return [{"period": b.period, "is_substituted": b.is_substituted, "line_count": b.line_count,
             **{c: getattr(b.totals, c) for c in TOTAL_COLUMNS}} for b in balances]


def emissions_figure(rows: list[dict[str, Any]], *, t: Translate) -> dict[str, Any]:
    """Stacked bars of the emissions by source per period (exports below zero), and the net emissions as a line."""
    periods = [row["period"] for row in rows]
    data: list[dict[str, Any]] = [{"type": "bar", "name": t(f"my.sources.{c}"), "x": periods,
                                   "y": [row[c] for row in rows]} for c in SOURCE_COLUMNS]
    data.append({"type": "bar", "name": t("my.sources.exported_tco2e"), "x": periods,  # exports lower the net
                 "y": [None if row["exported_tco2e"] is None else -row["exported_tco2e"] for row in rows]})
    data.append({"type": "scatter", "mode": "lines+markers", "name": t("my.sources.net_tco2e"), "x": periods,
                 "y": [row["net_tco2e"] for row in rows]})
    return {"data": data, "layout": {"barmode": "relative", "xaxis": {"type": "category"},
                                     "yaxis": {"title": {"text": "tCO₂e"}}}}


@router.get("/my")
def my_enterprises(request: Request, session: SessionDep, actor: ActorDep) -> Response:
    """The enterprises the user acts for, each with how many of its periods stand in each review state."""
    enterprises = []
    for enterprise_id in sorted(actor.enterprise_ids):
        found = session.get(Enterprise, enterprise_id)
        periods = periods_of(session, actor=actor, enterprise_id=enterprise_id)
        counts: dict[str, int] = {}
        for item in periods:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        enterprises.append({"enterprise_id": enterprise_id, "name": found.name if found else None,
                            "latest": periods[0] if periods else None, "counts": counts,
                            "rejected": counts.get("rejected", 0)})
    return render(request, "enterprise/home.html", enterprises=enterprises)


@router.get("/my/{enterprise_id}")
def my_enterprise(enterprise_id: str, request: Request, session: SessionDep, cursor: SnapshotDep,
                  settings: SettingsDep, actor: ActorDep, year: YearQuery = None) -> Response:
    """One enterprise: its months and the reviewers' comments, its emissions, allowances and holdings, reports."""
    found = registered(session, enterprise_id=enterprise_id)
    periods = periods_of(session, actor=actor, enterprise_id=enterprise_id)
    comments = comments_of(session, actor=actor, enterprise_id=enterprise_id, periods=periods)
    years = published_years(cursor, enterprise_id=enterprise_id)
    rows = monthly_emissions(cursor, enterprise_id=enterprise_id, year=year)
    rights_year = year if year is not None else default_year(years)
    balance = compliance.balance_view(session, settings=settings, enterprise_id=enterprise_id, year=rights_year)
    t = translator(language_of(request))
    return render(request, "enterprise/enterprise.html", enterprise=found, periods=periods, comments=comments,
                  rejections=rejections_of(periods, comments=comments), rows=rows, year=year, years=years,
                  figure=emissions_figure(rows, t=t), source_columns=SOURCE_COLUMNS,
                  total_columns=TOTAL_TABLE_COLUMNS, balance=balance, rights_year=rights_year,
                  reports=yearly_reports(enterprise_id=enterprise_id, years=years),
                  may_upload=actor.role in UPLOADERS, yuan=yuan)


@router.get("/my/{enterprise_id}/upload")
def upload_page(enterprise_id: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The blank template, and a form that sends a filled-in file to ``POST /v1/submissions``."""
    found = registered(session, enterprise_id=enterprise_id)
    return render(request, "enterprise/upload.html", enterprise=found, templates=TEMPLATE_LINKS,
                  max_upload_mib=settings.max_upload_bytes // (1024 * 1024),
                  deadline_day=settings.submission_deadline_day)

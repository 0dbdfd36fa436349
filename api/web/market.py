"""Carbon-rights and market pages: an enterprise's balance view, the zone compliance report, the mock exchange.

Every figure comes from the service the JSON API answers with (``api.services.compliance``, ``exchange``,
``auctions``), so the page and the API cannot disagree. Money is kept in whole fen (int) and shown in yuan as
a ``Decimal`` (fen / 100): exact, and formatted only by the pages' one number filter; a chart gets the same
yuan as decimal strings, never a float. The officers' exchange controls (halt, resume, band) are the page's
script calling the exchange API with the session's CSRF token and a fresh ``Idempotency-Key``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from accounting.ledger import FIRST_VINTAGE, LAST_VINTAGE
from api.deps import ActorDep, SessionDep, SettingsDep, SnapshotDep
from api.errors import NotFoundError
from api.services import auctions as auction_service
from api.services import compliance
from api.services import exchange as exchange_service
from api.store import serving
from api.store.schema import Enterprise
from api.web.i18n import Translate, language_of, translator
from api.web.render import china_time, render
from api.web.report_links import report_links

router = APIRouter(prefix="/ui", include_in_schema=False)

YearQuery = Annotated[int | None, Query(ge=FIRST_VINTAGE, le=LAST_VINTAGE, description="the compliance year")]
DayQuery = Annotated[date | None, Query(description="the trading day of the intraday candles")]
GranularityQuery = Annotated[int, Query(description="seconds per candle: 60, 300, 900 or 3600")]
#: Roles that see the officers' side of the market: the exchange controls and the auction reports.
CONTROLLERS = frozenset({"officer"})
REPORT_READERS = frozenset({"officer", "verifier"})
#: How much history the market page shows: trading days of daily bars, latest trades, book levels.
DAYS_SHOWN = 250
TRADES_SHOWN = 20
DEPTH_LEVELS = 5


def yuan(fen: int | None) -> Decimal | None:
    """Whole fen as exact yuan (``5010`` → ``Decimal('50.1')``); None stays None."""
    return None if fen is None else Decimal(fen) / 100


def chart_yuan(fen: int | None) -> str | None:
    """Yuan for a chart: a decimal string (Plotly reads it as a number), so no float ever holds money."""
    value = yuan(fen)
    return None if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# Carbon rights: balance view and zone compliance report


def registered(session: Session, *, enterprise_id: str) -> Enterprise:
    """The registry entry, or the API's 404 (an officer may name any id; an enterprise user only its own)."""
    found = session.get(Enterprise, enterprise_id)
    if found is None:
        raise NotFoundError(f"no enterprise {enterprise_id!r} in the registry", code="enterprise_not_found")
    return found


def published_years(cursor: duckdb.DuckDBPyConnection, *, enterprise_id: str) -> list[int]:
    """The years with a published yearly balance for the enterprise."""
    return sorted({int(row["period"][:4]) for row in serving.yearly_balances(cursor, enterprise_id=enterprise_id)})


def default_year(years: list[int]) -> int:
    """The latest published year within the compliance years, else last calendar year."""
    usable = [y for y in years if FIRST_VINTAGE <= y <= LAST_VINTAGE]
    return usable[-1] if usable else max(FIRST_VINTAGE, min(datetime.now(UTC).year - 1, LAST_VINTAGE))




def years_around(year: int) -> list[int]:
    """The years offered by a page's year switch: a few before the one shown and the next."""
    return list(range(max(year - 3, FIRST_VINTAGE), min(year + 1, LAST_VINTAGE) + 1))


def zone_default_year(cursor: duckdb.DuckDBPyConnection) -> int:
    """The latest year the zone has published data for (within the compliance years)."""
    periods = {row["period"][:4] for row in serving.zone_indicators(cursor, period=None, sector_code="all")}
    return default_year(sorted(int(p) for p in periods if p.isdigit()))


@router.get("/rights/{enterprise_id}")
def balance_page(enterprise_id: str, request: Request, session: SessionDep, cursor: SnapshotDep,
                 settings: SettingsDep, year: YearQuery = None) -> Response:
    """Where an enterprise stands for a year: allocation, holdings, pledges, surrendered, shortfall."""
    found = registered(session, enterprise_id=enterprise_id)
    chosen = year if year is not None else default_year(published_years(cursor, enterprise_id=enterprise_id))
    balance = compliance.balance_view(session, settings=settings, enterprise_id=enterprise_id, year=chosen)
    return render(request, "market/balance.html", enterprise=found, balance=balance, year=chosen,
                  years=years_around(chosen), yuan=yuan)


def compliance_figure(report: dict[str, Any], *, t: Translate) -> dict[str, Any]:
    """Per enterprise: obligation, surrendered and shortfall (t), grouped."""
    ids = [line["enterprise_id"] for line in report["enterprises"]]
    return {"data": [{"type": "bar", "name": t(f"rights.{key}"), "x": ids,
                      "y": [line[key] for line in report["enterprises"]]}
                     for key in ("obligation_t", "surrendered_t", "shortfall_t")],
            "layout": {"barmode": "group", "xaxis": {"type": "category"}, "yaxis": {"title": {"text": "t"}}}}


@router.get("/rights")
def zone_compliance_page(request: Request, session: SessionDep, cursor: SnapshotDep, settings: SettingsDep,
                         year: YearQuery = None) -> Response:
    """The zone compliance report of a year: each enterprise compliant, in deficit or in surplus, and the totals."""
    chosen = year if year is not None else zone_default_year(cursor)
    report = compliance.zone_report(session, settings=settings, year=chosen)
    t = translator(language_of(request))
    return render(request, "market/compliance.html", report=report, year=chosen,
                  figure=compliance_figure(report, t=t), years=years_around(chosen), yuan=yuan,
                  downloads=report_links("compliance", year=chosen))


# ---------------------------------------------------------------------------------------------
# The market


@router.get("/market")
def market_page(request: Request, session: SessionDep) -> Response:
    """Every listed instrument with its trading day, previous close, bands and session state."""
    instruments = exchange_service.list_instruments(session)
    return render(request, "market/market.html", instruments=instruments, yuan=yuan)


@router.get("/market/auctions")
def auctions_page(request: Request, session: SessionDep, actor: ActorDep) -> Response:
    """Every auction and its result; officers and verifiers also see who won what (the auction report)."""
    listed = auction_service.list_auctions(session)
    reports: dict[str, dict[str, Any]] = {}
    if actor.role in REPORT_READERS:
        reports = {a["auction_id"]: auction_service.report(session, auction_id=a["auction_id"])
                   for a in listed if a["status"] in ("settled", "cancelled")}
    return render(request, "market/auctions.html", auctions=listed, reports=reports, yuan=yuan)


def daily_figure(days: list[dict[str, Any]], *, t: Translate) -> dict[str, Any]:
    """Daily bars: open, high, low and close (yuan) over the volume (t) of listed and block trades."""
    x = [d["trading_day"] for d in days]
    return {"data": [
        {"type": "ohlc", "name": t("market.price"), "x": x, "open": [chart_yuan(d["open_fen"]) for d in days],
         "high": [chart_yuan(d["high_fen"]) for d in days], "low": [chart_yuan(d["low_fen"]) for d in days],
         "close": [chart_yuan(d["close_fen"]) for d in days], "yaxis": "y"},
        {"type": "bar", "name": t("market.volume_t"), "x": x, "y": [d["volume_t"] for d in days], "yaxis": "y2",
         "opacity": 0.4}],
        "layout": {"xaxis": {"type": "category", "anchor": "y2", "rangeslider": {"visible": False}},
                   "yaxis": {"title": {"text": t("market.price_yuan")}, "domain": [0.3, 1]},
                   "yaxis2": {"title": {"text": "t"}, "domain": [0, 0.25]}}}


def intraday_figure(candles: list[dict[str, Any]], *, t: Translate) -> dict[str, Any]:
    """Intraday candles (yuan) over their volume (t)."""
    x = [c["start_local"] for c in candles]
    return {"data": [
        {"type": "candlestick", "name": t("market.price"), "x": x,
         "open": [chart_yuan(c["open_fen"]) for c in candles], "high": [chart_yuan(c["high_fen"]) for c in candles],
         "low": [chart_yuan(c["low_fen"]) for c in candles], "close": [chart_yuan(c["close_fen"]) for c in candles],
         "yaxis": "y"},
        {"type": "bar", "name": t("market.volume_t"), "x": x, "y": [c["volume_t"] for c in candles], "yaxis": "y2",
         "opacity": 0.4}],
        "layout": {"xaxis": {"type": "category", "anchor": "y2", "rangeslider": {"visible": False}},
                   "yaxis": {"title": {"text": t("market.price_yuan")}, "domain": [0.3, 1]},
                   "yaxis2": {"title": {"text": "t"}, "domain": [0, 0.25]}}}


def candle_day(days: list[dict[str, Any]], *, view: dict[str, Any], day: date | None) -> str | None:
    """The trading day of the candles: the one asked for, else the latest with trades, else the current one."""
    if day is not None:
        return day.isoformat()
    traded = [str(d["trading_day"]) for d in days if d["trades"]]
    current: str | None = view["trading_day"]
    return traded[-1] if traded else current


@router.get("/market/{instrument}")
def instrument_page(instrument: str, request: Request, session: SessionDep, actor: ActorDep, day: DayQuery = None,
                    granularity: GranularityQuery = 300) -> Response:
    """An instrument: daily bars, the day's candles, five levels of depth, the latest trades; officers' controls."""
    view = exchange_service.instrument_view(session, instrument=instrument)
    days = exchange_service.daily(session, instrument=instrument, day_from=None, day_to=None, limit=DAYS_SHOWN)
    trading_day = candle_day(days, view=view, day=day)
    candles = [] if trading_day is None else exchange_service.candles(
        session, instrument=instrument, trading_day=trading_day, seconds=granularity)
    candles = [{**c, "start_local": china_time(c["start"])} for c in candles]
    book = exchange_service.depth(session, instrument=instrument, levels=DEPTH_LEVELS)
    latest = exchange_service.trades(session, instrument=instrument, trading_day=None, before_id=None,
                                     limit=TRADES_SHOWN)["items"]
    latest = [{**trade, "executed_local": china_time(trade["executed_at"])} for trade in latest]
    t = translator(language_of(request))
    return render(request, "market/instrument.html", instrument=view, days=days, candles=candles,
                  trading_day=trading_day, granularity=granularity, depth=book, trades=latest,
                  daily_figure=daily_figure(days, t=t), intraday_figure=intraday_figure(candles, t=t),
                  controls=actor.role in CONTROLLERS, granularities=exchange_service.CANDLE_SECONDS, yuan=yuan)

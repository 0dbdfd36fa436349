"""What the officers' pages show, gathered from the snapshot and the operational store (no FastAPI here).

Every figure comes from the same readers the JSON API uses (``api.store.serving``, ``api.services``), and the
converters of ``api.schemas``, so a page and the API cannot disagree. What is added here is only what a page
needs to lay things out: sums of published totals over months, sectors and categories for charts and tables,
the latest review state of each enterprise, and which review actions the ``accounting.review`` rules leave open
to the reader.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accounting.review import NONE, RULES, Actor
from api.schemas import balance_from_row, factor_from_row, lineage_line_from_row, yearly_balance_from_row
from api.services import compliance as compliance_service
from api.services import evidence as evidence_service
from api.services import quality as quality_service
from api.services import review_views
from api.services.review_views import PeriodNotFoundError
from api.store import serving
from api.store.schema import PeriodReview
from pipelines.settings import Settings

#: Enough for any zone's registry in one read; the pages page through it themselves.
ALL_ROWS = 100_000
FINDINGS_PAGE = 1000
#: The sources of an enterprise's balance (columns of the published balances) and the result categories of
#: the emission lines each is the sum of: what a number on the enterprise page links down to.
SOURCE_COLUMNS = ("combustion_tco2e", "process_tco2e", "purchased_electricity_tco2e", "purchased_heat_tco2e",
                  "exported_electricity_tco2e", "exported_heat_tco2e")
SCOPE_COLUMNS = ("scope1_tco2e", "scope2_tco2e", "exported_tco2e", "net_tco2e", "energy_tce")
LINE_GROUPS: dict[str, frozenset[str] | None] = {
    "combustion": frozenset({"combustion"}),
    "process": frozenset({"process"}),
    "purchased_electricity": frozenset({"purchased_electricity"}),
    "purchased_heat": frozenset({"purchased_heat"}),
    "exported_electricity": frozenset({"exported_electricity"}),
    "exported_heat": frozenset({"exported_heat"}),
    "scope1": frozenset({"combustion", "process"}),
    "scope2": frozenset({"purchased_electricity", "purchased_heat"}),
    "exported": frozenset({"exported_electricity", "exported_heat"}),
    "net": frozenset({"combustion", "process", "purchased_electricity", "purchased_heat", "exported_electricity",
                      "exported_heat"}),
    "energy": None,  # energy comes from many kinds of line: all of them
    "all": None,
}
#: The line group a balance column links to.
COLUMN_GROUPS = {**{c: c.removesuffix("_tco2e") for c in SOURCE_COLUMNS}, "scope1_tco2e": "scope1",
                 "scope2_tco2e": "scope2", "exported_tco2e": "exported", "net_tco2e": "net", "energy_tce": "energy"}
#: Review actions a page offers (``submit`` and ``calculate`` are the upload's and the pipeline's).
PAGE_ACTIONS = ("start_review", "comment", "recommend", "approve", "reject", "lock", "reopen", "substitute")


def _sum(values: Iterable[float | None]) -> float | None:
    """The sum of the present values; None when none is present (a missing total is not zero)."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def years_of(periods: Iterable[str]) -> list[int]:
    return sorted({int(p[:4]) for p in periods})


def pick_year(years: Sequence[int], year: int | None) -> int | None:
    """The year asked for, else the latest with data."""
    if year is not None:
        return year
    return years[-1] if years else None


# ---------------------------------------------------------------------------------------------
# The zone


@dataclass(frozen=True, slots=True, kw_only=True)
class Targets:
    """The zone's intensity targets per 10,000 CNY of value added (None: not set)."""

    tco2e_per_10k_cny: float | None
    tce_per_10k_cny: float | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Targets:
        carbon, energy = settings.zone_target_tco2e_per_10k_cny, settings.zone_target_tce_per_10k_cny
        return cls(tco2e_per_10k_cny=None if carbon is None else float(carbon),
                   tce_per_10k_cny=None if energy is None else float(energy))


def _against(value: float | None, target: float | None) -> str | None:
    """``within`` or ``above`` the target, None when either is missing."""
    if value is None or target is None:
        return None
    return "within" if value <= target else "above"


def zone_months(cursor: duckdb.DuckDBPyConnection, *, year: int | None, targets: Targets) -> dict[str, Any]:
    """The whole zone's published indicators, month by month, of one year; each intensity against its target."""
    rows = serving.zone_indicators(cursor, period=None, sector_code="all")
    years = years_of(r["period"] for r in rows)
    chosen = pick_year(years, year)
    months = [{**r, "carbon_vs_target": _against(r["tco2e_per_10k_cny_value_added"], targets.tco2e_per_10k_cny),
               "energy_vs_target": _against(r["tce_per_10k_cny_value_added"], targets.tce_per_10k_cny)}
              for r in rows if r["category"] == "all" and r["period"][:4] == str(chosen)]
    return {"years": years, "year": chosen, "months": months}


def zone_breakdown(cursor: duckdb.DuckDBPyConnection, *, year: int) -> dict[str, Any]:
    """The year's emissions and energy by sector and category (sums of the published sector rows)."""
    registry, _ = serving.list_enterprises(cursor, limit=ALL_ROWS)
    sector_names = {r["sector_code"]: r.get("sector_name") for r in registry}
    by_sector: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for code in [*sorted(sector_names), "unregistered"]:
        for row in serving.zone_indicators(cursor, period=None, sector_code=code):
            if row["period"][:4] == str(year):
                by_sector[(code, row["category"])].append(row)
    sectors = [{"sector_code": code, "sector_name": sector_names.get(code), "category": category,
                "enterprise_count": max(r["enterprise_count"] for r in rows),
                "net_tco2e": _sum(r["net_tco2e"] for r in rows), "energy_tce": _sum(r["energy_tce"] for r in rows)}
               for (code, category), rows in sorted(by_sector.items())]
    monthly: dict[str, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    for (_, category), rows in by_sector.items():
        for row in rows:
            monthly[category][row["period"]].append(row["net_tco2e"])
    categories = []
    for category in sorted(monthly):
        members = [s for s in sectors if s["category"] == category]
        categories.append({"category": category, "net_tco2e": _sum(s["net_tco2e"] for s in members),
                           "energy_tce": _sum(s["energy_tce"] for s in members),
                           "months": {p: _sum(v) for p, v in sorted(monthly[category].items())}})
    return {"sectors": sorted(sectors, key=lambda s: -(s["net_tco2e"] or 0)), "categories": categories}


def key_emitters(session: Session, cursor: duckdb.DuckDBPyConnection, *, settings: Settings, actor: Actor,
                 year: int) -> list[dict[str, Any]]:
    """Each key emitter's submissions in the year (months in force, missing), review states and compliance status."""
    found = quality_service.completeness(session, settings=settings, actor=actor, as_of=datetime.now(UTC).date(),
                                         published_key_emitters=quality_service.published_key_emitters(cursor))
    missing = {m["enterprise_id"]: [p for p in m["missing"] if p[:4] == str(year)] for m in found["missing"]}
    ids = [k["enterprise_id"] for k in found["key_emitters"]]
    states: dict[str, Counter[str]] = defaultdict(Counter)
    for enterprise_id, status in session.execute(
            select(PeriodReview.enterprise_id, PeriodReview.status).where(
                PeriodReview.enterprise_id.in_(ids), PeriodReview.period.like(f"{year}-%"))):
        states[enterprise_id][status] += 1
    emitters = []
    for key in found["key_emitters"]:
        enterprise_id = key["enterprise_id"]
        view = compliance_service.balance_view(session, settings=settings, enterprise_id=enterprise_id, year=year)
        emitters.append({**key, "missing": missing.get(enterprise_id, []), "states": dict(states[enterprise_id]),
                         "months_with_state": sum(states[enterprise_id].values()),
                         "compliance_status": view["status"], "shortfall_t": view.get("shortfall_t")})
    return emitters


def current_findings(session: Session, *, actor: Actor, enterprise_id: str | None = None,
                     period: str | None = None) -> list[dict[str, Any]]:
    """Every finding of the latest quality run (all pages of the service's list)."""
    items: list[dict[str, Any]] = []
    while True:
        page = quality_service.current_findings(session, actor=actor, enterprise_id=enterprise_id, period=period,
                                                limit=FINDINGS_PAGE, offset=len(items))
        items += page["items"]
        if not page["items"] or len(items) >= page["total"]:
            return items


# ---------------------------------------------------------------------------------------------
# Enterprises


def latest_states(session: Session) -> dict[str, dict[str, Any]]:
    """Each enterprise's latest month with a review state: period, status and whether checks hold it."""
    latest = (select(PeriodReview.enterprise_id, func.max(PeriodReview.period).label("period"))
              .where(func.length(PeriodReview.period) == 7).group_by(PeriodReview.enterprise_id).subquery())
    rows = session.execute(select(PeriodReview.enterprise_id, PeriodReview.period, PeriodReview.status,
                                  PeriodReview.held).join(latest, (PeriodReview.enterprise_id == latest.c.enterprise_id)
                                                          & (PeriodReview.period == latest.c.period)))
    return {e: {"period": p, "status": s, "held": bool(h)} for e, p, s, h in rows}


def latest_yearly_net(cursor: duckdb.DuckDBPyConnection, enterprise_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each enterprise's latest published yearly balance: year and net tCO2e (as the yearly route serves it)."""
    latest: dict[str, dict[str, Any]] = {}
    for enterprise_id in enterprise_ids:
        years = [yearly_balance_from_row(r) for r in serving.yearly_balances(cursor, enterprise_id=enterprise_id)]
        if years:
            last = years[-1]
            latest[enterprise_id] = {"year": last.period, "net_tco2e": last.totals.model_dump()["net_tco2e"]}
    return latest


@dataclass(frozen=True, slots=True, kw_only=True)
class EnterpriseQuery:
    """The enterprise list's search, filters, sort and page (the page's query parameters)."""

    q: str = ""
    sector_code: str = ""
    category: str = ""
    status: str = ""
    failed: bool = False
    sort: str = "enterprise_id"
    order: str = "asc"
    limit: int = 25
    offset: int = 0


def _matches(row: Mapping[str, Any], query: EnterpriseQuery) -> bool:
    text = query.q.strip().casefold()
    if text and not any(text in str(row.get(k) or "").casefold() for k in ("enterprise_id", "name", "name_en")):
        return False
    if query.sector_code and row["sector_code"] != query.sector_code:
        return False
    if query.category and row["category"] != query.category:
        return False
    if query.status and row["status"] != query.status:
        return False
    return not (query.failed and not row["finding_count"])


def _sort_key(sort: str) -> Any:
    def key(row: Mapping[str, Any]) -> tuple[bool, Any]:
        value = row.get(sort)
        return (value is None, value if value is not None else 0)
    return key


def enterprise_list(session: Session, cursor: duckdb.DuckDBPyConnection, *, actor: Actor,
                    query: EnterpriseQuery) -> dict[str, Any]:
    """One page of the registry with each enterprise's latest net emissions, review state and failed checks."""
    registry, _ = serving.list_enterprises(cursor, limit=ALL_ROWS)
    states = latest_states(session)
    findings = current_findings(session, actor=actor)
    counts = Counter(f["enterprise_id"] for f in findings)
    holds = Counter(f["enterprise_id"] for f in findings if f["severity"] == "hold")
    nets = latest_yearly_net(cursor, (r["enterprise_id"] for r in registry))
    rows = []
    for entry in registry:
        enterprise_id = entry["enterprise_id"]
        state = states.get(enterprise_id, {})
        rows.append({**entry, "status": state.get("status", NONE), "status_period": state.get("period"),
                     "held": state.get("held", False), "finding_count": counts[enterprise_id],
                     "hold_count": holds[enterprise_id], "net_year": nets.get(enterprise_id, {}).get("year"),
                     "net_tco2e": nets.get(enterprise_id, {}).get("net_tco2e")})
    chosen = sorted((r for r in rows if _matches(r, query)), key=_sort_key(query.sort), reverse=query.order == "desc")
    return {"items": chosen[query.offset:query.offset + query.limit], "total": len(chosen),
            "sectors": sorted({(r["sector_code"], r.get("sector_name") or "") for r in registry}),
            "categories": sorted({r["category"] for r in registry})}


def enterprise_balances(cursor: duckdb.DuckDBPyConnection, *, enterprise_id: str, year: int | None
                        ) -> dict[str, Any]:
    """The enterprise's yearly balances and the months of one year, as the emissions routes serve them."""
    yearly = [yearly_balance_from_row(r) for r in serving.yearly_balances(cursor, enterprise_id=enterprise_id)]
    years = years_of(b.period for b in yearly)
    chosen = pick_year(years, year)
    monthly = ([balance_from_row(r) for r in serving.monthly_balances(cursor, enterprise_id=enterprise_id,
                                                                       year=chosen)] if chosen else [])
    return {"years": years, "year": chosen, "yearly": [_flat(b.model_dump()) for b in yearly],
            "monthly": [_flat(b.model_dump()) for b in monthly]}


def _flat(balance: dict[str, Any]) -> dict[str, Any]:
    """A balance with its totals beside the other fields (``row["net_tco2e"]``)."""
    return {**{k: v for k, v in balance.items() if k != "totals"}, **balance["totals"]}


def allowed_actions(actor: Actor, *, enterprise_id: str, status: str | None) -> list[str]:
    """The review actions the rules leave open to ``actor`` on a period in ``status`` (the API still decides)."""
    state = status or NONE
    return [a for a in PAGE_ACTIONS if actor.role in RULES[a].roles and state in RULES[a].sources
            and actor.speaks_for(enterprise_id)]


def period_review(session: Session, *, actor: Actor, enterprise_id: str, period: str) -> dict[str, Any]:
    """The period's review state with history, its findings, its evidence and the actions open to the reader."""
    try:
        view: dict[str, Any] | None = review_views.period_view(session, actor=actor, enterprise_id=enterprise_id,
                                                               period=period)
    except PeriodNotFoundError:
        view = None
    evidence = evidence_service.period_evidence(session, actor=actor, enterprise_id=enterprise_id, period=period)
    return {"state": view, "findings": current_findings(session, actor=actor, enterprise_id=enterprise_id,
                                                        period=period),
            "evidence": evidence["items"], "evidence_total": evidence["total"],
            "actions": allowed_actions(actor, enterprise_id=enterprise_id, status=view["status"] if view else None)}


def lineage(cursor: duckdb.DuckDBPyConnection, *, enterprise_id: str, period: str, group: str) -> dict[str, Any]:
    """The period's emission lines of one group (``LINE_GROUPS``) with the provenance of their factors."""
    categories = LINE_GROUPS[group]
    lines = [lineage_line_from_row(r).model_dump() for r in serving.lineage_lines(cursor, enterprise_id=enterprise_id,
                                                                                  period=period)]
    shown = [line for line in lines if categories is None or line["category"] in categories]
    factor_ids = sorted({f for line in shown for f in line["factor_ids"]})
    factors = {f.factor_id: f.model_dump() for f in
               (factor_from_row(r) for r in serving.factors_by_id(cursor, factor_ids=factor_ids))}
    subtotals = [{"category": category, "line_count": sum(1 for line in shown if line["category"] == category),
                  "tco2e": _sum(line["tco2e"] for line in shown if line["category"] == category),
                  "energy_tce": _sum(line["energy_tce"] for line in shown if line["category"] == category)}
                 for category in sorted({line["category"] for line in shown})]
    return {"lines": shown, "line_total": len(lines), "factors": factors, "subtotals": subtotals}

"""Reports: gather what a report shows (the published snapshot, the operational store) and build its model.

The models and their rules are in ``accounting.reports``; this module only reads. Emission figures come
from the published snapshot, the same rows the emissions and zone routes serve, so a report can never
disagree with the API; compliance figures come from the compliance service's balance views, the same
answer as ``GET /v1/compliance/{year}/enterprises/{id}``. A period without published figures is a
:class:`ReportNotFoundError`, never an empty report.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from accounting.reports import (
    Entity,
    Report,
    ZoneTargets,
    compliance_report,
    enterprise_ghg_report,
    zone_report,
)
from api.services import compliance as compliance_service
from api.store import serving
from api.store.schema import Enterprise
from pipelines.settings import Settings


class ReportNotFoundError(LookupError):
    """Nothing is published for what the report was asked about (an unknown enterprise, a year without data)."""

    def __init__(self, detail: str, *, code: str) -> None:
        super().__init__(detail)
        self.code = code


def _read(cursor: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        rows = cursor.execute(sql, params).fetchall()
    except duckdb.CatalogException as err:  # a snapshot published before any month had data
        raise serving.SnapshotUnavailableError(None, str(err).splitlines()[0]) from err
    columns = [d[0] for d in cursor.description or []]
    return [{c: None if isinstance(v, float) and math.isnan(v) else v for c, v in zip(columns, row, strict=True)}
            for row in rows]


def enterprise_ghg(cursor: duckdb.DuckDBPyConnection, *, enterprise_id: str, year: int) -> Report:
    """The enterprise's annual greenhouse-gas report from its published yearly balance and lines."""
    if not serving.enterprise_is_known(cursor, enterprise_id=enterprise_id):
        raise ReportNotFoundError(f"no enterprise {enterprise_id!r} in the registry or the published balances",
                                  code="enterprise_not_found")
    balance = next((b for b in serving.yearly_balances(cursor, enterprise_id=enterprise_id)
                    if b["period"] == str(year)), None)
    if balance is None:
        raise ReportNotFoundError(f"no published balance for enterprise {enterprise_id!r} in {year}: "
                                  "nothing was reported for that year, or it is not calculated yet",
                                  code="period_not_found")
    lines = serving.lineage_lines(cursor, enterprise_id=enterprise_id, period=str(year))
    factor_ids = sorted({f for line in lines for f in line.get("factor_ids") or []})
    return enterprise_ghg_report(
        entity=Entity.from_row(enterprise_id, serving.get_enterprise(cursor, enterprise_id=enterprise_id)),
        year=year, balance=balance, lines=lines, factors=serving.factors_by_id(cursor, factor_ids=factor_ids))


def zone_targets(settings: Settings) -> ZoneTargets:
    """The zone's intensity targets from the settings (None where none is set)."""
    return ZoneTargets(tco2e_per_10k_cny_value_added=settings.zone_target_tco2e_per_10k_cny,
                       tce_per_10k_cny_value_added=settings.zone_target_tce_per_10k_cny)


def zone(cursor: duckdb.DuckDBPyConnection, *, settings: Settings, period: str) -> Report:
    """The zone's report for a month (``YYYY-MM``) or a year (``YYYY``)."""
    year = period[:4]
    indicators = _read(cursor, """
        select * from out_zone__monthly_indicators
        where (length($period) = 7 and period = $period) or (length($period) = 4 and left(period, 4) = $period)
        order by period, sector_code, category""", {"period": period})
    if not indicators:
        raise ReportNotFoundError(f"no published zone indicators for {period}", code="period_not_found")
    table = "out_emissions__monthly_enterprise_balances" if len(period) == 7 else \
        "out_emissions__yearly_enterprise_balances"
    balances = _read(cursor, f"select * exclude (products) from {table} where period = $period order by enterprise_id",
                     {"period": period})
    key_emitters = _read(cursor, """
        select enterprise_id from out_emissions__yearly_enterprise_balances
        where period = $year and is_key_emitter""", {"year": year})
    registry, _ = serving.list_enterprises(cursor, limit=100_000)
    return zone_report(period=period, indicators=indicators, registry=registry, balances=balances,
                       key_emitters=[r["enterprise_id"] for r in key_emitters], targets=zone_targets(settings))


def compliance(session: Session, *, settings: Settings, year: int) -> Report:
    """The compliance report: the zone report of the compliance service and each enterprise's balance view."""
    summary = compliance_service.zone_report(session, settings=settings, year=year)
    enterprise_ids = list(session.scalars(select(Enterprise.enterprise_id).order_by(Enterprise.enterprise_id)))
    views = [compliance_service.balance_view(session, settings=settings, enterprise_id=e, year=year)
             for e in enterprise_ids]
    return compliance_report(year=year, zone=summary, views=views)

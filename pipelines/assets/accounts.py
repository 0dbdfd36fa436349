"""Assets from activity files to published enterprise balances and zone indicators.

Each asset is glue: it reads its inputs from the warehouse, runs the SQL of ``pipelines.warehouse``
and writes its table idempotently (a month partition is deleted and re-inserted in one transaction).
Month-partitioned assets accept a partition range in one run.
"""

import json
import warnings

import dagster as dg
import duckdb
import pandas as pd

from accounting.activity import conversion_table
from api.store import substitutions
from api.store.submissions import in_force
from pipelines import warehouse as wh
from pipelines.resources import AccountingResource, OltpResource, WarehouseResource

warnings.filterwarnings("ignore", category=dg.BetaWarning)  # single-run backfills of month ranges

monthly = dg.MonthlyPartitionsDefinition(start_date="2023-01", fmt="%Y-%m", end_offset=1)
single_run = dg.BackfillPolicy.single_run()

SERVED_TABLES = [
    "core_registry__enterprises",
    "core_factors__factors",
    "raw_activity__refused_files",
    "core_emissions__monthly_lines",
    "out_emissions__monthly_enterprise_balances",
    "out_emissions__yearly_enterprise_balances",
    "out_zone__monthly_indicators",
    "out_quality__findings",
]


def _months(context: dg.AssetExecutionContext) -> list[str]:
    return list(context.partition_keys)


def _month_filter(table: str) -> str:
    return f"select * from {table} where partition_month in (select unnest($months))"


@dg.asset(group_name="registry", kinds={"duckdb"})
def core_registry__enterprises(warehouse: WarehouseResource, oltp: OltpResource) -> dg.MaterializeResult:
    """The zone's registry of supervised enterprises, copied from the operational store."""
    from sqlalchemy import select

    from api.store.schema import Enterprise

    columns = ["enterprise_id", "name", "name_en", "category", "sector_code", "sector_name", "zone_code",
               "city_code", "province_code", "county_code", "facilities", "key_emitter_declared"]
    with oltp.sessions()() as session:
        rows = [{c: getattr(e, c) for c in columns} for e in session.scalars(select(Enterprise)).all()]
    frame = pd.DataFrame(rows, columns=columns)
    frame["facilities"] = frame["facilities"].map(lambda f: ";".join(f or []))
    frame["key_emitter_declared"] = frame["key_emitter_declared"].astype("boolean")
    with wh.connect(warehouse.warehouse) as conn:
        conn.register("registry_frame", frame)
        count = wh.replace_table(conn, table="core_registry__enterprises", frame_sql="select * from registry_frame")
    return dg.MaterializeResult(metadata={"dagster/row_count": count})


@dg.asset(group_name="factors", kinds={"duckdb"})
def core_factors__factors(warehouse: WarehouseResource, accounting: AccountingResource) -> dg.MaterializeResult:
    """The factor edition and GWP set this run calculates with, copied into the warehouse with provenance."""
    library = accounting.library()
    edition = accounting.factor_edition or library.latest()
    factors = library.factors(edition)
    gwp = library.gwp(accounting.gwp_set)
    with wh.connect(warehouse.warehouse) as conn:
        conn.register("factor_frame", factors)
        conn.register("gwp_frame", gwp)
        count = wh.replace_table(conn, table="core_factors__factors", frame_sql="select * from factor_frame")
        wh.replace_table(conn, table="core_factors__gwp", frame_sql="select * from gwp_frame")
    return dg.MaterializeResult(metadata={"dagster/row_count": count, "edition": edition,
                                          "gwp_set": accounting.gwp_set})


@dg.asset(group_name="activity", partitions_def=monthly, backfill_policy=single_run, kinds={"duckdb"})
def raw_activity__monthly_lines(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                                accounting: AccountingResource, oltp: OltpResource) -> dg.MaterializeResult:
    """Activity lines of the month(s): the lines of the submissions in force, read from the operational store.

    Each enterprise-period comes from its latest submission (earlier ones are superseded); a month an
    officer substituted has no lines (its substituted totals are added to the balances). A stored
    submission that no longer validates (a newer factor edition changed a rule) is listed with its
    errors in ``raw_activity__refused_files`` and held back; the others go on.
    """
    months = _months(context)
    rules = wh.fuel_rules(accounting.library(), accounting.factor_edition)
    with oltp.sessions()() as session:
        substituted = substitutions.keys_in_force(session, months=months)
        submissions = [(s, keys - substituted) for s, keys in in_force(session, months=months)]
        lines, refused = wh.read_submissions(submissions, rules=rules)
    if not lines.empty:
        month = lines["period"].where(lines["month"].notna(), lines["year"].astype(str) + "-12")
        lines = lines.assign(partition_month=month)
        lines = lines[lines["partition_month"].isin(months)]
    with wh.connect(warehouse.warehouse) as conn:
        conn.register("refused_frame", pd.DataFrame(refused, columns=["source_file", "source_sha256",
                                                                      "error_count", "report"]))
        wh.replace_table(conn, table="raw_activity__refused_files", frame_sql="select * from refused_frame")
        if lines.empty:
            conn.execute("create table if not exists raw_activity__monthly_lines (partition_month varchar)")
            conn.execute("delete from raw_activity__monthly_lines where partition_month in (select unnest($m))",
                         {"m": months})
            count = 0
        else:
            conn.register("line_frame", lines)
            count = wh.replace_partitions(conn, table="raw_activity__monthly_lines",
                                          frame_sql="select * from line_frame", months=months)
    if refused:
        context.log.warning(f"{len(refused)} activity file(s) refused: {[r['source_file'] for r in refused]}")
    return dg.MaterializeResult(metadata={"dagster/row_count": count, "months": months,
                                          "refused_files": [r["source_file"] for r in refused]})


@dg.asset(group_name="activity", partitions_def=monthly, backfill_policy=single_run, kinds={"duckdb"},
          deps=[raw_activity__monthly_lines])
def core_activity__monthly_lines(context: dg.AssetExecutionContext,
                                 warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Activity lines with every quantity and measured parameter in canonical units (pint, per distinct unit)."""
    months = _months(context)
    with wh.connect(warehouse.warehouse) as conn:
        lines = conn.execute(_month_filter("raw_activity__monthly_lines"), {"months": months}).df()
        if lines.empty:
            return dg.MaterializeResult(metadata={"dagster/row_count": 0, "months": months})
        conn.register("unit_conversions", conversion_table(lines))
        conn.register("month_lines", lines)
        wh.create_normalized_view(conn, lines_table="month_lines")
        count = wh.replace_partitions(conn, table="core_activity__monthly_lines",
                                      frame_sql="select * from normalized_lines", months=months)
    return dg.MaterializeResult(metadata={"dagster/row_count": count, "months": months})


@dg.asset(group_name="emissions", partitions_def=monthly, backfill_policy=single_run, kinds={"duckdb"},
          deps=[core_activity__monthly_lines, core_factors__factors])
def core_emissions__monthly_lines(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                                  accounting: AccountingResource) -> dg.MaterializeResult:
    """One emission line per activity line, with its lineage: row, units, factor ids, edition, fallback, run."""
    months = _months(context)
    options = accounting.options()
    with wh.connect(warehouse.warehouse) as conn:
        conn.execute(f"create or replace temp view normalized_lines as {_month_filter('core_activity__monthly_lines')}"
                     .replace("$months", _sql_list(months)))
        conn.execute("create or replace temp view factor_table as select * from core_factors__factors")
        conn.execute("create or replace temp view gwp_table as select * from core_factors__gwp")
        edition = conn.execute("select any_value(edition) from core_factors__factors").fetchall()[0][0]
        wh.create_emission_lines(conn, options=options, edition=edition, run_id=context.run.run_id)
        count = wh.replace_partitions(conn, table="core_emissions__monthly_lines",
                                      frame_sql="select * from emission_lines", months=months)
        totals = conn.execute("select sum(tco2e), count(*) filter (where fallback <> 'measured') "
                              "from emission_lines").fetchall()[0]
    return dg.MaterializeResult(metadata={"dagster/row_count": count, "months": months, "edition": edition,
                                          "tco2e": float(totals[0] or 0.0), "lines_on_defaults": int(totals[1])})


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


@dg.asset(group_name="emissions", partitions_def=monthly, backfill_policy=single_run, kinds={"duckdb"},
          deps=[core_emissions__monthly_lines])
def out_emissions__monthly_enterprise_balances(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                                               accounting: AccountingResource,
                                               oltp: OltpResource) -> dg.MaterializeResult:
    """Carbon balance of each enterprise and month: scopes, exported, net, energy, intensities, pollutants.

    Months an officer substituted are included with the substituted totals and ``is_substituted``.
    """
    months = _months(context)
    with oltp.sessions()() as session:
        substituted = wh.substituted_frame(substitutions.in_force(session, months=months), run_id=context.run.run_id)
    with wh.connect(warehouse.warehouse) as conn:
        _balances(conn, accounting=accounting, run_id=context.run.run_id,
                  source=_month_filter("core_emissions__monthly_lines").replace("$months", _sql_list(months)))
        wh.add_substituted_months(conn, frame=substituted)
        conn.execute("create or replace temp view month_balances as select b.*, "
                     "case when length(period) = 7 then period else period || '-12' end as partition_month "
                     "from enterprise_balances b")
        count = wh.replace_partitions(conn, table="out_emissions__monthly_enterprise_balances",
                                      frame_sql="select * from month_balances", months=months)
    return dg.MaterializeResult(metadata={"dagster/row_count": count, "months": months})


def _balances(conn: duckdb.DuckDBPyConnection, *, accounting: AccountingResource, run_id: str, source: str,
              by: str = "month") -> None:
    """Create ``enterprise_balances`` from the stored emission lines selected by ``source``."""
    result_period = "year::varchar" if by == "year" else "result_period"
    conn.execute(f"create or replace temp view emission_lines as select * replace ({result_period} as result_period) "
                 f"from ({source})")
    edition = conn.execute("select any_value(edition) from emission_lines").fetchall()[0][0]
    wh.create_balances(conn, options=accounting.options(by=by), edition=edition or "", run_id=run_id)


@dg.asset(group_name="zone", partitions_def=monthly, backfill_policy=single_run, kinds={"duckdb"},
          deps=[out_emissions__monthly_enterprise_balances, core_registry__enterprises])
def out_zone__monthly_indicators(context: dg.AssetExecutionContext,
                                 warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Zone totals and intensities per month, by sector and category, plus the whole zone (sector 'all')."""
    months = _months(context)
    with wh.connect(warehouse.warehouse) as conn:
        conn.execute(wh.ZONE_INDICATORS_SQL.replace("$months", _sql_list(months)))
        count = wh.replace_partitions(conn, table="out_zone__monthly_indicators",
                                      frame_sql="select * from zone_indicators", months=months)
    return dg.MaterializeResult(metadata={"dagster/row_count": count, "months": months})


@dg.asset(group_name="emissions", kinds={"duckdb"}, deps=[core_emissions__monthly_lines, core_registry__enterprises],
          automation_condition=dg.AutomationCondition.eager())
def out_emissions__yearly_enterprise_balances(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                                              accounting: AccountingResource,
                                              oltp: OltpResource) -> dg.MaterializeResult:
    """Carbon balance of each enterprise and year (all its months and annual lines) and its key-emitter status.

    An enterprise is a key emitter when its emissions before deducting exports (scope 1 + scope 2) or its
    energy input before deducting exported energy reach the thresholds (26,000 tCO2e, 10,000 tce by
    default): an energy supplier's exports must not hide its own combustion. Substituted months count
    (``is_substituted``, ``months_substituted``).
    """
    with oltp.sessions()() as session:
        substituted = wh.substituted_frame(substitutions.in_force(session), run_id=context.run.run_id)
    with wh.connect(warehouse.warehouse) as conn:
        _balances(conn, accounting=accounting, run_id=context.run.run_id, by="year",
                  source="select * from core_emissions__monthly_lines")
        wh.add_substituted_years(conn, frame=substituted)
        count = wh.replace_table(conn, table="out_emissions__yearly_enterprise_balances", frame_sql=(
            "select b.*, (b.scope1_tco2e + b.scope2_tco2e >= $tco2e or b.energy_input_tce >= $tce) "
            "as is_key_emitter, "
            "(select count(distinct period) from core_emissions__monthly_lines l where l.enterprise_id = "
            "b.enterprise_id and l.year::varchar = b.period and l.month is not null) as months_reported "
            "from enterprise_balances b"),
            params={"tco2e": accounting.key_emitter_tco2e, "tce": accounting.key_emitter_tce})
    return dg.MaterializeResult(metadata={"dagster/row_count": count})


@dg.asset(group_name="serving", kinds={"duckdb"},
          deps=[out_emissions__yearly_enterprise_balances, out_emissions__monthly_enterprise_balances,
                out_zone__monthly_indicators, core_registry__enterprises, core_factors__factors],
          automation_condition=dg.AutomationCondition.eager())
def out_serving__snapshot(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """A read-only copy of the published tables for the API, swapped in atomically."""
    with wh.connect(warehouse.warehouse) as conn:
        present = {r[0] for r in conn.execute("select table_name from information_schema.tables").fetchall()}
    tables = [t for t in SERVED_TABLES if t in present]
    wh.publish_snapshot(warehouse=warehouse.warehouse, snapshot=warehouse.serving, tables=tables)
    return dg.MaterializeResult(metadata={"tables": json.dumps(tables), "path": str(warehouse.serving)})


@dg.asset(group_name="review", deps=[out_serving__snapshot], automation_condition=dg.AutomationCondition.eager())
def out_review__calculations(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                             oltp: OltpResource) -> dg.MaterializeResult:
    """The published balances recorded as calculations in the operational store; waiting periods become calculated."""
    from api.services.review import record_calculations

    with duckdb.connect(str(warehouse.serving), read_only=True) as conn:
        balances = conn.execute(wh.BALANCES_WITH_SOURCES_SQL).df()
    records = balances.astype(object).where(balances.notna(), None).to_dict(orient="records")
    with oltp.sessions()() as session:
        counts = record_calculations(session, balances=records, run_id=context.run.run_id)
    return dg.MaterializeResult(metadata={"balances": len(records), **counts})

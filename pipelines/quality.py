"""Plausibility in the warehouse: SQL metrics per enterprise-month and line, judged by Great Expectations.

Framework-free (no Dagster) so that the assets, the CLI and tests run the same code. The rules are
``accounting.quality.plausibility_rules``; this module only (1) computes the two frames they read
in DuckDB (``quality_periods``: intensities with the sector band, month-over-month ratios, exports
against energy input; ``quality_lines``: measured fuel parameters with the fuel's range), (2) turns
each rule into expectations of a Great Expectations suite (a bound that is a column of the row
becomes a column-pair expectation, a constant bound a between expectation), (3) validates the
frames, and (4) hands each row Great Expectations reported to ``accounting.quality.finding``, which
decides the severity and writes the detail. The validation results are rendered as Great
Expectations data docs (HTML) into a folder that is replaced atomically on every run.

Great Expectations is imported inside the functions: loading the code location stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from accounting import quality
from accounting.periods import month_of
from accounting.quality import Finding, PlausibilityRule, QualityConfig

#: The columns that identify a row of each frame (reported by Great Expectations for failing rows).
ROW_KEYS = {"periods": ("enterprise_id", "period"), "lines": ("source_file", "row_number")}
SUITES = {"periods": "plausibility_enterprise_months", "lines": "plausibility_fuel_lines"}
FINDING_COLUMNS = ("partition_month", "enterprise_id", "period", "rule", "severity", "metric", "value",
                   "expected_low", "expected_high", "source_file", "row_number", "message", "detail", "run_id")

_LINE_STRUCT = ("{'source_file': l.source_file, 'row_number': l.row_number, 'activity': l.activity, "
                "'item': l.item, 'facility': l.facility, 'quantity': l.quantity, 'unit': l.unit")

QUALITY_PERIODS_SQL = f"""
create or replace temp table quality_periods as
with balances as (
    select enterprise_id, period, partition_month, {{substituted}} as is_substituted,
        scope1_tco2e + scope2_tco2e as tco2e, energy_input_tce as energy_tce,
        case when value_added_10k_cny > 0 then 'value_added'
             when output_value_10k_cny > 0 then 'output_value' end as denominator,
        case when value_added_10k_cny > 0 then value_added_10k_cny
             when output_value_10k_cny > 0 then output_value_10k_cny end as economic_10k_cny,
        case when length(period) = 7 then
            strftime(strptime(period || '-01', '%Y-%m-%d') - interval 1 month, '%Y-%m') end as previous_period
    from out_emissions__monthly_enterprise_balances
),
month_lines as (
    select * from core_emissions__monthly_lines where partition_month in (select unnest($months))
),
energy as (
    select enterprise_id, period,
        coalesce(sum(quantity_canonical) filter (where activity = 'exported_electricity'), 0.0) * 3.6
            as exported_electricity_gj,
        coalesce(sum(quantity_canonical) filter (where activity = 'exported_heat'), 0.0) as exported_heat_gj,
        coalesce(sum(heat_gj) filter (where activity = 'fuel_combustion'), 0.0) as fuel_heat_gj,
        coalesce(sum(quantity_canonical) filter (where activity = 'purchased_heat'), 0.0) as purchased_heat_gj,
        list({_LINE_STRUCT}}} order by l.quantity_canonical desc)
            filter (where activity in ('exported_electricity', 'exported_heat')) as export_lines,
        list({_LINE_STRUCT}, 'tco2e': l.tco2e, 'energy_tce': l.energy_tce}} order by l.tco2e desc nulls last)
            filter (where l.tco2e is not null) as top_lines
    from month_lines l group by all
),
changes as (
    select l.enterprise_id, l.period,
        list({_LINE_STRUCT}, 'previous_quantity': p.quantity, 'previous_unit': p.unit,
              'tco2e': l.tco2e, 'previous_tco2e': p.tco2e, 'energy_tce': l.energy_tce,
              'previous_energy_tce': p.energy_tce}}
             order by abs(coalesce(l.tco2e, 0.0) - coalesce(p.tco2e, 0.0)) desc,
                      abs(coalesce(l.energy_tce, 0.0) - coalesce(p.energy_tce, 0.0)) desc)
            filter (where l.tco2e is not null or l.energy_tce is not null) as changed_lines
    from month_lines l
    left join core_emissions__monthly_lines p
      on p.enterprise_id = l.enterprise_id and length(l.period) = 7
     and p.period = strftime(strptime(l.period || '-01', '%Y-%m-%d') - interval 1 month, '%Y-%m')
     and p.activity = l.activity and coalesce(p.item, '') = coalesce(l.item, '')
     and coalesce(p.facility, '') = coalesce(l.facility, '')
    group by all
),
joined as (
    select c.*, eb.sector_code, eb.band_sector,
        c.tco2e / c.economic_10k_cny as carbon_intensity,
        c.energy_tce / c.economic_10k_cny as energy_intensity,
        case c.denominator when 'value_added' then eb.carbon_va_low when 'output_value' then eb.carbon_ou_low end
            as carbon_low,
        case c.denominator when 'value_added' then eb.carbon_va_high when 'output_value' then eb.carbon_ou_high end
            as carbon_high,
        case c.denominator when 'value_added' then eb.energy_va_low when 'output_value' then eb.energy_ou_low end
            as energy_low,
        case c.denominator when 'value_added' then eb.energy_va_high when 'output_value' then eb.energy_ou_high end
            as energy_high,
        p.tco2e as prev_tco2e, p.energy_tce as prev_energy_tce,
        case when p.denominator = c.denominator then p.tco2e / p.economic_10k_cny end as prev_carbon_intensity,
        e.exported_electricity_gj, e.exported_heat_gj, e.fuel_heat_gj, e.purchased_heat_gj,
        nullif(e.exported_electricity_gj + e.exported_heat_gj, 0.0) as exported_gj,
        (e.fuel_heat_gj + e.purchased_heat_gj) * $export_max_ratio as export_limit_gj,
        e.export_lines, e.top_lines, ch.changed_lines
    from balances c
    left join enterprise_bands eb using (enterprise_id)
    left join balances p on p.enterprise_id = c.enterprise_id and p.period = c.previous_period
         and not p.is_substituted
    left join energy e on e.enterprise_id = c.enterprise_id and e.period = c.period
    left join changes ch on ch.enterprise_id = c.enterprise_id and ch.period = c.period
    where c.partition_month in (select unnest($months)) and not c.is_substituted
)
select * exclude (carbon_intensity, energy_intensity, carbon_low, carbon_high, energy_low, energy_high),
    case when length(period) = 7 then carbon_intensity end as carbon_intensity,
    case when length(period) = 7 then energy_intensity end as energy_intensity,
    carbon_low, carbon_high, energy_low, energy_high,
    case when prev_tco2e >= $near_zero_tco2e then tco2e / prev_tco2e end as emissions_ratio,
    case when prev_energy_tce >= $near_zero_tce then energy_tce / prev_energy_tce end as energy_ratio
from joined
order by enterprise_id, period
"""

QUALITY_LINES_SQL = """
create or replace temp table quality_lines as
select l.source_file, l.row_number, l.enterprise_id, l.period, l.partition_month, l.item, l.facility,
    l.quantity, l.unit, l.ncv_unit as ncv_unit_reported,
    l.ncv_measured as ncv,
    case l.fuel_basis when 'mass' then 'GJ/t' when 'gas_volume' then 'GJ/(10^4 Nm3)' end as ncv_unit,
    r.ncv_low, r.ncv_high, r.ncv_source,
    l.cc_heat_measured as carbon_content_tc_per_gj,
    l.cc_mass_measured as carbon_content_tc_per_t, r.cc_mass_low, r.cc_mass_high,
    l.oxidation_rate
from core_activity__monthly_lines l
left join fuel_ranges r on r.fuel = l.item and r.ncv_unit = case l.fuel_basis
    when 'mass' then 'GJ/t' when 'gas_volume' then 'GJ/(10^4 Nm3)' end
where l.activity = 'fuel_combustion' and l.partition_month in (select unnest($months))
  and (l.ncv_measured is not null or l.cc_heat_measured is not null or l.cc_mass_measured is not null
       or l.oxidation_rate is not null)
order by l.source_file, l.row_number
"""


def plausibility_frames(conn: duckdb.DuckDBPyConnection, *, months: list[str], config: QualityConfig,
                        factors: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The ``periods`` and ``lines`` frames of ``months`` from the warehouse tables on ``conn``.

    Reads ``out_emissions__monthly_enterprise_balances``, ``core_emissions__monthly_lines``,
    ``core_activity__monthly_lines`` and ``core_registry__enterprises``; ``factors`` is the edition
    in use (its default NCVs give the +-30 % ranges).
    """
    registry = conn.execute("select enterprise_id, sector_code from core_registry__enterprises").fetchall()
    conn.register("enterprise_bands", quality.enterprise_bands(config, registry))
    conn.register("fuel_ranges", quality.fuel_ranges(config, factors))
    columns = {r[0] for r in conn.execute("select column_name from information_schema.columns where table_name = "
                                          "'out_emissions__monthly_enterprise_balances'").fetchall()}
    # A month an officer substituted carries a conservative value by design: it is not judged, nor compared with.
    substituted = "coalesce(is_substituted, false)" if "is_substituted" in columns else "false"
    conn.execute(QUALITY_PERIODS_SQL.replace("{substituted}", substituted), {
        "months": months, "export_max_ratio": config.export_max_ratio, "near_zero_tco2e": config.near_zero_tco2e,
        "near_zero_tce": config.near_zero_tce})
    conn.execute(QUALITY_LINES_SQL, {"months": months})
    return {"periods": conn.execute("select * from quality_periods").df(),
            "lines": conn.execute("select * from quality_lines").df()}


# --------------------------------------------------------------------------------------------------
# Great Expectations


def expectations(rules: tuple[PlausibilityRule, ...], frame: str) -> list[Any]:
    """The expectations of one frame's suite, one or two per rule, each tagged with its rule in ``meta``."""
    import great_expectations as gx

    found: list[Any] = []
    for rule in (r for r in rules if r.frame == frame):
        meta = {"rule": rule.name, "description": rule.description, "metric": rule.metric}
        constant = [b for b in (rule.low, rule.high) if b is not None and not isinstance(b, str)]
        if len(constant) == len([b for b in (rule.low, rule.high) if b is not None]):
            found.append(gx.expectations.ExpectColumnValuesToBeBetween(
                column=rule.value, min_value=rule.low, max_value=rule.high, strict_min=not rule.low_inclusive,
                meta=meta))
            continue
        if rule.low is not None:
            found.append(_pair(column_a=rule.value, column_b=rule.low, or_equal=rule.low_inclusive, meta=meta))
        if rule.high is not None:
            found.append(_pair(column_a=rule.high, column_b=rule.value, or_equal=True, meta=meta))
    return found


def _pair(*, column_a: str | float, column_b: str | float, or_equal: bool, meta: dict[str, str]) -> Any:
    """``column_a >= column_b`` (``>`` when not ``or_equal``), rows with a missing value skipped."""
    import great_expectations as gx

    if not isinstance(column_a, str) or not isinstance(column_b, str):
        raise TypeError("a rule mixes a constant and a column bound; give both as columns")
    return gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=column_a, column_B=column_b, or_equal=or_equal, ignore_row_if="either_value_is_missing", meta=meta)


@dataclass
class Validation:
    """What a plausibility run found: the findings, and any expectation that crashed instead of judging."""

    findings: list[Finding] = field(default_factory=list)
    crashed: list[dict[str, Any]] = field(default_factory=list)
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    rows_checked: dict[str, int] = field(default_factory=dict)


def _gx_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without its list columns (Great Expectations only needs the scalar ones)."""
    scalar = [c for c in frame.columns if not c.endswith("_lines")]
    return frame[scalar].reset_index(drop=True)


def validate(frames: dict[str, pd.DataFrame], *, config: QualityConfig, docs_dir: Path | None = None,
             run_name: str | None = None) -> Validation:
    """Run the plausibility suites over ``frames``; build data docs into ``docs_dir`` when given.

    A row Great Expectations reports is judged by ``accounting.quality.finding``; should the two
    ever disagree on a row, it is listed in ``disagreements`` (a bug, not a data problem).
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    rules = quality.plausibility_rules(config)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    for site in list(context.get_config().data_docs_sites or {}):
        context.delete_data_docs_site(site)
    staging = None
    if docs_dir is not None:
        staging = docs_dir.parent / f".{docs_dir.name}-{uuid.uuid4().hex}"
        context.add_data_docs_site(site_name="quality", site_config={
            "class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(staging)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    source = context.data_sources.add_pandas("warehouse")
    outcome = Validation()
    validations = []
    batches: dict[str, pd.DataFrame] = {}
    for name, frame in frames.items():
        batches[name] = _gx_frame(frame)
        outcome.rows_checked[name] = len(frame)
        suite = context.suites.add(gx.ExpectationSuite(name=SUITES[name], expectations=expectations(rules, name)))
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(f"{name}_all")
        validations.append((name, context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{SUITES[name]}_run", data=batch, suite=suite))))
    try:
        for name, definition in validations:
            checkpoint = context.checkpoints.add(gx.Checkpoint(
                name=f"{SUITES[name]}_checkpoint", validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")] if staging else [],
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": list(ROW_KEYS[name])}))
            result = checkpoint.run(batch_parameters={"dataframe": batches[name]},
                                    run_id=gx.RunIdentifier(run_name=run_name) if run_name else None)
            for run_result in result.run_results.values():
                _collect(run_result.results, frame=frames[name], name=name, rules=rules, config=config,
                         outcome=outcome)
        if staging is not None and docs_dir is not None:
            publish_docs(staging, docs_dir)
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    outcome.findings.sort(key=lambda f: (f.enterprise_id, f.period, f.rule, f.detail.get("row_number") or 0))
    return outcome


def _collect(results: list[Any], *, frame: pd.DataFrame, name: str, rules: tuple[PlausibilityRule, ...],
             config: QualityConfig, outcome: Validation) -> None:
    """Turn the failing rows of each expectation into findings (one per rule and row)."""
    keys = ROW_KEYS[name]
    by_key = {tuple(_plain(row[k]) for k in keys): row for row in frame.to_dict(orient="records")}
    by_rule = {r.name: r for r in rules}
    seen = {(f.rule, f.enterprise_id, f.period, f.detail.get("source_file"), f.detail.get("row_number"))
            for f in outcome.findings}
    for result in results:
        rule = by_rule[result.expectation_config.meta["rule"]]
        if (result.exception_info or {}).get("raised_exception"):
            outcome.crashed.append({"rule": rule.name, "expectation": result.expectation_config.type,
                                    "exception": str(result.exception_info.get("exception_message"))})
            continue
        if result.success:
            continue
        for index in result.result.get("unexpected_index_list") or []:
            key = tuple(_plain(index[k]) for k in keys)
            row = by_key.get(key)
            found = quality.finding(rule, row, config) if row is not None else None
            if found is None:
                outcome.disagreements.append({"rule": rule.name, "row": [str(k) for k in key]})
                continue
            identity = (found.rule, found.enterprise_id, found.period, found.detail.get("source_file"),
                        found.detail.get("row_number"))
            if identity not in seen:
                seen.add(identity)
                outcome.findings.append(found)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------------------------------
# Data docs folder: replaced atomically


def publish_docs(built: Path, target: Path) -> None:
    """Make ``built`` the data docs at ``target``: a symlink swapped with ``os.replace``, then the old copy removed.

    Readers either see the previous docs or the new ones, never a half-built folder.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    final = target.parent / f".{target.name}-{uuid.uuid4().hex}"
    os.replace(built, final)
    previous = target.resolve() if target.is_symlink() else None
    if target.exists() and not target.is_symlink():  # a plain folder from an older layout
        shutil.rmtree(target)
    link = target.parent / f".{target.name}-link-{uuid.uuid4().hex}"
    os.symlink(final.name, link)
    os.replace(link, target)
    if previous is not None and previous != final and previous.exists():
        shutil.rmtree(previous, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# The findings table


FINDINGS_SQL = """
select partition_month::varchar as partition_month, enterprise_id::varchar as enterprise_id,
    period::varchar as period, rule::varchar as rule, severity::varchar as severity, metric::varchar as metric,
    value::double as value, expected_low::double as expected_low, expected_high::double as expected_high,
    source_file::varchar as source_file, row_number::bigint as row_number, message::varchar as message,
    detail::varchar as detail, run_id::varchar as run_id
from findings_frame
"""


def findings_frame(found: list[Finding], *, run_id: str) -> pd.DataFrame:
    """Findings as rows of ``out_quality__findings`` (detail as JSON text); select it with ``FINDINGS_SQL``."""
    rows = []
    for f in found:
        expected = f.detail.get("expected", {})
        rows.append({
            "partition_month": month_of(f.period), "enterprise_id": f.enterprise_id, "period": f.period,
            "rule": f.rule, "severity": f.severity, "metric": f.detail.get("metric"), "value": f.detail.get("value"),
            "expected_low": expected.get("low"), "expected_high": expected.get("high"),
            "source_file": f.detail.get("source_file"), "row_number": f.detail.get("row_number"),
            "message": f.detail.get("message"), "detail": json.dumps(f.detail, ensure_ascii=False, default=str),
            "run_id": run_id})
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS)).astype(
        {"value": "float64", "expected_low": "float64", "expected_high": "float64", "row_number": "Int64"})


def findings_from_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of ``out_quality__findings`` as the finding records ``record_findings`` stores."""
    return [{"enterprise_id": r["enterprise_id"], "period": r["period"], "rule": r["rule"],
             "severity": r["severity"], "detail": json.loads(r["detail"]) if r.get("detail") else {}}
            for r in rows]

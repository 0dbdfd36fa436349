"""DuckDB side of the calculation: unit normalization, factor selection, emissions and balances in SQL.

Framework-free (no Dagster, no FastAPI) so that the pipeline assets, the ``carbon`` CLI and the API's
calculation endpoint run the same SQL. Python only builds the small tables the SQL joins: the
conversion multiplier of each distinct unit string, the factor edition and the GWP set.

Formulas (GB/T 32150 / GB/T 32151, see the methodology reference):
- fuel: heat [GJ] = quantity x NCV (or the quantity itself when given as NCV energy);
  CO2 = heat x CC x OF x 44/12, or quantity x CC_mass x OF x 44/12 with a measured per-mass carbon
  content; every parameter measured on the line replaces its default, field by field;
- carbonates: quantity x purity (default 1) x factor; clinker: quantity x ((CaO - CaO_nc) x 44/56 +
  (MgO - MgO_nc) x 44/40);
- electricity: MWh x grid factor (green certified: 0; supplier factor with evidence; else the
  configured region, then national; the activity year or the latest earlier year within the lag);
- heat: GJ x supplier factor, else 0.11 tCO2/GJ;
- energy: fuels heat / 29.3076 GJ per tce, purchased heat likewise, electricity 0.1229 kgce/kWh;
  exported electricity and heat count negative (comprehensive energy consumption, GB/T 2589);
- pollutants: monitored mass; wastewater m3 x concentration.
Nothing is rounded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from accounting.activity import MAX_ROWS_PER_FILE, FuelRules, SourceFile, conversion_table, parse_activity
from accounting.calculation import TOTAL_COLUMNS, CalculationOptions, results_document
from accounting.errors import FactorError, InvalidFileError, RowError
from accounting.factors import FactorLibrary, carbonate_codes, fuel_phases
from accounting.restatement import ADDITIVE

TCE_GJ = 29.3076  # GB/T 2589: 1 tce = 7000 kcal_IT x 1000 = 29.3076 GJ

_NORMALIZED_SQL = """
create or replace temp view normalized_lines as
select
    l.*,
    l.source_sha256 || ':' || l.row_number::varchar as line_key,
    case when l.month is null then l.year::varchar || '-12' else l.period end as partition_month,
    case when l.quantity_kind = 'fuel_liquid_volume'
         then l.quantity * q.multiplier * l.density * dn.multiplier
         else l.quantity * q.multiplier end as quantity_canonical,
    case when l.quantity_kind = 'fuel_liquid_volume' then 't' else q.unit_canonical end as unit_canonical,
    case l.quantity_kind when 'fuel_mass' then 'mass' when 'fuel_liquid_volume' then 'mass'
         when 'fuel_gas_volume' then 'gas_volume' when 'fuel_energy' then 'energy' end as fuel_basis,
    l.density * dn.multiplier as density_t_per_l,
    l.ncv * nc.multiplier as ncv_measured,
    case when cc.unit_canonical = 'tC/GJ' then l.carbon_content * cc.multiplier end as cc_heat_measured,
    case when cc.unit_canonical = 'tC/t' then l.carbon_content * cc.multiplier end as cc_mass_measured,
    l.concentration * cn.multiplier as concentration_t_per_m3,
    l.emission_factor * ef.multiplier as supplier_factor
from {lines} l
join unit_conversions q on q.field = l.quantity_kind and q.unit = l.unit
left join unit_conversions dn on dn.field = 'density_unit' and dn.unit = l.density_unit
left join unit_conversions nc on nc.field = 'ncv_unit' and nc.unit = l.ncv_unit
left join unit_conversions cc on cc.field = 'carbon_content_unit' and cc.unit = l.carbon_content_unit
left join unit_conversions cn on cn.field = 'concentration_unit' and cn.unit = l.concentration_unit
left join unit_conversions ef on ef.unit = l.emission_factor_unit and ef.field = case
    when l.activity in ('purchased_heat', 'exported_heat') then 'emission_factor_unit@heat'
    else 'emission_factor_unit' end
"""

_FACTORS_SQL = """
create or replace temp view fuel_defaults as
select subject as fuel,
    any_value(value_canonical) filter (where parameter = 'ncv') as ncv,
    any_value(unit_canonical) filter (where parameter = 'ncv') as ncv_unit,
    any_value(factor_id) filter (where parameter = 'ncv') as ncv_id,
    any_value(value_canonical) filter (where parameter = 'carbon_content') as cc,
    any_value(factor_id) filter (where parameter = 'carbon_content') as cc_id,
    any_value(value_canonical) filter (where parameter = 'oxidation_rate') as ofr,
    any_value(factor_id) filter (where parameter = 'oxidation_rate') as of_id
from factor_table where ruleset = 'cn' and parameter in ('ncv', 'carbon_content', 'oxidation_rate')
group by subject;

create or replace temp view ipcc_defaults as
select subject as fuel,
    any_value(value_canonical) filter (where parameter = 'co2_per_heat') as co2,
    any_value(factor_id) filter (where parameter = 'co2_per_heat') as co2_id,
    any_value(value_canonical) filter (where parameter = 'ch4_per_heat') as ch4,
    any_value(factor_id) filter (where parameter = 'ch4_per_heat') as ch4_id,
    any_value(value_canonical) filter (where parameter = 'n2o_per_heat') as n2o,
    any_value(factor_id) filter (where parameter = 'n2o_per_heat') as n2o_id
from factor_table where ruleset = 'ipcc2006' group by subject;

create or replace temp view single_factors as
select parameter || ':' || subject as key, value_canonical as value, factor_id
from factor_table
where ruleset = 'cn' and (parameter, subject) in (
    ('co2_per_heat', 'heat'), ('tce_per_electricity', 'electricity'))
"""

_GRID_SQL = """
create or replace temp table grid_choice as
with periods as (
    select distinct year, period from normalized_lines
    where activity in ('purchased_electricity', 'exported_electricity')
      and supplier_factor is null and item <> 'green_certified'
),
candidates as (
    select p.year as line_year, p.period as line_period, f.factor_id, f.value_canonical as value, f.year, f.subject,
        row_number() over (partition by p.year, p.period
                           order by case when f.subject = $grid_region then 0 else 1 end, f.year desc) as rank
    from periods p
    join factor_table f
      on f.ruleset = 'cn' and f.parameter = 'co2_per_electricity'
     and f.subject in ($grid_region, 'national')
     and f.year <= p.year and f.year >= p.year - $max_lag
     and (f.valid_from is null or f.valid_from = '' or f.valid_from <= p.period)
     and (f.valid_to is null or f.valid_to = '' or left(p.period, 7) <= f.valid_to)
)
select line_year, line_period, factor_id, value, year, subject from candidates where rank = 1
"""

_RUN_OPTIONS_SQL = """
create or replace temp table run_options as
select $ruleset::varchar as opt_ruleset, $by::varchar as opt_by, $edition::varchar as opt_edition,
    $gwp_set::varchar as opt_gwp_set, $grid_region::varchar as opt_grid_region, $run_id::varchar as opt_run_id
"""

_LINES_SQL = """
create or replace temp view emission_lines as
with
gwp as (select
    coalesce(any_value(gwp100) filter (where gas = 'CO2'), 1.0) as co2,
    any_value(gwp100) filter (where gas = 'CH4') as ch4,
    any_value(gwp100) filter (where gas = 'N2O') as n2o
    from gwp_table),
heat_default as (select value, factor_id from single_factors where key = 'co2_per_heat:heat'),
tce_elec as (select value, factor_id from single_factors where key = 'tce_per_electricity:electricity'),
base as (
    select n.*,
        fd.ncv as ncv_default, fd.ncv_id, fd.cc as cc_default, fd.cc_id, fd.ofr as of_default, fd.of_id,
        ip.co2 as ipcc_co2, ip.co2_id as ipcc_co2_id, ip.ch4 as ipcc_ch4, ip.ch4_id as ipcc_ch4_id,
        ip.n2o as ipcc_n2o, ip.n2o_id as ipcc_n2o_id,
        cf.value_canonical as carbonate_factor, cf.factor_id as carbonate_id,
        g.value as grid_value, g.factor_id as grid_id, g.year as grid_year, g.subject as grid_subject,
        hd.value as heat_default, hd.factor_id as heat_id,
        te.value as tce_elec, te.factor_id as tce_elec_id,
        o.*
    from normalized_lines n
    left join fuel_defaults fd on n.activity = 'fuel_combustion' and fd.fuel = n.item
    left join ipcc_defaults ip on n.activity = 'fuel_combustion' and ip.fuel = n.item
    left join factor_table cf on n.activity = 'carbonate_use' and cf.ruleset = 'cn'
         and cf.parameter = 'co2_per_mass' and cf.subject = n.item
    left join grid_choice g on n.activity in ('purchased_electricity', 'exported_electricity')
         and n.supplier_factor is null and n.item <> 'green_certified'
         and g.line_year = n.year and g.line_period = n.period
    cross join heat_default hd
    cross join tce_elec te
    cross join run_options o
),
fuel_terms as (
    select *,
        coalesce(ncv_measured, ncv_default) as ncv_used,
        coalesce(oxidation_rate, of_default) as of_used,
        coalesce(cc_heat_measured, cc_default) as cc_used,
        case fuel_basis when 'energy' then quantity_canonical
             else quantity_canonical * coalesce(ncv_measured, ncv_default) end as fuel_heat_gj
    from base
),
computed as (
    select *,
        case
            when activity = 'fuel_combustion' and cc_mass_measured is not null
                then quantity_canonical * cc_mass_measured
                     * (case when opt_ruleset = 'ipcc2006' then coalesce(oxidation_rate, 1.0) else of_used end)
                     * (44.0 / 12.0)
            when activity = 'fuel_combustion' and opt_ruleset = 'ipcc2006' and cc_heat_measured is null
                then fuel_heat_gj * ipcc_co2
            when activity = 'fuel_combustion'
                then fuel_heat_gj * cc_used
                     * (case when opt_ruleset = 'ipcc2006' then coalesce(oxidation_rate, 1.0) else of_used end)
                     * (44.0 / 12.0)
            when activity = 'carbonate_use' then quantity_canonical * coalesce(purity, 1.0) * carbonate_factor
            when activity = 'clinker_production' then quantity_canonical * (
                (cao_fraction - coalesce(cao_noncarbonate_fraction, 0.0)) * (44.0 / 56.0)
                + (mgo_fraction - coalesce(mgo_noncarbonate_fraction, 0.0)) * (44.0 / 40.0))
            when activity in ('purchased_electricity', 'exported_electricity') then quantity_canonical * (
                case when item = 'green_certified' then 0.0
                     when supplier_factor is not null then supplier_factor else grid_value end)
            when activity in ('purchased_heat', 'exported_heat')
                then quantity_canonical * coalesce(supplier_factor, heat_default)
        end as co2_t,
        case when activity = 'fuel_combustion' and opt_ruleset = 'ipcc2006' then fuel_heat_gj * ipcc_ch4 end as ch4_t,
        case when activity = 'fuel_combustion' and opt_ruleset = 'ipcc2006' then fuel_heat_gj * ipcc_n2o end as n2o_t,
        case
            when activity = 'fuel_combustion' then fuel_heat_gj / {tce_gj}
            when activity = 'purchased_electricity' then quantity_canonical * tce_elec
            when activity = 'exported_electricity' then -quantity_canonical * tce_elec
            when activity = 'purchased_heat' then quantity_canonical / {tce_gj}
            when activity = 'exported_heat' then -quantity_canonical / {tce_gj}
        end as energy_tce,
        case
            when activity = 'pollutant_monitored' then quantity_canonical
            when activity = 'wastewater_discharge' then quantity_canonical * concentration_t_per_m3
        end as pollutant_t
    from fuel_terms
)
select
    source_file, source_sha256, row_number, line_key, partition_month, enterprise_id, period, year, month,
    case when opt_by = 'year' then year::varchar else period end as result_period,
    activity, item, facility, quantity, unit, quantity_canonical, unit_canonical,
    case
        when activity = 'fuel_combustion' then 'combustion'
        when activity in ('carbonate_use', 'clinker_production') then 'process'
        when activity in ('purchased_electricity', 'purchased_heat', 'exported_electricity', 'exported_heat')
            then activity
        when activity in ('pollutant_monitored', 'wastewater_discharge') then 'pollutant'
        when activity = 'production' then 'production'
        else 'economic'
    end as category,
    case when activity = 'fuel_combustion' then fuel_heat_gj end as heat_gj,
    co2_t, ch4_t, n2o_t,
    case when co2_t is not null then
        co2_t * gwp.co2 + coalesce(ch4_t * gwp.ch4, 0.0) + coalesce(n2o_t * gwp.n2o, 0.0) end as tco2e,
    energy_tce,
    case when pollutant_t is not null then item end as pollutant,
    pollutant_t,
    list_filter(case
        when activity = 'fuel_combustion' and opt_ruleset = 'ipcc2006' then [
            case when ncv_measured is null and fuel_basis <> 'energy' then ncv_id end,
            case when cc_mass_measured is null and cc_heat_measured is null then ipcc_co2_id end,
            ipcc_ch4_id, ipcc_n2o_id]
        when activity = 'fuel_combustion' then [
            case when ncv_measured is null and (fuel_basis <> 'energy') then ncv_id end,
            case when cc_mass_measured is null and cc_heat_measured is null then cc_id end,
            case when oxidation_rate is null then of_id end]
        when activity = 'carbonate_use' then [carbonate_id]
        when activity in ('purchased_electricity', 'exported_electricity') then [grid_id, tce_elec_id]
        when activity in ('purchased_heat', 'exported_heat') then [
            case when supplier_factor is null then heat_id end]
        else []::varchar[] end, lambda x: x is not null) as factor_ids,
    case
        when activity = 'fuel_combustion' then
            case when (ncv_measured is not null or fuel_basis = 'energy' or cc_mass_measured is not null)
                  and (cc_heat_measured is not null or cc_mass_measured is not null)
                  and (oxidation_rate is not null)
                 then 'measured' else 'national' end
        when activity = 'carbonate_use' then 'national'
        when activity = 'clinker_production' then 'measured'
        when activity in ('purchased_electricity', 'exported_electricity') then
            case when item = 'green_certified' then 'certificate'
                 when supplier_factor is not null then 'supplier'
                 when grid_subject = 'national' then 'national'
                 else 'region' end
        when activity in ('purchased_heat', 'exported_heat') then
            case when supplier_factor is not null then 'supplier' else 'national' end
        when activity in ('pollutant_monitored', 'wastewater_discharge') then 'measured'
    end as fallback,
    grid_year as factor_year,
    -- the parameters each line was calculated with, and where each came from ('measured' or a factor id)
    case when activity = 'fuel_combustion' and fuel_basis <> 'energy' then ncv_used end as ncv_used,
    case when activity = 'fuel_combustion' and fuel_basis <> 'energy' then
        case when ncv_measured is not null then 'measured' else ncv_id end end as ncv_source,
    case when activity <> 'fuel_combustion' then null
         when cc_mass_measured is not null then cc_mass_measured
         when opt_ruleset = 'ipcc2006' and cc_heat_measured is null then ipcc_co2
         else cc_used end as carbon_content_used,
    case when activity <> 'fuel_combustion' then null
         when cc_mass_measured is not null then 'tC/t'
         when opt_ruleset = 'ipcc2006' and cc_heat_measured is null then 'tCO2/GJ'
         else 'tC/GJ' end as carbon_content_unit_used,
    case when activity <> 'fuel_combustion' then null
         when cc_mass_measured is not null or cc_heat_measured is not null then 'measured'
         when opt_ruleset = 'ipcc2006' then ipcc_co2_id else cc_id end as carbon_content_source,
    case when activity <> 'fuel_combustion' then null
         when opt_ruleset = 'ipcc2006' then coalesce(oxidation_rate, 1.0) else of_used end as oxidation_rate_used,
    case when activity <> 'fuel_combustion' then null
         when oxidation_rate is not null then 'measured'
         when opt_ruleset = 'ipcc2006' then 'ipcc2006 (1.0)' else of_id end as oxidation_rate_source,
    density_t_per_l,
    case when activity = 'carbonate_use' then coalesce(purity, 1.0) end as purity_used,
    case when activity = 'carbonate_use' then
        case when purity is not null then 'measured' else 'quantity is the carbonate (1.0)' end end as purity_source,
    cao_fraction, mgo_fraction, cao_noncarbonate_fraction, mgo_noncarbonate_fraction, concentration_t_per_m3,
    case
        when activity = 'carbonate_use' then carbonate_factor
        when activity in ('purchased_electricity', 'exported_electricity') then
            case when item = 'green_certified' then 0.0 else coalesce(supplier_factor, grid_value) end
        when activity in ('purchased_heat', 'exported_heat') then coalesce(supplier_factor, heat_default)
    end as factor_used,
    case
        when activity = 'carbonate_use' then 'tCO2/t'
        when activity in ('purchased_electricity', 'exported_electricity') then 'tCO2/MWh'
        when activity in ('purchased_heat', 'exported_heat') then 'tCO2/GJ'
    end as factor_unit_used,
    case
        when activity = 'carbonate_use' then carbonate_id
        when activity in ('purchased_electricity', 'exported_electricity') then
            case when item = 'green_certified' then 'certificate: ' || evidence
                 when supplier_factor is not null then 'supplier: ' || evidence else grid_id end
        when activity in ('purchased_heat', 'exported_heat') then
            case when supplier_factor is not null then 'supplier: ' || evidence else heat_id end
    end as factor_source,
    case when activity in ('purchased_electricity', 'exported_electricity') then tce_elec end as tce_per_mwh_used,
    opt_ruleset as ruleset, opt_edition as edition, opt_gwp_set as gwp_set, opt_grid_region as grid_region,
    opt_run_id as run_id
from computed, gwp
"""

#: The ``parameters`` JSON of a line, built from its numeric lineage columns when results are shown.
PARAMETERS_SQL = """
case
    when activity = 'fuel_combustion' then json_object(
        'ncv', case when ncv_used is not null then json_object('value', ncv_used,
            'unit', case when unit_canonical = '10^4 Nm3' then 'GJ/(10^4 Nm3)' else 'GJ/t' end,
            'source', ncv_source) end,
        'carbon_content', json_object('value', carbon_content_used, 'unit', carbon_content_unit_used,
            'source', carbon_content_source),
        'oxidation_rate', json_object('value', oxidation_rate_used, 'unit', '1', 'source', oxidation_rate_source),
        'density', case when density_t_per_l is not null then json_object('value', density_t_per_l,
            'unit', 't/L', 'source', 'measured') end)
    when activity = 'carbonate_use' then json_object(
        'purity', json_object('value', purity_used, 'unit', '1', 'source', purity_source),
        'co2_per_mass', json_object('value', factor_used, 'unit', factor_unit_used, 'source', factor_source))
    when activity = 'clinker_production' then json_object(
        'cao_fraction', cao_fraction, 'cao_noncarbonate_fraction', coalesce(cao_noncarbonate_fraction, 0.0),
        'mgo_fraction', mgo_fraction, 'mgo_noncarbonate_fraction', coalesce(mgo_noncarbonate_fraction, 0.0),
        'ratios', '44/56 (CaO), 44/40 (MgO)')
    when activity in ('purchased_electricity', 'exported_electricity') then json_object(
        'co2_per_electricity', json_object('value', factor_used, 'unit', factor_unit_used,
            'source', factor_source, 'factor_year', factor_year),
        'tce_per_electricity', json_object('value', tce_per_mwh_used, 'unit', 'tce/MWh'))
    when activity in ('purchased_heat', 'exported_heat') then json_object(
        'co2_per_heat', json_object('value', factor_used, 'unit', factor_unit_used, 'source', factor_source))
    when activity = 'wastewater_discharge' then json_object(
        'concentration', json_object('value', concentration_t_per_m3, 'unit', 't/m3', 'source', 'measured'))
end::varchar
"""


def lines_with_parameters_sql(table: str) -> str:
    """A select over emission lines that adds their ``parameters`` JSON (for output, not for storage)."""
    return f"select *, {PARAMETERS_SQL} as parameters from {table}"


_BALANCES_SQL = """
create or replace temp table enterprise_balances as
with sums as (
    select enterprise_id, result_period as period, min(year) as year,
        coalesce(sum(tco2e) filter (where category = 'combustion'), 0.0) as combustion_tco2e,
        coalesce(sum(tco2e) filter (where category = 'process'), 0.0) as process_tco2e,
        coalesce(sum(tco2e) filter (where category = 'purchased_electricity'), 0.0) as purchased_electricity_tco2e,
        coalesce(sum(tco2e) filter (where category = 'purchased_heat'), 0.0) as purchased_heat_tco2e,
        coalesce(sum(tco2e) filter (where category = 'exported_electricity'), 0.0) as exported_electricity_tco2e,
        coalesce(sum(tco2e) filter (where category = 'exported_heat'), 0.0) as exported_heat_tco2e,
        coalesce(sum(co2_t), 0.0) as co2_t,
        coalesce(sum(ch4_t), 0.0) as ch4_t,
        coalesce(sum(n2o_t), 0.0) as n2o_t,
        coalesce(sum(energy_tce), 0.0) as energy_tce,
        coalesce(sum(energy_tce) filter (where energy_tce > 0), 0.0) as energy_input_tce,
        sum(quantity_canonical) filter (where activity = 'economic_output' and item = 'output_value')
            as output_value_10k_cny,
        sum(quantity_canonical) filter (where activity = 'economic_output' and item = 'value_added')
            as value_added_10k_cny,
        coalesce(sum(pollutant_t) filter (where pollutant = 'SO2'), 0.0) as so2_t,
        coalesce(sum(pollutant_t) filter (where pollutant = 'NOx'), 0.0) as nox_t,
        coalesce(sum(pollutant_t) filter (where pollutant = 'PM'), 0.0) as pm_t,
        coalesce(sum(pollutant_t) filter (where pollutant = 'COD'), 0.0) as cod_t,
        coalesce(sum(pollutant_t) filter (where pollutant = 'NH3-N'), 0.0) as nh3n_t,
        count(*) as line_count
    from emission_lines group by enterprise_id, result_period
),
totals as (
    select *,
        combustion_tco2e + process_tco2e as scope1_tco2e,
        purchased_electricity_tco2e + purchased_heat_tco2e as scope2_tco2e,
        exported_electricity_tco2e + exported_heat_tco2e as exported_tco2e
    from sums
),
nets as (
    select *, scope1_tco2e + scope2_tco2e - exported_tco2e as net_tco2e from totals
),
products as (
    select enterprise_id, result_period as period,
        list({{'product': item, 'output': output, 'unit': unit_canonical}} order by item) as products
    from (select enterprise_id, result_period, item, unit_canonical, sum(quantity_canonical) as output
          from emission_lines where activity = 'production' group by all)
    group by all
)
select n.*,
    n.scope1_tco2e as total_excl_indirect_tco2e,
    n.net_tco2e as total_incl_indirect_tco2e,
    n.net_tco2e / nullif(n.output_value_10k_cny, 0) as tco2e_per_10k_cny_output_value,
    n.net_tco2e / nullif(n.value_added_10k_cny, 0) as tco2e_per_10k_cny_value_added,
    n.energy_tce / nullif(n.output_value_10k_cny, 0) as tce_per_10k_cny_output_value,
    n.energy_tce / nullif(n.value_added_10k_cny, 0) as tce_per_10k_cny_value_added,
    coalesce(list_transform(p.products, lambda x: {{'product': x.product, 'output': x.output, 'unit': x.unit,
        'tco2e_per_unit': n.net_tco2e / nullif(x.output, 0)}}), []) as products,
    $edition as edition, $ruleset as ruleset, $grid_region as grid_region, $gwp_set as gwp_set,
    $run_id as run_id
from nets n left join products p using (enterprise_id, period)
order by enterprise_id, period
"""


def fuel_rules(library: FactorLibrary, edition: str | None = None) -> FuelRules:
    """What validation needs to know of fuels: the basis of each default NCV, phases, carbonates."""
    table = library.factors(edition)
    ncv = table[(table["ruleset"] == "cn") & (table["parameter"] == "ncv")]
    basis = {s: ("gas_volume" if "Nm3" in u else "mass") for s, u in zip(ncv["subject"], ncv["unit_canonical"],
                                                                       strict=True)}
    phases = fuel_phases(library.root)
    return FuelRules(default_basis=basis, phase={k: phases.get(k, "solid") for k in basis},
                     carbonates=carbonate_codes(library.root))


def _check_factor_keys(factors: pd.DataFrame, edition: str) -> None:
    yearless = factors[factors["year"].isna()]
    dupes = yearless[yearless.duplicated(["ruleset", "parameter", "subject"], keep=False)]
    if not dupes.empty:
        ids = ", ".join(sorted(dupes["factor_id"]))
        raise FactorError(f"edition {edition} has more than one year-less factor for one subject: {ids}")


def register_inputs(conn: duckdb.DuckDBPyConnection, *, lines: pd.DataFrame, library: FactorLibrary,
                    options: CalculationOptions) -> str:
    """Register the conversion, factor and GWP tables the SQL joins; return the edition used."""
    edition = options.edition or library.latest()
    if edition not in library.editions():
        raise FactorError(f"unknown factor edition '{edition}'; known: {', '.join(library.editions())}")
    if options.gwp_set not in library.gwp_sets():
        raise FactorError(f"unknown GWP set '{options.gwp_set}'; known: {', '.join(library.gwp_sets())}")
    factors = library.factors(edition)
    _check_factor_keys(factors, edition)
    conn.register("unit_conversions", conversion_table(lines))
    conn.register("factor_table", factors)
    conn.register("gwp_table", library.gwp(options.gwp_set))
    return edition


def create_normalized_view(conn: duckdb.DuckDBPyConnection, *, lines_table: str) -> None:
    """Create the temp view ``normalized_lines``: every quantity and parameter in canonical units."""
    conn.execute(_NORMALIZED_SQL.format(lines=lines_table))


def create_emission_lines(conn: duckdb.DuckDBPyConnection, *, options: CalculationOptions, edition: str,
                          run_id: str) -> None:
    """Create the temp view ``emission_lines`` over ``normalized_lines``, ``factor_table`` and ``gwp_table``.

    A view, not a table: the lines stream into the balances, and a caller that keeps them (the
    pipeline, one month at a time) stores them once. Raises InvalidFileError listing the rows for
    which no factor could be selected.
    """
    params = {"grid_region": options.grid_region, "max_lag": options.max_factor_lag_years}
    conn.execute(_FACTORS_SQL)
    conn.execute(_GRID_SQL, params)
    conn.execute(_RUN_OPTIONS_SQL, {
        "grid_region": options.grid_region, "ruleset": options.ruleset, "edition": edition, "gwp_set": options.gwp_set,
        "run_id": run_id, "by": options.by})
    conn.execute(_LINES_SQL.format(tce_gj=TCE_GJ))
    _raise_missing_factors(conn, options=options, edition=edition)


def create_balances(conn: duckdb.DuckDBPyConnection, *, options: CalculationOptions, edition: str,
                    run_id: str) -> None:
    """Create the temp table ``enterprise_balances``: one row per enterprise and result period."""
    conn.execute(_BALANCES_SQL.format(), {
        "grid_region": options.grid_region, "ruleset": options.ruleset, "edition": edition,
        "gwp_set": options.gwp_set, "run_id": run_id})


def run_calculation(conn: duckdb.DuckDBPyConnection, *, lines_table: str, options: CalculationOptions,
                    edition: str, run_id: str) -> None:
    """Normalize ``lines_table`` and create ``emission_lines`` and ``enterprise_balances``."""
    create_normalized_view(conn, lines_table=lines_table)
    create_emission_lines(conn, options=options, edition=edition, run_id=run_id)
    create_balances(conn, options=options, edition=edition, run_id=run_id)


_MISSING_SQL = """
select source_file, row_number, activity, item, period from emission_lines
where (category in ('combustion', 'process', 'purchased_electricity', 'purchased_heat',
                    'exported_electricity', 'exported_heat') and (co2_t is null or energy_tce is null
                                                                  and category <> 'process'))
order by source_file, row_number limit 1000
"""


def _raise_missing_factors(conn: duckdb.DuckDBPyConnection, *, options: CalculationOptions, edition: str) -> None:
    missing = conn.execute(_MISSING_SQL).fetchall()
    if not missing:
        return
    errors = []
    for _source_file, row, activity, item, period in missing:
        if activity in ("purchased_electricity", "exported_electricity"):
            expected = (f"a period with a published grid factor for {options.grid_region} or national in"
                        f" edition {edition} (the activity year or up to {options.max_factor_lag_years}"
                        " years before it)")
            errors.append(RowError(int(row), "period", period, expected, "no_factor"))
        else:
            errors.append(RowError(int(row), "item", item, f"an item with {options.ruleset} factors in edition"
                                   f" {edition}", "no_factor"))
    raise InvalidFileError(errors, source=missing[0][0])


def calculate_sources(sources: list[SourceFile], *, library: FactorLibrary, options: CalculationOptions,
                      max_rows: int = MAX_ROWS_PER_FILE) -> dict[str, Any]:
    """Validate files and compute their results, storing nothing; the ``carbon calculate`` path.

    Every file is validated before anything is computed; the first invalid one raises
    InvalidFileError with all of its errors.
    """
    rules = fuel_rules(library, options.edition)
    lines = pd.concat([parse_activity(s, rules=rules, max_rows=max_rows) for s in sources], ignore_index=True)
    with duckdb.connect() as conn:
        edition = register_inputs(conn, lines=lines, library=library, options=options)
        conn.register("activity_lines", lines)
        run_calculation(conn, lines_table="activity_lines", options=options, edition=edition,
                        run_id=f"calc-{uuid.uuid4()}")
        balances = conn.execute("select * from enterprise_balances").df()
        line_rows = conn.execute(lines_with_parameters_sql("emission_lines")
                                 + " order by source_file, row_number").df()
    return results_document(_records(balances), _records(line_rows), options=options, edition=edition)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = frame.to_dict(orient="records")
    for record in records:
        for key, value in record.items():
            if hasattr(value, "tolist"):
                record[key] = value.tolist()
    return records


# ---------------------------------------------------------------------------------------------
# Warehouse files


@contextmanager
def connect(path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open a DuckDB file; the caller owns the connection for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(path), read_only=read_only)
    try:
        yield conn
    finally:
        conn.close()


def replace_partitions(conn: duckdb.DuckDBPyConnection, *, table: str, frame_sql: str, months: list[str],
                       params: dict[str, Any] | None = None) -> int:
    """Idempotently replace the rows of ``table`` whose ``partition_month`` is in ``months``.

    Delete and insert happen in one transaction, so a reader never sees a half-written month and a
    rerun of the same months gives the same table.
    """
    _create_or_migrate(conn, table=table, frame_sql=frame_sql, params=params)
    conn.execute("begin transaction")
    try:
        conn.execute(f"delete from {table} where partition_month in (select unnest($months))", {"months": months})
        conn.execute(f"insert into {table} by name select * from ({frame_sql})", params or {})
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    count = conn.execute(f"select count(*) from {table} where partition_month in (select unnest($months))",
                         {"months": months}).fetchall()
    return int(count[0][0])


def _create_or_migrate(conn: duckdb.DuckDBPyConnection, *, table: str, frame_sql: str,
                       params: dict[str, Any] | None) -> None:
    """Create ``table`` shaped like ``frame_sql``; recreate it empty when its columns changed (a new release).

    The months it held are then rebuilt by the run in progress and by ``carbon run`` for the others.
    """
    wanted = conn.execute(f"describe select * from ({frame_sql})", params or {}).fetchall()
    present = conn.execute("select column_name, data_type from information_schema.columns "
                           "where table_name = $t order by ordinal_position", {"t": table}).fetchall()
    if present and [(c[0], c[1]) for c in wanted] != [(c[0], c[1]) for c in present]:
        conn.execute(f"drop table {table}")
    conn.execute(f"create table if not exists {table} as select * from ({frame_sql}) limit 0", params or {})


def read_submissions(submissions: list[tuple[Any, set[tuple[str, str]]]], *, rules: FuelRules
                     ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Parse stored submissions; keep each one's lines of the enterprise-periods it is in force for.

    ``submissions`` pairs a stored submission (``filename``, ``content``) with its enterprise-periods in
    force. A submission that no longer validates is returned among the refused with every error.
    """
    frames: list[pd.DataFrame] = []
    refused: list[dict[str, Any]] = []
    for submission, keys in submissions:
        source = SourceFile(submission.filename, submission.content)
        try:
            lines = parse_activity(source, rules=rules)
        except InvalidFileError as err:
            refused.append({"source_file": submission.filename, "source_sha256": source.sha256,
                            "error_count": len(err.errors), "report": json.dumps(err.to_report(), ensure_ascii=False)})
            continue
        wanted = pd.Series([(e, p) in keys for e, p in zip(lines["enterprise_id"], lines["period"], strict=True)],
                           index=lines.index, dtype=bool)
        frames.append(lines.loc[wanted])
    lines = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return lines, refused


def replace_table(conn: duckdb.DuckDBPyConnection, *, table: str, frame_sql: str,
                  params: dict[str, Any] | None = None) -> int:
    """Replace ``table`` whole by the result of ``frame_sql``; return its row count."""
    conn.execute(f"create or replace table {table} as {frame_sql}", params or {})
    return int(conn.execute(f"select count(*) from {table}").fetchall()[0][0])


#: Tables of emission lines: published with their ``parameters`` JSON.
LINE_TABLES = frozenset({"core_emissions__monthly_lines"})


def publish_snapshot(*, warehouse: Path, snapshot: Path, tables: list[str]) -> None:
    """Copy ``tables`` of the warehouse into a read-only snapshot file, replaced atomically.

    The API reads the snapshot and never opens the warehouse, so a running materialization never
    blocks it and it never blocks a run.
    """
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=".snapshot-", suffix=".duckdb", dir=snapshot.parent)
    os.close(handle)
    os.unlink(temp_name)
    try:
        with duckdb.connect() as conn:
            conn.execute(f"attach {_sql_text(str(warehouse))} as wh (read_only)")
            conn.execute(f"attach {_sql_text(temp_name)} as snap")
            for table in tables:
                select = (lines_with_parameters_sql(f"wh.{table}") if table in LINE_TABLES
                          else f"select * from wh.{table}")
                conn.execute(f"create table snap.{table} as {select}")
            conn.execute("detach snap")
            conn.execute("detach wh")
        os.replace(temp_name, snapshot)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        wal = Path(temp_name + ".wal")
        if wal.exists():
            wal.unlink()


def _sql_text(value: str) -> str:
    """A SQL string literal (DuckDB's ATTACH takes no parameters)."""
    return "'" + value.replace("'", "''") + "'"


def copy_file(source: Path, target: Path) -> None:
    """Copy a file atomically (temporary name, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    shutil.copyfile(source, temp)
    os.replace(temp, target)


ZONE_INDICATORS_SQL = """
create or replace temp view zone_indicators as
with b as (
    select b.*, coalesce(r.sector_code, 'unregistered') as sector, coalesce(r.category, 'unregistered') as cat
    from out_emissions__monthly_enterprise_balances b
    left join core_registry__enterprises r using (enterprise_id)
    where b.partition_month in (select unnest($months)) and length(b.period) = 7
)
select partition_month, period,
    case when grouping(sector) = 1 then 'all' else sector end as sector_code,
    case when grouping(cat) = 1 then 'all' else cat end as category,
    count(distinct enterprise_id) as enterprise_count,
    count(distinct enterprise_id) filter (where coalesce(is_substituted, false)) as substituted_enterprise_count,
    sum(scope1_tco2e) as scope1_tco2e,
    sum(scope2_tco2e) as scope2_tco2e,
    sum(exported_tco2e) as exported_tco2e,
    sum(net_tco2e) as net_tco2e,
    sum(energy_tce) as energy_tce,
    sum(output_value_10k_cny) as output_value_10k_cny,
    sum(value_added_10k_cny) as value_added_10k_cny,
    sum(net_tco2e) / nullif(sum(value_added_10k_cny), 0) as tco2e_per_10k_cny_value_added,
    sum(energy_tce) / nullif(sum(value_added_10k_cny), 0) as tce_per_10k_cny_value_added,
    sum(net_tco2e) / nullif(sum(output_value_10k_cny), 0) as tco2e_per_10k_cny_output_value,
    sum(energy_tce) / nullif(sum(output_value_10k_cny), 0) as tce_per_10k_cny_output_value,
    sum(so2_t) as so2_t, sum(nox_t) as nox_t, sum(pm_t) as pm_t, sum(cod_t) as cod_t, sum(nh3n_t) as nh3n_t
from b
group by grouping sets ((partition_month, period, sector, cat), (partition_month, period))
"""


#: Published balances, monthly and yearly, with the submissions (by SHA-256) behind each.
BALANCES_WITH_SOURCES_SQL = """
with monthly_sources as (
    select enterprise_id, period, list(distinct source_sha256 order by source_sha256) as source_sha256s
    from core_emissions__monthly_lines group by all
), yearly_sources as (
    select enterprise_id, year::varchar as period, list(distinct source_sha256 order by source_sha256) as source_sha256s
    from core_emissions__monthly_lines group by all
)
select b.*, s.source_sha256s from out_emissions__monthly_enterprise_balances b
left join monthly_sources s using (enterprise_id, period)
union all by name
select b.*, s.source_sha256s from out_emissions__yearly_enterprise_balances b
left join yearly_sources s using (enterprise_id, period)
"""


# ---------------------------------------------------------------------------------------------
# Substituted months: conservative values put in place of missing months by an officer


_BALANCE_CHOICES = ("edition", "ruleset", "grid_region", "gwp_set")
_INTENSITIES = {
    "tco2e_per_10k_cny_output_value": ("net_tco2e", "output_value_10k_cny"),
    "tco2e_per_10k_cny_value_added": ("net_tco2e", "value_added_10k_cny"),
    "tce_per_10k_cny_output_value": ("energy_tce", "output_value_10k_cny"),
    "tce_per_10k_cny_value_added": ("energy_tce", "value_added_10k_cny"),
}


def substituted_frame(substitutions: list[dict[str, Any]], *, run_id: str) -> pd.DataFrame:
    """One monthly balance row per substitution in force (``api.store.substitutions.in_force``), flagged."""
    columns = ["enterprise_id", "period", "year", *TOTAL_COLUMNS, "line_count", *_BALANCE_CHOICES, "run_id",
               "is_substituted"]
    rows = [{"enterprise_id": s["enterprise_id"], "period": s["period"], "year": int(s["period"][:4]),
             **{c: s["totals"].get(c) for c in TOTAL_COLUMNS}, "line_count": 0,
             **{c: s[c] for c in _BALANCE_CHOICES}, "run_id": run_id, "is_substituted": True}
            for s in substitutions]
    frame = pd.DataFrame(rows, columns=columns)
    frame[list(TOTAL_COLUMNS)] = frame[list(TOTAL_COLUMNS)].astype("float64")
    return frame.astype({"year": "int64", "line_count": "int64", "is_substituted": "bool"})


def add_substituted_months(conn: duckdb.DuckDBPyConnection, *, frame: pd.DataFrame) -> int:
    """Flag the monthly ``enterprise_balances`` with ``is_substituted`` and add the substituted months.

    A substituted month has no lines of its own (the pipeline reads none for it), so its balance is
    the substitution's totals; a month with lines is never replaced here. Returns the rows added.
    """
    conn.execute("alter table enterprise_balances add column if not exists is_substituted boolean default false")
    if frame.empty:
        return 0
    conn.register("substituted_frame", frame)
    before = int(conn.execute("select count(*) from enterprise_balances").fetchall()[0][0])
    conn.execute("insert into enterprise_balances by name select * from substituted_frame s where not exists ("
                 "select 1 from enterprise_balances b where b.enterprise_id = s.enterprise_id and b.period = s.period)")
    return int(conn.execute("select count(*) from enterprise_balances").fetchall()[0][0]) - before


def add_substituted_years(conn: duckdb.DuckDBPyConnection, *, frame: pd.DataFrame) -> None:
    """Add the substituted months to the yearly ``enterprise_balances``: sums, intensities, ``months_substituted``."""
    conn.execute("alter table enterprise_balances add column if not exists is_substituted boolean default false")
    conn.execute("alter table enterprise_balances add column if not exists months_substituted integer default 0")
    if frame.empty:
        return
    conn.register("substituted_frame", frame)
    sums = ", ".join(f"sum({c}) as {c}" for c in ADDITIVE)
    choices = ", ".join(f"any_value({c}) as {c}" for c in _BALANCE_CHOICES)
    conn.execute(f"create or replace temp table substituted_years as select enterprise_id, left(period, 4) as period, "
                 f"min(year) as year, {sums}, {choices}, count(*)::integer as months_substituted "
                 f"from substituted_frame group by enterprise_id, left(period, 4)")
    added = ", ".join(f"{c} = case when b.{c} is null and s.{c} is null then null "
                      f"else coalesce(b.{c}, 0.0) + coalesce(s.{c}, 0.0) end" for c in ADDITIVE)
    conn.execute(f"update enterprise_balances b set {added}, is_substituted = true, "
                 f"months_substituted = s.months_substituted from substituted_years s "
                 f"where b.enterprise_id = s.enterprise_id and b.period = s.period")
    conn.execute("insert into enterprise_balances by name select *, 0::bigint as line_count, true as is_substituted, "
                 "$run_id as run_id from substituted_years s where not exists (select 1 from enterprise_balances b "
                 "where b.enterprise_id = s.enterprise_id and b.period = s.period)",
                 {"run_id": str(frame["run_id"].iloc[0])})
    ratios = ", ".join(f"{name} = {top} / nullif({bottom}, 0)" for name, (top, bottom) in _INTENSITIES.items())
    conn.execute(f"update enterprise_balances set {ratios}, products = list_transform(products, lambda x: "
                 "{'product': x.product, 'output': x.output, 'unit': x.unit, "
                 "'tco2e_per_unit': net_tco2e / nullif(x.output, 0)}) where is_substituted")


# ---------------------------------------------------------------------------------------------
# Recalculation without storing (restatement diffs)

#: The columns of an emission line that a restatement diff compares and shows.
DIFF_LINE_COLUMNS = ("source_file", "source_sha256", "row_number", "enterprise_id", "period", "activity", "item",
                     "facility", "quantity", "unit", "tco2e", "energy_tce", "factor_ids", "edition")


def calculate_frames(lines: pd.DataFrame, *, library: FactorLibrary, options: CalculationOptions
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Monthly balances and emission lines (``DIFF_LINE_COLUMNS``) of parsed activity lines; nothing stored.

    The same SQL as the pipeline, in an in-memory DuckDB. Raises FactorError for an unknown edition
    and InvalidFileError listing the rows without a factor in it.
    """
    with duckdb.connect() as conn:
        edition = register_inputs(conn, lines=lines, library=library, options=options)
        conn.register("activity_lines", lines)
        run_calculation(conn, lines_table="activity_lines", options=options, edition=edition,
                        run_id=f"restate-{uuid.uuid4()}")
        balances = conn.execute("select * from enterprise_balances").df()
        line_rows = conn.execute(f"select {', '.join(DIFF_LINE_COLUMNS)} from emission_lines").df()
    return balances, line_rows

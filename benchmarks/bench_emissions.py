"""Benchmark: emissions of 1M and 10M synthetic activity lines through the real calculation path.

Why this exists: the issue sets targets for the SQL calculation on 2 cores (at least 1M lines per
second end to end, at least 100x a naive row-by-row pint implementation, under 2 GB peak memory for
10M lines). A benchmark only means something if both sides do the same arithmetic on the same kind
of lines, so:

* the lines are generated inside DuckDB (``range(n)``, values from hashes of the row index, no
  Python loop over rows) with exactly the columns and types of the parser's typed lines, and are
  written to a DuckDB *file* with a memory limit, as the warehouse would hold them;
* the timed part is what the pipeline does with such a table: the conversion table of the distinct
  unit combinations, ``register_inputs`` and ``run_calculation`` (normalization, factor selection,
  emission lines, enterprise-month balances), unchanged;
* the baseline is the straightforward way (a pint Quantity per value, a dict of factors, a loop over
  rows) on a sample of the same table, in the same process; its totals must agree with the SQL run on
  the same sample within 1e-9 relative, or the benchmark fails (exit 1);
* every size runs in a fresh subprocess (``--size N``), because ``ru_maxrss`` is a process-lifetime
  peak: the 10M figure is the 10M run's own peak, not the larger of two runs.

Run ``.venv/bin/python benchmarks/bench_emissions.py`` (``make bench``); see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pint

from accounting.activity import CANONICAL_UNIT
from accounting.calculation import CalculationOptions
from accounting.factors import FactorLibrary, load_library
from accounting.units import registry
from accounting.uscc import make_uscc
from pipelines.warehouse import register_inputs, run_calculation

DEFAULT_SIZES = (1_000_000, 10_000_000)
QUICK_SIZES = (100_000,)
DEFAULT_SAMPLE = 20_000
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "emissions.json"

#: The issue's targets.
TARGET_LINES_PER_S = 1_000_000
TARGET_RATIO = 100.0
TARGET_PEAK_MB = 2048.0
Quantity = pint.Quantity[Any]  # pint's Quantity is generic in its magnitude type

#: Largest relative difference allowed between the SQL path and the baseline on the same lines.
AGREEMENT = 1e-9

#: DuckDB settings of a benchmark run: 2 threads (the target machine), a memory limit that leaves room
#: for Python under the 2 GB target, spilling to a temp directory inside the run's own folder.
MEMORY_LIMIT = "1500MB"
THREADS = 2

ENTERPRISES = 300
PERIODS = 24  # 2023-01 .. 2024-12
FIRST_YEAR = 2023


# ---------------------------------------------------------------------------------------------
# Synthetic lines


@dataclass(frozen=True, slots=True)
class Measured:
    """An optional parameter: on ``share`` of the lines, a value drawn in [low, high] with ``unit``."""

    share: float
    low: float
    high: float
    unit: str = ""
    digits: int = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """One kind of activity line and how often it occurs (``weight`` per mille of all lines).

    Quantities are log-uniform in ``quantity`` (lines of one kind span orders of magnitude); the
    parameters are those the contract allows on the activity, measured on a share of the lines.
    """

    weight: int
    activity: str
    item: str = ""
    quantity_kind: str
    unit: str
    quantity: tuple[float, float]
    heat_basis: str = ""
    parameters: dict[str, Measured] = field(default_factory=dict)
    evidence: str = ""
    evidence_always: bool = False
    note: str = ""


_SUPPLIER = "supplier emission-factor statement"
_GREEN = "green electricity certificate (GEC) and settlement record"
_CLINKER = {
    "cao_fraction": Measured(1.0, 0.645, 0.662), "mgo_fraction": Measured(1.0, 0.021, 0.029),
    "cao_noncarbonate_fraction": Measured(1.0, 0.004, 0.009),
    "mgo_noncarbonate_fraction": Measured(0.5, 0.001, 0.003),
}
_COAL = {
    "ncv": Measured(0.35, 19.0, 23.5, "GJ/t", 2), "oxidation_rate": Measured(0.25, 0.95, 0.99, digits=3),
    "carbon_content": Measured(0.1, 0.0255, 0.0268, "tC/GJ", 5), "sulfur_content": Measured(0.2, 0.004, 0.009),
}

#: The mix of a zone's monthly reports: fuels by mass, gas volume, litres with density and energy
#: (NCV), carbonates, clinker, electricity in three units with supplier and green lines, heat,
#: exports, production, economic output and pollutants.
TEMPLATES: tuple[Template, ...] = (
    # fuel combustion (300)
    Template(weight=70, activity="fuel_combustion", item="bituminous_coal", quantity_kind="fuel_mass", unit="t",
             quantity=(50, 30_000), parameters=_COAL),
    Template(weight=15, activity="fuel_combustion", item="bituminous_coal", quantity_kind="fuel_mass", unit="t",
             quantity=(50, 30_000), parameters={
                 "ncv": Measured(1.0, 19.5, 22.0, "GJ/t", 2), "carbon_content": Measured(1.0, 0.50, 0.58, "tC/t"),
                 "oxidation_rate": Measured(0.5, 0.96, 0.99, digits=3)}),
    Template(weight=15, activity="fuel_combustion", item="anthracite", quantity_kind="fuel_mass", unit="t",
             quantity=(10, 5_000), parameters={"ncv": Measured(0.3, 24.0, 27.5, "GJ/t", 2)}),
    Template(weight=15, activity="fuel_combustion", item="coke", quantity_kind="fuel_mass", unit="kg",
             quantity=(1_000, 500_000)),
    Template(weight=10, activity="fuel_combustion", item="raw_coal", quantity_kind="fuel_mass", unit="t",
             quantity=(10, 8_000), parameters={"oxidation_rate": Measured(0.3, 0.92, 0.98, digits=3)}),
    Template(weight=50, activity="fuel_combustion", item="natural_gas", quantity_kind="fuel_gas_volume",
             unit="10^4 Nm3", quantity=(0.5, 500),
             parameters={"ncv": Measured(0.2, 380.0, 395.0, "GJ/(10^4 Nm3)", 2)}),
    Template(weight=30, activity="fuel_combustion", item="natural_gas", quantity_kind="fuel_gas_volume",
             unit="Nm3", quantity=(1_000, 500_000)),
    Template(weight=10, activity="fuel_combustion", item="natural_gas", quantity_kind="fuel_gas_volume",
             unit="万Nm3", quantity=(0.5, 300)),
    Template(weight=25, activity="fuel_combustion", item="diesel", quantity_kind="fuel_liquid_volume", unit="L",
             quantity=(100, 50_000), parameters={"density": Measured(1.0, 0.82, 0.86, "kg/L", 3)},
             note="forklifts and yard vehicles"),
    Template(weight=15, activity="fuel_combustion", item="diesel", quantity_kind="fuel_mass", unit="t",
             quantity=(1, 50)),
    Template(weight=10, activity="fuel_combustion", item="gasoline", quantity_kind="fuel_liquid_volume", unit="L",
             quantity=(100, 20_000), parameters={"density": Measured(1.0, 0.72, 0.76, "kg/L", 3)}),
    Template(weight=10, activity="fuel_combustion", item="lpg", quantity_kind="fuel_mass", unit="kg",
             quantity=(100, 20_000)),
    Template(weight=10, activity="fuel_combustion", item="natural_gas", quantity_kind="fuel_energy", unit="GJ",
             heat_basis="NCV", quantity=(100, 200_000)),
    Template(weight=5, activity="fuel_combustion", item="fuel_oil", quantity_kind="fuel_energy", unit="GJ",
             heat_basis="NCV", quantity=(100, 50_000),
             parameters={"oxidation_rate": Measured(0.5, 0.97, 0.99, digits=3)}),
    Template(weight=5, activity="fuel_combustion", item="coke_oven_gas", quantity_kind="fuel_gas_volume",
             unit="10^4 Nm3", quantity=(1, 800)),
    Template(weight=5, activity="fuel_combustion", item="blast_furnace_gas", quantity_kind="fuel_gas_volume",
             unit="10^4 Nm3", quantity=(10, 5_000), parameters={"ncv": Measured(0.5, 30.0, 36.0, "GJ/(10^4 Nm3)", 2)}),
    # process (70)
    Template(weight=30, activity="carbonate_use", item="CaCO3", quantity_kind="mass", unit="t",
             quantity=(10, 20_000), parameters={"purity": Measured(0.6, 0.90, 0.98, digits=3)}),
    Template(weight=10, activity="carbonate_use", item="Na2CO3", quantity_kind="mass", unit="t",
             quantity=(10, 5_000), parameters={"purity": Measured(0.5, 0.98, 0.995, digits=3)}),
    Template(weight=10, activity="carbonate_use", item="CaMg(CO3)2", quantity_kind="mass", unit="kg",
             quantity=(10_000, 5_000_000), parameters={"purity": Measured(0.5, 0.92, 0.97, digits=3)}),
    Template(weight=20, activity="clinker_production", quantity_kind="mass", unit="t", quantity=(1_000, 50_000),
             parameters=_CLINKER),
    # electricity (250)
    Template(weight=100, activity="purchased_electricity", quantity_kind="electricity", unit="kWh",
             quantity=(1_000, 5_000_000)),
    Template(weight=70, activity="purchased_electricity", quantity_kind="electricity", unit="MWh",
             quantity=(10, 50_000)),
    Template(weight=30, activity="purchased_electricity", quantity_kind="electricity", unit="10^4 kWh",
             quantity=(1, 500)),
    Template(weight=10, activity="purchased_electricity", quantity_kind="electricity", unit="MWh",
             quantity=(10, 20_000), parameters={"emission_factor": Measured(1.0, 0.45, 0.60, "tCO2/MWh")},
             evidence=_SUPPLIER),
    Template(weight=5, activity="purchased_electricity", quantity_kind="electricity", unit="kWh",
             quantity=(1_000, 2_000_000), parameters={"emission_factor": Measured(1.0, 0.45, 0.60, "kgCO2/kWh")},
             evidence=_SUPPLIER),
    Template(weight=10, activity="purchased_electricity", item="green_certified", quantity_kind="electricity",
             unit="MWh", quantity=(10, 10_000), evidence=_GREEN, evidence_always=True),
    Template(weight=25, activity="exported_electricity", quantity_kind="electricity", unit="MWh",
             quantity=(100, 200_000)),
    # heat (90)
    Template(weight=40, activity="purchased_heat", quantity_kind="heat", unit="GJ", quantity=(100, 100_000)),
    Template(weight=10, activity="purchased_heat", quantity_kind="heat", unit="MJ", quantity=(1e5, 5e7)),
    Template(weight=10, activity="purchased_heat", quantity_kind="heat", unit="GJ", quantity=(100, 50_000),
             parameters={"emission_factor": Measured(1.0, 0.08, 0.12, "tCO2/GJ")}, evidence=_SUPPLIER),
    Template(weight=30, activity="exported_heat", quantity_kind="heat", unit="GJ", quantity=(1_000, 400_000)),
    # production (80)
    Template(weight=30, activity="production", item="cement", quantity_kind="product_mass", unit="t",
             quantity=(1_000, 100_000)),
    Template(weight=20, activity="production", item="flat_glass", quantity_kind="product_mass", unit="t",
             quantity=(1_000, 20_000)),
    Template(weight=15, activity="production", item="electricity", quantity_kind="product_electricity",
             unit="MWh", quantity=(100, 200_000)),
    Template(weight=15, activity="production", item="heat", quantity_kind="product_energy", unit="GJ",
             quantity=(1_000, 400_000)),
    # economic output (80)
    Template(weight=30, activity="economic_output", item="output_value", quantity_kind="money", unit="10^4 CNY",
             quantity=(50, 50_000)),
    Template(weight=30, activity="economic_output", item="value_added", quantity_kind="money", unit="10^4 CNY",
             quantity=(10, 10_000)),
    Template(weight=10, activity="economic_output", item="output_value", quantity_kind="money", unit="万元",
             quantity=(50, 50_000)),
    Template(weight=10, activity="economic_output", item="value_added", quantity_kind="money", unit="CNY",
             quantity=(1e5, 1e8)),
    # pollutants (130)
    Template(weight=25, activity="pollutant_monitored", item="SO2", quantity_kind="mass", unit="t",
             quantity=(0.1, 50)),
    Template(weight=15, activity="pollutant_monitored", item="SO2", quantity_kind="mass", unit="kg",
             quantity=(10, 50_000)),
    Template(weight=25, activity="pollutant_monitored", item="NOx", quantity_kind="mass", unit="t",
             quantity=(0.1, 80)),
    Template(weight=25, activity="pollutant_monitored", item="PM", quantity_kind="mass", unit="kg",
             quantity=(10, 20_000)),
    Template(weight=20, activity="wastewater_discharge", item="COD", quantity_kind="water_volume", unit="m3",
             quantity=(500, 50_000), parameters={"concentration": Measured(1.0, 20, 60, "mg/L", 1)}),
    Template(weight=20, activity="wastewater_discharge", item="NH3-N", quantity_kind="water_volume", unit="m3",
             quantity=(500, 50_000), parameters={"concentration": Measured(1.0, 1, 6, "mg/L", 2)}),
)

#: Numeric parameter columns of the typed lines, in their order, and the unit column of each.
PARAMETER_COLUMNS: tuple[str, ...] = (
    "ncv", "carbon_content", "density", "concentration", "emission_factor", "oxidation_rate", "purity",
    "sulfur_content", "cao_fraction", "mgo_fraction", "cao_noncarbonate_fraction", "mgo_noncarbonate_fraction",
)
UNIT_COLUMNS: dict[str, str] = {
    "ncv": "ncv_unit", "carbon_content": "carbon_content_unit", "density": "density_unit",
    "concentration": "concentration_unit", "emission_factor": "emission_factor_unit",
}
#: Columns of ``accounting.activity`` typed lines (after ``parse_activity``), in order.
LINE_COLUMNS: tuple[str, ...] = (
    "source_file", "source_sha256", "row_number", "enterprise_id", "period", "year", "month", "activity", "item",
    "facility", "quantity_kind", "unit", "heat_basis", "quantity", *PARAMETER_COLUMNS, *UNIT_COLUMNS.values(),
    "evidence", "note",
)


def template_slots() -> pd.DataFrame:
    """The templates spread over 1000 slots (one per mille): a line draws a slot from its hash.

    Why slots: a hash modulo 1000 joined to this small table picks a template in one equi-join,
    without any per-row Python.
    """
    if sum(t.weight for t in TEMPLATES) != 1000:
        raise ValueError(f"template weights must sum to 1000, got {sum(t.weight for t in TEMPLATES)}")
    records: list[dict[str, Any]] = []
    for template in TEMPLATES:
        record: dict[str, Any] = {
            "activity": template.activity, "item": template.item, "quantity_kind": template.quantity_kind,
            "unit": template.unit, "heat_basis": template.heat_basis, "q_low": float(template.quantity[0]),
            "q_high": float(template.quantity[1]), "evidence_text": template.evidence,
            "evidence_always": template.evidence_always, "note": template.note,
        }
        for column in PARAMETER_COLUMNS:
            measured = template.parameters.get(column, Measured(0.0, 0.0, 0.0))
            record |= {f"{column}_share": measured.share, f"{column}_low": measured.low,
                       f"{column}_high": measured.high, f"{column}_digits": measured.digits}
            if column in UNIT_COLUMNS:
                record[f"{column}_unit"] = measured.unit
        records.extend([record] * template.weight)
    slots = pd.DataFrame.from_records(records)
    slots.insert(0, "slot", range(len(slots)))
    return slots


def enterprise_ids(count: int) -> pd.DataFrame:
    """``count`` distinct 18-character unified social credit codes (valid check character)."""
    ids = [make_uscc(f"91410100MA{k:07d}") for k in range(count)]
    return pd.DataFrame({"enterprise_index": range(count), "enterprise_id": ids})


_FILES_SQL = """
create or replace temp table bench_files as
select p.k * $enterprises + e.enterprise_index as file_index,
    e.enterprise_id || '_' || p.period || '.csv' as source_file,
    sha256('bench:' || e.enterprise_id || '_' || p.period || '.csv') as source_sha256,
    e.enterprise_id, p.period, p.year, p.month
from bench_enterprise_frame e
cross join (select k, ($first_year + k // 12)::bigint as year, (k % 12 + 1)::bigint as month,
                   ($first_year + k // 12)::varchar || '-' || lpad((k % 12 + 1)::varchar, 2, '0') as period
            from range($periods) r(k)) p
"""


def _parameter_sql(column: str) -> str:
    """SQL of one parameter column: a value on its template's share of lines, NULL elsewhere."""
    return (f"case when unif(i, '{column}:has') < {column}_share"
            f" then round({column}_low + ({column}_high - {column}_low) * unif(i, '{column}'),"
            f" {column}_digits::integer) end::double as {column}")


def generate_sql() -> str:
    """The statement creating ``activity_lines`` from ``range($n)``: typed lines, no Python per row.

    A line's file is ``i % files`` (one file per enterprise and month) and its row within the file
    ``i // files``, so (source_sha256, row_number) is unique, and the facility (``U`` + row) keeps
    the (enterprise, period, facility, activity, item) key of the contract unique too.
    """
    parameters = ",\n    ".join(_parameter_sql(c) for c in PARAMETER_COLUMNS)
    units = ",\n    ".join(f"case when {c} is not null then {c}_unit else '' end as {u}"
                           for c, u in UNIT_COLUMNS.items())
    return f"""
create or replace table activity_lines as
with drawn as (
    select r.i, f.source_file, f.source_sha256, f.enterprise_id, f.period, f.year, f.month,
        (r.i // $files + 2)::bigint as row_number, s.*
    from range($n) r(i)
    join bench_files f on f.file_index = r.i % $files
    join bench_slots s on s.slot = hash(r.i, 'template') % 1000
),
valued as (
    select *,
        round(q_low * pow(q_high / q_low, unif(i, 'quantity')), 3) as quantity,
        {parameters}
    from drawn
)
select source_file, source_sha256, row_number, enterprise_id, period, year, month, activity, item,
    'U' || (row_number - 1)::varchar as facility, quantity_kind, unit, heat_basis, quantity,
    {", ".join(PARAMETER_COLUMNS)},
    {units},
    case when evidence_always or emission_factor is not null then evidence_text else '' end as evidence,
    note
from valued
"""


def generate_lines(conn: duckdb.DuckDBPyConnection, n: int) -> None:
    """Create the table ``activity_lines`` of ``n`` synthetic typed lines, deterministically."""
    conn.execute("create or replace temp macro unif(i, salt) as (hash(i, salt) % 1000000)::double / 1000000.0")
    conn.register("bench_enterprise_frame", enterprise_ids(ENTERPRISES))
    conn.register("bench_slot_frame", template_slots())
    conn.execute("create or replace temp table bench_slots as select * from bench_slot_frame")
    conn.execute(_FILES_SQL, {"enterprises": ENTERPRISES, "first_year": FIRST_YEAR, "periods": PERIODS})
    conn.execute(generate_sql(), {"n": n, "files": ENTERPRISES * PERIODS})
    conn.unregister("bench_enterprise_frame")
    conn.unregister("bench_slot_frame")


# ---------------------------------------------------------------------------------------------
# The SQL path, as the pipeline runs it

#: The low-cardinality text columns of the lines: whatever ``conversion_table`` reads is among them.
_DISTINCT_UNITS_SQL = f"""
select distinct activity, item, quantity_kind, unit, heat_basis, {", ".join(UNIT_COLUMNS.values())} from {{table}}
"""


def calculate(conn: duckdb.DuckDBPyConnection, *, table: str, library: FactorLibrary,
              options: CalculationOptions, run_id: str) -> str:
    """What the pipeline does with a table of typed lines; returns the edition used.

    The conversion table is built from the distinct combinations of the lines' low-cardinality text
    columns (a few dozen rows): ``conversion_table`` reads nothing else, and fetching 10M lines into
    pandas would measure pandas, not the calculation.
    """
    distinct = conn.execute(_DISTINCT_UNITS_SQL.format(table=table)).df()
    edition = register_inputs(conn, lines=distinct, library=library, options=options)
    run_calculation(conn, lines_table=table, options=options, edition=edition, run_id=run_id)
    return edition


def sql_totals(conn: duckdb.DuckDBPyConnection) -> dict[str, float | int]:
    """Totals of the ``emission_lines`` and of the materialized ``enterprise_balances``: proof the run happened."""
    lines, tco2e, energy, quantity = conn.execute(
        "select count(*), sum(tco2e), sum(energy_tce), sum(quantity_canonical) from emission_lines").fetchall()[0]
    balances, net = conn.execute("select count(*), sum(net_tco2e) from enterprise_balances").fetchall()[0]
    return {"lines": int(lines), "tco2e": float(tco2e), "energy_tce": float(energy), "balances": int(balances),
            "net_tco2e": float(net), "quantity_canonical": float(quantity)}


# ---------------------------------------------------------------------------------------------
# The naive baseline: a pint Quantity per value, a dict of factors, one row at a time


@dataclass(frozen=True, slots=True)
class FactorRow:
    """One factor as printed in its edition: value and unit string, year and validity."""

    value: float
    unit: str
    year: int | None
    valid_from: str | None
    valid_to: str | None


def factor_dict(library: FactorLibrary, edition: str) -> dict[tuple[str, str, str], list[FactorRow]]:
    """The edition's factors keyed by (ruleset, parameter, subject), as a naive implementation holds them."""
    factors: dict[tuple[str, str, str], list[FactorRow]] = {}
    table = library.factors(edition)
    for record in table.to_dict(orient="records"):
        year = record["year"]
        factors.setdefault((record["ruleset"], record["parameter"], record["subject"]), []).append(FactorRow(
            value=float(record["value"]), unit=str(record["unit"]),
            year=None if pd.isna(year) else int(year),
            valid_from=None if pd.isna(record["valid_from"]) else str(record["valid_from"]),
            valid_to=None if pd.isna(record["valid_to"]) else str(record["valid_to"])))
    return factors


class NaiveCalculator:
    """The same formulas as ``pipelines.warehouse`` (ruleset ``cn``), written the obvious way.

    Every value becomes a pint Quantity (``value * ureg.parse_expression(unit)``: pint's
    ``Quantity(value, "10^4 Nm3")`` refuses a scaled unit, so this is what a developer writes after
    meeting that error), converts with ``.to()``, and factors come from a dict lookup per row.
    """

    def __init__(self, *, library: FactorLibrary, edition: str, options: CalculationOptions) -> None:
        if options.ruleset != "cn":
            raise ValueError("the baseline implements the cn ruleset only")
        self.ureg = registry()
        self.factors = factor_dict(library, edition)
        gwp = library.gwp(options.gwp_set)
        self.gwp_co2 = float(gwp.loc[gwp["gas"] == "CO2", "gwp100"].iloc[0])
        self.options = options
        self.carbon_per_mass = self.ureg.parse_expression("tC/t").dimensionality
        self.methods: dict[str, Callable[[dict[str, Any]], tuple[Quantity, Quantity | None]]] = {
            "fuel_combustion": self._fuel, "carbonate_use": self._carbonate, "clinker_production": self._clinker,
            "purchased_electricity": self._electricity, "exported_electricity": self._electricity,
            "purchased_heat": self._heat, "exported_heat": self._heat,
        }

    def q(self, value: float, unit: str) -> Quantity:
        """A Quantity from a value and a unit string, parsed every time (the naive part)."""
        quantity: Quantity = value * self.ureg.parse_expression(unit)
        return quantity

    def factor(self, parameter: str, subject: str) -> Quantity:
        rows = self.factors[("cn", parameter, subject)]
        return self.q(rows[0].value, rows[0].unit)

    def line(self, row: dict[str, Any]) -> tuple[float, float | None, float | None]:
        """(quantity in its canonical unit, tCO2e, tce) of one typed line; None where it has none.

        Every quantity is normalized, as the SQL does for every line (litres with their density to t).
        """
        amount = self.q(row["quantity"], row["unit"])
        canonical = CANONICAL_UNIT[row["quantity_kind"]]
        if row["quantity_kind"] == "fuel_liquid_volume":
            amount, canonical = (amount * self.q(row["density"], row["density_unit"])).to("t"), "t"
        quantity_canonical = (amount / self.q(1.0, canonical)).to("dimensionless").magnitude
        method = self.methods.get(row["activity"])
        if method is None:
            return quantity_canonical, None, None
        co2, energy = method(row | {"amount": amount})
        tco2e = (co2 * self.q(self.gwp_co2, "tCO2e/tCO2")).to("tCO2e").magnitude
        return quantity_canonical, tco2e, None if energy is None else energy.to("tce").magnitude

    def _fuel(self, row: dict[str, Any]) -> tuple[Quantity, Quantity]:
        amount = row["amount"]
        if row["ncv"] is not None:
            ncv = self.q(row["ncv"], row["ncv_unit"])
        else:
            ncv = self.factor("ncv", row["item"])
        heat = amount.to("GJ") if row["quantity_kind"] == "fuel_energy" else (amount * ncv).to("GJ")
        oxidation = row["oxidation_rate"] if row["oxidation_rate"] is not None else self.factor(
            "oxidation_rate", row["item"]).to("dimensionless").magnitude
        to_co2 = self.q(44.0 / 12.0, "tCO2/tC")
        carbon = None if row["carbon_content"] is None else self.q(row["carbon_content"], row["carbon_content_unit"])
        if carbon is not None and carbon.dimensionality == self.carbon_per_mass:
            co2 = (amount.to("t") * carbon * oxidation * to_co2).to("tCO2")
        else:
            co2 = (heat * (carbon if carbon is not None else self.factor("carbon_content", row["item"]))
                   * oxidation * to_co2).to("tCO2")
        return co2, heat.to("tce")

    def _carbonate(self, row: dict[str, Any]) -> tuple[Quantity, None]:
        purity = row["purity"] if row["purity"] is not None else 1.0
        return (row["amount"] * purity * self.factor("co2_per_mass", row["item"])).to("tCO2"), None

    def _clinker(self, row: dict[str, Any]) -> tuple[Quantity, None]:
        cao = row["cao_fraction"] - (row["cao_noncarbonate_fraction"] or 0.0)
        mgo = row["mgo_fraction"] - (row["mgo_noncarbonate_fraction"] or 0.0)
        ratio = cao * (44.0 / 56.0) + mgo * (44.0 / 40.0)
        return (row["amount"] * ratio * self.q(1.0, "tCO2/t")).to("tCO2"), None

    def _electricity(self, row: dict[str, Any]) -> tuple[Quantity, Quantity]:
        amount = row["amount"]
        if row["item"] == "green_certified":
            factor = self.q(0.0, "tCO2/MWh")
        elif row["emission_factor"] is not None:
            factor = self.q(row["emission_factor"], row["emission_factor_unit"])
        else:
            factor = self.grid_factor(row["year"], row["period"])
        sign = -1.0 if row["activity"] == "exported_electricity" else 1.0
        energy = sign * amount * self.factor("tce_per_electricity", "electricity")
        return (amount * factor).to("tCO2"), energy

    def _heat(self, row: dict[str, Any]) -> tuple[Quantity, Quantity]:
        amount = row["amount"]
        if row["emission_factor"] is not None:
            factor = self.q(row["emission_factor"], row["emission_factor_unit"])
        else:
            factor = self.factor("co2_per_heat", "heat")
        sign = -1.0 if row["activity"] == "exported_heat" else 1.0
        return (amount * factor).to("tCO2"), sign * amount

    def grid_factor(self, year: int, period: str) -> Quantity:
        """The configured region's latest factor within the lag (activity year first), else national's."""
        region, lag = self.options.grid_region, self.options.max_factor_lag_years
        candidates = []
        for subject in (region, "national"):
            for factor in self.factors.get(("cn", "co2_per_electricity", subject), []):
                if factor.year is None or not year - lag <= factor.year <= year:
                    continue
                if factor.valid_from and factor.valid_from > period or factor.valid_to and period[:7] > factor.valid_to:
                    continue
                candidates.append((0 if subject == region else 1, -factor.year, factor))
        if not candidates:
            raise LookupError(f"no grid factor for {period}")
        best = min(candidates, key=lambda c: (c[0], c[1]))[2]
        return self.q(best.value, best.unit)


def run_baseline(rows: Sequence[dict[str, Any]], calculator: NaiveCalculator) -> dict[str, float | int]:
    """Run the naive calculation over ``rows``: per-line results, then enterprise-month nets, as the SQL does."""
    tco2e_total = energy_total = quantity_total = 0.0
    nets: dict[tuple[str, str], float] = {}
    for row in rows:
        quantity, tco2e, energy = calculator.line(row)
        quantity_total += quantity
        if tco2e is not None:
            tco2e_total += tco2e
            sign = -1.0 if row["activity"] in ("exported_electricity", "exported_heat") else 1.0
            key = (row["enterprise_id"], row["period"])
            nets[key] = nets.get(key, 0.0) + sign * tco2e
        if energy is not None:
            energy_total += energy
    return {"lines": len(rows), "tco2e": tco2e_total, "energy_tce": energy_total, "net_tco2e": sum(nets.values()),
            "quantity_canonical": quantity_total}


def relative_difference(a: float, b: float) -> float:
    """|a - b| relative to the larger magnitude (0 when both are 0)."""
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


# ---------------------------------------------------------------------------------------------
# One size, in its own process


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def configure(conn: duckdb.DuckDBPyConnection, workdir: Path, *, memory_limit: str, threads: int) -> None:
    """Bound DuckDB as a warehouse run would be: memory limit, threads, spill folder, no order keeping."""
    spill = workdir / "spill"
    spill.mkdir(exist_ok=True)
    conn.execute(f"set memory_limit = '{memory_limit}'")
    conn.execute(f"set threads = {int(threads)}")
    conn.execute(f"set temp_directory = '{spill}'")
    conn.execute("set preserve_insertion_order = false")


def _memory_snapshot(conn: duckdb.DuckDBPyConnection) -> dict[str, float]:
    used, spilled = conn.execute(
        "select coalesce(sum(memory_usage_bytes), 0), coalesce(sum(temporary_storage_bytes), 0)"
        " from duckdb_memory()").fetchall()[0]
    return {"duckdb_memory_mb": used / 2**20, "duckdb_spilled_mb": spilled / 2**20}


def _drop_run_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Drop the temp tables of a previous run, so a repeat does not hold two runs' tables at once."""
    names = conn.execute("select table_name from duckdb_tables() where temporary"
                         " and not starts_with(table_name, 'bench_')").fetchall()
    for (name,) in names:
        conn.execute(f'drop table if exists temp."{name}"')


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_sql_path(conn: duckdb.DuckDBPyConnection, *, n: int, repeat: int, library: FactorLibrary,
                  options: CalculationOptions) -> dict[str, Any]:
    """Time the SQL path ``repeat`` times on ``activity_lines``; keep the best (noise on a shared box only adds)."""
    runs: list[float] = []
    cpu: list[float] = []
    load_before = os.getloadavg()[0]
    edition = ""
    for attempt in range(repeat):
        if attempt:
            _drop_run_tables(conn)
        started, cpu_started = time.perf_counter(), _cpu_s()
        edition = calculate(conn, table="activity_lines", library=library, options=options, run_id="bench")
        runs.append(time.perf_counter() - started)
        cpu.append(_cpu_s() - cpu_started)
    totals = sql_totals(conn)
    if totals["lines"] != n:
        raise RuntimeError(f"emission_lines has {totals['lines']} rows for {n} activity lines")
    best = min(runs)
    return {"edition": edition, "calculate_s": best, "calculate_runs_s": runs, "calculate_cpu_s": cpu,
            "lines_per_s": n / best, "load_average": [load_before, os.getloadavg()[0]], "sql": totals,
            **_memory_snapshot(conn)}


def measure(n: int, *, sample: int, repeat: int = 1, memory_limit: str = MEMORY_LIMIT, threads: int = THREADS,
            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate ``n`` lines, time the SQL path on them, then the baseline on a sample; return the figures.

    The factor library is opened and its edition parsed before timing: a pipeline process does that
    once, whatever the number of lines; everything that depends on the lines is inside the timing.
    """
    say = log or (lambda message: None)
    options = CalculationOptions()
    library = load_library()
    library.factors(options.edition or library.latest())
    library.gwp(options.gwp_set)
    with tempfile.TemporaryDirectory(prefix="bench-emissions-") as folder:
        workdir = Path(folder)
        database = workdir / "bench.duckdb"
        conn = duckdb.connect(str(database))
        try:
            configure(conn, workdir, memory_limit=memory_limit, threads=threads)
            started = time.perf_counter()
            generate_lines(conn, n)
            conn.execute("checkpoint")
            generate_s = time.perf_counter() - started
            say(f"{n:,} lines generated in {generate_s:.1f} s")
            sql = time_sql_path(conn, n=n, repeat=repeat, library=library, options=options)
            rss_after_sql = peak_rss_mb()
            database_mb = database.stat().st_size / 2**20
            say(f"SQL path: {sql['calculate_s']:.2f} s, {sql['lines_per_s']:,.0f} lines/s,"
                f" peak RSS {rss_after_sql:,.0f} MB")
            _drop_run_tables(conn)
            agreement = compare_on_sample(conn, sample=min(sample, n), library=library, edition=sql["edition"],
                                          options=options)
            say(f"baseline: {agreement['baseline_lines_per_s']:,.0f} lines/s on {agreement['sample']:,} lines,"
                f" largest relative difference {agreement['max_relative_difference']:.1e}")
        finally:
            conn.close()
    return {
        "size": n, "threads": threads, "memory_limit": memory_limit, "generate_s": generate_s, **sql,
        "database_mb": database_mb, "peak_rss_after_sql_mb": rss_after_sql, "peak_rss_mb": peak_rss_mb(),
        "ratio": sql["lines_per_s"] / agreement["baseline_lines_per_s"], **agreement,
    }


_SAMPLE_SQL = """
create or replace table sample_lines as
select * from activity_lines order by hash(source_sha256, row_number) limit $sample
"""


def compare_on_sample(conn: duckdb.DuckDBPyConnection, *, sample: int, library: FactorLibrary, edition: str,
                      options: CalculationOptions) -> dict[str, Any]:
    """Run the SQL path and the baseline on the same sample; report the baseline's speed and the agreement."""
    conn.execute(_SAMPLE_SQL, {"sample": sample})
    calculate(conn, table="sample_lines", library=library, options=options, run_id="bench-sample")
    sql = sql_totals(conn)
    cursor = conn.execute("select * from sample_lines")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    calculator = NaiveCalculator(library=library, edition=edition, options=options)
    calculator.line(rows[0])  # build the registry's caches once, as any long-running process would have
    started = time.perf_counter()
    baseline = run_baseline(rows, calculator)
    baseline_s = time.perf_counter() - started
    differences = {key: relative_difference(float(sql[key]), float(baseline[key]))
                   for key in ("tco2e", "energy_tce", "net_tco2e", "quantity_canonical")}
    return {
        "sample": len(rows), "baseline_s": baseline_s, "baseline_lines_per_s": len(rows) / baseline_s,
        "sample_sql": sql, "sample_baseline": baseline, "relative_differences": differences,
        "max_relative_difference": max(differences.values()),
        "agree": max(differences.values()) <= AGREEMENT and sql["lines"] == baseline["lines"],
    }


# ---------------------------------------------------------------------------------------------
# Orchestration and report


def run_child(size: int, *, sample: int, repeat: int, memory_limit: str, threads: int) -> dict[str, Any]:
    """Run one size in a fresh interpreter and return its JSON result (its last stdout line)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--size", str(size), "--baseline-sample",
               str(sample), "--repeat", str(repeat), "--memory-limit", memory_limit, "--threads", str(threads)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark of {size:,} lines failed (exit {done.returncode}): {done.stdout[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def verdicts(result: dict[str, Any]) -> dict[str, bool]:
    """PASS/FAIL of one size against each target of the issue."""
    return {
        "lines_per_s": result["lines_per_s"] >= TARGET_LINES_PER_S,
        "ratio": result["ratio"] >= TARGET_RATIO,
        "peak_rss": result["peak_rss_mb"] < TARGET_PEAK_MB,
        "agreement": bool(result["agree"]),
    }


def _mark(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def format_table(results: Iterable[dict[str, Any]]) -> str:
    """The human-readable report: one row per size, with PASS/FAIL against each target."""
    header = (f"{'lines':>12} {'seconds':>8} {'lines/s':>12} {'(>=1M)':>6} {'baseline/s':>10} {'ratio':>8}"
              f" {'(>=100x)':>8} {'peak RSS MB':>11} {'(<2GB)':>6} {'rel.diff':>8}")
    rows = [header, "-" * len(header)]
    for r in results:
        ok = verdicts(r)
        rows.append(
            f"{r['size']:>12,} {r['calculate_s']:>8.2f} {r['lines_per_s']:>12,.0f} {_mark(ok['lines_per_s']):>6}"
            f" {r['baseline_lines_per_s']:>10,.0f} {r['ratio']:>7,.0f}x {_mark(ok['ratio']):>8}"
            f" {r['peak_rss_mb']:>11,.0f} {_mark(ok['peak_rss']):>6} {r['max_relative_difference']:>8.1e}")
    return "\n".join(rows)


def summary(results: list[dict[str, Any]], *, sample: int) -> dict[str, Any]:
    """The JSON document written to ``benchmarks/out/emissions.json``."""
    return {
        "benchmark": "emissions", "targets": {"lines_per_s": TARGET_LINES_PER_S, "ratio": TARGET_RATIO,
                                              "peak_rss_mb": TARGET_PEAK_MB, "agreement": AGREEMENT},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "duckdb": duckdb.__version__,
                    "pint": pint.__version__},
        "baseline_sample": sample,
        "results": [r | {"verdicts": verdicts(r)} for r in results],
        "all_targets_met": all(all(verdicts(r).values()) for r in results),
        "agree": all(r["agree"] for r in results),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="comma-separated line counts (default: 1000000,10000000)")
    parser.add_argument("--baseline-sample", type=int, default=DEFAULT_SAMPLE,
                        help="lines run through the naive baseline (default: 20000)")
    parser.add_argument("--quick", action="store_true", help="100000 lines only (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON summary path")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time the SQL path this many times per size and keep the best (default: 1)")
    parser.add_argument("--memory-limit", default=MEMORY_LIMIT, help="DuckDB memory_limit (default: 1500MB)")
    parser.add_argument("--threads", type=int, default=THREADS, help="DuckDB threads (default: 2)")
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON on stdout
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every size in its own process, print the table, write the JSON; 1 on error or disagreement."""
    args = parse_args(argv)
    if args.size is not None:
        result = measure(args.size, sample=args.baseline_sample, repeat=args.repeat, memory_limit=args.memory_limit,
                         threads=args.threads, log=lambda m: print(f"  [{args.size:,}] {m}", file=sys.stderr))
        print(json.dumps(result))
        return 0
    sizes = list(QUICK_SIZES) if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    results = []
    for size in sizes:
        print(f"benchmarking {size:,} lines...", file=sys.stderr)
        try:
            results.append(run_child(size, sample=args.baseline_sample, repeat=args.repeat,
                                     memory_limit=args.memory_limit, threads=args.threads))
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    document = summary(results, sample=args.baseline_sample)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(format_table(results))
    print(f"targets: >= {TARGET_LINES_PER_S:,} lines/s end to end, >= {TARGET_RATIO:.0f}x the row-by-row"
          f" baseline, < {TARGET_PEAK_MB:,.0f} MB peak RSS; SQL and baseline agree within {AGREEMENT:.0e}")
    print(f"summary: {args.out}")
    if not document["agree"]:
        print("error: the SQL path and the baseline disagree on the sample", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

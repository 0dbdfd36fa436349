"""The committed sample zone: reproducible from its generator and valid under the template."""

from __future__ import annotations

import csv
import importlib.util
import io
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType

import pytest

from accounting.registry import CATEGORIES, Enterprise, parse_registry
from accounting.uscc import is_valid_uscc

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
PERIODS = [f"{y}-{m:02d}" for y in (2023, 2024) for m in range(1, 13)]

# contracts/activity-data.md, version 1.
TEMPLATE_COLUMNS = set(
    "enterprise_id period activity item quantity unit facility heat_basis ncv ncv_unit carbon_content "
    "carbon_content_unit oxidation_rate density density_unit purity sulfur_content cao_fraction mgo_fraction "
    "cao_noncarbonate_fraction mgo_noncarbonate_fraction concentration concentration_unit emission_factor "
    "emission_factor_unit evidence note".split()
)
ACCEPTED_UNITS = set(
    "t|kg|10^4 t|L|m3|Nm3|10^4 Nm3|kWh|MWh|GWh|10^4 kWh|MJ|GJ|TJ|kcal|kcal/kg|MMBtu|US_therm|US_gallon|"
    "tce|kgce|CNY|10^4 CNY|m2|万t|万Nm3|万kWh|万元|吨|吨标准煤".split("|")
)
REFUSED_UNITS = {"ton", "tons", "MT", "mt", "kt", "gal", "gallon", "therm", "万"}
ACTIVITIES = set(
    "fuel_combustion carbonate_use clinker_production purchased_electricity exported_electricity "
    "purchased_heat exported_heat production economic_output pollutant_monitored wastewater_discharge".split()
)
FUELS = set(
    "anthracite bituminous_coal lignite raw_coal washed_coal other_washed_coal briquette other_coal_products "
    "coke petroleum_coke crude_oil fuel_oil gasoline diesel kerosene lng lpg naphtha tar crude_benzene "
    "other_petroleum_products natural_gas blast_furnace_gas converter_gas coke_oven_gas refinery_dry_gas "
    "other_gas".split()
)
CARBONATES = set("CaCO3 MgCO3 Na2CO3 NaHCO3 FeCO3 MnCO3 BaCO3 Li2CO3 K2CO3 SrCO3 CaMg(CO3)2".split())
ITEMS = {
    "purchased_electricity": {"", "green_certified"},
    "economic_output": {"output_value", "value_added"},
    "pollutant_monitored": {"SO2", "NOx", "PM", "COD", "NH3-N"},
    "wastewater_discharge": {"COD", "NH3-N"},
    "clinker_production": {""},
    "exported_electricity": {""},
    "purchased_heat": {""},
    "exported_heat": {""},
}
NUMBER = re.compile(r"^\d+(\.\d{1,3})?$")
FRACTION = re.compile(r"^(\d+(\.\d+)?%|0(\.\d+)?|1)$")
# GB/T 32151.34-2024 Table C.1 defaults (NCV GJ/unit, tC/GJ, OF) for a rough CO2 estimate.
DEFAULTS = {"bituminous_coal": (19.570, 0.0261, 0.93), "natural_gas": (389.31, 0.0153, 0.99)}


def load_generator() -> ModuleType:
    """Import data/sample/generate.py (not a package module); dataclasses need it in sys.modules."""
    name = "sample_zone_generator"
    spec = importlib.util.spec_from_file_location(name, SAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


@pytest.fixture(scope="module")
def registry() -> list[Enterprise]:
    return parse_registry((SAMPLE / "enterprises.csv").read_bytes(), source="enterprises.csv")


@pytest.fixture(scope="module")
def activity() -> dict[str, list[dict[str, str]]]:
    return {path.stem: read_csv(path) for path in sorted((SAMPLE / "activity").glob("*.csv"))}


@pytest.fixture(scope="module")
def lines(activity) -> list[dict[str, str]]:
    return [line for rows in activity.values() for line in rows]


def test_the_generator_reproduces_the_committed_files_byte_for_byte(tmp_path):
    generator = load_generator()
    assert generator.main(["--out", str(tmp_path)]) == 0
    produced = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(SAMPLE) for p in SAMPLE.rglob("*") if p.is_file() and p.suffix in (".csv", ".md")
    )
    assert produced == committed
    for relative in produced:
        assert (tmp_path / relative).read_bytes() == (SAMPLE / relative).read_bytes(), relative


def test_the_sample_stays_small():
    assert sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file()) < 5_000_000


def test_the_registry_is_valid_with_at_least_30_enterprises_of_every_category(registry):
    assert len(registry) >= 30
    assert {e.category for e in registry} == set(CATEGORIES)
    assert all(is_valid_uscc(e.enterprise_id) for e in registry)
    assert {(e.province_code, e.city_code, e.zone_code) for e in registry} == {("410000", "410100", "ZZHTZ")}


def test_there_is_one_file_per_month_with_only_its_own_period(activity):
    assert list(activity) == PERIODS
    for period, rows in activity.items():
        assert rows, period
        assert {row["period"] for row in rows} == {period}


def test_every_file_uses_template_columns_only(activity):
    for period in activity:
        with (SAMPLE / "activity" / f"{period}.csv").open(encoding="utf-8") as handle:
            header = next(csv.reader(handle))
        assert set(header) <= TEMPLATE_COLUMNS
        assert {"enterprise_id", "period", "activity", "quantity", "unit"} <= set(header)


def test_every_line_belongs_to_a_registered_enterprise_and_facility(registry, lines):
    facilities = {e.enterprise_id: set(e.facilities) for e in registry}
    for line in lines:
        assert is_valid_uscc(line["enterprise_id"])
        assert line["enterprise_id"] in facilities
        if line["facility"]:
            assert line["facility"] in facilities[line["enterprise_id"]], line
    used = defaultdict(set)
    for line in lines:
        used[line["enterprise_id"]].add(line["facility"])
    for enterprise_id, declared in facilities.items():
        assert declared <= used[enterprise_id], f"{enterprise_id} declares unused facilities"


def test_quantities_are_non_negative_numbers_with_at_most_three_decimals(lines):
    for line in lines:
        assert NUMBER.fullmatch(line["quantity"]), line


def test_units_come_only_from_the_accepted_list(lines):
    units = {line["unit"] for line in lines}
    assert units <= ACCEPTED_UNITS
    assert not units & REFUSED_UNITS


def test_activities_and_items_are_codes_of_the_template(lines):
    for line in lines:
        activity, item = line["activity"], line["item"]
        assert activity in ACTIVITIES, line
        if activity == "fuel_combustion":
            assert item in FUELS, line
        elif activity == "carbonate_use":
            assert item in CARBONATES, line
        elif activity == "production":
            assert re.fullmatch(r"[a-z][a-z0-9_]*", item), line
        else:
            assert item in ITEMS[activity], line


def test_one_line_per_enterprise_period_facility_activity_and_item(lines):
    keys = Counter((x["enterprise_id"], x["period"], x["facility"], x["activity"], x["item"]) for x in lines)
    assert [key for key, count in keys.items() if count > 1] == []


def test_lines_carry_the_parameters_their_activity_needs(lines):
    for line in lines:
        activity, unit = line["activity"], line["unit"]
        if activity == "clinker_production":
            assert line["cao_fraction"] and line["mgo_fraction"], line
        if activity == "wastewater_discharge":
            assert line["concentration"] and line["concentration_unit"] == "mg/L", line
        if activity == "fuel_combustion" and unit in ("GJ", "MJ", "TJ"):
            assert line["heat_basis"] == "NCV", line
        if activity == "fuel_combustion" and unit == "L":
            assert line["density"] and line["density_unit"] == "kg/L", line
        if line["emission_factor"] or line["item"] == "green_certified":
            assert line["evidence"], line
        for column in ("oxidation_rate", "purity", "sulfur_content", "cao_fraction", "mgo_fraction"):
            assert not line[column] or FRACTION.fullmatch(line[column]), (column, line)
        for column, unit_column in (
            ("ncv", "ncv_unit"),
            ("carbon_content", "carbon_content_unit"),
            ("density", "density_unit"),
            ("emission_factor", "emission_factor_unit"),
        ):
            assert bool(line[column]) == bool(line[unit_column]), (column, line)


def test_the_sample_covers_the_variety_the_pipelines_must_handle(lines):
    units_by_activity = defaultdict(set)
    for line in lines:
        units_by_activity[line["activity"]].add(line["unit"])
    assert {"t", "10^4 Nm3", "Nm3", "万Nm3", "L", "GJ"} <= units_by_activity["fuel_combustion"]
    assert {"kWh", "MWh", "10^4 kWh"} <= units_by_activity["purchased_electricity"]
    assert {line["carbon_content_unit"] for line in lines} >= {"tC/GJ", "tC/t"}
    assert any(line["oxidation_rate"].endswith("%") for line in lines)
    assert sum(line["item"] == "green_certified" for line in lines) == 1
    supplier = [line for line in lines if line["emission_factor"]]
    assert [(x["activity"], x["emission_factor"], x["emission_factor_unit"]) for x in supplier] == [
        ("purchased_heat", "0.095", "tCO2/GJ")
    ]
    assert {line["item"] for line in lines if line["activity"] == "carbonate_use"} >= {
        "CaCO3",
        "Na2CO3",
        "CaMg(CO3)2",
    }
    assert {"exported_electricity", "exported_heat", "pollutant_monitored"} <= set(units_by_activity)


def test_enterprise_months_have_a_realistic_number_of_lines(lines):
    per_month = Counter((line["enterprise_id"], line["period"]) for line in lines)
    counts = sorted(per_month.values())
    assert counts[0] >= 7 and counts[-1] <= 18
    assert 8 <= sum(counts) / len(counts) <= 15


def direct_co2_t(lines: list[dict[str, str]]) -> dict[str, float]:
    """A rough direct CO2 estimate per enterprise and year: coal, gas and clinker only, defaults only."""
    totals: dict[str, float] = defaultdict(float)
    for line in lines:
        key = f"{line['enterprise_id']}/{line['period'][:4]}"
        quantity = float(line["quantity"])
        if line["activity"] == "clinker_production":
            cao, mgo = float(line["cao_fraction"]), float(line["mgo_fraction"])
            totals[key] += quantity * (cao * 44 / 56 + mgo * 44 / 40)
        elif line["activity"] == "fuel_combustion" and line["item"] in DEFAULTS:
            ncv, carbon, oxidation = DEFAULTS[line["item"]]
            per_unit = {"t": 1.0, "10^4 Nm3": 1.0, "万Nm3": 1.0, "Nm3": 1e-4, "GJ": 1 / ncv}[line["unit"]]
            totals[key] += quantity * per_unit * ncv * carbon * oxidation * 44 / 12
    return totals


def test_declared_key_emitters_are_well_above_the_threshold_and_others_are_not_near_it(registry, lines):
    totals = direct_co2_t(lines)
    for enterprise in registry:
        yearly = [totals.get(f"{enterprise.enterprise_id}/{year}", 0.0) for year in ("2023", "2024")]
        if enterprise.key_emitter_declared:
            assert min(yearly) > 2 * 26000, enterprise.name_en
        elif enterprise.key_emitter_declared is False:
            assert max(yearly) < 26000, enterprise.name_en


def test_the_heating_season_raises_coal_and_gas(registry, activity):
    chp = next(e for e in registry if e.sector_code == "4412" and e.key_emitter_declared)

    def coal_t(period: str) -> float:
        rows = activity[period]
        return sum(
            float(r["quantity"])
            for r in rows
            if r["enterprise_id"] == chp.enterprise_id and r["item"] == "bituminous_coal"
        )

    for year in ("2023", "2024"):
        assert coal_t(f"{year}-01") > 1.3 * coal_t(f"{year}-05")
        assert 20000 <= coal_t(f"{year}-05") <= 40000
        assert 20000 <= coal_t(f"{year}-01") <= 42000

"""Report models: the rounding rule, the GB/T 32151 tables from result lines, the zone and compliance reports,
and the explanation of the activity template."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounting.activity import ACTIVITIES, COLUMNS, REQUIRED
from accounting.activity_template import PARAMETER_UNITS, QUANTITY_UNITS, describe_columns
from accounting.labels import ACTIVITY_LABELS, CATEGORY_LABELS, Label, fuel_labels
from accounting.reports import (
    Column,
    Entity,
    Table,
    ZoneTargets,
    compliance_report,
    enterprise_ghg_report,
    format_cell,
    months_text,
    zone_report,
)
from accounting.schemas import CATEGORIES
from accounting.units import parse_unit

ENTERPRISE = "914101022286058318"


@pytest.mark.parametrize(("value", "kind", "shown"), [
    (0.5, "emission", "1"), (2.5, "emission", "3"), (-0.4, "emission", "0"), (1234567.49, "emission", "1,234,567"),
    (0.125, "energy", "0.13"), (15812.4600, "quantity", "15,812.46"), (7.0, "quantity", "7"),
    (0.0000004, "factor", "0"), (0.02631, "factor", "0.02631"), (2.81559853, "intensity", "2.8156"),
    (Decimal("1.3069"), "share", "130.7%"), (-5, "fen", "-0.05"), (26000, "tonnes", "26,000"),
    (None, "emission", "—"), (float("nan"), "energy", "—"), (False, "flag", "否 no"), ("x", "text", "x"),
])
def test_numbers_are_rounded_half_up_only_when_shown_by_the_written_rule(value: object, kind: str,
                                                                         shown: str) -> None:
    assert format_cell(value, kind) == shown  # type: ignore[arg-type]


def test_every_code_a_report_shows_has_a_chinese_and_an_english_name() -> None:
    assert set(ACTIVITY_LABELS) == set(ACTIVITIES) and set(CATEGORY_LABELS) >= set(CATEGORIES)
    for label in [*ACTIVITY_LABELS.values(), *CATEGORY_LABELS.values(), *fuel_labels().values()]:
        assert label.zh and label.en and label.zh != label.en


def test_a_table_refuses_two_columns_with_the_same_header() -> None:
    unit = Column(key="unit", label=Label("单位", "unit"))
    with pytest.raises(ValueError, match="header of its own"):
        Table(key="t", title=Label("表", "table"), columns=(unit, Column(key="ncv_unit", label=unit.label)), rows=())


def test_months_are_shown_as_ranges() -> None:
    assert months_text([f"2024-{m:02d}" for m in (1, 2, 3, 7, 9, 10)]) == "1-3, 7, 9-10"
    assert months_text(["2024"]) == "全年 year"


def _line(category: str, period: str, tco2e: float, **fields: object) -> dict[str, object]:
    return {"category": category, "period": period, "tco2e": tco2e, "co2_t": tco2e, "edition": "2026.1",
            "run_id": "run-1", "unit_canonical": "t", **fields}


DIESEL = {"item": "diesel", "ncv_used": 42.652, "ncv_source": "cn.c1.diesel.ncv", "carbon_content_used": 0.0202,
          "carbon_content_unit_used": "tC/GJ", "carbon_content_source": "cn.c1.diesel.cc",
          "oxidation_rate_used": 0.98, "oxidation_rate_source": "cn.c1.diesel.of"}
LINES = [
    _line("combustion", "2024-01", 30.0, quantity_canonical=10.0, heat_gj=426.52, **DIESEL),
    _line("combustion", "2024-02", 31.0, quantity_canonical=10.3, heat_gj=439.3, **DIESEL),
    _line("combustion", "2024-02", 5.0, quantity_canonical=2.0, heat_gj=80.0, **{**DIESEL, "ncv_used": 40.0,
                                                                                 "ncv_source": "measured"}),
    _line("process", "2024-01", 44.0, item="CaCO3", quantity_canonical=100.0, purity_used=1.0,
          purity_source="default", factor_used=0.44, factor_unit_used="tCO2/t", factor_source="cn.c2.caco3.co2"),
    _line("purchased_electricity", "2024-01", 53.06, item="", quantity_canonical=100.0, unit_canonical="MWh",
          factor_used=0.5306, factor_unit_used="tCO2/MWh", factor_source="cn.grid.national.2023", factor_year=2023,
          energy_tce=12.29),
    _line("exported_heat", "2024-02", 11.0, item="", quantity_canonical=100.0, unit_canonical="GJ",
          factor_used=0.11, factor_unit_used="tCO2/GJ", factor_source="cn.c3.heat.co2", energy_tce=-3.41),
]
BALANCE = {"period": "2024", "combustion_tco2e": 66.0, "process_tco2e": 44.0, "purchased_electricity_tco2e": 53.06,
           "purchased_heat_tco2e": 0.0, "exported_electricity_tco2e": 0.0, "exported_heat_tco2e": 11.0,
           "total_excl_indirect_tco2e": 110.0, "total_incl_indirect_tco2e": 152.06, "scope1_tco2e": 110.0,
           "scope2_tco2e": 53.06, "exported_tco2e": 11.0, "net_tco2e": 152.06, "energy_tce": 50.0,
           "energy_input_tce": 53.41, "edition": "2026.1", "run_id": "publish-1", "ruleset": "cn", "gwp_set": "AR5",
           "grid_region": "national", "products": [{"product": "cement", "output": 10.0, "unit": "t",
                                                    "tco2e_per_unit": 15.206}]}


def test_combustion_rows_keep_each_fuels_parameter_sets_together() -> None:
    coal = {**DIESEL, "item": "bituminous_coal", "ncv_source": "measured"}
    lines = [_line("combustion", "2024-01", 10.0, quantity_canonical=5.0, heat_gj=100.0, **{**coal, "ncv_used": 20.1}),
             _line("combustion", "2024-02", 3.0, quantity_canonical=1.0, heat_gj=42.0, **DIESEL),
             _line("combustion", "2024-03", 11.0, quantity_canonical=5.0, heat_gj=105.0, **{**coal, "ncv_used": 21.0})]
    report = enterprise_ghg_report(entity=Entity.from_row(ENTERPRISE, {"name": "热电厂"}), year=2024,
                                   balance={**BALANCE, "combustion_tco2e": 24.0}, lines=lines, factors=[])
    assert [(r["item"].split()[-1], r["months"]) for r in report.table("combustion").rows] == [
        ("coal", "1"), ("coal", "3"), ("diesel", "2")]


def test_the_enterprise_report_lays_out_sources_with_their_factors_and_the_balance_totals() -> None:
    report = enterprise_ghg_report(entity=Entity.from_row(ENTERPRISE, {"name": "热电厂"}), year=2024, balance=BALANCE,
                                   lines=LINES, factors=[{"factor_id": "cn.c1.diesel.ncv", "value": 42.652}])
    assert report.file_stem == f"ghg-{ENTERPRISE}-2024"
    assert report.totals["total_incl_indirect_tco2e"] == 152.06 and report.totals["total_excl_indirect_tco2e"] == 110.0
    summary = {row["source"]: row["tco2e"] for row in report.table("summary").rows}
    assert summary[CATEGORY_LABELS["combustion"].both()] == 66.0
    combustion = report.table("combustion")
    # the default-factor months are one row (January and February), the measured NCV another
    assert [(r["months"], r["quantity"], r["sources"]) for r in combustion.rows] == [
        ("1-2", 20.3, "cn.c1.diesel.ncv; cn.c1.diesel.cc; cn.c1.diesel.of"),
        ("2", 2.0, "measured; cn.c1.diesel.cc; cn.c1.diesel.of")]
    assert combustion.totals[0]["tco2e"] == pytest.approx(BALANCE["combustion_tco2e"])
    assert combustion.rows[0]["ncv_unit"] == "GJ/t" and combustion.rows[0]["item"] == "柴油 diesel"
    energy = report.table("electricity_heat").rows
    assert [(r["factor_source"], r["factor_year"], r["tco2e"]) for r in energy] == [
        ("cn.grid.national.2023", "2023", 53.06), ("cn.c3.heat.co2", None, 11.0)]  # exported: positive, deducted
    assert report.table("process").rows[0]["factor"] == 0.44
    assert report.provenance.editions == ("2026.1",) and report.provenance.run_ids == ("publish-1", "run-1")
    assert "2026.1" in report.provenance.footer() and "run-1" in report.provenance.footer()


def _indicator(period: str, sector: str, category: str, net: float, value_added: float, **extra: float) -> dict:
    return {"period": period, "sector_code": sector, "category": category, "enterprise_count": 2,
            "scope1_tco2e": net, "scope2_tco2e": 0.0, "exported_tco2e": 0.0, "net_tco2e": net, "energy_tce": net / 2,
            "output_value_10k_cny": value_added * 4, "value_added_10k_cny": value_added, **extra}


def test_a_year_of_the_zone_divides_its_totals_and_compares_them_with_the_targets() -> None:
    indicators = [
        _indicator("2024-01", "all", "all", 300.0, 100.0, tco2e_per_10k_cny_value_added=3.0),
        _indicator("2024-02", "all", "all", 100.0, 100.0),
        _indicator("2024-01", "3011", "manufacturer", 300.0, 100.0),
        _indicator("2024-02", "3011", "manufacturer", 100.0, 100.0),
    ]
    balances = [{"enterprise_id": "A", "scope1_tco2e": 10.0, "scope2_tco2e": 0.0, "edition": "2026.1", "run_id": "r"},
                {"enterprise_id": "B", "scope1_tco2e": 90.0, "scope2_tco2e": 5.0, "edition": "2026.1", "run_id": "r"}]
    registry = [{"enterprise_id": "B", "name": "水泥厂", "sector_code": "3011", "sector_name": "水泥制造"}]
    report = zone_report(period="2024", indicators=indicators, registry=registry,
                         balances=balances, key_emitters=["A", "B"],
                         targets=ZoneTargets(tco2e_per_10k_cny_value_added=Decimal("2.5")))
    assert report.totals["net_tco2e"] == 400.0 and report.totals["tco2e_per_10k_cny_value_added"] == 2.0
    emissions_target, energy_target = report.table("targets").rows
    assert emissions_target["share"] == Decimal("0.8") and emissions_target["met"] is True
    assert energy_target["target"] is None and energy_target["met"] is None  # no target set
    assert [r["enterprise_id"] for r in report.table("key_emitters").rows] == ["B", "A"]
    assert report.table("by_sector").rows[0]["sector_name"] == "水泥制造"
    assert report.table("key_emitters").rows[0]["name"] == "水泥厂"
    assert [r["period"] for r in report.table("by_month").rows] == ["2024-01", "2024-02"]
    month = zone_report(period="2024-01", indicators=indicators[::2], registry=[], balances=balances,
                        key_emitters=[], targets=ZoneTargets())
    assert month.totals["tco2e_per_10k_cny_value_added"] == 3.0  # a single month keeps its published intensity
    assert "by_month" not in [t.key for t in month.tables]


def test_the_compliance_report_lists_every_enterprise_and_adds_up_the_locked_ones() -> None:
    locked = {"enterprise_id": "A", "name": "甲", "status": "deficit", "obligation_t": 1001,
              "verified_emissions": {"net_tco2e": 1000.4, "version": 1},
              "free_allocation": {"total_t": 900}, "paid_allocation": {"quantity_t": 50},
              "surrendered": {"allowances_t": 800, "ccer_t": 50, "total_t": 850}, "shortfall_t": 151,
              "net_position_t": -1, "penalty_estimate_fen": None}
    open_year = {"enterprise_id": "B", "name": "乙", "status": "not_locked", "obligation_t": None,
                 "verified_emissions": None, "free_allocation": {"total_t": 10}, "paid_allocation": {"quantity_t": 0},
                 "surrendered": {"allowances_t": 0, "ccer_t": 0, "total_t": 0}, "shortfall_t": None}
    report = compliance_report(year=2024, zone={"deadline": "2025-12-31", "deadline_passed": False, "closed": False},
                               views=[open_year, locked])
    rows = report.table("enterprises").rows
    assert [r["enterprise_id"] for r in rows] == ["A", "B"] and rows[0]["allocation_t"] == 950
    assert report.totals == {"verified_tco2e": 1000.4, "obligation_t": 1001, "allocation_t": 960,
                             "surrendered_t": 850, "shortfall_t": 151, "penalty_estimate_fen": 0}


def test_every_template_column_is_explained_in_both_languages_with_units_that_parse() -> None:
    described = describe_columns()
    assert [d.name for d in described] == list(COLUMNS)
    for d in described:
        assert d.meaning.zh and d.meaning.en and d.requirement.zh and d.requirement.en, d.name
        assert (d.requirement.en == "required") == (d.name in REQUIRED)
    for unit in [*QUANTITY_UNITS, *(u for units in PARAMETER_UNITS.values() for u in units)]:
        parse_unit(unit)
    item = next(d for d in described if d.name == "item")
    assert all(code in item.allowed for code in fuel_labels())

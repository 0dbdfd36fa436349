"""The rules of ``accounting.quality`` with hand numbers: every plausibility rule, completeness, factor checks."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from accounting import quality
from accounting.factors import load_library
from accounting.quality import (
    CARBON_CONTENT,
    CARBON_CONTENT_MASS,
    CARBON_INTENSITY,
    EMISSIONS_JUMP,
    ENERGY_INTENSITY,
    ENERGY_JUMP,
    EXPORTS,
    HOLD,
    NCV,
    OXIDATION_RATE,
    WARN,
    QualityConfigError,
)

CONFIG = quality.load_quality_config()
RULES = {r.name: r for r in quality.plausibility_rules(CONFIG)}


def judge(rule: str, **row: object) -> quality.Finding | None:
    return quality.finding(RULES[rule], {"enterprise_id": "E1", "period": "2024-03", **row}, CONFIG)


def severity_of(rule: str, **row: object) -> str | None:
    found = judge(rule, **row)
    return None if found is None else found.severity


# --- configuration ----------------------------------------------------------------------------------


def test_the_packaged_rules_file_loads_with_the_documented_thresholds() -> None:
    assert (CONFIG.jump_threshold, CONFIG.jump_hold_threshold, CONFIG.far_factor) == (3.0, 10.0, 10.0)
    assert CONFIG.carbon_content == quality.Band(low=0.012, high=0.075)
    assert CONFIG.oxidation_rate == quality.Band(low=0.8, high=1.0, low_inclusive=False)
    assert CONFIG.ratio_tolerance == 0.01 and CONFIG.cn_ipcc_tolerance == 0.02
    assert all(s.rationale for s in CONFIG.sectors) and all(r.source for r in CONFIG.ncv_ranges)


def test_a_rules_file_without_a_default_sector_is_refused(tmp_path: Path) -> None:
    text = (Path(quality.__file__).parents[1] / "factors" / "quality.toml").read_text(encoding="utf-8")
    broken = tmp_path / "quality.toml"
    broken.write_text(text.replace('sector = "*"', 'sector = "99"'), encoding="utf-8")
    with pytest.raises(QualityConfigError, match="default entry"):
        quality.load_quality_config(broken)


def test_a_rules_file_with_an_inverted_range_is_refused(tmp_path: Path) -> None:
    text = (Path(quality.__file__).parents[1] / "factors" / "quality.toml").read_text(encoding="utf-8")
    broken = tmp_path / "quality.toml"
    broken.write_text(text.replace("range = [8.0, 32.0]", "range = [32.0, 8.0]"), encoding="utf-8")
    with pytest.raises(QualityConfigError, match="not a range"):
        quality.load_quality_config(broken)


def test_sector_bands_are_found_by_the_longest_listed_prefix_else_the_default() -> None:
    assert quality.sector_range(CONFIG, "3011").sector == "3011"
    assert quality.sector_range(CONFIG, "3041").sector == "304"
    assert quality.sector_range(CONFIG, "3099").sector == "30"
    assert quality.sector_range(CONFIG, "4430").sector == "44"
    assert quality.sector_range(CONFIG, "0111").sector == "*"
    assert quality.sector_range(CONFIG, None).sector == "*"


def test_enterprise_bands_give_each_enterprise_its_sector_bands() -> None:
    bands = quality.enterprise_bands(CONFIG, [("A", "3011"), ("B", "0111")]).set_index("enterprise_id")
    cement = quality.sector_range(CONFIG, "3011").bands["tco2e_per_10k_cny_value_added"]
    assert (bands.at["A", "carbon_va_low"], bands.at["A", "carbon_va_high"]) == (cement.low, cement.high)
    assert bands.at["B", "band_sector"] == "*"
    assert set(quality.BAND_COLUMNS) <= set(bands.columns)


def test_fuel_ranges_use_the_sourced_ranges_and_thirty_percent_around_other_defaults() -> None:
    ranges = quality.fuel_ranges(CONFIG, load_library().factors()).set_index(["fuel", "ncv_unit"])
    assert (ranges.at[("bituminous_coal", "GJ/t"), "ncv_low"], ranges.at[("bituminous_coal", "GJ/t"), "ncv_high"]) \
        == (8.0, 32.0)
    assert (ranges.at[("natural_gas", "GJ/(10^4 Nm3)"), "ncv_low"],
            ranges.at[("natural_gas", "GJ/(10^4 Nm3)"), "ncv_high"]) == (320.0, 420.0)
    assert ranges.at[("diesel", "GJ/t"), "ncv_low"] == pytest.approx(42.652 * 0.7)
    assert ranges.at[("diesel", "GJ/t"), "ncv_high"] == pytest.approx(42.652 * 1.3)
    assert ranges.at[("bituminous_coal", "GJ/t"), "cc_mass_low"] == pytest.approx(8.0 * 0.012)
    assert ranges.at[("bituminous_coal", "GJ/t"), "cc_mass_high"] == pytest.approx(32.0 * 0.075)
    assert "Table C.1" in ranges.at[("diesel", "GJ/t"), "ncv_source"]


# --- intensity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (60.0, None), (1.0, None), (200.0, None),  # inside [1, 200], ends included
    (250.0, WARN), (0.5, WARN),                # outside the band
    (2000.0, WARN),                            # exactly 10 x high is still a warning
    (2000.1, HOLD), (0.09, HOLD),              # beyond 10 x the band: a unit or decimal error
])
def test_carbon_intensity_outside_the_sector_band_warns_and_far_outside_holds(value: float,
                                                                              expected: str | None) -> None:
    assert severity_of(CARBON_INTENSITY, carbon_intensity=value, carbon_low=1.0, carbon_high=200.0) == expected


def test_energy_intensity_follows_the_same_bands_logic() -> None:
    assert severity_of(ENERGY_INTENSITY, energy_intensity=5.0, energy_low=0.3, energy_high=60.0) is None
    assert severity_of(ENERGY_INTENSITY, energy_intensity=61.0, energy_low=0.3, energy_high=60.0) == WARN
    assert severity_of(ENERGY_INTENSITY, energy_intensity=6000.0, energy_low=0.3, energy_high=60.0) == HOLD


def test_an_intensity_without_economic_data_is_not_judged() -> None:
    assert judge(CARBON_INTENSITY, carbon_intensity=None, carbon_low=1.0, carbon_high=200.0) is None
    assert judge(CARBON_INTENSITY, carbon_intensity=math.nan, carbon_low=1.0, carbon_high=200.0) is None


def test_an_intensity_finding_names_its_band_and_the_largest_lines() -> None:
    lines = [{"source_file": "2024-03.csv", "row_number": 7, "tco2e": 5e6}]
    found = judge(CARBON_INTENSITY, carbon_intensity=5000.0, carbon_low=1.0, carbon_high=200.0,
                  denominator="value_added", sector_code="3011", band_sector="3011", top_lines=lines)
    assert found is not None and found.severity == HOLD and found.rule == CARBON_INTENSITY
    assert found.detail["value"] == 5000.0
    assert found.detail["expected"] == {"low": 1.0, "high": 200.0, "low_inclusive": True}
    assert found.detail["lines"] == lines and found.detail["band_sector"] == "3011"


# --- month-over-month jumps ----------------------------------------------------------------------------


@pytest.mark.parametrize(("ratio", "expected"), [
    (1.0, None), (2.9, None), (3.0, None), (1 / 3, None),  # within x3 either way (ends included)
    (3.5, WARN), (0.25, WARN), (9.99, WARN),                 # beyond x3
    (10.0, HOLD), (1000.0, HOLD), (0.1, HOLD), (0.001, HOLD),  # x10 or more either way
])
def test_emissions_jumps_beyond_three_warn_and_beyond_ten_hold(ratio: float, expected: str | None) -> None:
    assert severity_of(EMISSIONS_JUMP, emissions_ratio=ratio) == expected


def test_energy_jumps_are_judged_like_emissions_jumps() -> None:
    assert severity_of(ENERGY_JUMP, energy_ratio=4.0) == WARN
    assert severity_of(ENERGY_JUMP, energy_ratio=0.05) == HOLD


def test_a_missing_or_near_zero_previous_month_gives_no_ratio_and_no_finding() -> None:
    assert judge(EMISSIONS_JUMP, emissions_ratio=None) is None


def test_a_big_jump_that_output_followed_is_only_a_warning() -> None:
    # A heating plant starting its season: x30 emissions at an unchanged ~72 tCO2e per 10^4 CNY.
    seasonal = {"emissions_ratio": 30.35, "carbon_intensity": 71.74, "prev_carbon_intensity": 71.96,
                "carbon_low": 5.0, "carbon_high": 500.0}
    assert severity_of(EMISSIONS_JUMP, **seasonal) == WARN
    # A x1000 unit error: emissions move, value added does not, so intensity jumps as well.
    error = {**seasonal, "emissions_ratio": 1000.0, "carbon_intensity": 71_960.0}
    assert severity_of(EMISSIONS_JUMP, **error) == HOLD
    # Intensity steady but itself outside the sector band: not trusted as activity-driven.
    outside = {**seasonal, "carbon_intensity": 700.0, "prev_carbon_intensity": 690.0}
    assert severity_of(EMISSIONS_JUMP, **outside) == HOLD


def test_a_jump_finding_names_the_lines_that_changed_most() -> None:
    lines = [{"source_file": "2024-03.csv", "row_number": 12, "quantity": 3_083_820.0, "previous_quantity": 3083.82}]
    found = judge(EMISSIONS_JUMP, emissions_ratio=850.0, previous_period="2024-02", tco2e=8.5e6, prev_tco2e=1e4,
                  changed_lines=lines)
    assert found is not None and found.severity == HOLD
    assert found.detail["lines"][0]["row_number"] == 12 and found.detail["previous_period"] == "2024-02"
    assert "x850" in found.detail["message"]


# --- exports ---------------------------------------------------------------------------------------------


def test_exports_larger_than_fuel_heat_plus_purchased_heat_hold() -> None:
    # 100 MWh exported = 360 GJ, plus 500 GJ heat, against 800 GJ of fuel and 50 GJ of purchased heat.
    row = {"exported_gj": 860.0, "export_limit_gj": 850.0, "exported_electricity_gj": 360.0,
           "exported_heat_gj": 500.0, "fuel_heat_gj": 800.0, "purchased_heat_gj": 50.0,
           "export_lines": [{"source_file": "f.csv", "row_number": 9}]}
    found = judge(EXPORTS, **row)
    assert found is not None and found.severity == HOLD
    assert found.detail["fuel_heat_gj"] == 800.0
    assert found.detail["lines"] == [{"source_file": "f.csv", "row_number": 9}]
    assert judge(EXPORTS, **{**row, "exported_gj": 850.0}) is None  # equal is possible (a lossless ideal)
    assert judge(EXPORTS, **{**row, "exported_gj": None}) is None  # no exports, nothing to judge


# --- measured fuel parameters ------------------------------------------------------------------------------


def line(**values: object) -> dict[str, object]:
    return {"source_file": "2024-03.csv", "row_number": 5, "item": "bituminous_coal", **values}


def test_a_coal_ncv_given_in_kj_per_kg_numbers_is_held_and_names_its_row() -> None:
    found = judge(NCV, **line(ncv=21240.0, ncv_low=8.0, ncv_high=32.0))
    assert found is not None and found.severity == HOLD and found.rule == NCV
    assert (found.detail["source_file"], found.detail["row_number"]) == ("2024-03.csv", 5)
    assert found.detail["expected"]["low"] == 8.0 and found.detail["expected"]["high"] == 32.0
    assert judge(NCV, **line(ncv=21.24, ncv_low=8.0, ncv_high=32.0)) is None
    assert judge(NCV, **line(ncv=7.9, ncv_low=8.0, ncv_high=32.0)) is not None


def test_a_natural_gas_ncv_in_mj_per_nm3_numbers_is_held() -> None:
    gas = line(item="natural_gas", ncv_low=320.0, ncv_high=420.0)
    assert judge(NCV, **{**gas, "ncv": 389.31}) is None
    assert severity_of(NCV, **{**gas, "ncv": 38.931}) == HOLD


def test_an_ncv_without_a_range_for_its_basis_is_not_judged() -> None:
    assert judge(NCV, **line(ncv=5000.0, ncv_low=None, ncv_high=None)) is None


@pytest.mark.parametrize(("cc", "expected"), [(0.0263, None), (0.012, None), (0.075, None),
                                              (26.31, HOLD), (0.0119, HOLD), (0.0751, HOLD)])
def test_carbon_content_per_gj_outside_0_012_to_0_075_holds(cc: float, expected: str | None) -> None:
    assert severity_of(CARBON_CONTENT, **line(carbon_content_tc_per_gj=cc)) == expected


def test_carbon_content_per_tonne_is_judged_against_the_fuels_derived_range() -> None:
    bounds = {"cc_mass_low": 0.096, "cc_mass_high": 2.4}
    assert judge(CARBON_CONTENT_MASS, **line(carbon_content_tc_per_t=0.55, **bounds)) is None
    assert severity_of(CARBON_CONTENT_MASS, **line(carbon_content_tc_per_t=550.0, **bounds)) == HOLD


@pytest.mark.parametrize(("rate", "expected"), [(0.98, None), (1.0, None), (0.81, None),
                                                (0.8, HOLD), (0.098, HOLD), (1.01, HOLD)])
def test_oxidation_rate_outside_the_half_open_range_holds(rate: float, expected: str | None) -> None:
    assert severity_of(OXIDATION_RATE, **line(oxidation_rate=rate)) == expected


def test_findings_runs_every_rule_over_both_frames() -> None:
    periods = pd.DataFrame([{"enterprise_id": "E1", "period": "2024-03", "emissions_ratio": 50.0,
                             "energy_ratio": 1.0, "carbon_intensity": 60.0, "carbon_low": 1.0, "carbon_high": 200.0}])
    lines = pd.DataFrame([{**line(ncv=21240.0, ncv_low=8.0, ncv_high=32.0), "enterprise_id": "E2",
                           "period": "2024-03", "oxidation_rate": 0.5}])
    found = quality.findings(quality.plausibility_rules(CONFIG), {"periods": periods, "lines": lines}, CONFIG)
    assert sorted((f.enterprise_id, f.rule, f.severity) for f in found) == [
        ("E1", EMISSIONS_JUMP, HOLD), ("E2", NCV, HOLD), ("E2", OXIDATION_RATE, HOLD)]


# --- completeness ------------------------------------------------------------------------------------------


def test_a_month_is_due_the_day_after_its_deadline() -> None:
    assert quality.due_months(first_period="2024-01", as_of=date(2024, 2, 15), deadline_day=15) == []
    assert quality.due_months(first_period="2024-01", as_of=date(2024, 2, 16), deadline_day=15) == ["2024-01"]
    assert quality.due_months(first_period="2023-11", as_of=date(2024, 2, 1), deadline_day=15) == \
        ["2023-11", "2023-12"]
    assert quality.due_months(first_period="2024-01", as_of=date(2024, 3, 1), deadline_day=28) == ["2024-01"]


def test_missing_months_lists_each_key_emitter_with_exactly_its_missing_due_months() -> None:
    reported = [("A", "2024-01"), ("A", "2024-03"), ("B", "2024-01"), ("B", "2024-02"), ("B", "2024-03"),
                ("C", "2024-04")]
    missing = quality.missing_months(key_emitters=["B", "A", "C"], reported=reported, first_period="2024-01",
                                     as_of=date(2024, 4, 16), deadline_day=15)
    assert missing == [{"enterprise_id": "A", "missing": ["2024-02"]},
                       {"enterprise_id": "C", "missing": ["2024-01", "2024-02", "2024-03"]}]


# --- factor editions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ratio", "expected"), [
    (1000.0, "x10^3"), (0.001, "x10^-3"), (10.0, "x10^1"), (1e6 * 1.005, "x10^6"),
    (3.6, "x3.6"), (1 / 3.6, "/3.6"), (3600.0, "x3.6x10^3"), (4.1868, "x4.1868"), (1 / 4.1868, "/4.1868"),
    (0.4536, "x0.4536"), (2.2046, "x2.2046"),
    (1.0, None), (1.02, None), (0.97, None), (1.5, None), (5.0, None), (-1000.0, None),
])
def test_a_change_near_a_unit_conversion_is_named(ratio: float, expected: str | None) -> None:
    found = quality.suspected_conversion(ratio, config=CONFIG)
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.startswith(expected + ":")


def factors(*rows: tuple[str, str, str, str, float, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["factor_id", "ruleset", "parameter", "subject", "value_canonical",
                                       "unit_canonical"])


def test_a_factor_a_thousand_times_its_previous_value_is_named_with_both_values() -> None:
    old = factors(("cn.c1.coke.ncv", "cn", "ncv", "coke", 28.435, "GJ/t"),
                  ("cn.c1.coke.cc", "cn", "carbon_content", "coke", 0.0295, "tC/GJ"))
    new = factors(("cn.c1.coke.ncv", "cn", "ncv", "coke", 28435.0, "GJ/t"),
                  ("cn.c1.coke.cc", "cn", "carbon_content", "coke", 0.0296, "tC/GJ"),
                  ("cn.c1.new.ncv", "cn", "ncv", "new", 1.0, "GJ/t"))
    [found] = quality.compare_editions(new, old, config=CONFIG)
    assert found.blocking and found.factor_ids == ("cn.c1.coke.ncv",)
    assert (found.values["old_value"], found.values["new_value"]) == (28.435, 28435.0)
    assert found.values["suspected_conversion"].startswith("x10^3")
    assert "28.435" in found.message and "28435" in found.message


def test_china_and_ipcc_must_agree_within_two_percent_for_oil_and_gas() -> None:
    table = factors(("cn.diesel.cc", "cn", "carbon_content", "diesel", 0.0202, "tC/GJ"),
                    ("ipcc.diesel.co2", "ipcc2006", "co2_per_heat", "diesel", 0.0741, "tCO2/GJ"),
                    ("cn.gas.cc", "cn", "carbon_content", "natural_gas", 0.0170, "tC/GJ"),
                    ("ipcc.gas.co2", "ipcc2006", "co2_per_heat", "natural_gas", 0.0561, "tCO2/GJ"),
                    ("cn.coal.cc", "cn", "carbon_content", "anthracite", 0.0400, "tC/GJ"),
                    ("ipcc.coal.co2", "ipcc2006", "co2_per_heat", "anthracite", 0.0983, "tCO2/GJ"))
    # diesel: 0.0202 x 44/12 = 0.07407 vs 0.0741 (-0.04 %): agrees; gas: 0.06233 vs 0.0561 (+11 %): refused;
    # anthracite is coal, not compared.
    [found] = quality.cn_ipcc_agreement(table, config=CONFIG)
    assert found.check == "cn_ipcc_disagreement" and found.blocking and found.subject == "natural_gas"
    assert found.factor_ids == ("cn.gas.cc", "ipcc.gas.co2")
    assert found.values["ratio"] == pytest.approx(0.0170 * 44 / 12 / 0.0561)


def test_a_documented_known_difference_is_reported_but_blocks_only_when_it_drifts() -> None:
    documented = factors(("cn.rdg.cc", "cn", "carbon_content", "refinery_dry_gas", 0.0182, "tC/GJ"),
                         ("ipcc.rdg.co2", "ipcc2006", "co2_per_heat", "refinery_dry_gas", 0.0576, "tCO2/GJ"))
    [found] = quality.cn_ipcc_agreement(documented, config=CONFIG)
    assert found.check == "cn_ipcc_known_difference" and not found.blocking and found.values["reason"]
    drifted = documented.assign(value_canonical=[0.0220, 0.0576])
    [found] = quality.cn_ipcc_agreement(drifted, config=CONFIG)
    assert found.check == "cn_ipcc_disagreement" and found.blocking


def test_the_packaged_edition_passes_its_own_checks() -> None:
    found = quality.check_edition(load_library().factors(), None, config=CONFIG)
    assert not [f for f in found if f.blocking]
    assert {f.subject for f in found} == {"refinery_dry_gas", "petroleum_coke"}

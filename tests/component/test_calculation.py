"""Each formula against numbers worked by hand from the methodology reference (GB/T 32150 / 32151).

The expected values below are written out as arithmetic on the printed table values, so a reader can
check them with a calculator: nothing is computed by the code under test.
"""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.errors import InvalidFileError
from tests.support import calculate, library_with_edition, line_tco2e, only_line

C_TO_CO2 = 44 / 12
COAL = {"activity": "fuel_combustion", "item": "bituminous_coal", "quantity": "1000", "unit": "t"}


def test_bituminous_coal_by_mass_uses_table_c1_defaults() -> None:
    line = only_line(calculate([COAL]))
    assert line["tco2e"] == pytest.approx(1000 * 19.570 * 0.0261 * 0.93 * C_TO_CO2, rel=1e-12)
    assert line["energy_tce"] == pytest.approx(1000 * 19.570 / 29.3076, rel=1e-12)
    assert line["fallback"] == "national"
    assert line["factor_ids"] == ["cn.c1.bituminous_coal.ncv", "cn.c1.bituminous_coal.cc", "cn.c1.bituminous_coal.of"]
    assert line["edition"] == "2026.1"


def test_measured_parameters_override_defaults_field_by_field_and_say_so() -> None:
    line = only_line(calculate([{**COAL, "quantity": "100", "ncv": "20.85", "ncv_unit": "GJ/t",
                                 "oxidation_rate": "95%"}]))
    assert line["tco2e"] == pytest.approx(100 * 20.85 * 0.0261 * 0.95 * C_TO_CO2, rel=1e-12)
    assert line["parameters"]["ncv"]["source"] == "measured"
    assert line["parameters"]["oxidation_rate"]["source"] == "measured"
    assert line["parameters"]["carbon_content"]["source"] == "cn.c1.bituminous_coal.cc"
    assert line["factor_ids"] == ["cn.c1.bituminous_coal.cc"]


def test_all_parameters_measured_is_fallback_measured() -> None:
    line = only_line(calculate([{**COAL, "ncv": "5000", "ncv_unit": "kcal/kg", "carbon_content": "26.1",
                                 "carbon_content_unit": "tC/TJ", "oxidation_rate": "0.95"}]))
    assert line["tco2e"] == pytest.approx(1000 * (5000 * 4.1868e-3) * 0.0261 * 0.95 * C_TO_CO2, rel=1e-12)
    assert line["fallback"] == "measured"
    assert line["factor_ids"] == []


def test_carbon_content_per_mass_takes_the_mass_path() -> None:
    line = only_line(calculate([{**COAL, "quantity": "100", "carbon_content": "0.55", "carbon_content_unit": "tC/t"}]))
    assert line["tco2e"] == pytest.approx(100 * 0.55 * 0.93 * C_TO_CO2, rel=1e-12)


def test_one_tonne_is_1000_kg_is_a_ten_thousandth_of_10_4_t() -> None:
    spellings = (("1", "t"), ("1000", "kg"), ("0.0001", "10^4 t"), ("0.0001", "万t"), ("1", "吨"))
    values = [line_tco2e({**COAL, "quantity": q, "unit": u}) for q, u in spellings]
    assert values == pytest.approx([19.570 * 0.0261 * 0.93 * C_TO_CO2] * 5, rel=1e-12)


def test_natural_gas_by_volume_and_its_unit_spellings_agree() -> None:
    expected = 10 * 389.31 * 0.0153 * 0.99 * C_TO_CO2
    for quantity, unit in (("10", "10^4 Nm3"), ("100000", "Nm3"), ("10", "万Nm3")):
        row = {"activity": "fuel_combustion", "item": "natural_gas", "quantity": quantity, "unit": unit}
        assert line_tco2e(row) == pytest.approx(expected, rel=1e-12)


def test_liquid_volume_goes_through_density() -> None:
    row = {"activity": "fuel_combustion", "item": "diesel", "quantity": "1000", "unit": "L", "density": "0.835",
           "density_unit": "kg/L"}
    assert line_tco2e(row) == pytest.approx(0.835 * 42.652 * 0.0202 * 0.98 * C_TO_CO2, rel=1e-12)


def test_energy_quantity_on_ncv_basis_takes_the_heat_path() -> None:
    row = {"activity": "fuel_combustion", "item": "diesel", "quantity": "100", "unit": "GJ", "heat_basis": "NCV"}
    line = only_line(calculate([row]))
    assert line["tco2e"] == pytest.approx(100 * 0.0202 * 0.98 * C_TO_CO2, rel=1e-12)
    assert line["energy_tce"] == pytest.approx(100 / 29.3076, rel=1e-12)
    assert "cn.c1.diesel.ncv" not in line["factor_ids"]


def test_carbonate_with_purity_uses_the_printed_factor() -> None:
    row = {"activity": "carbonate_use", "item": "Na2CO3", "quantity": "200", "unit": "t", "purity": "98%"}
    assert line_tco2e(row) == pytest.approx(200 * 0.98 * 0.415, rel=1e-12)
    assert line_tco2e({**row, "item": "CaCO3", "purity": ""}) == pytest.approx(200 * 0.440, rel=1e-12)


def test_clinker_by_cao_and_mgo_uses_the_integer_ratios() -> None:
    row = {"activity": "clinker_production", "quantity": "1000", "unit": "t", "cao_fraction": "65%",
           "mgo_fraction": "2.5%", "cao_noncarbonate_fraction": "0.8%"}
    expected = 1000 * ((0.65 - 0.008) * 44 / 56 + 0.025 * 44 / 40)
    line = only_line(calculate([row]))
    assert line["tco2e"] == pytest.approx(expected, rel=1e-12)
    assert line["category"] == "process"


def test_one_mwh_is_1000_kwh_is_a_tenth_of_10_4_kwh() -> None:
    rows = [("1", "MWh"), ("1000", "kWh"), ("0.1", "10^4 kWh"), ("0.1", "万kWh")]
    values = [line_tco2e({"activity": "purchased_electricity", "quantity": q, "unit": u}) for q, u in rows]
    assert values == pytest.approx([0.5306] * 4, rel=1e-12)  # national factor for 2023 (the default period)


def test_electricity_takes_the_activity_year_or_the_latest_earlier_year() -> None:
    def factor(period: str, **options: str) -> tuple[float, int, str]:
        line = only_line(calculate([{"activity": "purchased_electricity", "quantity": "1", "unit": "MWh",
                                     "period": period}], **options))
        return line["tco2e"], line["factor_year"], line["fallback"]

    assert factor("2021-06") == (pytest.approx(0.5568), 2021, "national")
    assert factor("2022-06") == (pytest.approx(0.5366), 2022, "national")
    assert factor("2023-06") == (pytest.approx(0.5306), 2023, "national")
    assert factor("2024-06") == (pytest.approx(0.5306), 2023, "national")
    assert factor("2023-06", grid_region="central_china") == (pytest.approx(0.5271), 2023, "region")
    assert factor("2023-06", grid_region="henan") == (pytest.approx(0.6058), 2022, "region")
    assert factor("2026-06") == (pytest.approx(0.5306), 2023, "national")


def test_no_factor_within_the_lag_is_an_error_naming_the_row() -> None:
    with pytest.raises(InvalidFileError) as caught:
        calculate([{"activity": "purchased_electricity", "quantity": "1", "unit": "MWh", "period": "2027-01"}])
    (error,) = caught.value.errors
    assert (error.row, error.column, error.code) == (2, "period", "no_factor")
    with pytest.raises(InvalidFileError):
        calculate([{"activity": "purchased_electricity", "quantity": "1", "unit": "MWh", "period": "2020-01"}])
    one_year_lag = calculate([{"activity": "purchased_electricity", "quantity": "1", "unit": "MWh",
                               "period": "2024-01"}], max_factor_lag_years=1)
    assert only_line(one_year_lag)["factor_year"] == 2023


def test_green_and_supplier_factors_need_evidence_and_are_labelled() -> None:
    green = only_line(calculate([{"activity": "purchased_electricity", "item": "green_certified", "quantity": "50",
                                  "unit": "MWh", "evidence": "GEC-2023-0001"}]))
    assert (green["tco2e"], green["fallback"]) == (0.0, "certificate")
    heat = only_line(calculate([{"activity": "purchased_heat", "quantity": "1000", "unit": "GJ",
                                 "emission_factor": "95", "emission_factor_unit": "kgCO2/GJ",
                                 "evidence": "supplier-cert-7"}]))
    assert heat["tco2e"] == pytest.approx(95.0, rel=1e-12)
    assert heat["fallback"] == "supplier"


def test_totals_direct_indirect_exported_and_net() -> None:
    document = calculate([
        COAL,
        {"activity": "carbonate_use", "item": "CaCO3", "quantity": "100", "unit": "t"},
        {"activity": "purchased_electricity", "quantity": "2000", "unit": "MWh"},
        {"activity": "purchased_heat", "quantity": "500", "unit": "GJ"},
        {"activity": "exported_electricity", "quantity": "300", "unit": "MWh"},
        {"activity": "exported_heat", "quantity": "100", "unit": "GJ"},
        {"activity": "economic_output", "item": "value_added", "quantity": "1000", "unit": "万元"},
        {"activity": "production", "item": "cement", "quantity": "5000", "unit": "t"},
    ])
    (result,) = document["results"]
    totals = result["totals"]
    coal = 1000 * 19.570 * 0.0261 * 0.93 * C_TO_CO2
    scope1 = coal + 100 * 0.440
    scope2 = 2000 * 0.5306 + 500 * 0.11
    exported = 300 * 0.5306 + 100 * 0.11
    assert totals["scope1_tco2e"] == pytest.approx(scope1, rel=1e-12)
    assert totals["scope2_tco2e"] == pytest.approx(scope2, rel=1e-12)
    assert totals["exported_tco2e"] == pytest.approx(exported, rel=1e-12)
    assert totals["net_tco2e"] == pytest.approx(scope1 + scope2 - exported, rel=1e-12)
    assert totals["total_excl_indirect_tco2e"] == pytest.approx(scope1, rel=1e-12)
    assert totals["total_incl_indirect_tco2e"] == pytest.approx(scope1 + scope2 - exported, rel=1e-12)
    energy = 1000 * 19.570 / 29.3076 + 2000 * 0.1229 + 500 / 29.3076 - 300 * 0.1229 - 100 / 29.3076
    assert totals["energy_tce"] == pytest.approx(energy, rel=1e-12)
    energy_input = 1000 * 19.570 / 29.3076 + 2000 * 0.1229 + 500 / 29.3076
    assert totals["energy_input_tce"] == pytest.approx(energy_input, rel=1e-12)
    assert totals["tco2e_per_10k_cny_value_added"] == pytest.approx((scope1 + scope2 - exported) / 1000, rel=1e-12)
    (product,) = result["products"]
    assert product["product"] == "cement"
    assert product["tco2e_per_unit"] == pytest.approx((scope1 + scope2 - exported) / 5000, rel=1e-12)


def test_pollutants_monitored_and_from_wastewater() -> None:
    document = calculate([
        {"activity": "pollutant_monitored", "item": "SO2", "quantity": "850", "unit": "kg"},
        {"activity": "wastewater_discharge", "item": "COD", "quantity": "12000", "unit": "m3",
         "concentration": "38", "concentration_unit": "mg/L"},
    ])
    totals = document["results"][0]["totals"]
    assert totals["so2_t"] == pytest.approx(0.85, rel=1e-12)
    assert totals["cod_t"] == pytest.approx(12000 * 38e-6, rel=1e-12)
    assert totals["net_tco2e"] == 0.0


def test_by_year_sums_the_months_of_a_year() -> None:
    rows = [{**COAL, "period": f"2023-{m:02d}"} for m in (1, 2, 3)]
    monthly = calculate(rows)
    yearly = calculate(rows, by="year")
    assert [r["period"] for r in monthly["results"]] == ["2023-01", "2023-02", "2023-03"]
    (year,) = yearly["results"]
    assert year["period"] == "2023"
    assert year["totals"]["net_tco2e"] == pytest.approx(sum(r["totals"]["net_tco2e"] for r in monthly["results"]))


def test_ipcc_ruleset_cross_check_adds_ch4_and_n2o_with_the_gwp_set() -> None:
    row = {"activity": "fuel_combustion", "item": "diesel", "quantity": "100", "unit": "GJ", "heat_basis": "NCV"}
    line = only_line(calculate([row], ruleset="ipcc2006", gwp_set="AR5"))
    assert line["co2_t"] == pytest.approx(100 * 74100e-6, rel=1e-12)
    assert line["tco2e"] == pytest.approx(100 * 74100e-6 + 100 * 3e-6 * 28 + 100 * 0.6e-6 * 265, rel=1e-12)
    assert line["gwp_set"] == "AR5"
    ar4 = only_line(calculate([row], ruleset="ipcc2006", gwp_set="AR4"))
    assert ar4["tco2e"] == pytest.approx(100 * 74100e-6 + 100 * 3e-6 * 25 + 100 * 0.6e-6 * 298, rel=1e-12)


@settings(max_examples=10, deadline=None)
@given(quantity=st.decimals(min_value="0.001", max_value="1000000", places=3), factor=st.integers(2, 9))
def test_emissions_are_linear_in_quantity(quantity: object, factor: int) -> None:
    base = line_tco2e({**COAL, "quantity": str(quantity)})
    scaled = line_tco2e({**COAL, "quantity": str(quantity * factor)})  # type: ignore[operator]
    assert scaled == pytest.approx(base * factor, rel=1e-12)


def test_a_pinned_edition_reproduces_old_results_after_a_new_edition(tmp_path: Path) -> None:
    old = calculate([COAL])
    library = library_with_edition(tmp_path / "factors", old=b",19.570,", new=b",19.600,",
                                   description="test correction")
    assert library.latest() == "2027.1"
    pinned = calculate([COAL], library=library, edition="2026.1")
    latest = calculate([COAL], library=library)
    assert only_line(pinned)["tco2e"] == only_line(old)["tco2e"]
    assert only_line(pinned)["edition"] == "2026.1"
    assert only_line(latest)["tco2e"] == pytest.approx(1000 * 19.600 * 0.0261 * 0.93 * C_TO_CO2, rel=1e-12)

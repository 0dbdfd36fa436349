"""Every unit string of the activity-data contract, accepted and refused."""

import pytest

from accounting.errors import AmbiguousUnitError, UnitError
from accounting.units import dimension_name, multiplier, parse_unit

ACCEPTED = {
    # unit string of the contract: (reference unit, value in it)
    "t": ("kg", 1000.0), "kg": ("t", 0.001), "10^4 t": ("t", 1e4), "L": ("m3", 0.001), "m3": ("L", 1000.0),
    "Nm3": ("10^4 Nm3", 1e-4), "10^4 Nm3": ("Nm3", 1e4), "kWh": ("MWh", 0.001), "MWh": ("kWh", 1000.0),
    "GWh": ("MWh", 1000.0), "10^4 kWh": ("MWh", 10.0), "MJ": ("GJ", 0.001), "GJ": ("MJ", 1000.0),
    "TJ": ("GJ", 1000.0), "kcal": ("J", 4186.8), "kcal/kg": ("GJ/t", 0.0041868),
    "MMBtu": ("GJ", 1.055056), "US_therm": ("MJ", 105.4804), "US_gallon": ("L", 3.785411784),
    "tce": ("GJ", 29.3076), "kgce": ("MJ", 29.3076), "CNY": ("10^4 CNY", 1e-4), "10^4 CNY": ("CNY", 1e4),
    "m2": ("m2", 1.0),
    "万t": ("t", 1e4), "万Nm3": ("Nm3", 1e4), "万kWh": ("MWh", 10.0), "万元": ("CNY", 1e4), "吨": ("t", 1.0),
    "吨标准煤": ("GJ", 29.3076),
}

REFUSED = {
    "ton": "short_ton", "tons": "short_ton", "MT": "10^6 t", "mt": "10^6 t", "kt": "10^3 t",
    "gal": "US_gallon", "gallon": "US_gallon", "therm": "US_therm", "万": "万t",
}


@pytest.mark.parametrize(("unit", "expected"), ACCEPTED.items())
def test_every_contract_unit_parses_to_its_value(unit: str, expected: tuple[str, float]) -> None:
    reference, value = expected
    assert multiplier(unit, reference) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(("unit", "fix"), REFUSED.items())
def test_ambiguous_units_are_refused_naming_the_fix(unit: str, fix: str) -> None:
    with pytest.raises(AmbiguousUnitError) as caught:
        parse_unit(unit)
    assert fix in str(caught.value)
    assert caught.value.code == "ambiguous_unit"


def test_ton_message_names_metric_tonne_and_short_ton() -> None:
    with pytest.raises(AmbiguousUnitError, match=r"use t \(metric tonne\) or short_ton"):
        parse_unit("ton")


def test_a_refused_unit_inside_a_compound_is_refused_too() -> None:
    with pytest.raises(AmbiguousUnitError):
        parse_unit("kg/ton")


def test_kcal_is_the_international_table_calorie() -> None:
    assert multiplier("kcal", "kJ") == pytest.approx(4.1868, rel=1e-15)
    assert multiplier("7000 kcal", "kgce") == pytest.approx(1.0, rel=1e-12)


def test_co2_cannot_be_added_to_plain_mass_or_co2e() -> None:
    assert dimension_name("tCO2") != dimension_name("t")
    with pytest.raises(UnitError):
        multiplier("tCO2", "t")
    with pytest.raises(UnitError):
        multiplier("tCO2", "tCO2e")
    with pytest.raises(UnitError):
        multiplier("tC", "tCO2")


def test_normal_gas_volume_never_converts_to_a_working_volume() -> None:
    with pytest.raises(UnitError):
        multiplier("Nm3", "m3")


def test_money_never_converts_to_anything_physical() -> None:
    with pytest.raises(UnitError):
        multiplier("CNY", "kg")


def test_unknown_units_are_refused() -> None:
    with pytest.raises(UnitError) as caught:
        parse_unit("widgets")
    assert caught.value.code == "unknown_unit"


@pytest.mark.parametrize("text", ["", "  ", "kg*", "t/0", "2"])
def test_malformed_unit_text_is_refused(text: str) -> None:
    with pytest.raises(UnitError):
        parse_unit(text)


def test_factor_units_convert() -> None:
    assert multiplier("kgCO2/kWh", "tCO2/MWh") == pytest.approx(1.0)
    assert multiplier("tC/TJ", "tC/GJ") == pytest.approx(0.001)
    assert multiplier("mg/L", "t/m3") == pytest.approx(1e-6)
    assert multiplier("kg/L", "t/L") == pytest.approx(0.001)

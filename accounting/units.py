"""The service's one pint registry, and the rules for reading unit strings from enterprises.

Project units are data (``factors/units.txt``). This module adds what cannot be data: spellings that
pint would read as something nobody means (``ton`` is a short ton, ``MT`` a megatesla, ``mt`` a
millitonne, ``kt`` a knot) are refused with the spelling to use instead; ``kcal`` is read as the
international-table calorie of GB/T 2589 (4.1868 J), not pint's thermochemical one; the Chinese
forms of the template (万t, 吨, 吨标准煤, 万元...) are aliases.

Conversion happens once per distinct unit string (``multiplier``), never once per row.
"""

from __future__ import annotations

import re
import threading
from functools import cache
from importlib.resources import files

import pint

from accounting.errors import AmbiguousUnitError, UnitError

#: Spellings refused everywhere, with the unambiguous spelling to use instead.
REFUSED_UNITS: dict[str, str] = {
    "ton": "t (metric tonne) or short_ton",
    "tons": "t (metric tonne) or short_ton",
    "MT": "t (metric tonne) or Mt written as 10^6 t",
    "mt": "t (metric tonne) or Mt written as 10^6 t",
    "kt": "10^3 t (kilotonne)",
    "gal": "US_gallon or imperial_gallon",
    "gallon": "US_gallon or imperial_gallon",
    "gallons": "US_gallon or imperial_gallon",
    "therm": "US_therm or EC_therm",
    "therms": "US_therm or EC_therm",
    "万": "a unit after it, e.g. 万t, 万Nm3, 万kWh or 万元",
}

# Chinese spellings of the template, longest first so that 吨标准煤 wins over 吨.
_ALIASES: tuple[tuple[str, str], ...] = (
    ("吨标准煤", "tce"),
    ("千克标准煤", "kgce"),
    ("标准煤", "tce"),
    ("千瓦时", "kWh"),
    ("立方米", "m3"),
    ("千克", "kg"),
    ("公斤", "kg"),
    ("吨", "t"),
    ("元", "CNY"),
)
_WAN = re.compile(r"万\s*(?=\S)")
_KCAL = re.compile(r"\bkcal\b")


def _preprocess(text: str) -> str:
    for chinese, spelling in _ALIASES:
        text = text.replace(chinese, spelling)
    text = _WAN.sub("10^4 ", text)
    return _KCAL.sub("kcal_it", text)


def _build_registry() -> pint.UnitRegistry[float]:
    registry: pint.UnitRegistry[float] = pint.UnitRegistry(cache_folder=None, preprocessors=[_preprocess])
    registry.load_definitions(str(files("factors") / "units.txt"))
    return registry


_REGISTRY_LOCK = threading.Lock()


def registry() -> pint.UnitRegistry[float]:
    """The one registry of the service, built on first use.

    Why the lock: ``functools.cache`` lets two threads that miss at once both build a registry, and the
    API's first concurrent requests then mix quantities of two registries (pint refuses: "different
    registries"). The lock makes the first call build it once.
    """
    with _REGISTRY_LOCK:
        return _cached_registry()


@cache
def _cached_registry() -> pint.UnitRegistry[float]:
    return _build_registry()


def refusal_fix(text: str) -> str | None:
    """Return the spelling to use instead of ``text``, or None when ``text`` is not refused."""
    stripped = text.strip()
    if stripped in REFUSED_UNITS:
        return REFUSED_UNITS[stripped]
    for token in re.split(r"[\s*/()^·]+", stripped):
        if token in REFUSED_UNITS and token != "万":  # noqa: S105 - a unit spelling, not a password
            return REFUSED_UNITS[token]
    return None


@cache
def parse_unit(text: str) -> pint.Quantity[float]:
    """Parse a unit string into a quantity of magnitude one unit (``10^4 t`` -> 10000 t).

    >>> parse_unit("万t").to("t").magnitude
    10000
    >>> round(parse_unit("kcal").to("J").magnitude, 4)
    4186.8
    """
    if not isinstance(text, str) or not text.strip():
        raise UnitError(str(text), "unit is empty", code="missing_unit")
    fix = refusal_fix(text)
    if fix is not None:
        raise AmbiguousUnitError(text.strip(), fix)
    try:
        parsed = registry().parse_expression(text.strip())
    except Exception as err:  # noqa: BLE001 - pint raises many kinds of error on malformed text
        raise UnitError(text, f"unit '{text}' is not known", code="unknown_unit") from err
    if not isinstance(parsed, pint.Quantity) or (not parsed.units._units and text.strip() != "1"):
        raise UnitError(text, f"'{text}' is a number, not a unit", code="unknown_unit")
    if parsed.magnitude <= 0:
        raise UnitError(text, f"unit '{text}' has a non-positive scale", code="unknown_unit")
    return parsed


@cache
def multiplier(from_unit: str, to_unit: str) -> float:
    """How many ``to_unit`` one ``from_unit`` is. Raises UnitError across dimensions.

    >>> multiplier("10^4 kWh", "MWh")
    10.0
    """
    source = parse_unit(from_unit)
    target = parse_unit(to_unit)
    try:
        return float((source / target).to("dimensionless").magnitude)
    except pint.DimensionalityError as err:
        raise UnitError(
            from_unit,
            f"unit '{from_unit}' is {dimension_name(from_unit)}, expected {dimension_name(to_unit)}"
            f" (like {to_unit})",
            code="unit_dimension",
        ) from err


_DIMENSION_NAMES = {
    "[mass]": "mass",
    "[length] ** 3": "volume",
    "[length] ** 2": "area",
    "[mass] * [length] ** 2 / [time] ** 2": "energy",
    "[normal_gas_volume]": "gas volume at normal conditions",
    "[currency_cny]": "money",
    "[mass] / [length] ** 3": "concentration",
    "[length] ** 2 / [time] ** 2": "energy per mass",
}


def dimension_name(text: str) -> str:
    """A readable name of the dimension of a unit string ('mass', 'energy', ...)."""
    dims = str(parse_unit(text).dimensionality)
    return _DIMENSION_NAMES.get(dims, dims)


def has_dimension(text: str, reference_unit: str) -> bool:
    """True when ``text`` converts to ``reference_unit`` (same dimension); False also for bad units."""
    try:
        multiplier(text, reference_unit)
    except UnitError:
        return False
    return True

"""Data-quality rules: plausibility of enterprise-months and lines, completeness, factor-edition checks.

Why pure: the same rules are run by the pipeline (as Great Expectations suites built from
``plausibility_rules``, see ``pipelines.quality``), by the CLI and by the API, and tested with hand
numbers. The numbers they use (ranges, thresholds, sector bands) are data in ``factors/quality.toml``
with their source or rationale; nothing here hard-codes a range.

Plausibility works on two frames computed in SQL: one row per enterprise-period (``periods``:
intensities with their sector band, month-over-month ratios, exported and input energy) and one row
per fuel line with a measured parameter (``lines``). Each ``PlausibilityRule`` says which value must
lie between which bounds (a constant or a column of the same row); ``finding`` turns a row that
breaks a rule into a finding with its severity:

- ``hold`` (the enterprise-period cannot be approved until an officer looks at it): a measured NCV,
  carbon content or oxidation rate out of range (it enters the emission product, so the line's
  number is untrustworthy), exports larger than the energy taken in (the export deduction would
  subtract energy that cannot exist), a jump of x10 or more that output did not follow, and an
  intensity more than ``far_factor`` times outside its sector band (only a unit or decimal error gets
  that far);
- ``warn`` (listed for the reviewer, holds nothing): the rest of the jumps and intensities.

>>> band = Band(low=0.8, high=1.0, low_inclusive=False)
>>> band.contains(0.8), band.contains(0.95), band.contains(1.0)
(False, True, True)
>>> suspected_conversion(1000.0, config=load_quality_config())
'x10^3: x10^n (t<->kg, GJ<->MJ, tC/GJ<->tC/TJ, 10^4 Nm3<->Nm3, a decimal shift)'
>>> due_months(first_period="2024-01", as_of=date(2024, 3, 16), deadline_day=15)
['2024-01', '2024-02']
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd

from accounting.errors import AccountingError
from accounting.periods import is_late

HOLD = "hold"
WARN = "warn"
SEVERITIES = (HOLD, WARN)

CARBON_INTENSITY = "carbon_intensity_in_sector_range"
ENERGY_INTENSITY = "energy_intensity_in_sector_range"
EMISSIONS_JUMP = "emissions_month_over_month"
ENERGY_JUMP = "energy_month_over_month"
EXPORTS = "exports_within_energy_input"
NCV = "ncv_in_fuel_range"
CARBON_CONTENT = "carbon_content_in_fuel_range"
CARBON_CONTENT_MASS = "carbon_content_per_mass_in_fuel_range"
OXIDATION_RATE = "oxidation_rate_in_range"

#: Intensity metric names of ``factors/quality.toml``, by quantity and denominator.
INTENSITY_METRICS = {
    ("carbon", "value_added"): "tco2e_per_10k_cny_value_added",
    ("carbon", "output_value"): "tco2e_per_10k_cny_output_value",
    ("energy", "value_added"): "tce_per_10k_cny_value_added",
    ("energy", "output_value"): "tce_per_10k_cny_output_value",
}
#: Columns of the table ``enterprise_bands`` returns (besides enterprise_id, sector_code, band_sector).
BAND_COLUMNS = tuple(f"{q}_{d[:2]}_{end}" for q, d in INTENSITY_METRICS for end in ("low", "high"))
#: How many contributing lines a period-level finding names.
LISTED_LINES = 3


class QualityConfigError(AccountingError):
    """The quality rules file is malformed: a range, threshold or sector entry is missing or wrong."""

    code = "invalid_quality_config"


# --------------------------------------------------------------------------------------------------
# Configuration (factors/quality.toml)


@dataclass(frozen=True, slots=True, kw_only=True)
class Band:
    """A plausible range; the lower end may be exclusive (``(0.8, 1.0]``)."""

    low: float
    high: float
    low_inclusive: bool = True

    def contains(self, value: float) -> bool:
        above = value >= self.low if self.low_inclusive else value > self.low
        return above and value <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "low_inclusive": self.low_inclusive}


@dataclass(frozen=True, slots=True, kw_only=True)
class SectorRange:
    """Intensity bands of one GB/T 4754 sector prefix (``*`` = any sector not listed)."""

    sector: str
    name: str
    bands: Mapping[str, Band]
    rationale: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NcvRange:
    """A sourced NCV range for some fuels, in a canonical NCV unit (``GJ/t`` or ``GJ/(10^4 Nm3)``)."""

    fuels: tuple[str, ...]
    unit: str
    band: Band
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Conversion:
    factor: float
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownDifference:
    """A sourced disagreement between the China and IPCC per-GJ CO2 defaults of one fuel (CN/IPCC)."""

    fuel: str
    ratio: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityConfig:
    """Every threshold and range of the quality rules (see ``factors/quality.toml`` for the why)."""

    jump_threshold: float = 3.0
    jump_hold_threshold: float = 10.0
    near_zero_tco2e: float = 1.0
    near_zero_tce: float = 0.5
    activity_driven_intensity_ratio: float = 2.0
    far_factor: float = 10.0
    sectors: tuple[SectorRange, ...] = ()
    export_max_ratio: float = 1.0
    ncv_relative_range: float = 0.30
    ncv_relative_source: str = ""
    ncv_ranges: tuple[NcvRange, ...] = ()
    carbon_content: Band = field(default_factory=lambda: Band(low=0.012, high=0.075))
    carbon_content_source: str = ""
    oxidation_rate: Band = field(default_factory=lambda: Band(low=0.8, high=1.0, low_inclusive=False))
    oxidation_rate_source: str = ""
    ratio_tolerance: float = 0.01
    min_power: int = -9
    max_power: int = 9
    powers_of_ten_name: str = "x10^n"
    conversions: tuple[Conversion, ...] = ()
    cn_ipcc_tolerance: float = 0.02
    oil_and_gas_fuels: tuple[str, ...] = ()
    known_differences: tuple[KnownDifference, ...] = ()


def load_quality_config(path: Path | None = None) -> QualityConfig:
    """Read the quality rules (None = the packaged ``factors/quality.toml``); QualityConfigError if malformed."""
    source = Path(str(files("factors"))) / "quality.toml" if path is None else Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise QualityConfigError(f"{source.name}: cannot be read: {err}") from err
    try:
        return parse_quality_config(data)
    except (KeyError, TypeError, ValueError) as err:
        raise QualityConfigError(f"{source.name}: {err}") from err


def _band(pair: Any, *, what: str, low_inclusive: bool = True) -> Band:
    low, high = (float(v) for v in pair)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{what}: [{low}, {high}] is not a range")
    return Band(low=low, high=high, low_inclusive=low_inclusive)


def _positive(value: Any, *, what: str, above: float = 0.0) -> float:
    number = float(value)
    if not number > above:
        raise ValueError(f"{what} must be greater than {above}, got {number}")
    return number


def parse_quality_config(data: Mapping[str, Any]) -> QualityConfig:
    """The config from the parsed TOML; ValueError/KeyError name what is wrong."""
    jumps, fuel, check = data["jumps"], data["fuel_parameters"], data["factor_check"]
    sectors = tuple(
        SectorRange(sector=str(s["sector"]), name=str(s.get("name", "")), rationale=str(s.get("rationale", "")),
                    bands={m: _band(s[m], what=f"sector {s['sector']} {m}") for m in INTENSITY_METRICS.values()})
        for s in data["sector_ranges"])
    if "*" not in {s.sector for s in sectors}:
        raise ValueError("sector_ranges needs a default entry with sector = \"*\"")
    ncv_ranges = tuple(NcvRange(fuels=tuple(r["fuels"]), unit=str(r["unit"]), source=str(r["source"]),
                                band=_band(r["range"], what=f"ncv range of {r['fuels']}")) for r in fuel["ncv"])
    of_low, of_high = (float(v) for v in fuel["oxidation_rate"])
    return QualityConfig(
        jump_threshold=_positive(jumps["threshold"], what="jumps.threshold", above=1.0),
        jump_hold_threshold=_positive(jumps["hold_threshold"], what="jumps.hold_threshold",
                                      above=float(jumps["threshold"])),
        near_zero_tco2e=_positive(jumps["near_zero_tco2e"], what="jumps.near_zero_tco2e"),
        near_zero_tce=_positive(jumps["near_zero_tce"], what="jumps.near_zero_tce"),
        activity_driven_intensity_ratio=_positive(jumps["activity_driven_intensity_ratio"],
                                                  what="jumps.activity_driven_intensity_ratio", above=1.0),
        far_factor=_positive(data["intensity"]["far_factor"], what="intensity.far_factor", above=1.0),
        sectors=sectors,
        export_max_ratio=_positive(data["exports"]["max_ratio"], what="exports.max_ratio"),
        ncv_relative_range=_positive(fuel["ncv_relative_range"], what="ncv_relative_range"),
        ncv_relative_source=str(fuel["ncv_relative_source"]),
        ncv_ranges=ncv_ranges,
        carbon_content=_band(fuel["carbon_content_tc_per_gj"], what="carbon_content_tc_per_gj"),
        carbon_content_source=str(fuel["carbon_content_source"]),
        oxidation_rate=_band((of_low, of_high), what="oxidation_rate", low_inclusive=False),
        oxidation_rate_source=str(fuel["oxidation_rate_source"]),
        ratio_tolerance=_positive(check["ratio_tolerance"], what="factor_check.ratio_tolerance"),
        min_power=int(check["min_power"]), max_power=int(check["max_power"]),
        powers_of_ten_name=str(check["powers_of_ten_name"]),
        conversions=tuple(Conversion(factor=_positive(c["factor"], what="conversion factor"), name=str(c["name"]))
                          for c in check["conversions"]),
        cn_ipcc_tolerance=_positive(check["cn_ipcc_tolerance"], what="factor_check.cn_ipcc_tolerance"),
        oil_and_gas_fuels=tuple(check["oil_and_gas_fuels"]),
        known_differences=tuple(KnownDifference(fuel=str(k["fuel"]), ratio=_positive(k["ratio"], what="ratio"),
                                                reason=str(k["reason"])) for k in check.get("known_differences", [])),
    )


# --------------------------------------------------------------------------------------------------
# Range tables the SQL joins


def sector_range(config: QualityConfig, sector_code: str | None) -> SectorRange:
    """The bands of the longest listed prefix of ``sector_code`` (GB/T 4754), else the default ``*``.

    >>> config = load_quality_config()
    >>> sector_range(config, "3011").sector, sector_range(config, "3042").sector, sector_range(config, "0510").sector
    ('3011', '304', '*')
    """
    code = sector_code or ""
    listed = {s.sector: s for s in config.sectors}
    for length in range(len(code), 0, -1):
        if code[:length] in listed:
            return listed[code[:length]]
    return listed["*"]


def enterprise_bands(config: QualityConfig, registry: Iterable[tuple[str, str | None]]) -> pd.DataFrame:
    """One row per (enterprise_id, sector_code) with its sector band columns (``BAND_COLUMNS``)."""
    rows = []
    for enterprise_id, sector_code in registry:
        found = sector_range(config, sector_code)
        row: dict[str, Any] = {"enterprise_id": enterprise_id, "sector_code": sector_code, "band_sector": found.sector}
        for (quantity, denominator), metric in INTENSITY_METRICS.items():
            band = found.bands[metric]
            row[f"{quantity}_{denominator[:2]}_low"], row[f"{quantity}_{denominator[:2]}_high"] = band.low, band.high
        rows.append(row)
    columns = ["enterprise_id", "sector_code", "band_sector", *BAND_COLUMNS]
    return pd.DataFrame(rows, columns=columns).astype(dict.fromkeys(BAND_COLUMNS, "float64"))


def fuel_ranges(config: QualityConfig, factors: pd.DataFrame) -> pd.DataFrame:
    """NCV and per-mass carbon-content ranges per (fuel, NCV unit): listed ranges, else +-x % of the default.

    ``factors`` is an edition table (``FactorLibrary.factors``); its ``cn`` NCVs are the defaults.
    Columns: fuel, ncv_unit, ncv_low, ncv_high, cc_mass_low, cc_mass_high, ncv_source.
    """
    listed = {(fuel, r.unit): r for r in config.ncv_ranges for fuel in r.fuels}
    defaults = factors[(factors["ruleset"] == "cn") & (factors["parameter"] == "ncv")]
    rows: dict[tuple[str, str], tuple[float, float, str]] = {}
    for fuel, unit, value in zip(defaults["subject"], defaults["unit_canonical"], defaults["value_canonical"],
                                 strict=True):
        share = config.ncv_relative_range
        rows[(fuel, unit)] = (value * (1 - share), value * (1 + share),
                              f"{config.ncv_relative_source} (default {value:g} {unit})")
    for (fuel, unit), found in listed.items():
        rows[(fuel, unit)] = (found.band.low, found.band.high, found.source)
    cc = config.carbon_content
    return pd.DataFrame(
        [{"fuel": fuel, "ncv_unit": unit, "ncv_low": low, "ncv_high": high, "ncv_source": source,
          "cc_mass_low": low * cc.low if unit == "GJ/t" else None,
          "cc_mass_high": high * cc.high if unit == "GJ/t" else None}
         for (fuel, unit), (low, high, source) in sorted(rows.items())],
        columns=["fuel", "ncv_unit", "ncv_low", "ncv_high", "ncv_source", "cc_mass_low", "cc_mass_high"],
    ).astype({"ncv_low": "float64", "ncv_high": "float64", "cc_mass_low": "float64", "cc_mass_high": "float64"})


# --------------------------------------------------------------------------------------------------
# Plausibility rules


@dataclass(frozen=True, slots=True, kw_only=True)
class PlausibilityRule:
    """``value`` must lie between ``low`` and ``high``: each a constant, a column of the row, or None.

    ``frame`` names the frame the rule reads (``periods`` or ``lines``); a row whose value or bounds
    are missing is not checked (the rule does not apply to it).
    """

    name: str
    frame: str
    value: str
    low: str | float | None
    high: str | float | None
    low_inclusive: bool = True
    metric: str
    description: str


def plausibility_rules(config: QualityConfig) -> tuple[PlausibilityRule, ...]:
    """Every plausibility rule, with the constant bounds of ``config``."""
    jump_low, jump_high = 1.0 / config.jump_threshold, config.jump_threshold
    cc, of = config.carbon_content, config.oxidation_rate
    return (
        PlausibilityRule(name=CARBON_INTENSITY, frame="periods", value="carbon_intensity", low="carbon_low",
                         high="carbon_high", metric="gross tCO2e per 10^4 CNY (value added, else output value)",
                         description="carbon intensity within the sector band"),
        PlausibilityRule(name=ENERGY_INTENSITY, frame="periods", value="energy_intensity", low="energy_low",
                         high="energy_high", metric="gross tce per 10^4 CNY (value added, else output value)",
                         description="energy intensity within the sector band"),
        PlausibilityRule(name=EMISSIONS_JUMP, frame="periods", value="emissions_ratio", low=jump_low, high=jump_high,
                         metric="gross tCO2e (scope 1 + 2) / previous month",
                         description=f"emissions within x{config.jump_threshold:g} of the previous month"),
        PlausibilityRule(name=ENERGY_JUMP, frame="periods", value="energy_ratio", low=jump_low, high=jump_high,
                         metric="gross energy input tce / previous month",
                         description=f"energy within x{config.jump_threshold:g} of the previous month"),
        PlausibilityRule(name=EXPORTS, frame="periods", value="exported_gj", low=None, high="export_limit_gj",
                         metric="exported electricity x 3.6 + exported heat, GJ",
                         description="exports no larger than fuel heat plus purchased heat"),
        PlausibilityRule(name=NCV, frame="lines", value="ncv", low="ncv_low", high="ncv_high",
                         metric="measured NCV (GJ/t or GJ/(10^4 Nm3))", description="measured NCV in the fuel's range"),
        PlausibilityRule(name=CARBON_CONTENT, frame="lines", value="carbon_content_tc_per_gj", low=cc.low,
                         high=cc.high, metric="measured carbon content, tC/GJ",
                         description="measured carbon content per GJ in range"),
        PlausibilityRule(name=CARBON_CONTENT_MASS, frame="lines", value="carbon_content_tc_per_t",
                         low="cc_mass_low", high="cc_mass_high", metric="measured carbon content, tC/t",
                         description="measured carbon content per tonne in the fuel's range"),
        PlausibilityRule(name=OXIDATION_RATE, frame="lines", value="oxidation_rate", low=of.low, high=of.high,
                         low_inclusive=of.low_inclusive, metric="measured oxidation rate (fraction)",
                         description="measured oxidation rate in (0.8, 1.0]"),
    )


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool | str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _bound(bound: str | float | None, row: Mapping[str, Any]) -> float | None:
    if bound is None:
        return None
    return _number(row.get(bound)) if isinstance(bound, str) else float(bound)


def bounds(rule: PlausibilityRule, row: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The rule's bounds for this row (columns resolved)."""
    return _bound(rule.low, row), _bound(rule.high, row)


def violates(rule: PlausibilityRule, row: Mapping[str, Any]) -> bool:
    """True when the row's value is present and outside the rule's bounds."""
    value = _number(row.get(rule.value))
    low, high = bounds(rule, row)
    if value is None or (low is None and high is None):
        return False
    if low is not None and (value < low or (not rule.low_inclusive and value == low)):
        return True
    return high is not None and value > high


def _activity_driven(row: Mapping[str, Any], config: QualityConfig) -> bool:
    """A big jump that output followed: intensity inside its band and close to the previous month's."""
    now, before = _number(row.get("carbon_intensity")), _number(row.get("prev_carbon_intensity"))
    low, high = _number(row.get("carbon_low")), _number(row.get("carbon_high"))
    if now is None or before is None or low is None or high is None or now <= 0 or before <= 0:
        return False
    return low <= now <= high and max(now / before, before / now) <= config.activity_driven_intensity_ratio


def severity(rule: PlausibilityRule, row: Mapping[str, Any], config: QualityConfig) -> str:
    """``hold`` or ``warn`` for a row that breaks ``rule`` (see the module docstring for the choice)."""
    value = _number(row.get(rule.value))
    assert value is not None
    if rule.name in (CARBON_INTENSITY, ENERGY_INTENSITY):
        low, high = bounds(rule, row)
        far = (high is not None and value > high * config.far_factor) or (
            low is not None and value < low / config.far_factor)
        return HOLD if far else WARN
    if rule.name in (EMISSIONS_JUMP, ENERGY_JUMP):
        big = value >= config.jump_hold_threshold or value <= 1.0 / config.jump_hold_threshold
        return HOLD if big and not _activity_driven(row, config) else WARN
    return HOLD


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One broken rule on one enterprise-period; ``detail`` says what, how far, and where (file and row)."""

    enterprise_id: str
    period: str
    rule: str
    severity: str
    detail: dict[str, Any]

    def to_record(self) -> dict[str, Any]:
        return {"enterprise_id": self.enterprise_id, "period": self.period, "rule": self.rule,
                "severity": self.severity, "detail": self.detail}


_PERIOD_EXTRAS = {
    CARBON_INTENSITY: ("denominator", "economic_10k_cny", "tco2e", "sector_code", "band_sector"),
    ENERGY_INTENSITY: ("denominator", "economic_10k_cny", "energy_tce", "sector_code", "band_sector"),
    EMISSIONS_JUMP: ("previous_period", "tco2e", "prev_tco2e", "carbon_intensity", "prev_carbon_intensity"),
    ENERGY_JUMP: ("previous_period", "energy_tce", "prev_energy_tce", "carbon_intensity", "prev_carbon_intensity"),
    EXPORTS: ("exported_electricity_gj", "exported_heat_gj", "fuel_heat_gj", "purchased_heat_gj"),
}
_LINE_EXTRAS = ("item", "facility", "quantity", "unit", "ncv_unit_reported", "ncv_source")


def _plain(value: Any) -> Any:
    number = _number(value)
    if number is not None and not isinstance(value, int | bool):
        return number
    return value.item() if hasattr(value, "item") else value


def _message(rule: PlausibilityRule, value: float, low: float | None, high: float | None) -> str:
    if rule.name in (EMISSIONS_JUMP, ENERGY_JUMP):
        return f"{rule.metric} = x{value:.4g}, expected between x{low:.4g} and x{high:.4g}"
    expected = f"at most {high:.6g}" if low is None else (
        f"{'[' if rule.low_inclusive else '('}{low:.6g}, {high:.6g}]" if high is not None else f"at least {low:.6g}")
    return f"{rule.metric} = {value:.6g}, expected {expected}"


def finding(rule: PlausibilityRule, row: Mapping[str, Any], config: QualityConfig) -> Finding | None:
    """The finding for ``row`` under ``rule``, or None when the row keeps to it."""
    if not violates(rule, row):
        return None
    value = _number(row.get(rule.value))
    assert value is not None
    low, high = bounds(rule, row)
    detail: dict[str, Any] = {
        "metric": rule.metric, "value": value,
        "expected": {"low": low, "high": high, "low_inclusive": rule.low_inclusive},
        "message": _message(rule, value, low, high),
    }
    if rule.frame == "lines":
        detail.update(source_file=row.get("source_file"), row_number=_plain(row.get("row_number")))
        detail.update({k: _plain(row.get(k)) for k in _LINE_EXTRAS if row.get(k) is not None})
    else:
        detail.update({k: _plain(row.get(k)) for k in _PERIOD_EXTRAS.get(rule.name, ()) if row.get(k) is not None})
        lines = row.get("export_lines" if rule.name == EXPORTS else
                        "changed_lines" if rule.name in (EMISSIONS_JUMP, ENERGY_JUMP) else "top_lines")
        if lines is not None:
            detail["lines"] = [{k: _plain(v) for k, v in dict(line).items()} for line in list(lines)[:LISTED_LINES]]
    return Finding(enterprise_id=str(row["enterprise_id"]), period=str(row["period"]), rule=rule.name,
                   severity=severity(rule, row, config), detail=detail)


def findings(rules: Iterable[PlausibilityRule], frames: Mapping[str, pd.DataFrame],
             config: QualityConfig) -> list[Finding]:
    """Every finding of ``rules`` over the frames: the reference the Great Expectations run must agree with."""
    found = []
    for rule in rules:
        frame = frames.get(rule.frame)
        if frame is None or frame.empty or rule.value not in frame.columns:
            continue
        for row in frame.to_dict(orient="records"):
            result = finding(rule, row, config)
            if result is not None:
                found.append(result)
    return found


# --------------------------------------------------------------------------------------------------
# Completeness


def due_months(*, first_period: str, as_of: date, deadline_day: int) -> list[str]:
    """Months from ``first_period`` whose submission deadline (``deadline_day`` of the next month) has passed."""
    year, month = int(first_period[:4]), int(first_period[5:7])
    due: list[str] = []
    while True:
        period = f"{year:04d}-{month:02d}"
        if not is_late(period, today=as_of, day=deadline_day):
            return due
        due.append(period)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def missing_months(*, key_emitters: Iterable[str], reported: Iterable[tuple[str, str]], first_period: str,
                   as_of: date, deadline_day: int) -> list[dict[str, Any]]:
    """Each key emitter with the due months it has no submission in force for (only those missing some).

    >>> missing_months(key_emitters=["A", "B"], reported=[("A", "2024-01"), ("B", "2024-01"), ("B", "2024-02")],
    ...                first_period="2024-01", as_of=date(2024, 3, 16), deadline_day=15)
    [{'enterprise_id': 'A', 'missing': ['2024-02']}]
    """
    due = due_months(first_period=first_period, as_of=as_of, deadline_day=deadline_day)
    have = set(reported)
    result = []
    for enterprise_id in sorted(set(key_emitters)):
        missing = [m for m in due if (enterprise_id, m) not in have]
        if missing:
            result.append({"enterprise_id": enterprise_id, "missing": missing})
    return result


# --------------------------------------------------------------------------------------------------
# Factor editions


@dataclass(frozen=True, slots=True, kw_only=True)
class FactorFinding:
    """A factor-library problem: ``blocking`` ones refuse the edition (the check fails)."""

    check: str
    factor_ids: tuple[str, ...]
    subject: str
    message: str
    blocking: bool
    values: dict[str, Any]

    def to_record(self) -> dict[str, Any]:
        return {"check": self.check, "factor_ids": list(self.factor_ids), "subject": self.subject,
                "message": self.message, "blocking": self.blocking, **self.values}


def _candidates(config: QualityConfig) -> list[tuple[float, str]]:
    """(ratio, description) of every suspicious change: c x 10^n with c = 1 first."""
    bases = [(1.0, config.powers_of_ten_name, "")]
    bases += [(c.factor, c.name, f"x{c.factor:g}") for c in config.conversions]
    bases += [(1.0 / c.factor, f"the inverse of {c.name}", f"/{c.factor:g}") for c in config.conversions]
    found = []
    for base, name, label in bases:
        for power in range(config.min_power, config.max_power + 1):
            if base == 1.0 and power == 0:
                continue
            shift = f"x10^{power}" if power else ""
            found.append((base * 10.0**power, f"{label}{shift or ''}: {name}" if label or shift else name))
    return found


def suspected_conversion(ratio: float, *, config: QualityConfig) -> str | None:
    """The unit conversion ``ratio`` (new/old) is close to, or None (see ``factors/quality.toml``)."""
    if not ratio > 0:
        return None
    for target, description in _candidates(config):
        if abs(ratio / target - 1.0) <= config.ratio_tolerance:
            return description
    return None


def compare_editions(new: pd.DataFrame, old: pd.DataFrame, *, config: QualityConfig) -> list[FactorFinding]:
    """Every factor of ``new`` whose value changed from ``old`` (same factor_id) by a likely unit conversion."""
    before = {fid: (value, unit) for fid, value, unit in zip(old["factor_id"], old["value_canonical"],
                                                             old["unit_canonical"], strict=True)}
    found = []
    for fid, subject, value, unit in zip(new["factor_id"], new["subject"], new["value_canonical"],
                                         new["unit_canonical"], strict=True):
        if fid not in before or before[fid][0] == 0:
            continue
        old_value = float(before[fid][0])
        ratio = float(value) / old_value
        suspected = suspected_conversion(ratio, config=config)
        if suspected is None:
            continue
        found.append(FactorFinding(
            check="unit_error_suspected", factor_ids=(fid,), subject=str(subject), blocking=True,
            message=f"{fid}: {old_value:.6g} -> {float(value):.6g} {unit} (x{ratio:.6g}), likely {suspected}",
            values={"old_value": old_value, "new_value": float(value), "unit": str(unit), "ratio": ratio,
                    "suspected_conversion": suspected}))
    return found


def cn_ipcc_agreement(factors: pd.DataFrame, *, config: QualityConfig) -> list[FactorFinding]:
    """China (CC x 44/12, no oxidation) against IPCC 2006 per-GJ CO2 for oil and gas fuels.

    A fuel outside ``cn_ipcc_tolerance`` is blocking unless it is a documented known difference
    whose ratio still holds (then it is reported, not blocking).
    """
    def by_subject(ruleset: str, parameter: str) -> dict[str, tuple[str, float]]:
        part = factors[(factors["ruleset"] == ruleset) & (factors["parameter"] == parameter)]
        return {s: (fid, float(v)) for s, fid, v in zip(part["subject"], part["factor_id"], part["value_canonical"],
                                                          strict=True)}

    cn, ipcc = by_subject("cn", "carbon_content"), by_subject("ipcc2006", "co2_per_heat")
    known = {k.fuel: k for k in config.known_differences}
    found = []
    for fuel in config.oil_and_gas_fuels:
        if fuel not in cn or fuel not in ipcc:
            continue
        (cn_id, cc), (ipcc_id, co2) = cn[fuel], ipcc[fuel]
        cn_co2 = cc * 44.0 / 12.0
        ratio = cn_co2 / co2
        expected = known[fuel].ratio if fuel in known else 1.0
        holds = abs(ratio / expected - 1.0) <= config.cn_ipcc_tolerance
        if holds and fuel not in known:
            continue
        values: dict[str, Any] = {"cn_tco2_per_gj": cn_co2, "ipcc_tco2_per_gj": co2, "ratio": ratio,
                                  "expected_ratio": expected}
        if fuel in known:
            values["reason"] = known[fuel].reason
        found.append(FactorFinding(
            check="cn_ipcc_known_difference" if holds else "cn_ipcc_disagreement", factor_ids=(cn_id, ipcc_id),
            subject=fuel, blocking=not holds, values=values,
            message=(f"{fuel}: China {cc:.6g} tC/GJ x 44/12 = {cn_co2:.6g} tCO2/GJ ({cn_id}) vs IPCC {co2:.6g} "
                     f"tCO2/GJ ({ipcc_id}): ratio {ratio:.4f}, expected {expected:.4f} "
                     f"+-{config.cn_ipcc_tolerance:.0%}" + (" (documented known difference)" if holds else ""))))
    return found


def check_edition(new: pd.DataFrame, previous: pd.DataFrame | None, *, config: QualityConfig) -> list[FactorFinding]:
    """Both factor checks of an edition (the unit-change check only when there is a previous edition)."""
    found = compare_editions(new, previous, config=config) if previous is not None else []
    return found + cn_ipcc_agreement(new, config=config)

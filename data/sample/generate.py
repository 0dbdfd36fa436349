"""Generate the synthetic sample zone: a registry and 24 monthly activity files (2023-01 to 2024-12).

Run ``python data/sample/generate.py [--out DIR]`` (default: this folder). The output is fully
determined by the seed below: no wall clock, no environment, only ``random.random()``-based draws
and IEEE arithmetic, so two runs on any platform give byte-identical files (a test checks this
against the committed files).

The zone is fictional but shaped like the Zhengzhou high-tech industrial zone (郑州高新技术产业
开发区): a coal-fired CHP plant, a gas-fired heating plant, a gas distributed energy station, a
district-cooling company, a cement plant with two clinker lines, float and special glass,
superhard materials, sensors and electronics, equipment makers and five construction projects.
Magnitudes follow the methodology reference (coal 20-40 kt a month at the CHP plant, clinker
50-80 kt a month at the cement plant), with a heating season (Nov-Mar), summer cooling load,
the Spring Festival dip and the winter off-peak shutdown of cement kilns (错峰生产).
"""

from __future__ import annotations

import argparse
import calendar
import csv
import io
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from accounting.activity import COLUMNS
from accounting.registry import registry_columns
from accounting.uscc import make_uscc

SEED = 20230101
ZONE_CODE = "ZZHTZ"
PROVINCE_CODE = "410000"  # 河南省
CITY_CODE = "410100"  # 郑州市
COUNTY_CODE = "410102"  # 中原区 (the zone's statistical parent district in this sample)
PERIODS: tuple[str, ...] = tuple(f"{y}-{m:02d}" for y in (2023, 2024) for m in range(1, 13))

#: Activity-template columns in contract order; a file keeps those that some line uses.
TEMPLATE_COLUMNS = COLUMNS

#: Share of full heating load by month: the Zhengzhou heating season runs 15 Nov - 15 Mar.
HEATING = {1: 1.0, 2: 0.85, 3: 0.45, 11: 0.5, 12: 0.95}
#: Share of full cooling load by month.
COOLING = {5: 0.15, 6: 0.6, 7: 1.0, 8: 0.95, 9: 0.4}
#: Manufacturing activity around the Spring Festival (22 Jan 2023, 10 Feb 2024).
FESTIVAL = {"2023-01": 0.8, "2023-02": 0.93, "2024-01": 0.96, "2024-02": 0.78}
#: Availability of cement kilns: winter off-peak shutdown in Henan (错峰生产), Jan-Feb mostly stopped.
KILN_AVAILABILITY = {1: 0.25, 2: 0.15, 3: 0.7, 11: 0.9, 12: 0.6}
#: Cement demand by month (construction season).
CEMENT_DEMAND = {1: 0.45, 2: 0.35, 3: 0.85, 7: 0.85, 8: 0.85, 9: 1.05, 10: 1.05, 11: 1.05, 12: 0.8}


# ---------------------------------------------------------------------------------------------
# Small helpers


def num(value: float, decimals: int = 3) -> str:
    """Format a non-negative number with at most ``decimals`` decimals and no trailing zeros."""
    if value < 0:
        raise ValueError(f"negative quantity {value}")
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def jitter(rng: random.Random, spread: float) -> float:
    """A multiplicative noise factor in [1 - spread, 1 + spread]."""
    return 1.0 + rng.uniform(-spread, spread)


_ORG_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def organisation_code(rng: random.Random, *, legacy: bool) -> str:
    """A 9-character organisation code (GB 11714) with a valid check character.

    Older enterprises carry their numeric pre-2015 code; newer ones the ``MA`` series.
    """
    if legacy:
        body = str(rng.randint(1, 7)) + "".join(str(rng.randint(0, 9)) for _ in range(7))
    else:
        body = "MA" + "".join(rng.choice(_ORG_CHARS) for _ in range(6))
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return body + {10: "X", 11: "0"}.get(check, str(check))


@dataclass(frozen=True, slots=True)
class Month:
    """Calendar facts and seasonal drivers of one period."""

    period: str
    year: int
    month: int
    index: int

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def heat(self) -> float:
        return HEATING.get(self.month, 0.0)

    @property
    def cool(self) -> float:
        return COOLING.get(self.month, 0.0)

    @property
    def festival(self) -> float:
        return FESTIVAL.get(self.period, 1.0)


MONTHS: tuple[Month, ...] = tuple(
    Month(period=p, year=int(p[:4]), month=int(p[5:]), index=i) for i, p in enumerate(PERIODS)
)


@dataclass
class Lines:
    """The activity lines of one enterprise in one month, built line by line."""

    enterprise_id: str
    month: Month
    facilities: tuple[str, ...]
    rows: list[dict[str, str]] = field(default_factory=list)

    def add(
        self, activity: str, item: str, quantity: float, unit: str, *, decimals: int = 3, facility: str = "",
        **parameters: str,
    ) -> None:
        if facility and facility not in self.facilities:
            raise ValueError(f"facility {facility!r} is not declared for {self.enterprise_id}")
        row = {
            "enterprise_id": self.enterprise_id, "period": self.month.period, "activity": activity,
            "item": item, "quantity": num(quantity, decimals), "unit": unit, "facility": facility,
        }  # fmt: skip
        unknown = set(parameters) - set(TEMPLATE_COLUMNS)
        if unknown:
            raise ValueError(f"not template columns: {sorted(unknown)}")
        row.update(parameters)
        self.rows.append(row)

    def water(self, rng: random.Random, volume_m3: float, cod_mg_l: float, nh3_mg_l: float) -> None:
        """Wastewater: one volume, reported once per pollutant with its mean concentration."""
        volume = volume_m3 * jitter(rng, 0.08)
        for item, concentration in (("COD", cod_mg_l), ("NH3-N", nh3_mg_l)):
            mean = num(concentration * jitter(rng, 0.15), 1)
            self.add("wastewater_discharge", item, volume, "m3", decimals=0, concentration=mean,
                     concentration_unit="mg/L")  # fmt: skip

    def economy(self, rng: random.Random, output_wan_cny: float, value_added_ratio: float) -> None:
        """Gross output value and value added, in 10^4 CNY."""
        output = output_wan_cny * jitter(rng, 0.04)
        self.add("economic_output", "output_value", output, "10^4 CNY", decimals=2)
        self.add("economic_output", "value_added", output * value_added_ratio * jitter(rng, 0.05), "10^4 CNY",
                 decimals=2)  # fmt: skip

    def forklift_diesel(self, rng: random.Random, litres: float, facility: str = "") -> None:
        """Diesel for forklifts and yard vehicles, metered in litres at the pump."""
        self.add("fuel_combustion", "diesel", litres * jitter(rng, 0.12), "L", decimals=0, facility=facility,
                 density="0.835", density_unit="kg/L", note="厂内叉车及场内车辆")  # fmt: skip


Profile = Callable[[Lines, random.Random], None]


@dataclass(frozen=True, slots=True)
class Spec:
    """One enterprise of the sample zone and how its monthly lines are made."""

    key: str
    category: str
    sector_code: str
    sector_name: str
    name: str
    name_en: str
    facilities: tuple[str, ...]
    key_emitter_declared: str  # "true", "false" or "" (not declared)
    profile: Profile
    legacy_code: bool = False  # an older enterprise with a numeric organisation code

    @property
    def active(self) -> tuple[int, int]:
        """First and last month index with activity (construction projects start and finish)."""
        if isinstance(self.profile, Project):
            return self.profile.first, self.profile.last
        return 0, len(PERIODS) - 1


# ---------------------------------------------------------------------------------------------
# Heat and power suppliers


def chp_plant(lines: Lines, rng: random.Random) -> None:
    """Coal-fired CHP: three CFB boilers (B3 is the heating-season peak boiler), FGD with limestone."""
    m = lines.month
    coal = (23000 + 15000 * m.heat + 3500 * m.cool) * jitter(rng, 0.04)
    if m.period in ("2023-04", "2024-05"):  # annual overhaul of one boiler
        coal *= 0.9
    peak = 8000 * m.heat * jitter(rng, 0.05)
    b1 = (coal - peak) * rng.uniform(0.5, 0.56)
    b2 = coal - peak - b1
    ncv1, ncv2 = rng.uniform(19.9, 21.4), rng.uniform(19.6, 21.2)
    cc1 = rng.uniform(0.0259, 0.0268)
    carbon = (
        {"carbon_content": num(cc1, 5), "carbon_content_unit": "tC/GJ"}
        if m.month % 2
        else {"carbon_content": num(cc1 * ncv1, 4), "carbon_content_unit": "tC/t"}
    )
    sulfur = rng.uniform(0.55, 0.75)
    lines.add("fuel_combustion", "bituminous_coal", b1, "t", decimals=2, facility="B1", ncv=num(ncv1, 2),
              ncv_unit="GJ/t", oxidation_rate="98%", sulfur_content=f"{num(sulfur, 2)}%",
              **carbon)  # fmt: skip
    lines.add("fuel_combustion", "bituminous_coal", b2, "t", decimals=2, facility="B2", ncv=num(ncv2, 2),
              ncv_unit="GJ/t", oxidation_rate="0.985")  # fmt: skip
    if peak > 0:
        lines.add("fuel_combustion", "bituminous_coal", peak, "t", decimals=2, facility="B3")
    lines.add("fuel_combustion", "diesel", rng.uniform(4, 18), "t", decimals=3, note="点火及助燃用油")
    limestone = coal * sulfur / 100 * 3.28 / 0.91 * jitter(rng, 0.05)  # CaCO3/S = 100/32, Ca/S 1.05
    lines.add("carbonate_use", "CaCO3", limestone, "t", decimals=2, facility="FGD", purity="0.91",
              note="石灰石-石膏湿法脱硫")  # fmt: skip
    coal_gj = b1 * ncv1 + b2 * ncv2 + peak * 20.3
    heat = (380000 * m.heat + 42000) * jitter(rng, 0.05)
    generation = coal_gj * (0.30 - 0.08 * heat / coal_gj) / 3.6
    lines.add("production", "electricity", generation, "MWh", decimals=3)
    lines.add("production", "heat", heat * 1.02, "GJ", decimals=1)
    exported = generation * rng.uniform(0.905, 0.92)
    lines.add("exported_electricity", "", exported, "MWh", decimals=3)
    lines.add("exported_heat", "", heat, "GJ", decimals=1)
    lines.add("purchased_electricity", "", rng.uniform(120, 420), "MWh", decimals=3,
              note="停机期间启备变下网")  # fmt: skip
    so2 = coal * sulfur / 100 * 1.6 * rng.uniform(0.03, 0.05)  # 2 x 0.8 x S x (1 - desulfurisation)
    lines.add("pollutant_monitored", "SO2", so2, "t", decimals=3)
    lines.add("pollutant_monitored", "NOx", coal * rng.uniform(0.00065, 0.0009), "t", decimals=3)
    lines.add("pollutant_monitored", "PM", coal * rng.uniform(0.035, 0.06), "kg", decimals=1)
    lines.water(rng, 24000, 32, 2.4)
    lines.economy(rng, (exported * 1000 * 0.3779 + heat * 46) / 1e4, 0.21)


def gas_heating_plant(lines: Lines, rng: random.Random) -> None:
    """Gas-fired hot-water boilers HB1-HB4 for district heating; HB1 alone runs for hot water in summer."""
    m = lines.month
    total = (1080 * m.heat + 16) * jitter(rng, 0.04)
    shares = (0.3, 0.28, 0.24, 0.18) if m.heat >= 0.5 else (0.55, 0.45, 0.0, 0.0) if m.heat else (1, 0, 0, 0)
    meters = (("HB1", "10^4 Nm3"), ("HB2", "万Nm3" if m.year == 2024 else "10^4 Nm3"), ("HB3", "10^4 Nm3"),
              ("HB4", "Nm3"))  # fmt: skip
    for (facility, unit), share in zip(meters, shares, strict=True):
        if share:
            add_gas(lines, total * share * jitter(rng, 0.03), unit, facility)
    heat = total * 389.31 * rng.uniform(0.9, 0.93)
    lines.add("production", "heat", heat * 1.01, "GJ", decimals=1)
    lines.add("exported_heat", "", heat, "GJ", decimals=1)
    pumps_kwh = (1_650_000 * m.heat + 90_000) * jitter(rng, 0.05)
    if m.year == 2024:
        lines.add("purchased_electricity", "", pumps_kwh / 1e4, "10^4 kWh", decimals=3)
    else:
        lines.add("purchased_electricity", "", pumps_kwh, "kWh", decimals=0)
    lines.add("pollutant_monitored", "NOx", total * rng.uniform(0.0032, 0.0045), "t", decimals=3)
    lines.water(rng, 3000 + 9000 * m.heat, 28, 1.8)
    lines.economy(rng, heat * 52 / 1e4, 0.18)


def distributed_energy_station(lines: Lines, rng: random.Random) -> None:
    """Gas-turbine CCHP: power to the grid, heat in winter, chilled water in summer."""
    m = lines.month
    gas = (44 + 18 * m.heat + 22 * m.cool) * jitter(rng, 0.05)
    gt1 = gas * rng.uniform(0.52, 0.58)
    lines.add("fuel_combustion", "natural_gas", gt1, "10^4 Nm3", decimals=3, facility="GT1")
    lines.add("fuel_combustion", "natural_gas", (gas - gt1) * 1e4, "Nm3", decimals=0, facility="GT2")
    gas_gj = gas * 389.31
    generation = gas_gj * rng.uniform(0.33, 0.36) / 3.6
    lines.add("production", "electricity", generation, "MWh", decimals=3)
    lines.add("exported_electricity", "", generation * rng.uniform(0.93, 0.95), "MWh", decimals=3)
    if m.heat:
        heat = gas_gj * 0.42 * m.heat / (m.heat + m.cool + 0.1) * jitter(rng, 0.04)
        lines.add("production", "heat", heat, "GJ", decimals=1)
        lines.add("exported_heat", "", heat * 0.97, "GJ", decimals=1)
    if m.cool:
        lines.add("production", "cooling", gas_gj * 0.5 * m.cool * jitter(rng, 0.05), "GJ", decimals=1)
    lines.add("purchased_electricity", "", rng.uniform(25_000, 60_000), "kWh", decimals=0, note="备用电源")
    lines.add("pollutant_monitored", "NOx", gas * rng.uniform(0.011, 0.014), "t", decimals=3)
    lines.water(rng, 1800, 24, 1.5)
    lines.economy(rng, generation * 1000 * 0.56 / 1e4 + gas_gj * 0.2 * 50 / 1e4, 0.2)


def district_cooling(lines: Lines, rng: random.Random) -> None:
    """District cooling: electric chillers with ice storage, absorption chillers on CHP steam in summer."""
    m = lines.month
    base_mwh = 520 * (1.06 if m.year == 2024 else 1.0)  # data-centre load all year
    total_mwh = (base_mwh + 2300 * m.cool) * jitter(rng, 0.05)
    lines.add("purchased_electricity", "", total_mwh * 0.58, "MWh", decimals=3, facility="CS1")
    lines.add("purchased_electricity", "", total_mwh * 0.42 / 10, "10^4 kWh", decimals=3, facility="CS2")
    steam = 0.0
    if m.cool >= 0.3:
        steam = 32000 * m.cool * jitter(rng, 0.06)
        factor = {}
        if m.period == "2024-07":
            factor = {"emission_factor": "0.095", "emission_factor_unit": "tCO2/GJ",
                      "evidence": "ZZHT-RD-HF-2024-07 热电厂供热排放因子核算说明.pdf"}  # fmt: skip
        lines.add("purchased_heat", "", steam, "GJ", decimals=1, facility="CS1", **factor)
    cooling = total_mwh * 3.6 * rng.uniform(4.2, 4.8) + steam * 1.25
    lines.add("production", "cooling", cooling, "GJ", decimals=1)
    lines.water(rng, 2600 + 5200 * m.cool, 30, 1.2)
    lines.economy(rng, cooling * 38 / 1e4, 0.24)


# ---------------------------------------------------------------------------------------------
# Building materials


def cement_plant(lines: Lines, rng: random.Random) -> None:
    """Two dry-process kiln lines (L1 1300 t/d, L2 1100 t/d clinker), a cement mill and a yard."""
    m = lines.month
    availability = KILN_AVAILABILITY.get(m.month, 0.95)
    total_clinker = 0.0
    for facility, rate, maintenance in (("L1", 1300, "2023-05"), ("L2", 1100, "2024-04")):
        clinker = rate * m.days * availability * jitter(rng, 0.03) * (0.55 if m.period == maintenance else 1)
        total_clinker += clinker
        oxides = {
            "cao_fraction": num(rng.uniform(0.645, 0.662), 4),
            "mgo_fraction": num(rng.uniform(0.021, 0.029), 4),
            "cao_noncarbonate_fraction": num(rng.uniform(0.004, 0.009), 4),
        }
        if facility == "L1":
            oxides["mgo_noncarbonate_fraction"] = num(rng.uniform(0.001, 0.003), 4)
        lines.add("clinker_production", "", clinker, "t", decimals=1, facility=facility, **oxides)
        ncv = rng.uniform(22.3, 23.6)
        carbon = {}
        if facility == "L2" and m.year == 2024:
            per_mass = num(ncv * rng.uniform(0.0258, 0.0266), 4)
            carbon = {"carbon_content": per_mass, "carbon_content_unit": "tC/t"}
        lines.add("fuel_combustion", "bituminous_coal", clinker * rng.uniform(0.108, 0.118), "t", decimals=2,
                  facility=facility, ncv=num(ncv, 2), ncv_unit="GJ/t", **carbon)  # fmt: skip
    cement = 96000 * CEMENT_DEMAND.get(m.month, 1.0) * jitter(rng, 0.04)
    lines.add("production", "clinker", total_clinker, "t", decimals=1)
    lines.add("production", "cement", cement, "t", decimals=1)
    yard_diesel = rng.uniform(22, 34) * (0.6 if availability < 0.5 else 1)
    if m.month % 3 == 0:
        lines.forklift_diesel(rng, yard_diesel * 1000 / 0.835, facility="YARD")
    else:
        lines.add("fuel_combustion", "diesel", yard_diesel, "t", decimals=3, facility="YARD", note="装载机")
    mwh = (total_clinker * 56 + cement * 33) / 1000 * jitter(rng, 0.03)  # kWh per t of clinker and cement
    lines.add("purchased_electricity", "", mwh, "MWh", decimals=3)
    lines.add("pollutant_monitored", "SO2", total_clinker * rng.uniform(0.04, 0.07), "kg", decimals=1)
    lines.add("pollutant_monitored", "NOx", total_clinker * rng.uniform(0.00032, 0.0004), "t", decimals=3)
    lines.add("pollutant_monitored", "PM", total_clinker * rng.uniform(0.00002, 0.000035), "t", decimals=3)
    lines.economy(rng, cement * 365 / 1e4, 0.27)


def grinding_station(lines: Lines, rng: random.Random) -> None:
    """Cement grinding station: bought clinker, two mills, electricity-heavy."""
    m = lines.month
    cement = 48000 * CEMENT_DEMAND.get(m.month, 1.0) * jitter(rng, 0.05)
    mwh = cement * 35 / 1000 * jitter(rng, 0.03)
    lines.add("purchased_electricity", "", mwh * 0.52, "MWh", decimals=3, facility="M1")
    lines.add("purchased_electricity", "", mwh * 0.48 * 1000, "kWh", decimals=0, facility="M2")
    lines.add("fuel_combustion", "diesel", rng.uniform(6, 11), "t", decimals=3, note="装载机")
    lines.add("production", "cement", cement, "t", decimals=1)
    lines.add("pollutant_monitored", "PM", cement * rng.uniform(0.004, 0.007), "kg", decimals=1)
    lines.water(rng, 900, 60, 6)
    lines.economy(rng, cement * 330 / 1e4, 0.16)


def float_glass(lines: Lines, rng: random.Random) -> None:
    """600 t/d float line F1: natural gas furnace, soda ash, limestone and dolomite in the batch."""
    m = lines.month
    glass = 540 * m.days * jitter(rng, 0.025)
    gas_unit = "万Nm3" if m.year == 2024 else "10^4 Nm3"
    furnace_gas = glass * 6.35 / 389.31 * (1 + 0.03 * m.heat) * jitter(rng, 0.02)  # 6.35 GJ per t of glass
    lines.add("fuel_combustion", "natural_gas", furnace_gas, gas_unit, decimals=3, facility="F1")
    lines.add("fuel_combustion", "natural_gas", rng.uniform(2.0, 3.5) * (1 + m.heat), "10^4 Nm3", decimals=3,
              facility="ANNEAL", note="退火窑及锡槽保护")  # fmt: skip
    soda_purity = "99.2%" if m.month % 2 else "0.992"
    lines.add("carbonate_use", "Na2CO3", glass * 0.192 * jitter(rng, 0.03), "t", decimals=2, facility="F1",
              purity=soda_purity)  # fmt: skip
    lines.add("carbonate_use", "CaCO3", glass * 0.05 * jitter(rng, 0.05), "t", decimals=2, facility="F1",
              purity=num(rng.uniform(0.95, 0.97), 3))  # fmt: skip
    lines.add("carbonate_use", "CaMg(CO3)2", glass * 0.17 * jitter(rng, 0.04), "t", decimals=2, facility="F1",
              purity=num(rng.uniform(0.93, 0.96), 3))  # fmt: skip
    lines.forklift_diesel(rng, 4200)
    lines.add("purchased_electricity", "", glass * 0.095 * jitter(rng, 0.04), "MWh", decimals=3)
    lines.add("production", "flat_glass", glass, "t", decimals=1)
    lines.water(rng, 6500, 42, 3.5)
    lines.economy(rng, glass * 1550 / 1e4, 0.22)


def special_glass(lines: Lines, rng: random.Random) -> None:
    """A small special-glass furnace with electric boosting."""
    m = lines.month
    glass = 34 * m.days * jitter(rng, 0.05) * m.festival
    lines.add("fuel_combustion", "natural_gas", glass * 10.5 / 389.31 * jitter(rng, 0.03), "10^4 Nm3",
              decimals=3, facility="K1")  # fmt: skip
    lines.add("carbonate_use", "Na2CO3", glass * 0.14 * jitter(rng, 0.04), "t", decimals=2, facility="K1",
              purity="0.99")  # fmt: skip
    lines.add("carbonate_use", "CaCO3", glass * 0.06 * jitter(rng, 0.05), "t", decimals=2, facility="K1",
              purity="96%")  # fmt: skip
    lines.add("purchased_electricity", "", glass * 0.55 * jitter(rng, 0.04), "MWh", decimals=3, facility="K1")
    process_kwh = rng.uniform(40_000, 70_000) * (1 + m.cool * 0.4)
    lines.add("purchased_electricity", "", process_kwh, "kWh", decimals=0, facility="PROC")
    lines.forklift_diesel(rng, 900)
    lines.add("production", "special_glass", glass, "t", decimals=1)
    lines.water(rng, 1500, 45, 3.8)
    lines.economy(rng, glass * 6800 / 1e4, 0.3)


# ---------------------------------------------------------------------------------------------
# Generic factories: electronics, sensors, superhard materials, equipment


@dataclass(frozen=True, slots=True)
class Factory:
    """The monthly pattern of a factory whose energy is mostly electricity.

    ``meters`` split electricity over (facility, unit, share); ``cooling`` is the extra share of
    electricity at full summer load (clean rooms, air conditioning); ``gas`` is in 10^4 Nm3 a month
    (``gas_winter`` extra at full heating load) and ``gas_unit`` how the meter reads it.
    """

    mwh: float
    meters: tuple[tuple[str, str, float], ...]
    cooling: float = 0.1
    growth_2024: float = 1.03
    gas: float = 0.0
    gas_winter: float = 0.0
    gas_unit: str = "10^4 Nm3"
    gas_facility: str = ""
    lpg_t: float = 0.0
    heat_gj: float = 0.0
    diesel_l: float = 0.0
    product: tuple[str, str, float] | None = None  # item, unit, quantity per MWh
    output_per_mwh: float = 0.3  # 10^4 CNY of output per MWh
    value_added: float = 0.3
    water: tuple[float, float, float] = (800, 40, 3.0)
    green_period: str = ""

    def __call__(self, lines: Lines, rng: random.Random) -> None:
        m = lines.month
        scale = (self.growth_2024 if m.year == 2024 else 1.0) * m.festival
        mwh = self.mwh * scale * (1 + self.cooling * m.cool) * jitter(rng, 0.04)
        for facility, unit, share in self.meters:
            add_electricity(lines, mwh * share * jitter(rng, 0.02), unit, facility)
        if self.green_period == m.period:
            lines.add("purchased_electricity", "green_certified", mwh * 0.18, "MWh", decimals=3,
                      evidence="GEC-HA-2024-0061320", note="绿色电力证书对应电量")  # fmt: skip
        if self.gas or self.gas_winter:
            gas = (self.gas * scale + self.gas_winter * m.heat) * jitter(rng, 0.06)
            add_gas(lines, gas, self.gas_unit, self.gas_facility)
        if self.lpg_t:
            lines.add("fuel_combustion", "lpg", self.lpg_t * scale * jitter(rng, 0.1), "t", decimals=3,
                      note="切割及热处理")  # fmt: skip
        if self.heat_gj and m.heat:
            lines.add("purchased_heat", "", self.heat_gj * m.heat * jitter(rng, 0.05), "GJ", decimals=1)
        if self.diesel_l:
            lines.forklift_diesel(rng, self.diesel_l * scale)
        if self.product:
            item, unit, per_mwh = self.product
            lines.add("production", item, mwh * per_mwh * jitter(rng, 0.05), unit, decimals=1)
        lines.water(rng, *self.water)
        lines.economy(rng, mwh * self.output_per_mwh, self.value_added)


def add_electricity(lines: Lines, mwh: float, unit: str, facility: str) -> None:
    """A purchased-electricity line in the unit the meter or bill uses."""
    if unit == "kWh":
        lines.add("purchased_electricity", "", mwh * 1000, unit, decimals=0, facility=facility)
    elif unit == "10^4 kWh":
        lines.add("purchased_electricity", "", mwh / 10, unit, decimals=3, facility=facility)
    else:
        lines.add("purchased_electricity", "", mwh, unit, decimals=3, facility=facility)


def add_gas(lines: Lines, wan_nm3: float, unit: str, facility: str) -> None:
    """A natural-gas line from 10^4 Nm3, in the unit the meter or bill uses (GJ bills are on NCV)."""
    if unit == "Nm3":
        lines.add("fuel_combustion", "natural_gas", wan_nm3 * 1e4, unit, decimals=0, facility=facility)
    elif unit == "GJ":
        lines.add("fuel_combustion", "natural_gas", wan_nm3 * 389.31, unit, decimals=1, facility=facility,
                  heat_basis="NCV", note="按热值计量结算")  # fmt: skip
    else:
        lines.add("fuel_combustion", "natural_gas", wan_nm3, unit, decimals=3, facility=facility)


def aluminium_rolling(lines: Lines, rng: random.Random) -> None:
    """Aluminium sheet: gas-fired melting and annealing furnaces, rolling mills."""
    m = lines.month
    sheet = 3100 * m.festival * (1.05 if m.year == 2024 else 1.0) * jitter(rng, 0.05)
    lines.add("fuel_combustion", "natural_gas", sheet * 0.0098 * jitter(rng, 0.03), "10^4 Nm3", decimals=3,
              facility="CAST")  # fmt: skip
    lines.add("fuel_combustion", "natural_gas", sheet * 0.0037 * jitter(rng, 0.04) * 1e4, "Nm3", decimals=0,
              facility="ANNEAL")  # fmt: skip
    lines.add("purchased_electricity", "", sheet * 0.12 * jitter(rng, 0.03), "MWh", decimals=3,
              facility="CAST")  # fmt: skip
    lines.add("purchased_electricity", "", sheet * 0.17 * (1 + 0.1 * m.cool) * jitter(rng, 0.03), "MWh",
              decimals=3, facility="ROLL")  # fmt: skip
    lines.forklift_diesel(rng, 2600)
    lines.add("production", "aluminium_sheet", sheet, "t", decimals=1)
    lines.water(rng, 2100, 55, 4.2)
    lines.economy(rng, sheet * 2.05, 0.12)


# ---------------------------------------------------------------------------------------------
# Construction projects


@dataclass(frozen=True, slots=True)
class Project:
    """A construction project: earthwork (diesel-heavy), structure (tower cranes), finishing."""

    scale: float
    first: int
    last: int
    product: str = "floor_area"
    diesel_truck_unit: str = "L"

    def __call__(self, lines: Lines, rng: random.Random) -> None:
        m = lines.month
        progress = (m.index - self.first) / max(self.last - self.first, 1)
        season = 0.7 if m.month in (1, 2) else 0.85 if m.month == 12 else 1.0
        work = self.scale * season * m.festival
        earth = 1.0 if progress < 0.25 else 0.25 if progress < 0.75 else 0.08
        structure = 0.3 if progress < 0.25 else 1.0 if progress < 0.75 else 0.55
        lines.add("fuel_combustion", "diesel", 55 * earth * work * jitter(rng, 0.12), "t", decimals=3,
                  facility="EQ", note="挖掘机、装载机等土方机械")  # fmt: skip
        truck_t = 14 * earth * work * jitter(rng, 0.15)
        if self.diesel_truck_unit == "L":
            lines.add("fuel_combustion", "diesel", truck_t * 1000 / 0.835, "L", decimals=0, facility="TRUCK",
                      density="0.835", density_unit="kg/L", note="渣土及材料运输车辆")  # fmt: skip
        else:
            lines.add("fuel_combustion", "diesel", truck_t, "t", decimals=3, facility="TRUCK")
        gasoline_l = rng.uniform(1400, 2600) * work
        lines.add("fuel_combustion", "gasoline", gasoline_l, "L", decimals=0, facility="VEH", density="0.737",
                  density_unit="kg/L", note="项目管理车辆")  # fmt: skip
        site_kwh = (40_000 + 120_000 * structure) * work * jitter(rng, 0.08)
        lines.add("purchased_electricity", "", site_kwh, "kWh", decimals=0, facility="SITE")
        camp_kwh = 16_000 * self.scale * (1 + 0.6 * m.heat + 0.8 * m.cool) * jitter(rng, 0.06)
        lines.add("purchased_electricity", "", camp_kwh, "kWh", decimals=0, facility="CAMP")
        if structure >= 0.5:
            area = 9000 * structure * work * jitter(rng, 0.1)
            lines.add("production", self.product, area, "m2", decimals=1)
        lines.water(rng, 2200 * self.scale, 230, 28)
        lines.economy(rng, 1600 * work * (0.6 + structure) * jitter(rng, 0.05), 0.24)


# ---------------------------------------------------------------------------------------------
# The zone


HPS, COOL, MFG, CON = "heat_power_supplier", "cooling_supplier", "manufacturer", "construction_project"
SITE = ("EQ", "TRUCK", "VEH", "SITE", "CAMP")  # facilities of every construction project

SPECS: tuple[Spec, ...] = (
    Spec("chp", HPS, "4412", "热电联产", "郑州高新某某热电有限公司",
         "Zhengzhou Hi-Tech Sample Thermal Power Co., Ltd.", ("B1", "B2", "B3", "FGD"), "true",
         chp_plant, legacy_code=True),
    Spec("gasheat", HPS, "4430", "热力生产和供应", "郑州高新某某燃气热力有限公司",
         "Zhengzhou Hi-Tech Sample Gas Heating Co., Ltd.", ("HB1", "HB2", "HB3", "HB4"), "",
         gas_heating_plant, legacy_code=True),
    Spec("des", HPS, "4412", "热电联产", "郑州高新某某分布式能源有限公司",
         "Zhengzhou Hi-Tech Sample Distributed Energy Co., Ltd.", ("GT1", "GT2"), "false",
         distributed_energy_station),
    Spec("cooling", COOL, "4430", "热力生产和供应", "郑州高新某某区域供冷有限公司",
         "Zhengzhou Hi-Tech Sample District Cooling Co., Ltd.", ("CS1", "CS2"), "false", district_cooling),
    Spec("cement", MFG, "3011", "水泥制造", "郑州高新某某水泥有限公司",
         "Zhengzhou Hi-Tech Sample Cement Co., Ltd.", ("L1", "L2", "YARD"), "true",
         cement_plant, legacy_code=True),
    Spec("grinding", MFG, "3011", "水泥制造", "郑州高新某某建材有限公司",
         "Zhengzhou Hi-Tech Sample Building Materials Co., Ltd.", ("M1", "M2"), "false", grinding_station),
    Spec("glass", MFG, "3041", "平板玻璃制造", "郑州高新某某玻璃有限公司",
         "Zhengzhou Hi-Tech Sample Float Glass Co., Ltd.", ("F1", "ANNEAL"), "true",
         float_glass, legacy_code=True),
    Spec("spglass", MFG, "3042", "特种玻璃制造", "郑州高新某某特种玻璃有限公司",
         "Zhengzhou Hi-Tech Sample Special Glass Co., Ltd.", ("K1", "PROC"), "false", special_glass),
    Spec("aluminium", MFG, "3252", "铝压延加工", "郑州高新某某铝材科技有限公司",
         "Zhengzhou Hi-Tech Sample Aluminium Co., Ltd.", ("CAST", "ANNEAL", "ROLL"), "false",
         aluminium_rolling),
    Spec("diamond", MFG, "3099", "其他非金属矿物制品制造", "郑州高新某某超硬材料有限公司",
         "Zhengzhou Hi-Tech Sample Superhard Materials Co., Ltd.", ("P1", "P2", "PUR"), "false",
         Factory(3000, (("P1", "MWh", 0.52), ("P2", "MWh", 0.4), ("PUR", "kWh", 0.08)), cooling=0.06,
                 gas=0.6, gas_winter=1.2, gas_unit="Nm3", diesel_l=1500,
                 product=("synthetic_diamond", "kg", 1.9), output_per_mwh=1.1, water=(3200, 65, 6.5))),
    Spec("micropowder", MFG, "3099", "其他非金属矿物制品制造", "郑州高新某某金刚石微粉有限公司",
         "Zhengzhou Hi-Tech Sample Diamond Micropowder Co., Ltd.", ("W1", "W2"), "",
         Factory(380, (("W1", "kWh", 0.7), ("W2", "kWh", 0.3)), heat_gj=900, diesel_l=300,
                 product=("diamond_micropowder", "kg", 5.2), output_per_mwh=2.6, water=(1400, 70, 5))),
    Spec("cbn", MFG, "3099", "其他非金属矿物制品制造", "郑州高新某某立方氮化硼有限公司",
         "Zhengzhou Hi-Tech Sample Cubic Boron Nitride Co., Ltd.", ("P1", "OFFICE"), "false",
         Factory(880, (("P1", "MWh", 0.9), ("OFFICE", "kWh", 0.1)), gas=0.3, gas_winter=0.9, diesel_l=400,
                 product=("cubic_boron_nitride", "kg", 0.65), output_per_mwh=1.5, water=(900, 60, 5))),
    Spec("tools", MFG, "3321", "切削工具制造", "郑州高新某某超硬刀具有限公司",
         "Zhengzhou Hi-Tech Sample Superhard Tools Co., Ltd.", ("W1", "W2"), "",
         Factory(160, (("W1", "kWh", 0.6), ("W2", "kWh", 0.4)), heat_gj=600, diesel_l=200,
                 output_per_mwh=6.5, water=(500, 45, 4))),
    Spec("sensor", MFG, "3983", "敏感元件及传感器制造", "郑州高新某某传感科技股份有限公司",
         "Zhengzhou Hi-Tech Sample Sensing Technology Co., Ltd.", ("A", "B"), "false",
         Factory(620, (("A", "MWh", 0.65), ("B", "MWh", 0.35)), cooling=0.2, growth_2024=1.12, gas=0.8,
                 gas_winter=2.5, diesel_l=600, output_per_mwh=9.5, value_added=0.38,
                 water=(1600, 48, 4.5), green_period="2024-06")),
    Spec("mems", MFG, "3983", "敏感元件及传感器制造", "郑州高新某某智能传感器有限公司",
         "Zhengzhou Hi-Tech Sample MEMS Sensor Co., Ltd.", ("FAB", "PKG"), "false",
         Factory(1100, (("FAB", "MWh", 0.78), ("PKG", "kWh", 0.22)), cooling=0.28, growth_2024=1.15,
                 gas=1.6, gas_winter=2.0, gas_unit="GJ", gas_facility="FAB", heat_gj=2800, diesel_l=350,
                 output_per_mwh=6.0, value_added=0.35, water=(5200, 52, 6))),
    Spec("iot", MFG, "3983", "敏感元件及传感器制造", "郑州高新某某物联网传感技术有限公司",
         "Zhengzhou Hi-Tech Sample IoT Sensing Co., Ltd.", ("W1", "W2"), "",
         Factory(95, (("W1", "10^4 kWh", 0.75), ("W2", "kWh", 0.25)), cooling=0.25, growth_2024=1.08,
                 gas=0.15, gas_winter=0.5, gas_unit="Nm3", heat_gj=420, diesel_l=180, output_per_mwh=14,
                 value_added=0.4, water=(400, 35, 3))),
    Spec("display", MFG, "3974", "显示器件制造", "郑州高新某某光电显示有限公司",
         "Zhengzhou Hi-Tech Sample Display Co., Ltd.", ("M1", "M2", "CUB"), "false",
         Factory(1750, (("M1", "MWh", 0.45), ("M2", "MWh", 0.35), ("CUB", "10^4 kWh", 0.2)), cooling=0.22,
                 gas=6.5, gas_winter=4.0, heat_gj=1500, diesel_l=900, product=("display_module", "m2", 16),
                 output_per_mwh=2.4, value_added=0.2, water=(9800, 60, 7))),
    Spec("emat", MFG, "3985", "电子专用材料制造", "郑州高新某某电子材料有限公司",
         "Zhengzhou Hi-Tech Sample Electronic Materials Co., Ltd.", ("S1", "S2"), "false",
         Factory(680, (("S1", "MWh", 0.7), ("S2", "kWh", 0.3)), gas=11, gas_winter=2.0, gas_facility="S1",
                 lpg_t=1.8, diesel_l=500, product=("electronic_ceramic_powder", "t", 0.12),
                 output_per_mwh=3.2, water=(2400, 55, 5))),
    Spec("opto", MFG, "3976", "光电子器件制造", "郑州高新某某光电子器件有限公司",
         "Zhengzhou Hi-Tech Sample Optoelectronic Devices Co., Ltd.", ("W1", "W2"), "",
         Factory(480, (("W1", "MWh", 0.6), ("W2", "kWh", 0.4)), cooling=0.25, gas=0.4, gas_winter=1.1,
                 gas_unit="Nm3", output_per_mwh=7.5, value_added=0.33, water=(1200, 45, 4))),
    Spec("pcb", MFG, "3982", "电子电路制造", "郑州高新某某电路板有限公司",
         "Zhengzhou Hi-Tech Sample Circuit Board Co., Ltd.", ("PLT", "LAM"), "false",
         Factory(1300, (("PLT", "MWh", 0.62), ("LAM", "MWh", 0.38)), cooling=0.15, gas=9, gas_winter=3,
                 gas_facility="LAM", diesel_l=700, product=("printed_circuit_board", "m2", 26),
                 output_per_mwh=2.2, value_added=0.22, water=(17500, 46, 5.5))),
    Spec("icpkg", MFG, "3973", "集成电路制造", "郑州高新某某半导体封装测试有限公司",
         "Zhengzhou Hi-Tech Sample Semiconductor Packaging Co., Ltd.", ("FAB", "TEST", "CUB"), "false",
         Factory(2150, (("FAB", "MWh", 0.55), ("TEST", "MWh", 0.2), ("CUB", "MWh", 0.25)), cooling=0.16,
                 growth_2024=1.1, gas=2.0, gas_winter=3.0, output_per_mwh=3.9, value_added=0.3,
                 water=(12000, 40, 4))),
    Spec("battery", MFG, "3841", "锂离子电池制造", "郑州高新某某新能源电池有限公司",
         "Zhengzhou Hi-Tech Sample New Energy Battery Co., Ltd.", ("CELL", "FORM"), "false",
         Factory(1550, (("CELL", "MWh", 0.64), ("FORM", "MWh", 0.36)), cooling=0.2, growth_2024=1.18,
                 gas=7, gas_winter=2.0, diesel_l=1200, output_per_mwh=3.4, value_added=0.18,
                 water=(4300, 50, 5))),
    Spec("mining", MFG, "3511", "矿山机械制造", "郑州高新某某矿山机械有限公司",
         "Zhengzhou Hi-Tech Sample Mining Machinery Co., Ltd.", ("WELD", "HT", "PAINT"), "false",
         Factory(1450, (("WELD", "MWh", 0.45), ("HT", "MWh", 0.4), ("PAINT", "kWh", 0.15)),
                 growth_2024=0.97, gas=18, gas_winter=5, gas_facility="PAINT", lpg_t=4.5, heat_gj=2600,
                 diesel_l=1800, output_per_mwh=2.8, value_added=0.26, water=(3600, 50, 4.5))),
    Spec("switchgear", MFG, "3823", "配电开关控制设备制造", "郑州高新某某电气设备有限公司",
         "Zhengzhou Hi-Tech Sample Switchgear Co., Ltd.", ("W1", "W2"), "false",
         Factory(340, (("W1", "MWh", 0.7), ("W2", "kWh", 0.3)), gas=0.5, gas_winter=1.5, gas_unit="Nm3",
                 diesel_l=800, output_per_mwh=8.5, value_added=0.28, water=(900, 40, 3.5))),
    Spec("transformer", MFG, "3821", "变压器、整流器和电感器制造", "郑州高新某某变压器有限公司",
         "Zhengzhou Hi-Tech Sample Transformer Co., Ltd.", ("W1", "DRY"), "false",
         Factory(610, (("W1", "MWh", 0.55), ("DRY", "MWh", 0.45)), gas=5.5, gas_winter=1.5,
                 gas_facility="DRY", diesel_l=1100, output_per_mwh=4.6, value_added=0.24,
                 water=(1300, 44, 3.8))),
    Spec("meter", MFG, "4016", "供应用仪器仪表制造", "郑州高新某某仪表有限公司",
         "Zhengzhou Hi-Tech Sample Meters Co., Ltd.", ("W1", "W2"), "",
         Factory(145, (("W1", "kWh", 0.65), ("W2", "kWh", 0.35)), gas=0.2, gas_winter=0.7, gas_unit="Nm3",
                 output_per_mwh=12, value_added=0.34, water=(600, 38, 3))),
    Spec("automation", MFG, "4011", "工业自动控制系统装置制造", "郑州高新某某自动化设备有限公司",
         "Zhengzhou Hi-Tech Sample Automation Co., Ltd.", ("W1", "LAB"), "",
         Factory(88, (("W1", "10^4 kWh", 0.8), ("LAB", "kWh", 0.2)), cooling=0.3, heat_gj=380,
                 diesel_l=150, output_per_mwh=22, value_added=0.36, water=(350, 33, 2.8))),
    Spec("heattreat", MFG, "3360", "金属表面处理及热处理加工", "郑州高新某某热处理有限公司",
         "Zhengzhou Hi-Tech Sample Heat Treatment Co., Ltd.", ("F1", "F2"), "false",
         Factory(520, (("F1", "MWh", 0.55), ("F2", "MWh", 0.45)), gas=22, gas_winter=2, gas_unit="GJ",
                 gas_facility="F1", diesel_l=400, product=("heat_treated_parts", "t", 3.1),
                 output_per_mwh=1.6, value_added=0.3, water=(1100, 70, 6))),
    Spec("cable", MFG, "3831", "电线、电缆制造", "郑州高新某某电缆有限公司",
         "Zhengzhou Hi-Tech Sample Cable Co., Ltd.", ("DRAW", "EXT"), "false",
         Factory(560, (("DRAW", "MWh", 0.5), ("EXT", "MWh", 0.5)), gas=2.4, gas_winter=1.0, diesel_l=1400,
                 product=("cable", "t", 1.9), output_per_mwh=6.8, value_added=0.14, water=(800, 42, 3.2))),
    Spec("proj_park", CON, "4710", "房屋建筑业", "某某建工集团有限公司郑州高新区科创园二期项目",
         "Sample Construction Group: Hi-Tech Zone Innovation Park II", SITE, "", Project(1.2, 0, 17)),
    Spec("proj_apartment", CON, "4710", "房屋建筑业", "某某建设有限公司郑州高新区人才公寓项目",
         "Sample Builders: Hi-Tech Zone Talent Apartments", SITE, "",
         Project(1.0, 2, 23, diesel_truck_unit="t")),
    Spec("proj_factory", CON, "4710", "房屋建筑业", "某某建工集团有限公司郑州高新区智能制造产业园项目",
         "Sample Construction Group: Hi-Tech Zone Smart Manufacturing Park", SITE, "", Project(0.9, 7, 23)),
    Spec("proj_road", CON, "4813", "市政道路工程建筑", "某某市政工程有限公司郑州高新区科学大道改造项目",
         "Sample Municipal Engineering: Science Avenue upgrade", SITE, "",
         Project(0.8, 3, 21, product="road_area")),
    Spec("proj_metro", CON, "4814", "城市轨道交通工程建筑", "某某轨道交通建设有限公司郑州高新区地铁站点项目",
         "Sample Rail Transit Builders: Hi-Tech Zone metro station", SITE, "",
         Project(1.1, 0, 23, product="station_floor_area")),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Building the files


@dataclass(frozen=True, slots=True)
class Zone:
    """The generated zone: registry rows and activity rows by period."""

    registry: list[dict[str, str]]
    activity: dict[str, list[dict[str, str]]]


def build_zone(seed: int = SEED) -> Zone:
    """Draw the codes and every month's lines; the random streams are fixed by ``seed`` alone."""
    master = random.Random(seed)
    ids: dict[str, str] = {}
    for spec in SPECS:
        while True:
            # Projects are run by branches registered with the city; others at city or district level.
            admin = CITY_CODE if spec.category == CON else master.choice((CITY_CODE, COUNTY_CODE))
            code = make_uscc("91" + admin + organisation_code(master, legacy=spec.legacy_code))
            if code not in ids.values():
                ids[spec.key] = code
                break
    streams = {spec.key: random.Random(master.getrandbits(64)) for spec in SPECS}
    activity: dict[str, list[dict[str, str]]] = {period: [] for period in PERIODS}
    for spec in SPECS:
        rng = streams[spec.key]
        for month in MONTHS:
            if not spec.active[0] <= month.index <= spec.active[1]:
                continue
            lines = Lines(ids[spec.key], month, spec.facilities)
            spec.profile(lines, rng)
            activity[month.period].extend(lines.rows)
    registry = [_registry_row(spec, ids[spec.key]) for spec in SPECS]
    return Zone(registry=registry, activity=activity)


def _registry_row(spec: Spec, enterprise_id: str) -> dict[str, str]:
    return {
        "enterprise_id": enterprise_id, "name": spec.name, "name_en": spec.name_en, "category": spec.category,
        "sector_code": spec.sector_code, "sector_name": spec.sector_name, "zone_code": ZONE_CODE,
        "city_code": CITY_CODE, "province_code": PROVINCE_CODE, "county_code": COUNTY_CODE,
        "facilities": ";".join(spec.facilities), "key_emitter_declared": spec.key_emitter_declared,
    }  # fmt: skip


def to_csv(rows: Iterable[dict[str, str]], columns: list[str]) -> bytes:
    """CSV bytes: UTF-8 without BOM, ``\\n`` line ends, minimal quoting."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def used_columns(zone: Zone) -> list[str]:
    """Template columns that at least one line fills, in contract order (the same for every month)."""
    used = {column for rows in zone.activity.values() for row in rows for column, text in row.items() if text}
    return [column for column in TEMPLATE_COLUMNS if column in used or column in ("item", "facility")]


def write_zone(out: Path, zone: Zone) -> list[Path]:
    """Write the registry, the monthly activity files and the README under ``out``."""
    (out / "activity").mkdir(parents=True, exist_ok=True)
    written = [out / "enterprises.csv"]
    written[0].write_bytes(to_csv(zone.registry, registry_columns()))
    columns = used_columns(zone)
    for period, rows in zone.activity.items():
        path = out / "activity" / f"{period}.csv"
        path.write_bytes(to_csv(rows, columns))
        written.append(path)
    readme = out / "README.md"
    readme.write_bytes(render_readme(zone).encode("utf-8"))
    written.append(readme)
    return written


def render_readme(zone: Zone) -> str:
    """A short description of the sample zone, with counts taken from the generated data."""
    by_category: dict[str, int] = {}
    for row in zone.registry:
        by_category[row["category"]] = by_category.get(row["category"], 0) + 1
    categories = ", ".join(f"{count} {category}" for category, count in by_category.items())
    declared = [row for row in zone.registry if row["key_emitter_declared"] == "true"]
    key = [f"- {row['name']} ({row['name_en']})" for row in declared]
    lines_total = sum(len(rows) for rows in zone.activity.values())
    return README_TEMPLATE.format(
        enterprises=len(zone.registry), categories=categories, months=len(zone.activity), lines=lines_total,
        declared="\n".join(key), seed=SEED, first=PERIODS[0], last=PERIODS[-1],
    )  # fmt: skip


README_TEMPLATE = """# Sample zone: Zhengzhou high-tech industrial zone (synthetic)

A fictional zone shaped like the Zhengzhou high-tech industrial zone (郑州高新技术产业开发区, zone
code `ZZHTZ`, Henan 410000 / Zhengzhou 410100 / district 410102). Every enterprise, name and
unified social credit code is invented; the codes are valid under GB 32100-2015 (and their
organisation codes under GB 11714) so that they pass validation, but belong to nobody.

- `enterprises.csv`: the registry, columns as in `accounting.registry.registry_columns()`;
  {enterprises} enterprises: {categories}.
- `activity/YYYY-MM.csv`: {months} monthly files, {first} to {last}, {lines} activity lines in all,
  in the activity-data template (version 1, `contracts/activity-data.md`). Every file has the same
  header: the template columns that some line uses.

What is in it: a coal-fired CHP plant (three CFB boilers, 20-40 kt of bituminous coal a month,
measured NCV, carbon content and oxidation rate on some lines, limestone for FGD, CEMS SO2/NOx/PM),
a gas-fired heating plant, a gas distributed energy station and a district-cooling company; a cement
plant with two clinker lines (50-80 kt of clinker a month, CaO/MgO of clinker, winter off-peak
shutdown) and a grinding station; float and special glass (soda ash, limestone, dolomite with
purity); aluminium sheet; superhard materials (synthetic diamond, cubic boron nitride);
sensors, displays, PCBs, IC packaging, batteries; equipment makers; and five construction projects,
most of which start or finish inside the two years. Units vary as they do in real submissions (`t`, `L` with
density, `Nm3`, `10^4 Nm3`, `万Nm3`, `GJ` on NCV, `kWh`, `MWh`, `10^4 kWh`). The heating season
(Nov-Mar) raises heat, gas and coal; summer raises electricity for cooling; output dips at the
Spring Festival. One line carries a green-electricity certificate and one purchased-heat line a
supplier emission factor with evidence.

Key emitters declared in the registry:

{declared}

The gas-fired heating plant is one too (about 90 kt CO2 a year of direct emissions) but has not
declared it; everything else stays below 26,000 tCO2e and 10,000 tce a year.

How it was made: `python data/sample/generate.py [--out DIR]`, seed {seed}, standard library only
(`random.Random`, no clock). Running it twice gives byte-identical files;
`tests/unit/test_sample_zone.py` regenerates the zone and compares it with these files. Edit the
generator, never the files.
"""


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Generate the synthetic sample zone.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args(argv)
    written = write_zone(args.out, build_zone())
    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Bilingual names (Simplified Chinese first, English second) of the codes that reports and templates show.

Why here and not in a page catalog: a report is handed on as PDF, printable page or spreadsheet, and each
of those must name a fuel or an activity the same way without a second list to keep in step. Fuel and
carbonate names are read from the code lists of the factor library (``factors/fuels.csv``,
``factors/carbonates.csv``), so a code added there is named here at once; activity codes and result
categories are named below, and a test checks that every code of ``accounting.activity`` and
``accounting.schemas`` has both names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from accounting.factors import code_names


@dataclass(frozen=True, slots=True)
class Label:
    """A text in Simplified Chinese and in English."""

    zh: str
    en: str

    def both(self, separator: str = " ") -> str:
        """Both languages in one cell, Chinese first: ``燃料燃烧 Fuel combustion``."""
        return f"{self.zh}{separator}{self.en}" if self.en != self.zh else self.zh

    def as_dict(self) -> dict[str, str]:
        return {"zh": self.zh, "en": self.en}


#: The activity codes of template version 1 (``accounting.activity.ACTIVITIES``).
ACTIVITY_LABELS: dict[str, Label] = {
    "fuel_combustion": Label("化石燃料燃烧", "fossil fuel combustion"),
    "carbonate_use": Label("碳酸盐使用", "carbonate use"),
    "clinker_production": Label("熟料生产", "clinker production"),
    "purchased_electricity": Label("购入电力", "purchased electricity"),
    "exported_electricity": Label("输出电力", "exported electricity"),
    "purchased_heat": Label("购入热力", "purchased heat"),
    "exported_heat": Label("输出热力", "exported heat"),
    "production": Label("产品产量", "production"),
    "economic_output": Label("经济产出", "economic output"),
    "pollutant_monitored": Label("污染物监测排放量", "monitored pollutant discharge"),
    "wastewater_discharge": Label("废水排放", "wastewater discharge"),
}

#: Result categories of the emission lines (``accounting.schemas.CATEGORIES``), as GB/T 32150 names the sources.
CATEGORY_LABELS: dict[str, Label] = {
    "combustion": Label("化石燃料燃烧排放", "fossil fuel combustion"),
    "process": Label("工业生产过程排放", "industrial processes"),
    "purchased_electricity": Label("购入电力产生的排放", "purchased electricity"),
    "purchased_heat": Label("购入热力产生的排放", "purchased heat"),
    "exported_electricity": Label("输出电力对应的排放", "exported electricity"),
    "exported_heat": Label("输出热力对应的排放", "exported heat"),
    "pollutant": Label("污染物", "pollutants"),
    "production": Label("产品产量", "production"),
    "economic": Label("经济产出", "economic output"),
}

#: Items that are neither fuels nor carbonates.
OTHER_ITEM_LABELS: dict[str, Label] = {
    "green_certified": Label("绿色电力（有证书）", "certified green electricity"),
    "output_value": Label("工业总产值", "gross output value"),
    "value_added": Label("工业增加值", "value added"),
    "SO2": Label("二氧化硫", "SO2"),
    "NOx": Label("氮氧化物", "NOx"),
    "PM": Label("颗粒物", "particulate matter"),
    "COD": Label("化学需氧量", "COD"),
    "NH3-N": Label("氨氮", "ammonia nitrogen"),
    "": Label("—", "—"),
}

#: Enterprise categories of the registry.
ENTERPRISE_CATEGORY_LABELS: dict[str, Label] = {
    "heat_power_supplier": Label("热电供应企业", "heat and power supplier"),
    "cooling_supplier": Label("供冷企业", "cooling supplier"),
    "manufacturer": Label("工业企业", "manufacturer"),
    "construction_project": Label("建设项目", "construction project"),
    "all": Label("全部", "all"),
}


def _code_list(name: str) -> dict[str, Label]:
    return {code: Label(zh, en) for code, (zh, en) in code_names(name).items()}


@cache
def fuel_labels() -> dict[str, Label]:
    """Fuel code -> name, from ``factors/fuels.csv``."""
    return _code_list("fuels.csv")


@cache
def carbonate_labels() -> dict[str, Label]:
    """Carbonate code -> name, from ``factors/carbonates.csv``."""
    return _code_list("carbonates.csv")


def item_label(item: str | None) -> Label:
    """The name of a fuel, carbonate or other item code; an unknown code (a product) is shown as itself."""
    code = item or ""
    for names in (fuel_labels(), carbonate_labels(), OTHER_ITEM_LABELS):
        if code in names:
            return names[code]
    return Label(code, code)


def category_label(code: str) -> Label:
    """The name of a registry category (the code itself for one not listed)."""
    return ENTERPRISE_CATEGORY_LABELS.get(code, Label(code, code))

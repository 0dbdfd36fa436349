"""The blank activity-data template and the explanation of its columns, in Chinese and English.

Why one description: the enterprise downloads the template (CSV, or XLSX with a second sheet explaining
every column), the submission parser (``accounting.activity``) reads it back, and both must agree on the
columns forever (template version 1 only ever grows). So the column list, what is required and the
allowed codes are taken from ``accounting.activity`` and the factor library's code lists, never retyped;
only the explanations are written here. Tests check that every template column is explained in both
languages, that every unit named here parses with the project's unit registry, and that the blank
template filled with :data:`EXAMPLE_LINE` is accepted by the real parser.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounting.activity import (
    ACTIVITIES,
    COLUMNS,
    ECONOMIC_ITEMS,
    POLLUTANTS,
    REQUIRED,
    TEMPLATE_VERSION,
    WATER_POLLUTANTS,
)
from accounting.labels import ACTIVITY_LABELS, Label, carbonate_labels, fuel_labels
from accounting.units import REFUSED_UNITS

REQUIRED_LABEL = Label("必填", "required")
CONDITIONAL_LABEL = Label("视情况必填", "required when it applies")
OPTIONAL_LABEL = Label("选填", "optional")

#: Quantity units the contract accepts at least (``contracts/activity-data.md``, "Units").
QUANTITY_UNITS: tuple[str, ...] = (
    "t", "kg", "10^4 t", "L", "m3", "Nm3", "10^4 Nm3", "kWh", "MWh", "GWh", "10^4 kWh", "MJ", "GJ", "TJ",
    "kcal", "MMBtu", "US_therm", "US_gallon", "tce", "kgce", "CNY", "10^4 CNY", "m2",
    "万t", "万Nm3", "万kWh", "万元", "吨", "吨标准煤",
)
#: Units of the measured parameters, per unit column.
PARAMETER_UNITS: dict[str, tuple[str, ...]] = {
    "ncv_unit": ("GJ/t", "kcal/kg", "GJ/(10^4 Nm3)"),
    "carbon_content_unit": ("tC/GJ", "tC/TJ", "tC/t"),
    "density_unit": ("kg/L", "t/m3"),
    "concentration_unit": ("mg/L",),
    "emission_factor_unit": ("tCO2/MWh", "kgCO2/kWh", "tCO2/GJ"),
}

#: One complete, valid line: the example column of the explanation, and what a test fills in.
EXAMPLE_LINE: dict[str, str] = {
    "enterprise_id": "914101022286058318", "period": "2024-01", "activity": "fuel_combustion",
    "item": "diesel", "quantity": "12.5", "unit": "t", "facility": "B1", "heat_basis": "",
    "ncv": "42.71", "ncv_unit": "GJ/t", "carbon_content": "0.0202", "carbon_content_unit": "tC/GJ",
    "oxidation_rate": "98%", "density": "", "density_unit": "", "purity": "", "sulfur_content": "0.2%",
    "cao_fraction": "", "mgo_fraction": "", "cao_noncarbonate_fraction": "", "mgo_noncarbonate_fraction": "",
    "concentration": "", "concentration_unit": "", "emission_factor": "", "emission_factor_unit": "",
    "evidence": "化验报告 LAB-2024-001.pdf", "note": "1#锅炉 boiler 1",
}
#: Examples of columns the example line leaves empty (they belong to other activities).
_OTHER_EXAMPLES: dict[str, str] = {
    "heat_basis": "NCV", "density": "0.835", "density_unit": "kg/L", "purity": "91%", "cao_fraction": "65.8%",
    "mgo_fraction": "2.3%", "cao_noncarbonate_fraction": "0.5%", "mgo_noncarbonate_fraction": "0.2%",
    "concentration": "38", "concentration_unit": "mg/L", "emission_factor": "0.0",
    "emission_factor_unit": "tCO2/MWh",
}

#: Columns required for some activities only (the contract's "per activity", "when", "for").
CONDITIONAL: frozenset[str] = frozenset({
    "item", "heat_basis", "cao_fraction", "mgo_fraction", "concentration", "concentration_unit", "density",
    "density_unit",
})

#: What each column means. Keys must be exactly ``accounting.activity.COLUMNS`` (a test checks it).
MEANINGS: dict[str, Label] = {
    "enterprise_id": Label("统一社会信用代码（18位，GB 32100-2015，校验位须正确）",
                           "unified social credit code: 18 characters (GB 32100-2015), check character verified"),
    "period": Label("活动发生的月份 YYYY-MM；仅有年度数据的行填 YYYY",
                    "the calendar month of the activity, YYYY-MM (YYYY for an annual-only line)"),
    "activity": Label("活动类型代码，见允许值", "activity code, see the allowed values"),
    "item": Label("燃料、碳酸盐、产品或污染物代码，随活动类型而定",
                  "fuel, carbonate, product or pollutant code, depending on the activity"),
    "quantity": Label("数量，≥ 0；购入或输出由活动类型区分，不用正负号",
                      "quantity, ≥ 0; bought or sold is told by the activity, never by the sign"),
    "unit": Label("数量的单位", "unit of the quantity"),
    "facility": Label("企业自编的场所、装置或锅炉编号（不超过64个字符）",
                      "the enterprise's own code of a site, unit or boiler (at most 64 characters)"),
    "heat_basis": Label("数量为热量时填写热值基准：NCV（低位发热量）；GCV（高位）不予接受",
                        "when the quantity is energy: NCV (net calorific value); GCV (gross) is refused"),
    "ncv": Label("本批燃料实测低位发热量", "measured net calorific value of this fuel lot"),
    "ncv_unit": Label("低位发热量的单位", "unit of the net calorific value"),
    "carbon_content": Label("实测含碳量（单位热值或单位质量）", "measured carbon content, per heat or per mass"),
    "carbon_content_unit": Label("含碳量的单位", "unit of the carbon content"),
    "oxidation_rate": Label("实测碳氧化率，小数或百分数", "measured carbon oxidation rate, fraction or percent"),
    "density": Label("液体燃料按体积填报时的密度，用于换算为质量",
                     "density of a liquid fuel reported by volume, to turn it into mass"),
    "density_unit": Label("密度的单位", "unit of the density"),
    "purity": Label("原料中碳酸盐的含量，小数或百分数", "carbonate fraction of the raw material, fraction or percent"),
    "sulfur_content": Label("燃料收到基含硫量，小数或百分数",
                            "as-received sulfur content of the fuel, fraction or percent"),
    "cao_fraction": Label("熟料中氧化钙含量（熟料生产必填）", "CaO content of the clinker (required for clinker)"),
    "mgo_fraction": Label("熟料中氧化镁含量（熟料生产必填）", "MgO content of the clinker (required for clinker)"),
    "cao_noncarbonate_fraction": Label("熟料中非碳酸盐来源的氧化钙含量", "CaO of the clinker not from carbonates"),
    "mgo_noncarbonate_fraction": Label("熟料中非碳酸盐来源的氧化镁含量", "MgO of the clinker not from carbonates"),
    "concentration": Label("废水中污染物平均浓度（废水排放必填）",
                           "mean pollutant concentration of the wastewater (required for wastewater)"),
    "concentration_unit": Label("浓度的单位", "unit of the concentration"),
    "emission_factor": Label("购入或输出电力、热力的供应商排放因子（须附证明材料）",
                             "supplier-specific factor of purchased or exported electricity or heat (needs evidence)"),
    "emission_factor_unit": Label("排放因子的单位", "unit of the emission factor"),
    "evidence": Label("证明材料：文件名、证书编号或 SHA-256",
                      "supporting document: file name, certificate number or SHA-256"),
    "note": Label("备注", "free text"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnDescription:
    """One template column as the explanation sheet shows it."""

    name: str
    requirement: Label
    meaning: Label
    example: str
    allowed: str


def _codes(codes: dict[str, Label]) -> str:
    return "; ".join(f"{code} {label.zh} {label.en}" for code, label in codes.items())


def _allowed_items() -> str:
    parts = [
        f"fuel_combustion: {_codes(fuel_labels())}",
        f"carbonate_use: {_codes(carbonate_labels())}",
        "purchased_electricity: （空 empty）, green_certified 绿色电力 certified green electricity",
        f"economic_output: {', '.join(ECONOMIC_ITEMS)}",
        f"pollutant_monitored: {', '.join(POLLUTANTS)}",
        f"wastewater_discharge: {', '.join(WATER_POLLUTANTS)}",
        "production: 产品代码，小写字母、数字和下划线"
        " product code, lower-case letters, digits and _ (cement, flat_glass)",
        "clinker_production, exported_electricity, purchased_heat, exported_heat: （空 empty）",
    ]
    return "\n".join(parts)


def _allowed() -> dict[str, str]:
    refused = ", ".join(REFUSED_UNITS)
    fraction = "0–1 或百分数 or percent (93%)"
    allowed = {
        "enterprise_id": "18 位 characters: 0-9 A-H J-N P Q R T U W X Y",
        "period": "YYYY-MM 或 or YYYY",
        "activity": "\n".join(f"{code} {ACTIVITY_LABELS[code].zh} {ACTIVITY_LABELS[code].en}" for code in ACTIVITIES),
        "item": _allowed_items(),
        "quantity": "≥ 0；小数点用 . decimal point, 不用千分位 no thousands separators",
        "unit": f"{', '.join(QUANTITY_UNITS)}\n不接受 refused: {refused}; 气体燃料不接受 m3 (bare m3 for a gas)",
        "facility": "≤ 64",
        "heat_basis": "NCV",
        "oxidation_rate": fraction, "purity": fraction, "sulfur_content": fraction, "cao_fraction": fraction,
        "mgo_fraction": fraction, "cao_noncarbonate_fraction": fraction, "mgo_noncarbonate_fraction": fraction,
    }
    allowed.update({column: ", ".join(units) for column, units in PARAMETER_UNITS.items()})
    return allowed


def _requirement(column: str) -> Label:
    if column in REQUIRED:
        return REQUIRED_LABEL
    return CONDITIONAL_LABEL if column in CONDITIONAL else OPTIONAL_LABEL


def describe_columns() -> tuple[ColumnDescription, ...]:
    """Every column of the template, in the contract's order, with what it means and what it accepts."""
    allowed = _allowed()
    return tuple(ColumnDescription(name=column, requirement=_requirement(column), meaning=MEANINGS[column],
                                   example=EXAMPLE_LINE[column] or _OTHER_EXAMPLES.get(column, ""),
                                   allowed=allowed.get(column, ""))
                 for column in COLUMNS)


#: The explanation sheet's header row.
DESCRIPTION_HEADER: tuple[Label, ...] = (
    Label("列名", "column"), Label("是否必填", "required"), Label("说明", "meaning"),
    Label("说明（英文）", "meaning (English)"), Label("示例", "example"), Label("允许值", "allowed values"),
)
#: Sheet names of the XLSX template (the first is the template itself, read by the parser).
TEMPLATE_SHEET = f"模板 Template v{TEMPLATE_VERSION}"
DESCRIPTION_SHEET = "说明 Columns"


def description_rows() -> list[tuple[str, str, str, str, str, str]]:
    """The explanation sheet's lines: column, required (both languages), meaning zh, meaning en, example, allowed."""
    return [(d.name, d.requirement.both(), d.meaning.zh, d.meaning.en, d.example, d.allowed)
            for d in describe_columns()]

"""Reports as data: the enterprise's annual greenhouse-gas report, the zone report and the compliance report.

Why a model of its own: the same report is handed on as JSON, PDF, a printable page, CSV and XLSX, and
all five must show the same numbers under the same names. So a report is built once, here, from the
published result lines (no web, no database): a title, facts about its subject, tables, the headline
totals and the provenance (factor editions, calculation runs) that makes every number traceable. Every
label is bilingual (Simplified Chinese first, English second) and lives in the model, so no renderer
needs a catalog of its own.

Numbers stay as stored (float for physical quantities, int for tonnes of allowances and fen, Decimal for
targets); they are rounded only when shown, by :func:`format_cell` and the rule in :data:`ROUNDING_RULE`.

The enterprise report follows the reporting tables of GB/T 32151 (totals by source, then activity data
and factors per source, excluding and including indirect emissions); exported electricity and heat are
shown as the positive amounts that are deducted, as the balances store them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from accounting.labels import CATEGORY_LABELS, Label, category_label, item_label

Cell = str | int | float | Decimal | bool | None
Row = dict[str, Cell]
#: How a column's numbers are shown; see :data:`ROUNDING_RULE`.
Kind = Literal["text", "emission", "energy", "quantity", "factor", "intensity", "share", "tonnes", "fen",
               "count", "flag"]

ROUNDING_RULE = Label(
    "数值按原值计算与导出（CSV、XLSX、JSON 不取整），仅在显示时四舍五入：排放量（tCO2、tCO2e）保留到整数吨；"
    "能源消费量（tce）保留两位小数；活动数据保留至多三位小数、排放因子和参数保留至多六位小数（去掉末尾的零）；"
    "强度保留四位小数；比例以百分数保留一位小数；配额以整数吨、金额以元保留两位小数。"
    "分项取整后之和可能与取整后的合计相差 1 吨。",
    "Numbers are calculated and exported unrounded (CSV, XLSX and JSON); they are rounded half up only when shown: "
    "emissions (tCO2, tCO2e) to whole tonnes; energy (tce) to two decimals; activity data to at most three and "
    "factors and parameters to at most six decimals (trailing zeros dropped); intensities to four decimals; "
    "shares as percent with one decimal; allowances in whole tonnes, money in yuan with two decimals. "
    "Rounded parts may differ from the rounded total by 1 t.",
)

_PLACES: dict[str, int] = {"emission": 0, "energy": 2, "quantity": 3, "factor": 6, "intensity": 4}
_TRIMMED = frozenset({"quantity", "factor"})
NOT_GIVEN = "—"


def _decimal(value: int | float | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _grouped(number: Decimal, places: int, *, trim: bool) -> str:
    text = f"{number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):,.{places}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_cell(value: Cell, kind: Kind) -> str:
    """The one place a number is rounded: ``value`` as a report shows it (see :data:`ROUNDING_RULE`).

    >>> format_cell(657282.501308, "emission"), format_cell(112611.610346, "energy")
    ('657,283', '112,611.61')
    >>> format_cell(0.0202, "factor"), format_cell(15812.46, "quantity"), format_cell(0.98, "share")
    ('0.0202', '15,812.46', '98.0%')
    >>> format_cell(1234567, "fen"), format_cell(None, "emission"), format_cell(True, "flag")
    ('12,345.67', '—', '是 yes')
    """
    if value is None or (isinstance(value, float) and value != value):  # NaN is a missing value
        return NOT_GIVEN
    if kind == "flag" or isinstance(value, bool):
        return "是 yes" if value else "否 no"
    if kind == "text" or isinstance(value, str):
        return str(value)
    number = _decimal(value)
    if kind in _PLACES:
        return _grouped(number, _PLACES[kind], trim=kind in _TRIMMED)
    if kind == "share":
        return _grouped(number * 100, 1, trim=False) + "%"
    if kind == "fen":
        return _grouped(number / 100, 2, trim=False)
    return _grouped(number, 0, trim=False)  # tonnes, count


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """A column: its key in every row, its bilingual header, the unit it is in and how it is shown."""

    key: str
    label: Label
    kind: Kind = "text"
    unit: str = ""

    def header(self) -> str:
        """The header cell of downloads and pages: ``排放量 emissions (tCO2e)``."""
        return self.label.both() + (f" ({self.unit})" if self.unit else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    """One table of a report; ``totals`` are rows shown after the others (sums, subtotals)."""

    key: str
    title: Label
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    totals: tuple[Row, ...] = ()
    note: Label | None = None

    def __post_init__(self) -> None:
        headers = [c.header() for c in self.columns]
        if len(set(headers)) != len(headers) or len({c.key for c in self.columns}) != len(self.columns):
            raise ValueError(f"table {self.key!r}: every column needs a key and a header of its own")

    def all_rows(self) -> tuple[Row, ...]:
        return self.rows + self.totals


@dataclass(frozen=True, slots=True, kw_only=True)
class Fact:
    """One line of the report's heading: the reporting entity, the year, the standard..."""

    key: str
    label: Label
    value: Cell
    kind: Kind = "text"


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """What every number of the report can be traced to."""

    editions: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    rulesets: tuple[str, ...] = ()
    gwp_sets: tuple[str, ...] = ()
    grid_regions: tuple[str, ...] = ()
    source: Label = Label("", "")

    def footer(self) -> str:
        """One line for every page: the factor edition and the run behind the numbers."""
        editions = ", ".join(self.editions) or NOT_GIVEN
        runs = ", ".join(self.run_ids) or NOT_GIVEN
        return f"因子版本 factor edition: {editions} · 运行 run: {runs}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """A whole report: what renderers (JSON, PDF, HTML, CSV, XLSX) turn into their form."""

    kind: str
    title: Label
    subject: str
    facts: tuple[Fact, ...]
    tables: tuple[Table, ...]
    totals: Mapping[str, Cell]
    provenance: Provenance
    rounding: Label = ROUNDING_RULE
    notes: tuple[Label, ...] = field(default=())

    def table(self, key: str) -> Table:
        for table in self.tables:
            if table.key == key:
                return table
        raise KeyError(f"no table {key!r} in the {self.kind} report")

    @property
    def file_stem(self) -> str:
        return f"{self.kind}-{self.subject}"


def _col(key: str, zh: str, en: str, kind: Kind = "text", unit: str = "") -> Column:
    return Column(key=key, label=Label(zh, en), kind=kind, unit=unit)


def _distinct(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(sorted({str(v) for v in values if v not in (None, "")}))


def _number(value: Any) -> float:
    """A stored number, with a missing one (None, NaN) counting as zero in a sum."""
    if value is None or (isinstance(value, float) and value != value):
        return 0.0
    return float(value)


def months_text(periods: Iterable[str]) -> str:
    """The months a row covers, compactly: ``1-3, 5`` (``全年 year`` for an annual-only line).

    >>> months_text(["2024-01", "2024-02", "2024-03", "2024-05", "2024"])
    '1-3, 5; 全年 year'
    """
    months = sorted({int(p[5:7]) for p in periods if len(p) == 7})
    parts: list[str] = []
    for month in months:
        if parts and parts[-1].split("-")[-1] == str(month - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{month}"
        else:
            parts.append(str(month))
    text = ", ".join(parts)
    if any(len(p) == 4 for p in periods):
        text = f"{text}; 全年 year" if text else "全年 year"
    return text


def group_lines(lines: Iterable[Mapping[str, Any]], *, keys: Sequence[str], sums: Sequence[str]
                ) -> list[dict[str, Any]]:
    """Lines with equal ``keys`` as one row: ``sums`` added, their periods kept, in order of first appearance.

    Why group by every parameter and not only by fuel: a fuel burnt with measured parameters that change
    from month to month has no single factor; averaging them would show a factor nobody measured.
    """
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in lines:
        key = tuple(_hashable(line.get(k)) for k in keys)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {**{k: line.get(k) for k in keys}, **dict.fromkeys(sums, 0.0), "periods": []}
        for name in sums:
            group[name] += _number(line.get(name))
        group["periods"].append(str(line.get("period", "")))
    return list(groups.values())


def _hashable(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


# ---------------------------------------------------------------------------------------------
# The enterprise's annual greenhouse-gas report (GB/T 32150 / 32151 reporting tables)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    """The reporting entity as the registry knows it (an unregistered reporter has only its id)."""

    enterprise_id: str
    name: str = ""
    name_en: str = ""
    sector_code: str = ""
    sector_name: str = ""
    category: str = ""

    @classmethod
    def from_row(cls, enterprise_id: str, row: Mapping[str, Any] | None) -> Entity:
        found = row or {}
        return cls(enterprise_id=enterprise_id, **{k: str(found.get(k) or "") for k in (
            "name", "name_en", "sector_code", "sector_name", "category")})


#: The summary's rows: (balance column, label); exported energy is the positive amount deducted.
GHG_SUMMARY_ROWS: tuple[tuple[str, Label], ...] = (
    ("combustion_tco2e", CATEGORY_LABELS["combustion"]),
    ("process_tco2e", CATEGORY_LABELS["process"]),
    ("total_excl_indirect_tco2e", Label("排放总量（不含购入和输出的电力、热力）",
                                        "total excluding purchased and exported electricity and heat")),
    ("purchased_electricity_tco2e", CATEGORY_LABELS["purchased_electricity"]),
    ("purchased_heat_tco2e", CATEGORY_LABELS["purchased_heat"]),
    ("exported_electricity_tco2e", Label("输出电力对应的排放（扣减）", "exported electricity (deducted)")),
    ("exported_heat_tco2e", Label("输出热力对应的排放（扣减）", "exported heat (deducted)")),
    ("total_incl_indirect_tco2e", Label("排放总量（含购入和输出的电力、热力）",
                                        "total including purchased and exported electricity and heat")),
)
#: The headline totals of the enterprise report (the yearly balance's own figures).
GHG_TOTALS: tuple[str, ...] = (
    *(key for key, _ in GHG_SUMMARY_ROWS), "scope1_tco2e", "scope2_tco2e", "exported_tco2e", "net_tco2e",
    "energy_tce", "energy_input_tce",
)

_SUMMARY_COLUMNS = (
    _col("source", "排放源类别", "emission source"),
    _col("tco2e", "排放量", "emissions", "emission", "tCO2e"),
)
_COMBUSTION_COLUMNS = (
    _col("item", "燃料品种", "fuel"), _col("months", "月份", "months"),
    _col("quantity", "消耗量", "consumption", "quantity"), _col("unit", "单位", "unit"),
    _col("ncv", "低位发热量", "NCV", "factor"), _col("ncv_unit", "热值单位", "NCV unit"),
    _col("carbon_content", "含碳量", "carbon content", "factor"),
    _col("carbon_content_unit", "含碳量单位", "carbon content unit"),
    _col("oxidation_rate", "碳氧化率", "oxidation rate", "factor"),
    _col("heat_gj", "热量", "heat", "quantity", "GJ"),
    _col("co2_t", "CO2 排放量", "CO2", "emission", "tCO2"), _col("tco2e", "排放量", "emissions", "emission", "tCO2e"),
    _col("sources", "参数来源", "parameter sources"), _col("edition", "因子版本", "edition"),
)
_PROCESS_COLUMNS = (
    _col("item", "原料或产品", "material or product"), _col("months", "月份", "months"),
    _col("quantity", "数量", "quantity", "quantity"), _col("unit", "单位", "unit"),
    _col("purity", "纯度", "purity", "factor"),
    _col("factor", "排放因子", "emission factor", "factor"), _col("factor_unit", "因子单位", "factor unit"),
    _col("oxides", "熟料氧化物含量", "clinker oxides"),
    _col("tco2e", "排放量", "emissions", "emission", "tCO2e"),
    _col("sources", "参数来源", "parameter sources"), _col("edition", "因子版本", "edition"),
)
_ENERGY_COLUMNS = (
    _col("source", "类别", "source"), _col("item", "品种", "item"), _col("months", "月份", "months"),
    _col("quantity", "数量", "quantity", "quantity"), _col("unit", "单位", "unit"),
    _col("factor", "排放因子", "emission factor", "factor"), _col("factor_unit", "因子单位", "factor unit"),
    _col("factor_source", "因子来源", "factor source"), _col("factor_year", "因子年份", "factor year"),
    _col("tco2e", "排放量", "emissions", "emission", "tCO2e"),
    _col("energy_tce", "折标准煤", "energy", "energy", "tce"),
    _col("edition", "因子版本", "edition"),
)
_PRODUCT_COLUMNS = (
    _col("product", "产品", "product"), _col("output", "产量", "output", "quantity"), _col("unit", "单位", "unit"),
    _col("tco2e_per_unit", "单位产品排放量", "emissions per unit", "intensity", "tCO2e/unit"),
)
_FACTOR_COLUMNS = (
    _col("factor_id", "因子编号", "factor id"), _col("parameter", "参数", "parameter"),
    _col("subject", "对象", "subject"), _col("value", "数值", "value", "factor"), _col("unit", "单位", "unit"),
    _col("document", "来源文件", "source document"), _col("locator", "位置", "table or clause"),
    _col("publisher", "发布机构", "publisher"), _col("review_status", "核实状态", "review status"),
    _col("edition", "版本", "edition"),
)


def _sources(*values: Any) -> str:
    return "; ".join(dict.fromkeys(str(v) for v in values if v not in (None, "") and v == v))


def _combustion_rows(lines: Sequence[Mapping[str, Any]]) -> tuple[Row, ...]:
    keys = ("item", "unit_canonical", "ncv_used", "ncv_source", "carbon_content_used", "carbon_content_unit_used",
            "carbon_content_source", "oxidation_rate_used", "oxidation_rate_source", "edition")
    rows: list[Row] = []
    groups = group_lines(lines, keys=keys, sums=("quantity_canonical", "heat_gj", "co2_t", "tco2e"))
    for group in sorted(groups, key=lambda g: str(g["item"])):  # by fuel; a fuel's parameter sets by first month
        unit = str(group["unit_canonical"] or "")
        rows.append({
            "item": item_label(group["item"]).both(), "months": months_text(group["periods"]),
            "quantity": group["quantity_canonical"], "unit": unit,
            "ncv": group["ncv_used"], "ncv_unit": "" if group["ncv_used"] is None else f"GJ/{unit}",
            "carbon_content": group["carbon_content_used"], "carbon_content_unit": group["carbon_content_unit_used"],
            "oxidation_rate": group["oxidation_rate_used"], "heat_gj": group["heat_gj"],
            "co2_t": group["co2_t"], "tco2e": group["tco2e"],
            "sources": _sources(group["ncv_source"], group["carbon_content_source"], group["oxidation_rate_source"]),
            "edition": group["edition"],
        })
    return tuple(rows)


def _oxides(group: Mapping[str, Any]) -> str:
    if group.get("cao_fraction") is None:
        return ""
    shown = {k: format_cell(group[k], "factor") for k in ("cao_fraction", "cao_noncarbonate_fraction", "mgo_fraction",
                                                            "mgo_noncarbonate_fraction")}
    return (f"CaO {shown['cao_fraction']} − {shown['cao_noncarbonate_fraction']} × 44/56; "
            f"MgO {shown['mgo_fraction']} − {shown['mgo_noncarbonate_fraction']} × 44/40")


def _process_rows(lines: Sequence[Mapping[str, Any]]) -> tuple[Row, ...]:
    keys = ("activity", "item", "unit_canonical", "purity_used", "purity_source", "factor_used", "factor_unit_used",
            "factor_source", "cao_fraction", "cao_noncarbonate_fraction", "mgo_fraction", "mgo_noncarbonate_fraction",
            "edition")
    rows: list[Row] = []
    for group in group_lines(lines, keys=keys, sums=("quantity_canonical", "tco2e")):
        item = group["item"] or ("clinker" if group["activity"] == "clinker_production" else "")
        rows.append({
            "item": item_label(item).both() if group["item"] else Label("熟料", "clinker").both(),
            "months": months_text(group["periods"]), "quantity": group["quantity_canonical"],
            "unit": group["unit_canonical"], "purity": group["purity_used"], "factor": group["factor_used"],
            "factor_unit": group["factor_unit_used"], "oxides": _oxides(group), "tco2e": group["tco2e"],
            "sources": _sources(group["purity_source"] and f"purity: {group['purity_source']}", group["factor_source"],
                                "measured" if group["cao_fraction"] is not None else None),
            "edition": group["edition"],
        })
    return tuple(rows)


_ENERGY_CATEGORIES = ("purchased_electricity", "purchased_heat", "exported_electricity", "exported_heat")


def _energy_rows(lines: Sequence[Mapping[str, Any]]) -> tuple[Row, ...]:
    keys = ("category", "item", "unit_canonical", "factor_used", "factor_unit_used", "factor_source", "factor_year",
            "edition")
    ordered = sorted(lines, key=lambda line: _ENERGY_CATEGORIES.index(str(line["category"])))
    return tuple({
        "source": CATEGORY_LABELS[str(g["category"])].both(), "item": item_label(g["item"]).both(),
        "months": months_text(g["periods"]), "quantity": g["quantity_canonical"], "unit": g["unit_canonical"],
        "factor": g["factor_used"], "factor_unit": g["factor_unit_used"], "factor_source": g["factor_source"],
        "factor_year": None if g["factor_year"] is None else str(g["factor_year"]),
        "tco2e": g["tco2e"], "energy_tce": g["energy_tce"], "edition": g["edition"],
    } for g in group_lines(ordered, keys=keys, sums=("quantity_canonical", "tco2e", "energy_tce")))


def _subtotal(rows: Sequence[Row], *, label_key: str, sums: Sequence[str]) -> tuple[Row, ...]:
    if not rows:
        return ()
    total: Row = {label_key: Label("合计", "total").both()}
    for key in sums:
        total[key] = sum(_number(row.get(key)) for row in rows)
    return (total,)


def _ghg_facts(entity: Entity, year: int, balance: Mapping[str, Any]) -> tuple[Fact, ...]:
    def fact(key: str, zh: str, en: str, value: Cell, kind: Kind = "text") -> Fact:
        return Fact(key=key, label=Label(zh, en), value=value, kind=kind)

    return (
        fact("name", "报告主体", "reporting entity", " ".join(p for p in (entity.name, entity.name_en) if p)
             or entity.enterprise_id),
        fact("enterprise_id", "统一社会信用代码", "unified social credit code", entity.enterprise_id),
        fact("sector", "行业", "sector", " ".join(p for p in (entity.sector_code, entity.sector_name) if p) or None),
        fact("year", "报告年度", "reporting year", str(year)),
        fact("standard", "核算依据", "method", "GB/T 32150, GB/T 32151" if balance.get("ruleset") == "cn"
             else str(balance.get("ruleset") or "")),
        fact("gwp_set", "全球变暖潜势", "GWP set", balance.get("gwp_set")),
        fact("grid_region", "电网排放因子区域", "grid factor region", balance.get("grid_region")),
        fact("months_reported", "已报告月数", "months reported", balance.get("months_reported"), "count"),
        fact("months_substituted", "替代月数", "months substituted", balance.get("months_substituted"), "count"),
        fact("is_key_emitter", "重点排放单位", "key emitter", balance.get("is_key_emitter"), "flag"),
        fact("energy_tce", "综合能源消费量", "comprehensive energy consumption (tce)", balance.get("energy_tce"),
             "energy"),
        fact("output_value_10k_cny", "工业总产值（万元）", "gross output value (10^4 CNY)",
             balance.get("output_value_10k_cny"), "quantity"),
        fact("tco2e_per_10k_cny_value_added", "单位增加值排放（tCO2e/万元）",
             "emissions per value added (tCO2e/10^4 CNY)", balance.get("tco2e_per_10k_cny_value_added"), "intensity"),
    )


def enterprise_ghg_report(*, entity: Entity, year: int, balance: Mapping[str, Any],
                          lines: Sequence[Mapping[str, Any]], factors: Sequence[Mapping[str, Any]]) -> Report:
    """The enterprise's annual report from its published yearly balance, emission lines and factors.

    The totals are the balance's own figures (what the API publishes); the tables of sources are the
    lines grouped, and their sums equal those totals up to the floating-point order of addition.
    """
    by_category: dict[str, list[Mapping[str, Any]]] = {}
    for line in lines:
        by_category.setdefault(str(line.get("category")), []).append(line)
    combustion = _combustion_rows(by_category.get("combustion", []))
    process = _process_rows(by_category.get("process", []))
    energy = _energy_rows([line for c in _ENERGY_CATEGORIES for line in by_category.get(c, [])])
    products = tuple({"product": item_label(p.get("product")).both(), "output": p.get("output"),
                      "unit": p.get("unit"), "tco2e_per_unit": p.get("tco2e_per_unit")}
                     for p in balance.get("products") or [])
    tables = (
        Table(key="summary", title=Label("表1 温室气体排放量汇总", "Table 1 Emissions by source"),
              columns=_SUMMARY_COLUMNS,
              rows=tuple({"source": label.both(), "tco2e": balance.get(key)} for key, label in GHG_SUMMARY_ROWS)),
        Table(key="combustion", title=Label("表2 化石燃料燃烧活动数据、排放因子和排放量",
                                            "Table 2 Fossil fuel combustion: activity data, factors, emissions"),
              columns=_COMBUSTION_COLUMNS, rows=combustion,
              totals=_subtotal(combustion, label_key="item", sums=("heat_gj", "co2_t", "tco2e"))),
        Table(key="process", title=Label("表3 工业生产过程活动数据、排放因子和排放量",
                                         "Table 3 Industrial processes: activity data, factors, emissions"),
              columns=_PROCESS_COLUMNS, rows=process, totals=_subtotal(process, label_key="item", sums=("tco2e",))),
        Table(key="electricity_heat", title=Label("表4 购入和输出的电力、热力", "Table 4 Purchased and exported "
                                                                           "electricity and heat"),
              columns=_ENERGY_COLUMNS, rows=energy,
              note=Label("输出电力、热力的排放量为正数，从总量中扣减。",
                         "Emissions of exported electricity and heat are positive amounts deducted from the total.")),
        Table(key="products", title=Label("表5 产品产量与单位产品排放量", "Table 5 Production and emissions per unit"),
              columns=_PRODUCT_COLUMNS, rows=products),
        Table(key="factors", title=Label("表6 缺省因子来源", "Table 6 Sources of the default factors"),
              columns=_FACTOR_COLUMNS, rows=tuple({c.key: f.get(c.key) for c in _FACTOR_COLUMNS} for f in factors)),
    )
    return Report(
        kind="ghg", title=Label(f"{year} 年度温室气体排放报告", f"Greenhouse-gas emissions report {year}"),
        subject=f"{entity.enterprise_id}-{year}", facts=_ghg_facts(entity, year, balance), tables=tables,
        totals={key: balance.get(key) for key in GHG_TOTALS},
        provenance=Provenance(
            editions=_distinct([balance.get("edition"), *(line.get("edition") for line in lines)]),
            run_ids=_distinct([balance.get("run_id"), *(line.get("run_id") for line in lines)]),
            rulesets=_distinct([balance.get("ruleset")]), gwp_sets=_distinct([balance.get("gwp_set")]),
            grid_regions=_distinct([balance.get("grid_region")]),
            source=Label("已发布的年度排放平衡与排放明细", "published yearly balance and emission lines")),
    )


# ---------------------------------------------------------------------------------------------
# The zone's monthly and annual report


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneTargets:
    """The zone's targets: emissions and energy per 10,000 yuan of value added (the zone's plan).

    Decimal because policy sets them as exact figures; None means "no target set".
    """

    tco2e_per_10k_cny_value_added: Decimal | None = None
    tce_per_10k_cny_value_added: Decimal | None = None


#: Indicator columns that add up over months and sectors.
ZONE_SUMS: tuple[str, ...] = ("scope1_tco2e", "scope2_tco2e", "exported_tco2e", "net_tco2e", "energy_tce",
                              "output_value_10k_cny", "value_added_10k_cny")
#: Headline totals of the zone report.
ZONE_TOTALS: tuple[str, ...] = (*ZONE_SUMS, "tco2e_per_10k_cny_value_added", "tce_per_10k_cny_value_added",
                                "enterprise_count")

_INDICATOR_COLUMNS = (
    _col("scope1_tco2e", "直接排放", "scope 1", "emission", "tCO2e"),
    _col("scope2_tco2e", "购入电力热力排放", "scope 2", "emission", "tCO2e"),
    _col("exported_tco2e", "输出电力热力排放", "exported", "emission", "tCO2e"),
    _col("net_tco2e", "净排放", "net emissions", "emission", "tCO2e"),
    _col("energy_tce", "综合能源消费量", "energy", "energy", "tce"),
    _col("value_added_10k_cny", "工业增加值", "value added", "quantity", "10^4 CNY"),
    _col("tco2e_per_10k_cny_value_added", "单位增加值排放", "emission intensity", "intensity", "tCO2e/10^4 CNY"),
    _col("tce_per_10k_cny_value_added", "单位增加值能耗", "energy intensity", "intensity", "tce/10^4 CNY"),
)


def _with_intensities(row: dict[str, Any]) -> dict[str, Any]:
    """Intensities of a sum: total over total (never an average of intensities)."""
    value_added = _number(row.get("value_added_10k_cny"))
    row["tco2e_per_10k_cny_value_added"] = row["net_tco2e"] / value_added if value_added else None
    row["tce_per_10k_cny_value_added"] = row["energy_tce"] / value_added if value_added else None
    return row


def _sum_by(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Rows added up by ``keys``; ``enterprise_count`` is the largest month's (it does not add over months)."""
    sums: dict[tuple[Any, ...], dict[str, Any]] = {}
    rows_by_key: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        key = tuple(row.get(k) for k in keys)
        rows_by_key[key] = row
        total = sums.setdefault(key, {**{k: row.get(k) for k in keys}, **dict.fromkeys(ZONE_SUMS, 0.0),
                                      "enterprise_count": 0, "periods": []})
        for name in ZONE_SUMS:
            total[name] += _number(row.get(name))
        total["enterprise_count"] = max(int(total["enterprise_count"]), int(row.get("enterprise_count") or 0))
        total["periods"].append(row.get("period"))
    return [_with_intensities(total) if len(total["periods"]) > 1 else _published_intensities(total, rows_by_key[k])
            for k, total in sums.items()]


def _published_intensities(total: dict[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    """A single row keeps the intensities it was published with (the same figure as the indicators route)."""
    if "tco2e_per_10k_cny_value_added" in row:
        total["tco2e_per_10k_cny_value_added"] = row.get("tco2e_per_10k_cny_value_added")
        total["tce_per_10k_cny_value_added"] = row.get("tce_per_10k_cny_value_added")
        return total
    return _with_intensities(total)


def _share(actual: Any, target: Decimal | None) -> Decimal | None:
    if target is None or actual is None or not target:
        return None
    return _decimal(actual) / target


def _target_rows(zone: Mapping[str, Any], targets: ZoneTargets) -> tuple[Row, ...]:
    """Each intensity against its target; ``met`` when it is at or below the target."""
    wanted = (
        ("tco2e_per_10k_cny_value_added", Label("单位增加值排放", "emissions per 10^4 CNY value added"),
         "tCO2e/10^4 CNY", targets.tco2e_per_10k_cny_value_added),
        ("tce_per_10k_cny_value_added", Label("单位增加值能耗", "energy per 10^4 CNY value added"),
         "tce/10^4 CNY", targets.tce_per_10k_cny_value_added),
    )
    rows: list[Row] = []
    for key, label, unit, target in wanted:
        share = _share(zone.get(key), target)
        rows.append({"indicator": label.both(), "unit": unit, "actual": zone.get(key), "target": target,
                     "share": share, "met": None if share is None else bool(share <= 1)})
    return tuple(rows)


_TARGET_COLUMNS = (
    _col("indicator", "指标", "indicator"), _col("unit", "单位", "unit"), _col("actual", "实际", "actual", "intensity"),
    _col("target", "目标", "target", "intensity"), _col("share", "实际/目标", "actual / target", "share"),
    _col("met", "达标", "met", "flag"),
)


def _zone_facts(period: str, zone: Mapping[str, Any], *, months: int, key_emitters: int) -> tuple[Fact, ...]:
    return (
        Fact(key="zone", label=Label("园区", "zone"), value="郑州高新技术产业开发区 Zhengzhou Hi-Tech Zone"),
        Fact(key="period", label=Label("报告期", "period"), value=period),
        Fact(key="months", label=Label("含数据月数", "months with data"), value=months, kind="count"),
        Fact(key="enterprise_count", label=Label("报告企业数", "reporting enterprises"),
             value=zone.get("enterprise_count"), kind="count"),
        Fact(key="key_emitters", label=Label("重点排放单位数", "key emitters"), value=key_emitters, kind="count"),
    )


def _zone_tables(period: str, indicators: Sequence[Mapping[str, Any]], zone_rows: Sequence[Mapping[str, Any]],
                 key_rows: tuple[Row, ...], sector_names: Mapping[str, str]) -> list[Table]:
    sectors = sorted(_sum_by((r for r in indicators if r.get("sector_code") != "all"), ("sector_code", "category")),
                     key=lambda r: -_number(r["net_tco2e"]))
    for row in sectors:
        row["sector_name"] = sector_names.get(str(row["sector_code"]), "")
        row["category"] = category_label(str(row["category"])).both()
    categories = _sum_by(sectors, ("category",))
    months = _sum_by(zone_rows, ("period",))
    return [
        Table(key="by_sector", title=Label("按行业", "By sector"), columns=(
            _col("sector_code", "行业代码", "sector code"), _col("sector_name", "行业", "sector"),
            _col("category", "类别", "category"), _col("enterprise_count", "企业数", "enterprises", "count"),
            *_INDICATOR_COLUMNS), rows=tuple(sectors)),
        Table(key="by_category", title=Label("按企业类别", "By category"), columns=(
            _col("category", "类别", "category"), *_INDICATOR_COLUMNS), rows=tuple(categories)),
        Table(key="key_emitters", title=Label("重点排放单位", "Key emitters"), columns=(
            _col("enterprise_id", "统一社会信用代码", "enterprise id"), _col("name", "名称", "name"),
            *_INDICATOR_COLUMNS[:5], _col("is_substituted", "含替代值", "substituted", "flag")), rows=key_rows),
        *([Table(key="by_month", title=Label("按月", "By month"), columns=(_col("period", "月份", "month"),
                                                                          *_INDICATOR_COLUMNS), rows=tuple(months))]
          if len(period) == 4 else []),
    ]


def zone_totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The zone's totals over published indicator rows (its ``all`` rows of some months): sums, the largest month's
    enterprise count, and over several months the intensities of the sums."""
    return (_sum_by(rows, ()) or [_with_intensities({**dict.fromkeys(ZONE_SUMS, 0.0), "enterprise_count": 0})])[0]


def zone_report(*, period: str, indicators: Sequence[Mapping[str, Any]], registry: Sequence[Mapping[str, Any]],
                balances: Sequence[Mapping[str, Any]], key_emitters: Iterable[str], targets: ZoneTargets) -> Report:
    """The zone's report for a month (``YYYY-MM``) or a year (``YYYY``).

    ``indicators``: the published zone indicator rows of the period's months (every sector, and ``all``);
    ``balances``: the enterprises' balances of the period (monthly or yearly); ``key_emitters``: the ids
    that are key emitters in the period's year. The year's figures are sums over its months; its
    intensities are the year's totals divided by its value added.
    """
    zone_rows = [r for r in indicators if r.get("sector_code") == "all"]
    zone = zone_totals(zone_rows)
    names = {str(r["enterprise_id"]): str(r.get("name") or "") for r in registry}
    sector_names = {str(r.get("sector_code")): str(r.get("sector_name") or "") for r in registry}
    keys = set(key_emitters)
    key_rows = tuple(sorted(({"enterprise_id": b["enterprise_id"], "name": names.get(str(b["enterprise_id"]), ""),
                              **{c: b.get(c) for c in ZONE_SUMS[:5]}, "is_substituted": b.get("is_substituted")}
                             for b in balances if b["enterprise_id"] in keys),
                            key=lambda r: -(_number(r["scope1_tco2e"]) + _number(r["scope2_tco2e"]))))
    summary = Table(key="summary", title=Label("园区汇总", "Zone totals"),
                    columns=(_col("period", "报告期", "period"), *_INDICATOR_COLUMNS),
                    rows=({**zone, "period": period},))
    target_table = Table(key="targets", title=Label("指标与目标", "Indicators against targets"),
                         columns=_TARGET_COLUMNS, rows=_target_rows(zone, targets),
                         note=Label("未设定目标时显示“—”。", "A dash means no target is set."))
    tables = (summary, target_table, *_zone_tables(period, indicators, zone_rows, key_rows, sector_names))
    kind_label = ("年度", "annual") if len(period) == 4 else ("月度", "monthly")
    return Report(
        kind="zone", title=Label(f"园区{kind_label[0]}碳排放报告 {period}",
                                 f"Zone {kind_label[1]} emissions report {period}"),
        subject=period, facts=_zone_facts(period, zone, months=len(zone_rows), key_emitters=len(key_rows)),
        tables=tables, totals={key: zone.get(key) for key in ZONE_TOTALS},
        provenance=Provenance(editions=_distinct(b.get("edition") for b in balances),
                              run_ids=_distinct(b.get("run_id") for b in balances),
                              rulesets=_distinct(b.get("ruleset") for b in balances),
                              gwp_sets=_distinct(b.get("gwp_set") for b in balances),
                              grid_regions=_distinct(b.get("grid_region") for b in balances),
                              source=Label("已发布的园区指标和企业排放平衡", "published zone indicators and balances")))


# ---------------------------------------------------------------------------------------------
# The compliance report


COMPLIANCE_STATUS_LABELS: dict[str, Label] = {
    "compliant": Label("已履约", "compliant"),
    "deficit": Label("配额不足", "in deficit"),
    "surplus": Label("配额盈余", "in surplus"),
    "not_locked": Label("排放量未锁定", "emissions not locked"),
}
#: Headline totals of the compliance report (whole tonnes; the penalty in fen).
COMPLIANCE_TOTALS: tuple[str, ...] = ("verified_tco2e", "obligation_t", "allocation_t", "surrendered_t",
                                      "shortfall_t", "penalty_estimate_fen")
_COMPLIANCE_COLUMNS = (
    _col("enterprise_id", "统一社会信用代码", "enterprise id"), _col("name", "名称", "name"),
    _col("status", "状态", "status"),
    _col("verified_tco2e", "核查排放量", "verified emissions", "emission", "tCO2e"),
    _col("verified_version", "版本", "version", "count"),
    _col("obligation_t", "履约义务", "obligation", "tonnes", "t"),
    _col("free_allocation_t", "免费分配", "free allocation", "tonnes", "t"),
    _col("paid_allocation_t", "有偿分配", "paid allocation", "tonnes", "t"),
    _col("allocation_t", "分配合计", "allocation", "tonnes", "t"),
    _col("surrendered_allowances_t", "已清缴配额", "surrendered allowances", "tonnes", "t"),
    _col("surrendered_ccer_t", "已清缴 CCER", "surrendered CCER", "tonnes", "t"),
    _col("surrendered_t", "已清缴合计", "surrendered", "tonnes", "t"),
    _col("shortfall_t", "缺口", "shortfall", "tonnes", "t"),
    _col("net_position_t", "净头寸", "net position", "tonnes", "t"),
    _col("penalty_estimate_fen", "罚款估算", "penalty estimate", "fen", "元 CNY"),
)


def _compliance_row(view: Mapping[str, Any]) -> Row:
    verified = view.get("verified_emissions") or {}
    free = int((view.get("free_allocation") or {}).get("total_t") or 0)
    paid = int((view.get("paid_allocation") or {}).get("quantity_t") or 0)
    surrendered = view.get("surrendered") or {}
    status = str(view.get("status") or "")
    return {
        "enterprise_id": view.get("enterprise_id"), "name": view.get("name"),
        "status": COMPLIANCE_STATUS_LABELS.get(status, Label(status, status)).both(), "status_code": status,
        "verified_tco2e": verified.get("net_tco2e"), "verified_version": verified.get("version"),
        "obligation_t": view.get("obligation_t"), "free_allocation_t": free, "paid_allocation_t": paid,
        "allocation_t": free + paid, "surrendered_allowances_t": int(surrendered.get("allowances_t") or 0),
        "surrendered_ccer_t": int(surrendered.get("ccer_t") or 0),
        "surrendered_t": int(surrendered.get("total_t") or 0), "shortfall_t": view.get("shortfall_t"),
        "net_position_t": view.get("net_position_t"), "penalty_estimate_fen": view.get("penalty_estimate_fen"),
    }


def _int_total(rows: Sequence[Row], key: str) -> int:
    return sum(int(v) for row in rows if isinstance(v := row.get(key), int | float | Decimal))


def compliance_report(*, year: int, zone: Mapping[str, Any], views: Sequence[Mapping[str, Any]]) -> Report:
    """Per enterprise: verified emissions, allocation, surrendered and shortfall, from the balance views.

    ``zone`` is the zone compliance report (deadline, closed, prices); ``views`` the balance view of
    each enterprise. Enterprises whose year is locked come first, in deficit before the others.
    """
    order = {"deficit": 0, "surplus": 1, "compliant": 2}
    rows = tuple(sorted((_compliance_row(v) for v in views),
                        key=lambda r: (order.get(str(r["status_code"]), 3), str(r["enterprise_id"]))))
    locked = [r for r in rows if r["status_code"] != "not_locked"]
    totals: Row = {"enterprise_id": Label("合计", "total").both(),
                   "verified_tco2e": sum(_number(r["verified_tco2e"]) for r in locked)}
    for key in ("obligation_t", "free_allocation_t", "paid_allocation_t", "allocation_t", "surrendered_allowances_t",
                "surrendered_ccer_t", "surrendered_t", "shortfall_t", "penalty_estimate_fen"):
        totals[key] = _int_total(rows, key)
    facts = (
        Fact(key="year", label=Label("履约年度", "compliance year"), value=str(year)),
        Fact(key="deadline", label=Label("清缴截止日", "surrender deadline"), value=zone.get("deadline")),
        Fact(key="deadline_passed", label=Label("已过截止日", "deadline passed"), value=zone.get("deadline_passed"),
             kind="flag"),
        Fact(key="closed", label=Label("年度已关闭", "year closed"), value=zone.get("closed"), kind="flag"),
        Fact(key="penalty_price_month", label=Label("罚款参考价格月份", "penalty price month"),
             value=zone.get("penalty_price_month")),
        Fact(key="penalty_average_price_fen", label=Label("参考均价（元/吨）", "average price (CNY/t)"),
             value=zone.get("penalty_average_price_fen"), kind="fen"),
        Fact(key="locked", label=Label("排放量已锁定企业数", "enterprises with locked emissions"), value=len(locked),
             kind="count"),
    )
    return Report(
        kind="compliance", title=Label(f"{year} 年度配额清缴履约报告", f"Compliance report {year}"),
        subject=str(year), facts=facts,
        tables=(Table(key="enterprises", title=Label("企业履约情况", "Compliance by enterprise"),
                      columns=_COMPLIANCE_COLUMNS, rows=rows, totals=(totals,),
                      note=Label("履约义务为锁定的核查排放量向上取整到整吨；罚款估算仅在截止日之后给出。",
                                 "The obligation is the locked verified emissions rounded up to whole tonnes; "
                                 "the penalty estimate is given only after the deadline.")),),
        totals={"verified_tco2e": totals["verified_tco2e"], "obligation_t": totals["obligation_t"],
                "allocation_t": totals["allocation_t"], "surrendered_t": totals["surrendered_t"],
                "shortfall_t": totals["shortfall_t"], "penalty_estimate_fen": totals["penalty_estimate_fen"]},
        provenance=Provenance(source=Label("运营数据库：核查排放量、配额账本", "operational store: verified emissions, "
                                                                     "allowance ledger")),
    )

"""Table contracts of the warehouse, as data: which columns, which values, which keys must be unique.

The pipeline turns each contract into a Great Expectations suite run as a blocking asset check; the
contract itself stays here, framework-free, so tests and documentation read the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounting.activity import ACTIVITIES, CANONICAL_UNIT

USCC_PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$"
PERIOD_PATTERN = r"^\d{4}(?:-(?:0[1-9]|1[0-2]))?$"
FALLBACK_LEVELS = ("measured", "supplier", "certificate", "region", "national")
CATEGORIES = ("combustion", "process", "purchased_electricity", "purchased_heat", "exported_electricity",
              "exported_heat", "pollutant", "production", "economic")
GHG_CATEGORIES = CATEGORIES[:6]


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnRule:
    """What every value of one column must satisfy."""

    name: str
    not_null: bool = False
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TableContract:
    """The rules of one warehouse table; ``row_id`` names the columns that point back to an input row."""

    table: str
    columns: tuple[ColumnRule, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    row_id: tuple[str, ...] = ("source_file", "row_number")
    conditional: tuple[tuple[str, str], ...] = field(default=())  # (pandas query selecting bad rows, description)


ACTIVITY_LINES = TableContract(
    table="core_activity__monthly_lines",
    columns=(
        ColumnRule(name="source_file", not_null=True),
        ColumnRule(name="row_number", not_null=True, min_value=2),
        ColumnRule(name="enterprise_id", not_null=True, pattern=USCC_PATTERN),
        ColumnRule(name="period", not_null=True, pattern=PERIOD_PATTERN),
        ColumnRule(name="activity", not_null=True, allowed=ACTIVITIES),
        ColumnRule(name="quantity_canonical", not_null=True, min_value=0.0),
        ColumnRule(name="unit_canonical", not_null=True, allowed=tuple(sorted(set(CANONICAL_UNIT.values()) | {"t"}))),
        ColumnRule(name="oxidation_rate", min_value=0.0, max_value=1.0),
        ColumnRule(name="purity", min_value=0.0, max_value=1.0),
    ),
    unique=(("enterprise_id", "period", "facility", "activity", "item"),),
)

EMISSION_LINES = TableContract(
    table="core_emissions__monthly_lines",
    columns=(
        ColumnRule(name="source_file", not_null=True),
        ColumnRule(name="row_number", not_null=True, min_value=2),
        ColumnRule(name="enterprise_id", not_null=True, pattern=USCC_PATTERN),
        ColumnRule(name="category", not_null=True, allowed=CATEGORIES),
        ColumnRule(name="tco2e", min_value=0.0),
        ColumnRule(name="pollutant_t", min_value=0.0),
        ColumnRule(name="edition", not_null=True),
        ColumnRule(name="ruleset", not_null=True),
        ColumnRule(name="gwp_set", not_null=True),
        ColumnRule(name="run_id", not_null=True),
    ),
    unique=(("enterprise_id", "period", "facility", "activity", "item"),),
    conditional=(
        ("category in @GHG_CATEGORIES and tco2e.isna()", "a greenhouse-gas line without tCO2e"),
        ("category in @GHG_CATEGORIES and fallback.isna()", "a greenhouse-gas line without a fallback level"),
        ("fallback.notna() and not fallback.isin(@FALLBACK_LEVELS)", "an unknown fallback level"),
    ),
)

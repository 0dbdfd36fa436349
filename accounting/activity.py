"""Reading and validating activity-data files (template version 1, ``contracts/activity-data.md``).

A file is read whole, every problem is collected (row, column, value, what was expected) and the
file is refused as a whole when there is any; nothing partial ever leaves this module. Checks run
column by column over the whole table, and unit strings are parsed once per distinct value, so a
file of a million lines is validated without a Python loop over its rows.

The result is a table of typed lines plus, for each line, the *kind* of its quantity (fuel by mass,
gas volume, energy...), from which ``conversion_table`` derives the canonical unit and multiplier
of every distinct unit string. The arithmetic itself happens later, in SQL.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import pandas as pd

from accounting.errors import InvalidFileError, RowError, UnitError
from accounting.units import multiplier, parse_unit
from accounting.uscc import uscc_problem

TEMPLATE_VERSION = "1"

COLUMNS: tuple[str, ...] = (
    "enterprise_id", "period", "activity", "item", "quantity", "unit", "facility", "heat_basis",
    "ncv", "ncv_unit", "carbon_content", "carbon_content_unit", "oxidation_rate", "density",
    "density_unit", "purity", "sulfur_content", "cao_fraction", "mgo_fraction",
    "cao_noncarbonate_fraction", "mgo_noncarbonate_fraction", "concentration", "concentration_unit",
    "emission_factor", "emission_factor_unit", "evidence", "note",
)
REQUIRED: tuple[str, ...] = ("enterprise_id", "period", "activity", "quantity", "unit")
NUMBER_COLUMNS = ("quantity", "ncv", "carbon_content", "density", "concentration", "emission_factor")
FRACTION_COLUMNS = (
    "oxidation_rate", "purity", "sulfur_content", "cao_fraction", "mgo_fraction",
    "cao_noncarbonate_fraction", "mgo_noncarbonate_fraction",
)
UNIT_OF = {
    "ncv": "ncv_unit", "carbon_content": "carbon_content_unit", "density": "density_unit",
    "concentration": "concentration_unit", "emission_factor": "emission_factor_unit",
}

ACTIVITIES = (
    "fuel_combustion", "carbonate_use", "clinker_production", "purchased_electricity",
    "exported_electricity", "purchased_heat", "exported_heat", "production", "economic_output",
    "pollutant_monitored", "wastewater_discharge",
)
POLLUTANTS = ("SO2", "NOx", "PM", "COD", "NH3-N")
WATER_POLLUTANTS = ("COD", "NH3-N")
ECONOMIC_ITEMS = ("output_value", "value_added")
PRODUCT_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

#: Which optional columns each activity uses; a value anywhere else is refused, not ignored.
PARAMETERS_OF: dict[str, frozenset[str]] = {
    "fuel_combustion": frozenset({"heat_basis", "ncv", "carbon_content", "oxidation_rate", "density",
                                  "sulfur_content"}),
    "carbonate_use": frozenset({"purity"}),
    "clinker_production": frozenset({"cao_fraction", "mgo_fraction", "cao_noncarbonate_fraction",
                                     "mgo_noncarbonate_fraction"}),
    "purchased_electricity": frozenset({"emission_factor"}),
    "exported_electricity": frozenset({"emission_factor"}),
    "purchased_heat": frozenset({"heat_basis", "emission_factor"}),
    "exported_heat": frozenset({"heat_basis", "emission_factor"}),
    "wastewater_discharge": frozenset({"concentration"}),
}
_PARAMETER_COLUMNS = ("heat_basis", "ncv", "carbon_content", "oxidation_rate", "density", "sulfur_content",
                      "purity", "cao_fraction", "mgo_fraction", "cao_noncarbonate_fraction",
                      "mgo_noncarbonate_fraction", "concentration", "emission_factor")

#: Canonical unit of each quantity kind: what SQL multiplies every quantity into.
CANONICAL_UNIT = {
    "fuel_mass": "t", "fuel_gas_volume": "10^4 Nm3", "fuel_liquid_volume": "L", "fuel_energy": "GJ",
    "mass": "t", "electricity": "MWh", "heat": "GJ", "money": "10^4 CNY", "water_volume": "m3",
    "product_mass": "t", "product_energy": "GJ", "product_electricity": "MWh", "product_area": "m2",
    "product_volume": "m3",
}

HEAT_FACTOR_FIELD = "emission_factor_unit@heat"

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_PERIOD = re.compile(r"^(\d{4})(-(0[1-9]|1[0-2]))?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class FuelRules:
    """What the factor library says about each fuel code that validation needs.

    ``default_basis`` is the basis of the default NCV: ``mass`` (GJ/t) or ``gas_volume``
    (GJ/10^4 Nm3); ``phase`` is solid, liquid or gas.
    """

    default_basis: dict[str, str]
    phase: dict[str, str]
    carbonates: frozenset[str]


@dataclass(frozen=True, slots=True)
class SourceFile:
    """An input file as received: its name, bytes and SHA-256."""

    name: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


class _Errors:
    """Collects row errors column by column."""

    def __init__(self) -> None:
        self.items: list[RowError] = []

    def add_mask(self, table: pd.DataFrame, mask: pd.Series, column: str, expected: str | pd.Series,
                 *, code: str = "invalid_value", value_column: str | None = None) -> None:
        if not mask.any():
            return
        hit = table.loc[mask]
        values = hit[value_column or column] if (value_column or column) in hit else pd.Series("", hit.index)
        texts = expected.loc[mask] if isinstance(expected, pd.Series) else None
        for row, value, i in zip(hit["row_number"], values, hit.index, strict=True):
            message = str(texts.loc[i]) if texts is not None else expected
            self.items.append(RowError(int(row), column, None if value == "" else str(value), message, code))

    def add(self, error: RowError) -> None:
        self.items.append(error)


# ---------------------------------------------------------------------------------------------
# Reading CSV, XLSX and JSON into one table of strings


#: Default limits on one file (``Settings.max_rows_per_file`` overrides the row limit at the API).
MAX_ROWS_PER_FILE = 200_000
MAX_LINE_BYTES = 64 * 1024
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def read_table(source: SourceFile, *, max_rows: int = MAX_ROWS_PER_FILE) -> pd.DataFrame:
    """Read a CSV, XLSX or JSON file into a table of strings with a ``row_number`` column.

    Raises InvalidFileError for a file that cannot be read at all (wrong encoding, not a table), that
    has more than ``max_rows`` lines, a CSV line longer than ``MAX_LINE_BYTES``, or a NUL character.
    """
    suffix = PurePath(source.name).suffix.lower()
    if suffix == ".xlsx" or source.content[:2] == b"PK":
        table = _read_xlsx(source, max_rows=max_rows)
    elif suffix == ".json" or source.content.lstrip()[:1] in (b"[", b"{"):
        table = _read_json(source)
    else:
        table = _read_csv(source, max_rows=max_rows)
    if len(table) > max_rows:
        raise _refuse(source, f"at most {max_rows} lines in one file (split it by month or by enterprise)",
                      code="too_many_rows")
    table = table.fillna("").astype(str)
    table.columns = [str(c).strip() for c in table.columns]
    for column in table.columns:
        table[column] = table[column].str.strip()
    table.insert(0, "row_number", np.arange(2, len(table) + 2, dtype=np.int64))
    _refuse_nul_cells(table, source)
    blank = (table.drop(columns="row_number") == "").all(axis=1)
    return table.loc[~blank].reset_index(drop=True)  # blank lines are skipped but keep their row numbers


def _refuse(source: SourceFile, expected: str, *, code: str = "unreadable_file") -> InvalidFileError:
    return InvalidFileError([RowError(None, None, None, expected, code)], source=source.name)


_NUL_EXPECTED = "text without NUL characters (save the file as CSV UTF-8)"


def _refuse_nul_cells(table: pd.DataFrame, source: SourceFile) -> None:
    """A NUL character anywhere (a JSON ``\\u0000``, a header) refuses the file, naming each row and column."""
    errors = [RowError(1, column, None, _NUL_EXPECTED, "nul_byte") for column in table.columns if "\x00" in column]
    for column in table.columns.drop("row_number"):
        hit = table[column].str.contains("\x00", regex=False)
        errors.extend(RowError(int(row), column, None, _NUL_EXPECTED, "nul_byte")
                      for row in table.loc[hit, "row_number"])
    if errors:
        raise InvalidFileError(errors, source=source.name)


_LINE_BREAK = re.compile(r"\r\n?|\n")


def _physical_row(content: str, offset: int) -> int:
    """The 1-based physical line of ``offset`` (CRLF, LF or a lone CR ends a line, as for the CSV reader)."""
    return len(_LINE_BREAK.findall(content, 0, offset)) + 1


def _decode_csv(source: SourceFile) -> tuple[str, str]:
    """The text of a CSV file and its separator: UTF-8 (BOM optional), or UTF-16 with a BOM.

    UTF-16 is Excel's "Unicode text" export, which separates columns with tabs: its header decides.
    """
    content = source.content
    if content[:2] in _UTF16_BOMS:
        try:
            text = content.decode("utf-16")
        except UnicodeDecodeError as err:
            raise _refuse(source, "UTF-16 text after its byte-order mark (or save the file as CSV UTF-8)",
                          code="bad_encoding") from err
        header = text.lstrip("\ufeff").split("\n", 1)[0]
        return text.lstrip("\ufeff"), "\t" if "\t" in header and "," not in header else ","
    nul = content.find(b"\x00")
    if nul >= 0:
        row = _physical_row(content[:nul].decode("utf-8", errors="replace"), nul)
        raise InvalidFileError([RowError(row, None, None, _NUL_EXPECTED + " (NUL bytes are often UTF-16 text"
                                         " without its byte-order mark)", "nul_byte")], source=source.name)
    try:
        return content.decode("utf-8-sig"), ","
    except UnicodeDecodeError as err:
        raise _refuse(source, f"UTF-8 text (byte {err.start} is not UTF-8; save the file as CSV UTF-8)",
                      code="bad_encoding") from err


def _refuse_long_lines(source: SourceFile, text: str) -> None:
    """A physical line longer than ``MAX_LINE_BYTES`` (UTF-8) refuses the file, naming the first such line."""
    lines = _LINE_BREAK.split(text)
    if not lines or max(map(len, lines)) * 4 <= MAX_LINE_BYTES:  # no line can reach the limit
        return
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE_BYTES // 4 and len(line.encode()) > MAX_LINE_BYTES:
            raise InvalidFileError([RowError(number, None, None, f"lines of at most {MAX_LINE_BYTES} bytes",
                                             "line_too_long")], source=source.name)


def _read_csv(source: SourceFile, *, max_rows: int) -> pd.DataFrame:
    text, separator = _decode_csv(source)
    if not text.strip():
        raise _refuse(source, "a header row and at least one line", code="empty_file")
    if "\x00" in text:  # a UTF-16 file: UTF-8 was checked byte by byte
        row = _physical_row(text, text.index("\x00"))
        raise InvalidFileError([RowError(row, None, None, _NUL_EXPECTED, "nul_byte")], source=source.name)
    _refuse_long_lines(source, text)
    try:
        return pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False,
                           skip_blank_lines=False, nrows=max_rows + 1)
    except (pd.errors.ParserError, ValueError) as err:
        raise _refuse(source, f"comma-separated values with one header row ({err})") from err


def _read_xlsx(source: SourceFile, *, max_rows: int) -> pd.DataFrame:
    try:
        frame = pd.read_excel(io.BytesIO(source.content), sheet_name=0, dtype=object, engine="openpyxl",
                              nrows=max_rows + 1)
    except Exception as err:  # noqa: BLE001 - any openpyxl failure means the workbook is unreadable
        raise _refuse(source, f"an .xlsx workbook with the template on its first sheet ({err})") from err
    return frame.map(_excel_cell_text)


def _excel_cell_text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m"))
    return str(value)


def _read_json(source: SourceFile) -> pd.DataFrame:
    try:
        document = json.loads(source.content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _refuse(source, f"a JSON array of line objects, or {{\"lines\": [...]}} ({err})") from err
    return lines_from_json(document, source=source)


def lines_from_json(document: object, *, source: SourceFile) -> pd.DataFrame:
    """Turn the JSON form of the template (a list of objects, or ``{"lines": [...]}``) into a table."""
    lines = document.get("lines") if isinstance(document, dict) else document
    if not isinstance(lines, list) or not lines:
        raise _refuse(source, "a non-empty JSON array of line objects, or {\"lines\": [...]}")
    if not all(isinstance(line, dict) for line in lines):
        raise _refuse(source, "every line to be a JSON object")
    columns = list(dict.fromkeys(key for line in lines for key in line))
    rows = [[_json_text(line.get(c)) for c in columns] for line in lines]
    return pd.DataFrame(rows, columns=columns, dtype=str)


def _json_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Validation


def parse_activity(source: SourceFile, *, rules: FuelRules, max_rows: int = MAX_ROWS_PER_FILE) -> pd.DataFrame:
    """Read and validate one file; return its typed lines or raise InvalidFileError with every problem."""
    table = read_table(source, max_rows=max_rows)
    lines = validate_table(table, rules=rules, source=source.name)
    lines.insert(0, "source_sha256", source.sha256)
    lines.insert(0, "source_file", source.name)
    return lines


def validate_table(table: pd.DataFrame, *, rules: FuelRules, source: str) -> pd.DataFrame:
    """Validate a table of strings (one column per template column) and return typed lines."""
    errors = _Errors()
    unknown = [c for c in table.columns if c != "row_number" and c not in COLUMNS]
    for column in unknown:
        errors.add(RowError(1, column, column, f"a template column ({', '.join(COLUMNS)})", "unknown_column"))
    for column in REQUIRED:
        if column not in table.columns:
            errors.add(RowError(1, column, None, "this required column in the header row", "missing_column"))
    if table.empty:
        errors.add(RowError(None, None, None, "at least one activity line", "empty_file"))
    if errors.items:
        raise InvalidFileError(errors.items, source=source)
    for column in COLUMNS:
        if column not in table.columns:
            table[column] = ""

    numbers = _parse_numbers(table, errors)
    _check_identity(table, errors)
    kinds = _check_activity_items(table, rules, errors)
    table["quantity_kind"] = kinds
    _check_parameters(table, numbers, rules, errors)
    _check_units(table, errors)
    _check_duplicates(table, errors)
    if errors.items:
        errors.items.sort(key=lambda e: (e.row or 0, COLUMNS.index(e.column) if e.column in COLUMNS else 99))
        raise InvalidFileError(errors.items, source=source)
    return _typed_lines(table, numbers)


def _parse_numbers(table: pd.DataFrame, errors: _Errors) -> dict[str, pd.Series]:
    """Parse number and fraction columns; a fraction may carry a % sign (``93%`` = 0.93)."""
    numbers: dict[str, pd.Series] = {}
    for column in (*NUMBER_COLUMNS, *FRACTION_COLUMNS):
        text = table[column]
        given = text != ""
        percent = text.str.endswith("%") & (column in FRACTION_COLUMNS)
        body = text.where(~percent, text.str[:-1].str.strip())
        well_formed = body.str.fullmatch(_NUMBER.pattern)
        errors.add_mask(table, given & ~well_formed, column,
                        "a number with '.' as decimal point and no thousands separators"
                        + (", or a percentage such as 93%" if column in FRACTION_COLUMNS else ""),
                        code="not_a_number")
        value = pd.to_numeric(body.where(given & well_formed), errors="coerce").astype("float64")
        value = value.where(~percent, value / 100.0)
        bad_sign = given & well_formed & (value < 0)
        errors.add_mask(table, bad_sign, column, "a number >= 0 (the direction is carried by activity)"
                        if column == "quantity" else "a number >= 0", code="negative")
        if column in FRACTION_COLUMNS:
            over = given & well_formed & ~percent & (value > 1)
            errors.add_mask(table, over, column, "a fraction between 0 and 1, or a percentage such as 93%",
                            code="fraction_out_of_range")
            over_pct = given & well_formed & percent & (value > 1)
            errors.add_mask(table, over_pct, column, "a percentage between 0% and 100%",
                            code="fraction_out_of_range")
        if column == "quantity":
            errors.add_mask(table, ~given, column, "a quantity (a number >= 0)", code="missing_value")
        numbers[column] = value.where(~(value < 0))
    zero_rate = (numbers["oxidation_rate"] == 0) & (table["oxidation_rate"] != "")
    errors.add_mask(table, zero_rate, "oxidation_rate", "an oxidation rate above 0 and at most 1",
                    code="fraction_out_of_range")
    return numbers


def _distinct_problems(values: pd.Series, check: Callable[[str], str | None]) -> pd.Series:
    """Run ``check`` once per distinct value; return a per-row series of problems ('' when fine)."""
    problems = {value: check(value) or "" for value in values.unique()}
    return values.map(problems).astype(str)


def _check_identity(table: pd.DataFrame, errors: _Errors) -> None:
    for column in ("enterprise_id", "period", "activity", "unit"):
        errors.add_mask(table, table[column] == "", column, f"a value ({column} is required)",
                        code="missing_value")
    ids = table["enterprise_id"]
    problems = _distinct_problems(ids, lambda v: uscc_problem(v) if v else None)
    errors.add_mask(table, problems != "", "enterprise_id",
                    "an 18-character unified social credit code (GB 32100-2015): " + problems,
                    code="invalid_enterprise_id")
    period = table["period"]
    bad_period = (period != "") & ~period.str.fullmatch(_PERIOD.pattern)
    errors.add_mask(table, bad_period, "period", "YYYY-MM (a calendar month) or YYYY (an annual line)",
                    code="invalid_period")
    errors.add_mask(table, table["facility"].str.len() > 64, "facility", "at most 64 characters",
                    code="too_long")
    errors.add_mask(table, table["evidence"].str.len() > 256, "evidence", "at most 256 characters",
                    code="too_long")


def _check_activity_items(table: pd.DataFrame, rules: FuelRules, errors: _Errors) -> pd.Series:
    """Check activity and item, and decide each line's quantity kind (once per distinct combination)."""
    activity, item, unit = table["activity"], table["item"], table["unit"]
    bad_activity = (activity != "") & ~activity.isin(ACTIVITIES)
    errors.add_mask(table, bad_activity, "activity", "one of " + ", ".join(ACTIVITIES),
                    code="unknown_activity")
    keys = pd.DataFrame({"activity": activity, "item": item, "unit": unit})
    distinct = keys.drop_duplicates()
    decided = [
        _kind_of(a, i, u, rules) for a, i, u in zip(distinct["activity"], distinct["item"], distinct["unit"],
                                                   strict=True)
    ]
    distinct = distinct.assign(kind=[d[0] for d in decided], item_problem=[d[1] for d in decided],
                               unit_problem=[d[2] for d in decided])
    merged = keys.merge(distinct, on=["activity", "item", "unit"], how="left")
    merged.index = table.index
    ok_activity = activity.isin(ACTIVITIES)
    errors.add_mask(table, ok_activity & (merged["item_problem"] != ""), "item", merged["item_problem"],
                    code="invalid_item")
    errors.add_mask(table, (merged["unit_problem"] != "") & (unit != ""), "unit", merged["unit_problem"],
                    code="invalid_unit")
    return merged["kind"].astype(str)


def _unit_dimension(unit: str) -> tuple[str | None, str]:
    """Classify a unit string by dimension; return (dimension, problem)."""
    try:
        parse_unit(unit)
    except UnitError as err:
        return None, str(err)
    for dimension, reference in (("mass", "t"), ("energy", "GJ"), ("gas_volume", "Nm3"), ("volume", "m3"),
                                 ("money", "CNY"), ("area", "m2")):
        try:
            multiplier(unit, reference)
        except UnitError:
            continue
        return dimension, ""
    return "other", ""


_EXPECTED_UNITS = {
    "carbonate_use": "a mass unit such as t or kg",
    "clinker_production": "a mass unit such as t",
    "pollutant_monitored": "a mass unit such as t or kg",
    "electricity": "an electrical energy unit such as kWh, MWh or 10^4 kWh",
    "heat": "a heat unit such as GJ or MJ",
    "economic_output": "a money unit such as 10^4 CNY, 万元 or CNY",
    "wastewater_discharge": "a volume unit such as m3",
    "production": "a unit of output such as t, MWh, GJ or m2",
}
_COAL_EQUIVALENT = ("tce", "kgce")


def _kind_of(activity: str, item: str, unit: str, rules: FuelRules) -> tuple[str, str, str]:
    """Return (quantity kind, item problem, unit problem) for one distinct activity/item/unit."""
    item_problem = _item_problem(activity, item, rules)
    if not unit:
        return "", item_problem, ""
    dimension, unit_problem = _unit_dimension(unit)
    if unit_problem or activity not in ACTIVITIES or item_problem:
        return "", item_problem, unit_problem
    if activity == "fuel_combustion":
        return _fuel_kind(item, unit, dimension, rules)
    coal_equivalent = any(token in _COAL_EQUIVALENT for token in re.split(r"[\s*/]+", unit))
    simple = {
        "carbonate_use": ("mass", "mass"), "clinker_production": ("mass", "mass"),
        "pollutant_monitored": ("mass", "mass"), "purchased_electricity": ("energy", "electricity"),
        "exported_electricity": ("energy", "electricity"), "purchased_heat": ("energy", "heat"),
        "exported_heat": ("energy", "heat"), "economic_output": ("money", "money"),
        "wastewater_discharge": ("volume", "water_volume"),
    }
    if activity in simple:
        wanted, kind = simple[activity]
        label = kind if kind in ("electricity", "heat") else activity
        if dimension != wanted or (wanted == "energy" and coal_equivalent):
            return "", "", f"{_EXPECTED_UNITS[label]}, not '{unit}'"
        return kind, "", ""
    product_kinds = {"mass": "product_mass", "area": "product_area", "volume": "product_volume",
                     "energy": "product_electricity" if item == "electricity" else "product_energy"}
    if dimension not in product_kinds:
        return "", "", f"{_EXPECTED_UNITS['production']}, not '{unit}'"
    return product_kinds[dimension], "", ""


def _item_problem(activity: str, item: str, rules: FuelRules) -> str:
    """What is wrong with ``item`` for ``activity`` ('' when it is fine)."""
    if activity == "production":
        return "" if PRODUCT_CODE.fullmatch(item) else (
            "a product code: lower-case letters, digits and _ (e.g. cement, clinker, flat_glass)")
    allowed: dict[str, tuple[Iterable[str], str]] = {
        "fuel_combustion": (rules.default_basis, "a fuel code of the template"),
        "carbonate_use": (rules.carbonates, "a carbonate code"),
        "purchased_electricity": (("", "green_certified"), "empty, or green_certified for certified renewable"
                                  " electricity"),
        "economic_output": (ECONOMIC_ITEMS, "output_value or value_added"),
        "pollutant_monitored": (POLLUTANTS, "one of"),
        "wastewater_discharge": (WATER_POLLUTANTS, "one of"),
    }
    if activity in allowed:
        codes, message = allowed[activity]
        if item in codes:
            return ""
        return message if activity == "purchased_electricity" else f"{message} ({', '.join(sorted(codes))})"
    if activity in ACTIVITIES and item:
        return f"empty ({activity} takes no item)"
    return ""


def _fuel_kind(item: str, unit: str, dimension: str | None, rules: FuelRules) -> tuple[str, str, str]:
    phase, basis = rules.phase[item], rules.default_basis[item]
    if dimension == "mass":
        return "fuel_mass", "", ""
    if dimension == "energy":
        return "fuel_energy", "", ""
    if dimension == "gas_volume":
        if phase != "gas":
            return "", "", f"a mass unit such as t for {item} (Nm3 is for gaseous fuels)"
        return "fuel_gas_volume", "", ""
    if dimension == "volume":
        if phase == "gas":
            return "", "", (f"Nm3 or 10^4 Nm3 (normal cubic metres at 0 °C and 101.325 kPa) for {item};"
                            f" a volume at working conditions ('{unit}') is ambiguous")
        if phase == "liquid" and basis == "mass":
            return "fuel_liquid_volume", "", ""
        return "", "", f"a mass unit such as t for {item}"
    return "", "", f"a mass, gas-volume or energy unit for {item}, not '{unit}'"


def _check_parameters(table: pd.DataFrame, numbers: dict[str, pd.Series], rules: FuelRules,
                      errors: _Errors) -> None:
    """Optional columns: only where the activity uses them, paired with their units, and coherent."""
    activity, kind = table["activity"], table["quantity_kind"]
    for column in _PARAMETER_COLUMNS:
        used_by = [a for a, columns in PARAMETERS_OF.items() if column in columns]
        misplaced = (table[column] != "") & activity.isin(ACTIVITIES) & ~activity.isin(used_by)
        errors.add_mask(table, misplaced, column, f"empty: {column} is used only on {', '.join(used_by)} lines",
                        code="not_applicable")
    for column, unit_column in UNIT_OF.items():
        missing_unit = (table[column] != "") & (table[unit_column] == "")
        errors.add_mask(table, missing_unit, unit_column, f"the unit of {column}", code="missing_unit")
        orphan_unit = (table[column] == "") & (table[unit_column] != "")
        errors.add_mask(table, orphan_unit, column, f"a value for {column}, or no {unit_column}",
                        code="missing_value")
    basis = table["heat_basis"]
    errors.add_mask(table, (basis != "") & ~basis.isin(("NCV", "GCV")), "heat_basis", "NCV or GCV",
                    code="invalid_heat_basis")
    energy_fuel = kind == "fuel_energy"
    errors.add_mask(table, energy_fuel & (basis == ""), "heat_basis",
                    "NCV: an energy quantity must state its heating-value basis", code="missing_heat_basis")
    gross = (basis == "GCV") & energy_fuel
    errors.add_mask(table, gross, "heat_basis",
                    "NCV: a gross (GCV) quantity cannot be combined with net-basis factors;"
                    " convert it to net calorific value first", code="gross_basis")
    liquid = kind == "fuel_liquid_volume"
    errors.add_mask(table, liquid & (table["density"] == ""), "density",
                    "the density of this liquid lot (e.g. 0.835 with density_unit kg/L) to turn its volume"
                    " into mass", code="missing_density")
    gas_mass = (kind == "fuel_mass") & table["item"].map(rules.default_basis).eq("gas_volume")
    errors.add_mask(table, gas_mass & (table["ncv"] == ""), "unit",
                    "Nm3 or 10^4 Nm3 for a gaseous fuel (its default NCV is per volume), or a measured ncv"
                    " in GJ/t", code="invalid_unit")
    volume_of_mass_fuel = (kind == "fuel_gas_volume") & table["item"].map(rules.default_basis).eq("mass")
    errors.add_mask(table, volume_of_mass_fuel & (table["ncv"] == ""), "ncv",
                    "a measured ncv in GJ/(10^4 Nm3): the default NCV of this fuel is per tonne",
                    code="missing_value")
    clinker = activity == "clinker_production"
    for column in ("cao_fraction", "mgo_fraction"):
        errors.add_mask(table, clinker & (table[column] == ""), column,
                        f"the {column.split('_')[0].upper()} content of the clinker (fraction or %)",
                        code="missing_value")
    for oxide in ("cao", "mgo"):
        above = numbers[f"{oxide}_noncarbonate_fraction"] > numbers[f"{oxide}_fraction"]
        errors.add_mask(table, above.fillna(False), f"{oxide}_noncarbonate_fraction",
                        f"at most {oxide}_fraction (the non-carbonate part of the oxide)", code="inconsistent")
    water = activity == "wastewater_discharge"
    errors.add_mask(table, water & (table["concentration"] == ""), "concentration",
                    "the mean pollutant concentration (e.g. 38 with concentration_unit mg/L)",
                    code="missing_value")
    supplier = table["emission_factor"] != ""
    errors.add_mask(table, supplier & (table["evidence"] == ""), "evidence",
                    "a reference to the document behind the supplier emission factor", code="missing_evidence")
    green = (activity == "purchased_electricity") & (table["item"] == "green_certified")
    errors.add_mask(table, green & (table["evidence"] == ""), "evidence",
                    "the green-electricity certificate, contract or settlement record", code="missing_evidence")
    errors.add_mask(table, green & supplier, "emission_factor",
                    "empty: green_certified electricity is counted at zero", code="not_applicable")


_PARAMETER_UNITS: dict[str, tuple[tuple[str, str], ...]] = {
    "ncv_unit": (("GJ/t", "per mass"), ("GJ/(10^4 Nm3)", "per gas volume")),
    "carbon_content_unit": (("tC/GJ", "per heat"), ("tC/t", "per mass")),
    "density_unit": (("t/L", "mass per volume"),),
    "concentration_unit": (("t/m3", "mass per volume"),),
    "emission_factor_unit": (("tCO2/MWh", "per energy"),),
}
_PARAMETER_EXAMPLES = {
    "ncv_unit": "GJ/t, kcal/kg or GJ/(10^4 Nm3)",
    "carbon_content_unit": "tC/GJ, tC/TJ or tC/t",
    "density_unit": "kg/L or t/m3",
    "concentration_unit": "mg/L",
    "emission_factor_unit": "tCO2/MWh, kgCO2/kWh or tCO2/GJ",
}


def parameter_canonical_unit(column: str, unit: str) -> tuple[str, float]:
    """Canonical unit and multiplier of a parameter unit string; UnitError if it fits none."""
    for canonical, _ in _PARAMETER_UNITS[column]:
        try:
            return canonical, multiplier(unit, canonical)
        except UnitError as err:
            if err.code in ("ambiguous_unit", "unknown_unit"):
                raise
    raise UnitError(unit, f"unit '{unit}' does not fit {column}: expected {_PARAMETER_EXAMPLES[column]}",
                    code="unit_dimension")


def _check_units(table: pd.DataFrame, errors: _Errors) -> None:
    """Parameter units parse, fit their column, and fit the line they are on."""
    canonical_of: dict[str, pd.Series] = {}
    for column in _PARAMETER_UNITS:
        def problem(unit: str, column: str = column) -> str | None:
            if not unit:
                return None
            try:
                parameter_canonical_unit(column, unit)
            except UnitError as err:
                return str(err)
            return None

        problems = _distinct_problems(table[column], problem)
        errors.add_mask(table, problems != "", column, problems, code="invalid_unit")
        canonical = {u: _safe_canonical(column, u) for u in table[column].unique()}
        canonical_of[column] = table[column].map(canonical)
    kind = table["quantity_kind"]
    ncv = canonical_of["ncv_unit"]
    gas = kind == "fuel_gas_volume"
    massy = kind.isin(("fuel_mass", "fuel_liquid_volume"))
    errors.add_mask(table, (gas & (ncv == "GJ/t")) | (massy & (ncv == "GJ/(10^4 Nm3)")), "ncv_unit",
                    "an NCV on the same basis as the quantity (GJ/t for a mass, GJ/(10^4 Nm3) for a gas"
                    " volume)", code="basis_mismatch")
    errors.add_mask(table, (kind == "fuel_energy") & (table["ncv"] != ""), "ncv",
                    "empty: the quantity is already energy (NCV)", code="not_applicable")
    per_mass_carbon = canonical_of["carbon_content_unit"] == "tC/t"
    errors.add_mask(table, per_mass_carbon & ~massy, "carbon_content_unit",
                    "tC/GJ or tC/TJ: a carbon content per mass applies only to a quantity by mass",
                    code="basis_mismatch")


def _safe_canonical(column: str, unit: str) -> str:
    if not unit:
        return ""
    try:
        return parameter_canonical_unit(column, unit)[0]
    except UnitError:
        return ""


def _check_duplicates(table: pd.DataFrame, errors: _Errors) -> None:
    """The same enterprise, period, facility, activity and item twice would be counted twice."""
    key = ["enterprise_id", "period", "facility", "activity", "item"]
    duplicated = table.duplicated(subset=key, keep="first")
    if not duplicated.any():
        return
    first_row = table.groupby(key, sort=False)["row_number"].transform("first")
    errors.add_mask(table, duplicated, "item",
                    "a single line per enterprise, period, facility, activity and item: this repeats row "
                    + first_row.astype(str) + " (use facility to tell lots or units apart)",
                    code="duplicate_line", value_column="item")


def _typed_lines(table: pd.DataFrame, numbers: dict[str, pd.Series]) -> pd.DataFrame:
    period = table["period"]
    lines = pd.DataFrame({
        "row_number": table["row_number"].astype("int64"),
        "enterprise_id": table["enterprise_id"],
        "period": period,
        "year": period.str[:4].astype("int64"),
        "month": pd.to_numeric(period.str[5:7], errors="coerce").astype("Int64"),
        "activity": table["activity"],
        "item": table["item"],
        "facility": table["facility"],
        "quantity_kind": table["quantity_kind"],
        "unit": table["unit"],
        "heat_basis": table["heat_basis"],
    })
    for column in (*NUMBER_COLUMNS, *FRACTION_COLUMNS):
        lines[column] = numbers[column]
    for column in (*UNIT_OF.values(), "evidence", "note"):
        lines[column] = table[column]
    return lines.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Unit conversions, once per distinct unit string


def conversion_table(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per (field, unit) in ``lines``: its canonical unit and the multiplier into it.

    ``field`` is a quantity kind (``fuel_mass``...) for quantities, or a parameter unit column
    (``ncv_unit``...). SQL joins this table; no Quantity is built per row.
    """
    rows: list[tuple[str, str, str, float]] = []
    pairs = lines[["quantity_kind", "unit"]].drop_duplicates()
    for kind, unit in zip(pairs["quantity_kind"], pairs["unit"], strict=True):
        canonical = CANONICAL_UNIT[kind]
        rows.append((kind, unit, canonical, multiplier(unit, canonical)))
    for column in _PARAMETER_UNITS:
        for unit in lines[column].unique():
            if unit:
                canonical, factor = parameter_canonical_unit(column, unit)
                rows.append((column, unit, canonical, factor))
                if column == "emission_factor_unit":  # heat lines take their factor per GJ
                    rows.append((HEAT_FACTOR_FIELD, unit, "tCO2/GJ", multiplier(unit, "tCO2/GJ")))
    return pd.DataFrame(rows, columns=["field", "unit", "unit_canonical", "multiplier"])


def template_columns() -> Iterable[str]:
    """The columns of a blank template, in the contract's order."""
    return COLUMNS

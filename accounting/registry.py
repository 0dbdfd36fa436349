"""The zone's enterprise registry: who reports, what they are, and where they sit.

The registry is the list every activity line is checked against, so it is read with the same rule as
an activity file: the whole file is read, every problem is collected (row, column, value, what was
expected) and the file is refused as a whole when there is any. A half-loaded registry would make
enterprises silently disappear from zone totals.

The registry CSV (UTF-8, a byte-order mark is accepted, one header row, column order free) has the
columns of ``registry_columns()``:

* ``enterprise_id``: unified social credit code (GB 32100-2015), unique in the file;
* ``category``: one of ``CATEGORIES``, which decides the accounting rules applied later;
* ``sector_code``: the 4-digit class code of GB/T 4754-2017 (国民经济行业分类), written without the
  section letter (``4412``, not ``D4412``), and ``sector_name``;
* ``province_code``, ``city_code``, ``county_code``: 6-digit administrative division codes
  (GB/T 2260), which must nest (410000 > 410100 > 410102); ``zone_code`` names the park;
* ``facilities``: the enterprise's own site, unit or boiler codes used in the ``facility`` column of
  its activity lines, separated by ``;``;
* ``key_emitter_declared``: ``true``, ``false`` or empty (not declared).

Key emitters (重点排放单位) are those reaching 26,000 tCO2e a year, which corresponds to about
10,000 tce of comprehensive energy consumption; both thresholds are parameters because provinces and
later rules set their own.

>>> content = (
...     "enterprise_id,name,category,sector_code,zone_code,province_code,city_code,county_code\\n"
...     "91410100MA44A2B3CG,郑州高新示例热电有限公司,heat_power_supplier,4412,ZZHTZ,410000,410100,410102\\n"
... ).encode()
>>> [e.sector_code for e in parse_registry(content, source="example.csv")]
['4412']
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from accounting.errors import InvalidFileError, RowError
from accounting.uscc import uscc_problem

#: Enterprise categories of the zone; they decide which accounting rules apply.
CATEGORIES: tuple[str, ...] = (
    "heat_power_supplier",
    "cooling_supplier",
    "manufacturer",
    "construction_project",
)

REQUIRED_COLUMNS: tuple[str, ...] = (
    "enterprise_id",
    "name",
    "category",
    "sector_code",
    "zone_code",
    "city_code",
    "province_code",
    "county_code",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("name_en", "sector_name", "facilities", "key_emitter_declared")
_ORDER: tuple[str, ...] = (
    "enterprise_id",
    "name",
    "name_en",
    "category",
    "sector_code",
    "sector_name",
    "zone_code",
    "city_code",
    "province_code",
    "county_code",
    "facilities",
    "key_emitter_declared",
)

#: Two-digit province-level prefixes of GB/T 2260 (mainland, Taiwan, Hong Kong, Macao).
PROVINCE_PREFIXES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
FACILITY_MAX_LENGTH = 64  # the activity-data template's limit on the facility column
_SECTOR_CODE = re.compile(r"^\d{4}$")
_SECTOR_WITH_LETTER = re.compile(r"^[A-Ta-t]\d{4}$")
_DIVISION_CODE = re.compile(r"^\d{6}$")
_ZONE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_BOOLEANS = {"": None, "true": True, "false": False}


@dataclass(frozen=True, slots=True, kw_only=True)
class Enterprise:
    """One registered enterprise (or construction project) of the zone."""

    enterprise_id: str
    name: str
    name_en: str
    category: str
    sector_code: str
    sector_name: str
    zone_code: str
    city_code: str
    province_code: str
    county_code: str
    facilities: tuple[str, ...]
    key_emitter_declared: bool | None


def registry_columns() -> list[str]:
    """The registry's columns in their usual order: the header of a blank template.

    >>> registry_columns()[:4]
    ['enterprise_id', 'name', 'name_en', 'category']
    """
    return list(_ORDER)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyEmitterThresholds:
    """Annual thresholds from which an enterprise is a key emitter (重点排放单位).

    The national rule is 26,000 tCO2e a year (equivalent to about 10,000 tce of comprehensive
    energy consumption); provinces may set lower ones, so both are configurable.
    """

    co2e_t: float = 26000.0
    energy_tce: float = 10000.0

    def __post_init__(self) -> None:
        if not (self.co2e_t > 0 and self.energy_tce > 0):
            raise ValueError(f"key-emitter thresholds must be positive, got {self}")


def is_key_emitter(
    *, annual_tco2e: float, annual_energy_tce: float, thresholds: KeyEmitterThresholds
) -> bool:
    """True when either annual figure reaches its threshold.

    Either is enough because the rule names emissions "or" energy consumption: an enterprise whose
    energy is mostly electricity can reach the energy threshold with modest direct emissions.

    >>> t = KeyEmitterThresholds()
    >>> is_key_emitter(annual_tco2e=26000, annual_energy_tce=0, thresholds=t)
    True
    >>> is_key_emitter(annual_tco2e=25999.9, annual_energy_tce=9999.9, thresholds=t)
    False
    >>> is_key_emitter(annual_tco2e=100, annual_energy_tce=10000, thresholds=t)
    True
    """
    return annual_tco2e >= thresholds.co2e_t or annual_energy_tce >= thresholds.energy_tce


def parse_registry(content: bytes, *, source: str) -> list[Enterprise]:
    """Read and validate a registry CSV; return its enterprises in file order.

    Raises InvalidFileError listing every problem: row number (the header is row 1), column, value
    and what was expected.
    """
    rows = _read_rows(content, source=source)
    header = [cell.strip() for cell in rows[0]]
    errors = _check_header(header)
    if errors:
        raise InvalidFileError(errors, source=source)

    enterprises: list[Enterprise] = []
    first_row_of: dict[str, int] = {}
    for row_number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            extra = ",".join(cells[len(header) :])
            expected = f"at most {len(header)} cells, as in the header row"
            errors.append(RowError(row_number, None, extra, expected, "too_many_cells"))
            continue
        record = {column: (cells[i].strip() if i < len(cells) else "") for i, column in enumerate(header)}
        row_errors = _check_record(record, row_number)
        enterprise_id = record["enterprise_id"]
        if enterprise_id in first_row_of:
            expected = f"a unique enterprise_id: this repeats row {first_row_of[enterprise_id]}"
            row_errors.append(
                RowError(row_number, "enterprise_id", enterprise_id, expected, "duplicate_enterprise_id")
            )
        elif enterprise_id:
            first_row_of[enterprise_id] = row_number
        errors.extend(row_errors)
        if not row_errors:
            enterprises.append(_enterprise(record))
    if not errors and not enterprises:
        errors.append(
            RowError(None, None, None, "at least one enterprise after the header row", "empty_file")
        )
    if errors:
        raise InvalidFileError(errors, source=source)
    return enterprises


def _read_rows(content: bytes, *, source: str) -> list[list[str]]:
    """Decode the bytes (UTF-8, BOM accepted) into CSV rows; refuse an unreadable or empty file."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        expected = f"UTF-8 text (byte {err.start} is not UTF-8; save the file as CSV UTF-8)"
        raise InvalidFileError([RowError(None, None, None, expected, "bad_encoding")], source=source) from err
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        expected = f"comma-separated values with one header row ({err})"
        raise InvalidFileError(
            [RowError(None, None, None, expected, "unreadable_file")], source=source
        ) from err
    if not rows or not any(cell.strip() for cell in rows[0]):
        expected = "a header row and at least one enterprise"
        raise InvalidFileError([RowError(None, None, None, expected, "empty_file")], source=source)
    return rows


def _check_header(header: list[str]) -> list[RowError]:
    errors: list[RowError] = []
    seen: set[str] = set()
    for column in header:
        if column in seen:
            errors.append(
                RowError(1, column, column, "each column once in the header row", "duplicate_column")
            )
        seen.add(column)
        if column not in _ORDER:
            errors.append(
                RowError(1, column, column, "a registry column (" + ", ".join(_ORDER) + ")", "unknown_column")
            )
    for column in REQUIRED_COLUMNS:
        if column not in seen:
            errors.append(
                RowError(1, column, None, "this required column in the header row", "missing_column")
            )
    return errors


def _check_record(record: dict[str, str], row: int) -> list[RowError]:
    """Every problem of one data row (except duplicates across rows)."""
    errors: list[RowError] = []

    def add(column: str, expected: str, code: str = "invalid_value") -> None:
        value = record.get(column, "")
        errors.append(RowError(row, column, value or None, expected, code))

    for column in REQUIRED_COLUMNS:
        if not record[column]:
            add(column, f"a value ({column} is required)", "missing_value")
    enterprise_id = record["enterprise_id"]
    if enterprise_id and (problem := uscc_problem(enterprise_id)):
        add(
            "enterprise_id",
            f"an 18-character unified social credit code (GB 32100-2015): {problem}",
            "invalid_enterprise_id",
        )
    category = record["category"]
    if category and category not in CATEGORIES:
        add("category", "one of " + ", ".join(CATEGORIES), "unknown_category")
    sector = record["sector_code"]
    if sector and not _SECTOR_CODE.fullmatch(sector):
        hint = (
            f" (write {sector[1:]} without the section letter)"
            if _SECTOR_WITH_LETTER.fullmatch(sector)
            else ""
        )
        add("sector_code", f"a 4-digit GB/T 4754-2017 class code such as 4412{hint}", "invalid_sector_code")
    elif sector and not 1 <= int(sector[:2]) <= 97:
        add(
            "sector_code",
            "a GB/T 4754-2017 class code: its first two digits are a division, 01 to 97",
            "invalid_sector_code",
        )
    zone = record["zone_code"]
    if zone and not _ZONE_CODE.fullmatch(zone):
        add("zone_code", "a short code of letters, digits, '_' or '-' (at most 32), such as ZZHTZ")
    errors.extend(_region_errors(record, row))
    errors.extend(_facility_errors(record.get("facilities", ""), row))
    declared = record.get("key_emitter_declared", "")
    if declared.lower() not in _BOOLEANS:
        add("key_emitter_declared", "true, false, or empty when not declared", "invalid_boolean")
    return errors


def _region_errors(record: dict[str, str], row: int) -> list[RowError]:
    """Division codes are 6 digits and nest: province xx0000 > city xxyy00 > county xxyyzz."""
    errors: list[RowError] = []

    def add(column: str, expected: str, code: str = "invalid_division_code") -> None:
        errors.append(RowError(row, column, record[column], expected, code))

    province, city, county = record["province_code"], record["city_code"], record["county_code"]
    ok = {
        column: bool(_DIVISION_CODE.fullmatch(record[column])) and record[column][:2] in PROVINCE_PREFIXES
        for column in ("province_code", "city_code", "county_code")
    }
    for column, well_formed in ok.items():
        if record[column] and not well_formed:
            add(column, "a 6-digit administrative division code (GB/T 2260) such as 410000, 410100 or 410102")
    if ok["province_code"] and not province.endswith("0000"):
        add("province_code", f"a province-level code ending in 0000, such as {province[:2]}0000")
    if ok["city_code"] and (not city.endswith("00") or city.endswith("0000")):
        add("city_code", "a prefecture-level code xxyy00 such as 410100")
    elif ok["city_code"] and ok["province_code"] and city[:2] != province[:2]:
        add("city_code", f"a city of province {province} ({province[:2]}yy00)", "inconsistent_division_code")
    if ok["county_code"] and county.endswith("00"):
        add("county_code", "a county-level code xxyyzz such as 410102")
    elif ok["county_code"] and ok["city_code"] and county[:4] != city[:4]:
        add("county_code", f"a county of city {city} ({city[:4]}zz)", "inconsistent_division_code")
    return errors


def _facility_errors(text: str, row: int) -> list[RowError]:
    errors: list[RowError] = []
    seen: set[str] = set()
    for code in _split_facilities(text):
        if len(code) > FACILITY_MAX_LENGTH:
            errors.append(
                RowError(
                    row,
                    "facilities",
                    code,
                    f"facility codes of at most {FACILITY_MAX_LENGTH} characters",
                    "too_long",
                )
            )
        if code in seen:
            errors.append(
                RowError(
                    row,
                    "facilities",
                    code,
                    "each facility code once (separate codes with ;)",
                    "duplicate_facility",
                )
            )
        seen.add(code)
    return errors


def _split_facilities(text: str) -> tuple[str, ...]:
    return tuple(code.strip() for code in text.split(";") if code.strip())


def _enterprise(record: dict[str, str]) -> Enterprise:
    return Enterprise(
        enterprise_id=record["enterprise_id"],
        name=record["name"],
        name_en=record.get("name_en", ""),
        category=record["category"],
        sector_code=record["sector_code"],
        sector_name=record.get("sector_name", ""),
        zone_code=record["zone_code"],
        city_code=record["city_code"],
        province_code=record["province_code"],
        county_code=record["county_code"],
        facilities=_split_facilities(record.get("facilities", "")),
        key_emitter_declared=_BOOLEANS[record.get("key_emitter_declared", "").lower()],
    )

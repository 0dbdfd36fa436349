"""The factor library: sourced default factors, in immutable editions, read from ``factors/``.

Why editions: a result must be reproducible years later, and a default may be corrected. So factors
are never edited in place; a correction is a new edition (``factors/editions/<edition>/``) that may
carry the same ``factor_id`` with another value, and every result records the edition it used.
``factors/catalog.toml`` lists the editions, oldest first, with the SHA-256 of every file, and the
loader refuses a file whose bytes no longer match: a silently edited default would otherwise change
past results without trace.

Why long format: one row per factor parameter (NCV, carbon content, oxidation rate, ...) so that
each value carries its own source, review status and unit, and a measured parameter on an activity
line can replace exactly one default.

Values are stored as printed in their source (unit included); the loader adds ``value_canonical``
in one canonical unit per parameter, converting once per distinct unit with the project registry.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd

from accounting.errors import FactorError
from accounting.units import has_dimension, multiplier

#: Columns of every edition CSV, in this order.
FACTOR_COLUMNS: tuple[str, ...] = (
    "factor_id", "ruleset", "parameter", "subject", "region", "year", "value", "unit", "value_basis",
    "publisher", "document", "locator", "url", "published_on", "valid_from", "valid_to",
    "review_status", "note",
)
#: Columns of every GWP CSV, in this order.
GWP_COLUMNS: tuple[str, ...] = ("gas", "gwp100", "source", "locator", "review_status", "note")

#: Known parameters and their canonical units; a value converts to the first unit its own unit fits
#: (an NCV per tonne stays per tonne, one per normal cubic metre stays per 10^4 Nm3).
CANONICAL_UNITS: Mapping[str, tuple[str, ...]] = {
    "ncv": ("GJ/t", "GJ/(10^4 Nm3)"),
    "carbon_content": ("tC/GJ",),
    "oxidation_rate": ("1",),
    "co2_per_mass": ("tCO2/t",),
    "co2_per_heat": ("tCO2/GJ",),
    "ch4_per_heat": ("tCH4/GJ",),
    "n2o_per_heat": ("tN2O/GJ",),
    "co2_per_electricity": ("tCO2/MWh",),
    "tce_per_electricity": ("tce/MWh",),
    "tce_per_heat": ("tce/GJ",),
    "tce_reference": ("tce/t", "tce/(10^4 Nm3)", "tce/m3"),
}
#: Only values tagged [V] or [C] in the methodology may be seeded; [U] and NOT FOUND never are.
REVIEW_STATUSES = frozenset({"verified", "corroborated"})
FUEL_PHASES = frozenset({"solid", "liquid", "gas"})

_REQUIRED = ("factor_id", "ruleset", "parameter", "subject", "value", "unit", "publisher", "document",
             "review_status")
_MONTH = r"\d{4}-\d{2}"
_DATE_COLUMNS = {"published_on": r"\d{4}-\d{2}-\d{2}", "valid_from": _MONTH, "valid_to": _MONTH}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CATALOG = "catalog.toml"

# (parameter, unit) -> (canonical unit, multiplier), or None when no canonical unit fits.
_Conversions = dict[tuple[str, str], tuple[str, float] | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class _ListedFile:
    """A file named by the catalog: its path relative to the library root and its expected SHA-256."""

    path: str
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Edition:
    name: str
    released: date
    description: str
    files: tuple[_ListedFile, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Catalog:
    editions: tuple[_Edition, ...]
    gwp_sets: dict[str, _ListedFile]
    #: Allocation benchmark editions (``benchmarks/<edition>.csv``), by edition name.
    benchmark_editions: dict[str, _ListedFile]


@dataclass(frozen=True)
class FactorLibrary:
    """One factor library folder (``catalog.toml``, ``editions/``, ``gwp/``).

    Tables are parsed once per edition and GWP set and cached; callers get copies, so nothing they
    do can change what the next caller reads.
    """

    root: Path
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def editions(self) -> list[str]:
        """Edition names in catalog order, oldest first."""
        return [e.name for e in self._catalog().editions]

    def latest(self) -> str:
        """The newest edition: the one a calculation uses unless it names another."""
        return self._catalog().editions[-1].name

    def factors(self, edition: str | None = None) -> pd.DataFrame:
        """All factors of ``edition`` (None = latest), one row per factor, with canonical values.

        Adds ``edition``, ``source_file``, ``source_sha256``, ``value_canonical`` and
        ``unit_canonical`` to the CSV columns. Raises FactorError for an unknown edition, a file
        whose hash differs from the catalog, or an invalid row (naming file and row).
        """
        name = self.latest() if edition is None else edition
        key = f"edition:{name}"
        if key not in self._cache:
            self._cache[key] = _load_edition(self.root, self._edition(name))
        table: pd.DataFrame = self._cache[key]
        return table.copy()

    def gwp_sets(self) -> list[str]:
        """GWP vintages available, in catalog order (e.g. SAR, AR4, AR5, AR6)."""
        return list(self._catalog().gwp_sets)

    def gwp(self, gwp_set: str) -> pd.DataFrame:
        """GWP-100 values of one vintage: columns gas, gwp100, gwp_set, source, locator, review_status, note.

        The vintage is a ruleset parameter, never a global default, so asking for an unknown one is
        an error rather than a fallback.
        """
        listed = self._catalog().gwp_sets.get(gwp_set)
        if listed is None:
            raise FactorError(f"unknown GWP set '{gwp_set}'; known: {', '.join(self.gwp_sets())}")
        key = f"gwp:{gwp_set}"
        if key not in self._cache:
            self._cache[key] = _load_gwp(self.root, listed, gwp_set)
        table: pd.DataFrame = self._cache[key]
        return table.copy()

    def verify(self) -> None:
        """Check every file the catalog lists against its SHA-256; FactorError names the first changed one."""
        catalog = self._catalog()
        for edition in catalog.editions:
            for listed in edition.files:
                _read_verified(self.root, listed)
        for listed in catalog.gwp_sets.values():
            _read_verified(self.root, listed)
        for listed in catalog.benchmark_editions.values():
            _read_verified(self.root, listed)

    def benchmark_edition(self, edition: str) -> str | None:
        """The CSV text of allocation benchmark edition ``edition``, its SHA-256 checked; None when unlisted."""
        listed = self._catalog().benchmark_editions.get(edition)
        return None if listed is None else _read_verified(self.root, listed).decode("utf-8")

    def _catalog(self) -> _Catalog:
        if "catalog" not in self._cache:
            self._cache["catalog"] = _read_catalog(self.root)
        catalog: _Catalog = self._cache["catalog"]
        return catalog

    def _edition(self, name: str) -> _Edition:
        for edition in self._catalog().editions:
            if edition.name == name:
                return edition
        raise FactorError(f"unknown factor edition '{name}'; known: {', '.join(self.editions())}")


def load_library(root: Path | None = None) -> FactorLibrary:
    """Open the factor library at ``root`` (None = the packaged ``factors/`` folder) and verify its hashes.

    Verifying at open time makes a tampered or half-copied library fail at once, not in the middle
    of a calculation run.
    """
    library = FactorLibrary(_root(root))
    library.verify()
    return library


#: The code lists of the activity-data contract and their columns.
CODE_LISTS = {"fuels.csv": ("code", "name_zh", "name_en", "phase"), "carbonates.csv": ("code", "name_zh", "name_en")}


def fuel_phases(root: Path | None = None) -> dict[str, str]:
    """Fuel code of the activity-data contract -> ``solid``, ``liquid`` or ``gas``.

    Validation needs the phase to refuse, for instance, a bare ``m3`` for a gaseous fuel.
    """
    table = _read_code_list(_root(root) / "fuels.csv", CODE_LISTS["fuels.csv"])
    bad = table.loc[~table["phase"].isin(FUEL_PHASES)]
    if not bad.empty:
        row, phase = int(bad.index[0]) + 2, bad["phase"].iloc[0]
        raise FactorError(f"fuels.csv row {row}: phase '{phase}' is not one of solid, liquid, gas")
    return dict(zip(table["code"], table["phase"], strict=True))


def code_names(list_name: str, root: Path | None = None) -> dict[str, tuple[str, str]]:
    """Code -> (Chinese name, English name) of a code list of the contract (``fuels.csv``, ``carbonates.csv``)."""
    table = _read_code_list(_root(root) / list_name, CODE_LISTS[list_name])
    return dict(zip(table["code"], zip(table["name_zh"], table["name_en"], strict=True), strict=True))


def carbonate_codes(root: Path | None = None) -> frozenset[str]:
    """Carbonate codes of the activity-data contract (CaCO3, ..., CaMg(CO3)2)."""
    table = _read_code_list(_root(root) / "carbonates.csv", CODE_LISTS["carbonates.csv"])
    return frozenset(table["code"])


# --- catalog ---------------------------------------------------------------------------------------


def _root(root: Path | None) -> Path:
    return Path(str(files("factors"))) if root is None else Path(root)


def _read_catalog(root: Path) -> _Catalog:
    path = root / _CATALOG
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise FactorError(f"{_CATALOG}: cannot be read: {err}") from err
    raw_editions = data.get("editions")
    if not isinstance(raw_editions, list) or not raw_editions:
        raise FactorError(f"{_CATALOG}: no [[editions]] listed")
    editions = tuple(_parse_edition(root, raw) for raw in raw_editions)
    names = [e.name for e in editions]
    if len(set(names)) != len(names):
        raise FactorError(f"{_CATALOG}: an edition is listed twice: {names}")
    for older, newer in zip(editions, editions[1:], strict=False):
        if newer.released < older.released:
            raise FactorError(
                f"{_CATALOG}: edition {newer.name} is listed after {older.name} but released earlier"
            )
    gwp_sets = {}
    for raw in data.get("gwp_sets", []):
        name = str(raw.get("name", ""))
        if not name or name in gwp_sets:
            raise FactorError(f"{_CATALOG}: GWP set name '{name}' is empty or listed twice")
        gwp_sets[name] = _listed_file(raw, "", f"GWP set {name}")
    return _Catalog(editions=editions, gwp_sets=gwp_sets, benchmark_editions=_benchmark_editions(root, data))


def _benchmark_editions(root: Path, data: dict[str, Any]) -> dict[str, _ListedFile]:
    listed: dict[str, _ListedFile] = {}
    for raw in data.get("benchmark_editions", []):
        name = str(raw.get("edition", ""))
        if not name or name in listed:
            raise FactorError(f"{_CATALOG}: benchmark edition '{name}' is empty or listed twice")
        listed[name] = _listed_file(raw, "", f"benchmark edition {name}")
    on_disk = {f"benchmarks/{p.name}" for p in (root / "benchmarks").glob("*.csv")}
    unlisted = sorted(on_disk - {f.path for f in listed.values()})
    if unlisted:  # an edition dropped in without a catalog entry would be used unchecked
        raise FactorError(f"{_CATALOG}: {unlisted[0]} is a benchmark edition not listed in the catalog")
    return listed


def _parse_edition(root: Path, raw: dict[str, Any]) -> _Edition:
    name = str(raw.get("edition", ""))
    if not name or "/" in name or name.startswith("."):
        raise FactorError(f"{_CATALOG}: edition name '{name}' is not a plain folder name")
    released = raw.get("released")
    if isinstance(released, str):
        try:
            released = date.fromisoformat(released)
        except ValueError:
            released = None
    if not isinstance(released, date):
        raise FactorError(f"{_CATALOG}: edition {name} has no valid 'released' date")
    folder = f"editions/{name}"
    listed = tuple(_listed_file(f, folder, f"edition {name}") for f in raw.get("files", []))
    if not listed:
        raise FactorError(f"{_CATALOG}: edition {name} lists no files")
    on_disk = {f"{folder}/{p.name}" for p in (root / folder).glob("*.csv")}
    unlisted = sorted(on_disk - {f.path for f in listed})
    if unlisted:
        # A file dropped into an edition folder without a catalog entry would be silently ignored.
        raise FactorError(f"{_CATALOG}: {unlisted[0]} is in edition {name} but not listed in the catalog")
    return _Edition(name=name, released=released, description=str(raw.get("description", "")), files=listed)


def _listed_file(raw: dict[str, Any], folder: str, owner: str) -> _ListedFile:
    file = str(raw.get("file", ""))
    sha256 = str(raw.get("sha256", ""))
    if not file or file.startswith("/") or ".." in Path(file).parts:
        raise FactorError(f"{_CATALOG}: {owner} lists a file '{file}' that is not a relative path")
    if not _SHA256.match(sha256):
        raise FactorError(f"{_CATALOG}: {owner} file {file} has no valid sha256 (64 lower-case hex digits)")
    return _ListedFile(path=f"{folder}/{file}" if folder else file, sha256=sha256)


def _read_verified(root: Path, listed: _ListedFile) -> bytes:
    """The file's bytes, only if they hash to what the catalog recorded; the parse uses these bytes."""
    try:
        content = (root / listed.path).read_bytes()
    except OSError as err:
        raise FactorError(f"{listed.path}: listed in {_CATALOG} but cannot be read ({err.strerror})") from err
    actual = hashlib.sha256(content).hexdigest()
    if actual != listed.sha256:
        raise FactorError(
            f"{listed.path}: SHA-256 {actual} differs from {_CATALOG} ({listed.sha256}); editions are "
            "immutable, so put a corrected file in a new edition"
        )
    return content


# --- edition files ---------------------------------------------------------------------------------


def _read_csv(content: bytes, source: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """Every cell as a stripped string ('' when empty); the header must be exactly ``columns``."""
    try:
        table = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False, encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise FactorError(f"{source}: not a readable UTF-8 CSV ({err})") from err
    if tuple(table.columns) != columns:
        raise FactorError(f"{source}: header must be {','.join(columns)}; found {','.join(table.columns)}")
    return table.apply(lambda column: column.str.strip())


def _load_edition(root: Path, edition: _Edition) -> pd.DataFrame:
    frames = []
    for listed in edition.files:
        content = _read_verified(root, listed)
        table = _read_csv(content, listed.path, FACTOR_COLUMNS)
        table["edition"] = edition.name
        table["source_file"] = listed.path
        table["source_sha256"] = listed.sha256
        table["_row"] = range(2, len(table) + 2)  # the header is row 1
        frames.append(table)
    table = pd.concat(frames, ignore_index=True)
    conversions = _conversions(table)
    problems = _row_problems(table, conversions)
    if problems:
        summary = f"{len(problems)} invalid factor row(s) in edition {edition.name}"
        raise FactorError(f"{summary}: " + "; ".join(problems))
    return _typed(table, {key: found for key, found in conversions.items() if found is not None})


def _where(table: pd.DataFrame, index: int) -> str:
    return f"{table.at[index, 'source_file']} row {table.at[index, '_row']}"


def _row_problems(table: pd.DataFrame, conversions: _Conversions) -> list[str]:
    """Every problem found, each as '<file> row <n>: <what>' (the header is row 1)."""
    problems: list[tuple[int, str]] = []
    for column in _REQUIRED:
        for i in table.index[table[column] == ""]:
            problems.append((i, f"{column} is empty"))
    problems += _duplicate_problems(table)
    problems += _value_problems(table, conversions)
    problems += _format_problems(table)
    return [f"{_where(table, i)}: {message}" for i, message in sorted(problems, key=lambda p: p[0])]


def _duplicate_problems(table: pd.DataFrame) -> list[tuple[int, str]]:
    ids = table["factor_id"]
    duplicated = table.index[ids.duplicated(keep="first") & (ids != "")]
    first = {factor_id: i for i, factor_id in reversed(list(ids.items()))}
    return [(i, f"duplicate factor_id '{ids[i]}' (first at {_where(table, first[ids[i]])})")
            for i in duplicated]


def _value_problems(table: pd.DataFrame, conversions: _Conversions) -> list[tuple[int, str]]:
    """Unknown parameters, non-numbers, units that cannot reach the canonical unit, OF outside (0, 1]."""
    problems: list[tuple[int, str]] = []
    columns = (table.index, table["parameter"], table["unit"], table["value"])
    for i, parameter, unit, text in zip(*columns, strict=True):
        if parameter and parameter not in CANONICAL_UNITS:
            problems.append((i, f"unknown parameter '{parameter}' (known: {', '.join(CANONICAL_UNITS)})"))
            continue
        value = _finite(text)
        if text and value is None:
            problems.append((i, f"value '{text}' is not a finite number"))
        conversion = conversions.get((parameter, unit))
        if parameter and unit and conversion is None:
            expected = " or ".join(CANONICAL_UNITS[parameter])
            problems.append((i, f"unit '{unit}' cannot express {parameter} (expected like {expected})"))
        elif parameter == "oxidation_rate" and value is not None and conversion is not None:
            fraction = value * conversion[1]
            if not 0 < fraction <= 1:
                problems.append((i, f"oxidation_rate {text} ({unit}) is outside (0, 1]"))
    return problems


def _format_problems(table: pd.DataFrame) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    for i in table.index[~table["review_status"].isin(REVIEW_STATUSES) & (table["review_status"] != "")]:
        status = table.at[i, "review_status"]
        problems.append((i, f"review_status '{status}' is not verified or corroborated"))
    for i in table.index[(table["year"] != "") & ~table["year"].str.fullmatch(r"\d{4}")]:
        problems.append((i, f"year '{table.at[i, 'year']}' is not a four-digit year"))
    for column, pattern in _DATE_COLUMNS.items():
        for i in table.index[table[column] != ""]:
            if not _is_date(table.at[i, column], pattern):
                problems.append((i, f"{column} '{table.at[i, column]}' is not a date like {pattern}"))
    both = (table["valid_from"] != "") & (table["valid_to"] != "")
    for i in table.index[both & (table["valid_from"] > table["valid_to"])]:
        problems.append((i, "valid_from is after valid_to"))
    return problems


def _is_date(text: str, pattern: str) -> bool:
    if not re.fullmatch(pattern, text):
        return False
    try:
        date.fromisoformat(text if len(text) == 10 else f"{text}-01")
    except ValueError:
        return False
    return True


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _canonical(parameter: str, unit: str) -> tuple[str, float] | None:
    """The canonical unit ``unit`` converts to for ``parameter``, with its multiplier; None if none fits."""
    for candidate in CANONICAL_UNITS[parameter]:
        if has_dimension(unit, candidate):
            return candidate, multiplier(unit, candidate)
    return None


def _conversions(table: pd.DataFrame) -> _Conversions:
    """One conversion per distinct (parameter, unit), never one per row."""
    pairs = table.loc[table["parameter"].isin(CANONICAL_UNITS) & (table["unit"] != ""), ["parameter", "unit"]]
    return {(p, u): _canonical(p, u) for p, u in pairs.drop_duplicates().itertuples(index=False)}


def _typed(table: pd.DataFrame, conversions: dict[tuple[str, str], tuple[str, float]]) -> pd.DataFrame:
    """Numbers as float64, year as nullable Int64, empty optional text as missing, canonical columns added."""
    found = [conversions[key] for key in zip(table["parameter"], table["unit"], strict=True)]
    table["value"] = table["value"].astype("float64")
    table["year"] = pd.to_numeric(table["year"].where(table["year"] != "")).astype("Int64")
    optional = ["region", "value_basis", "locator", "url", "published_on", "valid_from", "valid_to", "note"]
    table[optional] = table[optional].where(table[optional] != "")
    factor = pd.Series([m for _, m in found], index=table.index, dtype="float64")
    table["value_canonical"] = table["value"] * factor
    table["unit_canonical"] = pd.Series([u for u, _ in found], index=table.index, dtype="str")
    return table.drop(columns="_row").reset_index(drop=True)


# --- GWP and code lists ----------------------------------------------------------------------------


def _load_gwp(root: Path, listed: _ListedFile, gwp_set: str) -> pd.DataFrame:
    table = _read_csv(_read_verified(root, listed), listed.path, GWP_COLUMNS)
    values = [_finite(v) for v in table["gwp100"]]
    for i, (gas, value) in enumerate(zip(table["gas"], values, strict=True)):
        where = f"{listed.path} row {i + 2}"
        if not gas or value is None or value <= 0:
            raise FactorError(f"{where}: needs a gas and a positive finite gwp100")
        if gas == "CO2" and value != 1:
            raise FactorError(f"{where}: the GWP of CO2 is 1 by definition, found {value}")
        if table.at[i, "review_status"] not in REVIEW_STATUSES or not table.at[i, "source"]:
            raise FactorError(f"{where}: needs a source and review_status verified or corroborated")
    twice = table["gas"][table["gas"].duplicated()]
    if not twice.empty:
        raise FactorError(f"{listed.path}: gas '{twice.iloc[0]}' is listed twice")
    table["gwp100"] = pd.Series(values, index=table.index, dtype="float64")
    table.insert(2, "gwp_set", gwp_set)
    return table


def _read_code_list(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        content = path.read_bytes()
    except OSError as err:
        raise FactorError(f"{path.name}: cannot be read ({err.strerror})") from err
    table = _read_csv(content, path.name, columns)
    if (table["code"] == "").any() or table["code"].duplicated().any():
        raise FactorError(f"{path.name}: every code must be present and unique")
    return table

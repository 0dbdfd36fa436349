"""Free allocation of allowances and pollutant rights, and the versioned allocation plan that drives it.

Methods (pure arithmetic; the service turns the results into journal transfers from the issuance
account, ``accounting.ledger``):

* **Benchmark** (national power-sector formula, methodology.md §9.2):
  ``Σ benchmark × output × Π correction factors`` over the enterprise's lines (for power: one line
  for electricity supplied, one for heat supplied).
* **Grandfathering**: ``historical intensity × output × decline factor``, the alternative for
  sectors without a benchmark.
* **Pre-allocation** at the start of the year: ``share`` (default 70 %) of the allocation computed
  with the *base-year* output; **true-up** once the year's emissions are locked: the allocation with
  the *actual* output minus what was pre-allocated (positive: issue more; negative: take back).
* **Pollutant discharge rights** from the permitted quantity (t/a in the discharge permit), in kg.

Why ``Decimal``: benchmarks, outputs and factors are exact decimal numbers as printed; binary floats
would make a 0.877 × 1 200 000 allocation depend on the order of operations. Inputs that are
``float`` are refused (``not_a_decimal``): write them as strings, ints or Decimals (the plan parser
reads TOML floats as Decimal).

Rounding rule, once per enterprise and never per line: **down to the whole tonne** (``ROUND_FLOOR``)
for every allocation, pre-allocation and true-up target, and down to the whole kg for pollutant
rights. Why down: an allowance is a whole unit that either exists or not; rounding down never
issues more than the formula grants, so the zone's total never exceeds the sum of its formulas, and
the cost to an enterprise is below one tonne. The true-up is the difference of two rounded totals,
so pre-allocation + true-up = the rounded final allocation exactly.

>>> whole_tonnes_allocated(benchmark_amount(output=Decimal("1000.5"), benchmark=Decimal("0.877"),
...                                         correction_factors=(Decimal("1.05"),)))
921
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from accounting.errors import AccountingError, InvalidFileError, RowError
from accounting.factors import load_library
from accounting.ledger import POLLUTANTS

#: Share of the base-year allocation issued before the year's output is known (national practice).
DEFAULT_PRE_ALLOCATION_SHARE = Decimal("0.70")
#: A correction factor outside (0, 2] is a typo (a percentage written as 105, a missing factor as 0).
MAX_CORRECTION_FACTOR = Decimal(2)
METHODS = ("benchmark", "grandfathering")
ORIGINS = frozenset({"national", "zone_defined"})
REVIEW_STATUSES = frozenset({"verified", "corroborated", "zone_defined"})
BENCHMARK_COLUMNS: tuple[str, ...] = (
    "benchmark_id", "sector", "product", "unit_class", "output_unit", "value", "unit", "valid_from_year",
    "valid_to_year", "origin", "review_status", "source", "locator", "note",
)
_EDITION = re.compile(r"^\d{4}\.\d+$")


class AllocationError(AccountingError):
    """An allocation the rules refuse; ``code`` says which rule."""

    code = "allocation_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Numbers


def to_decimal(value: object, *, name: str) -> Decimal:
    """``value`` (Decimal, int or a decimal string) as a finite Decimal; floats and bools are refused.

    >>> to_decimal("0.877", name="benchmark")
    Decimal('0.877')
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise AllocationError(f"{name} must be a Decimal, int or decimal string, not {value!r}",
                              code="not_a_decimal")
    try:
        number = value if isinstance(value, Decimal) else Decimal(value) if isinstance(value, int | str) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise AllocationError(f"{name} must be a finite decimal number, got {value!r}", code="not_a_decimal")
    return number


def _non_negative(value: object, *, name: str) -> Decimal:
    number = to_decimal(value, name=name)
    if number < 0:
        raise AllocationError(f"{name} must not be negative, got {number}", code="negative_quantity")
    return number


def _within(value: object, *, name: str, upper: Decimal, code: str) -> Decimal:
    """``value`` in (0, upper]."""
    number = to_decimal(value, name=name)
    if not 0 < number <= upper:
        raise AllocationError(f"{name} must be above 0 and at most {upper}, got {number}", code=code)
    return number


def whole_tonnes_allocated(amount: Decimal) -> int:
    """An exact allocation rounded down to the whole tonne (or kg): never issue what the formula does not grant.

    >>> whole_tonnes_allocated(Decimal("921.9999")), whole_tonnes_allocated(Decimal("0"))
    (921, 0)
    """
    if amount < 0:
        raise AllocationError(f"an allocation cannot be negative, got {amount}", code="negative_quantity")
    return int(amount.to_integral_value(rounding=ROUND_FLOOR))


def benchmark_amount(*, output: Decimal, benchmark: Decimal, correction_factors: Sequence[Decimal] = ()) -> Decimal:
    """Exact tonnes for one product line: output × benchmark × Π correction factors (each in (0, 2]).

    >>> benchmark_amount(output=Decimal(1000), benchmark=Decimal("0.877"))
    Decimal('877.000')
    """
    amount = _non_negative(output, name="output") * _non_negative(benchmark, name="benchmark")
    for factor in correction_factors:
        amount *= _within(factor, name="correction factor", upper=MAX_CORRECTION_FACTOR,
                          code="invalid_correction_factor")
    return amount


def grandfathered_amount(*, historical_intensity: Decimal, output: Decimal, decline_factor: Decimal) -> Decimal:
    """Exact tonnes by grandfathering: historical intensity (t per output unit) × output × decline factor in (0, 1].

    >>> grandfathered_amount(historical_intensity=Decimal("0.95"), output=Decimal(1000), decline_factor=Decimal("0.98"))
    Decimal('931.0000')
    """
    return (_non_negative(historical_intensity, name="historical intensity") * _non_negative(output, name="output")
            * _within(decline_factor, name="decline factor", upper=Decimal(1), code="invalid_decline_factor"))


def pollutant_rights_kg(*, pollutant: str, permitted_t: Decimal) -> int:
    """Pollutant discharge rights in whole kg from the permitted quantity in tonnes, rounded down.

    >>> pollutant_rights_kg(pollutant="SO2", permitted_t=Decimal("12.3456789"))
    12345
    """
    if pollutant not in POLLUTANTS:
        raise AllocationError(f"unknown pollutant '{pollutant}'; one of {', '.join(POLLUTANTS)}",
                              code="unknown_instrument")
    return whole_tonnes_allocated(_non_negative(permitted_t, name="permitted quantity") * 1000)


def true_up_t(*, final_allocation_t: int, pre_allocated_t: int, emissions_status: str) -> int:
    """Allowances still to issue (positive) or to take back (negative) once the year is locked.

    ``emissions_status`` is the review status of the enterprise-year; anything but ``locked`` is
    refused (``emissions_not_locked``): the true-up uses verified, locked output only.

    >>> true_up_t(final_allocation_t=900, pre_allocated_t=700, emissions_status="locked")
    200
    """
    if emissions_status != "locked":
        raise AllocationError(f"true-up needs the year's emissions locked, status is {emissions_status!r}",
                              code="emissions_not_locked")
    for name, value in (("final allocation", final_allocation_t), ("pre-allocation", pre_allocated_t)):
        if type(value) is not int or value < 0:
            raise AllocationError(f"{name} must be a non-negative int, got {value!r}", code="not_an_integer")
    return final_allocation_t - pre_allocated_t


# ---------------------------------------------------------------------------------------------
# Benchmark tables


@dataclass(frozen=True, slots=True, kw_only=True)
class Benchmark:
    """One benchmark row: tCO2 per unit of output for a product and unit class, valid for some years."""

    benchmark_id: str
    sector: str
    product: str
    unit_class: str
    output_unit: str
    value: Decimal
    unit: str
    valid_from_year: int
    valid_to_year: int | None
    origin: str
    review_status: str
    source: str
    locator: str

    def valid_in(self, year: int) -> bool:
        """True when the benchmark applies to compliance year ``year``."""
        return self.valid_from_year <= year and (self.valid_to_year is None or year <= self.valid_to_year)


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchmarkTable:
    """An immutable edition of benchmarks (``factors/benchmarks/<edition>.csv``)."""

    edition: str
    rows: tuple[Benchmark, ...]

    def find(self, *, benchmark_id: str, year: int) -> Benchmark:
        """The row of ``benchmark_id`` valid in ``year``: ``unknown_benchmark`` or ``benchmark_not_valid_for_year``."""
        candidates = [row for row in self.rows if row.benchmark_id == benchmark_id]
        if not candidates:
            raise AllocationError(f"unknown benchmark '{benchmark_id}' in edition {self.edition}",
                                  code="unknown_benchmark")
        for row in candidates:
            if row.valid_in(year):
                return row
        raise AllocationError(f"benchmark '{benchmark_id}' of edition {self.edition} has no value for {year}",
                              code="benchmark_not_valid_for_year")


def _year(text: str, *, column: str, row: int, errors: list[RowError], required: bool) -> int | None:
    if not text and not required:
        return None
    if re.fullmatch(r"\d{4}", text):
        return int(text)
    errors.append(RowError(row=row, column=column, value=text, expected="a four-digit year", code="invalid_year"))
    return None


def _benchmark_row(record: Mapping[str, str], *, row: int, errors: list[RowError]) -> Benchmark | None:
    before = len(errors)
    for column in ("benchmark_id", "sector", "product", "output_unit", "unit", "source"):
        if not record[column]:
            errors.append(RowError(row=row, column=column, value="", expected="a value", code="missing_value"))
    value: Decimal | None = None
    try:
        value = Decimal(record["value"])
    except InvalidOperation:
        pass
    if value is None or not value.is_finite() or value <= 0:
        errors.append(RowError(row=row, column="value", value=record["value"], expected="a positive decimal",
                               code="invalid_value"))
    start = _year(record["valid_from_year"], column="valid_from_year", row=row, errors=errors, required=True)
    end = _year(record["valid_to_year"], column="valid_to_year", row=row, errors=errors, required=False)
    if record["origin"] not in ORIGINS:
        errors.append(RowError(row=row, column="origin", value=record["origin"],
                               expected=" or ".join(sorted(ORIGINS)), code="invalid_origin"))
    if record["review_status"] not in REVIEW_STATUSES:
        errors.append(RowError(row=row, column="review_status", value=record["review_status"],
                               expected=", ".join(sorted(REVIEW_STATUSES)), code="invalid_review_status"))
    if record["origin"] == "zone_defined" and "ZONE-DEFINED" not in record["source"]:
        errors.append(RowError(row=row, column="source", value=record["source"],
                               expected="a source that starts by saying ZONE-DEFINED", code="unlabelled_zone_value"))
    if len(errors) > before or value is None or start is None:
        return None
    return Benchmark(benchmark_id=record["benchmark_id"], sector=record["sector"], product=record["product"],
                     unit_class=record["unit_class"], output_unit=record["output_unit"], value=value,
                     unit=record["unit"], valid_from_year=start, valid_to_year=end, origin=record["origin"],
                     review_status=record["review_status"], source=record["source"], locator=record["locator"])


def parse_benchmarks(text: str, *, edition: str) -> BenchmarkTable:
    """A benchmark edition from CSV text; InvalidFileError listing every bad row and column.

    Two rows of one ``benchmark_id`` must not overlap in years (``overlapping_years``): a lookup
    must have exactly one answer.
    """
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != BENCHMARK_COLUMNS:
        raise InvalidFileError([RowError(row=None, column=None, value=",".join(reader.fieldnames or ()),
                                         expected=",".join(BENCHMARK_COLUMNS), code="invalid_header")],
                               source=f"benchmarks {edition}")
    errors: list[RowError] = []
    rows: list[Benchmark] = []
    for number, record in enumerate(reader, start=2):
        parsed = _benchmark_row({k: (v or "").strip() for k, v in record.items() if k is not None},
                                row=number, errors=errors)
        if parsed is None:
            continue
        for other in rows:
            if other.benchmark_id == parsed.benchmark_id and _overlap(other, parsed):
                errors.append(RowError(row=number, column="valid_from_year", value=str(parsed.valid_from_year),
                                       expected=f"years that do not overlap another {parsed.benchmark_id} row",
                                       code="overlapping_years"))
        rows.append(parsed)
    if errors:
        raise InvalidFileError(errors, source=f"benchmarks {edition}")
    return BenchmarkTable(edition=edition, rows=tuple(rows))


def _overlap(a: Benchmark, b: Benchmark) -> bool:
    far = 10_000
    return a.valid_from_year <= (b.valid_to_year or far) and b.valid_from_year <= (a.valid_to_year or far)


def load_benchmarks(edition: str) -> BenchmarkTable:
    """The benchmark edition the factor library's catalog lists (``factors/benchmarks/<edition>.csv``), its
    SHA-256 checked: a changed file fails (FactorError naming it) rather than allocating from other values.

    >>> load_benchmarks("2026.1").find(benchmark_id="power-coal-above-300mw", year=2020).value
    Decimal('0.877')
    """
    if not _EDITION.match(edition):
        raise AllocationError(f"benchmark edition must look like 2026.1, got {edition!r}",
                              code="unknown_benchmark_edition")
    text = load_library().benchmark_edition(edition)
    if text is None:
        raise AllocationError(f"no benchmark edition {edition}", code="unknown_benchmark_edition")
    return parse_benchmarks(text, edition=edition)


# ---------------------------------------------------------------------------------------------
# Allocation plans


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchmarkLine:
    """One product line allocated by benchmark: the benchmark, the base-year output and correction factors."""

    benchmark_id: str
    base_year_output: Decimal
    correction_factors: tuple[Decimal, ...] = ()

    @property
    def key(self) -> str:
        """What actual outputs are keyed by at true-up."""
        return self.benchmark_id

    def amount(self, *, output: Decimal, table: BenchmarkTable, year: int) -> Decimal:
        """Exact tonnes for ``output``."""
        benchmark = table.find(benchmark_id=self.benchmark_id, year=year).value
        return benchmark_amount(output=output, benchmark=benchmark, correction_factors=self.correction_factors)


@dataclass(frozen=True, slots=True, kw_only=True)
class GrandfatheringLine:
    """One product line allocated by grandfathering: historical intensity, base-year output and decline factor."""

    product: str
    historical_intensity: Decimal
    base_year_output: Decimal
    decline_factor: Decimal

    @property
    def key(self) -> str:
        """What actual outputs are keyed by at true-up."""
        return self.product

    def amount(self, *, output: Decimal, table: BenchmarkTable, year: int) -> Decimal:
        """Exact tonnes for ``output`` (the table and year are not used: no benchmark)."""
        return grandfathered_amount(historical_intensity=self.historical_intensity, output=output,
                                    decline_factor=self.decline_factor)


AllocationLine = BenchmarkLine | GrandfatheringLine


@dataclass(frozen=True, slots=True, kw_only=True)
class EnterprisePlan:
    """How one enterprise is allocated: its method and its product lines."""

    enterprise_id: str
    method: str
    lines: tuple[AllocationLine, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PollutantPermit:
    """A permitted annual discharge (t) of one pollutant for one enterprise."""

    enterprise_id: str
    pollutant: str
    permitted_t: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationPlan:
    """A versioned allocation plan: what an officer loads and approves before anything is issued."""

    plan_id: str
    version: int
    year: int
    benchmark_edition: str
    pre_allocation_share: Decimal
    enterprises: tuple[EnterprisePlan, ...]
    pollutant_permits: tuple[PollutantPermit, ...] = ()


def pre_allocation_t(plan: EnterprisePlan, *, table: BenchmarkTable, year: int,
                     share: Decimal = DEFAULT_PRE_ALLOCATION_SHARE) -> int:
    """Allowances issued at the start of ``year``: share × allocation at base-year output, rounded down once."""
    share = _within(share, name="pre-allocation share", upper=Decimal(1), code="invalid_share")
    exact = sum((line.amount(output=line.base_year_output, table=table, year=year) for line in plan.lines),
                Decimal(0))
    return whole_tonnes_allocated(share * exact)


def final_allocation_t(plan: EnterprisePlan, *, actual_outputs: Mapping[str, Decimal], table: BenchmarkTable,
                       year: int) -> int:
    """The year's whole allocation at actual output (keyed by benchmark id or product), rounded down once.

    Every line needs its actual output (``missing_output``) and no output may name an unknown line
    (``unknown_output``): a typo must not silently allocate zero.
    """
    keys = {line.key for line in plan.lines}
    if missing := sorted(keys - set(actual_outputs)):
        raise AllocationError(f"actual output missing for {', '.join(missing)}", code="missing_output")
    if unknown := sorted(set(actual_outputs) - keys):
        raise AllocationError(f"actual output for unknown lines {', '.join(unknown)}", code="unknown_output")
    exact = sum((line.amount(output=_non_negative(actual_outputs[line.key], name=f"output of {line.key}"),
                             table=table, year=year) for line in plan.lines), Decimal(0))
    return whole_tonnes_allocated(exact)


# -- parsing ----------------------------------------------------------------------------------


class _Collector:
    """Collects every problem of a plan file; each names its field path in ``column``."""

    def __init__(self) -> None:
        self.errors: list[RowError] = []

    def add(self, *, row: int | None, path: str, value: object, expected: str, code: str) -> None:
        self.errors.append(RowError(row=row, column=path, value=None if value is None else str(value),
                                    expected=expected, code=code))

    def text(self, table: Mapping[str, Any], key: str, *, row: int | None, path: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            self.add(row=row, path=path, value=value, expected="a non-empty string", code="missing_value")
            return ""
        return value.strip()

    def integer(self, table: Mapping[str, Any], key: str, *, row: int | None, path: str, low: int, high: int) -> int:
        value = table.get(key)
        if type(value) is not int or not low <= value <= high:
            self.add(row=row, path=path, value=value, expected=f"an integer from {low} to {high}",
                     code="invalid_value")
            return low
        return value

    def decimal(self, table: Mapping[str, Any], key: str, *, row: int | None, path: str,
                default: Decimal | None = None) -> Decimal:
        value = table.get(key, default)
        try:
            number = to_decimal(value, name=path)
            if number < 0:
                raise AllocationError(path, code="negative_quantity")
        except AllocationError as error:
            self.add(row=row, path=path, value=value, expected="a non-negative decimal number", code=error.code)
            return Decimal(0)
        return number


def _factors(collector: _Collector, value: object, *, row: int, path: str) -> tuple[Decimal, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        collector.add(row=row, path=path, value=value, expected="a list of numbers", code="invalid_value")
        return ()
    factors = []
    for index, item in enumerate(value):
        try:
            factors.append(_within(item, name=path, upper=MAX_CORRECTION_FACTOR, code="invalid_correction_factor"))
        except AllocationError as error:
            collector.add(row=row, path=f"{path}[{index}]", value=item, expected="a number in (0, 2]",
                          code=error.code)
    return tuple(factors)


def _line(collector: _Collector, method: str, raw: object, *, row: int, path: str) -> AllocationLine | None:
    if not isinstance(raw, dict):
        collector.add(row=row, path=path, value=raw, expected="a table", code="invalid_value")
        return None
    output = collector.decimal(raw, "base_year_output", row=row, path=f"{path}.base_year_output")
    if method == "benchmark":
        return BenchmarkLine(benchmark_id=collector.text(raw, "benchmark_id", row=row, path=f"{path}.benchmark_id"),
                             base_year_output=output,
                             correction_factors=_factors(collector, raw.get("correction_factors"), row=row,
                                                         path=f"{path}.correction_factors"))
    decline = raw.get("decline_factor")
    try:
        decline_factor = _within(decline, name="decline factor", upper=Decimal(1), code="invalid_decline_factor")
    except AllocationError as error:
        collector.add(row=row, path=f"{path}.decline_factor", value=decline, expected="a number in (0, 1]",
                      code=error.code)
        decline_factor = Decimal(1)
    return GrandfatheringLine(product=collector.text(raw, "product", row=row, path=f"{path}.product"),
                              historical_intensity=collector.decimal(raw, "historical_intensity", row=row,
                                                                     path=f"{path}.historical_intensity"),
                              base_year_output=output, decline_factor=decline_factor)


def _enterprise(collector: _Collector, raw: object, *, row: int) -> EnterprisePlan | None:
    path = f"enterprises[{row}]"
    if not isinstance(raw, dict):
        collector.add(row=row, path=path, value=raw, expected="a table", code="invalid_value")
        return None
    enterprise_id = collector.text(raw, "enterprise_id", row=row, path=f"{path}.enterprise_id")
    method = raw.get("method")
    if method not in METHODS:
        collector.add(row=row, path=f"{path}.method", value=method, expected=" or ".join(METHODS),
                      code="unknown_method")
        return None
    raw_lines = raw.get("lines")
    if not isinstance(raw_lines, list) or not raw_lines:
        collector.add(row=row, path=f"{path}.lines", value=raw_lines, expected="at least one line",
                      code="missing_value")
        return None
    lines = [_line(collector, method, item, row=row, path=f"{path}.lines[{i}]") for i, item in enumerate(raw_lines)]
    keys = [line.key for line in lines if line is not None]
    if len(keys) != len(set(keys)):
        collector.add(row=row, path=f"{path}.lines", value=",".join(keys), expected="each line once",
                      code="duplicate_line")
    return EnterprisePlan(enterprise_id=enterprise_id, method=method,
                          lines=tuple(line for line in lines if line is not None))


def _permits(collector: _Collector, raw: object) -> list[PollutantPermit]:
    permits: list[PollutantPermit] = []
    for row, item in enumerate(raw if isinstance(raw, list) else [], start=1):
        path = f"pollutant_permits[{row}]"
        if not isinstance(item, dict):
            collector.add(row=row, path=path, value=item, expected="a table", code="invalid_value")
            continue
        pollutant = item.get("pollutant")
        if pollutant not in POLLUTANTS:
            collector.add(row=row, path=f"{path}.pollutant", value=pollutant, expected=", ".join(POLLUTANTS),
                          code="unknown_instrument")
        permits.append(PollutantPermit(
            enterprise_id=collector.text(item, "enterprise_id", row=row, path=f"{path}.enterprise_id"),
            pollutant=str(pollutant),
            permitted_t=collector.decimal(item, "permitted_t", row=row, path=f"{path}.permitted_t")))
    return permits


def parse_allocation_plan(text: str, *, source: str | None = None) -> AllocationPlan:
    """An allocation plan from TOML; InvalidFileError listing every problem (row = enterprise or permit, 1-based).

    ``column`` holds the field path, e.g. ``enterprises[2].lines[0].benchmark_id``. TOML floats are
    read as Decimal, so ``0.877`` stays exactly 0.877.
    """
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as error:
        raise InvalidFileError([RowError(row=None, column=None, value=None, expected=f"valid TOML ({error})",
                                         code="invalid_toml")], source=source) from error
    collector = _Collector()
    plan_id = collector.text(raw, "plan_id", row=None, path="plan_id")
    version = collector.integer(raw, "version", row=None, path="version", low=1, high=1_000_000)
    year = collector.integer(raw, "year", row=None, path="year", low=2019, high=2060)
    edition = collector.text(raw, "benchmark_edition", row=None, path="benchmark_edition")
    if edition and not _EDITION.match(edition):
        collector.add(row=None, path="benchmark_edition", value=edition, expected="an edition like 2026.1",
                      code="unknown_benchmark_edition")
    share_value = raw.get("pre_allocation_share", DEFAULT_PRE_ALLOCATION_SHARE)
    try:
        share = _within(share_value, name="pre_allocation_share", upper=Decimal(1), code="invalid_share")
    except AllocationError as error:
        collector.add(row=None, path="pre_allocation_share", value=share_value, expected="a number in (0, 1]",
                      code=error.code)
        share = DEFAULT_PRE_ALLOCATION_SHARE
    raw_enterprises = raw.get("enterprises")
    if not isinstance(raw_enterprises, list) or not raw_enterprises:
        collector.add(row=None, path="enterprises", value=None, expected="at least one [[enterprises]] table",
                      code="missing_value")
        raw_enterprises = []
    enterprises = [_enterprise(collector, item, row=row) for row, item in enumerate(raw_enterprises, start=1)]
    _check_unique(collector, [(row, e.enterprise_id) for row, e in enumerate(enterprises, start=1) if e is not None])
    permits = _permits(collector, raw.get("pollutant_permits"))
    if collector.errors:
        raise InvalidFileError(collector.errors, source=source)
    return AllocationPlan(plan_id=plan_id, version=version, year=year, benchmark_edition=edition,
                          pre_allocation_share=share, enterprises=tuple(e for e in enterprises if e is not None),
                          pollutant_permits=tuple(permits))


def _check_unique(collector: _Collector, enterprise_ids: Iterable[tuple[int, str]]) -> None:
    seen: set[str] = set()
    for row, enterprise_id in enterprise_ids:
        if enterprise_id and enterprise_id in seen:
            collector.add(row=row, path=f"enterprises[{row}].enterprise_id", value=enterprise_id,
                          expected="each enterprise once per plan", code="duplicate_enterprise")
        seen.add(enterprise_id)

"""Helpers shared by tests: build activity files in memory and calculate them."""

from __future__ import annotations

import csv
import io
from typing import Any

from accounting.activity import SourceFile
from accounting.calculation import CalculationOptions
from accounting.factors import FactorLibrary, load_library
from pipelines.warehouse import calculate_sources

ENTERPRISE = "91410100MA44A2B3CG"  # a valid unified social credit code


def csv_file(rows: list[dict[str, Any]], *, name: str = "lines.csv") -> SourceFile:
    """A template CSV with the union of the rows' keys as header; enterprise and period defaulted."""
    full = [{"enterprise_id": ENTERPRISE, "period": "2023-01", **row} for row in rows]
    columns = list(dict.fromkeys(k for row in full for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(full)
    return SourceFile(name, buffer.getvalue().encode("utf-8"))


def calculate(rows: list[dict[str, Any]], *, library: FactorLibrary | None = None, **options: Any) -> dict[str, Any]:
    return calculate_sources([csv_file(rows)], library=library or load_library(),
                             options=CalculationOptions(**options))


def only_line(document: dict[str, Any]) -> dict[str, Any]:
    lines = [line for result in document["results"] for line in result["lines"]]
    assert len(lines) == 1
    return lines[0]


def line_tco2e(row: dict[str, Any], **options: Any) -> float:
    return float(only_line(calculate([row], **options))["tco2e"])

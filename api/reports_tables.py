"""A report's tables as downloads: CSV (every table, one after the other) and XLSX (one sheet per table).

The cells are the stored numbers, unrounded (the rounding of ``accounting.reports.format_cell`` is for
reading, not for further calculation), written through ``api.exports`` so text that a spreadsheet would
run as a formula is neutralized and CSV carries a byte-order mark for Excel in a Chinese locale. Headers
are the columns' bilingual labels with their units; the first sheet of the workbook (and the first lines
of the CSV) hold the report's facts and provenance, so a downloaded table still names its factor edition
and run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from openpyxl import Workbook

from accounting.reports import Report, Table
from api.exports import UTF8_BOM, cell_value, csv_bytes, neutralize, workbook_bytes

_SHEET_FORBIDDEN = str.maketrans(dict.fromkeys("[]:*?/\\", " "))


def _facts_rows(report: Report) -> list[list[object]]:
    rows: list[list[object]] = [[report.title.both()]]
    rows += [[fact.label.both(), cell_value(fact.value)] for fact in report.facts]
    rows.append([report.provenance.footer()])
    return rows


def _table_rows(table: Table) -> tuple[list[str], list[dict[str, object]]]:
    headers = [column.header() for column in table.columns]
    rows: list[dict[str, object]] = [{column.header(): row.get(column.key) for column in table.columns}
                                     for row in table.all_rows()]
    return headers, rows


def _without_bom(content: bytes) -> bytes:
    return content[len(UTF8_BOM):] if content.startswith(UTF8_BOM) else content


def report_csv(report: Report) -> bytes:
    """The facts, then every table under its title, separated by blank lines."""
    parts: list[bytes] = []
    for line in _facts_rows(report):
        parts.append(_without_bom(csv_bytes([str(cell) for cell in line], [])))
    for table in report.tables:
        headers, rows = _table_rows(table)
        parts.append(b"\r\n")
        parts.append(_without_bom(csv_bytes([table.title.both()], [])))
        parts.append(_without_bom(csv_bytes(headers, rows)))
    return UTF8_BOM + b"".join(parts)


def _sheet_names(tables: Sequence[Table]) -> Iterable[str]:
    used: set[str] = set()
    for index, table in enumerate(tables, start=1):
        name = table.title.zh.translate(_SHEET_FORBIDDEN)[:31] or f"table {index}"
        if name in used:
            name = f"{index} {name}"[:31]
        used.add(name)
        yield name


def report_xlsx(report: Report) -> bytes:
    """A workbook: sheet 1 the facts and provenance, then one sheet per table."""
    workbook = Workbook()
    overview = workbook.active
    assert overview is not None  # a new workbook has one sheet  # noqa: S101
    overview.title = "概况 Overview"
    for line in _facts_rows(report):
        overview.append(line)
    for table, name in zip(report.tables, _sheet_names(report.tables), strict=True):
        sheet = workbook.create_sheet(name)
        headers, rows = _table_rows(table)
        sheet.append([neutralize(h) for h in headers])
        for row in rows:
            sheet.append([_xlsx_cell(row.get(h)) for h in headers])
    return workbook_bytes(workbook)


def _xlsx_cell(value: object) -> object:
    """XLSX has one number type: a Decimal (a target, a ratio) is written as its nearest float."""
    written = cell_value(value)
    return float(written) if isinstance(written, Decimal) else written

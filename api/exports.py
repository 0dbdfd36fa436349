"""Tables as CSV or XLSX downloads, safe to open in a spreadsheet.

A text cell beginning with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some
spreadsheets skip before reading a formula) would be read as a formula by Excel, LibreOffice or WPS:
such cells are written with a leading apostrophe, so they show as the text that was submitted
(OWASP's "CSV injection" advice). Numbers stay numbers: ``-5`` as a number is not touched.

CSV is UTF-8 with a byte-order mark (so Excel in a Chinese locale reads it as UTF-8, not GBK) and CRLF
line ends; XLSX cells holding text are typed as strings, never formulas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from fastapi import Response
from openpyxl import Workbook

ExportFormat = Literal["json", "csv", "xlsx"]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
UTF8_BOM = "\ufeff".encode()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: For a route's ``responses``: the two download forms next to its JSON.
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}},
                      XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
          "description": "JSON, or with format=csv / format=xlsx the same table as a download"}}


def neutralize(value: object) -> object:
    """The cell as written: text that a spreadsheet would take for a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def cell_value(value: object) -> object:
    """A value as a cell: numbers stay numbers, None is empty, booleans are words, text is neutralized."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return value
    return neutralize(str(value))


def csv_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralize(c) for c in columns])
    for row in rows:
        writer.writerow([cell_value(row.get(c)) for c in columns])
    return UTF8_BOM + buffer.getvalue().encode("utf-8")


def workbook_bytes(workbook: Workbook) -> bytes:
    """The workbook as a file, every text cell typed as text (never a formula)."""
    for worksheet in workbook.worksheets:
        for line in worksheet.iter_rows(min_row=1):
            for cell in line:
                if isinstance(cell.value, str):
                    cell.data_type = "s"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def xlsx_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *, sheet: str) -> bytes:
    workbook = Workbook(write_only=False)
    worksheet = workbook.active
    assert worksheet is not None  # a new workbook has one sheet  # noqa: S101
    worksheet.title = sheet[:31]
    worksheet.append([neutralize(c) for c in columns])
    for row in rows:
        worksheet.append([cell_value(row.get(c)) for c in columns])
    return workbook_bytes(workbook)


def attachment(content: bytes, *, media_type: str, filename: str) -> Response:
    """A file to download, named ``filename``."""
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def download(fmt: ExportFormat, *, name: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]],
             sheet: str | None = None) -> Response:
    """The table as a CSV or XLSX attachment named ``name``.csv / .xlsx (its sheet named ``sheet``, else ``name``)."""
    if fmt == "csv":
        content, media_type = csv_bytes(columns, rows), CSV_MEDIA_TYPE
    else:
        content, media_type = xlsx_bytes(columns, rows, sheet=sheet or name), XLSX_MEDIA_TYPE
    return attachment(content, media_type=media_type, filename=f"{name}.{fmt}")


def flatten(record: Mapping[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """A nested record as one row: ``{"totals": {"co2e_t": 1}}`` → ``{"totals.co2e_t": 1}``; lists as JSON-ish text."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            row.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, list):
            row[name] = "; ".join(str(v) for v in value)
        else:
            row[name] = value
    return row

"""The blank activity-data template: CSV (the header row) and XLSX (the columns, and a sheet explaining them).

Both come from ``accounting.activity_template``, the one description of the columns that the submission
parser reads back; a file downloaded here, filled in, is accepted as it is.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

from accounting.activity import COLUMNS, TEMPLATE_VERSION
from accounting.activity_template import DESCRIPTION_HEADER, DESCRIPTION_SHEET, TEMPLATE_SHEET, description_rows
from api.exports import XLSX_MEDIA_TYPE, attachment, download, neutralize, workbook_bytes
from api.schemas import Problem

router = APIRouter(prefix="/v1/templates", tags=["templates"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}})

FILE_STEM = f"activity-template-v{TEMPLATE_VERSION}"


def template_xlsx() -> bytes:
    """Sheet 1: the header row (the parser reads the first sheet); sheet 2: every column explained."""
    workbook = Workbook()
    template = workbook.active
    assert template is not None  # a new workbook has one sheet  # noqa: S101
    template.title = TEMPLATE_SHEET
    template.append(list(COLUMNS))
    template.freeze_panes = "A2"
    for cell in template[1]:
        cell.font = Font(bold=True)
        # text cells: Excel would turn an all-digit credit code into 9.14E+17 and lose its last digits
        template.column_dimensions[cell.column_letter].number_format = "@"
        template.column_dimensions[cell.column_letter].width = max(12, len(str(cell.value)) + 2)
    explained = workbook.create_sheet(DESCRIPTION_SHEET)
    explained.append([label.both() for label in DESCRIPTION_HEADER])
    for row in description_rows():
        explained.append([neutralize(text) for text in row])
    for line in explained.iter_rows(min_row=1):
        for cell in line:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for letter, width in zip("ABCDEF", (26, 16, 40, 40, 24, 80), strict=True):
        explained.column_dimensions[letter].width = width
    return workbook_bytes(workbook)


@router.get("/activity.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "the header row of template version 1, UTF-8 with a byte-order mark"}})
def activity_csv() -> Response:
    """The blank template as CSV: the header row only (UTF-8 with a byte-order mark, for Excel in Chinese)."""
    return download("csv", name=FILE_STEM, columns=COLUMNS, rows=[])


@router.get("/activity.xlsx", response_class=Response,
            responses={200: {"content": {XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
                             "description": "the template and, on its second sheet, every column explained"}})
def activity_xlsx() -> Response:
    """The blank template as XLSX, with a second sheet explaining every column in Chinese and English."""
    return attachment(template_xlsx(), media_type=XLSX_MEDIA_TYPE, filename=f"{FILE_STEM}.xlsx")

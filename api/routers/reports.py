"""Reports to hand on: the enterprise's annual greenhouse-gas report, the zone report, the compliance report.

Each is one model (``accounting.reports``, gathered by ``api.services.reports``) in the form asked for with
``format``: ``json`` (the model, numbers unrounded), ``pdf``, ``html`` (a standalone printable page), ``csv``
(every table) or ``xlsx`` (one sheet per table). The same numbers in every form; PDF and page round them by
the report's written rule.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from accounting.ledger import FIRST_VINTAGE, LAST_VINTAGE
from accounting.reports import Report, format_cell
from api.deps import SessionDep, SettingsDep, SnapshotDep
from api.errors import NotFoundError
from api.exports import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, attachment
from api.reports_pdf import pdf_bytes
from api.reports_tables import report_csv, report_xlsx
from api.schemas import Problem
from api.services import reports as report_service
from api.web.render import render

router = APIRouter(prefix="/v1/reports", tags=["reports"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem},
                              422: {"model": Problem}, 503: {"model": Problem}})

ReportFormat = Literal["json", "pdf", "html", "csv", "xlsx"]
FormatQuery = Annotated[ReportFormat, Query(alias="format", description="json, pdf, html (printable), csv or xlsx")]
PDF_MEDIA_TYPE = "application/pdf"
REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {PDF_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
                      "text/html": {"schema": {"type": "string"}},
                      "text/csv": {"schema": {"type": "string"}},
                      XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
          "description": "the report as JSON, or with format=pdf / html / csv / xlsx in that form"}}


class LabelOut(BaseModel):
    zh: str
    en: str


class ColumnOut(BaseModel):
    key: str
    label: LabelOut
    kind: str
    unit: str


class TableOut(BaseModel):
    key: str
    title: LabelOut
    columns: list[ColumnOut]
    rows: list[dict[str, Any]]
    totals: list[dict[str, Any]]
    note: LabelOut | None


class FactOut(BaseModel):
    key: str
    label: LabelOut
    value: Any
    kind: str


class ProvenanceOut(BaseModel):
    editions: list[str]
    run_ids: list[str]
    rulesets: list[str]
    gwp_sets: list[str]
    grid_regions: list[str]
    source: LabelOut


class ReportOut(BaseModel):
    """A report: facts about its subject, its tables (unrounded numbers), headline totals and provenance."""

    kind: str
    title: LabelOut
    subject: str
    facts: list[FactOut]
    tables: list[TableOut]
    totals: dict[str, Any]
    provenance: ProvenanceOut
    rounding: LabelOut
    notes: list[LabelOut]


def _answer(report: Report, fmt: ReportFormat, request: Request) -> ReportOut | Response:
    stem = report.file_stem
    if fmt == "json":
        return ReportOut.model_validate(dataclasses.asdict(report))
    if fmt == "html":
        return render(request, "reports/report.html", report=report, cell=format_cell)
    content, media_type = {
        "pdf": lambda: (pdf_bytes(report), PDF_MEDIA_TYPE),
        "csv": lambda: (report_csv(report), CSV_MEDIA_TYPE),
        "xlsx": lambda: (report_xlsx(report), XLSX_MEDIA_TYPE),
    }[fmt]()
    return attachment(content, media_type=media_type, filename=f"{stem}.{fmt}")


def _found(build: Any) -> Report:
    try:
        report: Report = build()
    except report_service.ReportNotFoundError as err:
        raise NotFoundError(str(err), code=err.code) from err
    return report


@router.get("/enterprises/{enterprise_id}/ghg/{year}", response_model=ReportOut, responses=REPORT_RESPONSES)
def enterprise_ghg(enterprise_id: Annotated[str, Path(max_length=18)],
                   year: Annotated[int, Path(ge=1900, le=2999, description="the reporting year")],
                   cursor: SnapshotDep, request: Request, fmt: FormatQuery = "json") -> ReportOut | Response:
    """The enterprise's annual greenhouse-gas report, laid out like the reporting tables of GB/T 32151."""
    report = _found(lambda: report_service.enterprise_ghg(cursor, enterprise_id=enterprise_id, year=year))
    return _answer(report, fmt, request)


@router.get("/zone/{period}", response_model=ReportOut, responses=REPORT_RESPONSES)
def zone(period: Annotated[str, Path(pattern=r"^\d{4}(-(0[1-9]|1[0-2]))?$", description="YYYY or YYYY-MM")],
         cursor: SnapshotDep, settings: SettingsDep, request: Request,
         fmt: FormatQuery = "json") -> ReportOut | Response:
    """The zone's monthly or annual report: by sector, category and key emitter, intensities against targets."""
    report = _found(lambda: report_service.zone(cursor, settings=settings, period=period))
    return _answer(report, fmt, request)


@router.get("/compliance/{year}", response_model=ReportOut, responses=REPORT_RESPONSES)
def compliance(year: Annotated[int, Path(ge=FIRST_VINTAGE, le=LAST_VINTAGE, description="the compliance year")],
               session: SessionDep, settings: SettingsDep, request: Request,
               fmt: FormatQuery = "json") -> ReportOut | Response:
    """Per enterprise: verified emissions, allocation, surrendered and shortfall for the compliance year."""
    report = _found(lambda: report_service.compliance(session, settings=settings, year=year))
    return _answer(report, fmt, request)

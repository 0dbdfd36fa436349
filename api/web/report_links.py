"""The one place the pages name the report routes (``api/routers/reports.py``) and the formats they offer."""

from __future__ import annotations

from urllib.parse import quote

#: The printable page first, then the files.
REPORT_FORMATS = ("html", "pdf", "xlsx", "csv")
REPORT_PATHS = {
    "ghg": "/v1/reports/enterprises/{enterprise_id}/ghg/{year}",
    "zone": "/v1/reports/zone/{period}",
    "compliance": "/v1/reports/compliance/{year}",
}


def report_links(report: str, **parts: object) -> list[dict[str, str]]:
    """The links of one report in every format, e.g. ``report_links("zone", period="2024-03")``."""
    path = REPORT_PATHS[report].format(**{name: quote(str(value), safe="") for name, value in parts.items()})
    return [{"format": fmt, "href": f"{path}?format={fmt}"} for fmt in REPORT_FORMATS]

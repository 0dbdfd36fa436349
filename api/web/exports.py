"""Every data table of a page as a CSV or XLSX download, read back from the page itself.

A page asked with ``?export=<table id>&format=csv|xlsx`` is rendered as usual, by the same route, with the same
query, access check and data; its ``<table id=...>`` is then read back into rows and answered as a file instead
of the page. Reading the rendered table, rather than building each download a second time from the data, is what
keeps the file equal to what the reader sees, on every page, with one mechanism: the same columns in the same
order, the headers in the page's language, the same rows (the current page of a paged list).

Cells are read by one rule (``cell_value``): a cell that keeps its raw number in ``data-value`` gives that
number, unrounded; a numeric cell (``class="num"``) without one gives the number it shows (``1,234.5`` →
1234.5); every other cell gives its visible text (badges and links as their words; ``—`` stays ``—``). A row
made of one cell spanning the whole table is the page's "nothing here" line and is left out. The files are
written by ``api.exports`` (formula neutralizing, UTF-8 BOM, typed cells).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from api.errors import InvalidOptionsError, NotFoundError
from api.exports import download

EXPORT_PARAM = "export"
FORMAT_PARAM = "format"
TableFormat = Literal["csv", "xlsx"]
TABLE_FORMATS: tuple[TableFormat, ...] = ("csv", "xlsx")
#: Elements whose content is not part of what a cell shows.
SILENT_TAGS = frozenset({"script", "style", "template"})
VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
                       "wbr"})
#: Elements that make a line or box of their own inside a cell: their text is kept apart from its neighbours.
SEPARATING_TAGS = frozenset({"br", "div", "p", "li", "tr", "td", "th"})
#: A raw number as templates print it (``str`` of an int, float or Decimal).
RAW_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
INTEGER = re.compile(r"-?\d+")
#: A number as the ``num`` filter shows it: thousands separators, optional decimals.
SHOWN_NUMBER = re.compile(r"-?\d{1,3}(,\d{3})*(\.\d+)?")
UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class UnknownExportFormatError(InvalidOptionsError):
    """``format`` of a table download is neither csv nor xlsx (answered 422, like any invalid option)."""

    code = "unknown_export_format"


@dataclass(frozen=True, slots=True)
class TableRows:
    """A table as read from a page: its header labels (unique) and its rows, each as long as the header."""

    columns: list[str]
    rows: list[list[object]]


@dataclass(slots=True)
class _Cell:
    raw: str | None
    numeric: bool
    span: int
    header: bool
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())


@dataclass(slots=True)
class _Row:
    in_head: bool
    cells: list[_Cell] = field(default_factory=list)


class _TableReader(HTMLParser):
    """The rows of the one table with ``id == table_id``; tables nested in its cells count as the cell's text."""

    def __init__(self, table_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.table_id = table_id
        self.found = False
        self.rows: list[_Row] = []
        self._depth = 0  # tables open from the wanted one inwards; 0 = outside it
        self._in_head = False
        self._cell: _Cell | None = None
        self._silent: list[str] = []  # open silent/hidden elements: their text is not shown

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if self._depth == 0:
            if tag == "table" and not self.found and found.get("id") == self.table_id:
                self.found, self._depth = True, 1
            return
        if self._silent:
            if tag not in VOID_TAGS:
                self._silent.append(tag)
            return
        if tag in SILENT_TAGS or "hidden" in found:
            if tag not in VOID_TAGS:
                self._silent.append(tag)
            return
        if tag == "table":
            self._depth += 1
        elif self._depth == 1:
            self._start_in_table(tag, found)
        if tag in SEPARATING_TAGS and self._cell is not None:
            self._cell.parts.append(" ")

    def _start_in_table(self, tag: str, attrs: dict[str, str | None]) -> None:
        if tag == "thead":
            self._in_head = True
        elif tag in ("tbody", "tfoot"):
            self._in_head = False
        elif tag == "tr":
            self._cell = None
            self.rows.append(_Row(in_head=self._in_head))
        elif tag in ("td", "th") and self.rows:
            span = attrs.get("colspan") or "1"
            self._cell = _Cell(raw=attrs.get("data-value"), numeric="num" in (attrs.get("class") or "").split(),
                               span=int(span) if span.isdigit() and int(span) > 0 else 1, header=tag == "th")
            self.rows[-1].cells.append(self._cell)

    def handle_endtag(self, tag: str) -> None:
        if self._depth == 0:
            return
        if self._silent:
            if self._silent[-1] == tag:
                self._silent.pop()
            return
        if tag in SEPARATING_TAGS and self._cell is not None:
            self._cell.parts.append(" ")
        if tag == "table":
            self._depth -= 1
        elif self._depth == 1 and tag in ("td", "th", "tr"):
            self._cell = None
        elif self._depth == 1 and tag == "thead":
            self._in_head = False

    def handle_data(self, data: str) -> None:
        if self._depth and not self._silent and self._cell is not None:
            self._cell.parts.append(data)


def parse_number(text: str, *, shown: bool = False) -> int | Decimal | None:
    """``text`` as an int or a Decimal (exactly its digits), or None when it is not a plain number.

    ``shown=True`` also reads the page's formatting (``-1,234.50``); a raw value never has separators.
    """
    text = text.strip()
    if shown and SHOWN_NUMBER.fullmatch(text):
        text = text.replace(",", "")
    if not RAW_NUMBER.fullmatch(text):
        return None
    return int(text) if INTEGER.fullmatch(text) else Decimal(text)


def cell_value(*, text: str, raw: str | None, numeric: bool) -> object:
    """What a cell is in the file: its raw number, else the number a numeric cell shows, else its text."""
    if raw is not None and (number := parse_number(raw)) is not None:
        return number
    if numeric and (number := parse_number(text, shown=True)) is not None:
        return number
    return text


def unique_labels(labels: list[str]) -> list[str]:
    """Header labels made unique (a second ``tCO₂e`` becomes ``tCO₂e (2)``), so each names one column."""
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return unique


def _spread(cells: list[_Cell], *, as_header: bool) -> list[object]:
    values: list[object] = []
    for cell in cells:
        values.append(cell.text if as_header else cell_value(text=cell.text, raw=cell.raw, numeric=cell.numeric))
        values.extend([""] * (cell.span - 1))
    return values


def _is_header(row: _Row) -> bool:
    return row.in_head or bool(row.cells and all(c.header for c in row.cells))


def read_table(html: str, *, table_id: str) -> TableRows | None:
    """The table ``table_id`` of a page as header and rows; None when the page has no such table."""
    reader = _TableReader(table_id)
    reader.feed(html)
    reader.close()
    if not reader.found:
        return None
    heads = [r for r in reader.rows if _is_header(r)]
    body = [r for r in reader.rows if r.cells and not _is_header(r)]
    labels = [str(v) for v in _spread(heads[0].cells, as_header=True)] if heads else []
    width = max([len(labels), *(sum(c.span for c in r.cells) for r in body)])
    columns = unique_labels(labels + [""] * (width - len(labels)))
    rows = [_spread(r.cells, as_header=False) for r in body
            if not (len(r.cells) == 1 and r.cells[0].span >= width > 1)]  # the "nothing here" line
    return TableRows(columns=columns, rows=[row + [""] * (width - len(row)) for row in rows])


def export_href(request: Request, table_id: str, fmt: str) -> str:
    """The link that downloads ``table_id`` of the page being shown: its path and query, plus the table and format."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in (EXPORT_PARAM, FORMAT_PARAM)]
    return f"{request.url.path}?{urlencode([*kept, (EXPORT_PARAM, table_id), (FORMAT_PARAM, fmt)])}"


def file_stem(path: str, *, table_id: str) -> str:
    """``/ui/enterprises/X/lineage/2024-01`` and ``lineage-lines`` → ``enterprises-X-lineage-2024-01-lineage-lines``."""
    parts = [p for p in path.removeprefix("/ui").split("/") if p] + [table_id]
    return "-".join(UNSAFE_IN_NAME.sub("_", p) for p in parts)


def requested_export(request: Request) -> str | None:
    """The table id a page request asks to download (``?export=``), or None for the page itself."""
    return request.query_params.get(EXPORT_PARAM)


def table_download(request: Request, page: str, *, table_id: str) -> Response:
    """The table ``table_id`` of the rendered ``page`` in the ``format`` the request asks for."""
    fmt = request.query_params.get(FORMAT_PARAM, "")
    if fmt not in TABLE_FORMATS:
        raise UnknownExportFormatError(f"format must be one of {', '.join(TABLE_FORMATS)}, got '{fmt}'")
    table = read_table(page, table_id=table_id)
    if table is None:
        raise NotFoundError(f"this page has no table '{table_id}'", code="table_not_found")
    records = [dict(zip(table.columns, row, strict=True)) for row in table.rows]
    answer = download(fmt, name=file_stem(request.url.path, table_id=table_id), columns=table.columns, rows=records,
                      sheet=UNSAFE_IN_NAME.sub("_", table_id))
    answer.headers["Cache-Control"] = "no-store"  # one user's data, like the page
    return answer

"""A report (``accounting.reports.Report``) as a PDF: A4 landscape, bilingual, every number traceable.

Why these choices:

* Chinese text is set in reportlab's built-in CID font ``STSong-Light`` (the Adobe-GB1 font every PDF
  reader carries), so no font file has to be shipped or downloaded; everything else, numbers above all,
  is set in Helvetica, so a reader (or a test with ``pypdf``) extracts the digits exactly as shown.
* Numbers are formatted by ``accounting.reports.format_cell``, the one rounding rule of every report.
* Each table repeats its header row on every page it spans; each page carries its number, the factor
  edition(s) and the calculation run(s) in the footer.
* The PDF's metadata is fixed (no creation time, no random id), so the same report gives the same bytes.
"""

from __future__ import annotations

import io
import re
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from accounting.reports import Column, Fact, Report, format_cell
from accounting.reports import Table as ReportTable

CJK_FONT = "STSong-Light"
LATIN_FONT = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"
PAGE = landscape(A4)
MARGIN = 12 * mm
CELL_SIZE = 7.0
_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]+")
_NUMERIC = frozenset({"emission", "energy", "quantity", "factor", "intensity", "share", "tonnes", "fen", "count"})


def _register_fonts() -> None:
    """Register the CID font once per process (reportlab keeps a global registry)."""
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))


def mixed(text: str) -> str:
    """Paragraph markup of ``text``: runs of Chinese in the CID font, the rest (digits) in the Latin font.

    >>> mixed("排放量 12,345 t")
    '<font name="STSong-Light">排放量</font> 12,345 t'
    """
    parts: list[str] = []
    position = 0
    for match in _CJK.finditer(text):
        parts.append(escape(text[position:match.start()]))
        parts.append(f'<font name="{CJK_FONT}">{escape(match.group())}</font>')
        position = match.end()
    parts.append(escape(text[position:]))
    return "".join(parts)


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("cell", fontName=LATIN_FONT, fontSize=CELL_SIZE, leading=CELL_SIZE * 1.23)
    return {
        "title": ParagraphStyle("title", parent=base, fontName=LATIN_BOLD, fontSize=15, leading=19, spaceAfter=4),
        "heading": ParagraphStyle("heading", parent=base, fontName=LATIN_BOLD, fontSize=10, leading=13,
                                  spaceBefore=8, spaceAfter=3, keepWithNext=1),
        "fact": ParagraphStyle("fact", parent=base, fontSize=8.5, leading=11),
        "note": ParagraphStyle("note", parent=base, fontSize=7, leading=9, textColor=colors.HexColor("#444444")),
        "cell": base,
        "number": ParagraphStyle("number", parent=base, alignment=TA_RIGHT),
        "header": ParagraphStyle("header", parent=base, fontName=LATIN_BOLD),
    }


def _text_width(text: str, size: float) -> float:
    """Printed width of ``text`` in points: Chinese runs in the CID font, the rest in the Latin font."""
    width, position = 0.0, 0
    for match in _CJK.finditer(text):
        width += float(pdfmetrics.stringWidth(text[position:match.start()], LATIN_FONT, size))
        width += float(pdfmetrics.stringWidth(match.group(), CJK_FONT, size))
        position = match.end()
    return width + float(pdfmetrics.stringWidth(text[position:], LATIN_FONT, size))


def _widths(table: ReportTable, available: float) -> list[float]:
    """Numbers get the width they need (they never wrap); text columns share the rest, wrapping if they must."""
    padding, least, most = 6.0, 12 * mm, 70 * mm  # padding: 2 pt each side and a margin for rounding
    needed: list[float] = []
    for column in table.columns:
        cells = [format_cell(row.get(column.key), column.kind) for row in table.all_rows()]
        longest = max((_text_width(c, CELL_SIZE) for c in cells), default=0.0)
        header_word = max((_text_width(w, CELL_SIZE) * 1.1 for w in column.header().split()), default=0.0)
        needed.append(max(longest, header_word) + padding)
    numeric = [c.kind in _NUMERIC for c in table.columns]
    fixed = sum(w for w, n in zip(needed, numeric, strict=True) if n)
    text = [min(max(w, least), most) for w, n in zip(needed, numeric, strict=True) if not n]
    room = max(available - fixed, least * len(text))
    scale = room / sum(text) if text and sum(text) > room else 1.0
    shares = iter(w * scale for w in text)
    widths = [w if n else next(shares) for w, n in zip(needed, numeric, strict=True)]
    spare = available - sum(widths)
    if spare > 0 and text:  # widen the text columns to the full page width
        widths = [w if n else w + spare / len(text) for w, n in zip(widths, numeric, strict=True)]
    return widths


def _cell(value: object, column: Column, styles: dict[str, ParagraphStyle]) -> Paragraph:
    text = format_cell(value, column.kind)  # type: ignore[arg-type]
    style = styles["number"] if column.kind in _NUMERIC else styles["cell"]
    return Paragraph(mixed(text), style)


def _table(table: ReportTable, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    available = PAGE[0] - 2 * MARGIN
    header = [Paragraph(mixed(c.header()), styles["header"]) for c in table.columns]
    body = [[_cell(row.get(c.key), c, styles) for c in table.columns] for row in table.all_rows()]
    flowables: list[Flowable] = [Paragraph(mixed(table.title.both()), styles["heading"])]
    if not body:
        flowables.append(Paragraph(mixed("无数据 no data"), styles["note"]))
        return flowables
    grid = Table([header, *body], colWidths=_widths(table, available), repeatRows=1)
    commands: list[tuple[object, ...]] = [
        ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#999999")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 2), ("RIGHTPADDING", (0, 0), (-1, -1), 2),
    ]
    if table.totals:
        commands.append(("BACKGROUND", (0, len(body) - len(table.totals) + 1), (-1, -1), colors.HexColor("#f3f3f3")))
    grid.setStyle(TableStyle(commands))
    flowables.append(grid)
    if table.note:
        flowables.append(Paragraph(mixed(table.note.both()), styles["note"]))
    return flowables


def _facts(facts: tuple[Fact, ...], styles: dict[str, ParagraphStyle]) -> Flowable:
    rows = [[Paragraph(mixed(f.label.both()), styles["fact"]), Paragraph(mixed(format_cell(f.value, f.kind)),
                                                                        styles["fact"])] for f in facts]
    grid = Table(rows, colWidths=[90 * mm, PAGE[0] - 2 * MARGIN - 90 * mm])
    grid.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, -1), 0.2, colors.HexColor("#cccccc")),
                              ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    return grid


def _footer(report: Report) -> str:
    return report.provenance.footer()


def pdf_bytes(report: Report) -> bytes:
    """The report as a PDF document; each page says "page N of M" (laid out twice: first to count the pages)."""
    pages = _laid_out(report, pages=None)[1]
    return _laid_out(report, pages=pages)[0]


def _laid_out(report: Report, *, pages: int | None) -> tuple[bytes, int]:
    """The PDF and its number of pages; ``pages`` is the total to print on each page (None: not known yet)."""
    _register_fonts()
    styles = _styles()
    story: list[Flowable] = [Paragraph(mixed(report.title.both()), styles["title"]), _facts(report.facts, styles),
                             Spacer(1, 3 * mm)]
    for table in report.tables:
        story.extend(_table(table, styles))
    story.append(Spacer(1, 3 * mm))
    for note in (report.rounding, report.provenance.source, *report.notes):
        story.append(Paragraph(mixed(note.both()), styles["note"]))
    footer = _footer(report)

    def decorate(canvas: Canvas, document: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(LATIN_FONT, 7)
        canvas.setFillColor(colors.HexColor("#444444"))
        canvas.drawRightString(PAGE[0] - MARGIN, 7 * mm, f"page {document.page} of {pages or '?'}")
        _draw_mixed(canvas, MARGIN, 7 * mm, footer)
        _draw_mixed(canvas, MARGIN, PAGE[1] - 8 * mm, f"{report.title.both()} · {report.subject}")
        canvas.restoreState()

    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                                 bottomMargin=MARGIN, title=report.title.en, author="zone carbon accounting",
                                 subject=report.subject, creator="zone carbon accounting", invariant=1)
    document.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue(), document.page


def _draw_mixed(canvas: Canvas, x: float, y: float, text: str) -> None:
    """One line of mixed text on the canvas, switching fonts at each run of Chinese."""
    position = 0
    for match in [*_CJK.finditer(text), None]:
        end = match.start() if match else len(text)
        if end > position:
            canvas.setFont(LATIN_FONT, 7)
            canvas.drawString(x, y, text[position:end])
            x += pdfmetrics.stringWidth(text[position:end], LATIN_FONT, 7)
        if match:
            canvas.setFont(CJK_FONT, 7)
            canvas.drawString(x, y, match.group())
            x += pdfmetrics.stringWidth(match.group(), CJK_FONT, 7)
            position = match.end()

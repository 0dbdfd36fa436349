"""Reading a rendered table back into rows for its CSV/XLSX download (``api.web.exports``): the tricky cells."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from starlette.requests import Request

from api.exports import csv_bytes
from api.web.exports import cell_value, export_href, file_stem, read_table

PAGE = """
<html><body>
<table class="data" id="other"><thead><tr><th>Not this one</th></tr></thead><tbody><tr><td>x</td></tr></tbody></table>
<table class="data" id="balances" data-testid="balances">
  <thead><tr><th data-sort="text"><a href="?sort=period">期间</a></th><th class="num">净排放量 (tCO₂e)</th>
    <th class="num">tCO₂e</th><th>状态</th><th class="num">tCO₂e</th><th>备注</th></tr></thead>
  <tbody>
  <tr data-period="2024-01">
    <td><a href="/ui/x?period=2024-01">2024-01</a></td>
    <td class="num" data-value="12345.678901234"><a href="/lineage">12,345.7</a></td>
    <td class="num">-1,234.50</td>
    <td><span class="badge status-locked" data-status="locked">已锁定</span>
        <span class="badge status-held">暂缓</span></td>
    <td class="num" data-value="-0.5">-0.5</td>
    <td>=HYPERLINK("http://x")<span class="muted"> (第 <b>3</b> 行)</span></td>
  </tr>
  <tr>
    <td>2024-02</td>
    <td class="num" data-value="None">—</td>
    <td class="num">3 / 12</td>
    <td></td>
    <td class="num" data-value="">—</td>
    <td>12.5<br>GJ<script>ignored()</script><span hidden>not shown</span><div>a</div><div>b</div>c</td>
  </tr>
  <tr><td>2024-03</td><td class="num" data-value="900">900</td><td colspan="4">merged</td></tr>
  <tr><td colspan="6" class="muted">暂无数据</td></tr>
  </tbody>
</table>
<table class="data" id="nested"><tr><th>a</th></tr><tr><td><table><tr><td>in</td><td>ner</td></tr></table></td></tr>
</table>
</body></html>
"""


def test_a_table_is_read_by_its_id_with_unique_headers_in_the_pages_words() -> None:
    table = read_table(PAGE, table_id="balances")
    assert table is not None
    assert table.columns == ["期间", "净排放量 (tCO₂e)", "tCO₂e", "状态", "tCO₂e (2)", "备注"]
    assert read_table(PAGE, table_id="missing") is None


def test_raw_numbers_shown_numbers_badges_links_and_empty_cells_become_what_the_page_means() -> None:
    table = read_table(PAGE, table_id="balances")
    assert table is not None
    first, second, third = table.rows  # the "nothing here" row spanning the table is left out
    assert first == ["2024-01", Decimal("12345.678901234"), Decimal("-1234.50"), "已锁定 暂缓", Decimal("-0.5"),
                     '=HYPERLINK("http://x") (第 3 行)']
    assert second == ["2024-02", "—", "3 / 12", "", "—", "12.5 GJ a b c"]
    assert third == ["2024-03", 900, "merged", "", "", ""]
    assert type(third[1]) is int


def test_a_table_nested_in_a_cell_is_that_cells_text() -> None:
    table = read_table(PAGE, table_id="nested")
    assert table is not None
    assert (table.columns, table.rows) == (["a"], [["in ner"]])


@pytest.mark.parametrize(("text", "raw", "numeric", "expected"), [
    ("1,234.6", "1234.56789", True, Decimal("1234.56789")),
    ("1,234.6", "1234.56789", False, Decimal("1234.56789")),  # the raw value wins wherever it is kept
    ("1e-05", "1e-05", True, Decimal("0.00001")),
    ("—", "nan", True, "—"),
    ("12,345", None, True, 12345),
    ("12,345", None, False, "12,345"),  # a text cell stays text
    ("1,2345", None, True, "1,2345"),  # not a number as the page formats them
    ("2024-01", None, True, "2024-01"),
    ("-3", None, False, "-3"),
])
def test_one_rule_decides_what_a_cell_is(text: str, raw: str | None, numeric: bool, expected: object) -> None:
    assert cell_value(text=text, raw=raw, numeric=numeric) == expected
    assert type(cell_value(text=text, raw=raw, numeric=numeric)) is type(expected)


def test_formulas_in_cells_are_written_as_text_and_negative_numbers_stay_numbers() -> None:
    table = read_table(PAGE, table_id="balances")
    assert table is not None
    content = csv_bytes(table.columns, [dict(zip(table.columns, row, strict=True)) for row in table.rows])
    assert content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[1][5] == "'=HYPERLINK(\"http://x\") (第 3 行)"
    assert rows[1][2] == "-1234.50" and rows[1][4] == "-0.5"  # numbers, not neutralized text


def test_the_download_link_keeps_the_pages_query_and_the_file_is_named_from_the_path() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/ui/review", "headers": [],
                       "query_string": b"status=calculated&status=in_review&export=old&format=pdf&offset=20"})
    assert export_href(request, "review-queue", "xlsx") == (
        "/ui/review?status=calculated&status=in_review&offset=20&export=review-queue&format=xlsx")
    assert file_stem("/ui/enterprises/91410100X/lineage/2024-01", table_id="lineage-lines") == (
        "enterprises-91410100X-lineage-2024-01-lineage-lines")
    assert file_stem("/ui/market/CEA 2025/", table_id="bidders-A:1") == "market-CEA_2025-bidders-A_1"

"""Every data table on the pages downloads as CSV and XLSX (issue 7, item 3): the numbers the page shows, unrounded
where the page keeps the raw value, equal to the API's; headers in the page's language; under the page's access.

Two small fixtures for the module: the sample registry with January 2024 submitted and calculated in a database of
its own over the published sample snapshot (with a reviewer's comment that reads like a spreadsheet formula), and a
market with one trade and resting orders on each side (``tests.exchange_support.market``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from api.main import create_app
from pipelines.settings import Settings
from tests.auth_support import OFFICER, VERIFIER, enterprise
from tests.component.web_support import TEMPLATES, Element, Page, squash
from tests.exchange_support import INSTRUMENT, QIAN, ZHOU, Market, market
from tests.review_support import review_zone

CHP = "914101022286058318"
GAS = "91410102170679896E"
CEMENT = "91410100437387498P"
CHP_USER, GAS_USER = enterprise(CHP), enterprise(GAS)
FORMULA_COMMENT = '=HYPERLINK("http://example.invalid","核对第 3 行")'
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def client(published_zone: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("web-exports")
    with review_zone(data_dir, database_url=f"sqlite:///{data_dir / 'carbon.sqlite'}", published=published_zone,
                     months=("2024-01",), serving_path=published_zone.serving, rate_limit_per_minute=0) as zone:
        commented = zone.client.post(f"/v1/review/periods/{CHP}/2024-01/actions", headers=OFFICER,
                                     json={"action": "comment", "reason": FORMULA_COMMENT})
        assert commented.status_code == 200, commented.text
        yield zone.client


@pytest.fixture(scope="module")
def published(published_zone: Settings) -> Iterator[TestClient]:
    """The published sample zone as it is (read only): every month calculated, findings with their rows."""
    with TestClient(create_app(published_zone.model_copy(update={"rate_limit_per_minute": 0}))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def mkt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    data_dir = tmp_path_factory.mktemp("web-exports-market")
    with market(data_dir, f"sqlite:///{data_dir / 'carbon.sqlite'}", rate_limit_per_minute=0) as created:
        for headers, account, side, quantity, price in ((ZHOU, "TR-ZHOU", "sell", 300, 5010),
                                                       (QIAN, "TR-QIAN", "buy", 120, 5050),  # 120 t at 50.10
                                                       (QIAN, "TR-QIAN", "buy", 60, 4990)):
            placed = created.order(headers, account, side, quantity, price)
            assert placed.status_code == 201, placed.text
        yield created


def get(client: TestClient, url: str, headers: dict[str, str], *, status: int = 200, **kwargs: Any) -> Any:
    answer = client.get(url, headers=headers, follow_redirects=False, **kwargs)
    assert answer.status_code == status, (url, answer.status_code, answer.text[-800:])
    return answer


def data_tables(page: Page) -> list[Element]:
    return [t for t in page.all(tag="table") if "data" in t.attrs.get("class", "").split()]


def header_labels(table: Element) -> list[str]:
    return [squash(th.text) for th in table.children if th.tag == "th"]


def csv_rows(content: bytes) -> list[list[str]]:
    assert content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def xlsx_rows(content: bytes) -> list[tuple[Any, ...]]:
    sheet = load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    return list(sheet.iter_rows(values_only=True))


def download(client: TestClient, url: str, headers: dict[str, str], table_id: str, fmt: str, **params: Any) -> Any:
    answer = get(client, url, headers, params={**params, "export": table_id, "format": fmt})
    assert answer.headers["content-type"].startswith("text/csv" if fmt == "csv" else XLSX)
    assert re.fullmatch(rf'attachment; filename="[A-Za-z0-9._-]+-{re.escape(table_id)}\.{fmt}"',
                        answer.headers["content-disposition"])
    return answer.content


def check_every_table(client: TestClient, url: str, headers: dict[str, str]) -> int:
    """Each data table of the page has an id, its two links, and a CSV with its header and its rows."""
    page = Page.parse(get(client, url, headers).text)
    tables = data_tables(page)
    ids = [t.attrs.get("id", "") for t in tables]
    assert all(ids) and len(set(ids)) == len(ids), (url, ids)
    for table in tables:
        table_id = table["id"]
        links = page.one(testid=f"downloads-{table_id}")
        for fmt in ("csv", "xlsx"):
            href = next(a["href"] for a in links.children if a.attrs.get("data-testid") == f"download-{table_id}-{fmt}")
            assert href.endswith(f"export={table_id}&format={fmt}") and href.startswith(url.split("?")[0] + "?")
        rows = csv_rows(get(client, links.children[0]["href"], headers).content)
        assert rows[0] == header_labels(table), (url, table_id)
        body = [tr for tr in table.children if tr.tag == "tr" and any(c.tag == "td" for c in tr.children)
                and not any(c.attrs.get("colspan") == str(len(rows[0])) for c in tr.children)]
        assert len(rows) - 1 == len(body), (url, table_id)
    return len(tables)


def test_every_data_table_in_the_templates_has_an_id_and_download_links() -> None:
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        tables = re.findall(r'<table class="data"[^>]*>', text)
        assert all(' id="' in tag for tag in tables), path
        assert len(tables) == text.count("ui.downloads(t, request, "), path


def test_every_data_table_on_every_page_downloads_with_its_header_and_rows(client: TestClient, published: TestClient,
                                                                            mkt: Market) -> None:
    with_findings = Page.parse(get(published, f"/ui/enterprises/{CEMENT}?period=2024-03", VERIFIER).text)
    assert [t["id"] for t in data_tables(with_findings) if t["id"].startswith("finding-")]
    shown = check_every_table(published, f"/ui/enterprises/{CEMENT}?period=2024-03", VERIFIER)
    for url, headers in (("/ui/zone?year=2024", OFFICER), ("/ui/enterprises?limit=200", OFFICER),
                         (f"/ui/enterprises/{CHP}?year=2024&period=2024-01", OFFICER),
                         (f"/ui/enterprises/{CHP}/lineage/2024-01?line=all", OFFICER),
                         ("/ui/review?status=calculated", OFFICER), ("/ui/rights?year=2024", OFFICER),
                         (f"/ui/rights/{CHP}?year=2024", CHP_USER), ("/ui/my", CHP_USER), (f"/ui/my/{CHP}", CHP_USER)):
        shown += check_every_table(client, url, headers)
    for url in ("/ui/market", f"/ui/market/{INSTRUMENT}", "/ui/market/auctions"):
        shown += check_every_table(mkt.client, url, OFFICER)
    assert shown >= 30


def test_the_lineage_download_holds_each_quantity_as_a_number_beside_its_unit(client: TestClient) -> None:
    lines = get(client, f"/v1/enterprises/{CHP}/lineage/2024-01", OFFICER).json()["lines"]
    url = f"/ui/enterprises/{CHP}/lineage/2024-01"
    rows = csv_rows(download(client, url, OFFICER, "lineage-lines", "csv", line="all"))
    header, body = rows[0], rows[1:]
    quantity, unit, converted, converted_unit, heat = (header.index(label) for label in (
        "填报数量", "填报单位", "单位换算后", "换算单位", "GJ"))
    by_row = {(line["source_file"], line["row"]): line for line in lines}
    assert len(body) == len(lines) > 3
    for row in body:
        line = by_row[(row[0], int(row[1]))]
        assert (Decimal(row[quantity]), row[unit]) == (Decimal(str(line["quantity"])), line["unit"]), row
        assert Decimal(row[converted]) == Decimal(str(line["quantity_canonical"])), row
        assert row[converted_unit] == (line["unit_canonical"] or "")
        if line["heat_gj"] is None:
            assert row[heat] == "—", row
        else:
            assert Decimal(row[heat]) == Decimal(str(line["heat_gj"])), row
    assert any(line["heat_gj"] is not None for line in lines)
    sheet = xlsx_rows(download(client, url, OFFICER, "lineage-lines", "xlsx", line="all"))
    assert all(isinstance(r[quantity], int | float) and isinstance(r[unit], str) for r in sheet[1:])


def test_a_paged_list_downloads_the_whole_filtered_list(client: TestClient) -> None:
    for url, table_id in (("/ui/enterprises", "enterprise-list"), ("/ui/review", "review-queue")):
        whole = data_tables(Page.parse(get(client, url, OFFICER, params={"limit": 200}).text))
        [listed] = [t for t in whole if t["id"] == table_id]
        shown = [tr for tr in listed.children if tr.tag == "tr" and any(c.tag == "td" for c in tr.children)]
        assert len(shown) > 3, url
        rows = csv_rows(download(client, url, OFFICER, table_id, "csv", limit=3, offset=1))
        assert len(rows) - 1 == len(shown), url


def test_the_zone_months_download_holds_the_apis_indicators_unrounded(client: TestClient) -> None:
    indicators = [r for r in get(client, "/v1/zone/indicators", OFFICER).json()["items"]
                  if r["period"].startswith("2024")]
    page = Page.parse(get(client, "/ui/zone?year=2024", OFFICER).text)
    labels = header_labels(page.one(id="zone-months"))
    assert labels[5] == "净排放量 (tCO₂e)"
    rows = csv_rows(download(client, "/ui/zone", OFFICER, "zone-months", "csv", year=2024))
    assert rows[0] == labels
    assert [r[0] for r in rows[1:]] == [i["period"] for i in indicators]
    assert [float(r[5]) for r in rows[1:]] == [i["net_tco2e"] for i in indicators]  # exactly: not the 1-decimal view
    assert any(r[5] != f"{float(r[5]):.1f}" for r in rows[1:])
    sheet = xlsx_rows(download(client, "/ui/zone", OFFICER, "zone-months", "xlsx", year=2024))
    assert list(sheet[0]) == labels
    # XLSX keeps 16 significant digits (openpyxl writes "%.16g"; Excel itself shows 15)
    assert [r[5] for r in sheet[1:]] == pytest.approx([i["net_tco2e"] for i in indicators], rel=1e-15, abs=0)
    assert [r[8] for r in sheet[1:]] == pytest.approx([i["tco2e_per_10k_cny_value_added"] for i in indicators],
                                                      rel=1e-15, abs=0)
    english = csv_rows(get(client, "/ui/zone?year=2024&export=zone-months&format=csv",
                           {**OFFICER, "Cookie": "carbon_lang=en"}).content)
    assert english[0][5] == "Net emissions (tCO₂e)" and english[1:] == rows[1:]


def test_an_enterprise_downloads_its_monthly_emissions_as_the_api_has_them(client: TestClient) -> None:
    served = get(client, f"/v1/enterprises/{CHP}/emissions/monthly?year=2024", CHP_USER).json()["items"]
    page = Page.parse(get(client, f"/ui/my/{CHP}?year=2024", CHP_USER).text)
    fields = [c["data-field"] for c in page.all(testid="emissions-row")[0].children if "data-field" in c.attrs]
    rows = csv_rows(download(client, f"/ui/my/{CHP}", CHP_USER, "emissions", "csv", year=2024))
    sheet = xlsx_rows(download(client, f"/ui/my/{CHP}", CHP_USER, "emissions", "xlsx", year=2024))
    assert [r[0] for r in rows[1:]] == [b["period"] for b in served] and len(served) == 12
    for csv_row, xlsx_row, balance in zip(rows[1:], sheet[1:], served, strict=True):
        for index, field in enumerate(fields, start=1):
            expected = balance["totals"][field]
            assert (float(csv_row[index]) if csv_row[index] not in ("", "—") else None) == expected
            assert xlsx_row[index] == (pytest.approx(expected, rel=1e-15, abs=0) if expected is not None else "—")


def test_market_prices_download_in_yuan_as_numbers_equal_to_the_exchange_api(mkt: Market) -> None:
    trades = mkt.call("GET", f"/v1/exchange/instruments/{INSTRUMENT}/trades", OFFICER).json()["items"]
    depth = mkt.call("GET", f"/v1/exchange/instruments/{INSTRUMENT}/depth", OFFICER).json()
    url = f"/ui/market/{INSTRUMENT}"
    rows = csv_rows(download(mkt.client, url, OFFICER, "trades", "csv"))
    assert [(Decimal(r[1]), int(r[2])) for r in rows[1:]] == [
        (Decimal(t["price_fen"]) / 100, t["quantity_t"]) for t in trades] == [(Decimal("50.1"), 120)]
    book = xlsx_rows(download(mkt.client, url, OFFICER, "depth", "xlsx"))
    bid, ask = depth["bids"][0], depth["asks"][0]
    assert (book[1][1], Decimal(str(book[1][2]))) == (bid["quantity_t"], Decimal(bid["price_fen"]) / 100)
    assert (book[1][4], Decimal(str(book[1][3]))) == (ask["quantity_t"], Decimal(ask["price_fen"]) / 100)
    assert type(book[1][1]) is int


def test_a_comment_that_reads_like_a_formula_is_downloaded_as_text(client: TestClient) -> None:
    url = f"/ui/enterprises/{CHP}"
    rows = csv_rows(download(client, url, OFFICER, "review-history", "csv", period="2024-01"))
    assert [r[4] for r in rows[1:] if "HYPERLINK" in r[4]] == ["'" + FORMULA_COMMENT]
    sheet = load_workbook(io.BytesIO(download(client, url, OFFICER, "review-history", "xlsx", period="2024-01"))).active
    assert sheet is not None
    cells = [c for row in sheet.iter_rows() for c in row if "HYPERLINK" in str(c.value)]
    assert [(c.value, c.data_type) for c in cells] == [("'" + FORMULA_COMMENT, "s")]
    mine = csv_rows(download(client, f"/ui/my/{CHP}", CHP_USER, "comments", "csv"))
    assert ["'" + FORMULA_COMMENT] == [r[2] for r in mine[1:] if "HYPERLINK" in r[2]]


def test_a_download_has_the_access_of_its_page_and_refuses_an_unknown_table_or_format(client: TestClient) -> None:
    for url in (f"/ui/my/{CHP}?export=periods&format=csv", f"/ui/rights/{CHP}?year=2024&export=holdings&format=xlsx"):
        refused = get(client, url, GAS_USER, status=404)
        assert Page.parse(refused.text).one(testid="page-error")["data-code"] == "not_found"
        assert "2024-01" not in refused.text
    assert get(client, "/ui/zone?export=zone-months&format=csv", CHP_USER, status=403).headers[
        "content-type"].startswith("text/html")
    signed_out = get(client, "/ui/zone?export=zone-months&format=csv", {}, status=303)
    assert signed_out.headers["location"] == "/ui/login?next=/ui/zone%3Fexport%3Dzone-months%26format%3Dcsv"
    for query, status, code in (("export=no-such-table&format=csv", 404, "table_not_found"),
                                ("export=zone-months&format=pdf", 422, "unknown_export_format"),
                                ("export=zone-months", 422, "unknown_export_format")):
        answer = get(client, f"/ui/zone?year=2024&{query}", OFFICER, status=status)
        assert Page.parse(answer.text).one(testid="page-error")["data-code"] == code

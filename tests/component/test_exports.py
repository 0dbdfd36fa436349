"""CSV and XLSX downloads: the same table as the JSON, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from api.exports import csv_bytes, neutralize, xlsx_bytes
from tests.auth_support import OFFICER, enterprise

CHP_PLANT = "914101022286058318"
HOSTILE = ["=HYPERLINK(\"http://x.example\",\"click\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


@pytest.mark.parametrize("text", HOSTILE)
def test_text_that_a_spreadsheet_would_run_is_written_as_text(text: str) -> None:
    assert neutralize(text) == "'" + text
    rows = [{"item": text, "quantity": -5}]
    written = list(csv.reader(io.StringIO(csv_bytes(["item", "quantity"], rows).decode("utf-8-sig"))))
    assert written == [["item", "quantity"], ["'" + text, "-5"]]
    sheet = load_workbook(io.BytesIO(xlsx_bytes(["item", "quantity"], rows, sheet="t"))).active
    assert sheet is not None
    assert sheet["A2"].data_type == "s" and str(sheet["A2"].value).startswith("'")  # XML keeps \r as \n
    assert (sheet["B2"].value, sheet["B2"].data_type) == (-5, "n")  # a number stays a number


def test_plain_text_and_chinese_are_left_alone_and_csv_carries_a_bom() -> None:
    assert neutralize("郑州高新区 A-1") == "郑州高新区 A-1" and neutralize(3) == 3
    content = csv_bytes(["名称"], [{"名称": "热电厂"}])
    assert content.startswith("\ufeff".encode()) and "热电厂".encode() in content and b"\r\n" in content


def test_monthly_balances_download_as_the_same_table_as_the_json(client: TestClient) -> None:
    url = f"/v1/enterprises/{CHP_PLANT}/emissions/monthly"
    params = {"year": 2024}
    items = client.get(url, params=params, headers=OFFICER).json()["items"]
    download = client.get(url, params={**params, "format": "csv"}, headers=OFFICER)
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert f'filename="{CHP_PLANT}-monthly.csv"' in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert [r["period"] for r in rows] == [i["period"] for i in items] and len(rows) == 12
    assert [float(r["totals.scope1_tco2e"]) for r in rows] == pytest.approx(
        [i["totals"]["scope1_tco2e"] for i in items])
    sheet = client.get(url, params={**params, "format": "xlsx"}, headers=enterprise(CHP_PLANT))
    assert sheet.status_code == 200
    workbook = load_workbook(io.BytesIO(sheet.content)).active
    assert workbook is not None and workbook.max_row == 13


def test_lineage_downloads_and_an_unknown_format_is_refused(client: TestClient) -> None:
    url = f"/v1/enterprises/{CHP_PLANT}/lineage/2024-01"
    lines = client.get(url, headers=OFFICER).json()["lines"]
    rows = list(csv.DictReader(io.StringIO(client.get(url, params={"format": "csv"}, headers=OFFICER)
                                           .content.decode("utf-8-sig"))))
    assert [int(r["row"]) for r in rows] == [line["row"] for line in lines]
    refused = client.get(url, params={"format": "pdf"}, headers=OFFICER)
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_request"

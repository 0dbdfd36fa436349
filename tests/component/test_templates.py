"""The blank template downloads: accepted by the real submission parser once a line is filled in, every
column explained in Chinese and English, and open to every signed-in role."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from accounting.activity import COLUMNS, REQUIRED, SourceFile, parse_activity
from accounting.activity_template import DESCRIPTION_SHEET, EXAMPLE_LINE
from accounting.factors import load_library
from api.exports import csv_bytes
from api.main import create_app
from pipelines.warehouse import fuel_rules
from tests.auth_support import ADMIN, ENGINEER, OFFICER, TRADER, VERIFIER, enterprise
from tests.conftest import zone_settings

CSV_URL = "/v1/templates/activity.csv"
XLSX_URL = "/v1/templates/activity.xlsx"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app over an empty zone: the templates need neither a snapshot nor data."""
    folder: Path = tmp_path_factory.mktemp("templates")
    with TestClient(create_app(zone_settings(folder, database_url=f"sqlite:///{folder / 'carbon.sqlite'}"))) as app:
        yield app


def _parse(name: str, content: bytes) -> list[dict[str, object]]:
    lines = parse_activity(SourceFile(name, content), rules=fuel_rules(load_library()))
    return lines.to_dict(orient="records")


def test_the_csv_template_filled_in_is_accepted_by_the_submission_parser(client: TestClient) -> None:
    response = client.get(CSV_URL, headers=enterprise(EXAMPLE_LINE["enterprise_id"]))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="activity-template-v1.csv"' in response.headers["content-disposition"]
    blank = response.content
    assert blank.startswith("\ufeff".encode()) and blank.decode("utf-8-sig").strip() == ",".join(COLUMNS)
    filled = blank + csv_bytes(COLUMNS, [EXAMPLE_LINE]).decode("utf-8-sig").split("\r\n", 1)[1].encode()
    [line] = _parse("filled.csv", filled)
    assert (line["enterprise_id"], line["item"], line["quantity"], line["oxidation_rate"]) == (
        EXAMPLE_LINE["enterprise_id"], "diesel", 12.5, 0.98)


def test_the_xlsx_template_filled_in_is_accepted_and_explains_every_column(client: TestClient) -> None:
    response = client.get(XLSX_URL, headers=TRADER)
    assert response.status_code == 200
    workbook = load_workbook(io.BytesIO(response.content))
    template, explained = workbook.worksheets
    assert [c.value for c in template[1]] == list(COLUMNS) and template.max_row == 1
    assert template.column_dimensions["A"].number_format == "@"  # credit codes stay text in Excel
    template.append([EXAMPLE_LINE[c] or None for c in COLUMNS])
    buffer = io.BytesIO()
    workbook.save(buffer)
    [line] = _parse("filled.xlsx", buffer.getvalue())
    assert line["enterprise_id"] == EXAMPLE_LINE["enterprise_id"] and line["quantity"] == 12.5
    assert explained.title == DESCRIPTION_SHEET
    rows = {row[0]: row for row in explained.iter_rows(min_row=2, values_only=True)}
    assert list(rows) == list(COLUMNS)
    for name, (_, required, meaning_zh, meaning_en, _example, _allowed) in rows.items():
        assert meaning_zh and meaning_en and any("\u4e00" <= ch <= "\u9fff" for ch in meaning_zh), name
        assert ("必填 required" == required) == (name in REQUIRED), name
    assert "fuel_combustion" in rows["activity"][5] and "natural_gas" in rows["item"][5]


def test_every_signed_in_role_may_download_the_template(client: TestClient) -> None:
    for headers in (OFFICER, VERIFIER, ENGINEER, ADMIN, TRADER, enterprise(EXAMPLE_LINE["enterprise_id"])):
        assert client.get(CSV_URL, headers=headers).status_code == 200
    assert client.get(XLSX_URL).status_code == 401

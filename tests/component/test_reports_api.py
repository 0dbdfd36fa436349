"""Reports through the real app over the published sample zone: the same totals in JSON, PDF, page, CSV and XLSX.

One app for the module (the published sample zone of the session, read only); the compliance report gets a
database of its own (SQLite) with two locked years and allocations, read by the same app code.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from pypdf import PdfReader

from accounting.ledger import transfer_entry
from accounting.reports import GHG_SUMMARY_ROWS, format_cell
from accounting.review import Actor
from api.main import create_app
from api.services import ledger as ledger_service
from api.store.db import session_factory
from api.store.schema import AllocationRow, PeriodReview, VerifiedEmissions
from pipelines.settings import Settings
from tests.auth_support import ENGINEER, OFFICER, TRADER, VERIFIER, enterprise
from tests.conftest import zone_settings
from tests.support import load_zone

CHP_PLANT = "914101022286058318"
CEMENT_PLANT = "91410100437387498P"
GHG = f"/v1/reports/enterprises/{CHP_PLANT}/ghg/2024"


@pytest.fixture(scope="module")
def client(published_zone: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(published_zone)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def ghg(client: TestClient) -> dict[str, Any]:
    response = client.get(GHG, headers=OFFICER)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_annual_report_carries_the_published_yearly_totals(client: TestClient, ghg: dict[str, Any]) -> None:
    yearly = client.get(f"/v1/enterprises/{CHP_PLANT}/emissions/yearly", headers=OFFICER).json()["items"]
    published = next(item["totals"] for item in yearly if item["period"] == "2024")
    for key in ("scope1_tco2e", "scope2_tco2e", "exported_tco2e", "net_tco2e", "total_excl_indirect_tco2e",
                "total_incl_indirect_tco2e", "energy_tce"):
        assert ghg["totals"][key] == published[key], key
    tables = {t["key"]: t for t in ghg["tables"]}
    assert list(tables) == ["summary", "combustion", "process", "electricity_heat", "products", "factors"]
    assert sum(r["tco2e"] for r in tables["combustion"]["rows"]) == pytest.approx(ghg["totals"]["combustion_tco2e"])
    assert ghg["provenance"]["editions"] and ghg["provenance"]["run_ids"]


def test_the_pdf_shows_the_same_totals_as_the_json_api_with_edition_and_run(client: TestClient,
                                                                            ghg: dict[str, Any]) -> None:
    response = client.get(GHG, params={"format": "pdf"}, headers=enterprise(CHP_PLANT))
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert f'filename="ghg-{CHP_PLANT}-2024.pdf"' in response.headers["content-disposition"]
    reader = PdfReader(io.BytesIO(response.content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    summary = text[text.index("Table 1"):text.index("Table 2")]
    for key, label in GHG_SUMMARY_ROWS:
        shown = format_cell(ghg["totals"][key], "emission")
        assert f"{label.en}\n {shown}" in summary or f"{label.en} {shown}" in summary, (key, shown)
    assert format_cell(ghg["totals"]["energy_tce"], "energy") in text
    for number, page in enumerate(reader.pages, start=1):  # every page is numbered and names the edition and run
        page_text = page.extract_text()
        assert "factor edition: " + ghg["provenance"]["editions"][0] in page_text
        assert all(run in page_text for run in ghg["provenance"]["run_ids"])
        assert f"page {number} of {len(reader.pages)}" in page_text


def test_csv_xlsx_and_the_printable_page_agree_with_the_json(client: TestClient, ghg: dict[str, Any]) -> None:
    summary = next(t for t in ghg["tables"] if t["key"] == "summary")
    expected = {row["source"]: row["tco2e"] for row in summary["rows"]}
    content = client.get(GHG, params={"format": "csv"}, headers=OFFICER).content
    assert content.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    start = lines.index(["表1 温室气体排放量汇总 Table 1 Emissions by source"]) + 2
    assert {row[0]: float(row[1]) for row in lines[start:start + len(expected)]} == expected
    assert any("Table 6" in line[0] for line in lines if line)  # every table is in the CSV
    workbook = load_workbook(io.BytesIO(client.get(GHG, params={"format": "xlsx"}, headers=OFFICER).content))
    assert len(workbook.worksheets) == 1 + len(ghg["tables"])  # the overview, then one sheet per table
    sheet = workbook["表1 温室气体排放量汇总"]
    written = {row[0]: row[1] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert written == pytest.approx(expected, rel=1e-15, abs=0)  # openpyxl writes floats to 15 significant digits
    page = client.get(GHG, params={"format": "html"}, headers=OFFICER)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "@media print" in html and 'href="/ui/static' not in html  # standalone: nothing to fetch
    for value in expected.values():
        assert f'data-value="{value}">{format_cell(value, "emission")}</td>' in html


def test_an_enterprise_reads_only_its_own_report_and_a_year_without_data_is_a_clear_404(client: TestClient) -> None:
    assert client.get(GHG, headers=enterprise(CHP_PLANT)).status_code == 200
    assert client.get(GHG, headers=VERIFIER).status_code == 200 and client.get(GHG, headers=ENGINEER).status_code == 200
    foreign = client.get(GHG, headers=enterprise(CEMENT_PLANT))
    assert foreign.status_code == 404 and foreign.json()["code"] == "not_found"
    assert client.get(GHG, headers=TRADER).status_code == 403
    assert client.get("/v1/reports/zone/2024", headers=enterprise(CHP_PLANT)).status_code == 403
    missing = client.get(f"/v1/reports/enterprises/{CHP_PLANT}/ghg/2021", headers=OFFICER)
    assert missing.status_code == 404 and missing.json()["code"] == "period_not_found"
    assert "2021" in missing.json()["detail"]
    unknown = client.get("/v1/reports/enterprises/91410100MA00000000/ghg/2024", headers=OFFICER)
    assert unknown.status_code == 404 and unknown.json()["code"] == "enterprise_not_found"
    assert client.get("/v1/reports/zone/2021-03", headers=OFFICER).json()["code"] == "period_not_found"
    assert client.get("/v1/reports/zone/2024-13", headers=OFFICER).status_code == 422


def test_the_monthly_zone_report_equals_the_zone_indicators(client: TestClient) -> None:
    report = client.get("/v1/reports/zone/2024-03", headers=OFFICER).json()
    indicator = client.get("/v1/zone/indicators", params={"period": "2024-03"}, headers=OFFICER).json()["items"][0]
    for key in ("scope1_tco2e", "scope2_tco2e", "net_tco2e", "energy_tce", "value_added_10k_cny",
                "tco2e_per_10k_cny_value_added"):
        assert report["totals"][key] == indicator[key], key
    annual = client.get("/v1/reports/zone/2024", params={"format": "pdf"}, headers=VERIFIER)
    assert annual.status_code == 200 and annual.content.startswith(b"%PDF")


ISSUER = Actor(actor_id="officer-li", role="officer")


@pytest.fixture(scope="module")
def compliance_client(published_zone: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A database of its own: 2024 locked for two enterprises (as the review service stores it), allowances held."""
    folder: Path = tmp_path_factory.mktemp("reports-compliance")
    settings = zone_settings(folder, database_url=f"sqlite:///{folder / 'carbon.sqlite'}",
                             serving_path=published_zone.serving)
    load_zone(settings, months=())
    now = datetime.now(UTC)
    with session_factory(settings)() as session:
        ledger_service.ensure_system_accounts(session)
        ledger_service.ensure_compliance_accounts(session, [CHP_PLANT, CEMENT_PLANT])
        for enterprise_id, net, held in ((CHP_PLANT, 1000.4, 900), (CEMENT_PLANT, 100.0, 120)):
            session.add(PeriodReview(enterprise_id=enterprise_id, period="2024", status="locked", version=1,
                                     submission_id=None, calculation_id=None, is_substituted=False, held=False,
                                     held_reasons=[], updated_at=now, updated_by="officer-li"))
            session.add(VerifiedEmissions(enterprise_id=enterprise_id, year="2024", version=1,
                                          totals={"net_tco2e": net}, net_tco2e=net, calculation_ids=[],
                                          locked_by="officer-li", locked_at=now))
            entry = transfer_entry(entry_id=ledger_service.new_entry_id(), kind="allocate", from_account="SYS-ISSUANCE",
                                   to_account=ledger_service.compliance_account_id(enterprise_id),
                                   instrument="CEA-2024", quantity=held)
            row = ledger_service.post(session, entry=entry, actor=ISSUER, reference="test-allocation")
            session.add(AllocationRow(plan_id="test-plan", version=1, enterprise_id=enterprise_id,
                                      instrument="CEA-2024", stage="pre", quantity=held, basis={},
                                      entry_id=row.entry_id))
        session.commit()
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_the_compliance_report_shows_verified_emissions_allocation_and_shortfall(
        compliance_client: TestClient) -> None:
    report = compliance_client.get("/v1/reports/compliance/2024", headers=OFFICER).json()
    rows = {r["enterprise_id"]: r for r in report["tables"][0]["rows"]}
    # obligations round up: 1000.4 → 1001 t, nothing surrendered yet, so the shortfall is the obligation
    assert (rows[CHP_PLANT]["verified_tco2e"], rows[CHP_PLANT]["obligation_t"], rows[CHP_PLANT]["allocation_t"],
            rows[CHP_PLANT]["shortfall_t"]) == (1000.4, 1001, 900, 1001)
    assert rows[CEMENT_PLANT]["obligation_t"] == 100 and rows[CEMENT_PLANT]["free_allocation_t"] == 120
    assert report["totals"]["obligation_t"] == 1101 and report["totals"]["allocation_t"] == 1020
    assert sum(r["status_code"] == "not_locked" for r in rows.values()) == len(rows) - 2
    view = compliance_client.get(f"/v1/compliance/2024/enterprises/{CHP_PLANT}", headers=OFFICER).json()
    assert view["shortfall_t"] == rows[CHP_PLANT]["shortfall_t"]
    pdf = compliance_client.get("/v1/reports/compliance/2024", params={"format": "pdf"}, headers=VERIFIER)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "1,101" in text and "1,000" in text  # obligation total; verified 1000.4 shown as whole tonnes
    assert compliance_client.get("/v1/reports/compliance/2024", headers=ENGINEER).status_code == 403

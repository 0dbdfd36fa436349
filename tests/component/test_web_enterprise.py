"""The enterprises' own pages and the carbon-rights pages (issue 7): what an enterprise sees of its months, the
reviewers' comments, its emissions, allowances and holdings, and the upload form, each number equal to the API's.

One zone for the module: the sample registry with two months submitted and calculated in a database of its own,
read over the published sample snapshot; the CHP plant's 2024 emissions locked and allowances allocated (as the
compliance tests do), and an officer's rejection of its January with a comment, made through the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accounting.ledger import transfer_entry
from accounting.review import Actor
from api.services import ledger as ledger_service
from api.store.db import session_factory
from api.store.schema import AllocationRow, PeriodReview, VerifiedEmissions
from api.web.i18n import catalog
from api.web.render import format_number
from pipelines.settings import Settings
from tests.auth_support import ENGINEER, OFFICER, TRADER, VERIFIER, enterprise
from tests.component.web_support import Page, squash
from tests.review_support import enterprise_month, review_zone

CHP = "914101022286058318"
GAS = "91410102170679896E"
CHP_USER, GAS_USER = enterprise(CHP), enterprise(GAS)
GROUP_USER = enterprise(CHP, GAS)
MONTHS = ("2024-01", "2024-02")
COMMENT = "第 3 行外购电量与发票不符，请核对后重新提交"
VERIFIED_TCO2E = 1000.4  # obligation 1001 t
HOLDINGS = {"CEA-2023": 50, "CEA-2024": 900}
ISSUER = Actor(actor_id="officer-li", role="officer")


def lock_and_allocate(settings: Settings) -> None:
    """The CHP plant's 2024 locked with its verified emissions, and allowances in its compliance account."""
    with session_factory(settings)() as session:
        ledger_service.ensure_system_accounts(session)
        ledger_service.ensure_compliance_accounts(session, [CHP])
        now = datetime.now(UTC)
        session.add(PeriodReview(enterprise_id=CHP, period="2024", status="locked", version=1, submission_id=None,
                                 calculation_id=None, is_substituted=False, held=False, held_reasons=[],
                                 updated_at=now, updated_by="officer-li"))
        session.add(VerifiedEmissions(enterprise_id=CHP, year="2024", version=1, net_tco2e=VERIFIED_TCO2E,
                                      totals={"net_tco2e": VERIFIED_TCO2E}, calculation_ids=[],
                                      locked_by="officer-li", locked_at=now))
        for instrument, quantity in HOLDINGS.items():
            entry = transfer_entry(entry_id=ledger_service.new_entry_id(), kind="allocate", from_account="SYS-ISSUANCE",
                                   to_account=ledger_service.compliance_account_id(CHP), instrument=instrument,
                                   quantity=quantity)
            row = ledger_service.post(session, entry=entry, actor=ISSUER, reference="test-allocation")
            if instrument == "CEA-2024":
                session.add(AllocationRow(plan_id="test-plan", version=1, enterprise_id=CHP, instrument=instrument,
                                          stage="pre", quantity=quantity, basis={}, entry_id=row.entry_id))
        session.commit()


@pytest.fixture(scope="module")
def client(published_zone: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("web-enterprise")
    with review_zone(data_dir, database_url=f"sqlite:///{data_dir / 'carbon.sqlite'}", published=published_zone,
                     months=MONTHS, serving_path=published_zone.serving, rate_limit_per_minute=0) as zone:
        lock_and_allocate(zone.settings)
        rejected = zone.client.post(f"/v1/review/periods/{CHP}/2024-01/actions", headers=OFFICER,
                                    json={"action": "reject", "reason": COMMENT})
        assert rejected.status_code == 200, rejected.text
        yield zone.client


def page(client: TestClient, url: str, headers: dict[str, str], *, status: int = 200) -> Page:
    answer = client.get(url, headers=headers, follow_redirects=False)
    assert answer.status_code == status, (url, answer.status_code, answer.text[-800:])
    return Page.parse(answer.text)


def api(client: TestClient, url: str, headers: dict[str, str] = OFFICER) -> Any:
    answer = client.get(url, headers=headers)
    assert answer.status_code == 200, (url, answer.text)
    return answer.json()


def test_the_home_lists_the_enterprises_the_user_acts_for_in_chinese(client: TestClient) -> None:
    home = page(client, "/ui/my", GROUP_USER)
    assert 'lang="zh-CN"' in home.html and catalog()["my.title"]["zh"] in home.text
    assert {row["data-enterprise"] for row in home.all(testid="my-enterprise")} == {CHP, GAS}
    chp = next(r for r in home.all(testid="my-enterprise") if r["data-enterprise"] == CHP)
    assert "郑州高新某某热电有限公司" in chp.text  # the registry's name
    assert [r["data-enterprise"] for r in page(client, "/ui/my", GAS_USER).all(testid="my-enterprise")] == [GAS]
    client.cookies.set("carbon_lang", "en")
    try:
        english = client.get("/ui/my", headers=GAS_USER)
    finally:
        client.cookies.clear()  # the module's other tests read the pages in Chinese
    assert 'lang="en"' in english.text and "My enterprises" in english.text


def test_another_enterprises_pages_are_not_found_and_other_roles_are_refused(client: TestClient) -> None:
    for url in (f"/ui/my/{CHP}", f"/ui/my/{CHP}/upload", f"/ui/rights/{CHP}?year=2024"):
        refused = page(client, url, GAS_USER, status=404)
        assert refused.one(testid="page-error")["data-code"] == "not_found"
        assert COMMENT not in refused.html and "1,001" not in refused.text
    for url, headers in (("/ui/my", TRADER), ("/ui/my", OFFICER), (f"/ui/my/{CHP}", TRADER),
                         (f"/ui/my/{CHP}", ENGINEER), ("/ui/rights", CHP_USER)):
        assert page(client, url, headers, status=403).one(testid="page-error")["data-code"] == "role_not_allowed"
    signed_out = client.get(f"/ui/my/{CHP}", follow_redirects=False)
    assert (signed_out.status_code, signed_out.headers["location"]) == (303, f"/ui/login?next=/ui/my/{CHP}")
    assert page(client, "/ui/my/914101000000000000", OFFICER, status=404).one(
        testid="page-error")["data-code"] == "enterprise_not_found"


def test_a_rejected_month_shows_the_officers_comment_at_the_top(client: TestClient) -> None:
    mine = page(client, f"/ui/my/{CHP}", CHP_USER)
    [rejection] = mine.all(testid="rejection")
    assert rejection["data-period"] == "2024-01"
    assert squash(mine.one(testid="rejection-comment").text) == COMMENT
    assert mine.html.index('data-testid="rejections"') < mine.html.index('data-testid="periods"')
    states = {row["data-period"]: row["data-status"] for row in mine.all(testid="period-row")}
    queue = api(client, f"/v1/review/queue?enterprise_id={CHP}", CHP_USER)["items"]
    assert states == {item["period"]: item["status"] for item in queue}
    assert states["2024-01"] == "rejected" and states["2024-02"] == "calculated"
    [comment] = [row for row in mine.all(testid="comment-row") if row["data-action"] == "reject"]
    assert comment["data-period"] == "2024-01" and COMMENT in comment.text
    assert not page(client, f"/ui/my/{GAS}", GAS_USER).all(testid="rejection")


def test_the_monthly_emissions_by_source_are_the_apis_numbers(client: TestClient) -> None:
    served = api(client, f"/v1/enterprises/{CHP}/emissions/monthly?year=2024", CHP_USER)["items"]
    mine = page(client, f"/ui/my/{CHP}?year=2024", CHP_USER)
    rows = mine.all(testid="emissions-row")
    assert [r["data-period"] for r in rows] == [b["period"] for b in served] and len(rows) >= 12
    for row, balance in zip(rows, served, strict=True):
        cells = {c["data-field"]: c for c in row.children if c.tag == "td" and "data-field" in c.attrs}
        for field, cell in cells.items():
            expected = balance["totals"][field]
            assert cell["data-value"] == ("" if expected is None else str(expected)), (balance["period"], field)
            assert squash(cell.text) == format_number(expected, 2)
    figure = mine.one(testid="emissions-chart")["data-figure"]
    assert f'"{served[0]["period"]}"' in figure  # the chart draws the same periods the table lists


def test_allowances_and_holdings_are_the_compliance_balance_view(client: TestClient) -> None:
    view = api(client, f"/v1/compliance/2024/enterprises/{CHP}", CHP_USER)
    # 1001 t owed, nothing surrendered yet; the 950 t held leave the position 51 t short
    assert (view["status"], view["obligation_t"], view["shortfall_t"], view["net_position_t"]) == (
        "deficit", 1001, 1001, 950 - 1001)
    for url in (f"/ui/rights/{CHP}?year=2024", f"/ui/my/{CHP}?year=2024"):
        shown = page(client, url, CHP_USER)
        assert shown.one(testid="compliance-status")["data-status"] == view["status"]
        assert shown.one(testid="balance-obligation")["data-value"] == str(view["obligation_t"])
        assert shown.one(testid="balance-shortfall")["data-value"] == str(view["shortfall_t"])
        assert shown.one(testid="balance-surrendered")["data-value"] == str(view["surrendered"]["total_t"])
        allocated = view["free_allocation"]["total_t"] + view["paid_allocation"]["quantity_t"]
        assert shown.one(testid="balance-allocation")["data-value"] == str(allocated) == "900"
        holdings = {h["data-instrument"]: {c["data-field"]: int(c["data-value"]) for c in h.children
                                           if "data-field" in c.attrs} for h in shown.all(testid="holding")}
        assert holdings == {h["instrument"]: {k: h[k] for k in ("balance", "frozen", "pledged", "available")}
                            for h in view["holdings"]}
    facts = page(client, f"/ui/rights/{CHP}?year=2024", OFFICER).one(testid="balance-facts")
    values = {c["data-field"]: squash(c.text) for c in facts.children if "data-field" in c.attrs}
    assert values["net_position_t"] == format_number(view["net_position_t"]) == "-51"
    assert values["free_pre_t"] == format_number(view["free_allocation"]["pre_t"]) == "900"
    not_locked = page(client, f"/ui/rights/{GAS}?year=2024", GAS_USER)
    assert not_locked.one(testid="compliance-status")["data-status"] == "not_locked"
    assert not_locked.one(testid="not-locked")


def test_the_zone_compliance_report_page_is_the_apis_report(client: TestClient) -> None:
    report = api(client, "/v1/compliance/2024/report", VERIFIER)
    shown = page(client, "/ui/rights?year=2024", VERIFIER)
    rows = {r["data-enterprise"]: {c["data-field"]: int(c["data-value"]) for c in r.children
                                   if "data-field" in c.attrs} for r in shown.all(testid="compliance-row")}
    keys = ("obligation_t", "surrendered_t", "shortfall_t", "surplus_t")
    assert rows == {line["enterprise_id"]: {k: line[k] for k in keys} for line in report["enterprises"]}
    assert rows[CHP]["obligation_t"] == 1001
    totals = {c["data-field"]: c["data-value"] for c in shown.one(testid="zone-compliance-totals").children
              if "data-value" in c.attrs}
    assert totals == {k: str(report["totals"][k]) for k in keys}
    assert shown.one(testid="compliance-report-pdf")["href"] == "/v1/reports/compliance/2024?format=pdf"


def test_the_upload_page_offers_the_templates_and_sends_the_file_to_the_submissions_api(client: TestClient) -> None:
    upload = page(client, f"/ui/my/{CHP}/upload", CHP_USER)
    assert upload.one(testid="template-csv")["href"] == "/v1/templates/activity.csv"
    assert upload.one(testid="template-xlsx")["href"] == "/v1/templates/activity.xlsx"
    form = upload.one(testid="upload-form")
    assert (form["data-api"], form.attrs.get("data-multipart"), form["data-success"]) == ("/v1/submissions", "",
                                                                                          "stay")
    assert upload.one(testid="upload-file")["name"] == "file"
    assert upload.one(testid="upload-submit") and upload.one(testid="upload-errors")
    assert upload.one(testid="upload-receipt").attrs.get("hidden") == ""
    # what the form's refusal table shows: every refused row with its column, value and what was expected
    late = client.post("/v1/submissions", headers=CHP_USER,
                       files={"file": ("2024-02.csv", enterprise_month(CHP, "2024-02"), "text/csv")})
    assert late.status_code == 422, late.text
    errors = late.json()["errors"]
    assert errors and all(e["column"] == "period" and e["code"] == "late_submission" and e["row"] >= 2
                          for e in errors)
    assert len(errors) == enterprise_month(CHP, "2024-02").count(b"\n") - 1  # every line, not the first only
    assert page(client, f"/ui/my/{CHP}", CHP_USER).one(testid="upload-link")["href"] == f"/ui/my/{CHP}/upload"
    assert not page(client, f"/ui/my/{CHP}", VERIFIER).all(testid="upload-link")


def test_the_report_links_name_each_published_year(client: TestClient) -> None:
    reports = page(client, f"/ui/my/{CHP}", CHP_USER).one(testid="reports")
    years = sorted(int(r["data-year"]) for r in reports.children if r.attrs.get("data-testid") == "report-year")
    published = sorted(int(b["period"]) for b in api(client, f"/v1/enterprises/{CHP}/emissions/yearly",
                                                     CHP_USER)["items"])
    assert years == published == [2023, 2024]
    links = [a["href"] for a in reports.children if a.tag == "a"]
    assert f"/v1/reports/enterprises/{CHP}/ghg/2024?format=pdf" in links
    printable = client.get(f"/v1/reports/enterprises/{CHP}/ghg/2024?format=html", headers=CHP_USER)
    assert printable.status_code == 200, printable.text[-500:]  # the link leads to the report


def test_every_message_the_pages_build_from_a_value_exists_in_both_languages() -> None:
    from accounting.calculation import TOTAL_COLUMNS
    from api.web import enterprise as pages
    from api.web.report_links import REPORT_FORMATS

    messages = catalog()
    built = ([f"my.sources.{c}" for c in (*pages.SOURCE_COLUMNS, *pages.TOTAL_TABLE_COLUMNS, "net_tco2e")]
             + [f"my.actions.{a}" for a in pages.COMMENTED_ACTIONS]
             + [f"my.formats.{f}" for f in REPORT_FORMATS]
             + [f"upload.templates.{f}" for f, _ in pages.TEMPLATE_LINKS]
             + [f"rights.statuses.{s}" for s in ("not_locked", "compliant", "deficit", "surplus")]
             + [f"market.auction_states.{s}" for s in ("open", "closing", "settled", "cancelled")]
             + [f"market.sides.{s}" for s in ("buy", "sell")]
             + [f"market.modes.{m}" for m in ("continuous", "listed_agreement", "block")])
    assert set(pages.SOURCE_COLUMNS + pages.TOTAL_TABLE_COLUMNS) <= set(TOTAL_COLUMNS)
    assert [k for k in built if k not in messages] == []

"""The officers' pages over the published sample zone: every number shown is the API's, and each links down to
the lines behind it."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.web.render import format_number
from pipelines.settings import Settings
from tests.auth_support import ENGINEER, OFFICER, VERIFIER
from tests.component.web_support import Page, squash

CHP_PLANT = "914101022286058318"
CEMENT_PLANT = "91410100437387498P"


@pytest.fixture(scope="module")
def client(published_zone: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(published_zone.model_copy(update={"rate_limit_per_minute": 0}))) as test_client:
        yield test_client


def api(client: TestClient, url: str, **params: Any) -> Any:
    answer = client.get(url, headers=OFFICER, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def page(client: TestClient, url: str, headers: dict[str, str] = OFFICER, **params: Any) -> Page:
    answer = client.get(url, headers=headers, params=params or None)
    assert answer.status_code == 200, answer.text[-2000:]
    return Page.parse(answer.text)


def value(element: Any) -> float | None:
    return None if element["data-value"] == "None" else float(element["data-value"])


def test_the_zone_overview_shows_the_api_indicators_month_by_month(client: TestClient) -> None:
    indicators = [r for r in api(client, "/v1/zone/indicators")["items"] if r["period"].startswith("2024")]
    shown = page(client, "/ui/zone", year=2024)
    nets = shown.all(testid="zone-month-net")
    assert [value(n) for n in nets] == [r["net_tco2e"] for r in indicators]
    assert [squash(n.text) for n in nets] == [format_number(r["net_tco2e"], 1) for r in indicators]
    year_net = sum(r["net_tco2e"] for r in indicators)
    assert value(shown.one(testid="kpi-net")) == pytest.approx(year_net, rel=1e-12)
    categories = shown.one(testid="zone-categories").children
    by_category = [float(td["data-value"]) for tr in categories if tr.tag == "tr" and "data-category" in tr.attrs
                   for td in tr.children[1:2]]
    assert sum(by_category) == pytest.approx(year_net, rel=1e-9)  # the sector rows add up to the zone's
    assert shown.all(id="chart-zone-months") and shown.all(id="chart-zone-intensity")
    assert squash(shown.one(testid="target-carbon").text) == "未设定"


def test_the_zone_overview_names_the_key_emitters_and_the_alerts_of_the_checks(client: TestClient) -> None:
    completeness = api(client, "/v1/quality/completeness")
    findings = api(client, "/v1/quality/findings", limit=1000)
    shown = page(client, "/ui/zone", year=2024)
    emitters = [tr["data-enterprise"] for tr in shown.one(testid="key-emitters").children if tr.tag == "tr"
                and "data-enterprise" in tr.attrs]
    assert emitters == [k["enterprise_id"] for k in completeness["key_emitters"]] and emitters
    statuses = {e["data-status"] for e in shown.all(testid="compliance-status")}
    assert statuses == {"not_locked"}  # nothing is locked in the published sample
    alerts = shown.all(testid="alert")
    assert len(alerts) == findings["total"] > 0
    assert {(a["data-enterprise"], a["data-period"], a["data-rule"]) for a in alerts} == {
        (f["enterprise_id"], f["period"], f["rule"]) for f in findings["items"]}


def test_the_intensities_are_judged_against_the_zone_targets(published_zone: Settings) -> None:
    targets = published_zone.model_copy(update={"rate_limit_per_minute": 0,
                                                "zone_target_tco2e_per_10k_cny": Decimal("3"),
                                                "zone_target_tce_per_10k_cny": Decimal("1.0")})
    with TestClient(create_app(targets)) as client:
        indicators = [r for r in api(client, "/v1/zone/indicators")["items"] if r["period"].startswith("2024")]
        shown = page(client, "/ui/zone", year=2024)
    carbon = [squash(b.text) for b in shown.all(testid="carbon-vs-target")]
    energy = [squash(b.text) for b in shown.all(testid="energy-vs-target")]
    assert carbon == ["达标" if r["tco2e_per_10k_cny_value_added"] <= 3 else "超目标" for r in indicators]
    assert energy == ["达标" if r["tce_per_10k_cny_value_added"] <= 1 else "超目标" for r in indicators]
    assert {"达标", "超目标"} <= set(carbon)
    assert squash(shown.one(testid="target-carbon").text) == "3.0000"


def listed(shown: Page) -> list[str]:
    return [row["data-enterprise"] for row in shown.all(testid="enterprise-row")]


def test_the_enterprise_list_searches_filters_sorts_and_pages_on_the_server(client: TestClient) -> None:
    registry = api(client, "/v1/enterprises", limit=1000)["items"]
    first = page(client, "/ui/enterprises")
    assert listed(first) == sorted(e["enterprise_id"] for e in registry)[:25]
    rest = page(client, first.one(testid="page-next")["href"])
    assert listed(rest) == sorted(e["enterprise_id"] for e in registry)[25:]
    cement = page(client, "/ui/enterprises", q="水泥")
    assert set(listed(cement)) == {e["enterprise_id"] for e in registry if "水泥" in e["name"]} and listed(cement)
    suppliers = page(client, "/ui/enterprises", category="heat_power_supplier")
    assert set(listed(suppliers)) == {e["enterprise_id"] for e in registry if e["category"] == "heat_power_supplier"}
    findings = api(client, "/v1/quality/findings", limit=1000)["items"]
    failed = page(client, "/ui/enterprises", failed="true", limit=200)
    assert set(listed(failed)) == {f["enterprise_id"] for f in findings}
    by_net = page(client, "/ui/enterprises", sort="net_tco2e", order="desc", limit=3)
    nets = [value(e) for e in by_net.all(testid="enterprise-net")]
    assert nets == sorted(nets, reverse=True)
    top = api(client, f"/v1/enterprises/{listed(by_net)[0]}/emissions/yearly")["items"][-1]
    assert nets[0] == top["totals"]["net_tco2e"]
    assert client.get("/ui/enterprises", headers=OFFICER, params={"sort": "password"}).status_code == 422


def test_the_enterprise_page_shows_the_api_balances_and_links_each_to_its_lineage(client: TestClient) -> None:
    monthly = api(client, f"/v1/enterprises/{CHP_PLANT}/emissions/monthly", year=2024)["items"]
    shown = page(client, f"/ui/enterprises/{CHP_PLANT}", year=2024)
    links = shown.all(testid="lineage-link")
    by_cell = {(a["data-period"], a["data-column"]): a for a in links}
    for balance in monthly:
        for column in ("combustion_tco2e", "purchased_electricity_tco2e", "scope1_tco2e", "net_tco2e", "energy_tce"):
            link = by_cell[(balance["period"], column)]
            assert squash(link.text) == format_number(balance["totals"][column], 1)
            target = urlsplit(link["href"])
            assert target.path == f"/ui/enterprises/{CHP_PLANT}/lineage/{balance['period']}"
            assert parse_qs(target.query)["line"] == [column.removesuffix("_tco2e").removesuffix("_tce")]
    state = api(client, f"/v1/review/periods/{CHP_PLANT}/2024-12")
    review = shown.one(testid="review-section")
    assert review["data-period"] == "2024-12"  # the latest month with data
    assert shown.one(testid="review-status")["data-status"] == state["status"]
    assert value(shown.one(testid="review-net")) == state["calculation"]["net_tco2e"]


def test_a_lineage_page_adds_up_to_the_number_it_explains_and_names_each_factor_source(client: TestClient) -> None:
    balance = api(client, f"/v1/enterprises/{CHP_PLANT}/emissions/monthly", year=2024)["items"][0]
    lineage = api(client, f"/v1/enterprises/{CHP_PLANT}/lineage/2024-01")
    shown = page(client, f"/ui/enterprises/{CHP_PLANT}/lineage/2024-01", line="combustion")
    rows = shown.all(testid="lineage-line")
    combustion = [line for line in lineage["lines"] if line["category"] == "combustion"]
    assert [int(r["data-row"]) for r in rows] == [line["row"] for line in combustion]
    subtotal = shown.one(testid="subtotal-tco2e")
    assert value(subtotal) == pytest.approx(balance["totals"]["combustion_tco2e"], rel=1e-9)
    factors = {f["factor_id"]: f for f in lineage["factors"]}
    named = shown.all(testid="lineage-factor")
    assert named and {n["data-factor"] for n in named} <= set(factors)
    for element in named:
        assert factors[element["data-factor"]]["document"] in element.text
    everything = page(client, f"/ui/enterprises/{CHP_PLANT}/lineage/2024-01")
    assert len(everything.all(testid="lineage-line")) == len(lineage["lines"])
    missing = client.get(f"/ui/enterprises/{CHP_PLANT}/lineage/2019-01", headers=OFFICER)
    assert missing.status_code == 404 and Page.parse(missing.text).one(testid="page-error")["data-code"] == (
        "period_not_found")


def test_a_failed_check_is_shown_with_its_rows_and_they_lead_to_the_lineage(client: TestClient) -> None:
    findings = api(client, "/v1/quality/findings", enterprise_id=CEMENT_PLANT, period="2024-03")["items"]
    assert findings
    shown = page(client, f"/ui/enterprises/{CEMENT_PLANT}", period="2024-03")
    assert sorted(f["data-rule"] for f in shown.all(testid="finding")) == sorted(f["rule"] for f in findings)
    link = shown.all(testid="finding-line-link")[0]
    lineage = page(client, link["href"].split("#")[0])
    anchor = link["href"].split("#")[1]
    assert lineage.all(id=anchor)


def test_the_review_actions_offered_follow_the_role_and_the_state(client: TestClient) -> None:
    officer = page(client, f"/ui/enterprises/{CHP_PLANT}", period="2024-01")
    assert officer.one(testid="review-status")["data-status"] == "calculated"
    form = officer.one(testid="review-form")
    assert form["data-api"] == f"/v1/review/periods/{CHP_PLANT}/2024-01/actions"
    buttons = {b["value"] for b in form.children if b.tag == "button"}
    assert buttons == {"start_review", "comment", "reject"}
    assert officer.one(testid="review-comment")["name"] == "reason"
    verifier = page(client, f"/ui/enterprises/{CHP_PLANT}", VERIFIER, period="2024-01")
    assert {b["value"] for b in verifier.one(testid="review-form").children if b.tag == "button"} == {
        "start_review", "comment"}
    assert not page(client, f"/ui/enterprises/{CHP_PLANT}", ENGINEER, period="2024-01").all(testid="review-form")
    missing_month = page(client, f"/ui/enterprises/{CHP_PLANT}", year=2025, period="2025-01")
    assert missing_month.one(testid="review-status")["data-status"] == "none"
    assert missing_month.one(testid="substitute-form")["data-api"] == "/v1/restatements/substitutions"


def test_the_review_queue_is_the_api_queue(client: TestClient) -> None:
    queue = api(client, "/v1/review/queue", status=["calculated"], period="2024-03", limit=100)
    shown = page(client, "/ui/review", status="calculated", period="2024-03", limit=100)
    rows = shown.all(testid="queue-row")
    assert [(r["data-enterprise"], r["data-period"]) for r in rows] == [
        (i["enterprise_id"], i["period"]) for i in queue["items"]] and rows
    unknown = client.get("/ui/enterprises/91410100MA00000000", headers=OFFICER)
    assert unknown.status_code == 404
    assert Page.parse(unknown.text).one(testid="page-error")["data-code"] == "enterprise_not_found"


def test_the_zone_and_enterprise_pages_link_to_reports_that_open(client: TestClient) -> None:
    zone = page(client, "/ui/zone", year="2024")
    year_links = {a["data-testid"]: a["href"] for a in zone.one(testid="zone-report-year").children}
    assert year_links["zone-report-year-pdf"] == "/v1/reports/zone/2024?format=pdf"
    months = zone.all(testid="zone-report-month")
    assert months and all(a["href"].startswith("/v1/reports/zone/2024-") for m in months for a in m.children)
    enterprise = page(client, f"/ui/enterprises/{CHP_PLANT}", year="2024")
    [ghg] = [a["href"] for link in enterprise.all(testid="ghg-report") for a in link.children
             if a["data-testid"] == "ghg-report-html"][:1]
    for url in (year_links["zone-report-year-html"], months[0].children[0]["href"], ghg):
        answer = client.get(url, headers=OFFICER)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html"), url

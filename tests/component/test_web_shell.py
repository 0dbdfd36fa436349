"""The frame of the web pages: sign-in redirect, languages, the message catalog, static files, and who may open
which page (``api.access.PAGE_POLICY``, walked here as ``test_access.py`` walks the OpenAPI document)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from accounting.review import USER_ROLES
from api.access import PAGE_POLICY, Rule
from api.main import create_app
from api.openapi import api_routes
from api.web.i18n import LANGUAGES, catalog, problem_messages
from api.web.render import china_time, format_number
from pipelines.settings import Settings
from tests.auth_support import ADMIN, ENGINEER, OFFICER, TRADER, VERIFIER, enterprise
from tests.component.web_support import Page, template_message_keys
from tests.conftest import ROOT

OWN = "914101022286058318"
OTHER = "91410102170679896E"
HEADERS = {"enterprise": enterprise(OWN), "verifier": VERIFIER, "officer": OFFICER, "trader": TRADER,
           "engineer": ENGINEER, "admin": ADMIN}
PATH_VALUES = {"period": "2024-01", "code": "en", "year": "2024", "instrument": "CEA-2025", "account_id": f"CA-{OWN}"}
#: Where ``/ui/`` sends each role.
HOMES = {"officer": "/ui/zone", "verifier": "/ui/zone", "engineer": "/ui/zone", "enterprise": "/ui/my",
         "trader": "/ui/market"}


@pytest.fixture(scope="module")
def client(published_zone: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(published_zone.model_copy(update={"rate_limit_per_minute": 0}))) as test_client:
        yield test_client


def url_of(template: str, *, enterprise_id: str = OWN) -> str:
    values = {**PATH_VALUES, "enterprise_id": enterprise_id}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "1"), template)


def page_routes(client: TestClient) -> set[tuple[str, str]]:
    return {(method, route.path) for route in api_routes(client.app.routes)  # type: ignore[attr-defined]
            if route.path.startswith("/ui") for method in route.methods if method != "HEAD"}


def test_the_page_table_names_every_page_and_only_pages(client: TestClient) -> None:
    routes = page_routes(client)
    assert routes == set(PAGE_POLICY), (sorted(routes - set(PAGE_POLICY)), sorted(set(PAGE_POLICY) - routes))
    assert not any(p.startswith("/ui") for p in client.get("/openapi.json").json()["paths"])


def test_every_page_answers_each_role_as_the_page_table_says(client: TestClient) -> None:
    checked = 0
    for (method, template), access in sorted(PAGE_POLICY.items()):
        url = url_of(template)
        anonymous = client.request(method, url, follow_redirects=False)
        if access.public:
            assert anonymous.status_code in (200, 303), (url, anonymous.status_code)
            continue
        assert anonymous.status_code == 303, (url, anonymous.status_code)
        assert anonymous.headers["location"].startswith("/ui/login?next=/ui/")
        for role in USER_ROLES:
            answer = client.request(method, url, headers=HEADERS[role], follow_redirects=False)
            rule = access.roles.get(role)
            if rule is None:
                assert answer.status_code == 403, (url, role, answer.status_code)
                assert Page.parse(answer.text).one(testid="page-error")["data-code"] == "role_not_allowed"
            else:  # the gate lets the role through (the page may still find nothing: 404)
                assert answer.status_code in (200, 303, 404), (url, role, answer.status_code, answer.text[-500:])
                assert not answer.headers.get("location", "").startswith("/ui/login")
            if rule is Rule.OWN_ENTERPRISE:
                foreign = client.request(method, url_of(template, enterprise_id=OTHER), headers=HEADERS[role],
                                         follow_redirects=False)
                assert foreign.status_code == 404, (template, role)
            checked += 1
    assert checked >= 6 * len([a for a in PAGE_POLICY.values() if not a.public])


def test_a_page_without_a_session_sends_the_reader_to_sign_in_and_back(client: TestClient) -> None:
    answer = client.get("/ui/enterprises?q=热电&sort=name", follow_redirects=False)
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert location.path == "/ui/login"
    back = parse_qs(location.query)["next"][0]
    assert back == "/ui/enterprises?" + urlencode({"q": "热电", "sort": "name"})
    login = Page.parse(client.get(answer.headers["location"]).text)
    assert login.one(testid="sign-in-form")["data-next"] == back
    client.cookies.set("carbon_session", "cs_" + "x" * 43)
    stale = client.get("/ui/zone", follow_redirects=False)
    client.cookies.clear()
    assert stale.status_code == 303 and stale.headers["location"] == "/ui/login?next=/ui/zone"


def test_sign_in_never_sends_the_reader_to_another_site(client: TestClient) -> None:
    client.cookies.clear()
    for target in ("https://evil.example/", "//evil.example/ui/", "/v1/auth/me", "/ui/..//evil", "/ui\\x"):
        page = Page.parse(client.get("/ui/login", params={"next": target}).text)
        assert page.one(testid="sign-in-form")["data-next"] == "/ui/"
        switch = client.get("/ui/lang/en", params={"next": target}, follow_redirects=False)
        assert switch.headers["location"] == "/ui/"
    client.cookies.clear()  # the switch's language cookie stays with this test


def test_pages_are_chinese_by_default_and_english_after_the_switch(client: TestClient) -> None:
    client.cookies.clear()
    chinese = Page.parse(client.get("/ui/zone", headers=OFFICER).text)
    assert chinese.one(tag="html")["lang"] == "zh-CN"
    assert "园区概览" in chinese.text and "Zone overview" not in chinese.text
    assert chinese.one(testid="lang-en")["href"] == "/ui/lang/en?next=%2Fui%2Fzone"
    switch = client.get("/ui/lang/en", params={"next": "/ui/zone"}, follow_redirects=False)
    assert switch.status_code == 303 and switch.headers["location"] == "/ui/zone"
    assert switch.cookies["carbon_lang"] == "en"
    english = Page.parse(client.get("/ui/zone", headers=OFFICER).text)  # the client keeps the cookie
    assert english.one(tag="html")["lang"] == "en"
    assert "Zone overview" in english.text and "园区概览" not in english.text
    client.cookies.clear()
    client.cookies.set("carbon_lang", "fr")
    unknown = client.get("/ui/zone", headers=OFFICER)
    assert Page.parse(unknown.text).one(tag="html")["lang"] == "zh-CN"
    assert client.get("/ui/lang/fr", follow_redirects=False).status_code == 404
    client.cookies.clear()


def test_every_message_a_template_uses_exists_in_both_languages() -> None:
    messages = catalog()
    used = template_message_keys()
    assert sum(len(keys) for keys in used.values()) > 100
    missing = {name: sorted(k for k in keys if k not in messages) for name, keys in used.items()}
    assert not any(missing.values()), missing
    assert all(set(texts) == set(LANGUAGES) and all(t.strip() for t in texts.values()) for texts in messages.values())


def test_each_role_lands_on_its_home_and_sees_its_own_navigation(client: TestClient) -> None:
    for role, headers in HEADERS.items():
        answer = client.get("/ui/", headers=headers, follow_redirects=False)
        if role in HOMES:
            assert (answer.status_code, answer.headers["location"]) == (303, HOMES[role])
        else:
            assert answer.status_code == 200 and Page.parse(answer.text).all(testid="no-pages")
    officer = Page.parse(client.get("/ui/zone", headers=OFFICER).text)
    assert {a["data-testid"] for a in officer.all(tag="a") if a.attrs.get("data-testid", "").startswith("nav-")} == {
        "nav-zone", "nav-enterprises", "nav-review", "nav-rights", "nav-market"}
    assert "officer-li" in officer.one(testid="current-user").text
    assert officer.one(testid="sign-out")
    engineer = Page.parse(client.get("/ui/zone", headers=ENGINEER).text)
    assert not engineer.all(testid="nav-review")


def test_static_files_and_plotly_come_from_this_server(client: TestClient) -> None:
    plotly = client.get("/ui/static/vendor/plotly.min.js")
    assert plotly.status_code == 200 and plotly.headers["content-type"].startswith("text/javascript")
    assert b"plotly" in plotly.content[:2000].lower() and len(plotly.content) > 1_000_000
    for asset in ("/ui/static/app.js", "/ui/static/app.css"):
        assert client.get(asset).status_code == 200
    page = client.get("/ui/zone", headers=OFFICER).text
    sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert sources and all(s.startswith(("/", "data:")) for s in sources), [s for s in sources if not s.startswith("/")]
    assert not re.search(r"https?://(?!www\.w3\.org)", client.get("/ui/static/app.js").text)
    for url, headers in (("/ui/zone", OFFICER), ("/ui/login", {})):
        policy = dict(part.strip().split(" ", 1) for part in
                      client.get(url, headers=headers).headers["content-security-policy"].split(";"))
        assert policy["default-src"] == policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"


def test_numbers_are_shown_with_thousands_separators_and_fixed_decimals() -> None:
    assert format_number(1234567.891, 2) == "1,234,567.89"
    assert format_number(12, 1) == "12.0"
    assert format_number(None) == format_number(float("nan")) == "—"
    with pytest.raises(TypeError):
        format_number("12")


def test_stored_utc_times_are_shown_as_china_time() -> None:
    assert china_time(datetime(2024, 12, 31, 16, 30, tzinfo=UTC)) == "2025-01-01 00:30:00"
    assert china_time(datetime(2024, 12, 31, 16, 30)) == "2025-01-01 00:30:00"  # naive: stored as UTC
    assert china_time("2024-12-31T16:30:00+00:00", "%Y-%m-%d") == "2025-01-01"
    assert china_time(None) == ""


def test_pages_carry_what_each_api_error_code_means_in_their_language(client: TestClient) -> None:
    sources = "\n".join(path.read_text(encoding="utf-8") for package in ("accounting", "api")
                        for path in (ROOT / package).rglob("*.py"))
    meanings = problem_messages("zh")
    assert {"invalid_file", "late_submission", "transition_not_allowed", "market_closed"} <= meanings.keys()
    assert [code for code in meanings if f'"{code}"' not in sources and code != "network_error"] == []
    for lang, cookie in (("zh", None), ("en", "en")):
        if cookie:
            client.cookies.set("carbon_lang", cookie)
        try:
            page = Page.parse(client.get("/ui/zone", headers=OFFICER).text)
        finally:
            client.cookies.clear()
        assert json.loads(page.one(tag="body")["data-problems"]) == problem_messages(lang)

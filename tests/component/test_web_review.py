"""An officer's review through the pages, as the browser does it: sign in with the session cookie, open the
enterprise page, send what its review form sends (JSON to the review API with the CSRF token of the cookie),
and see the new state, the comment and the actions that are left."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accounting.review import Actor
from api.services import users as user_service
from api.store.db import session_factory
from pipelines.settings import Settings
from tests.component.web_support import Page, squash
from tests.conftest import default_database_url
from tests.review_support import CHP_PLANT, Zone, review_zone

PASSWORD = "a long officer password"
ADMIN = Actor(actor_id="admin-sun", role="admin")
PAGE = f"/ui/enterprises/{CHP_PLANT}?period=2024-01"


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory, published_zone: Settings) -> Iterator[Zone]:
    data_dir = tmp_path_factory.mktemp("web-review")
    with review_zone(data_dir, database_url=default_database_url(data_dir), published=published_zone,
                     months=("2024-01",), serving_path=published_zone.serving, rate_limit_per_minute=0,
                     password_hash_time_cost=1, password_hash_memory_kib=32, session_cookie_secure=False) as found:
        with session_factory(found.settings)() as session:
            user_service.create_user(session, found.settings, by=ADMIN, user_id="li.officer", role="officer",
                                     password=PASSWORD)
        yield found


def review_form(client: TestClient) -> tuple[Page, dict[str, str]]:
    answer = client.get(PAGE)
    assert answer.status_code == 200, answer.text[-1000:]
    page = Page.parse(answer.text)
    form = page.one(testid="review-form")
    fields = {e["name"]: e.attrs.get("value", "") for e in form.children if e.tag in ("input", "textarea")}
    return page, {"api": form["data-api"], **fields}


def send(client: TestClient, form: dict[str, str], action: str, reason: str) -> tuple[int, dict[str, Any]]:
    """What app.js sends for the form: its fields as JSON (integers where marked), the button's action."""
    body = {"action": action, "reason": reason, "expected_version": int(form["expected_version"])}
    answer = client.post(form["api"], json=body, headers={"X-CSRF-Token": client.cookies["carbon_csrf"]})
    return answer.status_code, answer.json()


def test_an_officer_rejects_a_month_from_its_page_with_a_comment(zone: Zone) -> None:
    client = zone.client
    assert client.get(PAGE, follow_redirects=False).headers["location"].startswith("/ui/login?next=/ui/enterprises/")
    signed_in = client.post("/v1/auth/session", data={"username": "li.officer", "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    page, form = review_form(client)
    assert page.one(testid="review-status")["data-status"] == "calculated"
    assert page.one(testid="current-user").text.startswith("li.officer")

    status, refused = send(client, form, "reject", "")
    assert (status, refused["code"]) == (422, "reason_required") and refused["detail"]  # what the error box shows
    assert zone.state(CHP_PLANT, "2024-01")["status"] == "calculated"
    comment = "第 12 行燃煤量与台账不符，请核对后重新报送"
    status, rejected = send(client, form, "reject", comment)
    assert (status, rejected["status"]) == (200, "rejected")

    page, form = review_form(client)
    assert page.one(testid="review-status")["data-status"] == "rejected"
    assert comment in [squash(c.text) for c in page.all(testid="history-comment")]
    left = {b["value"] for b in page.one(testid="review-form").children if b.tag == "button"}
    assert left == {"comment", "reopen"}
    assert page.one(testid="substitute-form")

    stale = client.post(form["api"], json={"action": "reopen", "reason": "again", "expected_version": 0},
                        headers={"X-CSRF-Token": client.cookies["carbon_csrf"]})
    assert stale.status_code == 409 and stale.json()["detail"]
    assert zone.state(CHP_PLANT, "2024-01")["status"] == "rejected"

    assert client.post("/v1/auth/logout", headers={"X-CSRF-Token": client.cookies["carbon_csrf"]}).status_code == 204
    assert client.get(PAGE, follow_redirects=False).status_code == 303

"""Signing in: passwords, access tokens, API keys, browser sessions with CSRF, throttling, revocation.

Runs the real application on both databases, with real Argon2id hashes (at a low cost, to stay fast), and
its credential cache switched on (the default): every change below must hold on the very next request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text

from accounting.review import Actor
from api.main import create_app
from api.security import CredentialCache
from api.services import users as service
from api.store.db import session_factory
from api.store.schema import ApiKey, AuditEntry, User
from pipelines.settings import Settings
from tests.auth_support import ADMIN
from tests.conftest import zone_settings

PASSWORD = "correct horse battery staple"
CHP_PLANT = "914101022286058318"
ADMIN_ACTOR = Actor(actor_id="admin-sun", role="admin")


@dataclass
class Zone:
    client: TestClient
    settings: Settings

    def sql(self, statement: str) -> None:
        engine = create_engine(self.settings.database)
        with engine.begin() as conn:
            conn.execute(text(statement))
        engine.dispose()


@pytest.fixture
def zone(tmp_path: Path, database_url: str) -> Iterator[Zone]:
    settings = zone_settings(tmp_path, database_url=database_url, password_hash_time_cost=1,
                             password_hash_memory_kib=32, rate_limit_per_minute=0)
    with session_factory(settings)() as session:
        service.create_user(session, settings, by=ADMIN_ACTOR, user_id="li.na", role="enterprise", password=PASSWORD,
                            enterprise_ids=[CHP_PLANT])
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        yield Zone(client, settings)


def sign_in(zone: Zone, password: str = PASSWORD, user: str = "li.na") -> str:
    answer = zone.client.post("/v1/auth/token", data={"username": user, "password": password})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == zone.settings.access_token_minutes * 60
    token: str = body["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_password_gives_an_access_token_that_works_until_sign_out(zone: Zone) -> None:
    token = sign_in(zone)
    me = zone.client.get("/v1/auth/me", headers=bearer(token)).json()
    assert (me["user_id"], me["role"], me["enterprise_ids"], me["signed_in_with"]) == (
        "li.na", "enterprise", [CHP_PLANT], "bearer")
    assert zone.client.post("/v1/auth/logout", headers=bearer(token)).status_code == 204
    after = zone.client.get("/v1/auth/me", headers=bearer(token))
    assert after.status_code == 401 and after.json()["code"] == "authentication_required"
    assert after.headers["WWW-Authenticate"] == "Bearer"


def test_wrong_password_and_unknown_user_get_the_same_answer(zone: Zone) -> None:
    wrong = zone.client.post("/v1/auth/token", data={"username": "li.na", "password": "not the password"})
    unknown = zone.client.post("/v1/auth/token", data={"username": "nobody", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "invalid_credentials"
    assert wrong.json()["detail"] == unknown.json()["detail"]
    for garbage in ("Bearer cs_" + "x" * 43, "Bearer ck_0123456789abcdef_" + "y" * 43, "Basic bGk6bmE=", "Bearer"):
        answer = zone.client.get("/v1/auth/me", headers={"Authorization": garbage})
        assert answer.status_code == 401, garbage


def test_guessing_is_throttled_per_login_name_until_the_window_passes(zone: Zone) -> None:
    for _ in range(zone.settings.login_max_failures):
        assert zone.client.post("/v1/auth/token", data={"username": "li.na", "password": "guess"}).status_code == 401
    throttled = zone.client.post("/v1/auth/token", data={"username": "li.na", "password": PASSWORD})
    assert throttled.status_code == 429 and throttled.json()["code"] == "login_throttled"
    retry_after = int(throttled.headers["Retry-After"])
    assert 0 < retry_after <= zone.settings.login_window_minutes * 60 + 1
    other = zone.client.post("/v1/auth/token", data={"username": "nobody-else", "password": "guess"})
    assert other.status_code == 401  # another name is not throttled by li.na's failures
    zone.sql("update login_failures set at = '2000-01-01 00:00:00' where user_id = 'li.na'")  # the window passes
    assert sign_in(zone)


def test_an_api_key_is_shown_once_stored_as_a_hash_and_stops_at_revocation(zone: Zone) -> None:
    token = sign_in(zone)
    issued = zone.client.post("/v1/auth/keys", headers=bearer(token), json={"name": "monthly upload", "days": 30})
    assert issued.status_code == 201, issued.text
    key = issued.json()["api_key"]
    assert key.startswith("ck_") and issued.json()["key_id"] in key
    listed = zone.client.get("/v1/auth/keys", headers=bearer(token)).json()["items"]
    assert [k["name"] for k in listed] == ["monthly upload"] and key not in json.dumps(listed)
    assert zone.client.get("/v1/auth/me", headers=bearer(key)).json()["signed_in_with"] == "key"
    with session_factory(zone.settings)() as session:
        stored = session.get(ApiKey, issued.json()["key_id"])
        assert stored is not None and stored.secret_hash.startswith("$argon2id$")
        assert key.split("_", 2)[2] not in stored.secret_hash
        audit_text = json.dumps([e.detail for e in session.scalars(select(AuditEntry))])
        assert "api_key_issued" in {e.action for e in session.scalars(select(AuditEntry))}
        assert key not in audit_text and PASSWORD not in audit_text
    key_id = issued.json()["key_id"]
    assert zone.client.delete(f"/v1/auth/keys/{key_id}", headers=bearer(token)).json()["revoked_at"]
    assert zone.client.get("/v1/auth/me", headers=bearer(key)).status_code == 401


def test_an_expired_key_is_refused_and_a_key_outlives_no_limit(zone: Zone) -> None:
    token = sign_in(zone)
    too_long = zone.client.post("/v1/auth/keys", headers=bearer(token),
                                json={"name": "forever", "days": zone.settings.api_key_days + 1})
    assert too_long.status_code == 422 and too_long.json()["code"] == "invalid_expiry"
    key = zone.client.post("/v1/auth/keys", headers=bearer(token), json={"name": "short"}).json()["api_key"]
    assert zone.client.get("/v1/auth/me", headers=bearer(key)).status_code == 200
    zone.sql("update api_keys set expires_at = '2000-01-01 00:00:00'")  # as another process would
    past_the_cache(zone)
    assert zone.client.get("/v1/auth/me", headers=bearer(key)).status_code == 401


def test_a_user_cannot_revoke_another_users_key(zone: Zone) -> None:
    admin_key = zone.client.post("/v1/auth/keys", headers=ADMIN, json={"name": "ops"}).json()
    token = sign_in(zone)
    refused = zone.client.delete(f"/v1/auth/keys/{admin_key['key_id']}", headers=bearer(token))
    assert refused.status_code == 404 and refused.json()["code"] == "key_not_found"
    assert zone.client.get("/v1/auth/me", headers=bearer(admin_key["api_key"])).status_code == 200


def test_a_browser_session_is_an_http_only_strict_cookie_and_changes_need_its_csrf_token(zone: Zone) -> None:
    answer = zone.client.post("/v1/auth/session", data={"username": "li.na", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    cookies = {c.split("=", 1)[0]: c.lower() for c in answer.headers.get_list("set-cookie")}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= {
        p.strip() for p in cookies["carbon_session"].split(";")[1:]}
    assert "httponly" not in cookies["carbon_csrf"] and "samesite=strict" in cookies["carbon_csrf"]
    csrf = answer.json()["csrf_token"]
    assert answer.json()["user"]["user_id"] == "li.na"
    assert zone.client.get("/v1/auth/me").json()["signed_in_with"] == "cookie"  # the client keeps the cookie
    missing = zone.client.post("/v1/auth/keys", json={"name": "from the page"})
    assert missing.status_code == 403 and missing.json()["code"] == "csrf_failed"
    forged = zone.client.post("/v1/auth/keys", json={"name": "from the page"},
                              headers={"X-CSRF-Token": "cs_" + "a" * 43})
    assert forged.status_code == 403
    made = zone.client.post("/v1/auth/keys", json={"name": "from the page"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    session_token = zone.client.cookies["carbon_session"]
    assert zone.client.get("/v1/auth/me", headers=bearer(session_token)).status_code == 401  # a cookie is no bearer
    assert zone.client.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    zone.client.cookies.set("carbon_session", session_token)
    assert zone.client.get("/v1/auth/me").status_code == 401


def test_disabling_a_user_or_changing_the_password_ends_its_sessions_and_keys(zone: Zone) -> None:
    token = sign_in(zone)
    key = zone.client.post("/v1/auth/keys", headers=bearer(token), json={"name": "job"}).json()["api_key"]
    changed = zone.client.patch("/v1/users/li.na", headers=ADMIN, json={"password": "another long password"})
    assert changed.status_code == 200
    assert zone.client.get("/v1/auth/me", headers=bearer(token)).status_code == 401
    assert zone.client.get("/v1/auth/me", headers=bearer(key)).status_code == 200  # a key is not a session
    token = sign_in(zone, password="another long password")
    assert zone.client.patch("/v1/users/li.na", headers=ADMIN, json={"disabled": True}).json()["disabled"] is True
    for credential in (token, key):
        assert zone.client.get("/v1/auth/me", headers=bearer(credential)).status_code == 401
    refused = zone.client.post("/v1/auth/token", data={"username": "li.na", "password": "another long password"})
    assert refused.status_code == 401
    zone.client.patch("/v1/users/li.na", headers=ADMIN, json={"disabled": False})
    assert zone.client.get("/v1/auth/me", headers=bearer(key)).status_code == 200


def test_the_admin_creates_users_with_their_bindings_and_bad_ones_are_refused(zone: Zone) -> None:
    made = zone.client.post("/v1/users", headers=ADMIN, json={"user_id": "trader-ma", "role": "trader",
                                                              "password": PASSWORD, "account_ids": ["TR-MA"]})
    assert made.status_code == 201 and made.json()["account_ids"] == ["TR-MA"]
    assert sign_in(zone, user="trader-ma")
    cases = [({"user_id": "x", "role": "officer"}, "invalid_request"),
             ({"user_id": "Bad Name", "role": "officer"}, "invalid_user_id"),
             ({"user_id": "root2", "role": "system"}, "unknown_role"),
             ({"user_id": "ent-1", "role": "enterprise"}, "binding_required"),
             ({"user_id": "tr-1", "role": "trader"}, "binding_required"),
             ({"user_id": "off-1", "role": "officer", "enterprise_ids": [CHP_PLANT]}, "binding_not_allowed"),
             ({"user_id": "off-2", "role": "officer", "password": "short"}, "weak_password"),
             ({"user_id": "trader-ma", "role": "officer"}, "user_exists")]
    for body, code in cases:
        answer = zone.client.post("/v1/users", headers=ADMIN, json=body)
        assert answer.status_code in (409, 422) and answer.json()["code"] == code, (body, answer.text)
    with session_factory(zone.settings)() as session:
        assert session.get(User, "off-2") is None and session.get(User, "ent-1") is None


def test_no_password_token_or_key_reaches_the_request_log(zone: Zone, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="carbon.request"):
        token = sign_in(zone)
        key = zone.client.post("/v1/auth/keys", headers=bearer(token), json={"name": "job"}).json()["api_key"]
        zone.client.get("/v1/auth/me", headers=bearer(key))
        zone.client.post("/v1/auth/token", data={"username": "li.na", "password": "wrong password"})
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "carbon.request" in logged
    for secret in (PASSWORD, "wrong password", token, key, "li.na"):
        assert secret not in logged


# --- the credential cache ------------------------------------------------------------------------------


def credential_cache(zone: Zone) -> CredentialCache[service.Authenticated]:
    cache: CredentialCache[service.Authenticated] = zone.client.app.state.credentials  # type: ignore[attr-defined]
    return cache


def past_the_cache(zone: Zone) -> None:
    """Move the cache's clock past its time to live: what a change made by another process waits for."""
    cache = credential_cache(zone)
    real_clock, later = cache.clock, cache.ttl_seconds + 1
    cache.clock = lambda: real_clock() + later


def test_a_cached_key_session_or_binding_change_made_through_this_process_holds_on_the_next_request(
        zone: Zone) -> None:
    cache = credential_cache(zone)
    token = sign_in(zone)
    key = zone.client.post("/v1/auth/keys", headers=bearer(token), json={"name": "job"}).json()["api_key"]
    key_id = key.split("_")[1]
    other_plant = "914100000000000001"
    for credential in (token, key):  # both checked once: from now on answered from the cache
        assert zone.client.get(f"/v1/enterprises/{CHP_PLANT}", headers=bearer(credential)).status_code != 404
    assert zone.client.get(f"/v1/enterprises/{other_plant}", headers=bearer(key)).status_code == 404
    assert len(cache) == 2
    rebound = zone.client.patch("/v1/users/li.na", headers=ADMIN, json={"enterprise_ids": [other_plant]})
    assert rebound.status_code == 200
    assert zone.client.get(f"/v1/enterprises/{CHP_PLANT}", headers=bearer(key)).status_code == 404
    assert zone.client.get(f"/v1/enterprises/{other_plant}", headers=bearer(token)).status_code != 404
    assert zone.client.delete(f"/v1/auth/keys/{key_id}", headers=bearer(token)).status_code == 200
    assert zone.client.get("/v1/auth/me", headers=bearer(key)).status_code == 401
    assert zone.client.post("/v1/auth/logout", headers=bearer(token)).status_code == 204
    assert zone.client.get("/v1/auth/me", headers=bearer(token)).status_code == 401


def test_a_change_made_by_another_process_is_seen_once_the_cache_entry_is_older_than_its_time_to_live(
        zone: Zone) -> None:
    token = sign_in(zone)
    assert zone.client.get("/v1/auth/me", headers=bearer(token)).status_code == 200
    zone.sql("update users set disabled_at = '2026-01-01 00:00:00' where user_id = 'li.na'")  # not through a Session
    past_the_cache(zone)
    assert zone.client.get("/v1/auth/me", headers=bearer(token)).status_code == 401


def test_a_check_that_read_the_database_before_a_change_does_not_put_its_answer_back() -> None:
    cache: CredentialCache[str] = CredentialCache(ttl_seconds=5)
    before_the_change = cache.generation
    cache.forget_user("li.na")  # committed while the check was reading
    cache.remember(kind="header", token="ck_x", identity="li.na, enabled", user_id="li.na", expires_at=None,
                   generation=before_the_change)
    assert cache.recall(kind="header", token="ck_x", now=service.now_utc()) is None
    cache.remember(kind="header", token="ck_x", identity="li.na, enabled", user_id="li.na", expires_at=None,
                   generation=cache.generation)
    assert cache.recall(kind="header", token="ck_x", now=service.now_utc()) == "li.na, enabled"
    assert cache.recall(kind="cookie", token="ck_x", now=service.now_utc()) is None  # a header key is no cookie

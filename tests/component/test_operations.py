"""Operations: JSON request logs with request ids, the per-client rate limit, settings and CORS."""

from __future__ import annotations

import gc
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api import access
from api.main import create_app
from api.rate_limit import TokenBuckets
from api.request_log import REQUEST_LOGGER_NAME, JsonFormatter
from pipelines.settings import Settings, SettingsFileError
from tests.auth_support import OFFICER, VERIFIER, enterprise, enterprise_user_id
from tests.conftest import zone_settings

ENTERPRISE_ID = "914101022286058318"  # the coal-fired CHP plant of the sample zone
ACTOR_ID = enterprise_user_id((ENTERPRISE_ID,))
ACTOR_HEADERS = enterprise(ENTERPRISE_ID)


class _Lines(logging.Handler):
    """Keeps the JSON lines the request logger writes."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    handler = _Lines()
    logger = logging.getLogger(REQUEST_LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def test_a_request_is_logged_as_one_json_line_with_no_actor_or_enterprise_data(
        tmp_path: Path, log_lines: list[str]) -> None:
    with TestClient(create_app(zone_settings(tmp_path))) as client:
        response = client.get(f"/v1/review/periods/{ENTERPRISE_ID}/2024-03", headers=ACTOR_HEADERS)
    assert response.status_code < 500
    assert len(log_lines) == 1
    line = log_lines[0]
    entry = json.loads(line)
    assert entry["method"] == "GET"
    assert entry["path"] == "/v1/review/periods/{enterprise_id}/{period}"
    assert entry["status"] == response.status_code
    assert entry["request_id"] == response.headers["X-Request-ID"]
    assert entry["role"] == "enterprise"
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
    assert entry["client"] and "testclient" not in line
    key = ACTOR_HEADERS["Authorization"].removeprefix("Bearer ")
    for secret in (ACTOR_ID, ENTERPRISE_ID, key, key[:19], key[19:], "2024-03"):
        assert secret not in line


def test_a_valid_request_id_is_echoed_and_an_invalid_one_replaced_with_a_uuid(tmp_path: Path) -> None:
    client = TestClient(create_app(zone_settings(tmp_path)))
    assert client.get("/healthz", headers={"X-Request-ID": "abc.DEF_12-3"}).headers["X-Request-ID"] == "abc.DEF_12-3"
    for bad in ("x" * 65, "has space", "semi;colon", "ünïcode".encode(), ""):
        echoed = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert echoed != bad
        assert uuid.UUID(echoed).version == 4
    first, second = (client.get("/healthz").headers["X-Request-ID"] for _ in range(2))
    assert first != second


def test_error_responses_carry_the_request_id_in_the_body_and_header(
        tmp_path: Path, log_lines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(zone_settings(tmp_path))
    monkeypatch.setitem(access.POLICY, ("GET", "/boom"), access.PUBLIC)  # a route of this test only

    def boom() -> None:
        raise ZeroDivisionError("an internal detail")

    app.add_api_route("/boom", boom)
    client = TestClient(app, raise_server_exceptions=False)
    missing = client.get("/no/such/route", headers={"X-Request-ID": "req-404"})
    assert missing.status_code == 404
    assert missing.json()["request_id"] == "req-404" and missing.headers["X-Request-ID"] == "req-404"
    failed = client.get("/boom", headers={"X-Request-ID": "req-500"})
    assert failed.status_code == 500
    assert failed.json()["request_id"] == "req-500" and failed.headers["X-Request-ID"] == "req-500"
    entries = [json.loads(line) for line in log_lines]
    assert [(e["path"], e["status"]) for e in entries] == [("<unmatched>", 404), ("/boom", 500)]
    assert entries[1]["level"] == "ERROR" and entries[1]["error"] == "ZeroDivisionError"
    assert "internal detail" not in log_lines[1]


def test_a_signed_in_user_past_its_burst_gets_429_with_retry_after_while_others_and_probes_pass(
        tmp_path: Path, log_lines: list[str]) -> None:
    app = create_app(zone_settings(tmp_path, rate_limit_per_minute=6, rate_limit_burst=3))
    with TestClient(app) as client:
        assert [client.get("/v1/review/queue", headers=OFFICER).status_code for _ in range(3)] == [200] * 3
        refused = client.get("/v1/review/queue", headers=OFFICER)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 10  # one token at 6 per minute: 10 s
        assert refused.json()["request_id"] == refused.headers["X-Request-ID"]
        assert client.get(f"/v1/review/periods/{ENTERPRISE_ID}/2024-03", headers=OFFICER).status_code == 429
        assert json.loads(log_lines[-1])["path"] == "/v1/review/periods/{enterprise_id}/{period}"  # logged by template
        assert ENTERPRISE_ID not in log_lines[-1]
        # another user has a bucket of its own, and so has the address (requests without credentials)
        assert [client.get("/v1/review/queue", headers=VERIFIER).status_code for _ in range(3)] == [200] * 3
        assert [client.get("/nowhere").status_code for _ in range(2)] == [404] * 2
        # a credential that fails to authenticate is a 401 and counts against the address, not a user
        garbage = client.get("/v1/review/queue", headers={"Authorization": "Bearer ck_garbage"})
        assert garbage.status_code == 401 and garbage.json()["code"] == "authentication_required"
        assert client.get("/nowhere").status_code == 429  # the address bucket is now empty
        assert client.get("/v1/review/queue", headers=VERIFIER).status_code == 429
        assert all(client.get(p, headers=OFFICER).status_code == 200 for p in ["/healthz"] * 5)
        assert all(client.get(p).status_code == 200 for p in ["/healthz"] * 5)


def test_a_rate_limit_of_zero_disables_it(tmp_path: Path) -> None:
    client = TestClient(create_app(zone_settings(tmp_path, rate_limit_per_minute=0, rate_limit_burst=1)))
    assert {client.get("/nowhere").status_code for _ in range(5)} == {404}


def test_what_start_up_made_is_out_of_the_garbage_collectors_reach(tmp_path: Path) -> None:
    """A full collection walks only what requests made, not the modules, mappers and schemas of start-up."""
    with TestClient(create_app(zone_settings(tmp_path))) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 100_000


def test_token_buckets_refill_at_the_rate_and_forget_idle_clients() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, burst=2, max_clients=3, clock=lambda: now[0])
    assert [buckets.take("a"), buckets.take("a"), buckets.take("a")] == [None, None, 1]
    now[0] = 1.0
    assert buckets.take("a") is None and buckets.take("a") == 1
    for key in "bcdef":
        buckets.take(key)
    assert len(buckets) == 3  # never more than max_clients
    now[0] = 100.0  # everyone full again: idle buckets are dropped
    buckets.take("z")
    assert len(buckets) == 1


def _clear_carbon_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("CARBON_")]:
        monkeypatch.delenv(name)


def _settings_file(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "carbon.toml"
    path.write_text(text)
    _clear_carbon_environment(monkeypatch)
    monkeypatch.setenv("CARBON_SETTINGS_FILE", str(path))


def test_the_settings_file_is_read_and_the_environment_overrides_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _settings_file(tmp_path, 'ruleset = "ipcc2006"\nrate_limit_burst = 5\ncors_origins = ["https://a.example"]\n',
                   monkeypatch)
    monkeypatch.setenv("CARBON_RATE_LIMIT_BURST", "7")
    settings = Settings()
    assert (settings.ruleset, settings.rate_limit_burst, settings.cors_origins) == ("ipcc2006", 7, ["https://a.example"])
    monkeypatch.setenv("CARBON_CORS_ORIGINS", "https://b.example, http://localhost:5173")
    assert Settings().cors_origins == ["https://b.example", "http://localhost:5173"]


def test_an_unknown_key_or_a_missing_settings_file_is_refused_by_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _settings_file(tmp_path, 'ruleset = "cn"\nrate_limit_brust = 5\n', monkeypatch)
    with pytest.raises(SettingsFileError, match="rate_limit_brust"):
        Settings()
    monkeypatch.setenv("CARBON_SETTINGS_FILE", str(tmp_path / "absent.toml"))
    with pytest.raises(SettingsFileError, match="absent.toml"):
        Settings()


def test_the_defaults_are_safe_and_a_wildcard_origin_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_carbon_environment(monkeypatch)
    settings = Settings()
    assert settings.cors_origins == [] and settings.rate_limit_per_minute > 0
    assert create_app(zone_settings(tmp_path)).debug is False
    for origins in (["*"], ["https://*.example.org"], ["https://ok.example", "*"]):
        with pytest.raises(ValidationError, match="wildcard"):
            zone_settings(tmp_path, cors_origins=origins)


def test_cors_headers_are_sent_only_to_configured_origins(tmp_path: Path) -> None:
    plain = TestClient(create_app(zone_settings(tmp_path)))
    assert "access-control-allow-origin" not in plain.get("/healthz", headers={"Origin": "https://a.example"}).headers
    client = TestClient(create_app(zone_settings(tmp_path, cors_origins=["https://a.example"])))
    allowed = client.get("/healthz", headers={"Origin": "https://a.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://a.example"
    assert "X-Request-ID" in allowed.headers["access-control-expose-headers"]
    preflight = client.options("/v1/review/queue", headers={
        "Origin": "https://a.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization, X-CSRF-Token"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://a.example"
    allowed_headers = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "x-csrf-token" in allowed_headers
    old_identity = client.options("/v1/review/queue", headers={
        "Origin": "https://a.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "X-Actor-Id, X-Role"})
    assert old_identity.status_code == 400  # the headers that once named the actor are not accepted
    other = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    refused = client.options("/v1/review/queue", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers

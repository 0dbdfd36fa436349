"""``carbon users``: users and API keys managed from the command line work against the real API.

Each test runs the real CLI (``pipelines.cli.main``) on a test database (SQLite, and again on
PostgreSQL) and signs in through the real application (``create_app``) on the same database.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from pipelines.cli import DEMO_ROLES, main
from pipelines.settings import Settings
from tests.conftest import SAMPLE_DIR, zone_settings

CHEAP_HASHES = {"password_hash_time_cost": 1, "password_hash_memory_kib": 32}
PASSWORD = "correct horse battery staple"  # noqa: S105 (a test password)
CHP_PLANT = "914101022286058318"


@pytest.fixture
def zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Settings]:
    """The test database migrated, and the CLI's settings (CARBON_* variables) pointed at it."""
    from api.store.db import session_factory_for
    from pipelines.settings import get_settings

    settings = zone_settings(tmp_path, database_url=database_url, **CHEAP_HASHES)
    for name in [n for n in os.environ if n.upper().startswith("CARBON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CARBON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CARBON_SAMPLE_DIR", str(SAMPLE_DIR))
    monkeypatch.setenv("CARBON_DATABASE_URL", database_url)
    monkeypatch.setenv("CARBON_PASSWORD_HASH_TIME_COST", "1")
    monkeypatch.setenv("CARBON_PASSWORD_HASH_MEMORY_KIB", "32")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()
    session_factory_for(database_url).kw["bind"].dispose()


@pytest.fixture
def api(zone: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(zone)) as client:
        yield client


def users(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
          *, stdin: str = "") -> tuple[int, str, str]:
    """Run ``carbon users ARGS`` with ``stdin``: (exit status, stdout, stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    status = main(["users", *args])
    out, err = capsys.readouterr()
    return status, out, err


def sign_in(api: TestClient, user_id: str, password: str) -> dict[str, str]:
    response = api.post("/v1/auth/token", data={"username": user_id, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_a_user_added_from_stdin_signs_in_and_a_disabled_one_is_refused(
        api: TestClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    status, out, err = users(["add", "ops-ma", "--role", "officer", "--password-stdin"], capsys, monkeypatch,
                             stdin=PASSWORD + "\n")
    assert (status, err) == (0, "")
    created = json.loads(out)
    assert created["user_id"] == "ops-ma" and created["role"] == "officer" and created["has_password"]
    assert PASSWORD not in out

    headers = sign_in(api, "ops-ma", PASSWORD)
    me = api.get("/v1/auth/me", headers=headers)
    assert me.status_code == 200
    assert (me.json()["user_id"], me.json()["role"], me.json()["signed_in_with"]) == ("ops-ma", "officer", "bearer")

    status, out, _ = users(["show", "ops-ma"], capsys, monkeypatch)
    assert status == 0 and json.loads(out)["disabled"] is False
    status, out, _ = users(["disable", "ops-ma"], capsys, monkeypatch)
    assert status == 0 and json.loads(out)["disabled"] is True
    assert api.get("/v1/auth/me", headers=headers).status_code == 401
    assert api.post("/v1/auth/token", data={"username": "ops-ma", "password": PASSWORD}).status_code == 401

    status, out, _ = users(["enable", "ops-ma"], capsys, monkeypatch)
    assert status == 0 and json.loads(out)["disabled"] is False
    new_password = PASSWORD + " 2"
    status, _, _ = users(["passwd", "ops-ma", "--password-stdin"], capsys, monkeypatch, stdin=new_password + "\n")
    assert status == 0
    assert api.post("/v1/auth/token", data={"username": "ops-ma", "password": PASSWORD}).status_code == 401
    assert api.get("/v1/auth/me", headers=sign_in(api, "ops-ma", new_password)).status_code == 200

    status, out, _ = users(["list"], capsys, monkeypatch)
    listed = {u["user_id"]: u for u in json.loads(out)["items"]}
    assert listed["ops-ma"]["role"] == "officer"


def test_an_api_key_issued_by_the_cli_is_shown_once_works_and_stops_when_revoked(
        api: TestClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    status, _, _ = users(["add", "ent-job", "--role", "enterprise", "--enterprise", CHP_PLANT, "--no-password"],
                         capsys, monkeypatch)
    assert status == 0
    status, out, err = users(["key", "issue", "ent-job", "--name", "monthly upload", "--days", "30"], capsys,
                             monkeypatch)
    assert status == 0 and "shown once" in err
    issued = json.loads(out)
    key = issued["api_key"]
    assert key.startswith(f"ck_{issued['key_id']}_") and issued["name"] == "monthly upload"

    headers = {"Authorization": f"Bearer {key}"}
    me = api.get("/v1/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["signed_in_with"] == "key" and me.json()["enterprise_ids"] == [CHP_PLANT]

    status, out, _ = users(["key", "list", "ent-job"], capsys, monkeypatch)
    (listed,) = json.loads(out)["items"]
    assert listed["key_id"] == issued["key_id"] and listed["revoked_at"] is None and key not in out
    status, out, _ = users(["show", "ent-job"], capsys, monkeypatch)
    assert [k["key_id"] for k in json.loads(out)["keys"]] == [issued["key_id"]] and key not in out

    status, out, _ = users(["key", "revoke", issued["key_id"]], capsys, monkeypatch)
    assert status == 0 and json.loads(out)["revoked_at"] is not None
    refused = api.get("/v1/auth/me", headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_required"

    status, _, err = users(["key", "revoke", "0000000000000000"], capsys, monkeypatch)
    assert status == 2 and "key_not_found" in err


def test_bind_replaces_an_enterprise_users_enterprises(
        api: TestClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    users(["add", "ent-two", "--role", "enterprise", "--enterprise", CHP_PLANT, "--no-password"], capsys,
          monkeypatch)
    status, out, _ = users(["bind", "ent-two", "--enterprise", CHP_PLANT, "--enterprise", "91410102170679896E"],
                           capsys, monkeypatch)
    assert status == 0 and json.loads(out)["enterprise_ids"] == sorted([CHP_PLANT, "91410102170679896E"])
    status, _, err = users(["bind", "ent-two"], capsys, monkeypatch)
    assert status == 2 and "--enterprise" in err


def demo_table(out: str) -> dict[str, tuple[str, str, str]]:
    """The demo table: user id → (role, password, binding)."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0].startswith("demo-"):
            rows[cells[0]] = (cells[1], cells[2], " ".join(cells[3:]))
    return rows


def test_demo_creates_one_user_per_role_and_a_second_run_resets_their_passwords(
        api: TestClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    status, first_out, _ = users(["demo"], capsys, monkeypatch)
    assert status == 0
    first = demo_table(first_out)
    assert sorted(role for role, _, _ in first.values()) == sorted(DEMO_ROLES)
    assert len([line for line in first_out.splitlines() if line.strip().startswith("demo-")]) == len(DEMO_ROLES)
    assert "/v1/auth/token" in first_out
    assert first["demo-enterprise"][2] == f"enterprise {CHP_PLANT}"
    assert first["demo-trader"][2] == "account TR-DEMO-1"

    for user_id, (role, password, _) in first.items():
        me = api.get("/v1/auth/me", headers=sign_in(api, user_id, password)).json()
        assert (me["user_id"], me["role"]) == (user_id, role)

    status, second_out, _ = users(["demo"], capsys, monkeypatch)
    assert status == 0
    second = demo_table(second_out)
    assert set(second) == set(first)
    assert all(second[u][1] != first[u][1] for u in first)
    old = api.post("/v1/auth/token", data={"username": "demo-officer", "password": first["demo-officer"][1]})
    assert old.status_code == 401
    me = api.get("/v1/auth/me", headers=sign_in(api, "demo-trader", second["demo-trader"][1])).json()
    assert me["account_ids"] == ["TR-DEMO-1"]


def test_the_demo_market_lets_the_demo_trader_trade_at_once_and_a_second_run_funds_nothing(
        api: TestClient, zone: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from accounting.review import Actor
    from api.services.registry import import_registry
    from api.store.db import session_factory

    with session_factory(zone)() as session:
        import_registry(session, content=(SAMPLE_DIR / "enterprises.csv").read_bytes(), source="enterprises.csv",
                        actor=Actor(actor_id="test-loader", role="engineer"))
    _, out, _ = users(["demo"], capsys, monkeypatch)
    password = demo_table(out)["demo-trader"][1]
    assert main(["exchange", "demo"]) == 0
    first = capsys.readouterr().out
    assert "CEA-2025 listed" in first and "funded now" in first
    headers = sign_in(api, "demo-trader", password)
    placed = api.post("/v1/exchange/instruments/CEA-2025/orders", headers=headers, json={
        "account_id": "TR-DEMO-1", "client_order_id": "demo-1", "side": "buy", "quantity_t": 100, "price_fen": 5000})
    assert placed.status_code == 201, placed.text
    statement = api.get("/v1/exchange/accounts/TR-DEMO-1/statement", headers=headers).json()
    cash = next(h for h in statement["holdings"] if h["instrument"] == "CNY")
    assert main(["exchange", "demo"]) == 0
    assert "funded earlier" in capsys.readouterr().out
    again = api.get("/v1/exchange/accounts/TR-DEMO-1/statement", headers=headers).json()
    assert next(h for h in again["holdings"] if h["instrument"] == "CNY") == cash


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["add", "ops-x", "--role", "boss", "--no-password"], "", "unknown_role"),
    (["add", "ent-x", "--role", "enterprise", "--no-password"], "", "binding_required"),
    (["add", "trader-x", "--role", "trader", "--no-password"], "", "binding_required"),
    (["add", "officer-li", "--role", "officer", "--no-password"], "", "user_exists"),
    (["add", "Bad User", "--role", "officer", "--no-password"], "", "invalid_user_id"),
    (["add", "ops-x", "--role", "officer", "--password-stdin"], "short\n", "weak_password"),
    (["add", "ops-x", "--role", "officer", "--password-stdin"], "", "stdin gave no password"),
    (["add", "ops-x", "--role", "officer"], "", "--password-stdin"),  # no terminal to prompt on
    (["passwd", "nobody", "--password-stdin"], PASSWORD + "\n", "user_not_found"),
    (["disable", "nobody"], "", "user_not_found"),
    (["key", "issue", "officer-li", "--name", "job", "--days", "5000"], "", "invalid_expiry"),
])
def test_refusals_exit_2_with_a_message_and_no_traceback(
        zone: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        args: list[str], stdin: str, message: str) -> None:
    status, out, err = users(args, capsys, monkeypatch, stdin=stdin)
    assert status == 2
    assert out == "" and message in err and "Traceback" not in err
    assert err.startswith(f"carbon users {args[0]}: ")


def test_a_password_is_never_taken_as_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["users", "add", "ops-x", "--role", "officer", "--password", PASSWORD])
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err

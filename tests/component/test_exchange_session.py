"""Order entry over the WebSocket session (``/v1/exchange/session``): the REST routes' answers, refusals and limits.

Every command is checked against what the REST route answers on the same market: the same order bodies, the
same statuses and problem codes, the same per-account limit; the handshake signs in with ``Authorization`` only,
and a credential revoked while the socket is open stops the next command and closes the socket (1008).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.testclient import WebSocketDenialResponse, WebSocketTestSession
from starlette.types import Message

from accounting.review import Actor
from api.services import users
from tests.auth_support import OFFICER
from tests.component.test_exchange_api import footprint
from tests.exchange_support import CHP_ACCOUNT, CHP_USER, INSTRUMENT, QIAN, UNITS_T, ZHOU, Market, market

SESSION = "/v1/exchange/session"
ORDERS = f"/v1/exchange/instruments/{INSTRUMENT}/orders"
#: Argon2 at its lowest cost, for the test that signs in with a password.
CHEAP_HASHES = {"password_hash_time_cost": 1, "password_hash_memory_kib": 32}


@pytest.fixture
def mkt(tmp_path: Path, database_url: str) -> Iterator[Market]:
    with market(tmp_path, database_url) as created:
        yield created


def place(ref: str, side: str = "buy", quantity_t: int = 10, price_fen: int = 4990, **fields: Any) -> dict[str, Any]:
    """A place command of TR-QIAN's (``fields`` override or add any member)."""
    return {"op": "place", "ref": ref, "instrument": INSTRUMENT, "account_id": "TR-QIAN", "client_order_id": ref,
            "side": side, "quantity_t": quantity_t, "price_fen": price_fen, **fields}


def on_order(op: str, ref: str, order_id: int) -> dict[str, Any]:
    return {"op": op, "ref": ref, "instrument": INSTRUMENT, "order_id": order_id}


def ask(ws: WebSocketTestSession, command: dict[str, Any]) -> dict[str, Any]:
    """Send one command and read its answer (one command in flight: the answer is this command's)."""
    ws.send_json(command)
    answer: dict[str, Any] = ws.receive_json()
    assert answer["ref"] == command["ref"], answer
    return answer


def over_rest(mkt: Market, headers: dict[str, str], command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The same command through its REST route (a place with a client order id of its own): status and body."""
    if command["op"] == "place":
        body = {k: v for k, v in command.items() if k not in ("op", "ref", "instrument")}
        answer = mkt.client.post(ORDERS, headers=headers, json={**body, "client_order_id": uuid.uuid4().hex[:20]})
    else:
        answer = mkt.client.request("DELETE" if command["op"] == "cancel" else "GET",
                                    f"{ORDERS}/{command['order_id']}", headers=headers)
    return answer.status_code, answer.json()


def same_refusal(mkt: Market, ws: WebSocketTestSession, command: dict[str, Any], status: int, code: str) -> None:
    """The command is refused with ``status`` and ``code`` over REST and over the session alike."""
    rest_status, rest_body = over_rest(mkt, QIAN, command)
    answer = ask(ws, command)
    assert (answer["status"], answer["problem"]["code"]) == (rest_status, rest_body["code"]) == (status, code), answer
    assert answer["problem"]["status"] == status and "order" not in answer
    assert answer["problem"].get("order") == rest_body.get("order")  # an order that has ended: shown alike


def next_message(ws: WebSocketTestSession, seconds: float) -> Message | None:
    """The next message the server sends, or None when none comes in time (``ws.receive()`` would wait forever)."""
    async def within() -> Message | None:
        with anyio.move_on_after(seconds):  # the TestClient's own stream of the app's messages (no public timeout)
            message: Message = await ws._send_rx.receive()
            return message
        return None
    return ws.portal.call(within)


def rest_order(mkt: Market, order_id: int) -> dict[str, Any]:
    answer = mkt.client.get(f"{ORDERS}/{order_id}", headers=QIAN)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_place_get_and_cancel_answer_what_rest_answers(mkt: Market) -> None:
    assert mkt.order(ZHOU, "TR-ZHOU", "sell", 300, 5010).status_code == 201
    with mkt.client.websocket_connect(SESSION, headers=QIAN) as ws:
        resting = ask(ws, place("r1"))
        assert resting["status"] == 201, resting
        order = resting["order"]
        assert (order["state"], order["client_order_id"], order["remaining_t"]) == ("new", "r1", 10)
        assert order == rest_order(mkt, order["order_id"])
        again = ask(ws, place("r1-again", client_order_id="r1"))  # the same client order id: the same order
        assert (again["status"], again["order"]) == (200, order)
        got = ask(ws, on_order("get", "r2", order["order_id"]))
        assert (got["status"], got["order"]) == (200, order)
        cancelled = ask(ws, on_order("cancel", "r3", order["order_id"]))
        assert cancelled["status"] == 200, cancelled
        assert (cancelled["order"]["state"], cancelled["order"]["held_fen"]) == ("cancelled", 0)
        assert cancelled["order"] == rest_order(mkt, order["order_id"])
        crossing = ask(ws, place("r4", quantity_t=500, price_fen=5050))
        assert crossing["status"] == 201, crossing
        taken = crossing["order"]
        assert (taken["state"], taken["filled_t"], taken["remaining_t"]) == ("partially_filled", 300, 200)
        [fill] = taken["fills"]
        assert (fill["price_fen"], fill["quantity_t"], fill["liquidity"]) == (5010, 300, "taker")
        assert taken == rest_order(mkt, taken["order_id"])
        assert ask(ws, on_order("get", "r5", taken["order_id"]))["order"] == taken
    assert mkt.balance("TR-QIAN", INSTRUMENT) == UNITS_T + 300
    mkt.verify()


def test_refusals_are_the_rest_routes_and_the_session_keeps_serving(mkt: Market) -> None:
    theirs = mkt.order(ZHOU, "TR-ZHOU", "sell", 10, 5100).json()["order_id"]
    with mkt.client.websocket_connect(SESSION, headers=QIAN) as ws:
        mine = ask(ws, place("mine"))["order"]["order_id"]
        assert ask(ws, on_order("cancel", "c1", mine))["status"] == 200
        before = footprint(mkt)
        same_refusal(mkt, ws, place("poor", quantity_t=2_000, price_fen=5000), 409, "insufficient_funds")
        same_refusal(mkt, ws, place("short", side="sell", quantity_t=UNITS_T + 1, price_fen=5000), 409,
                     "insufficient_holdings")
        assert footprint(mkt) == before  # a missing balance writes nothing, over either
        for command, status, code in (
            (place("high", quantity_t=1, price_fen=5600), 422, "outside_band"),
            (place("low", quantity_t=1, price_fen=4400), 422, "outside_band"),
            (place("big", quantity_t=100_000, price_fen=5000), 422, "order_too_large"),
            (place("other", account_id="TR-ZHOU"), 404, "unknown_account"),
            (on_order("cancel", "no-cancel", 999_999), 404, "unknown_order"),
            (on_order("get", "no-get", 999_999), 404, "unknown_order"),
            (on_order("get", "their-get", theirs), 404, "unknown_order"),
            (on_order("cancel", "their-cancel", theirs), 404, "unknown_order"),
            (on_order("cancel", "second-cancel", mine), 409, "order_not_open"),
        ):
            same_refusal(mkt, ws, command, status, code)
        assert footprint(mkt)[1:] == before[1:]  # refused: no order and no entry
        assert rest_order(mkt, mine)["state"] == "cancelled"
        ended = ask(ws, on_order("cancel", "third-cancel", mine))["problem"]
        assert ended["order"] == rest_order(mkt, mine)  # how it ended, without reading it again
    assert mkt.client.get(f"{ORDERS}/{theirs}", headers=ZHOU).json()["state"] == "new"
    mkt.verify()


def test_messages_that_are_no_command_are_refused_one_by_one(mkt: Market) -> None:
    with mkt.client.websocket_connect(SESSION, headers=QIAN) as ws:
        order_id = ask(ws, place("r0"))["order"]["order_id"]
        for message, ref, status, code, wrong in (
            ({"text": json.dumps({**place("extra"), "colour": "red"})}, "extra", 422, "invalid_request", ["colour"]),
            ({"text": json.dumps(place("side", side="hold"))}, "side", 422, "invalid_request", ["side"]),
            ({"text": json.dumps({"op": "amend", "ref": "op"})}, "op", 422, "invalid_request", None),
            ({"text": json.dumps(place("r" * 65))}, None, 422, "invalid_request", None),  # no usable ref
            ({"text": "not json"}, None, 422, "invalid_request", None),
            ({"bytes": json.dumps(place("binary")).encode()}, None, 415, "unsupported_media_type", None),
            ({"text": " " * 4097}, None, 413, "payload_too_large", None),
        ):
            ws.send({"type": "websocket.receive", **message})
            answer = ws.receive_json()
            assert (answer["ref"], answer["status"], answer["problem"]["code"]) == (ref, status, code), answer
            if wrong is not None:
                assert [e["loc"][-1] for e in answer["problem"]["errors"]] == wrong, answer
            still = ask(ws, on_order("get", f"after-{status}", order_id))
            assert (still["status"], still["order"]["order_id"]) == (200, order_id)
        longest = json.dumps(on_order("get", "longest", order_id)).ljust(4096)  # exactly the limit: still a command
        ws.send_text(longest)
        assert ws.receive_json()["status"] == 200
    listed = mkt.client.get("/v1/exchange/orders", headers=QIAN).json()["items"]
    assert [o["order_id"] for o in listed] == [order_id]  # nothing refused was placed


def test_the_handshake_signs_in_with_the_authorization_header_of_a_trader_or_enterprise(
        tmp_path: Path, database_url: str) -> None:
    with market(tmp_path, database_url, **CHEAP_HASHES) as mkt:
        for headers, status, code in (({}, 401, "authentication_required"),
                                      ({"Authorization": "Bearer ck_0123456789abcdef_" + "y" * 43}, 401,
                                       "authentication_required"),
                                      (OFFICER, 403, "role_not_allowed")):
            with pytest.raises(WebSocketDenialResponse) as denied:
                with mkt.client.websocket_connect(SESSION, headers=headers):
                    pass
            assert (denied.value.status_code, denied.value.json()["code"]) == (status, code)
        with mkt.sessions() as session:
            users.create_user(session, mkt.settings, by=Actor(actor_id="admin-sun", role="admin"), user_id="li.qian",
                              role="trader", password="correct horse battery staple", account_ids=["TR-QIAN"])
        login = {"username": "li.qian", "password": "correct horse battery staple"}
        browser = mkt.client.post("/v1/auth/session", data=login)
        assert browser.status_code == 200, browser.text
        cookie = {"Cookie": f"carbon_session={browser.cookies['carbon_session']}"}
        mkt.client.cookies.clear()
        assert mkt.client.get("/v1/auth/me", headers=cookie).json()["signed_in_with"] == "cookie"
        with pytest.raises(WebSocketDenialResponse) as denied:
            with mkt.client.websocket_connect(SESSION, headers=cookie):
                pass
        assert (denied.value.status_code, denied.value.json()["code"]) == (401, "authentication_required")
        token = mkt.client.post("/v1/auth/token", data=login).json()["access_token"]
        with mkt.client.websocket_connect(SESSION, headers={"Authorization": f"Bearer {token}"}) as ws:
            assert ask(ws, place("by-token"))["status"] == 201  # the same user signs in with its token
        with mkt.client.websocket_connect(SESSION, headers=CHP_USER) as ws:  # an enterprise trades its own account
            assert ask(ws, place("chp", account_id=CHP_ACCOUNT))["status"] == 201


@contextmanager
def revoked_after_one_order(mkt: Market) -> Iterator[WebSocketTestSession]:
    """A session signed in with a new API key of Qian's that places one order; then the key is revoked over REST."""
    issued = mkt.call("POST", "/v1/auth/keys", QIAN, json={"name": "order entry"}).json()
    with mkt.client.websocket_connect(SESSION, headers={"Authorization": f"Bearer {issued['api_key']}"}) as ws:
        assert ask(ws, place("before"))["status"] == 201
        revoked = mkt.client.delete(f"/v1/auth/keys/{issued['key_id']}", headers=QIAN)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
        yield ws


def test_a_key_revoked_while_the_socket_is_open_stops_the_next_command(mkt: Market) -> None:
    with revoked_after_one_order(mkt) as ws:
        refused = ask(ws, place("after"))
        assert (refused["status"], refused["problem"]["code"]) == (401, "authentication_required")
    listed = mkt.client.get("/v1/exchange/orders", headers=QIAN).json()["items"]
    assert [o["client_order_id"] for o in listed] == ["before"]  # the command after the revocation wrote nothing
    with mkt.client.websocket_connect(SESSION, headers=QIAN) as ws:  # Qian's other key still signs in
        assert ask(ws, place("other-key"))["status"] == 201


def test_the_socket_closes_with_1008_right_after_the_401(mkt: Market) -> None:
    with revoked_after_one_order(mkt) as ws:
        assert ask(ws, place("after"))["status"] == 401
        closed = next_message(ws, seconds=1.0)
        assert closed is not None and (closed["type"], closed.get("code")) == ("websocket.close", 1008), closed


def test_pipelined_commands_are_each_answered_once_and_all_placed(mkt: Market) -> None:
    commands = [place(f"p{n}", side="buy", price_fen=4900 + n) if n % 2 else
                place(f"p{n}", side="sell", price_fen=5100 + n) for n in range(20)]
    with mkt.client.websocket_connect(SESSION, headers=QIAN) as ws:
        for command in commands:
            ws.send_json(command)
        answers = [ws.receive_json() for _ in commands]
    assert Counter(a["ref"] for a in answers) == Counter(c["ref"] for c in commands)
    assert {a["status"] for a in answers} == {201}
    placed = {a["order"]["order_id"]: a["order"]["client_order_id"] for a in answers}
    listed = mkt.client.get("/v1/exchange/orders", params={"limit": 100}, headers=QIAN).json()["items"]
    assert {o["order_id"]: o["client_order_id"] for o in listed} == placed
    assert all(a["ref"] == a["order"]["client_order_id"] for a in answers)
    report = mkt.client.get(f"/v1/exchange/instruments/{INSTRUMENT}/verify", headers=OFFICER).json()
    assert report["ok"] is True, report
    mkt.verify()


def test_the_per_account_order_limit_holds_over_the_session(tmp_path: Path, database_url: str) -> None:
    with market(tmp_path, database_url, exchange_orders_per_minute=60, exchange_order_burst=3) as mkt:
        with mkt.client.websocket_connect(SESSION, headers=QIAN) as ws:
            assert [ask(ws, place(f"r{n}"))["status"] for n in range(3)] == [201, 201, 201]
            flooded = ask(ws, place("r3"))
            problem = flooded["problem"]
            assert (flooded["status"], problem["code"]) == (429, "rate_limited")
            assert problem["retry_after_s"] >= 1
        over_rest_too = mkt.order(QIAN, "TR-QIAN", "buy", 1, 4900)  # one bucket per account, REST or session
        assert (over_rest_too.status_code, over_rest_too.json()["code"]) == (429, "rate_limited")
        assert mkt.order(ZHOU, "TR-ZHOU", "sell", 1, 5100).status_code == 201  # another account's bucket
        listed = mkt.client.get("/v1/exchange/orders", headers=QIAN).json()["items"]
        assert sorted(o["client_order_id"] for o in listed) == ["r0", "r1", "r2"]

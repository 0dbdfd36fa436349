"""Every route of the OpenAPI document, called by every role, answers what the access table says.

The table (``api.access.POLICY``) is the one source of who may call what. This walks the live document of
the real application over the published sample zone: for each operation and each of anonymous plus the
six roles it sends a request (with an empty body, so nothing is changed) and checks the gate's answer:

- anonymous on a route that is not public: 401;
- a role the entry does not name: 403 ``role_not_allowed``;
- a role with a rule: anything but 401/403; for ``own_enterprise`` the request is made twice, naming the
  user's own enterprise (not refused by the gate) and another enterprise (404 ``not_found``, the same
  answer as for an enterprise that does not exist).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import WebSocketRoute
from starlette.testclient import WebSocketDenialResponse

from accounting.review import USER_ROLES
from api.access import POLICY, SOCKET_POLICY, Rule
from api.main import create_app
from api.openapi import api_routes
from pipelines.settings import Settings
from tests.auth_support import ADMIN, ENGINEER, OFFICER, TRADER, VERIFIER, enterprise

OWN = "914101022286058318"  # the CHP plant: the enterprise user's own
OTHER = "91410102170679896E"  # the gas heating plant: someone else's
MISSING = "91410100MA00000000"
HEADERS = {"enterprise": enterprise(OWN), "verifier": VERIFIER, "officer": OFFICER, "trader": TRADER,
           "engineer": ENGINEER, "admin": ADMIN}
PATH_VALUES = {"period": "2024-01", "submission_id": "00000000-0000-4000-8000-000000000000",
               "sha256": "0" * 64, "key_id": "0" * 16, "user_id": "officer-li", "path": "index.html", "year": "2024",
               "approval_id": "0" * 32, "plan_id": "zone-2024", "version": "1", "auction_id": "0" * 32,
               "bid_id": "0" * 32, "encumbrance_id": "0" * 32, "counterparty_id": f"CA-{OTHER}",
               "instrument": "CEA-2025", "order_id": "1", "quote_id": "1", "proposal_id": "1", "answer": "confirm"}
#: The account a role's user holds (own_account), and accounts of others.
OWN_ACCOUNTS = {"enterprise": f"CA-{OWN}", "trader": "TR-QIAN"}
FOREIGN_ACCOUNTS = (f"CA-{OTHER}", "TR-ZHOU", "SYS-ISSUANCE")
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def client(published_zone: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(published_zone.model_copy(update={"rate_limit_per_minute": 0}))) as test_client:
        yield test_client


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in METHODS]


def url_of(path: str, *, enterprise_id: str = OWN, account_id: str = f"CA-{OWN}") -> str:
    values = {**PATH_VALUES, "enterprise_id": enterprise_id, "account_id": account_id}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def call(client: TestClient, method: str, url: str, headers: dict[str, str]) -> tuple[int, str | None]:
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    response = client.request(method, url, headers=headers, **body)  # type: ignore[arg-type]
    code = response.json().get("code") if response.headers.get("content-type", "").endswith("json") else None
    return response.status_code, code if isinstance(code, str) else None


def template_of(client: TestClient, method: str, path: str) -> str:
    """The route's own template (``{path}`` in the document is ``{path:path}`` in the table)."""
    for route in api_routes(client.app.routes):  # type: ignore[attr-defined]
        if route.path_format == path and method in route.methods:
            return route.path
    raise AssertionError(f"no route for {method} {path}")


def test_the_access_table_names_every_route_and_only_routes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    templates = {(m, template_of(client, m, p)) for m, p in operations(document)}
    assert templates == set(POLICY), (sorted(templates - set(POLICY)), sorted(set(POLICY) - templates))


def test_every_route_answers_every_role_as_the_table_says(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    checked = 0
    for method, path in operations(document):
        access = POLICY[(method, template_of(client, method, path))]
        status, code = call(client, method, url_of(path), {})
        where = f"{method} {path} anonymous"
        if access.public:
            assert status not in (401, 403), where
        else:
            assert (status, code) == (401, "authentication_required"), where
            assert "security" in document["paths"][path][method.lower()], f"{where}: no security documented"
        checked += 1
        for role in USER_ROLES:
            where = f"{method} {path} as {role}"
            rule = access.roles.get(role)
            status, code = call(client, method, url_of(path, account_id=OWN_ACCOUNTS.get(role, f"CA-{OWN}")),
                                HEADERS[role])
            checked += 1
            if access.public:
                assert status not in (401, 403), where
            elif rule is None:
                assert (status, code) == (403, "role_not_allowed"), where
            else:
                assert status not in (401, 403), f"{where}: {status} {code}"
            if rule is Rule.OWN_ENTERPRISE:
                assert (status, code) != (404, "not_found"), f"{where}: own enterprise refused"
                for foreign in (OTHER, MISSING):
                    answer = call(client, method, url_of(path, enterprise_id=foreign), HEADERS[role])
                    assert answer == (404, "not_found"), f"{where}: {foreign} gave {answer}"
                    checked += 1
            if rule is Rule.OWN_ACCOUNT:
                assert (status, code) != (404, "not_found"), f"{where}: own account refused"
                for foreign in FOREIGN_ACCOUNTS:
                    answer = call(client, method, url_of(path, account_id=foreign), HEADERS[role])
                    assert answer == (404, "not_found"), f"{where}: {foreign} gave {answer}"
                    checked += 1
    assert checked >= len(POLICY) * (1 + len(USER_ROLES))


def test_every_websocket_is_in_the_socket_table_and_lets_in_only_its_roles(client: TestClient) -> None:
    def socket_routes(routes: list[Any]) -> Iterator[WebSocketRoute]:  # also inside included routers
        for route in routes:
            if isinstance(route, WebSocketRoute):
                yield route
            elif (included := getattr(route, "original_router", None)) is not None:
                yield from socket_routes(included.routes)

    sockets = {("WEBSOCKET", route.path) for route in socket_routes(client.app.routes)}  # type: ignore[attr-defined]
    assert sockets == set(SOCKET_POLICY)
    for (_, path), access in SOCKET_POLICY.items():
        for role, headers in [("anonymous", {}), *HEADERS.items()]:
            if role in access.roles:
                with client.websocket_connect(path, headers=headers):
                    pass
                continue
            with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect(path, headers=headers):
                pass
            expected = (401, "authentication_required") if role == "anonymous" else (403, "role_not_allowed")
            assert (refused.value.status_code, refused.value.json()["code"]) == expected, f"{path} as {role}"


def test_a_route_missing_from_the_table_is_refused_to_everybody(published_zone: Settings) -> None:
    app = create_app(published_zone)

    @app.get("/v1/unlisted")
    def unlisted() -> dict[str, str]:
        return {"secret": "s"}

    with TestClient(app) as client:
        for headers in HEADERS.values():
            answer = client.get("/v1/unlisted", headers=headers)
            assert answer.status_code == 403 and answer.json()["code"] == "role_not_allowed"
            assert "secret" not in answer.text
        assert client.get("/v1/unlisted").status_code == 403


def test_an_enterprise_user_lists_only_its_own_enterprises(client: TestClient) -> None:
    own = client.get("/v1/enterprises", headers=HEADERS["enterprise"]).json()
    assert [e["enterprise_id"] for e in own["items"]] == [OWN] and own["total"] == 1
    everyone = client.get("/v1/enterprises", headers=OFFICER).json()
    assert everyone["total"] > 1 and OTHER in [e["enterprise_id"] for e in everyone["items"]]
    two = client.get("/v1/enterprises", headers=enterprise(OTHER, OWN)).json()
    assert sorted(e["enterprise_id"] for e in two["items"]) == sorted([OWN, OTHER])

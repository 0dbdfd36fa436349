"""Hostile requests through the real application: each limit answers its own problem+json, and nothing is stored.

Why these tests: the limits of ``accounting.activity`` (lines, line length, NUL, encodings) must reach
the client as the same named errors at both upload endpoints; a JSON body nested too deep must be
refused before FastAPI or pydantic parse it, whatever the route; and every list route pages by the
same bounds. The OpenAPI document must say that errors are problem+json, since that is what is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.body_limits import MAX_JSON_DEPTH
from api.deps import MAX_OFFSET, MAX_PAGE_SIZE
from api.main import create_app
from api.store.db import session_factory
from pipelines.settings import Settings
from tests.auth_support import ENGINEER, OFFICER
from tests.component.test_api import CHP_PLANT, assert_problem, small_csv, stored
from tests.conftest import zone_settings
from tests.support import load_zone

MAX_ROWS = 4


@pytest.fixture
def zone(tmp_path: Path, published_zone: Settings, database_url: str) -> Iterator[tuple[TestClient, Settings]]:
    settings = zone_settings(tmp_path, serving_path=published_zone.serving, database_url=database_url,
                             max_upload_bytes=256 * 1024, max_rows_per_file=MAX_ROWS, rate_limit_per_minute=0)
    load_zone(settings, months=())  # the registry only
    with TestClient(create_app(settings), headers=ENGINEER) as client:
        yield client, settings
    session_factory(settings).kw["bind"].dispose()


def nested(depth: int) -> bytes:
    """A ``{"lines": ...}`` body whose arrays and objects nest ``depth`` levels deep."""
    return b'{"lines": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def file_error(response: Any, code: str) -> dict[str, Any]:
    body = assert_problem(response, status=422, code="invalid_file")
    first: dict[str, Any] = body["errors"][0]
    assert first["code"] == code, body
    return first


def test_json_nested_deeper_than_the_limit_is_refused_before_parsing_on_every_route(
        zone: tuple[TestClient, Settings]) -> None:
    client, settings = zone
    before = stored(settings)
    json_headers = {"content-type": "application/json", **OFFICER}
    for path in ("/v1/submissions", "/v1/calculations", f"/v1/review/periods/{CHP_PLANT}/2023-05/actions"):
        body = assert_problem(client.post(path, content=nested(MAX_JSON_DEPTH + 1), headers=json_headers),
                              status=422, code="json_too_deep")
        assert body["limit_depth"] == MAX_JSON_DEPTH
        deep = client.post(path, content=nested(100_000), headers=json_headers)
        assert_problem(deep, status=422, code="json_too_deep")
        at_limit = client.post(path, content=nested(MAX_JSON_DEPTH), headers=json_headers)
        assert_problem(at_limit, status=422, code="invalid_request")  # parsed, then refused by its schema
    streamed = client.post("/v1/submissions", content=iter([nested(1000)[:500], nested(1000)[500:]]),
                           headers={"content-type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, status=422, code="json_too_deep")
    assert stored(settings) == before


@pytest.mark.parametrize("path", ["/v1/submissions", "/v1/calculations"])
def test_file_limits_answer_their_own_codes_at_both_upload_endpoints(zone: tuple[TestClient, Settings],
                                                                     path: str) -> None:
    client, settings = zone
    before = stored(settings)
    text = small_csv(count=MAX_ROWS + 1).decode()

    def post(name: str, content: bytes) -> Any:
        return client.post(path, files={"file": (name, content, "text/csv")})

    header, *lines = text.splitlines()
    rows = file_error(post("many.csv", text.encode()), "too_many_rows")
    assert f"at most {MAX_ROWS} lines" in rows["expected"]
    json_lines = [dict(zip(header.split(","), line.split(","), strict=True)) for line in lines]
    many_json = client.post(path, json={"lines": json_lines})
    file_error(many_json, "too_many_rows")
    long = file_error(post("long.csv", "\n".join([header, lines[0], "x" * 70_000, *lines[1:]]).encode()),
                      "line_too_long")
    assert long["row"] == 3
    nul = file_error(post("nul.csv", text.replace(CHP_PLANT, CHP_PLANT + "\x00", 1).encode()), "nul_byte")
    assert nul["row"] == 2
    file_error(post("gbk.csv", text.replace("t\n", "吨\n").encode("gbk")), "bad_encoding")
    file_error(post("utf16.csv", text.encode("utf-16-le")), "nul_byte")  # UTF-16 without its BOM
    assert stored(settings) == before


def test_excel_unicode_text_is_accepted_as_the_same_file_in_utf8(zone: tuple[TestClient, Settings]) -> None:
    client, _ = zone
    text = small_csv(count=3).decode()
    excel = ("\ufeff" + text.replace(",", "\t").replace("\n", "\r\n")).encode("utf-16-le")
    plain = client.post("/v1/calculations", files={"file": ("plain.csv", text.encode(), "text/csv")})
    unicode_text = client.post("/v1/calculations", files={"file": ("unicode.txt", excel, "text/plain")})
    assert plain.status_code == unicode_text.status_code == 200, unicode_text.text
    totals = [[r["totals"] for r in response.json()["results"]] for response in (plain, unicode_text)]
    assert totals[0] == totals[1] and totals[0]
    accepted = client.post("/v1/submissions", files={"file": ("unicode.txt", excel, "text/plain")})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["line_count"] == 3


@pytest.mark.parametrize("path", ["/v1/enterprises", "/v1/review/queue", "/v1/review/audit"])
def test_every_list_route_pages_by_the_same_bounds(zone: tuple[TestClient, Settings], path: str) -> None:
    client, _ = zone
    assert client.get(path, params={"limit": MAX_PAGE_SIZE}, headers=OFFICER).status_code == 200
    for params in ({"limit": MAX_PAGE_SIZE + 1}, {"limit": 0}, {"offset": -1}, {"offset": MAX_OFFSET + 1},
                   {"offset": 10**30}):
        assert_problem(client.get(path, params=params, headers=OFFICER), status=422, code="invalid_request")


def test_the_openapi_document_says_every_error_is_problem_json(zone: tuple[TestClient, Settings]) -> None:
    client, _ = zone
    spec = client.get("/openapi.json").json()
    errors = [(path, method, code, response) for path, item in spec["paths"].items()
              for method, operation in item.items() for code, response in operation["responses"].items()
              if code[0] in "45"]
    assert errors
    for path, method, code, response in errors:
        assert list(response["content"]) == ["application/problem+json"], (path, method, code)
    assert "HTTPValidationError" not in json.dumps(spec)
    upload = spec["paths"]["/v1/submissions"]["post"]["responses"]
    assert {"400", "401", "403", "413", "415", "422", "503"} <= upload.keys()


def test_a_nul_character_anywhere_in_a_request_is_a_422_not_a_database_error(
        zone: tuple[TestClient, Settings]) -> None:
    client, settings = zone
    before = stored(settings)
    body = {"enterprise_id": CHP_PLANT, "period": "2023-05", "reason": "bad\u0000reason"}
    assert_problem(client.post("/v1/restatements/substitutions", json=body, headers=OFFICER),
                   status=422, code="nul_character")
    escaped = client.post("/v1/restatements/substitutions", json={**body, "reason": "a \\u0000 in words"},
                          headers=OFFICER)
    assert escaped.status_code != 500 and escaped.json()["code"] != "nul_character"
    for path, params in (("/v1/review/audit", {"target": "\x00"}), ("/v1/review/queue", {"category": "\x00"}),
                         ("/v1/restatements/substitutions", {"enterprise_id": "\x00"}),
                         ("/v1/enterprises", {"category": "\x00"})):
        assert_problem(client.get(path, params=params, headers=OFFICER), status=422, code="nul_character")
    assert_problem(client.get(f"/v1/review/periods/{CHP_PLANT}%00/2023-05", headers=OFFICER),
                   status=422, code="nul_character")
    assert stored(settings) == before

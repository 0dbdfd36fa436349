"""The API over a really published sample zone: registry, balances, lineage, zone, calculations, submissions.

Nothing is mocked: the session fixture materializes the sample with Dagster into a temporary folder,
the app reads the published DuckDB snapshot, and submissions go to a real database of their own per
test (SQLite, and the same tests again on PostgreSQL), which the tests inspect before and after.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from accounting.activity import COLUMNS, SourceFile
from accounting.calculation import TOTAL_COLUMNS, CalculationOptions
from accounting.factors import load_library
from api.main import create_app
from api.schemas import ActivityLine, Totals
from api.store import submissions as submissions_repository
from api.store.db import session_factory
from api.store.schema import AuditEntry, PeriodReview, ReviewEvent, Submission, SubmissionPeriod
from pipelines.settings import Settings
from pipelines.warehouse import calculate_sources
from tests.auth_support import ENGINEER, OFFICER, TRADER, VERIFIER, enterprise
from tests.conftest import SAMPLE_DIR, zone_settings
from tests.support import load_zone, sample_rows, to_csv

CHP_PLANT = "914101022286058318"  # coal-fired CHP: fuels with measured parameters, exports, key emitter
CEMENT_PLANT = "91410100437387498P"  # clinker lines: process emissions
UNKNOWN_ID = "91410100MA00000000"
PROBLEM = "application/problem+json"


@pytest.fixture
def client(published_zone: Settings) -> Iterator[TestClient]:
    """An API client over the published zone, signed in as an officer (who may read every route here)."""
    with TestClient(create_app(published_zone), headers=OFFICER) as test_client:
        yield test_client


def relative_close(a: float, b: float, *, tolerance: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=1e-9)


def assert_problem(response: Any, *, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    assert {"type", "title", "detail"} <= body.keys()
    return body


# ---------------------------------------------------------------------------------------------
# Health


def test_liveness_and_readiness_answer_when_the_snapshot_is_published(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["database"] == "ok" and body["tables"]["core_registry__enterprises"] == 34


def test_without_a_published_snapshot_reads_answer_503_naming_carbon_run(tmp_path: Path) -> None:
    settings = zone_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        for path in ("/readyz", "/v1/enterprises", f"/v1/enterprises/{CHP_PLANT}/emissions/yearly"):
            body = assert_problem(client.get(path, headers=OFFICER), status=503, code="snapshot_unavailable")
            assert "carbon run" in body["detail"]


def test_a_republished_snapshot_is_read_without_restarting(published_zone: Settings, tmp_path: Path) -> None:
    """The reader reopens the file when the pipeline swaps in a new snapshot (os.replace)."""
    serving = tmp_path / "serving.duckdb"
    shutil.copyfile(published_zone.serving, serving)
    settings = zone_settings(tmp_path)
    with TestClient(create_app(settings), headers=OFFICER) as client:
        assert client.get("/v1/enterprises").json()["total"] == 34
        fewer = tmp_path / ".next.duckdb"
        shutil.copyfile(published_zone.serving, fewer)
        with duckdb.connect(str(fewer)) as conn:
            conn.execute("delete from core_registry__enterprises where enterprise_id = ?", [CHP_PLANT])
        os.replace(fewer, serving)
        assert client.get("/v1/enterprises").json()["total"] == 33
        assert_problem(client.get(f"/v1/enterprises/{CHP_PLANT}"), status=404, code="enterprise_not_found")


# ---------------------------------------------------------------------------------------------
# Registry


def test_the_registry_lists_every_enterprise_with_total_and_pages(client: TestClient) -> None:
    everything = client.get("/v1/enterprises").json()
    assert everything["total"] == 34 and len(everything["items"]) == 34
    ids = [e["enterprise_id"] for e in everything["items"]]
    assert ids == sorted(ids)
    pages = [client.get("/v1/enterprises", params={"limit": 10, "offset": o}).json() for o in (0, 10, 20, 30)]
    assert [len(p["items"]) for p in pages] == [10, 10, 10, 4]
    assert all(p["total"] == 34 for p in pages)
    assert [e["enterprise_id"] for p in pages for e in p["items"]] == ids
    assert client.get("/v1/enterprises", params={"offset": 34}).json()["items"] == []
    assert_problem(client.get("/v1/enterprises", params={"limit": 1001}), status=422, code="invalid_request")
    assert_problem(client.get("/v1/enterprises", params={"limit": 0}), status=422, code="invalid_request")


def test_the_registry_filters_by_category_sector_and_key_emitter(client: TestClient,
                                                                  published_zone: Settings) -> None:
    manufacturers = client.get("/v1/enterprises", params={"category": "manufacturer"}).json()
    assert manufacturers["total"] == 25
    assert {e["category"] for e in manufacturers["items"]} == {"manufacturer"}
    chp = client.get("/v1/enterprises", params={"sector_code": "4412"}).json()
    assert CHP_PLANT in {e["enterprise_id"] for e in chp["items"]}
    assert {e["sector_code"] for e in chp["items"]} == {"4412"}

    with duckdb.connect(str(published_zone.serving), read_only=True) as conn:
        expected = {r[0] for r in conn.execute(
            "select enterprise_id from out_emissions__yearly_enterprise_balances "
            "group by enterprise_id having arg_max(is_key_emitter, period)").fetchall()}
    keyed = client.get("/v1/enterprises", params={"key_emitter": "true"}).json()
    assert {e["enterprise_id"] for e in keyed["items"]} == expected and keyed["total"] == len(expected)
    assert {CHP_PLANT, CEMENT_PLANT} <= expected
    others = client.get("/v1/enterprises", params={"key_emitter": "false"}).json()
    assert others["total"] == 34 - len(expected)
    none = client.get("/v1/enterprises", params={"category": "manufacturer", "sector_code": "4412"}).json()
    assert none == {"items": [], "total": 0, "limit": 100, "offset": 0}


def test_an_enterprise_carries_its_latest_year_key_emitter_status(client: TestClient) -> None:
    chp = client.get(f"/v1/enterprises/{CHP_PLANT}")
    assert chp.status_code == 200
    body = chp.json()
    assert body["key_emitter"] is True and body["key_emitter_year"] == 2024
    assert body["facilities"] == ["B1", "B2", "B3", "FGD"] and body["key_emitter_declared"] is True


def test_an_unknown_enterprise_is_a_404_problem_everywhere(client: TestClient) -> None:
    for path in (f"/v1/enterprises/{UNKNOWN_ID}", f"/v1/enterprises/{UNKNOWN_ID}/emissions/monthly",
                 f"/v1/enterprises/{UNKNOWN_ID}/emissions/yearly", f"/v1/enterprises/{UNKNOWN_ID}/lineage/2023-01"):
        assert_problem(client.get(path), status=404, code="enterprise_not_found")
    assert_problem(client.get("/v1/no-such-thing"), status=404, code="not_found")


def test_an_enterprise_user_reads_its_own_enterprise_and_another_is_as_missing_as_an_unknown_one(
        client: TestClient) -> None:
    """The access gate answers another enterprise's paths exactly as it answers an enterprise that does not exist."""
    own = enterprise(CHP_PLANT)
    assert client.get(f"/v1/enterprises/{CHP_PLANT}", headers=own).json()["enterprise_id"] == CHP_PLANT
    assert client.get(f"/v1/enterprises/{CHP_PLANT}/emissions/yearly", headers=own).status_code == 200
    listed = client.get("/v1/enterprises", headers=own).json()
    assert [e["enterprise_id"] for e in listed["items"]] == [CHP_PLANT] and listed["total"] == 1
    for suffix in ("", "/emissions/monthly", "/emissions/yearly", "/lineage/2023-01"):
        other = assert_problem(client.get(f"/v1/enterprises/{CEMENT_PLANT}{suffix}", headers=own),
                               status=404, code="not_found")
        missing = assert_problem(client.get(f"/v1/enterprises/{UNKNOWN_ID}{suffix}", headers=own),
                                 status=404, code="not_found")
        assert {k: v for k, v in other.items() if k != "request_id"} == \
            {k: v for k, v in missing.items() if k != "request_id"}
    assert client.get(f"/v1/enterprises/{CEMENT_PLANT}", headers=TRADER).status_code == 200
    assert_problem(client.get(f"/v1/enterprises/{CEMENT_PLANT}/emissions/yearly", headers=TRADER),
                   status=403, code="role_not_allowed")
    anonymous = TestClient(client.app)
    assert_problem(anonymous.get(f"/v1/enterprises/{CHP_PLANT}"), status=401, code="authentication_required")
    assert_problem(anonymous.get("/v1/enterprises", headers={"Authorization": "Bearer cs_not-a-token"}),
                   status=401, code="authentication_required")


# ---------------------------------------------------------------------------------------------
# Balances and lineage


def test_balance_totals_are_named_as_in_the_cli_document() -> None:
    assert tuple(Totals.model_fields) == TOTAL_COLUMNS
    assert tuple(ActivityLine.model_fields) == COLUMNS


@pytest.mark.parametrize("enterprise_id", [CHP_PLANT, CEMENT_PLANT])
def test_yearly_net_is_the_sum_of_the_monthly_nets(client: TestClient, enterprise_id: str) -> None:
    yearly = client.get(f"/v1/enterprises/{enterprise_id}/emissions/yearly").json()
    assert [y["period"] for y in yearly["items"]] == ["2023", "2024"]
    for year in yearly["items"]:
        monthly = client.get(f"/v1/enterprises/{enterprise_id}/emissions/monthly",
                             params={"year": year["period"]}).json()
        assert [m["period"] for m in monthly["items"]] == [f"{year['period']}-{m:02d}" for m in range(1, 13)]
        assert year["months_reported"] == 12
        for column in ("net_tco2e", "scope1_tco2e", "scope2_tco2e", "exported_tco2e", "energy_tce"):
            total = sum(m["totals"][column] for m in monthly["items"])
            assert relative_close(year["totals"][column], total), column
        first = monthly["items"][0]
        assert set(first["totals"]) == set(TOTAL_COLUMNS)
        assert first["edition"] and first["ruleset"] == "cn" and first["grid_region"] == "national"
        assert first["gwp_set"] == "AR5" and first["run_id"]
    assert yearly["items"][-1]["is_key_emitter"] is True
    every_month = client.get(f"/v1/enterprises/{enterprise_id}/emissions/monthly").json()
    assert len(every_month["items"]) == 24
    assert client.get(f"/v1/enterprises/{enterprise_id}/emissions/monthly",
                      params={"year": 2030}).json()["items"] == []


def _net_of_lines(lines: list[dict[str, Any]]) -> float:
    """Scope 1 and 2 lines add, exported lines (carried as positive tCO2e) subtract."""
    ghg = {"combustion", "process", "purchased_electricity", "purchased_heat"}
    exported = {"exported_electricity", "exported_heat"}
    return (sum(line["tco2e"] for line in lines if line["category"] in ghg)
            - sum(line["tco2e"] for line in lines if line["category"] in exported))


def test_lineage_lines_carry_their_source_and_factor_provenance_and_add_up_to_the_net(client: TestClient) -> None:
    response = client.get(f"/v1/enterprises/{CHP_PLANT}/lineage/2023-01")
    assert response.status_code == 200, response.text
    lineage = response.json()
    lines = lineage["lines"]
    sample_sha = hashlib.sha256((SAMPLE_DIR / "activity" / "2023-01.csv").read_bytes()).hexdigest()
    assert {line["source_file"] for line in lines} == {"2023-01.csv"}
    assert {line["source_sha256"] for line in lines} == {sample_sha}
    assert all(line["row"] >= 2 and line["period"] == "2023-01" for line in lines)
    coal = [line for line in lines if line["item"] == "bituminous_coal"]
    assert coal and all(isinstance(line["parameters"], dict) and "ncv" in line["parameters"] for line in coal)
    assert {line["unit_canonical"] for line in coal} == {"t"}

    month = client.get(f"/v1/enterprises/{CHP_PLANT}/emissions/monthly", params={"year": 2023}).json()["items"][0]
    assert month["period"] == "2023-01" and month["line_count"] == len(lines)
    assert relative_close(_net_of_lines(lines), month["totals"]["net_tco2e"])

    used = {f for line in lines for f in line["factor_ids"]}
    factors = {f["factor_id"]: f for f in lineage["factors"]}
    assert used and set(factors) == used
    for factor in factors.values():
        assert factor["publisher"] and factor["document"] and factor["value"] is not None and factor["unit"]
        assert factor["source_file"] and len(factor["source_sha256"]) == 64
        assert factor["edition"] == month["edition"]
    lines_on_defaults = [line for line in lines if line["fallback"] == "national" and line["tco2e"]]
    assert lines_on_defaults and all(line["factor_ids"] for line in lines_on_defaults)


def test_lineage_of_a_year_adds_up_to_the_yearly_net(client: TestClient) -> None:
    lineage = client.get(f"/v1/enterprises/{CEMENT_PLANT}/lineage/2024").json()
    year = client.get(f"/v1/enterprises/{CEMENT_PLANT}/emissions/yearly").json()["items"][1]
    assert year["period"] == "2024" and len(lineage["lines"]) == year["line_count"]
    assert relative_close(_net_of_lines(lineage["lines"]), year["totals"]["net_tco2e"])


def test_lineage_of_an_unknown_or_malformed_period_is_refused(client: TestClient) -> None:
    assert_problem(client.get(f"/v1/enterprises/{CHP_PLANT}/lineage/2019-01"), status=404, code="period_not_found")
    assert_problem(client.get(f"/v1/enterprises/{CHP_PLANT}/lineage/2023-13"), status=422, code="invalid_request")


# ---------------------------------------------------------------------------------------------
# Zone


def test_zone_indicators_for_all_sectors_are_the_sum_over_enterprises(client: TestClient) -> None:
    every_month = client.get("/v1/zone/indicators").json()["items"]
    assert len(every_month) == 24 and {i["sector_code"] for i in every_month} == {"all"}
    zone = client.get("/v1/zone/indicators", params={"period": "2023-07"}).json()["items"]
    assert len(zone) == 1 and zone[0]["category"] == "all"
    ids = [e["enterprise_id"] for e in client.get("/v1/enterprises").json()["items"]]
    months = [m for i in ids for m in client.get(f"/v1/enterprises/{i}/emissions/monthly",
                                                 params={"year": 2023}).json()["items"] if m["period"] == "2023-07"]
    assert zone[0]["enterprise_count"] == len(months)
    for column in ("net_tco2e", "scope1_tco2e", "energy_tce"):
        assert relative_close(zone[0][column], sum(m["totals"][column] for m in months)), column
    sector = client.get("/v1/zone/indicators", params={"period": "2023-07", "sector_code": "4412"}).json()["items"]
    assert sector and {i["sector_code"] for i in sector} == {"4412"}
    assert_problem(client.get("/v1/zone/indicators", params={"period": "2023-7"}), status=422,
                   code="invalid_request")


# ---------------------------------------------------------------------------------------------
# Calculations


def test_a_calculation_returns_the_published_numbers_and_those_of_carbon_calculate(client: TestClient) -> None:
    content = (SAMPLE_DIR / "activity" / "2023-03.csv").read_bytes()
    response = client.post("/v1/calculations", files={"file": ("2023-03.csv", content, "text/csv")})
    assert response.status_code == 200, response.text
    document = response.json()
    direct = calculate_sources([SourceFile("2023-03.csv", content)], library=load_library(),
                               options=CalculationOptions())
    assert document["options"] == direct["options"]
    api_nets = {r["enterprise_id"]: r["totals"]["net_tco2e"] for r in document["results"]}
    assert api_nets == {r["enterprise_id"]: r["totals"]["net_tco2e"] for r in direct["results"]}
    assert [r["totals"] for r in document["results"]] == [r["totals"] for r in direct["results"]]
    assert len(api_nets) > 20
    for enterprise_id, net in api_nets.items():
        published = client.get(f"/v1/enterprises/{enterprise_id}/emissions/monthly", params={"year": 2023}).json()
        march = next(m for m in published["items"] if m["period"] == "2023-03")
        assert relative_close(march["totals"]["net_tco2e"], net), enterprise_id


def test_a_calculation_takes_a_json_body_and_options(client: TestClient) -> None:
    _, rows = sample_rows("2024-02")
    lines = [{k: v for k, v in row.items() if v} for row in rows if row["enterprise_id"] == CHP_PLANT]
    monthly = client.post("/v1/calculations", json={"lines": lines})
    assert monthly.status_code == 200, monthly.text
    yearly = client.post("/v1/calculations", params={"by": "year", "grid_region": "henan"}, json={"lines": lines})
    assert yearly.status_code == 200, yearly.text
    assert yearly.json()["options"]["grid_region"] == "henan" and yearly.json()["options"]["by"] == "year"
    assert [r["period"] for r in yearly.json()["results"]] == ["2024"]
    assert {line["source_file"] for line in monthly.json()["results"][0]["lines"]} == {"request.json"}
    assert_problem(client.post("/v1/calculations", params={"by": "week"}, json={"lines": lines}),
                   status=422, code="invalid_option")
    assert_problem(client.post("/v1/calculations", params={"factor_edition": "1999.1"}, json={"lines": lines}),
                   status=422, code="factor_error")
    unknown_field = client.post("/v1/calculations", json={"lines": [{**lines[0], "colour": "red"}]})
    assert_problem(unknown_field, status=422, code="invalid_request")
    assert_problem(client.post("/v1/calculations", json={"lines": []}), status=422, code="invalid_request")


# ---------------------------------------------------------------------------------------------
# Submissions: each test has its own database (SQLite and PostgreSQL) with the sample registry

@pytest.fixture
def intake(tmp_path: Path, published_zone: Settings, database_url: str) -> Iterator[tuple[TestClient, Settings]]:
    settings = zone_settings(tmp_path, serving_path=published_zone.serving, max_upload_bytes=16 * 1024,
                             database_url=database_url)
    load_zone(settings, months=())  # the registry only: submissions name enterprises of the zone
    with TestClient(create_app(settings), headers=ENGINEER) as client:
        yield client, settings
    session_factory(settings).kw["bind"].dispose()


def stored(settings: Settings) -> dict[str, int]:
    """Rows of what a submission writes: what a refused file must not change."""
    engine = create_engine(settings.database)
    try:
        with engine.connect() as conn:
            return {table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                    for table in (Submission.__table__, SubmissionPeriod.__table__, ReviewEvent.__table__,
                                  PeriodReview.__table__, AuditEntry.__table__)}
    finally:
        engine.dispose()


def small_csv(month: str = "2023-05", *, count: int = 6) -> bytes:
    header, rows = sample_rows(month)
    return to_csv(header, rows[:count])


def test_a_valid_csv_is_stored_whole_with_its_receipt_and_its_period_submitted(
        intake: tuple[TestClient, Settings]) -> None:
    client, settings = intake
    content = small_csv()
    before = stored(settings)
    response = client.post("/v1/submissions", files={"file": ("may.csv", content, "text/csv")})
    assert response.status_code == 201, response.text
    receipt = response.json()
    sha = hashlib.sha256(content).hexdigest()
    assert receipt["content_sha256"] == sha and receipt["status"] == "accepted"
    assert receipt["filename"] == "may.csv" and receipt["line_count"] == 6
    assert receipt["periods"] == ["2023-05"] and receipt["enterprise_ids"] == [CHP_PLANT]
    assert receipt["submitter_id"] == "engineer-chen" and receipt["template_version"] == "1"
    assert receipt["received_at"].endswith("Z")
    assert response.headers["location"] == f"/v1/submissions/{receipt['submission_id']}"
    after = stored(settings)
    assert {k: after[k] - before[k] for k in after} == {
        "submissions": 1, "submission_periods": 1, "review_events": 1, "period_reviews": 1,
        "audit_log": 2}  # review.submit and submission.accept
    with session_factory(settings)() as session:
        row = submissions_repository.get(session, submission_id=receipt["submission_id"])
        assert row is not None and row.content == content and row.submitter_role == "engineer"
    assert client.get(f"/v1/submissions/{receipt['submission_id']}").json() == receipt
    assert_problem(client.get("/v1/submissions/nope"), status=404, code="submission_not_found")


def test_resending_returns_the_first_receipt_and_a_reused_key_with_other_bytes_conflicts(
        intake: tuple[TestClient, Settings]) -> None:
    client, settings = intake
    content = small_csv()
    first = client.post("/v1/submissions", files={"file": ("a.csv", content, "text/csv")},
                        headers={"Idempotency-Key": "key-1"})
    assert first.status_code == 201, first.text
    after_first = stored(settings)
    for headers in ({}, {"Idempotency-Key": "key-1"}, {"Idempotency-Key": "key-2"}):
        again = client.post("/v1/submissions", files={"file": ("b.csv", content, "text/csv")}, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/submissions", files={"file": ("c.csv", small_csv("2023-06"), "text/csv")},
                        headers={"Idempotency-Key": "key-1"})
    body = assert_problem(other, status=409, code="idempotency_key_reused")
    assert body["first_submission_id"] == first.json()["submission_id"]
    assert stored(settings) == after_first


def test_an_invalid_file_is_refused_with_every_error_and_stores_nothing(intake: tuple[TestClient, Settings]) -> None:
    client, settings = intake
    header, rows = sample_rows("2023-05")
    rows = rows[:8]
    ton_row = next(i for i, r in enumerate(rows) if r["unit"] == "t")
    bad_row = next(i for i in range(len(rows)) if i != ton_row)
    rows[ton_row] = {**rows[ton_row], "unit": "ton"}
    bad_id = rows[bad_row]["enterprise_id"][:-1] + ("0" if rows[bad_row]["enterprise_id"][-1] != "0" else "1")
    rows[bad_row] = {**rows[bad_row], "enterprise_id": bad_id}
    assert client.post("/v1/submissions", files={"file": ("ok.csv", small_csv("2023-09"), "text/csv")}
                       ).status_code == 201
    before = stored(settings)

    response = client.post("/v1/submissions", files={"file": ("bad.csv", to_csv(header, rows), "text/csv")})
    body = assert_problem(response, status=422, code="invalid_file")
    assert body["source"] == "bad.csv" and body["error_count"] == len(body["errors"]) == 2
    places = {(e["row"], e["column"]): e for e in body["errors"]}
    assert set(places) == {(ton_row + 2, "unit"), (bad_row + 2, "enterprise_id")}
    assert places[(ton_row + 2, "unit")]["value"] == "ton" and places[(ton_row + 2, "unit")]["expected"]
    assert places[(bad_row + 2, "enterprise_id")]["value"] == bad_id
    unregistered = "91410100MA0000000T"  # a valid code that the registry does not list
    unknown = [{**r, "enterprise_id": unregistered} for r in sample_rows("2023-05")[1][:3]]
    refused = client.post("/v1/submissions", files={"file": ("x.csv", to_csv(header, unknown), "text/csv")})
    body = assert_problem(refused, status=422, code="invalid_file")
    assert {(e["row"], e["code"]) for e in body["errors"]} == {(2, "unknown_enterprise"), (3, "unknown_enterprise"),
                                                                (4, "unknown_enterprise")}
    assert stored(settings) == before


def test_json_bodies_and_xlsx_workbooks_are_accepted(intake: tuple[TestClient, Settings]) -> None:
    client, settings = intake
    header, rows = sample_rows("2024-03")
    subset = rows[:5]
    as_json = client.post("/v1/submissions", json={"lines": [{k: v for k, v in r.items() if v} for r in subset]})
    assert as_json.status_code == 201, as_json.text
    assert as_json.json()["filename"] == "request.json" and as_json.json()["line_count"] == 5

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(header)
    for row in rows[5:9]:
        sheet.append([float(row[c]) if c == "quantity" else row[c] for c in header])
    buffer = io.BytesIO()
    workbook.save(buffer)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    as_xlsx = client.post("/v1/submissions", files={"file": ("march.xlsx", buffer.getvalue(), xlsx)})
    assert as_xlsx.status_code == 201, as_xlsx.text
    assert as_xlsx.json()["line_count"] == 4
    assert stored(settings)["submissions"] == 2
    with session_factory(settings)() as session:
        rows_stored = [submissions_repository.get(session, submission_id=r.json()["submission_id"])
                       for r in (as_json, as_xlsx)]
        media = {r.media_type for r in rows_stored if r is not None}
    assert media == {"application/json", xlsx}
    replay = client.post("/v1/submissions", json={"lines": [{k: v for k, v in r.items() if v} for r in subset]})
    assert replay.status_code == 200 and replay.json() == as_json.json()


def test_an_oversize_unsupported_or_anonymous_body_is_refused_before_anything_is_stored(
        intake: tuple[TestClient, Settings]) -> None:
    client, settings = intake
    before = stored(settings)
    big = (SAMPLE_DIR / "activity" / "2023-05.csv").read_bytes()
    assert len(big) > settings.max_upload_bytes
    for path in ("/v1/submissions", "/v1/calculations"):
        body = assert_problem(client.post(path, files={"file": ("big.csv", big, "text/csv")}),
                              status=413, code="payload_too_large")
        assert body["limit_bytes"] == settings.max_upload_bytes
    lines = [{"enterprise_id": CHP_PLANT, "note": "x" * 1000}] * 20
    chunks = (json.dumps({"lines": lines}).encode()[i:i + 4096] for i in range(0, 25_000, 4096))
    streamed = client.post("/v1/submissions", content=chunks, headers={"content-type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, status=413, code="payload_too_large")
    assert_problem(client.post("/v1/submissions", content=small_csv(), headers={"content-type": "text/csv"}),
                   status=415, code="unsupported_media_type")
    wrong_field = client.post("/v1/submissions", files={"other": ("x.csv", small_csv(), "text/csv")})
    assert_problem(wrong_field, status=422, code="invalid_request")
    anonymous = TestClient(client.app).post("/v1/submissions", files={"file": ("a.csv", small_csv(), "text/csv")})
    assert_problem(anonymous, status=401, code="authentication_required")
    forged = client.post("/v1/submissions", files={"file": ("a.csv", small_csv(), "text/csv")},
                         headers={"Authorization": "Bearer ck_0123456789abcdef_" + "x" * 43})
    assert_problem(forged, status=401, code="authentication_required")
    for refused_role in (VERIFIER, TRADER):
        refused = client.post("/v1/submissions", files={"file": ("a.csv", small_csv(), "text/csv")},
                              headers=refused_role)
        assert_problem(refused, status=403, code="role_not_allowed")
    assert stored(settings) == before


def test_a_failure_after_the_rows_are_written_rolls_the_whole_submission_back(
        intake: tuple[TestClient, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """The submission, its periods, review events and audit entries commit together or not at all."""
    from api.store import audit

    client, settings = intake
    before = stored(settings)
    real_append = audit.append

    def failing_append(session: Any, **fields: Any) -> Any:
        if fields["action"] == "submission.accept":
            assert stored_in(session) == before["submissions"] + 1  # the row is written, not committed
            raise OSError("disk full")
        return real_append(session, **fields)

    def stored_in(session: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(Submission)))

    monkeypatch.setattr(audit, "append", failing_append)
    with TestClient(create_app(settings), headers=ENGINEER, raise_server_exceptions=False) as failing:
        response = failing.post("/v1/submissions", files={"file": ("a.csv", small_csv(), "text/csv")})
        assert_problem(response, status=500, code="internal_error")
        assert "disk full" not in response.text
    assert stored(settings) == before
    monkeypatch.setattr(audit, "append", real_append)
    assert client.post("/v1/submissions", files={"file": ("a.csv", small_csv(), "text/csv")}).status_code == 201


def test_concurrent_identical_submissions_store_one_file(intake: tuple[TestClient, Settings]) -> None:
    client, settings = intake
    content = small_csv("2024-07")
    before = stored(settings)

    def send(_: int) -> tuple[int, str]:
        response = client.post("/v1/submissions", files={"file": ("same.csv", content, "text/csv")})
        return response.status_code, response.json()["submission_id"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(send, range(6)))
    assert sorted(status for status, _ in results) == [200] * 5 + [201]
    assert len({submission_id for _, submission_id in results}) == 1
    assert stored(settings)["submissions"] == before["submissions"] + 1
    assert stored(settings)["audit_log"] == before["audit_log"] + 2


def test_the_openapi_document_describes_both_upload_forms(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/submissions"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= body.keys()
    assert "/v1/enterprises/{enterprise_id}/lineage/{period}" in spec["paths"]
    assert json.dumps(spec)  # serializable as a whole
    for page in ("/docs", "/redoc"):  # their scripts come from this server, not a CDN
        answer = client.get(page)
        sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", answer.text)
        assert answer.status_code == 200 and sources and all(s.startswith("/") for s in sources), sources
        assert all(client.get(s).status_code == 200 for s in sources)

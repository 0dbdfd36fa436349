"""``/v1/quality`` and ``carbon quality``/``carbon factors check`` on SQLite and PostgreSQL.

Completeness: the sample zone is loaded without some months; the list of missing months must be
exactly those months for exactly the key emitters (three declared in the registry, plus the gas
heating plant, which its published yearly balance flags).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.services.quality import data_docs_dir
from api.services.review import record_findings
from api.store.db import session_factory
from pipelines.cli import main
from pipelines.settings import Settings
from tests.auth_support import ENGINEER, OFFICER, VERIFIER, enterprise
from tests.conftest import SAMPLE_DIR, database_backends, postgres_database, zone_settings
from tests.support import library_with_edition, load_zone

CHP_PLANT = "914101022286058318"
CEMENT_PLANT = "91410100437387498P"
GLASS_PLANT = "91410102438943329L"
GAS_HEATING = "91410102170679896E"  # not declared; a key emitter by its balances
KEY_EMITTERS = {CHP_PLANT, CEMENT_PLANT, GLASS_PLANT, GAS_HEATING}
ALL_MONTHS = [p.stem for p in sorted((SAMPLE_DIR / "activity").glob("*.csv"))]
WITHHELD = ["2023-05", "2024-02", "2024-11"]

@pytest.fixture(scope="module", params=database_backends())
def withheld_zone(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  published_zone: Settings) -> Iterator[tuple[TestClient, Settings]]:
    """The sample zone without WITHHELD, in its own database; the published snapshot of the whole zone.

    Module-scoped (loading 21 months takes seconds) and only read by the tests that use it.
    """
    root = tmp_path_factory.mktemp("withheld")
    database = nullcontext(f"sqlite:///{root / 'carbon.sqlite'}") if request.param == "sqlite" \
        else postgres_database()
    with database as url:
        settings = zone_settings(root, serving_path=published_zone.serving, database_url=url)
        load_zone(settings, months=[m for m in ALL_MONTHS if m not in WITHHELD])
        with TestClient(create_app(settings)) as client:
            yield client, settings


def test_completeness_lists_exactly_the_withheld_months_of_the_key_emitters(withheld_zone) -> None:
    client, _ = withheld_zone
    response = client.get("/v1/quality/completeness", params={"as_of": "2025-01-16"}, headers=VERIFIER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k["enterprise_id"] for k in body["key_emitters"]} == KEY_EMITTERS
    missing = {(m["enterprise_id"], month) for m in body["missing"] for month in m["missing"]}
    assert missing == {(e, m) for e in KEY_EMITTERS for m in WITHHELD}
    assert body["missing_count"] == len(KEY_EMITTERS) * len(WITHHELD)
    assert body["due_months"] == {"first": "2023-01", "last": "2024-12", "count": 24}


def test_completeness_counts_only_months_past_their_deadline(withheld_zone) -> None:
    client, _ = withheld_zone
    before_deadline = client.get("/v1/quality/completeness", params={"as_of": "2024-03-15"}, headers=OFFICER).json()
    assert {m for e in before_deadline["missing"] for m in e["missing"]} == {"2023-05"}  # 2024-02 due on 03-15
    later = client.get("/v1/quality/completeness", params={"as_of": "2025-02-16"}, headers=OFFICER).json()
    assert {m for e in later["missing"] for m in e["missing"]} == {*WITHHELD, "2025-01"}


def test_an_enterprise_sees_only_its_own_completeness(withheld_zone) -> None:
    client, _ = withheld_zone
    body = client.get("/v1/quality/completeness", params={"as_of": "2025-01-16"},
                      headers=enterprise(CEMENT_PLANT)).json()
    assert [k["enterprise_id"] for k in body["key_emitters"]] == [CEMENT_PLANT]
    assert body["missing"] == [{"enterprise_id": CEMENT_PLANT, "name": body["missing"][0]["name"],
                                "missing": WITHHELD, "substituted": []}]
    assert client.get("/v1/quality/completeness").status_code == 401
    assert client.get("/v1/quality/completeness", params={"as_of": "2025-13-01"}, headers=OFFICER).status_code == 422


def test_carbon_quality_completeness_prints_the_same_list(withheld_zone, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.settings import get_settings

    _, settings = withheld_zone
    for name in [n for n in os.environ if n.startswith("CARBON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CARBON_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CARBON_DATABASE_URL", settings.database)
    monkeypatch.setenv("CARBON_SERVING_PATH", str(settings.serving))
    get_settings.cache_clear()
    try:
        status = main(["quality", "completeness", "--as-of", "2025-01-16"])
    finally:
        get_settings.cache_clear()
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert {(m["enterprise_id"], p) for m in report["missing"] for p in m["missing"]} == \
        {(e, m) for e in KEY_EMITTERS for m in WITHHELD}


# --- findings ---------------------------------------------------------------------------------------


@pytest.fixture
def findings_zone(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Settings]]:
    """Two sample months in a fresh database, with findings recorded as the pipeline's last asset records them."""
    settings = zone_settings(tmp_path, database_url=database_url)
    load_zone(settings, months=["2024-01", "2024-02"])
    hold = {"enterprise_id": CHP_PLANT, "period": "2024-02", "rule": "ncv_in_fuel_range", "severity": "hold",
            "detail": {"value": 20670.0, "source_file": "2024-02.csv", "row_number": 2}}
    warn = {"enterprise_id": CEMENT_PLANT, "period": "2024-02", "rule": "emissions_month_over_month",
            "severity": "warn", "detail": {"value": 4.2}}
    checked = [(e, p) for e in (CHP_PLANT, CEMENT_PLANT, GLASS_PLANT) for p in ("2024-01", "2024-02")]
    with session_factory(settings)() as session:
        record_findings(session, findings=[warn], periods=checked, run_id="run-1")
        record_findings(session, findings=[hold, warn], periods=checked, run_id="run-2")
    with TestClient(create_app(settings)) as client:
        yield client, settings


def test_findings_of_the_latest_run_come_with_the_periods_submission_and_hold(findings_zone) -> None:
    client, _ = findings_zone
    body = client.get("/v1/quality/findings", headers=VERIFIER).json()
    assert body["run_id"] == "run-2"
    items = {(i["enterprise_id"], i["rule"]): i for i in body["items"]}
    assert set(items) == {(CHP_PLANT, "ncv_in_fuel_range"), (CEMENT_PLANT, "emissions_month_over_month")}
    held = items[(CHP_PLANT, "ncv_in_fuel_range")]
    assert held["severity"] == "hold" and held["held"] and held["detail"]["row_number"] == 2
    assert held["submission_id"] and held["status"] == "submitted" and held["period"] == "2024-02"
    assert not items[(CEMENT_PLANT, "emissions_month_over_month")]["held"]


def test_findings_filter_by_enterprise_period_rule_and_severity(findings_zone) -> None:
    client, _ = findings_zone
    def count(**params: str) -> int:
        response = client.get("/v1/quality/findings", params=params, headers=OFFICER)
        assert response.status_code == 200, response.text
        return len(response.json()["items"])
    assert count() == 2 and count(severity="hold") == 1 and count(severity="warn") == 1
    assert count(enterprise_id=CEMENT_PLANT) == 1 and count(rule="ncv_in_fuel_range") == 1
    assert count(period="2024-01") == 0 and count(period="2024-02") == 2
    assert client.get("/v1/quality/findings", params={"severity": "fatal"}, headers=OFFICER).status_code == 422


def test_an_enterprise_sees_only_its_own_findings(findings_zone) -> None:
    client, _ = findings_zone
    own = client.get("/v1/quality/findings", headers=enterprise(CHP_PLANT)).json()["items"]
    assert {i["enterprise_id"] for i in own} == {CHP_PLANT}
    other = client.get("/v1/quality/findings", params={"enterprise_id": CEMENT_PLANT}, headers=enterprise(CHP_PLANT))
    assert other.status_code == 403 and other.json()["code"] == "not_own_enterprise"
    assert client.get("/v1/quality/findings").status_code == 401


def test_no_findings_before_the_first_run(tmp_path: Path, database_url: str) -> None:
    with TestClient(create_app(zone_settings(tmp_path, database_url=database_url))) as client:
        assert client.get("/v1/quality/findings", headers=ENGINEER).json() == {
            "run_id": None, "recorded_at": None, "items": [], "total": 0, "limit": 100, "offset": 0}


# --- factor check --------------------------------------------------------------------------------------


def test_the_factor_check_of_the_packaged_edition_passes_with_its_known_differences(client: TestClient) -> None:
    body = client.get("/v1/quality/factor-check", headers=ENGINEER).json()
    assert body["passed"] and body["previous_edition"] is None
    assert {f["subject"] for f in body["findings"]} == {"refinery_dry_gas", "petroleum_coke"}
    assert client.get("/v1/quality/factor-check", params={"edition": "1999.9"}, headers=ENGINEER).status_code == 422


def test_carbon_factors_check_names_a_factor_1000_times_too_large(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "factors"
    library_with_edition(root, old=b",0.0202,tC/GJ,", new=b",20.2,tC/GJ,")  # diesel CC in tC/TJ numbers
    status = main(["factors", "check", "--library", str(root)])
    report = json.loads(capsys.readouterr().out)
    assert status == 1 and not report["passed"] and report["previous_edition"] == "2026.1"
    blocking = [f for f in report["findings"] if f["blocking"]]
    assert {f["check"] for f in blocking} == {"unit_error_suspected", "cn_ipcc_disagreement"}
    [unit] = [f for f in blocking if f["check"] == "unit_error_suspected"]
    assert unit["factor_ids"] == ["cn.c1.diesel.cc"] and (unit["old_value"], unit["new_value"]) == (0.0202, 20.2)
    assert main(["factors", "check"]) == 0


# --- data docs -------------------------------------------------------------------------------------------


def test_the_data_docs_are_served_from_their_folder_only(client: TestClient, published_zone: Settings) -> None:
    index = client.get("/v1/quality/data-docs/", headers=ENGINEER)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert b"plausibility_enterprise_months" in index.content
    page = client.get("/v1/quality/data-docs/expectations/plausibility_fuel_lines.html", headers=ENGINEER)
    assert page.status_code == 200 and b"oxidation_rate" in page.content
    css = client.get("/v1/quality/data-docs/static/styles/data_docs_default_styles.css", headers=VERIFIER)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for sneaky in ("..%2F..%2Fcarbon.sqlite", "%2E%2E/%2E%2E/serving.duckdb", "static/../../../carbon.sqlite",
                   "nothing-here.html", "/etc/passwd"):
        response = client.get(f"/v1/quality/data-docs/{sneaky}", headers=OFFICER)
        assert response.status_code == 404, sneaky
        assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/quality/data-docs/").status_code == 401  # no credentials
    refused = client.get("/v1/quality/data-docs/", headers=enterprise(CHP_PLANT))
    assert refused.status_code == 403 and refused.json()["code"] == "role_not_allowed"


def test_a_symlink_out_of_the_data_docs_is_not_followed(tmp_path: Path) -> None:
    settings = zone_settings(tmp_path)
    folder = data_docs_dir(settings)
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<html>docs</html>", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    (folder / "leak.txt").symlink_to(tmp_path / "secret.txt")
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/quality/data-docs/", headers=ENGINEER).text == "<html>docs</html>"
        assert client.get("/v1/quality/data-docs/leak.txt", headers=OFFICER).status_code == 404


def test_data_docs_are_a_503_problem_before_the_first_run(tmp_path: Path) -> None:
    with TestClient(create_app(zone_settings(tmp_path))) as client:
        response = client.get("/v1/quality/data-docs/", headers=ENGINEER)
    assert response.status_code == 503 and response.json()["code"] == "data_docs_unavailable"
    assert response.headers["content-type"] == "application/problem+json"

"""Substitution of a key emitter's missing month, on a small zone in a real database (SQLite and PostgreSQL).

The zone is the sample registry with some 2024 months submitted and calculated
(``tests.review_support.review_zone``); June is withheld by everyone. An officer substitutes the
coal-fired CHP plant's June through the API; a real Dagster run then publishes it, flagged, in the
monthly and yearly balances, the zone indicators and the API, and a later submission replaces it.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from sqlalchemy import select

from accounting.activity import parse_activity
from accounting.calculation import CalculationOptions
from accounting.factors import load_library
from accounting.restatement import RestatementError
from accounting.review import Actor, ReviewError
from api.services.review import StaleStateError
from api.services.substitution import substitute
from api.store.schema import AuditEntry, Calculation, Substitution
from pipelines import warehouse as wh
from pipelines.cli import main
from pipelines.runner import materialize_all
from pipelines.settings import Settings, get_settings
from tests.auth_support import OFFICER, OFFICER_2, VERIFIER, enterprise
from tests.conftest import dagster_home
from tests.review_support import CHP_PLANT, Zone, enterprise_month, review_zone
from tests.support import ENTERPRISE, csv_file

MONTHS = ("2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-07")
LPG_USER = "91410100MABJBD86XX"  # a small manufacturer, not a key emitter
OFFICER_ACTOR = Actor(actor_id="officer-li", role="officer")


def post_substitution(zone: Zone, headers: dict[str, str], **body: Any) -> Any:
    return zone.client.post("/v1/restatements/substitutions", headers=headers,
                            json={"enterprise_id": CHP_PLANT, "period": "2024-06", "reason": "no June report", **body})


def published(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(settings.serving), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def run_pipeline(zone: Zone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(tmp_path / "dagster")))
    with dg.DagsterInstance.ephemeral() as instance:
        summary = materialize_all(zone.settings, instance=instance)
    assert summary.success, summary


def problem_code(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    code: str = response.json()["code"]
    return code


def test_a_missing_month_is_substituted_by_the_highest_recent_month_and_published_flagged_everywhere(
        tmp_path: Path, database_url: str, published_zone: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with review_zone(tmp_path, database_url=database_url, published=published_zone, months=MONTHS) as zone:
        calculations = {m: zone.state(CHP_PLANT, m)["calculation"] for m in MONTHS}
        basis = max(MONTHS[:5], key=lambda m: calculations[m]["net_tco2e"])
        assert problem_code(post_substitution(zone, VERIFIER), 403) == "role_not_allowed"

        created = post_substitution(zone, OFFICER)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["rule"] == "max_of_last_12_months" and body["basis_period"] == basis
        assert body["totals"] == calculations[basis]["totals"] and body["net_tco2e"] == calculations[basis]["net_tco2e"]
        assert body["reason"] == "no June report" and body["actor_id"] == "officer-li"
        assert body["review"]["status"] == "calculated" and body["review"]["is_substituted"]
        assert body["review"]["submission_id"] is None
        june = zone.state(CHP_PLANT, "2024-06")
        assert june["status"] == "calculated" and june["is_substituted"]
        assert june["calculation"]["is_substituted"] and june["calculation"]["totals"] == calculations[basis]["totals"]
        listed = zone.client.get("/v1/restatements/substitutions", params={"enterprise_id": CHP_PLANT},
                                 headers=VERIFIER).json()["items"]
        assert [(s["period"], s["basis_period"]) for s in listed] == [("2024-06", basis)]
        mine = zone.client.get("/v1/restatements/substitutions", params={"enterprise_id": CHP_PLANT},
                               headers=enterprise(CHP_PLANT))
        assert mine.status_code == 200 and len(mine.json()["items"]) == 1
        assert problem_code(zone.client.get("/v1/restatements/substitutions", params={"enterprise_id": CHP_PLANT},
                                            headers=enterprise(LPG_USER)), 403) == "not_own_enterprise"

        # May's data is rejected and substituted too: its rejected lines must no longer count anywhere.
        assert zone.act(CHP_PLANT, "2024-05", "reject", reason="meter readings implausible").status_code == 200
        with zone.sessions() as session:
            may = substitute(session, settings=zone.settings, actor=OFFICER_ACTOR, enterprise_id=CHP_PLANT,
                             period="2024-05", reason="rejected data")
        may_basis = max(MONTHS[:4], key=lambda m: calculations[m]["net_tco2e"])
        assert may["basis_period"] == may_basis  # not June (substituted) nor May (rejected)
        with zone.sessions() as session:
            actions = session.scalars(select(AuditEntry.action).where(
                AuditEntry.target.in_([f"period:{CHP_PLANT}:2024-06", f"period:{CHP_PLANT}:2024-05"])
                | AuditEntry.target.startswith("substitution:"))).all()
        assert actions.count("substitution.create") == 2 and actions.count("review.substitute") == 2

        run_pipeline(zone, tmp_path, monkeypatch)
        months = {r[0]: r[1:] for r in published(
            zone.settings, "select period, net_tco2e, is_substituted, line_count from "
            "out_emissions__monthly_enterprise_balances where enterprise_id = ? order by period", CHP_PLANT)}
        assert sorted(months) == [*MONTHS[:5], "2024-06", "2024-07"]
        assert months["2024-06"] == (calculations[basis]["net_tco2e"], True, 0)
        assert months["2024-05"] == (calculations[may_basis]["net_tco2e"], True, 0)
        assert not any(months[m][1] for m in (*MONTHS[:4], "2024-07"))
        ((year_net, year_flag, substituted_months),) = published(
            zone.settings, "select net_tco2e, is_substituted, months_substituted from "
            "out_emissions__yearly_enterprise_balances where enterprise_id = ? and period = '2024'", CHP_PLANT)
        assert year_net == pytest.approx(sum(v[0] for v in months.values()), rel=1e-12)
        assert year_flag and substituted_months == 2
        ((count, substituted, zone_net),) = published(
            zone.settings, "select enterprise_count, substituted_enterprise_count, net_tco2e from "
            "out_zone__monthly_indicators where period = '2024-06' and sector_code = 'all' and category = 'all'")
        assert (count, substituted, zone_net) == (1, 1, pytest.approx(calculations[basis]["net_tco2e"]))

        api_months = zone.client.get(f"/v1/enterprises/{CHP_PLANT}/emissions/monthly", params={"year": 2024},
                                     headers=enterprise(CHP_PLANT)).json()
        assert {i["period"]: i["is_substituted"] for i in api_months["items"]}["2024-06"] is True
        (api_year,) = zone.client.get(f"/v1/enterprises/{CHP_PLANT}/emissions/yearly",
                                      headers=enterprise(CHP_PLANT)).json()["items"]
        assert api_year["is_substituted"] and api_year["months_substituted"] == 2
        indicators = zone.client.get("/v1/zone/indicators", params={"period": "2024-06"},
                                     headers=VERIFIER).json()["items"]
        assert any(i["substituted_enterprise_count"] == 1 for i in indicators)

        # The run kept the substitutions as they were: no calculation of the rejected May lines took their place.
        for month in ("2024-05", "2024-06"):
            state = zone.state(CHP_PLANT, month)
            assert state["status"] == "calculated" and state["is_substituted"]
            assert state["calculation"]["is_substituted"]
        with zone.sessions() as session:
            june_calculations = session.scalars(select(Calculation).where(
                Calculation.enterprise_id == CHP_PLANT, Calculation.period == "2024-06")).all()
        assert len(june_calculations) == 1

        # A late report of June replaces its substitution.
        late = zone.client.post("/v1/submissions", headers=OFFICER,
                                files={"file": ("june.csv", enterprise_month(CHP_PLANT, "2024-06"), "text/csv")})
        assert late.status_code == 201, late.text
        run_pipeline(zone, tmp_path, monkeypatch)
        june = zone.state(CHP_PLANT, "2024-06")
        assert june["status"] == "calculated" and not june["is_substituted"]
        assert june["calculation"]["submission_ids"] == [late.json()["submission_id"]]
        assert published(zone.settings, "select is_substituted, line_count > 0 from "
                         "out_emissions__monthly_enterprise_balances where enterprise_id = ? and period = '2024-06'",
                         CHP_PLANT) == [(False, True)]
        assert published(zone.settings, "select months_substituted from out_emissions__yearly_enterprise_balances "
                         "where enterprise_id = ? and period = '2024'", CHP_PLANT) == [(1,)]


def test_substitution_is_refused_with_a_specific_code_and_changes_nothing(
        tmp_path: Path, database_url: str, published_zone: Settings) -> None:
    with review_zone(tmp_path, database_url=database_url, published=published_zone) as zone:
        before = zone.footprint()
        assert problem_code(post_substitution(zone, VERIFIER, period="2024-03"), 403) == "role_not_allowed"
        assert problem_code(post_substitution(zone, enterprise(CHP_PLANT), period="2024-03"), 403) == "role_not_allowed"
        in_force = post_substitution(zone, OFFICER, period="2024-02")
        assert problem_code(in_force, 409) == "submission_in_force"
        assert in_force.json()["current"]["status"] == "calculated"
        no_basis = post_substitution(zone, OFFICER, period="2023-12")
        assert problem_code(no_basis, 409) == "no_basis_month"
        assert no_basis.json()["detail_items"][0] == "2022-12"
        assert problem_code(post_substitution(zone, OFFICER, enterprise_id=LPG_USER, period="2024-03"),
                            409) == "not_key_emitter"
        assert problem_code(post_substitution(zone, OFFICER, enterprise_id="91410100MA44A2B3CG", period="2024-03"),
                            404) == "unknown_enterprise"
        assert problem_code(post_substitution(zone, OFFICER, period="2024-03", rule="average"),
                            422) == "unknown_substitution_rule"
        assert problem_code(post_substitution(zone, OFFICER, period="2999-01"), 422) == "out_of_period"
        assert problem_code(post_substitution(zone, OFFICER, period="2024"), 422) == "invalid_request"
        assert problem_code(post_substitution(zone, OFFICER, reason=""), 422) == "invalid_request"
        with zone.sessions() as session:
            with pytest.raises(ReviewError) as blank:
                substitute(session, settings=zone.settings, actor=OFFICER_ACTOR, enterprise_id=CHP_PLANT,
                           period="2024-03", reason="  ")
            assert blank.value.code == "reason_required"
            with pytest.raises(RestatementError) as early:
                substitute(session, settings=zone.settings, actor=OFFICER_ACTOR, enterprise_id=CHP_PLANT,
                           period="2024-03", reason="missing", today=date(2024, 4, 10))
            assert early.value.code == "not_yet_due"
        assert zone.footprint() == before
        with zone.sessions() as session:
            assert session.scalars(select(Substitution)).all() == []


def test_of_two_officers_substituting_the_same_month_one_wins_and_the_other_is_told_the_current_state(
        tmp_path: Path, database_url: str, published_zone: Settings) -> None:
    with review_zone(tmp_path, database_url=database_url, published=published_zone) as zone:
        first = post_substitution(zone, OFFICER, period="2024-03", expected_version=0)
        assert first.status_code == 201, first.text
        second = post_substitution(zone, OFFICER_2, period="2024-03",
                                   expected_version=0)
        assert problem_code(second, 409) == "stale_state"
        assert second.json()["current"]["is_substituted"] and second.json()["current"]["version"] == 1
        with zone.sessions() as session, pytest.raises(StaleStateError):
            substitute(session, settings=zone.settings, actor=OFFICER_ACTOR, enterprise_id=CHP_PLANT,
                       period="2024-03", reason="again", expected_version=0)


def test_the_cli_substitutes_a_month_and_prints_the_same_refusals_as_the_api(
        tmp_path: Path, database_url: str, published_zone: Settings, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with review_zone(tmp_path, database_url=database_url, published=published_zone) as zone:
        monkeypatch.setenv("CARBON_DATA_DIR", str(zone.settings.data_dir))
        monkeypatch.setenv("CARBON_DATABASE_URL", zone.settings.database)
        get_settings.cache_clear()
        try:
            command = ["substitute", CHP_PLANT, "2024-03", "--reason", "no March report", "--actor", "officer-li"]
            assert main(command) == 0
            printed = json.loads(capsys.readouterr().out)
            assert printed["basis_period"] in ("2024-01", "2024-02") and printed["review"]["is_substituted"]
            assert main(command) == 2
            assert json.loads(capsys.readouterr().out)["code"] == "submission_in_force"
            assert main([*command[:3], "--reason", "x", "--actor", "v", "--role", "verifier"]) == 2
            assert json.loads(capsys.readouterr().out)["code"] == "role_not_allowed"
        finally:
            get_settings.cache_clear()
        assert zone.state(CHP_PLANT, "2024-03")["is_substituted"]


def test_the_balance_sql_adds_substituted_months_and_years_without_replacing_months_that_have_lines() -> None:
    library = load_library()
    lines = parse_activity(csv_file([
        {"period": "2024-01", "activity": "fuel_combustion", "item": "natural_gas", "quantity": "10",
         "unit": "10^4 Nm3"},
        {"period": "2024-01", "activity": "economic_output", "item": "output_value", "quantity": "100",
         "unit": "10^4 CNY"}]), rules=wh.fuel_rules(library))
    other = "91410100MABJBD86XX"

    def substitution(enterprise_id: str, period: str, net: float) -> dict[str, Any]:
        totals = {"net_tco2e": net, "scope1_tco2e": net, "energy_tce": 2.0, "output_value_10k_cny": 50.0}
        return {"enterprise_id": enterprise_id, "period": period, "totals": totals, "edition": "2026.1",
                "ruleset": "cn", "grid_region": "national", "gwp_set": "AR5"}

    frame = wh.substituted_frame([substitution(ENTERPRISE, "2024-01", 999.0), substitution(ENTERPRISE, "2024-02", 30.0),
                                  substitution(other, "2024-03", 40.0)], run_id="run-1")
    with duckdb.connect() as conn:
        options = CalculationOptions()
        edition = wh.register_inputs(conn, lines=lines, library=library, options=options)
        conn.register("activity_lines", lines)
        wh.run_calculation(conn, lines_table="activity_lines", options=options, edition=edition, run_id="run-1")
        january = conn.execute("select net_tco2e from enterprise_balances").fetchall()[0][0]
        assert wh.add_substituted_months(conn, frame=frame) == 2  # January has lines: never replaced
        months = conn.execute("select enterprise_id, period, net_tco2e, is_substituted, line_count "
                              "from enterprise_balances order by enterprise_id, period").fetchall()
        assert months == [(ENTERPRISE, "2024-01", january, False, 2), (ENTERPRISE, "2024-02", 30.0, True, 0),
                          (other, "2024-03", 40.0, True, 0)]

        yearly = CalculationOptions(by="year")
        wh.run_calculation(conn, lines_table="activity_lines", options=yearly, edition=edition, run_id="run-1")
        wh.add_substituted_years(conn, frame=frame[frame["period"] != "2024-01"])
        years = conn.execute("select enterprise_id, period, net_tco2e, output_value_10k_cny, "
                             "tco2e_per_10k_cny_output_value, is_substituted, months_substituted "
                             "from enterprise_balances order by enterprise_id").fetchall()
    assert years[0][:3] == (ENTERPRISE, "2024", pytest.approx(january + 30.0))
    assert years[0][3:] == (150.0, pytest.approx((january + 30.0) / 150.0), True, 1)
    assert years[1] == (other, "2024", 40.0, 50.0, pytest.approx(0.8), True, 1)

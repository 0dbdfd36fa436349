"""The real Dagster definitions, materialized on small copies of the sample zone in a temporary folder."""

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from accounting.activity import SourceFile
from accounting.calculation import CalculationOptions
from accounting.factors import load_library
from api.services.submissions import accept_submission
from api.store.db import session_factory
from api.store.schema import Substitution
from pipelines.definitions import build_defs
from pipelines.runner import materialize_all
from pipelines.sensors import RANGE_END, RANGE_START
from pipelines.settings import Settings
from pipelines.warehouse import calculate_sources
from tests.conftest import zone_settings
from tests.support import LOADER, SAMPLE, load_zone

pytestmark = pytest.mark.integration
MONTHS = tuple(f"2024-{m:02d}" for m in range(1, 13))


def small_zone(root: Path, months: tuple[str, ...] = MONTHS) -> Settings:
    """A data folder whose operational store holds the sample registry and some of its months."""
    settings = zone_settings(root)
    load_zone(settings, months=months)
    return settings


def published(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.serving), read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = small_zone(tmp_path_factory.mktemp("zone"))
    summary = materialize_all(settings, instance=dg.DagsterInstance.ephemeral())
    assert summary.success, summary
    assert summary.months == list(MONTHS)
    return settings


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(build_defs(Settings()))


def test_the_published_balances_equal_carbon_calculate_on_the_same_files(zone: Settings) -> None:
    sources = [SourceFile(f"{m}.csv", (SAMPLE / "activity" / f"{m}.csv").read_bytes()) for m in MONTHS]
    document = calculate_sources(sources, library=load_library(), options=CalculationOptions())
    expected = {(r["enterprise_id"], r["period"]): r["totals"] for r in document["results"]}
    rows = published(zone, "select enterprise_id, period, scope1_tco2e, scope2_tco2e, exported_tco2e, net_tco2e, "
                           "energy_tce from out_emissions__monthly_enterprise_balances")
    assert len(rows) == len(expected) > 300
    for enterprise, period, scope1, scope2, exported, net, energy in rows:
        totals = expected[(enterprise, period)]
        assert (scope1, scope2, exported, net, energy) == pytest.approx(
            (totals["scope1_tco2e"], totals["scope2_tco2e"], totals["exported_tco2e"], totals["net_tco2e"],
             totals["energy_tce"]), rel=1e-12)


def test_every_emission_line_carries_its_lineage(zone: Settings) -> None:
    rows = published(zone, "select source_file, row_number, unit, unit_canonical, edition, gwp_set, run_id, "
                           "fallback, factor_ids, parameters from core_emissions__monthly_lines "
                           "where category = 'combustion'")
    assert rows
    for source_file, row, unit, unit_canonical, edition, gwp_set, run_id, fallback, factor_ids, parameters in rows:
        assert source_file in {f"{m}.csv" for m in MONTHS} and row >= 2
        assert unit and unit_canonical and edition == "2026.1" and gwp_set == "AR5" and run_id
        assert fallback in ("measured", "national")
        assert fallback == "measured" or factor_ids
        assert json.loads(parameters)["carbon_content"]["source"]


def test_zone_indicators_add_up_to_the_enterprise_balances(zone: Settings) -> None:
    zone_total = published(zone, "select period, net_tco2e from out_zone__monthly_indicators "
                                 "where sector_code = 'all' order by period")
    enterprise_total = published(zone, "select period, sum(net_tco2e) from out_emissions__monthly_enterprise_balances "
                                       "group by period order by period")
    assert [p for p, _ in zone_total] == list(MONTHS)
    for (_, left), (_, right) in zip(zone_total, enterprise_total, strict=True):
        assert left == pytest.approx(right, rel=1e-12)


def test_key_emitters_are_flagged_from_gross_emissions(zone: Settings) -> None:
    rows = published(zone, "select enterprise_id, is_key_emitter, scope1_tco2e + scope2_tco2e, energy_input_tce, "
                           "net_tco2e from out_emissions__yearly_enterprise_balances where period = '2024'")
    for _, flagged, gross, energy_input, _ in rows:
        assert flagged == (gross >= 26000 or energy_input >= 10000)
    flagged_ids = {r[0] for r in rows if r[1]}
    declared = {r[0] for r in published(zone, "select enterprise_id from core_registry__enterprises "
                                              "where key_emitter_declared")}
    assert declared <= flagged_ids
    assert any(net < 26000 for _, flagged, _, _, net in rows if flagged)  # an exporter flagged on gross emissions


def test_materializing_the_same_months_again_gives_the_same_tables(zone: Settings) -> None:
    before = published(zone, "select count(*), sum(tco2e) from core_emissions__monthly_lines")
    defs = build_defs(zone)
    result = defs.resolve_job_def("monthly_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), tags={RANGE_START: MONTHS[0], RANGE_END: MONTHS[-1]})
    assert result.success
    defs.resolve_job_def("publish_job").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    after = published(zone, "select count(*), sum(tco2e) from core_emissions__monthly_lines")
    assert after[0][0] == before[0][0]
    assert after[0][1] == pytest.approx(before[0][1], rel=1e-12)


def test_a_later_submission_supersedes_an_enterprise_month_and_nothing_is_counted_twice(tmp_path: Path) -> None:
    settings = small_zone(tmp_path, months=("2024-01",))
    header, first = (SAMPLE / "activity" / "2024-01.csv").read_text(encoding="utf-8").splitlines()[:2]
    with session_factory(settings)() as session:
        receipt = accept_submission(session, settings=settings, actor=LOADER, filename="correction.csv",
                                    content=f"{header}\n{first}\n".encode())
    assert materialize_all(settings, instance=dg.DagsterInstance.ephemeral()).success
    enterprise = receipt["enterprise_ids"][0]
    lines = published(settings, "select source_file from core_emissions__monthly_lines "
                                f"where enterprise_id = '{enterprise}' and period = '2024-01'")
    assert lines == [("correction.csv",)]
    others = published(settings, "select count(distinct source_file) from core_emissions__monthly_lines "
                                 f"where enterprise_id <> '{enterprise}'")
    assert others == [(1,)]


def test_published_balances_become_calculations_and_periods_move_to_calculated(zone: Settings) -> None:
    from sqlalchemy import func, select

    from api.store.schema import Calculation, PeriodReview

    with session_factory(zone)() as session:
        statuses = dict(session.execute(select(PeriodReview.status, func.count()).group_by(PeriodReview.status)).all())
        calculations = session.scalar(select(func.count()).select_from(Calculation))
    published_count = published(zone, "select count(*) from out_emissions__monthly_enterprise_balances")[0][0]
    assert statuses == {"calculated": statuses["calculated"]}
    assert calculations >= published_count


def test_a_line_counted_twice_fails_the_blocking_check_and_names_the_rows(tmp_path: Path) -> None:
    settings = small_zone(tmp_path, months=("2024-01",))
    assert materialize_all(settings, instance=dg.DagsterInstance.ephemeral()).success
    with duckdb.connect(str(settings.warehouse)) as conn:  # a defect upstream of the contract
        conn.execute("insert into raw_activity__monthly_lines select * from raw_activity__monthly_lines "
                     "order by source_file, row_number limit 1")
        conn.execute("drop table core_emissions__monthly_lines")
    defs = build_defs(settings)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks], resources=defs.resources, partition_key="2024-01",
        selection=dg.AssetSelection.assets("core_activity__monthly_lines", "core_emissions__monthly_lines"),
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "activity_lines_follow_contract"]
    assert not check.passed
    failures = check.metadata["failures"].value
    unique = [f for f in failures if f["expectation"] == "expect_compound_columns_to_be_unique"]
    assert unique and unique[0]["rows"][0]["row_number"] == 2
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        tables = {r[0] for r in conn.execute("select table_name from information_schema.tables").fetchall()}
    assert "core_emissions__monthly_lines" not in tables  # held back by the failed blocking check


def test_the_sensors_first_tick_does_not_run_again_what_a_whole_materialization_covered(tmp_path: Path) -> None:
    settings = small_zone(tmp_path, months=("2024-01",))
    defs = build_defs(settings)
    sensor = defs.resolve_sensor_def("submissions_sensor")
    resources = {"accounting": defs.resources["accounting"], "oltp": defs.resources["oltp"]}
    with dg.DagsterInstance.ephemeral() as instance:
        before = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.tags.get(RANGE_START) for r in before.run_requests] == ["2024-01", None]  # the month, publish
        assert materialize_all(settings, instance=instance).success
        first = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert not first.run_requests
        with session_factory(settings)() as session:
            accept_submission(session, settings=settings, actor=LOADER, filename="2024-02.csv",
                              content=(SAMPLE / "activity" / "2024-02.csv").read_bytes())
        later = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources))
        assert [r.tags.get(RANGE_START) for r in later.run_requests] == ["2024-02", None]


def test_the_sensor_submits_inbox_files_and_requests_the_months_of_new_submissions(tmp_path: Path) -> None:
    settings = small_zone(tmp_path, months=())
    settings.inbox.mkdir(parents=True)
    shutil.copy(SAMPLE / "activity" / "2023-03.csv", settings.inbox / "march.csv")
    (settings.inbox / "bad.csv").write_text(
        "enterprise_id,period,activity,item,quantity,unit\n91410100MA44A2B3CG,2024-01,fuel_combustion,coke,5,ton\n",
        encoding="utf-8")
    defs = build_defs(settings)
    sensor = defs.resolve_sensor_def("submissions_sensor")
    resources = {"accounting": defs.resources["accounting"], "oltp": defs.resources["oltp"]}
    result = sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=resources))
    monthly, publish = result.run_requests
    assert (monthly.job_name, monthly.tags[RANGE_START], monthly.tags[RANGE_END]) == ("monthly_job", "2023-03",
                                                                                      "2023-03")
    assert publish.job_name == "publish_job"
    assert sorted(p.name for p in (settings.inbox / "accepted").iterdir()) == ["march.csv"]
    assert sorted(p.name for p in (settings.inbox / "refused").iterdir()) == ["bad.csv", "bad.csv.errors.json"]
    report = json.loads((settings.inbox / "refused" / "bad.csv.errors.json").read_text(encoding="utf-8"))
    assert [e["column"] for e in report["errors"]] == ["unit"]
    again = sensor(dg.build_sensor_context(cursor=result.cursor, resources=resources))
    assert not again.run_requests

    # an officer substitutes a missing month (the row as api.services.substitution stores it)
    with session_factory(settings)() as session:
        session.add(Substitution(substitution_id="sub-1", enterprise_id="914101022286058318", period="2024-06",
                                 rule="highest_of_last_12", basis_period="2024-02", totals={"net_tco2e": 1.0},
                                 actor_id="officer-li", reason="no report", created_at=datetime.now(UTC)))
        session.commit()
    substituted = sensor(dg.build_sensor_context(cursor=again.cursor, resources=resources))
    monthly, publish = substituted.run_requests
    assert (monthly.run_key, monthly.tags[RANGE_START], monthly.tags[RANGE_END]) == ("substitution:sub-1", "2024-06",
                                                                                    "2024-06")
    assert publish.job_name == "publish_job"
    assert not sensor(dg.build_sensor_context(cursor=substituted.cursor, resources=resources)).run_requests
    # a cursor from before substitutions were followed is the submissions' position
    (old_cursor,) = json.loads(result.cursor).values()
    from_old = sensor(dg.build_sensor_context(cursor=old_cursor, resources=resources)).run_requests
    assert [r.run_key for r in from_old] == ["substitution:sub-1", from_old[-1].run_key]

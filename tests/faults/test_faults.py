"""Faults: a killed server, a restarted PostgreSQL, two workers at once, a killed pipeline run.

Why: the service acknowledges a write only after its transaction commits, with its audit entry, and
a run republishes from the submissions in force. So whatever happens around a request, every write
that got a 2xx answer must be stored, nothing may be half-written, and the audit chain must verify;
and a pipeline run killed halfway and run again must publish the numbers of a clean run. The writes
and the checks come from the registry in ``tests.faults.harness``.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from sqlalchemy import func, select

from api.store.db import create_db_engine, make_session_factory, session_factory
from api.store.schema import PeriodReview, Submission
from pipelines.settings import Settings
from tests.conftest import ROOT, TEST_DATABASE, dagster_home, postgres_database, zone_settings
from tests.faults import harness
from tests.faults.harness import SCENARIOS, Acknowledged, LiveServer, Target
from tests.review_support import record_published
from tests.support import load_zone

pytestmark = [pytest.mark.integration, pytest.mark.faults]

MONTHS = ("2024-01", "2024-02")
KILL_CYCLES = 3
PG_CLUSTER = ("15", "main")


def prepare_zone(data_dir: Path, database_url: str, published: Settings) -> tuple[Settings, Target]:
    """The sample registry, two months submitted and calculated; the calculated periods to act on."""
    settings = zone_settings(data_dir, database_url=database_url)
    load_zone(settings, months=MONTHS)
    record_published(settings, published, months=MONTHS)
    with session_factory(settings)() as session:
        periods = session.execute(select(PeriodReview.enterprise_id, PeriodReview.period).where(
            PeriodReview.status == "calculated", PeriodReview.held.is_(False))
            .order_by(PeriodReview.period, PeriodReview.enterprise_id)).all()
    session_factory(settings).kw["bind"].dispose()
    harness.prepare_ledger(settings.database)  # accounts with units for the ledger_transfer scenario
    harness.prepare_exchange(settings.database)  # a listed instrument, the clock in session, cash to buy with
    assert len(periods) >= 8
    return settings, Target(base_url="", review_periods=tuple((e, p) for e, p in periods[:8]))


def problems_in(database_url: str, acknowledged: list[tuple[str, Acknowledged]]) -> list[str]:
    engine = create_db_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return harness.problems(session, acknowledged)
    finally:
        engine.dispose()


@pytest.fixture
def zone(tmp_path: Path, database_url: str, published_zone: Settings) -> tuple[Settings, Target]:
    return prepare_zone(tmp_path, database_url, published_zone)


def write_until_unreachable(target: Target, *, start: int, names: list[str], limit: int,
                            acknowledged: list[tuple[str, Acknowledged]]) -> int:
    """Issue writes round-robin until the server stops answering (or ``limit``); return the next number."""
    n = start
    for n in range(start, start + limit):
        name = names[n % len(names)]
        try:
            ack = SCENARIOS[name].write(target, n)
        except (OSError, http.client.HTTPException):  # refused, reset, or the answer cut off by the kill: no ack
            return n + 1
        if ack is not None:
            acknowledged.append((name, ack))
    return n + 1


def kill_once_every_kind_answered(server: LiveServer, acknowledged: list[tuple[str, Acknowledged]], since: int,
                                  delay: float, *, timeout: float = 60) -> None:
    """SIGKILL the server ``delay`` seconds after each scenario got a write acknowledged since ``since``.

    Waiting for the acknowledgements rather than a fixed time keeps every kind of write in each cycle
    on a slow machine too (the first call of each is slow on a fresh process); the writes go on, so the
    kill still lands in the middle of them. After ``timeout`` the server is killed anyway.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and {k for k, _ in acknowledged[since:]} != set(SCENARIOS):
        time.sleep(0.02)
    time.sleep(delay)
    server.kill()


def test_every_acknowledged_write_survives_sigkill_of_the_server(zone: tuple[Settings, Target], tmp_path: Path,
                                                                 record_property: Any) -> None:
    settings, target = zone
    server = LiveServer(tmp_path, settings.database)
    acknowledged: list[tuple[str, Acknowledged]] = []
    n = 0
    try:
        for cycle in range(KILL_CYCLES):
            target = Target(server.start(), target.review_periods)
            killer = threading.Thread(target=kill_once_every_kind_answered,
                                      args=(server, acknowledged, len(acknowledged), 0.1 * (cycle + 1)))
            killer.start()
            try:
                n = write_until_unreachable(target, start=n, names=list(SCENARIOS), limit=500,
                                            acknowledged=acknowledged)
            finally:
                killer.join()
            assert server.process is not None and server.process.returncode == -signal.SIGKILL
            assert problems_in(settings.database, acknowledged) == [], f"after kill {cycle + 1}"
        server.start()  # the server comes back on whatever the kills left
        assert harness.request("GET", f"{server.base_url}/v1/review/audit/verify", headers=harness.OFFICER
                               ).body["intact"] is True
    finally:
        server.stop()
    assert problems_in(settings.database, acknowledged) == []
    kinds = {name: sum(1 for k, _ in acknowledged if k == name) for name in SCENARIOS}
    assert all(kinds.values()), kinds
    record_property("acknowledged", kinds)


# --- PostgreSQL restarted under load -------------------------------------------------------------------

def pg_ctl(action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, action], check=True,
                   capture_output=True, timeout=60)


def wait_for_postgres(*, timeout: float = 60) -> None:
    """Until the server accepts connections (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, timeout=10)
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL does not accept connections after {timeout}s")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if TEST_DATABASE == "sqlite":
        pytest.skip("restarts PostgreSQL: runs in the PostgreSQL pass")
    if shutil.which("pg_ctlcluster") is None and os.environ.get("CARBON_REQUIRE_POSTGRES") != "1":
        pytest.skip("pg_ctlcluster is not available to restart PostgreSQL")
    with postgres_database() as url:
        yield url


class Load(threading.Thread):
    """A client sending submissions and reads until told to stop; every answer's status and duration kept."""

    def __init__(self, target: Target, start: int) -> None:
        super().__init__(daemon=True)
        self.target, self.n = target, start
        self.answers: list[tuple[int, str, float]] = []
        self.acknowledged: list[tuple[str, Acknowledged]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            began = time.monotonic()
            answer = harness.submit(self.target.base_url, harness.submission_content(self.n, salt="load"))
            self.answers.append((answer.status, str((answer.body or {}).get("code", "")), time.monotonic() - began))
            if answer.status in (200, 201):
                self.acknowledged.append(("submission", {k: answer.body[k] for k in (
                    "submission_id", "content_sha256", "periods")}))
            self.n += 1
            time.sleep(0.02)


@pytest.mark.postgres
def test_a_postgresql_restart_gives_503_during_the_outage_and_loses_nothing(
        tmp_path: Path, postgres_url: str, published_zone: Settings) -> None:
    settings, target = prepare_zone(tmp_path, postgres_url, published_zone)
    server = LiveServer(tmp_path, settings.database)
    load = None
    try:
        target = Target(server.start(), target.review_periods)
        load = Load(target, start=10_000)
        load.start()
        time.sleep(0.5)
        pg_ctl("stop")
        outage = [harness.submit(target.base_url, harness.submission_content(20_000 + i), timeout=10)
                  for i in range(5)]
        for answer in outage:
            assert answer.status == 503, answer
            assert answer.media_type == "application/problem+json" and answer.body["code"] == "database_unavailable"
        pg_ctl("start")
        wait_for_postgres()
        time.sleep(0.5)
    finally:
        if load is not None:
            load.stopping.set()
            load.join(timeout=30)
        pg_ctl_safely_started()
        server_answers_after = [harness.submit(server.base_url, harness.submission_content(30_000 + i))
                                for i in range(3)] if server.process and server.process.poll() is None else []
        server.stop()
    assert [a.status for a in server_answers_after] == [201, 201, 201], server.log()
    statuses = {(status, code) for status, code, _ in load.answers} if load else set()
    assert statuses <= {(201, ""), (503, "database_unavailable")}, statuses
    assert load is not None and len(load.answers) >= 3, "the load did not overlap the restart"
    assert max(seconds for _, _, seconds in load.answers) < harness.REQUEST_SECONDS
    acknowledged = load.acknowledged + [("submission", {k: a.body[k] for k in (
        "submission_id", "content_sha256", "periods")}) for a in server_answers_after]
    assert problems_in(settings.database, acknowledged) == []


def pg_ctl_safely_started() -> None:
    """PostgreSQL runs again, whatever happened: the rest of the suite needs it."""
    if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, timeout=10).returncode:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, "start"], capture_output=True,
                       timeout=60)
    wait_for_postgres()


# --- two workers on one database ------------------------------------------------------------------------

def test_two_workers_store_each_submission_once_and_let_one_conflicting_action_win(
        zone: tuple[Settings, Target], tmp_path: Path) -> None:
    settings, target = zone
    servers = [LiveServer(tmp_path, settings.database, name=f"worker-{i}") for i in range(2)]
    try:
        urls = [server.start() for server in servers]
        same = [harness.submission_content(40_000 + i, salt="same") for i in range(6)]
        different = [harness.submission_content(50_000 + i, salt="different") for i in range(6)]
        jobs = [(url, content) for content in same for url in urls] + [
            (urls[i % 2], content) for i, content in enumerate(different)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda job: harness.submit(*job), jobs))
        assert {a.status for a in answers} <= {200, 201}, [a.body for a in answers if a.status >= 300]
        by_content: dict[bytes, set[str]] = {}
        for (_, content), answer in zip(jobs, answers, strict=True):
            by_content.setdefault(content, set()).add(answer.body["submission_id"])
        assert all(len(ids) == 1 for ids in by_content.values())  # the same bytes: one receipt
        assert sum(a.status == 201 for a in answers) == len(same) + len(different)

        winners = []
        for enterprise_id, period in target.review_periods:
            barrier = threading.Barrier(2)
            seen = harness.request("GET", f"{urls[0]}/v1/review/periods/{enterprise_id}/{period}",
                                   headers=harness.OFFICER).body["version"]

            def start_review(url: str, e: str = enterprise_id, p: str = period, v: int = seen,
                             b: threading.Barrier = barrier) -> harness.Answer:
                b.wait(timeout=10)
                return harness.act(url, e, p, "start_review", expected_version=v)

            with ThreadPoolExecutor(max_workers=2) as pool:
                statuses = sorted(a.status for a in pool.map(start_review, urls))
            assert statuses == [200, 409], (enterprise_id, period, statuses)
            winners.append((enterprise_id, period, seen + 1))
    finally:
        for server in servers:
            server.stop()
    acknowledged = [("submission", {k: a.body[k] for k in ("submission_id", "content_sha256", "periods")})
                    for a in answers]
    assert problems_in(settings.database, acknowledged) == []
    engine = create_db_engine(settings.database)
    try:
        with make_session_factory(engine)() as session:
            stored = session.scalar(select(func.count()).select_from(Submission).where(
                Submission.submitter_id == harness.ENGINEER_ID))
            in_review = {(r.enterprise_id, r.period): (r.status, r.version) for r in session.scalars(
                select(PeriodReview).where(PeriodReview.status == "in_review")).all()}
    finally:
        engine.dispose()
    assert stored == len(same) + len(different)
    assert all(in_review.get((e, p)) == ("in_review", v) for e, p, v in winners), in_review


# --- a pipeline run killed mid-materialization --------------------------------------------------------

MATERIALIZE = """
import json
import dagster as dg
from pipelines.runner import materialize_all
from pipelines.settings import get_settings
print("started", flush=True)
with dg.DagsterInstance.ephemeral() as instance:
    summary = materialize_all(get_settings(), instance=instance)
print(json.dumps({"success": summary.success, "failed_checks": summary.failed_checks}), flush=True)
"""

PUBLISHED = ["out_emissions__monthly_enterprise_balances", "out_emissions__yearly_enterprise_balances",
             "out_zone__monthly_indicators"]


def materialize(data_dir: Path, database_url: str) -> subprocess.Popen[str]:
    env = harness.server_env(data_dir, database_url)
    env["DAGSTER_HOME"] = str(dagster_home(data_dir / "dagster"))
    return subprocess.Popen([sys.executable, "-c", MATERIALIZE], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def published(serving: Path) -> dict[str, pd.DataFrame]:
    """The published tables without run ids and timestamps, sorted: what a rerun must reproduce."""
    tables = {}
    with duckdb.connect(str(serving), read_only=True) as conn:
        for table in PUBLISHED:
            frame = conn.execute(f"select * from {table}").df()
            frame = frame.drop(columns=[c for c in frame.columns if "run_id" in c or c.endswith("_at")])
            keys = [c for c in ("enterprise_id", "period", "sector_code", "category") if c in frame.columns]
            tables[table] = frame.sort_values(keys).reset_index(drop=True)
    return tables


def test_a_pipeline_run_killed_mid_materialization_reruns_to_the_clean_numbers(
        tmp_path: Path, database_url: str) -> None:
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    clean = zone_settings(clean_dir, database_url=f"sqlite:///{clean_dir / 'carbon.sqlite'}")
    killed = zone_settings(killed_dir, database_url=database_url)
    for settings in (clean, killed):
        load_zone(settings, months=MONTHS[:1])
        session_factory(settings).kw["bind"].dispose()
    runs = [materialize(clean_dir, clean.database), materialize(killed_dir, killed.database)]
    try:
        deadline = time.monotonic() + 120
        while not killed.warehouse.exists() and time.monotonic() < deadline and runs[1].poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        assert runs[1].poll() is None, "the run ended before it could be killed"
        os.killpg(runs[1].pid, signal.SIGKILL)
        runs[1].wait(timeout=30)
        assert not killed.serving.exists()
        rerun = materialize(killed_dir, killed.database)
        runs.append(rerun)
        outputs = [run.communicate(timeout=120)[0] for run in (runs[0], rerun)]
    finally:
        for run in runs:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait(timeout=30)
    for output in outputs:
        assert '{"success": true, "failed_checks": []}' in output, output[-3000:]
    expected, actual = published(clean.serving), published(killed.serving)
    for table in PUBLISHED:
        pd.testing.assert_frame_equal(actual[table], expected[table], check_exact=True)
    assert problems_in(killed.database, []) == []

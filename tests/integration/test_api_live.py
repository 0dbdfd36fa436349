"""A live uvicorn process keeps answering while the pipeline writes the warehouse in another process.

Why this test: DuckDB allows one read-write process or many readers, never both. The API reads only
the published snapshot, so neither a process holding the warehouse open for writing nor a whole
materialization running beside it may make a request fail; and when that run publishes a new
snapshot, the running server serves it without a restart.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import duckdb
import pytest

from api.store.db import session_factory
from pipelines.settings import Settings
from tests.auth_support import OFFICER
from tests.conftest import ROOT, SAMPLE_DIR, dagster_home, zone_settings
from tests.support import load_zone

pytestmark = pytest.mark.integration

CHP_PLANT = "914101022286058318"
STARTUP_SECONDS = 30
RUN_SECONDS = 180

MATERIALIZE = """
import json
import dagster as dg
from pipelines.runner import materialize_all
from pipelines.settings import get_settings
settings = get_settings()
print("started", flush=True)
with dg.DagsterInstance.ephemeral() as instance:
    summary = materialize_all(settings, instance=instance)
print(json.dumps({"success": summary.success, "failed_checks": summary.failed_checks}), flush=True)
"""

HOLD_OPEN = """
import sys
import duckdb
connection = duckdb.connect(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
connection.close()
"""


@dataclass(frozen=True, slots=True)
class LiveZone:
    root: Path
    env: dict[str, str]

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[Any], *, timeout: float = 15) -> None:
    """Stop a process this test started: SIGTERM, then SIGKILL when it outlives ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def read_line(stream: IO[str], *, timeout: float) -> str:
    """One line from a child's stdout, or '' when none arrives within ``timeout``."""
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline().strip() if ready else ""


def get(base_url: str, path: str, headers: dict[str, str] = OFFICER) -> tuple[int, Any]:
    """GET ``path`` signed in with ``headers`` (an officer's API key unless told)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(base_url + path, headers=headers), timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.fixture(scope="module")
def live_zone(published_zone: Settings, tmp_path_factory: pytest.TempPathFactory) -> LiveZone:
    """A copy of the published zone (warehouse and snapshot) that this module's processes may rewrite.

    Its database holds the registry and the sample submissions, as the published zone's does, so that
    a materialization in it finds the same data.
    """
    root = tmp_path_factory.mktemp("live")
    shutil.copyfile(published_zone.warehouse, root / "warehouse.duckdb")
    shutil.copyfile(published_zone.serving, root / "serving.duckdb")
    settings = zone_settings(root)
    load_zone(settings)
    session_factory(settings).kw["bind"].dispose()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CARBON_")}
    env.update({
        "CARBON_DATA_DIR": str(root), "CARBON_SAMPLE_DIR": str(SAMPLE_DIR), "CARBON_DATABASE_URL": settings.database,
        "DAGSTER_HOME": str(dagster_home(root / "dagster")),
        "CARBON_RATE_LIMIT_PER_MINUTE": "0",  # these tests read as fast as they can, on purpose
    })
    return LiveZone(root=root, env=env)


@pytest.fixture(scope="module")
def server(live_zone: LiveZone) -> Iterator[str]:
    """``uvicorn api.main:create_app --factory`` on a free port; its base URL once /healthz answers."""
    port = free_port()
    log = open(live_zone.root / "uvicorn.log", "wb")  # closed in the finally below
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port)], cwd=ROOT, env=live_zone.env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert process.poll() is None, (live_zone.root / "uvicorn.log").read_text()
            try:
                if get(base_url, "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail(f"uvicorn did not answer within {STARTUP_SECONDS}s")
        yield base_url
    finally:
        stop(process)
        log.close()


def read_everything(base_url: str) -> None:
    """The read endpoints answer 200 with data."""
    status, page = get(base_url, "/v1/enterprises?limit=5")
    assert status == 200 and page["total"] == 34 and len(page["items"]) == 5
    status, monthly = get(base_url, f"/v1/enterprises/{CHP_PLANT}/emissions/monthly?year=2023")
    assert status == 200 and len(monthly["items"]) == 12
    status, zone = get(base_url, "/v1/zone/indicators?period=2023-01")
    assert status == 200 and zone["items"][0]["net_tco2e"] is not None
    status, lineage = get(base_url, f"/v1/enterprises/{CHP_PLANT}/lineage/2023-01")
    assert status == 200 and lineage["lines"] and lineage["factors"]
    status, problem = get(base_url, "/v1/enterprises?limit=5", headers={})
    assert status == 401 and problem["code"] == "authentication_required"


def yearly_run_id(base_url: str) -> str:
    status, yearly = get(base_url, f"/v1/enterprises/{CHP_PLANT}/emissions/yearly")
    assert status == 200
    return str(yearly["items"][0]["run_id"])


def test_reads_answer_while_another_process_holds_the_warehouse_open_for_writing(
        server: str, live_zone: LiveZone) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(live_zone.warehouse)], env=live_zone.env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and read_line(holder.stdout, timeout=STARTUP_SECONDS) == "locked"
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(live_zone.warehouse), read_only=True).close()  # the writer's lock is real
        for _ in range(3):
            read_everything(server)
        assert get(server, "/readyz")[0] == 200
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        stop(holder)


def test_reads_answer_while_a_materialization_runs_and_then_serve_its_snapshot(
        server: str, live_zone: LiveZone) -> None:
    before = yearly_run_id(server)
    errors = open(live_zone.root / "materialize.log", "w")  # closed in the finally below
    runner = subprocess.Popen([sys.executable, "-c", MATERIALIZE], cwd=ROOT, env=live_zone.env,
                              stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        assert runner.stdout is not None and read_line(runner.stdout, timeout=60) == "started"
        during_run = 0
        deadline = time.monotonic() + RUN_SECONDS
        while runner.poll() is None and time.monotonic() < deadline:
            read_everything(server)
            if runner.poll() is None:
                during_run += 1
        assert runner.poll() is not None, f"materialization still running after {RUN_SECONDS}s"
        assert during_run >= 3, f"only {during_run} rounds of requests overlapped the run"
        assert runner.returncode == 0, (live_zone.root / "materialize.log").read_text()[-3000:]
        assert json.loads(runner.stdout.read().strip().splitlines()[-1]) == {"success": True, "failed_checks": []}
    finally:
        stop(runner)
        errors.close()
    read_everything(server)
    assert yearly_run_id(server) != before  # the server reopened the newly published snapshot

"""Shared fixtures: one published sample zone per test session, and an API client over it.

Why once per session: materializing the 24 sample months takes seconds; every API test reads the
same published snapshot, and tests that write (submissions) get their own database and inbox.
Nothing is written under the repository's ``data/``: the zone is built in a temporary folder and
only the committed sample is read from ``data/sample``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from pipelines.settings import Settings
from tests.auth_support import seed_users
from tests.support import load_zone

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "data" / "sample"
DAGSTER_YAML = "telemetry:\n  enabled: false\n"


#: CARBON_TEST_DATABASE=sqlite or postgresql runs the whole suite on that database (``make test`` runs it
#: twice, once on each); unset, database tests run on both and everything else on SQLite.
TEST_DATABASE = os.environ.get("CARBON_TEST_DATABASE", "")
_SCHEMAS: list[str] = []


def default_database_url(data_dir: Path) -> str:
    """The database of a test zone: a SQLite file, or a fresh PostgreSQL schema when the suite runs on PostgreSQL."""
    if TEST_DATABASE != "postgresql":
        return f"sqlite:///{data_dir / 'carbon.sqlite'}"
    url, schema = create_postgres_schema()
    _SCHEMAS.append(schema)
    return url





def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the PostgreSQL pass, run only the tests that touch PostgreSQL.

    Those use the ``database_url`` fixture or carry the ``postgres`` mark (a ``database_backends()``
    parameter, or a test that needs the server itself); every other test works on its own SQLite file and
    ran, identically, in the SQLite pass. The browser tests (mark ``browser``) run in the SQLite pass only.
    """
    if TEST_DATABASE != "postgresql":
        return
    kept, sqlite_only = [], []
    for item in items:
        touches = "database_url" in getattr(item, "fixturenames", ()) or item.get_closest_marker("postgres")
        (kept if touches and not item.get_closest_marker("browser") else sqlite_only).append(item)
    if sqlite_only:
        config.hook.pytest_deselected(items=sqlite_only)
        items[:] = kept


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schemas() -> Iterator[None]:
    """Drop the PostgreSQL schemas that test zones created, once the session ends."""
    yield
    if _SCHEMAS:
        from sqlalchemy import create_engine, text

        admin = create_engine(os.environ.get("CARBON_TEST_POSTGRES_URL", POSTGRES_URL))
        with admin.begin() as conn:
            for schema in _SCHEMAS:
                conn.execute(text(f'drop schema if exists "{schema}" cascade'))
        admin.dispose()


def zone_settings(data_dir: Path, **changes: object) -> Settings:
    """Settings for a zone in ``data_dir``, reading the committed sample and ignoring any CARBON_* variable.

    Every path is given explicitly, so a developer's environment can never point a test at ``data/``. The
    exchange's trading days roll only by commands and officers (``exchange_roll_seconds = 0``), so that a
    test decides when a day rolls; the clock's own roll has tests of its own.
    """
    if "database_url" not in changes:
        changes["database_url"] = default_database_url(data_dir)
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.upper().startswith("CARBON_")]:
            patch.delenv(name)
        values: dict[str, object] = {
            "data_dir": data_dir, "sample_dir": SAMPLE_DIR, "inbox_dir": data_dir / "inbox",
            "warehouse_path": data_dir / "warehouse.duckdb", "serving_path": data_dir / "serving.duckdb",
            "exchange_roll_seconds": 0,
        }
        settings = Settings.model_validate({**values, **changes})
    seed_users(settings.database)
    return settings


def dagster_home(folder: Path) -> Path:
    """A DAGSTER_HOME with telemetry off, so runs write nothing under the user's home."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text(DAGSTER_YAML)
    return folder


@pytest.fixture(scope="session")
def published_zone(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The sample zone materialized and published once, in a temporary data folder."""
    import dagster as dg

    from pipelines.runner import materialize_all

    if not (SAMPLE_DIR / "enterprises.csv").is_file() or not (SAMPLE_DIR / "activity").is_dir():
        pytest.fail(f"the sample zone is missing under {SAMPLE_DIR}; run data/sample/generate.py")
    data_dir = tmp_path_factory.mktemp("zone")
    settings = zone_settings(data_dir)
    load_zone(settings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(dagster_home(data_dir / "dagster")))
        with dg.DagsterInstance.ephemeral() as instance:
            summary = materialize_all(settings, instance=instance)
    assert summary.success, f"materialization failed; failed checks: {summary.failed_checks}"
    assert len(summary.months) == 24
    assert settings.serving.is_file()
    return settings


@pytest.fixture
def client(published_zone: Settings) -> Iterator[TestClient]:
    """An API client over the published zone (read endpoints); the lifespan runs inside ``with``."""
    with TestClient(create_app(published_zone)) as test_client:
        yield test_client


POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def create_postgres_schema() -> tuple[str, str]:
    """A fresh schema on the production PostgreSQL and a URL confined to it; the caller drops it.

    Without a reachable server the test is skipped, unless CARBON_REQUIRE_POSTGRES=1 (as in CI),
    where it fails.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    base = os.environ.get("CARBON_TEST_POSTGRES_URL", POSTGRES_URL)
    schema = f"carbon_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'create schema "{schema}"'))
    except OperationalError as err:
        message = f"PostgreSQL is not reachable at {base}: {str(err).splitlines()[0]}"
        if os.environ.get("CARBON_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        admin.dispose()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", schema


@contextmanager
def postgres_database() -> Iterator[str]:
    """A URL on the production PostgreSQL, confined to a fresh schema that is dropped afterwards.

    The tests never touch the rest of the database.
    """
    from sqlalchemy import create_engine, text

    url, schema = create_postgres_schema()
    try:
        yield url
    finally:
        admin = create_engine(os.environ.get("CARBON_TEST_POSTGRES_URL", POSTGRES_URL))
        with admin.begin() as conn:
            conn.execute(text(f'drop schema "{schema}" cascade'))
        admin.dispose()


def database_backends() -> list[Any]:
    """The databases a database test runs on: the one named by CARBON_TEST_DATABASE, else both."""
    params = {"sqlite": "sqlite", "postgresql": pytest.param("postgresql", marks=pytest.mark.postgres)}
    return [params[TEST_DATABASE]] if TEST_DATABASE in params else list(params.values())


@pytest.fixture(params=database_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The OLTP database of one test: a SQLite file, and the same test again on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'carbon.sqlite'}"
        return
    with postgres_database() as url:
        yield url

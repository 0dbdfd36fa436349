"""Schemathesis against the live OpenAPI document: every operation, as an officer and as an enterprise.

Both sign in with the API keys of the test catalog (``tests.auth_support``); no answer may be a 401,
since the credentials are valid, and some must succeed, so the routes are exercised past the access gate.

Why this test: the OpenAPI document is a contract clients generate code from. Schemathesis generates
requests from it (valid and invalid ones, seeded) and checks each answer: never a 5xx, a status code the
document lists, the documented media type, and a body that matches the documented schema. It runs the
real application in-process over the published sample snapshot and a database of its own.

The data-docs routes serve static HTML files from a folder (``response_class=FileResponse``); they are
left out: their bodies have no schema to check and their ``{path:path}`` parameter is a file path.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi

from api.access import access_of
from api.main import create_app
from pipelines.settings import Settings
from tests.auth_support import OFFICER, enterprise, seed_users
from tests.conftest import default_database_url

pytestmark = pytest.mark.integration

CHP_PLANT = "914101022286058318"
ENTERPRISE = enterprise(CHP_PLANT)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 12  # per operation, derandomized: the same cases on every run
TIME_BUDGET_SECONDS = 120.0  # generous: the two test passes share the machine's two cores
ENTERPRISE_ROUTES = r"^/v1/(enterprises|review/queue|review/periods|quality/completeness|submissions)"


@pytest.fixture(scope="module")
def api_schema(published_zone: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The application's own OpenAPI document, over the published snapshot and a fresh database."""
    data_dir = tmp_path_factory.mktemp("schemathesis")
    zone = published_zone.model_copy(update={"database_url": default_database_url(data_dir),
                                             "inbox_dir": data_dir / "inbox", "data_dir": data_dir,
                                             "serving_path": published_zone.serving,
                                             "rate_limit_per_minute": 0})  # every case reaches its route
    seed_users(zone.database)  # the catalog users and their keys, as zone_settings seeds them
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(zone))
    yield schema.exclude(path_regex=r"^/v1/quality/data-docs/")
    asgi.shutdown_lifespans()


@dataclass
class Tally:
    operations: int = 0
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    refused_credentials: set[str] = field(default_factory=set)


def is_public(operation: Any) -> bool:
    """Signing in is public, and answers 401 to a wrong password on purpose."""
    entry = access_of(operation.method.upper(), operation.path)
    return entry is not None and entry.public


def run_operations(schema: Any, *, headers: dict[str, str], max_examples: int, deadline: float) -> Tally:
    """Every operation of ``schema``, ``max_examples`` seeded cases each; every failed check is collected."""
    tally = Tally()
    for result in schema.get_all_operations():
        operation = result.ok()
        tally.operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            if time.monotonic() > deadline:
                return
            tally.cases += 1
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            tally.statuses[response.status_code] += 1
            if response.status_code == 401 and not is_public(case.operation):
                tally.refused_credentials.add(case.operation.label)

        try:
            run()
        except (Exception, FailureGroup) as err:  # noqa: BLE001 - the first failure of each operation, not one in all
            tally.failures.append(f"{operation.label}: {err}")
    assert time.monotonic() <= deadline, "the Schemathesis time budget ran out: lower MAX_EXAMPLES"
    return tally


def assert_signed_in(tally: Tally) -> None:
    """The key was accepted on every case (a 401 means it was not) and some cases got past the routes' checks."""
    assert tally.refused_credentials == set(), tally.statuses
    assert sum(n for status, n in tally.statuses.items() if status < 300) >= tally.operations // 2, tally.statuses


def test_every_operation_answers_an_officer_as_documented(api_schema: Any, record_property: Any) -> None:
    tally = run_operations(api_schema, headers=OFFICER, max_examples=MAX_EXAMPLES,
                           deadline=time.monotonic() + TIME_BUDGET_SECONDS)
    record_property("schemathesis", f"officer: {tally.operations} operations, {tally.cases} cases,"
                    f" {len(tally.failures)} failures")
    assert tally.failures == [], "\n\n".join(tally.failures)
    assert tally.operations >= 20
    assert_signed_in(tally)


def test_enterprise_facing_operations_answer_an_enterprise_as_documented(api_schema: Any,
                                                                        record_property: Any) -> None:
    tally = run_operations(api_schema.include(path_regex=ENTERPRISE_ROUTES), headers=ENTERPRISE,
                           max_examples=MAX_EXAMPLES // 2, deadline=time.monotonic() + TIME_BUDGET_SECONDS / 2)
    record_property("schemathesis", f"enterprise: {tally.operations} operations, {tally.cases} cases,"
                    f" {len(tally.failures)} failures")
    assert tally.failures == [], "\n\n".join(tally.failures)
    assert_signed_in(tally)

"""The zone the browser tests work in: the sample's 2024, one month with a unit error, users who sign in.

What is in it:

* the sample registry and the twelve sample months of 2024, as a data engineer submits them; in December
  the cement plant's clinker line L1 says 24,474,800 t instead of 24,474.8 t (kilograms typed into a
  tonne column), which the pipeline's data-quality checks hold back;
* one real pipeline run, so the published snapshot, the calculations and the findings are the pipeline's;
* the cement plant's January to November approved and locked (only December stands between the plant
  and its locked year);
* an officer and the cement plant's enterprise user with passwords, signing in through the sign-in page.
"""

from __future__ import annotations

import csv
import io
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from accounting.review import Actor
from api.services import review, users
from api.services.submissions import accept_submission
from api.store.db import session_factory
from pipelines.definitions import build_defs
from pipelines.runner import materialize_all
from pipelines.sensors import RANGE_END, RANGE_START
from pipelines.settings import Settings
from tests.conftest import dagster_home, zone_settings
from tests.support import LOADER, load_zone, sample_rows

CEMENT_PLANT = "91410100437387498P"  # 郑州高新某某水泥有限公司, a key emitter with two clinker lines
YEAR = "2024"
MONTHS = tuple(f"{YEAR}-{m:02d}" for m in range(1, 13))
FAULTY_MONTH = "2024-12"
#: The cement plant's clinker line L1 in December as reported by mistake (the sample's is 24474.8 t).
CLINKER_L1_REPORTED = "24474800"

OFFICER_ID = "demo-officer"
ENTERPRISE_ID = "demo-enterprise"
USERS = ((OFFICER_ID, "officer", ()), (ENTERPRISE_ID, "enterprise", (CEMENT_PLANT,)))
SETUP = Actor(actor_id="zone-setup", role="officer")
ADMIN = Actor(actor_id="zone-setup", role="admin")


@dataclass
class BrowserZone:
    """The prepared zone, the passwords of its users and the address of its server."""

    settings: Settings
    passwords: dict[str, str] = field(default_factory=dict)
    base_url: str = ""

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def run_pipeline(self, *, months: tuple[str, ...]) -> None:
        """The runs the submissions sensor asks for after new submissions: ``months``, then publication."""
        run_pipeline(self.settings, months=months)


def month_file(month: str, *, enterprise_id: str | None = None, clinker_l1: str | None = None,
               unit_of_clinker_l1: str = "t") -> bytes:
    """A sample month as a file: every enterprise or only ``enterprise_id``; the cement plant's clinker line
    L1 with another quantity or unit when given."""
    header, rows = sample_rows(month)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        if enterprise_id is not None and row["enterprise_id"] != enterprise_id:
            continue
        if is_clinker_l1(row):
            row = {**row, "quantity": clinker_l1 or row["quantity"], "unit": unit_of_clinker_l1}
        writer.writerow(row)
    return buffer.getvalue().encode()


def is_clinker_l1(row: dict[str, str]) -> bool:
    return (row["enterprise_id"], row["activity"], row["facility"]) == (CEMENT_PLANT, "clinker_production", "L1")


def run_pipeline(settings: Settings, *, months: tuple[str, ...] | None = None) -> None:
    """Materialize every asset (``months=None``), or only ``months`` and the publication, as the sensor does.

    In a thread of its own: Dagster runs an event loop of its own, and the browser driver's may be running in
    this one.
    """
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(max_workers=1) as worker:
        patch.setenv("DAGSTER_HOME", str(dagster_home(settings.data_dir / "dagster")))
        failures = worker.submit(_materialize, settings, months).result()
    assert not failures, f"the pipeline failed: {failures}"


def _materialize(settings: Settings, months: tuple[str, ...] | None) -> list[str]:
    with dg.DagsterInstance.ephemeral() as instance:
        if months is None:
            summary = materialize_all(settings, instance=instance)
            return [] if summary.success else ["materialize_all", *summary.failed_checks]
        defs = build_defs(settings)
        failed = []
        for job_name, tags in (("monthly_job", {RANGE_START: min(months), RANGE_END: max(months)}),
                               ("publish_job", {})):
            result = defs.resolve_job_def(job_name).execute_in_process(instance=instance, tags=tags,
                                                                       raise_on_error=False)
            if not result.success:
                failed.append(job_name)
        return failed


def lock_months(settings: Settings, *, enterprise_id: str, months: tuple[str, ...]) -> None:
    """Review, approve and lock ``months`` through the review service, as an officer would."""
    with session_factory(settings)() as session:
        for month in months:
            for action in ("start_review", "approve", "lock"):
                review.act(session, actor=SETUP, enterprise_id=enterprise_id, period=month, action=action)


def prepare_zone(data_dir: Path) -> BrowserZone:
    """The zone described in the module docstring, in ``data_dir`` (SQLite), without its server."""
    zone = BrowserZone(settings=zone_settings(data_dir, database_url=f"sqlite:///{data_dir / 'carbon.sqlite'}"))
    settings = zone.settings
    load_zone(settings, months=MONTHS[:-1])
    with session_factory(settings)() as session:
        accept_submission(session, settings=settings, actor=LOADER, filename=f"{FAULTY_MONTH}.csv",
                          content=month_file(FAULTY_MONTH, clinker_l1=CLINKER_L1_REPORTED))
    run_pipeline(settings)
    lock_months(settings, enterprise_id=CEMENT_PLANT, months=MONTHS[:-1])
    with session_factory(settings)() as session:
        for user_id, role, enterprises in USERS:
            password = secrets.token_urlsafe(12)
            users.create_user(session, settings, by=ADMIN, user_id=user_id, role=role, password=password,
                              enterprise_ids=enterprises)
            zone.passwords[user_id] = password
    session_factory(settings).kw["bind"].dispose()
    return zone

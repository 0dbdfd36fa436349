"""Materialize the whole pipeline in this process: reference data, every month with data, publication.

Used by ``carbon run`` (and so by ``make run``) and by tests. Runs are recorded in the given Dagster
instance, so they show in the Dagster UI when it points at the same DAGSTER_HOME; the publication run
carries the submissions sensor's positions it covered (``pipelines.sensors.POSITIONS_TAG``), so the
sensor's first tick does not run those months again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import dagster as dg

from pipelines.definitions import build_defs
from pipelines.sensors import POSITIONS_TAG, RANGE_END, RANGE_START, positions_now
from pipelines.settings import Settings


@dataclass
class RunSummary:
    """What a full materialization did: months covered, run ids, failures of blocking checks."""

    months: list[str]
    run_ids: list[str] = field(default_factory=list)
    success: bool = True
    failed_checks: list[str] = field(default_factory=list)


def months_with_data(settings: Settings) -> list[str]:
    """Every month partition that a submission in force reports."""
    from api.store.db import session_factory
    from api.store.submissions import months_reported

    with session_factory(settings)() as session:
        return months_reported(session)


def materialize_all(settings: Settings, *, instance: dg.DagsterInstance) -> RunSummary:
    """Run reference_job, monthly_job over the months with data, then publish_job; stop at the first failure."""
    from api.store.db import session_factory

    defs = build_defs(settings)
    with session_factory(settings)() as session:  # read before the runs: what they will cover at least
        positions = positions_now(session)
    months = months_with_data(settings)
    summary = RunSummary(months=months)
    plan: list[tuple[str, dict[str, str]]] = [("reference_job", {})]
    if months:
        plan.append(("monthly_job", {RANGE_START: months[0], RANGE_END: months[-1]}))
    plan.append(("publish_job", {POSITIONS_TAG: json.dumps(positions, sort_keys=True)}))
    for job_name, tags in plan:
        result = defs.resolve_job_def(job_name).execute_in_process(instance=instance, tags=tags,
                                                                   raise_on_error=False)
        summary.run_ids.append(result.run_id)
        # A failed check of WARN severity (data-quality holds) is reported in the run, not a reason to stop.
        summary.failed_checks += [e.check_name for e in result.get_asset_check_evaluations()
                                  if not e.passed and e.severity != dg.AssetCheckSeverity.WARN]
        if not result.success or summary.failed_checks:
            summary.success = False
            break
    return summary

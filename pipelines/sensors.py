"""The inbox sensor: a file dropped into the inbox becomes a run of the months it holds."""

import hashlib
import json
from typing import Any

import dagster as dg

from pipelines.resources import AccountingResource

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def months_in_file(content: bytes, name: str) -> list[str]:
    """The month partitions an activity file touches (annual lines count for December)."""
    from accounting.activity import SourceFile, read_table

    table = read_table(SourceFile(name, content))
    if "period" not in table.columns:
        return []
    months = set()
    for period in table["period"].unique():
        if len(period) == 7 and period[4] == "-":
            months.add(period)
        elif len(period) == 4 and period.isdigit():
            months.add(f"{period}-12")
    return sorted(months)


def build_inbox_sensor(*, monthly_job: Any, publish_job: Any) -> dg.SensorDefinition:
    @dg.sensor(jobs=[monthly_job, publish_job], minimum_interval_seconds=15,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def inbox_sensor(context: dg.SensorEvaluationContext, accounting: AccountingResource) -> dg.SensorResult:
        """Request a run for every new or changed file in the inbox, then a publication of the results."""
        from accounting.errors import InvalidFileError

        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        inbox = accounting.folders()[-1]
        requests: list[dg.RunRequest] = []
        skipped: list[str] = []
        for path in sorted(inbox.glob("*")) if inbox.is_dir() else []:
            if not path.is_file() or path.name.startswith("."):
                continue
            content = path.read_bytes()
            digest = hashlib.sha256(content).hexdigest()
            if seen.get(path.name) == digest:
                continue
            seen[path.name] = digest
            try:
                months = months_in_file(content, path.name)
            except InvalidFileError:
                months = []
            if not months:
                skipped.append(path.name)
                continue
            requests.append(dg.RunRequest(run_key=f"{path.name}:{digest}", job_name=monthly_job.name,
                                          tags={RANGE_START: months[0], RANGE_END: months[-1]}))
        if requests:
            requests.append(dg.RunRequest(run_key=f"publish:{json.dumps(sorted(seen.items()))}",
                                          job_name=publish_job.name))
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen),
                               skip_reason=None if requests else dg.SkipReason(
                                   f"no new inbox files; unreadable: {skipped}" if skipped else "no new inbox files"))

    return inbox_sensor

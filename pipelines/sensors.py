"""The submissions sensor: new submissions and substitutions become runs of the months they concern.

Three sources: files dropped into the inbox folder, which the sensor submits as a data engineer would
(a refused file goes to ``inbox/refused/`` with its error report beside it, an accepted one to
``inbox/accepted/``), submissions stored through the API or the CLI, and officers' substitutions of
missing months. Each new submission asks for a run of its month range, each substitution for a run of
its month; a publication run follows them.

The cursor is a JSON object with one position per stream (``submissions``, ``substitutions``); a cursor
that is a bare string is the submissions' position, as the sensor wrote it before it followed
substitutions. A sensor without a cursor yet (its first tick) starts where the latest whole
materialization (``pipelines.runner.materialize_all``, so ``carbon run`` and ``make run``) started: that
run's publication carries the positions it covered in the tag ``POSITIONS_TAG``, and the months it
published are not run again.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.resources import AccountingResource, OltpResource

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
INBOX_ACTOR = ("inbox", "engineer")


def months_of(periods: list[str]) -> list[str]:
    """The month partitions of periods (annual periods count for December)."""
    return sorted({p if len(p) == 7 else f"{p}-12" for p in periods})


def submit_inbox_files(inbox: Path, *, oltp: OltpResource, settings: Any) -> tuple[list[str], list[str]]:
    """Submit every file waiting in the inbox; return the names accepted and refused."""
    from accounting.errors import AccountingError
    from accounting.review import Actor
    from api.services.submissions import accept_submission

    actor = Actor(actor_id=INBOX_ACTOR[0], role=INBOX_ACTOR[1])
    accepted, refused = [], []
    for path in sorted(p for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")):
        with oltp.sessions()() as session:
            try:
                accept_submission(session, settings=settings, actor=actor, filename=path.name,
                                  content=path.read_bytes())
            except AccountingError as err:
                report = err.to_report() if hasattr(err, "to_report") else {"code": err.code, "detail": str(err)}
                _move(path, inbox / "refused")
                (inbox / "refused" / f"{path.name}.errors.json").write_text(
                    json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
                refused.append(path.name)
                continue
        _move(path, inbox / "accepted")
        accepted.append(path.name)
    return accepted, refused


def _move(path: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(folder / path.name))


SUBMISSIONS, SUBSTITUTIONS = "submissions", "substitutions"
#: The tag of a whole materialization's publication run: the sensor positions that materialization covered.
POSITIONS_TAG = "carbon/sensor_positions"


def _since(session: Any, positions: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    """Each stream's rows after its position, oldest first; each row starts with its own position."""
    from api.store.submissions import received_after
    from api.store.substitutions import made_after

    return {SUBMISSIONS: received_after(session, after=positions.get(SUBMISSIONS, "")),
            SUBSTITUTIONS: made_after(session, after=positions.get(SUBSTITUTIONS, ""))}


def _moved(positions: dict[str, str], new: dict[str, list[tuple[Any, ...]]]) -> dict[str, str]:
    """``positions`` moved past the rows of ``new``."""
    return {**positions, **{stream: rows[-1][0] for stream, rows in new.items() if rows}}


def positions_now(session: Any) -> dict[str, str]:
    """Each stream's latest position: what a run of every month with data, starting now, covers."""
    return _moved({}, _since(session, {}))


def _positions(cursor: str | None) -> dict[str, str]:
    """The sensor's position in each stream (a bare string: the submissions', from before substitutions)."""
    if not cursor:
        return {}
    if cursor.startswith("{"):
        positions: dict[str, str] = json.loads(cursor)
        return positions
    return {SUBMISSIONS: cursor}


def _covered(instance: dg.DagsterInstance, publish_job: str) -> dict[str, str]:
    """The positions the latest successful whole materialization covered (none: empty)."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=publish_job, statuses=[dg.DagsterRunStatus.SUCCESS]),
                             limit=100)
    tagged = next((run.tags[POSITIONS_TAG] for run in runs if POSITIONS_TAG in run.tags), None)
    return _positions(tagged)


def build_submissions_sensor(*, monthly_job: Any, publish_job: Any) -> dg.SensorDefinition:
    @dg.sensor(jobs=[monthly_job, publish_job], minimum_interval_seconds=15,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def submissions_sensor(context: dg.SensorEvaluationContext, accounting: AccountingResource,
                           oltp: OltpResource) -> dg.SensorResult:
        """Submit inbox files, then request a run for every submission and substitution since the last evaluation."""
        inbox = accounting.inbox()
        refused: list[str] = []
        if inbox.is_dir():
            _, refused = submit_inbox_files(inbox, oltp=oltp, settings=accounting.submission_settings())
        if refused:
            context.log.warning(f"refused inbox files (see {inbox / 'refused'}): {refused}")
        cursor = _positions(context.cursor) if context.cursor else _covered(context.instance, publish_job.name)
        with oltp.sessions()() as session:
            new = _since(session, cursor)
        requests = []
        for _, submission_id, periods in new[SUBMISSIONS]:
            months = months_of(periods)
            requests.append(dg.RunRequest(run_key=f"submission:{submission_id}", job_name=monthly_job.name,
                                          tags={RANGE_START: months[0], RANGE_END: months[-1],
                                                "submission_id": submission_id}))
        for _, substitution_id, month in new[SUBSTITUTIONS]:
            requests.append(dg.RunRequest(run_key=f"substitution:{substitution_id}", job_name=monthly_job.name,
                                          tags={RANGE_START: month, RANGE_END: month,
                                                "substitution_id": substitution_id}))
        positions = _moved(cursor, new)
        moved = json.dumps(positions, sort_keys=True) if positions else None
        if requests:
            requests.append(dg.RunRequest(run_key=f"publish:{moved}", job_name=publish_job.name))
        nothing = "no new submissions or substitutions"
        return dg.SensorResult(
            run_requests=requests, cursor=moved,
            skip_reason=None if requests else dg.SkipReason(
                f"{nothing}; refused inbox files: {refused}" if refused else nothing))

    return submissions_sensor

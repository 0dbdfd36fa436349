"""The ``carbon`` command line: calculate, ingest, run, serve, registry, factors.

``carbon calculate`` stores nothing and prints JSON; an invalid file exits with status 2 and prints
the full error report (row, column, value, expected) as JSON. The other commands drive the pipeline
and the servers on the embedded defaults (files under ``data/``), changed with CARBON_* variables.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accounting.calculation import GRAINS, GRID_REGIONS, RULESETS, CalculationOptions
from accounting.errors import AccountingError, InvalidFileError

EXIT_INVALID = 2
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 1
"""


def _print_json(document: Any) -> None:
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _error_report(err: AccountingError) -> dict[str, Any]:
    if isinstance(err, InvalidFileError):
        return err.to_report()
    return {"code": err.code, "detail": str(err)}


def cmd_calculate(args: argparse.Namespace) -> int:
    from accounting.activity import SourceFile
    from accounting.factors import load_library
    from pipelines.warehouse import calculate_sources

    options = CalculationOptions(edition=args.factor_edition, ruleset=args.ruleset, grid_region=args.grid_region,
                                 gwp_set=args.gwp_set, max_factor_lag_years=args.max_factor_lag, by=args.by)
    sources = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            _print_json({"code": "file_not_found", "detail": f"no such file: {name}"})
            return EXIT_INVALID
        sources.append(SourceFile(path.name, path.read_bytes()))
    try:
        document = calculate_sources(sources, library=load_library(), options=options)
    except AccountingError as err:
        _print_json(_error_report(err))
        return EXIT_INVALID
    _print_json(document)
    return 0


def _dagster_home(settings: Any) -> Path:
    """DAGSTER_HOME, defaulting to data/dagster with telemetry off and one run at a time."""
    home = Path(os.environ.get("DAGSTER_HOME") or (settings.data_dir / "dagster")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_run(args: argparse.Namespace) -> int:
    import dagster as dg

    from pipelines.runner import materialize_all
    from pipelines.settings import get_settings

    settings = get_settings()
    _dagster_home(settings)
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        summary = materialize_all(settings, instance=instance)
    report = {"success": summary.success, "months": f"{summary.months[0]}..{summary.months[-1]}"
              if summary.months else None, "month_count": len(summary.months), "run_ids": summary.run_ids,
              "failed_checks": summary.failed_checks, "snapshot": str(settings.serving),
              "seconds": round(time.monotonic() - started, 1)}
    _print_json(report)
    return 0 if summary.success else 1


def _actor(args: argparse.Namespace) -> Any:
    from accounting.review import Actor

    return Actor(actor_id=args.actor, role=args.role, enterprise_ids=frozenset(args.enterprise or ()))


def _submit_files(paths: list[Path], *, actor: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Submit files one by one; stop at the first refused one and return its report."""
    from api.services.submissions import accept_submission
    from api.store.db import session_factory
    from pipelines.settings import get_settings

    settings = get_settings()
    receipts: list[dict[str, Any]] = []
    with session_factory(settings)() as session:
        for path in paths:
            try:
                receipts.append(accept_submission(session, settings=settings, actor=actor, filename=path.name,
                                                  content=path.read_bytes()))
            except (AccountingError, PermissionError) as err:
                report = err.to_report() if isinstance(err, InvalidFileError) else {
                    "code": getattr(err, "code", "refused"), "detail": str(err)}
                return receipts, {**report, "file": str(path)}
            except Exception as err:  # a closed period and the like: named, not a traceback
                if not hasattr(err, "code"):
                    raise
                return receipts, {"code": err.code, "detail": str(err), "file": str(path)}
    return receipts, None


def cmd_ingest(args: argparse.Namespace) -> int:
    receipts, refused = _submit_files([Path(f) for f in args.files], actor=_actor(args))
    if refused:
        _print_json({**refused, "accepted": receipts})
        return EXIT_INVALID
    _print_json({"accepted": receipts})
    return 0


def cmd_load_sample(args: argparse.Namespace) -> int:
    """Import the sample registry and submit the sample months (idempotent: a second run stores nothing)."""
    from accounting.review import Actor
    from api.services.registry import import_registry
    from api.store.db import session_factory
    from pipelines.settings import get_settings

    settings = get_settings()
    actor = Actor(actor_id="sample-loader", role="engineer")
    with session_factory(settings)() as session:
        counts = import_registry(session, content=settings.registry.read_bytes(), source=str(settings.registry),
                                 actor=actor)
    files = sorted((settings.sample_dir / "activity").glob("*.csv"))
    receipts, refused = _submit_files(files, actor=actor)
    _print_json({"registry": counts, "submissions": len(receipts), "refused": refused})
    return EXIT_INVALID if refused else 0


def cmd_registry(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from accounting.review import Actor
    from api.services.registry import import_registry
    from api.store.db import session_factory
    from api.store.schema import Enterprise
    from pipelines.settings import get_settings

    settings = get_settings()
    with session_factory(settings)() as session:
        if args.import_file:
            path = Path(args.import_file)
            counts = import_registry(session, content=path.read_bytes(), source=str(path),
                                     actor=Actor(actor_id=args.actor, role="engineer"))
            _print_json(counts)
            return 0
        enterprises = session.scalars(select(Enterprise).order_by(Enterprise.enterprise_id)).all()
        key_status = _published_key_emitters(settings.serving)
        items = []
        for enterprise in enterprises:
            item = {c.name: getattr(enterprise, c.name) for c in Enterprise.__table__.columns}
            item["is_key_emitter"] = key_status.get(enterprise.enterprise_id)
            if args.key_emitters and not item["is_key_emitter"]:
                continue
            items.append(item)
    _print_json({"total": len(items), "items": items})
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from api.store.db import create_db_engine, migrate
    from pipelines.settings import get_settings

    engine = create_db_engine(get_settings().database)
    migrate(engine, revision=args.revision)
    _print_json({"database": engine.url.render_as_string(hide_password=True), "revision": args.revision})
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from api.store import audit
    from api.store.db import session_factory
    from pipelines.settings import get_settings

    with session_factory(get_settings())() as session:
        count, problems = audit.verify(session)
    _print_json({"entries": count, "intact": not problems,
                 "problems": [{"seq": p.seq, "code": p.code, "detail": p.detail} for p in problems]})
    return 0 if not problems else 1


def _published_key_emitters(snapshot: Path) -> dict[str, bool]:
    """Latest-year key-emitter status from the published snapshot (empty before the first run)."""
    if not snapshot.exists():
        return {}
    import duckdb

    with duckdb.connect(str(snapshot), read_only=True) as conn:
        rows = conn.execute(
            "select enterprise_id, arg_max(is_key_emitter, period) from out_emissions__yearly_enterprise_balances "
            "group by enterprise_id").fetchall()
    return {r[0]: bool(r[1]) for r in rows}


def cmd_factors(args: argparse.Namespace) -> int:
    from accounting.factors import load_library

    library = load_library()
    edition = args.edition or library.latest()
    table = library.factors(edition)
    if args.list:
        columns = ["factor_id", "parameter", "subject", "year", "value", "unit", "document", "locator"]
        _print_json(table[columns].astype(object).where(table[columns].notna(), None).to_dict(orient="records"))
        return 0
    _print_json({"editions": library.editions(), "latest": library.latest(), "edition": edition,
                 "factor_count": len(table), "gwp_sets": library.gwp_sets(),
                 "files": sorted(set(table["source_file"])), "hashes_verified": True})
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from pipelines.settings import get_settings

    settings = get_settings()
    _dagster_home(settings)
    python = sys.executable
    commands = [[python, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", args.host,
                 "--port", str(args.api_port)]]
    if not args.no_dagster:
        commands.append([python, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", args.host,
                         "-p", str(args.dagster_port)])
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (a background job)
    processes = [subprocess.Popen(c, start_new_session=True, preexec_fn=_default_signals)  # noqa: S603, PLW1509
                 for c in commands]
    print(f"API:        http://{args.host}:{args.api_port}  (OpenAPI at /docs)", flush=True)
    if not args.no_dagster:
        print(f"Dagster UI: http://{args.host}:{args.dagster_port}", flush=True)
    print("Ctrl-C stops both.", flush=True)
    interrupted = False
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        _stop(processes)
    failed = [" ".join(c[2:4]) for c, p in zip(commands, processes, strict=True) if p.returncode]
    if failed and not interrupted:
        print(f"stopped: {', '.join(failed)} exited with an error (see above)", file=sys.stderr)
        return 1
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _default_signals() -> None:
    """In a child before exec: default SIGINT and SIGTERM, so that stopping it works however we were started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carbon", description="Carbon and emissions accounting for the zone.")
    commands = parser.add_subparsers(dest="command", required=True)

    calculate = commands.add_parser("calculate", help="compute emissions of activity files; store nothing")
    calculate.add_argument("files", nargs="+", help="activity files (CSV, XLSX or JSON, template version 1)")
    calculate.add_argument("--by", choices=GRAINS, default="month", help="one result per month or per year")
    calculate.add_argument("--grid-region", choices=GRID_REGIONS, default="national")
    calculate.add_argument("--ruleset", choices=RULESETS, default="cn")
    calculate.add_argument("--gwp-set", default="AR5")
    calculate.add_argument("--factor-edition", default=None, help="pin a factor edition (default: latest)")
    calculate.add_argument("--max-factor-lag", type=int, default=3,
                           help="years a yearly factor may lag the activity year")
    calculate.set_defaults(handler=cmd_calculate)

    ingest = commands.add_parser("ingest", help="validate and submit activity files")
    ingest.add_argument("files", nargs="+")
    ingest.add_argument("--actor", default="cli", help="who submits (recorded with the submission)")
    ingest.add_argument("--role", default="engineer", choices=("enterprise", "officer", "engineer"))
    ingest.add_argument("--enterprise", action="append", help="for --role enterprise: an enterprise id it acts for")
    ingest.set_defaults(handler=cmd_ingest)

    load = commands.add_parser("load-sample", help="import the sample registry and submit the sample months")
    load.set_defaults(handler=cmd_load_sample)

    run = commands.add_parser("run", help="materialize every asset over the months with data")
    run.set_defaults(handler=cmd_run)

    serve = commands.add_parser("serve", help="serve the API and the Dagster UI until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--api-port", type=int, default=8000)
    serve.add_argument("--dagster-port", type=int, default=3000)
    serve.add_argument("--no-dagster", action="store_true", help="serve the API only")
    serve.set_defaults(handler=cmd_serve)

    registry = commands.add_parser("registry", help="print the enterprise registry, or import a registry file")
    registry.add_argument("--key-emitters", action="store_true", help="only key emitters")
    registry.add_argument("--import", dest="import_file", metavar="FILE", help="add and update enterprises from FILE")
    registry.add_argument("--actor", default="cli")
    registry.set_defaults(handler=cmd_registry)

    db = commands.add_parser("db", help="migrate the operational database")
    db.add_argument("action", choices=("upgrade",))
    db.add_argument("--revision", default="head")
    db.set_defaults(handler=cmd_db)

    audit = commands.add_parser("audit", help="verify the audit chain")
    audit.add_argument("action", choices=("verify",))
    audit.set_defaults(handler=cmd_audit)

    factors = commands.add_parser("factors", help="verify and describe the factor library")
    factors.add_argument("--edition", default=None)
    factors.add_argument("--list", action="store_true", help="list every factor of the edition")
    factors.set_defaults(handler=cmd_factors)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except AccountingError as err:
        _print_json(_error_report(err))
        return EXIT_INVALID
    except BrokenPipeError:  # output piped into a reader that stopped early (| head)
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

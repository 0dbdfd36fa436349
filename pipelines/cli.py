"""The ``carbon`` command line: calculate, ingest, run, serve, registry, factors, users.

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
from datetime import UTC, date, datetime
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
        if args.action == "show":
            from api.services.review_views import audit_log

            _print_json(audit_log(session, actor=_actor(args), target=args.target, actor_id=args.actor_id,
                                  action=args.entry_action, limit=args.limit, offset=args.offset))
            return 0
        count, problems = audit.verify(session)
    _print_json({"entries": count, "intact": not problems,
                 "problems": [{"seq": p.seq, "code": p.code, "detail": p.detail} for p in problems]})
    return 0 if not problems else 1


def cmd_review(args: argparse.Namespace) -> int:
    """``carbon review status|act|queue``: the same services as the API; a refusal prints its code and exits 2."""
    from api.services import review, review_views
    from api.store.db import session_factory
    from api.store.review import QueueFilter
    from pipelines.settings import get_settings

    actor = _actor(args)
    with session_factory(get_settings())() as session:
        try:
            if args.review_command == "act":
                review.act(session, actor=actor, enterprise_id=args.enterprise_id, period=args.period,
                           action=args.action, reason=args.reason, expected_version=args.expected_version,
                           row_number=args.row_number, recommendation=args.recommendation)
            if args.review_command == "queue":
                where = QueueFilter(statuses=tuple(args.status or ()), sector_code=args.sector_code,
                                    category=args.category, held=args.held, period_prefix=args.period,
                                    enterprise_id=args.enterprise_id)
                _print_json(review_views.queue(session, actor=actor, where=where, limit=args.limit,
                                               offset=args.offset))
                return 0
            _print_json(review_views.period_view(session, actor=actor, enterprise_id=args.enterprise_id,
                                                 period=args.period))
        except (review.StaleStateError, review_views.PeriodNotFoundError, review.PeriodStateError) as err:
            _print_json({"code": err.code, "detail": str(err.args[0]),
                         **({"current": err.current} if hasattr(err, "current") else {})})
            return EXIT_INVALID
    return 0


def cmd_substitute(args: argparse.Namespace) -> int:
    """``carbon substitute ENTERPRISE PERIOD --reason R --actor A``: a conservative value for a missing month."""
    from api.services.review import StaleStateError
    from api.services.substitution import substitute
    from api.store.db import session_factory
    from pipelines.settings import get_settings

    settings = get_settings()
    with session_factory(settings)() as session:
        try:
            record = substitute(session, settings=settings, actor=_actor(args), enterprise_id=args.enterprise_id,
                                period=args.period, reason=args.reason, rule=args.rule,
                                expected_version=args.expected_version)
        except StaleStateError as err:
            _print_json({"code": err.code, "detail": str(err), "current": err.current})
            return EXIT_INVALID
    _print_json({**record, "next": "run `carbon run` to publish the substituted month"})
    return 0


def cmd_restate(args: argparse.Namespace) -> int:
    """``carbon restate --factor-edition NEW --dry-run``: the restatement diff; without --dry-run, apply it."""
    from api.services.restatement import apply_restatement, restatement_report
    from api.services.review import StaleStateError
    from api.store.db import session_factory
    from pipelines.settings import get_settings

    settings = get_settings()
    if not args.dry_run and not (args.reason and args.actor):
        _print_json({"code": "reason_required", "detail": "applying a restatement needs --reason and --actor"
                     " (an officer); use --dry-run to only print the diff"})
        return EXIT_INVALID
    with session_factory(settings)() as session:
        if args.dry_run:
            _print_json(restatement_report(session, settings=settings, factor_edition=args.factor_edition))
            return 0
        try:
            _print_json(apply_restatement(session, settings=settings, actor=_actor(args), reason=args.reason,
                                          factor_edition=args.factor_edition))
        except StaleStateError as err:
            _print_json({"code": err.code, "detail": str(err), "current": err.current})
            return EXIT_INVALID
    return 0


DEMO_ROLES = ("enterprise", "verifier", "officer", "trader", "engineer", "admin")
DEMO_ACCOUNT = "TR-DEMO-1"
SHOWN_ONCE = "This API key is shown once: it is stored only as a hash and cannot be shown again. Keep it now."


class _RefusedError(Exception):
    """A ``carbon users`` refusal found before any service is called (a password prompt, missing options)."""


def cli_actor(role: str, *, enterprise_ids: frozenset[str] = frozenset(),
              account_ids: frozenset[str] = frozenset()) -> Any:
    """Who the command line acts as, and the audit log records: the operating-system user, as ``cli:<name>``."""
    import getpass

    from accounting.review import Actor

    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        name = f"uid{os.getuid()}"
    return Actor(actor_id=f"cli:{name}", role=role, enterprise_ids=enterprise_ids, account_ids=account_ids)


def _read_password(args: argparse.Namespace, *, purpose: str) -> str:
    """A password from the first line of stdin (``--password-stdin``) or typed twice at a prompt; never argv."""
    import getpass

    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise _RefusedError("--password-stdin: stdin gave no password")
        return password
    if not sys.stdin.isatty():
        raise _RefusedError("no terminal to ask for the password: pass it with --password-stdin"
                       + (" (or create the user with --no-password)" if purpose == "add" else ""))
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        raise _RefusedError("the two passwords differ; nothing changed")
    return first


def _demo_enterprise(session: Any, settings: Any) -> str:
    """The enterprise of the demo enterprise user: the first of the sample registry file, else of the database."""
    import csv

    from sqlalchemy import select

    from api.store.schema import Enterprise

    try:
        with settings.registry.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("enterprise_id"):
                    return str(row["enterprise_id"]).strip()
    except OSError:
        pass
    first = session.scalars(select(Enterprise.enterprise_id).order_by(Enterprise.enterprise_id).limit(1)).first()
    if first is None:
        raise _RefusedError("no enterprise to bind the demo enterprise user to: run `carbon load-sample` first")
    return str(first)


def _demo_password(length: int) -> str:
    import secrets
    import string

    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _users_demo(session: Any, settings: Any, by: Any) -> int:
    """One demo user per role with a fresh random password (an existing one gets a new password)."""
    from api.services import users

    enterprise_id = _demo_enterprise(session, settings)
    rows = []
    for role in DEMO_ROLES:
        user_id = f"demo-{role}"
        enterprises = [enterprise_id] if role == "enterprise" else []
        accounts = [DEMO_ACCOUNT] if role == "trader" else []
        password = _demo_password(max(16, settings.password_min_length))
        try:
            existing = users.get_user(session, user_id)
        except users.UserError:
            existing = None
        if existing is None:
            users.create_user(session, settings, by=by, user_id=user_id, role=role, password=password,
                              enterprise_ids=enterprises, account_ids=accounts)
        elif existing["role"] != role:
            raise _RefusedError(f"user '{user_id}' exists with role {existing['role']}, not {role}; "
                                "rename or remove it first")
        else:
            users.update_user(session, settings, by=by, user_id=user_id, password=password, disabled=False,
                              enterprise_ids=enterprises, account_ids=accounts)
        binding = (f"enterprise {enterprise_id}" if enterprises else f"account {DEMO_ACCOUNT}" if accounts else "-")
        rows.append((user_id, role, password, binding))
    widths = [max(len(r[i]) for r in [("user", "role", "password", "bound to"), *rows]) for i in range(4)]
    print("Demo users (new random passwords on every run; for trying the service, never for production):")
    for row in [("user", "role", "password", "bound to"), *rows]:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print("Get a token:  curl -s -d username=demo-officer -d password=PASSWORD "
          "http://127.0.0.1:8000/v1/auth/token")
    print(f'Then:         curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/v1/auth/me'
          f"   (the access_token lives {settings.access_token_minutes} min)")
    return 0


def _users_change(session: Any, settings: Any, by: Any, args: argparse.Namespace) -> Any:
    """The users subcommands that change or read one user: what they print."""
    from api.services import users

    command = args.users_command
    if command == "add":
        password = None if args.no_password else _read_password(args, purpose="add")
        return users.create_user(session, settings, by=by, user_id=args.user_id, role=args.role, password=password,
                                 enterprise_ids=args.enterprise or (), account_ids=args.account or ())
    if command == "list":
        total, items = users.list_users(session)
        return {"total": total, "items": items}
    if command == "show":
        return {**users.get_user(session, args.user_id), "keys": users.list_keys(session, user_id=args.user_id)}
    if command == "passwd":
        users.get_user(session, args.user_id)  # an unknown user is named before the password is asked
        return users.update_user(session, settings, by=by, user_id=args.user_id,
                                 password=_read_password(args, purpose="passwd"))
    if command in ("disable", "enable"):
        return users.update_user(session, settings, by=by, user_id=args.user_id, disabled=command == "disable")
    if args.enterprise is None and args.account is None:
        raise _RefusedError("bind: give --enterprise and/or --account (each repeatable; replaces the binding)")
    return users.update_user(session, settings, by=by, user_id=args.user_id, enterprise_ids=args.enterprise,
                             account_ids=args.account)


def _users_key(session: Any, settings: Any, by: Any, args: argparse.Namespace) -> Any:
    """``carbon users key issue|list|revoke``: what they print (an issued key in plain text, this once)."""
    from api.services import users

    if args.key_command == "issue":
        description, plaintext = users.issue_key(session, settings, by=by, user_id=args.user_id, name=args.name,
                                                 days=args.days)
        return {**description, "api_key": plaintext}
    if args.key_command == "list":
        users.get_user(session, args.user_id)
        return {"items": users.list_keys(session, user_id=args.user_id)}
    return users.revoke_key(session, by=by, key_id=args.key_id)


def cmd_users(args: argparse.Namespace) -> int:
    """``carbon users ...``: users and API keys through api/services/users.py; a refusal exits 2 on stderr.

    Each subcommand is one transaction of the service (``demo`` one per user), audited as ``cli:<os user>``.
    """
    from api.services.users import UserError
    from api.store.db import session_factory
    from pipelines.settings import get_settings

    settings = get_settings()
    by = cli_actor("admin")
    try:
        with session_factory(settings)() as session:
            if args.users_command == "demo":
                return _users_demo(session, settings, by)
            handler = _users_key if args.users_command == "key" else _users_change
            _print_json(handler(session, settings, by, args))
            if args.key_command == "issue":
                sys.stdout.flush()
                print(SHOWN_ONCE, file=sys.stderr, flush=True)
    except (UserError, _RefusedError) as err:
        code = f" ({err.code})" if isinstance(err, UserError) else ""
        print(f"carbon users {args.users_command}: {err}{code}", file=sys.stderr)
        return EXIT_INVALID
    return 0


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

    library = load_library(Path(args.library) if args.library else None)
    edition = args.edition or library.latest()
    if args.action == "check":
        from api.services.quality import factor_check

        report = factor_check(library, edition=edition)
        _print_json(report)
        return 0 if report["passed"] else 1
    table = library.factors(edition)
    if args.list:
        columns = ["factor_id", "parameter", "subject", "year", "value", "unit", "document", "locator"]
        _print_json(table[columns].astype(object).where(table[columns].notna(), None).to_dict(orient="records"))
        return 0
    _print_json({"editions": library.editions(), "latest": library.latest(), "edition": edition,
                 "factor_count": len(table), "gwp_sets": library.gwp_sets(),
                 "files": sorted(set(table["source_file"])), "hashes_verified": True})
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from accounting.review import Actor
    from api.services.quality import completeness
    from api.store.db import session_factory
    from pipelines.settings import get_settings

    settings = get_settings()
    as_of = args.as_of or datetime.now(UTC).date()
    with session_factory(settings)() as session:
        report = completeness(session, settings=settings, actor=Actor(actor_id="cli", role="engineer"), as_of=as_of,
                              published_key_emitters=_published_key_emitters(settings.serving))
    _print_json(report)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from pipelines.settings import get_settings

    settings = get_settings()
    _dagster_home(settings)
    python = sys.executable
    commands = [[python, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", args.host,
                 "--port", str(args.api_port), "--workers", str(args.workers),
                 "--no-access-log"]]  # the API logs each request as JSON
    if not args.no_dagster:
        commands.append([python, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", args.host,
                         "-p", str(args.dagster_port)])
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (a background job)
    processes = [subprocess.Popen(c, start_new_session=True, preexec_fn=_default_signals)  # noqa: S603, PLW1509
                 for c in commands]
    print(f"Pages:      http://{args.host}:{args.api_port}/ui/  (sign in with a user of `carbon users`)", flush=True)
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
    serve.add_argument("--workers", type=int, choices=range(1, 65), default=1, metavar="N",
                       help="API worker processes (default 1; more than one wants PostgreSQL, whose writers do "
                            "not queue for one lock)")
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

    audit = commands.add_parser("audit", help="verify the audit chain, or show its entries (newest first)")
    audit.add_argument("action", choices=("verify", "show"))
    audit.add_argument("--target", help="show: entries whose target starts with this (period:ID:2024, submission:...)")
    audit.add_argument("--actor-id", help="show: entries of this actor")
    audit.add_argument("--action", dest="entry_action", help="show: entries of this action (review.approve...)")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--offset", type=int, default=0)
    audit.add_argument("--actor", default="cli")
    audit.add_argument("--role", default="engineer", choices=("officer", "engineer"))
    audit.set_defaults(handler=cmd_audit, enterprise=None)

    review = commands.add_parser("review", help="review states, actions and the review queue")
    review_commands = review.add_subparsers(dest="review_command", required=True)
    review_status = review_commands.add_parser("status", help="state and history of an enterprise-period")
    review_act = review_commands.add_parser("act", help="take a review action on an enterprise-period")
    review_queue = review_commands.add_parser("queue", help="enterprise-periods by status, sector, checks")
    for command in (review_status, review_act):
        command.add_argument("enterprise_id")
        command.add_argument("period", help="YYYY-MM or YYYY")
    review_act.add_argument("action", choices=("start_review", "comment", "recommend", "approve", "reject", "lock",
                                               "reopen"))
    review_act.add_argument("--reason", help="the comment or reason (comment, recommend, reject, reopen)")
    review_act.add_argument("--expected-version", type=int, help="refuse if the period changed since this version")
    review_act.add_argument("--row-number", type=int, help="the row of the submitted file a comment is about")
    review_act.add_argument("--recommendation", choices=("approve", "reject"), help="with action recommend")
    review_queue.add_argument("--status", action="append", help="repeatable")
    review_queue.add_argument("--sector-code")
    review_queue.add_argument("--category")
    review_queue.add_argument("--held", action=argparse.BooleanOptionalAction, default=None,
                              help="only periods held back (--held) or not held (--no-held) by checks")
    review_queue.add_argument("--period", help="a year (2024) or a month (2024-03)")
    review_queue.add_argument("--enterprise-id")
    review_queue.add_argument("--limit", type=int, default=100)
    review_queue.add_argument("--offset", type=int, default=0)
    for command in (review_status, review_act, review_queue):
        acting = command is review_act  # an action names who takes it; reads default to the CLI's engineer
        command.add_argument("--actor", required=acting, default=None if acting else "cli",
                             help="who acts (recorded in the audit log)")
        command.add_argument("--role", required=acting, default=None if acting else "engineer",
                             choices=("enterprise", "verifier", "officer", "engineer"))
        command.add_argument("--enterprise", action="append", help="for --role enterprise: an enterprise it acts for")
        command.set_defaults(handler=cmd_review)

    factors = commands.add_parser("factors", help="verify and describe the factor library")
    factors.add_argument("--edition", default=None)
    factors.add_argument("--list", action="store_true", help="list every factor of the edition")
    factors.add_argument("action", nargs="?", choices=("check",),
                         help="check: compare the edition with the previous one (likely unit errors) and China with "
                              "IPCC for oil and gas; exits 1 when a blocking problem is found")
    factors.add_argument("--library", default=None, help="a factor library folder (default: the packaged one)")
    factors.set_defaults(handler=cmd_factors)

    quality = commands.add_parser("quality", help="data-quality reports")
    quality.add_argument("report", choices=("completeness",),
                         help="completeness: key emitters missing a submission for a month past its deadline")
    quality.add_argument("--as-of", type=date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)")
    quality.set_defaults(handler=cmd_quality)

    substitute = commands.add_parser("substitute", help="put a conservative value in place of a missing month")
    substitute.add_argument("enterprise_id")
    substitute.add_argument("period", help="the missing month, YYYY-MM")
    substitute.add_argument("--reason", required=True)
    substitute.add_argument("--actor", required=True, help="the officer who substitutes")
    substitute.add_argument("--role", default="officer", choices=("officer", "verifier", "engineer", "enterprise"))
    substitute.add_argument("--rule", default=None, help="default: CARBON_SUBSTITUTION_RULE (max_of_last_12_months)")
    substitute.add_argument("--expected-version", type=int, help="refuse if the month changed since this version")
    substitute.set_defaults(handler=cmd_substitute, enterprise=None)

    restate = commands.add_parser("restate", help="which periods move under a new factor edition or corrected data")
    restate.add_argument("--factor-edition", default=None, help="the new edition (default: configured, else latest)")
    restate.add_argument("--dry-run", action="store_true", help="print the diff only; nothing is written")
    restate.add_argument("--reason", help="without --dry-run: why the moved periods are reopened")
    restate.add_argument("--actor", help="without --dry-run: the officer who applies it")
    restate.add_argument("--role", default="officer", choices=("officer", "verifier", "engineer"))
    restate.set_defaults(handler=cmd_restate, enterprise=None)

    users = commands.add_parser("users", help="users, passwords and API keys (audited as cli:<os user>)")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    add = user_commands.add_parser("add", help="add a user; the password is typed twice or read from stdin",
                                   allow_abbrev=False)  # --password is not --password-stdin
    add.add_argument("user_id")
    add.add_argument("--role", required=True, help="enterprise, verifier, officer, trader, engineer or admin")
    add.add_argument("--enterprise", action="append", help="an enterprise id the user acts for (repeatable)")
    add.add_argument("--account", action="append", help="a trading account id of the user (repeatable)")
    password = add.add_mutually_exclusive_group()
    password.add_argument("--password-stdin", action="store_true", help="read the password from the first line "
                          "of stdin")
    password.add_argument("--no-password", action="store_true", help="a machine user: signs in with API keys only")
    user_commands.add_parser("list", help="every user")
    for name, text in (("show", "a user and its API keys"), ("disable", "refuse the user's sign-ins, tokens and keys"),
                       ("enable", "let a disabled user sign in again")):
        user_commands.add_parser(name, help=text).add_argument("user_id")
    passwd = user_commands.add_parser("passwd", help="set a new password (ends the user's sessions)",
                                      allow_abbrev=False)
    passwd.add_argument("user_id")
    passwd.add_argument("--password-stdin", action="store_true", help="read it from the first line of stdin")
    bind = user_commands.add_parser("bind", help="replace the enterprises or trading accounts a user is bound to")
    bind.add_argument("user_id")
    bind.add_argument("--enterprise", action="append", help="repeatable")
    bind.add_argument("--account", action="append", help="repeatable")
    key = user_commands.add_parser("key", help="issue, list and revoke API keys")
    key_commands = key.add_subparsers(dest="key_command", required=True)
    issue = key_commands.add_parser("issue", help="a new API key, printed once")
    issue.add_argument("user_id")
    issue.add_argument("--name", required=True, help="what the key is for")
    issue.add_argument("--days", type=int, default=None, help="lifetime (default and maximum: CARBON_API_KEY_DAYS)")
    key_commands.add_parser("list", help="a user's keys (never the keys themselves)").add_argument("user_id")
    key_commands.add_parser("revoke", help="revoke a key at once").add_argument("key_id")
    user_commands.add_parser("demo", help="one demo user per role with fresh random passwords, printed")
    users.set_defaults(handler=cmd_users, key_command=None)

    from pipelines import cli_allocation, cli_compliance, cli_exchange, cli_ledger  # they use this module's helpers

    for register in (cli_ledger.register, cli_allocation.register, cli_compliance.register, cli_exchange.register):
        register(commands)
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

"""Fault-injection harness: live uvicorn processes, acknowledged writes, and what must survive a crash.

Why a registry of write scenarios: every fault test asks the same two questions of every kind of write
the service acknowledges: after the fault, is each write that got a 2xx answer stored, and is nothing
half-written? A scenario is a pair of functions: ``write`` issues one write over HTTP and returns what
was acknowledged (``None`` when the answer was not a 2xx), ``check`` looks in the database for it and
names what is missing. The ledger and exchange add theirs with ``register(Scenario(...))``, and any
table-wide rule ("every journal entry balances") with ``register_invariant(...)``; the fault tests then
run them under SIGKILL, a PostgreSQL restart and two concurrent workers without further changes.

Everything here is bounded: requests time out, servers must answer within ``STARTUP_SECONDS``, and
the processes started are stopped by their own id.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from api.store import audit
from api.store.schema import (
    AuditEntry,
    ExchangeOrder,
    JournalEntryRow,
    PeriodReview,
    PostingRow,
    Submission,
    SubmissionPeriod,
)
from tests.auth_support import headers_for
from tests.conftest import ROOT, SAMPLE_DIR

STARTUP_SECONDS = 30
REQUEST_SECONDS = 10

OFFICER_ID = "officer-li"
ENGINEER_ID = "engineer-chen"  # submits the scenarios' files: the submitter id recorded is this user id
OFFICER = headers_for(OFFICER_ID)
ENGINEER = headers_for(ENGINEER_ID)

CHP_PLANT = "914101022286058318"  # coal-fired CHP of the sample registry
SUBMISSION_HEADER = "enterprise_id,period,activity,item,quantity,unit\n"


# --- HTTP ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Answer:
    """A response: status, parsed JSON body (or None) and the media type."""

    status: int
    body: Any
    media_type: str


def request(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
            json_body: Any = None, timeout: float = REQUEST_SECONDS) -> Answer:
    """One HTTP request; connection errors (a killed server) raise OSError, HTTP errors are returned."""
    all_headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers["Content-Type"] = "application/json"
    prepared = urllib.request.Request(url, data=body, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(prepared, timeout=timeout) as response:
            return Answer(response.status, _json(response.read()), response.headers.get_content_type())
    except urllib.error.HTTPError as err:
        return Answer(err.code, _json(err.read()), err.headers.get_content_type())


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one ``file`` part, and its content type."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def submit(base_url: str, content: bytes, *, headers: dict[str, str] = ENGINEER,
           timeout: float = REQUEST_SECONDS) -> Answer:
    body, content_type = multipart("lines.csv", content)
    return request("POST", f"{base_url}/v1/submissions", body=body, timeout=timeout,
                   headers={**headers, "Content-Type": content_type})


def act(base_url: str, enterprise_id: str, period: str, action: str, *, headers: dict[str, str] = OFFICER,
        timeout: float = REQUEST_SECONDS, **fields: Any) -> Answer:
    return request("POST", f"{base_url}/v1/review/periods/{enterprise_id}/{period}/actions", headers=headers,
                   json_body={"action": action, **fields}, timeout=timeout)


# --- live servers ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(data_dir: Path, database_url: str) -> dict[str, str]:
    """The environment of a server: no inherited CARBON_* variable, this zone's folder and database."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CARBON_")}
    env.update({"CARBON_DATA_DIR": str(data_dir), "CARBON_SAMPLE_DIR": str(SAMPLE_DIR),
                "CARBON_DATABASE_URL": database_url, "DAGSTER_HOME": str(data_dir / "dagster"),
                "CARBON_RATE_LIMIT_PER_MINUTE": "0"})  # load on purpose: no per-client rate limit
    return env


@dataclass
class LiveServer:
    """``uvicorn api.main:create_app --factory`` on a free loopback port, in a session of its own."""

    data_dir: Path
    database_url: str
    name: str = "uvicorn"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: Worker processes behind the one port (``--workers``): more than one shares no memory, only the database.
    workers: int = 1

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def start(self) -> str:
        """Start the server and return its base URL once /healthz answers."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1",
                 "--port", str(self.port), *(["--workers", str(self.workers)] if self.workers > 1 else [])],
                cwd=ROOT, env=server_env(self.data_dir, self.database_url),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited on start:\n{self.log()}")
            try:
                if request("GET", f"{self.base_url}/healthz", timeout=2).status == 200:
                    return self.base_url
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {STARTUP_SECONDS}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, open transactions are cut off."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=STARTUP_SECONDS)

    def stop(self, *, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL when it outlives ``timeout``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.is_file() else ""


# --- write scenarios ----------------------------------------------------------------------------------

Acknowledged = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a write goes: a server, and the periods the test made ``calculated`` for review actions."""

    base_url: str
    review_periods: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """One kind of acknowledged write: issue the ``n``-th over HTTP; find it in the database afterwards.

    ``write(target, n)`` returns what the 2xx answer acknowledged, or None for any other answer (a
    refusal is not a write); a connection error propagates. ``check(session, ack)`` returns a problem
    (the write is missing or not as acknowledged) or None.
    """

    name: str
    write: Callable[[Target, int], Acknowledged | None]
    check: Callable[[Session, Acknowledged], str | None]


SCENARIOS: dict[str, Scenario] = {}
Invariant = Callable[[Session], list[str]]
INVARIANTS: list[Invariant] = []


def register(scenario: Scenario) -> Scenario:
    SCENARIOS[scenario.name] = scenario
    return scenario


def register_invariant(invariant: Invariant) -> Invariant:
    INVARIANTS.append(invariant)
    return invariant


_RUN = uuid.uuid4().hex[:8]  # keeps the bytes of this process's submissions apart from any earlier run's


def submission_content(n: int, *, enterprise_id: str = CHP_PLANT, salt: str = "") -> bytes:
    """A small valid file, different for every ``n``: one coal line of a 2023 month (never a calculated one)."""
    month = f"2023-{n % 12 + 1:02d}"
    digits = sum(ord(c) for c in _RUN + salt) % 1000
    return (SUBMISSION_HEADER + f"{enterprise_id},{month},fuel_combustion,bituminous_coal,"
            f"{1000 + n}.{digits:03d}1,t\n").encode()


def write_submission(target: Target, n: int) -> Acknowledged | None:
    answer = submit(target.base_url, submission_content(n))
    if answer.status not in (200, 201):
        return None
    return {"submission_id": answer.body["submission_id"], "content_sha256": answer.body["content_sha256"],
            "periods": answer.body["periods"]}


def check_submission(session: Session, ack: Acknowledged) -> str | None:
    row = session.get(Submission, ack["submission_id"])
    if row is None:
        return f"acknowledged submission {ack['submission_id']} is missing"
    if row.content_sha256 != ack["content_sha256"] or sorted(row.periods) != sorted(ack["periods"]):
        return f"submission {ack['submission_id']} differs from its receipt"
    return None


NEXT_ACTION = {"calculated": "start_review", "in_review": "approve", "verified": "lock"}


def write_review_action(target: Target, n: int) -> Acknowledged | None:
    """The next action of one calculated period (start_review, approve, lock, then comments), with a unique reason."""
    enterprise_id, period = target.review_periods[n % len(target.review_periods)]
    seen = request("GET", f"{target.base_url}/v1/review/periods/{enterprise_id}/{period}", headers=OFFICER)
    if seen.status != 200:
        return None
    action = NEXT_ACTION.get(seen.body["status"], "comment")
    if action == "approve" and seen.body.get("held"):
        action = "comment"
    reason = f"fault-{_RUN}-{n}"
    answer = act(target.base_url, enterprise_id, period, action, reason=reason, expected_version=seen.body["version"])
    if answer.status != 200:
        return None
    return {"enterprise_id": enterprise_id, "period": period, "action": action, "reason": reason,
            "status": answer.body["status"], "version": answer.body["version"]}


def check_review_action(session: Session, ack: Acknowledged) -> str | None:
    target = f"period:{ack['enterprise_id']}:{ack['period']}"
    entries = session.scalars(select(AuditEntry).where(AuditEntry.target == target,
                                                       AuditEntry.action == f"review.{ack['action']}")).all()
    if not any(e.detail.get("reason") == ack["reason"] for e in entries):
        return f"acknowledged {ack['action']} on {target} ({ack['reason']}) has no audit entry"
    row = session.get(PeriodReview, (ack["enterprise_id"], ack["period"]))
    if row is None or row.version < ack["version"]:
        return f"{target} is at version {row and row.version}, below the acknowledged {ack['version']}"
    if row.version == ack["version"] and row.status != ack["status"]:
        return f"{target} is {row.status} at the acknowledged version {ack['version']}, not {ack['status']}"
    return None


register(Scenario("submission", write_submission, check_submission))
register(Scenario("review_action", write_review_action, check_review_action))


# --- what nothing half-written means ----------------------------------------------------------------

@register_invariant
def submissions_are_whole(session: Session) -> list[str]:
    """Every submission has its periods and its audit entry; every acceptance entry has its submission."""
    ids = set(session.scalars(select(Submission.submission_id)).all())
    with_periods = set(session.scalars(select(SubmissionPeriod.submission_id).distinct()).all())
    audited = {t.removeprefix("submission:") for t in session.scalars(
        select(AuditEntry.target).where(AuditEntry.action == "submission.accept")).all()}
    return ([f"submission {i} has no submission_periods" for i in sorted(ids - with_periods)]
            + [f"submission {i} has no audit entry" for i in sorted(ids - audited)]
            + [f"audit entry for submission {i} without its row" for i in sorted(audited - ids)]
            + [f"submission_periods of a missing submission {i}" for i in sorted(with_periods - ids)])


@register_invariant
def audit_chain_verifies(session: Session) -> list[str]:
    count, problems = audit.verify(session)
    return [f"audit chain: {p}" for p in problems] + ([] if count else ["audit log is empty"])


@register_invariant
def periods_name_stored_submissions(session: Session) -> list[str]:
    missing = session.scalars(select(PeriodReview.submission_id).where(
        PeriodReview.submission_id.is_not(None),
        PeriodReview.submission_id.not_in(select(Submission.submission_id)))).all()
    return [f"a period names missing submission {i}" for i in missing]


def problems(session: Session, acknowledged: list[tuple[str, Acknowledged]]) -> list[str]:
    """What is wrong after a fault: acknowledged writes missing, and invariants broken."""
    found = [SCENARIOS[name].check(session, ack) for name, ack in acknowledged]
    return [p for p in found if p] + list(itertools.chain.from_iterable(i(session) for i in INVARIANTS))


def row_counts(session: Session, *tables: Any) -> dict[str, int]:
    return {t.__tablename__: int(session.scalar(select(func.count()).select_from(t)) or 0) for t in tables}


# --- the ledger: transfers between two trader accounts --------------------------------------------------

LEDGER_ACCOUNTS = ("TR-QIAN", "TR-ZHOU")
LEDGER_HOLDERS = {"TR-QIAN": headers_for("trader-qian"), "TR-ZHOU": headers_for("trader-zhou")}
LEDGER_VINTAGE = "CEA-2025"


def prepare_ledger(database_url: str, *, units: int = 1_000_000) -> None:
    """The two traders' accounts with units, trusting each other at once (set up directly: the API's delay is
    a day)."""
    from accounting.ledger import ISSUANCE, transfer_entry
    from accounting.review import Actor
    from api.services import transfers
    from api.services.ledger import ensure_system_accounts, new_entry_id, open_account, post, system_account_id
    from api.store.db import create_db_engine, make_session_factory

    officer = Actor(actor_id=OFFICER_ID, role="officer")
    engine = create_db_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            ensure_system_accounts(session)
            for account_id in LEDGER_ACCOUNTS:
                open_account(session, actor=officer, account_id=account_id, kind="trader", owner_id=account_id,
                             name=account_id, commit=False)
                post(session, entry=transfer_entry(entry_id=new_entry_id(), kind="issue", to_account=account_id,
                                                   from_account=system_account_id(ISSUANCE), instrument=LEDGER_VINTAGE,
                                                   quantity=units), actor=officer)
            for source, recipient in (LEDGER_ACCOUNTS, LEDGER_ACCOUNTS[::-1]):
                holder = Actor(actor_id=source, role="trader", account_ids=frozenset({source}))
                transfers.add_counterparty(session, actor=holder, account_id=source, counterparty_id=recipient,
                                           delay=timedelta(0))
            session.commit()
    finally:
        engine.dispose()


def write_transfer(target: Target, n: int) -> Acknowledged | None:
    """A trader's transfer of a few units to the other trader (directions alternate), with its own key."""
    source, recipient = LEDGER_ACCOUNTS if n % 2 == 0 else LEDGER_ACCOUNTS[::-1]
    quantity, key = 1 + n % 5, f"fault-{_RUN}-{n}"
    answer = request("POST", f"{target.base_url}/v1/ledger/transfers",
                     headers={**LEDGER_HOLDERS[source], "Idempotency-Key": key},
                     json_body={"from_account": source, "to_account": recipient, "instrument": LEDGER_VINTAGE,
                                "quantity": quantity, "memo": key})
    if answer.status != 201:
        return None
    return {"entry_id": answer.body["entry"]["entry_id"], "from": source, "to": recipient, "quantity": quantity}


def check_transfer(session: Session, ack: Acknowledged) -> str | None:
    postings = session.scalars(select(PostingRow).where(PostingRow.entry_id == ack["entry_id"])).all()
    if not postings:
        return f"acknowledged transfer {ack['entry_id']} is missing"
    expected = sorted([(ack["from"], "debit", ack["quantity"]), (ack["to"], "credit", ack["quantity"])])
    if sorted((p.account_id, p.side, p.quantity) for p in postings) != expected:
        return f"transfer {ack['entry_id']} differs from its acknowledgement"
    return None


register(Scenario("ledger_transfer", write_transfer, check_transfer))


@register_invariant
def ledger_verifies(session: Session) -> list[str]:
    """Every entry has balanced postings, the stored balances are the journal's, every instrument is conserved."""
    from api.services.ledger import verify

    report = verify(session)
    bare = session.scalars(select(JournalEntryRow.entry_id).where(
        JournalEntryRow.entry_id.not_in(select(PostingRow.entry_id).distinct()))).all()
    signed = case((PostingRow.side == "credit", PostingRow.quantity), else_=-PostingRow.quantity)
    unbalanced = session.execute(select(PostingRow.entry_id, PostingRow.instrument).group_by(
        PostingRow.entry_id, PostingRow.instrument).having(func.sum(signed) != 0)).all()
    return ([f"ledger balance {d['account_id']}/{d['instrument']}: stored {d['stored']}, journal {d['journal']}"
             for d in report["differences"]]
            + [f"instrument {i} not conserved: {t}" for i, t in report["unbalanced_instruments"].items()]
            + [f"journal entry {e} has no postings" for e in bare]
            + [f"journal entry {e} does not balance in {i}" for e, i in unbalanced])


# --- the exchange: orders placed by the two traders -------------------------------------------------------

EXCHANGE_INSTRUMENT = LEDGER_VINTAGE
EXCHANGE_CLOSE_FEN = 5000


def prepare_exchange(database_url: str, *, cash_fen: int = 1_000_000_000) -> None:
    """The instrument listed, the clock paused inside a session, the two traders' cash (their units come from
    ``prepare_ledger``, which runs first); set up directly, like the ledger's."""
    from datetime import datetime

    from accounting.ledger import BANK, transfer_entry
    from accounting.market_rules import CHINA_TZ, InstrumentRules
    from accounting.review import Actor
    from api.services import exchange
    from api.services.ledger import new_entry_id, post, system_account_id
    from api.store.db import create_db_engine, make_session_factory

    officer = Actor(actor_id=OFFICER_ID, role="officer")
    engine = create_db_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            for account_id in LEDGER_ACCOUNTS:
                post(session, entry=transfer_entry(entry_id=new_entry_id(), kind="deposit", to_account=account_id,
                                                   from_account=system_account_id(BANK), instrument="CNY",
                                                   quantity=cash_fen), actor=officer)
            session.commit()
            exchange.set_clock(session, actor=officer, mode="simulated", speed=0, step_seconds=60,
                               start=datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ))  # a Monday, in session
            exchange.list_instrument(session, actor=officer, instrument=EXCHANGE_INSTRUMENT,
                                     reference_price_fen=EXCHANGE_CLOSE_FEN, fee_bp=10, settlement="trade",
                                     rules=InstrumentRules(instrument=EXCHANGE_INSTRUMENT))
    finally:
        engine.dispose()


def write_exchange_order(target: Target, n: int) -> Acknowledged | None:
    """A limit order of one of the traders (buys and sells alternate near the close, so that some trade)."""
    account_id = LEDGER_ACCOUNTS[n % 2]
    body = {"account_id": account_id, "client_order_id": f"fault-{_RUN}-{n}", "side": ("buy", "sell")[n // 2 % 2],
            "quantity_t": 1 + n % 9, "price_fen": EXCHANGE_CLOSE_FEN + (n % 7 - 3) * 10}
    answer = request("POST", f"{target.base_url}/v1/exchange/instruments/{EXCHANGE_INSTRUMENT}/orders",
                     headers=LEDGER_HOLDERS[account_id], json_body=body)
    if answer.status not in (200, 201):
        return None
    return {"order_id": answer.body["order_id"], "account_id": account_id,
            "client_order_id": body["client_order_id"], "side": body["side"], "quantity_t": body["quantity_t"]}


def check_exchange_order(session: Session, ack: Acknowledged) -> str | None:
    row = session.scalars(select(ExchangeOrder).where(
        ExchangeOrder.instrument == EXCHANGE_INSTRUMENT, ExchangeOrder.account_id == ack["account_id"],
        ExchangeOrder.client_order_id == ack["client_order_id"])).one_or_none()
    if row is None:
        return f"acknowledged order {ack['client_order_id']} of {ack['account_id']} is missing"
    if (row.order_id, row.side, row.quantity_t) != (ack["order_id"], ack["side"], ack["quantity_t"]):
        return f"order {ack['client_order_id']} is stored as {row.order_id} {row.side} {row.quantity_t} t"
    return None


register(Scenario("exchange_order", write_exchange_order, check_exchange_order))


@register_invariant
def exchange_verifies(session: Session) -> list[str]:
    """Every listed instrument's log replays to the stored book, orders, trades, holds and ledger entries."""
    from api.services import exchange
    from api.store.exchange import instruments

    found = []
    for row in instruments(session):
        report = exchange.verify(session, instrument=row.instrument)
        found += [f"exchange {row.instrument}: {p}" for p in report["problems"]]
    return found

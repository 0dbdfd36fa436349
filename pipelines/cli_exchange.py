"""`carbon simulate`: a seeded trading rehearsal over the real API stack (registered by `pipelines.cli.build_parser`).

What it does, in order:

1. **Setup** (services, not under test), on a fresh database of its own (a SQLite file in a temporary
   folder; ``--database-url`` points it at an empty PostgreSQL database or schema): the sample registry,
   the system accounts, one compliance account per chosen sample enterprise and the pilot traders'
   accounts, funded with cash deposits and allowance allocations posted with ``api.services.ledger.post``,
   and one user with an API key per agent plus an officer.
2. **A live API**: ``uvicorn api.main:create_app --factory`` on 127.0.0.1, a free port, that database.
3. **Through the API**: the officer lists the instrument and sets a paused rehearsal clock; then, for each
   trading day, the officer sets the clock to the first session, rolls the day open, and steps the clock
   through the sessions a round at a time (``--step-minutes``); in each round every agent
   (``accounting.agents``) looks at the market and acts (orders, cancels, cancel-replaces), one after the
   other in a seeded order; at 15:00 the officer rolls the day closed (the close, the VWAP of the listed
   trades, sets the next day's band).
4. **Report**: per day open/high/low/close/volume, the trades, each compliance agent's outcome (covered,
   or short by how many tonnes) and the result of ``api.services.ledger.verify`` and
   ``api.services.exchange.verify``. Exit 1 when an invariant fails.

The same seed prints the same prices and volumes: agents act one at a time and decide from what the API
answered, with their own seeded random streams, and the rehearsal clock only moves when the officer
steps it.

The pieces (``prepare_market``, ``live_api``, ``ApiClient``, ``Seat``) are the load generator of
``benchmarks/bench_exchange_api.py`` too.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from accounting.agents import (
    Action,
    Cancel,
    ComplianceAgent,
    ComplianceProfile,
    MarketView,
    OpenOrder,
    Place,
    Position,
    Replace,
    Shuffler,
    TraderAgent,
    agent_rng,
    compliance_profiles,
    trader_styles,
)
from accounting.exchange import BUY, SELL
from accounting.market_rules import CHINA_TZ, LISTED_SESSIONS, PriceBand, TradingCalendar
from accounting.settlement import buy_hold_fen

EXIT_FAILED = 1
EXIT_INVALID = 2
REFERENCE_PRICE_FEN = 5000
FEE_BP = 10
START_DAY = date(2026, 3, 2)  # a Monday
SERVER_START_SECONDS = 60
OFFICER_USER = "sim-officer"
#: How agents send their orders: a REST request each, or over an order-entry WebSocket each.
ORDER_ENTRIES = ("rest", "session")
#: Rate limits of the rehearsal's server: far above what agents (or the benchmark's clients) send, so
#: the limiter stays in the path without refusing the load.
RAISED_LIMITS = {"CARBON_RATE_LIMIT_PER_MINUTE": "6000000", "CARBON_RATE_LIMIT_BURST": "100000",
                 "CARBON_EXCHANGE_ORDERS_PER_MINUTE": "6000000", "CARBON_EXCHANGE_ORDER_BURST": "100000"}


class SimulationError(Exception):
    """The rehearsal cannot run (a database that is not fresh, a server that does not start, a refused step)."""

    def __init__(self, message: str, *, code: str = "simulation_failed") -> None:
        super().__init__(message)
        self.code = code


# -- a small HTTP client (the standard library: the command needs no test dependency) ------------------------


@dataclass
class ApiClient:
    """JSON over one keep-alive connection, as one user (``headers``); not shared between threads."""

    base_url: str
    headers: dict[str, str]
    timeout: float = 60.0
    _connection: http.client.HTTPConnection | None = field(default=None, init=False, repr=False)

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            parts = urlsplit(self.base_url)
            self._connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                          timeout=self.timeout)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def call(self, method: str, path: str, body: Any = None, *, once: bool = False) -> tuple[int, Any]:
        """(status, JSON answer); ``once`` sends a fresh Idempotency-Key (the officer's changes need one).

        A connection the server closed between requests is opened again and the request sent once more.
        """
        headers = {**self.headers, "Accept": "application/json"}
        if once:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        payload = None if body is None else json.dumps(body).encode()
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
                continue
            return response.status, json.loads(data) if data else None
        raise AssertionError("unreachable")

    def ok(self, method: str, path: str, body: Any = None, *, once: bool = False, expect: int = 200) -> Any:
        """The JSON answer of a call that must succeed (officer steps, reads); SimulationError otherwise."""
        status, answer = self.call(method, path, body, once=once)
        if status != expect:
            raise SimulationError(f"{method} {path} answered {status}: {answer}")
        return answer


@dataclass
class OrderSessionClient(ApiClient):
    """An :class:`ApiClient` whose orders (placing, cancelling, reading one) go over one order-entry WebSocket.

    ``/v1/exchange/session`` answers each command with the status and body the REST route would; this
    client sends one command and waits for its answer, so :meth:`call` keeps the REST client's contract
    and an agent does not know which it uses. Every other call is a REST request.
    """

    _socket: Any = field(default=None, init=False, repr=False)
    _refs: int = field(default=0, init=False, repr=False)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        super().close()

    def call(self, method: str, path: str, body: Any = None, *, once: bool = False) -> tuple[int, Any]:
        parts = path.strip("/").split("/")  # v1 exchange instruments <instrument> orders [<order id>]
        if once or parts[:3] != ["v1", "exchange", "instruments"] or parts[4:5] != ["orders"]:
            return super().call(method, path, body, once=once)
        if method == "POST" and len(parts) == 5:
            command = {"op": "place", "instrument": parts[3], **body}
        elif method in ("DELETE", "GET") and len(parts) == 6:
            command = {"op": "cancel" if method == "DELETE" else "get", "instrument": parts[3],
                       "order_id": int(parts[5])}
        else:
            return super().call(method, path, body)
        self._refs += 1
        command["ref"] = ref = str(self._refs)
        socket = self._session()
        socket.send(json.dumps(command))
        answer = json.loads(socket.recv(timeout=self.timeout))
        if answer.get("ref") != ref:
            raise SimulationError(f"the order session answered {answer.get('ref')!r} to command {ref}")
        return answer["status"], answer.get("order", answer.get("problem"))

    def _session(self) -> Any:
        from websockets.sync.client import connect

        if self._socket is None:
            url = self.base_url.replace("http", "ws", 1) + "/v1/exchange/session"
            self._socket = connect(url, additional_headers=self.headers, compression=None, open_timeout=self.timeout)
        return self._socket


def bearer(plaintext_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext_key}"}


# -- setup: accounts, funds and users (services, before the server starts) ------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SeatSpec:
    """One agent's account and the user it trades as."""

    account_id: str
    user_id: str
    api_key: str
    cash_fen: int
    units_t: int
    profile: ComplianceProfile | None = None  # compliance agents
    style: str | None = None  # traders


@dataclass(frozen=True, slots=True, kw_only=True)
class Roster:
    """Who trades in a prepared market: the officer's key and every agent's seat."""

    officer_key: str
    compliance: tuple[SeatSpec, ...]
    traders: tuple[SeatSpec, ...]


def sample_enterprises(registry_csv: Path) -> list[tuple[str, bool]]:
    """(enterprise id, declared key emitter) of the registry file, in file order."""
    with registry_csv.open(encoding="utf-8") as handle:
        return [(row["enterprise_id"], row.get("key_emitter_declared", "").strip().lower() == "true")
                for row in csv.DictReader(handle)]


def _post(session: Any, *, kind: str, source: str, account_id: str, instrument: str, quantity: int,
          actor: Any) -> None:
    from accounting.ledger import transfer_entry
    from api.services.ledger import new_entry_id, post

    if quantity > 0:
        post(session, entry=transfer_entry(entry_id=new_entry_id(), kind=kind, from_account=source,
                                           to_account=account_id, instrument=instrument, quantity=quantity,
                                           memo="rehearsal setup"), actor=actor)


def _require_fresh(session: Any) -> None:
    from sqlalchemy import func, select

    from api.store.schema import ExchangeInstrument, LedgerAccount, User

    for table, what in ((User, "users"), (LedgerAccount, "ledger accounts"), (ExchangeInstrument, "instruments")):
        if session.scalar(select(func.count()).select_from(table)):
            raise SimulationError(f"the rehearsal needs a fresh database; this one already has {what} "
                                  "(give --database-url an empty database or schema)", code="database_not_fresh")


def prepare_market(settings: Any, *, seed: int, instrument: str, enterprises: int | None, traders: int,
                   trader_cash_fen: int, trader_units_t: int, reference_price_fen: int = REFERENCE_PRICE_FEN) -> Roster:
    """Registry, accounts, funds, users and keys on the fresh database of ``settings``; the roster to trade with.

    Compliance agents get their seeded allocation (``accounting.agents.compliance_profiles``) and the cash
    to buy half their obligation at the reference price; traders ``trader_cash_fen`` and ``trader_units_t``.
    """
    from accounting.ledger import BANK, ISSUANCE
    from accounting.review import Actor
    from api.services import users
    from api.services.ledger import (
        compliance_account_id,
        ensure_compliance_accounts,
        ensure_system_accounts,
        open_account,
    )
    from api.services.ledger import system_account_id as system
    from api.services.registry import import_registry
    from api.store.db import session_factory

    setup = Actor(actor_id="cli:simulate", role="officer")
    chosen = sample_enterprises(settings.registry)[:enterprises]
    profiles = compliance_profiles(chosen, seed=seed, reference_price_fen=reference_price_fen)
    styles = trader_styles(traders, seed=seed)
    # the rehearsal's own keys live a day and are hashed at the lowest cost: a throwaway database
    cheap = settings.model_copy(update={"password_hash_time_cost": 1, "password_hash_memory_kib": 32})
    compliance: list[SeatSpec] = []
    trading: list[SeatSpec] = []
    with session_factory(settings)() as session:
        _require_fresh(session)
        import_registry(session, content=settings.registry.read_bytes(), source=str(settings.registry), actor=setup)
        ensure_system_accounts(session)
        ensure_compliance_accounts(session, [p.enterprise_id for p in profiles])
        for number in range(1, traders + 1):
            open_account(session, actor=setup, account_id=f"TR-SIM-{number:02d}", kind="trader",
                         owner_id=f"sim-trader-{number:02d}", name=f"Rehearsal trader {number}", commit=False)
        for profile in profiles:
            account_id = compliance_account_id(profile.enterprise_id)
            cash = profile.obligation_t * reference_price_fen * 2 // 4
            _post(session, kind="deposit", source=system(BANK), account_id=account_id, instrument="CNY",
                  quantity=cash, actor=setup)
            _post(session, kind="allocate", source=system(ISSUANCE), account_id=account_id, instrument=instrument,
                  quantity=profile.allocated_t, actor=setup)
            compliance.append(SeatSpec(account_id=account_id, user_id=f"sim-{profile.enterprise_id.lower()}",
                                       api_key="", cash_fen=cash, units_t=profile.allocated_t, profile=profile))
        for number, style in enumerate(styles, start=1):
            account_id = f"TR-SIM-{number:02d}"
            _post(session, kind="deposit", source=system(BANK), account_id=account_id, instrument="CNY",
                  quantity=trader_cash_fen, actor=setup)
            _post(session, kind="issue", source=system(ISSUANCE), account_id=account_id, instrument=instrument,
                  quantity=trader_units_t, actor=setup)
            trading.append(SeatSpec(account_id=account_id, user_id=f"sim-trader-{number:02d}", api_key="",
                                    cash_fen=trader_cash_fen, units_t=trader_units_t, style=style))
        session.commit()

        def user_with_key(user_id: str, role: str, **bindings: list[str]) -> str:
            users.create_user(session, cheap, by=setup, user_id=user_id, role=role, **bindings)
            return users.issue_key(session, cheap, by=setup, user_id=user_id, name="carbon simulate", days=1)[1]

        officer_key = user_with_key(OFFICER_USER, "officer")
        compliance = [_with_key(s, user_with_key(s.user_id, "enterprise", enterprise_ids=[s.profile.enterprise_id]))
                      for s in compliance if s.profile is not None]
        trading = [_with_key(s, user_with_key(s.user_id, "trader", account_ids=[s.account_id])) for s in trading]
    return Roster(officer_key=officer_key, compliance=tuple(compliance), traders=tuple(trading))


def _with_key(spec: SeatSpec, key: str) -> SeatSpec:
    return SeatSpec(account_id=spec.account_id, user_id=spec.user_id, api_key=key, cash_fen=spec.cash_fen,
                    units_t=spec.units_t, profile=spec.profile, style=spec.style)


# -- the live server -----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(settings: Any, *, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: no inherited CARBON_* variable; this database and folder; raised rate limits."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CARBON_")}
    env.update({"CARBON_DATA_DIR": str(settings.data_dir), "CARBON_SAMPLE_DIR": str(settings.sample_dir),
                "CARBON_DATABASE_URL": settings.database, **RAISED_LIMITS, **(extra or {})})
    return env


@contextmanager
def live_api(settings: Any, *, workers: int = 1, log_path: Path | None = None,
             extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """``uvicorn api.main:create_app --factory`` on 127.0.0.1 and a free port; its base URL once /healthz answers.

    The server runs in a process group of its own and is stopped (SIGTERM, then SIGKILL) on the way out.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = log_path or Path(settings.data_dir) / "uvicorn.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, env=server_environment(settings, extra=extra_env),  # noqa: S603
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_up(process, base_url, log_path)
        yield base_url
    finally:
        _stop_server(process)


def _wait_until_up(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    probe = ApiClient(base_url, {}, timeout=5)
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SimulationError(f"the API exited on start:\n{log_path.read_text(errors='replace')[-3000:]}")
            try:
                if probe.call("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                probe.close()
            time.sleep(0.2)
    finally:
        probe.close()
    raise SimulationError(f"the API did not answer within {SERVER_START_SECONDS} s")


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (uvicorn stops its workers), SIGKILL after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# -- one agent's seat: its orders through the API, and what it holds ------------------------------------------


@dataclass
class Tracked:
    """One resting order of a seat, as last seen."""

    side: str
    price_fen: int
    remaining_t: int
    filled_t: int


@dataclass
class Seat:
    """An agent's account as the simulation keeps it: holdings, cash and open orders, from the API's answers.

    ``holdings_t`` counts owned units (those held by open sells too), ``sellable_t`` what may still be
    offered today, ``cash_fen`` the cash open buys do not hold (the fee estimate is rounded the way the
    exchange rounds it, per order rather than per trade, so it may be off by a few fen).
    """

    account_id: str
    agent: ComplianceAgent | TraderAgent
    client: ApiClient
    instrument: str
    holdings_t: int
    cash_fen: int
    fee_bp: int = FEE_BP
    sellable_t: int = 0
    orders: dict[int, Tracked] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    latencies: list[float] | None = None
    sequence: int = 0

    def __post_init__(self) -> None:
        self.sellable_t = self.holdings_t

    @property
    def url(self) -> str:
        return f"/v1/exchange/instruments/{self.instrument}"

    def position(self) -> Position:
        return Position(holdings_t=self.holdings_t, sellable_t=self.sellable_t, cash_fen=self.cash_fen,
                        open_orders=tuple(OpenOrder(order_id=i, side=o.side, price_fen=o.price_fen,
                                                    remaining_t=o.remaining_t)
                                          for i, o in sorted(self.orders.items())))

    def new_day(self, *, holdings_t: int, cash_fen: int) -> None:
        """Start a day from the ledger's figures (nothing is open overnight: day orders expire)."""
        self.holdings_t, self.sellable_t, self.cash_fen = holdings_t, holdings_t, cash_fen
        self.orders.clear()

    def act(self, view: MarketView, *, tag: str) -> None:
        for action in self.agent.decide(view, self.position()):
            self.execute(action, tag=tag)

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        started = time.perf_counter()
        status, answer = self.client.call(method, path, body)
        if self.latencies is not None:
            self.latencies.append(time.perf_counter() - started)
        return status, answer

    def execute(self, action: Action, *, tag: str) -> int:
        """Send one action; book what the answer says; the HTTP status."""
        if isinstance(action, Place):
            return self._place(action, tag=tag)
        if isinstance(action, Cancel):
            return self._cancel(action.order_id)
        return self._replace(action)

    def _place(self, action: Place, *, tag: str) -> int:
        self.sequence += 1
        body: dict[str, Any] = {"account_id": self.account_id, "client_order_id": f"{tag}-{self.sequence}",
                                "side": action.side, "order_type": action.order_type,
                                "time_in_force": action.time_in_force, "quantity_t": action.quantity_t}
        if action.price_fen is not None:
            body["price_fen"] = action.price_fen
        status, answer = self._call("POST", f"{self.url}/orders", body)
        if status not in (200, 201):
            self.counts[f"refused:{answer.get('code', status) if isinstance(answer, dict) else status}"] += 1
            return status
        self.counts["placed" if action.price_fen is not None else "placed_market"] += 1
        still_open = answer["remaining_t"] > 0 and answer["state"] in ("new", "partially_filled")
        if action.side == SELL:
            self.sellable_t -= answer["filled_t"] + (answer["remaining_t"] if still_open else 0)
        else:
            self.cash_fen -= answer["held_fen"]
        for fill in answer.get("fills") or ():
            self._filled(action.side, fill["quantity_t"], fill["value_fen"], fill["fee_fen"])
        if still_open:
            self.orders[answer["order_id"]] = Tracked(side=action.side, price_fen=answer["price_fen"],
                                                      remaining_t=answer["remaining_t"], filled_t=answer["filled_t"])
        return status

    def _filled(self, side: str, quantity_t: int, value_fen: int, fee_fen: int) -> None:
        if side == BUY:
            self.holdings_t += quantity_t
            self.cash_fen -= value_fen + fee_fen
        else:
            self.holdings_t -= quantity_t
            self.cash_fen += value_fen - fee_fen

    def observe(self, order_id: int, *, filled_t: int, remaining_t: int, open_: bool) -> None:
        """A tracked order as the exchange now has it: book its new maker fills (at its own price), its end."""
        tracked = self.orders.get(order_id)
        if tracked is None:
            return
        if filled_t > tracked.filled_t:
            self._maker_fill(tracked, filled_t - tracked.filled_t)
        tracked.filled_t, tracked.remaining_t = filled_t, remaining_t
        if not open_:
            self._ended(order_id)

    def _maker_fill(self, tracked: Tracked, quantity_t: int) -> None:
        """``quantity_t`` of a resting order filled at its own price (a buy pays from what it held)."""
        value = tracked.price_fen * quantity_t
        if tracked.side == BUY:
            self.cash_fen += buy_hold_fen(tracked.price_fen, quantity_t, self.fee_bp)
        self._filled(tracked.side, quantity_t, value, value * self.fee_bp // 10_000)

    def _ended(self, order_id: int) -> None:
        tracked = self.orders.pop(order_id)
        if tracked.side == BUY:
            self.cash_fen += buy_hold_fen(tracked.price_fen, tracked.remaining_t, self.fee_bp)
        else:
            self.sellable_t += tracked.remaining_t

    def _cancel(self, order_id: int) -> int:
        status, answer = self._call("DELETE", f"{self.url}/orders/{order_id}")
        if status == 200:
            self.counts["cancelled"] += 1
            self.observe(order_id, filled_t=answer["filled_t"], remaining_t=0, open_=False)
            return status
        self.counts["cancel_too_late"] += 1  # filled or ended since the agent looked: the refusal shows how
        order = answer.get("order") if isinstance(answer, dict) else None
        if order is None:
            found, order = self.client.call("GET", f"{self.url}/orders/{order_id}")
            if found != 200:
                return status
        self.observe(order_id, filled_t=order["filled_t"], remaining_t=order["remaining_t"],
                     open_=order["state"] in ("new", "partially_filled"))
        return status

    def _replace(self, action: Replace) -> int:
        tracked = self.orders.get(action.order_id)
        status, answer = self._call("POST", f"{self.url}/orders/{action.order_id}/replace",
                                    {"price_fen": action.price_fen, "quantity_t": action.quantity_t})
        if status != 200 or tracked is None:
            self.counts[f"replace_refused:{answer.get('code', status) if isinstance(answer, dict) else status}"] += 1
            return status
        self.counts["replaced"] += 1
        own = answer.get("fills") or ()  # the trades of the replace itself, at the resting orders' prices
        aggressive = sum(f["quantity_t"] for f in own)
        maker = answer["filled_t"] - aggressive - tracked.filled_t  # filled at the old price since last seen
        if maker > 0:
            self._maker_fill(tracked, maker)
        before = tracked.remaining_t - max(maker, 0)
        if tracked.side == BUY:
            self.cash_fen += buy_hold_fen(tracked.price_fen, before, self.fee_bp) - answer["held_fen"]
        else:
            self.sellable_t += before - answer["remaining_t"] - aggressive
        for fill in own:
            self._filled(tracked.side, fill["quantity_t"], fill["value_fen"], fill["fee_fen"])
        tracked.price_fen, tracked.remaining_t, tracked.filled_t = (answer["price_fen"], answer["remaining_t"],
                                                                   answer["filled_t"])
        if answer["state"] not in ("new", "partially_filled"):
            self.orders.pop(action.order_id)
        return status


# -- the rehearsal -------------------------------------------------------------------------------------------------


def money(fen: int | None) -> str:
    """Fen as CNY with two decimals (integer formatting, no float)."""
    if fen is None:
        return "-"
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def trading_days(start: date, count: int, calendar: TradingCalendar) -> list[date]:
    days: list[date] = []
    day = start
    while len(days) < count:
        if calendar.is_trading_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def round_moments(day: date, step_minutes: int) -> list[datetime]:
    """The moments agents act on ``day``: every ``step_minutes`` through the listed sessions."""
    moments = []
    for session in LISTED_SESSIONS:
        moment = datetime.combine(day, session.opens, CHINA_TZ)
        closes = datetime.combine(day, session.closes, CHINA_TZ)
        while moment < closes:
            moments.append(moment)
            moment += timedelta(minutes=step_minutes)
    return moments


@dataclass
class Rehearsal:
    """The officer's loop over days and rounds, and the agents' seats."""

    officer: ApiClient
    seats: list[Seat]
    instrument: str
    seed: int
    step_minutes: int
    out: Any

    @property
    def url(self) -> str:
        return f"/v1/exchange/instruments/{self.instrument}"

    def list_instrument(self, *, reference_price_fen: int, fee_bp: int) -> None:
        self.officer.ok("POST", "/v1/exchange/instruments", {
            "instrument": self.instrument, "reference_price_fen": reference_price_fen, "fee_bp": fee_bp,
            "max_open_orders": 1000}, once=True, expect=201)

    def set_clock(self, moment: datetime) -> None:
        self.officer.ok("PUT", "/v1/exchange/clock", {"mode": "simulated", "start": moment.isoformat(), "speed": 0,
                                                      "step_seconds": self.step_minutes * 60}, once=True)

    def step_to(self, now: datetime, moment: datetime) -> None:
        """Step the paused clock from ``now`` to ``moment`` (whole steps)."""
        steps = (moment - now) // timedelta(minutes=self.step_minutes)
        if steps > 0:
            self.officer.ok("POST", "/v1/exchange/clock/step", {"steps": steps}, once=True)

    def roll(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.officer.ok("POST", f"{self.url}/roll", once=True)
        return answer

    def run(self, days: list[date]) -> None:
        moments = {day: round_moments(day, self.step_minutes) for day in days}
        total = sum(len(m) for m in moments.values())
        shuffler = Shuffler(self.seed)
        step = 0
        for number, day in enumerate(days):
            self.set_clock(moments[day][0])
            instrument = self.roll()  # opens the day: its band is the previous close's
            if not instrument["day_open"]:
                raise SimulationError(f"{day} did not open: {instrument}")
            self.start_day()
            band = PriceBand(**instrument["listed_band"])
            for index, moment in enumerate(moments[day]):
                if index:
                    self.step_to(moments[day][index - 1], moment)
                self.refresh()
                view = self.view(band, instrument["previous_close_fen"], step=step, steps=total)
                for seat_index in shuffler.order(len(self.seats)):
                    self.seats[seat_index].act(view, tag=f"s{self.seed}d{number}r{index}")
                step += 1
            close = datetime.combine(day, LISTED_SESSIONS[-1].closes, CHINA_TZ)
            self.step_to(moments[day][-1], close)
            self.refresh()
            closed = self.roll()
            if closed["day_open"]:
                raise SimulationError(f"{day} did not close: {closed}")

    def start_day(self) -> None:
        """Every seat's holdings and cash from its statement (the ledger's own figures)."""
        for seat in self.seats:
            held = statement_holdings(self.officer, seat.account_id)
            seat.new_day(holdings_t=held.get(self.instrument, 0), cash_fen=held.get("CNY", 0))

    def view(self, band: PriceBand, previous_close_fen: int, *, step: int, steps: int) -> MarketView:
        depth = self.officer.ok("GET", f"{self.url}/depth?levels=1")
        return MarketView(band=band, previous_close_fen=previous_close_fen,
                          best_bid_fen=depth["bids"][0]["price_fen"] if depth["bids"] else None,
                          best_ask_fen=depth["asks"][0]["price_fen"] if depth["asks"] else None,
                          step=step, steps=steps)

    def refresh(self) -> None:
        """Learn what happened to the seats' resting orders since they looked (others' orders filled them)."""
        tracked = {order_id: seat for seat in self.seats for order_id in seat.orders}
        if not tracked:
            return
        open_now: dict[int, dict[str, Any]] = {}
        offset = 0
        while True:
            page = self.officer.ok("GET", f"/v1/exchange/orders?instrument={self.instrument}&state=open"
                                          f"&limit=1000&offset={offset}")
            open_now.update({o["order_id"]: o for o in page["items"]})
            if len(page["items"]) < 1000:
                break
            offset += 1000
        for order_id, seat in sorted(tracked.items()):
            order = open_now.get(order_id)
            if order is None:
                order = self.officer.ok("GET", f"{self.url}/orders/{order_id}")
            seat.observe(order_id, filled_t=order["filled_t"], remaining_t=order["remaining_t"],
                         open_=order["state"] in ("new", "partially_filled"))


def statement_holdings(client: ApiClient, account_id: str) -> dict[str, int]:
    """An account's balances by instrument (CNY in fen), from its statement."""
    statement = client.ok("GET", f"/v1/exchange/accounts/{account_id}/statement?limit=1")
    return {h["instrument"]: h["available"] for h in statement["holdings"]}


def build_seats(roster: Roster, *, base_url: str, instrument: str, seed: int, fee_bp: int = FEE_BP,
                latencies: list[float] | None = None, order_entry: str = "rest") -> list[Seat]:
    """One seat per agent of the roster: compliance enterprises first, then traders.

    ``order_entry`` (one of :data:`ORDER_ENTRIES`) is ``rest`` (a request per order) or ``session`` (an
    order-entry WebSocket per seat).
    """
    seats = []
    for spec in (*roster.compliance, *roster.traders):
        rng = agent_rng(seed, spec.account_id)
        agent: ComplianceAgent | TraderAgent
        if spec.profile is not None:
            agent = ComplianceAgent(account_id=spec.account_id, obligation_t=spec.profile.obligation_t,
                                    curve=spec.profile.curve, rng=rng, fee_bp=fee_bp)
        else:
            agent = TraderAgent(account_id=spec.account_id, style=spec.style or "noise", rng=rng, fee_bp=fee_bp)
        client = (OrderSessionClient if order_entry == "session" else ApiClient)(base_url, bearer(spec.api_key))
        seats.append(Seat(account_id=spec.account_id, agent=agent, client=client,
                          instrument=instrument, holdings_t=spec.units_t, cash_fen=spec.cash_fen, fee_bp=fee_bp,
                          latencies=latencies))
    return seats


# -- the command -------------------------------------------------------------------------------------------------


def _write(out: Any, text: str = "") -> None:
    out.write(text + "\n")
    out.flush()


def report(rehearsal: Rehearsal, roster: Roster, *, settings: Any) -> bool:
    """Print the days, the trades, the compliance outcomes and both verifications; True when both hold."""
    from api.services import exchange, ledger
    from api.store.db import session_factory

    out, officer, url = rehearsal.out, rehearsal.officer, rehearsal.url
    days = officer.ok("GET", f"{url}/days")["items"]
    _write(out, f"{'day':<12}{'prev close':>11}{'open':>10}{'high':>10}{'low':>10}{'close':>10}{'volume t':>11}"
                f"{'trades':>8}")
    for d in days:
        _write(out, f"{d['trading_day']:<12}{money(d['previous_close_fen']):>11}{money(d['open_fen']):>10}"
                    f"{money(d['high_fen']):>10}{money(d['low_fen']):>10}{money(d['close_fen']):>10}"
                    f"{d['volume_t']:>11,}{d['trades']:>8}")
    counts: Counter[str] = Counter()
    for seat in rehearsal.seats:
        counts.update(seat.counts)
    _write(out, f"total trades: {sum(d['trades'] for d in days)}; volume {sum(d['volume_t'] for d in days):,} t")
    _write(out, "orders: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    _write(out)
    _write(out, f"{'compliance account':<24}{'obligation t':>13}{'allocated t':>12}{'net bought t':>13}{'holds t':>10}"
                f"  outcome")
    covered = 0
    for spec in roster.compliance:
        assert spec.profile is not None
        held = statement_holdings(officer, spec.account_id).get(rehearsal.instrument, 0)
        short = spec.profile.obligation_t - held
        covered += short <= 0
        outcome = "covered" if short <= 0 else f"short {short:,} t"
        _write(out, f"{spec.account_id:<24}{spec.profile.obligation_t:>13,}{spec.profile.allocated_t:>12,}"
                    f"{held - spec.profile.allocated_t:>13,}{held:>10,}  {outcome}")
    _write(out, f"covered: {covered} of {len(roster.compliance)}")
    _write(out)
    with session_factory(settings)() as session:
        ledger_report = ledger.verify(session)
        exchange_report = exchange.verify(session, instrument=rehearsal.instrument)
    ledger_problems = [*ledger_report["differences"], *ledger_report["negative_available"]]
    if ledger_report["unbalanced_instruments"]:
        ledger_problems.append({"unbalanced_instruments": ledger_report["unbalanced_instruments"]})
    _write(out, f"ledger verify: {'ok' if ledger_report['ok'] else 'FAILED'} "
                f"({ledger_report['balances_checked']} balances checked)")
    for problem in ledger_problems[:20]:
        _write(out, f"  {json.dumps(problem, default=str)}")
    _write(out, f"exchange verify: {'ok' if exchange_report['ok'] else 'FAILED'} "
                f"({exchange_report['commands']} commands replayed, {exchange_report['trades']} trades)")
    for problem in exchange_report["problems"][:20]:
        _write(out, f"  {problem}")
    return bool(ledger_report["ok"] and exchange_report["ok"])


@contextmanager
def rehearsal_settings(database_url: str | None) -> Iterator[Any]:
    """Settings on the rehearsal's own database: a SQLite file in a temporary folder, or ``database_url``."""
    from pipelines.settings import get_settings

    base = get_settings()
    with tempfile.TemporaryDirectory(prefix="carbon-simulate-") as folder:
        yield base.model_copy(update={
            "data_dir": Path(folder), "inbox_dir": Path(folder) / "inbox",
            "warehouse_path": Path(folder) / "warehouse.duckdb", "serving_path": Path(folder) / "serving.duckdb",
            "database_url": database_url or f"sqlite:///{Path(folder) / 'carbon.sqlite'}",
            "sample_dir": base.sample_dir.resolve(), "registry_file": base.registry.resolve()})


def cmd_simulate(args: argparse.Namespace) -> int:
    """``carbon simulate``: exit 0 when both verifications hold, 1 when one fails, 2 when the rehearsal cannot run."""
    started = time.monotonic()
    try:
        held = _simulate(args, out=sys.stdout)
    except SimulationError as err:
        _write(sys.stdout, json.dumps({"code": err.code, "detail": str(err)}, ensure_ascii=False))
        return EXIT_INVALID
    _write(sys.stdout, f"elapsed {time.monotonic() - started:.1f} s")
    return 0 if held else EXIT_FAILED


def _simulate(args: argparse.Namespace, *, out: Any) -> bool:
    from api.store.db import session_factory

    with rehearsal_settings(args.database_url) as settings:
        if not settings.registry.is_file():
            raise SimulationError(f"no registry file at {settings.registry} (run from the repository, or set "
                                  "CARBON_SAMPLE_DIR)", code="registry_missing")
        roster = prepare_market(settings, seed=args.seed, instrument=args.instrument, enterprises=args.enterprises,
                                traders=args.traders, trader_cash_fen=args.trader_cash * 100,
                                trader_units_t=args.trader_units)
        days = trading_days(args.start, args.days, TradingCalendar())
        database = "PostgreSQL" if settings.database.startswith("postgresql") else "SQLite (temporary)"
        _write(out, f"carbon simulate: seed {args.seed}, {args.instrument}, {len(days)} trading days from "
                    f"{days[0]}, {len(roster.compliance)} compliance agents, {len(roster.traders)} traders, "
                    f"a round every {args.step_minutes} min; {database}, live API ({args.workers} worker(s))")
        try:
            with live_api(settings, workers=args.workers) as base_url:
                officer = ApiClient(base_url, bearer(roster.officer_key))
                seats = build_seats(roster, base_url=base_url, instrument=args.instrument, seed=args.seed,
                                    order_entry=args.order_entry)
                rehearsal = Rehearsal(officer=officer, seed=args.seed, instrument=args.instrument,
                                      step_minutes=args.step_minutes, out=out, seats=seats)
                rehearsal.set_clock(round_moments(days[0], args.step_minutes)[0])
                rehearsal.list_instrument(reference_price_fen=REFERENCE_PRICE_FEN, fee_bp=FEE_BP)
                rehearsal.run(days)
                _write(out)
                held = report(rehearsal, roster, settings=settings)
                for client in (officer, *(seat.client for seat in seats)):
                    client.close()
        finally:
            session_factory(settings).kw["bind"].dispose()
    return held


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `carbon simulate` and `carbon exchange demo` to the `carbon` parser."""
    register_exchange(commands)
    simulate = commands.add_parser("simulate", help="a seeded trading rehearsal over a live API on a fresh database")
    simulate.add_argument("--days", type=_positive, default=5, help="trading days (default 5)")
    simulate.add_argument("--seed", type=int, default=1, help="the same seed prints the same prices and volumes")
    simulate.add_argument("--enterprises", type=_count, default=None,
                          help="compliance agents: the first N sample enterprises (default: all)")
    simulate.add_argument("--traders", type=_count, default=6, help="pilot traders (default 6)")
    simulate.add_argument("--instrument", default="CEA-2025", help="the allowance vintage to list (CEA-<year>)")
    simulate.add_argument("--start", type=date.fromisoformat, default=START_DAY,
                          help=f"the first day (YYYY-MM-DD; default {START_DAY}); weekends are skipped")
    simulate.add_argument("--step-minutes", type=int, choices=(5, 10, 15, 30), default=15,
                          help="simulated minutes between rounds (default 15: 16 rounds a day)")
    simulate.add_argument("--trader-cash", type=_count, default=5_000_000, help="each trader's cash, CNY")
    simulate.add_argument("--trader-units", type=_count, default=50_000, help="each trader's allowances, t")
    simulate.add_argument("--database-url", default=None,
                          help="an empty database (or schema) to rehearse on; default: SQLite in a temporary folder")
    simulate.add_argument("--workers", type=_positive, default=1, help="uvicorn worker processes (default 1)")
    simulate.add_argument("--order-entry", choices=ORDER_ENTRIES, default="rest",
                          help="agents send orders as REST requests (default) or over an order-entry WebSocket each")
    simulate.set_defaults(handler=cmd_simulate)


# -- `carbon exchange demo`: a market to try after `make run` ------------------------------------------------

DEMO_INSTRUMENT = "CEA-2025"
DEMO_CASH_FEN = 100_000_000  # CNY 1,000,000
DEMO_UNITS_T = 10_000


def demo_market(session: Any, settings: Any, actor: Any) -> dict[str, Any]:
    """List the demo instrument, open and fund (once) the demo trader's and the demo enterprise's accounts.

    When the market is closed now, the exchange is put on a rehearsal clock running at real speed from the
    next session, so the demo users can trade at once. For trying the service, never for production.
    """
    from accounting.ledger import CNY, transfer_entry
    from accounting.market_rules import InstrumentRules, is_open, next_open
    from api.services import exchange, ledger
    from api.store import exchange as exchange_store
    from api.store import ledger as ledger_store
    from pipelines.cli import DEMO_ACCOUNT, _demo_enterprise

    ledger.ensure_system_accounts(session)
    [compliance] = ledger.ensure_compliance_accounts(session, [_demo_enterprise(session, settings)])
    if ledger_store.get_account(session, DEMO_ACCOUNT) is None:
        ledger.open_account(session, actor=actor, account_id=DEMO_ACCOUNT, kind="trader", owner_id="demo-trader",
                            name="Demo pilot trader", commit=False)
    funded = []
    for account in (DEMO_ACCOUNT, compliance):
        if ledger_store.balances_of(session, account_id=account).get(CNY):
            continue  # funded by an earlier run
        for kind, source, instrument, quantity in (("deposit", "SYS-BANK", CNY, DEMO_CASH_FEN),
                                                   ("issue", "SYS-ISSUANCE", DEMO_INSTRUMENT, DEMO_UNITS_T)):
            ledger.post(session, entry=transfer_entry(entry_id=ledger.new_entry_id(), kind=kind, from_account=source,
                                                      to_account=account, instrument=instrument, quantity=quantity,
                                                      memo="demo funding"), actor=actor, reference="demo")
        funded.append(account)
    session.commit()
    rules = InstrumentRules(instrument=DEMO_INSTRUMENT)
    if exchange_store.instrument(session, DEMO_INSTRUMENT) is None:
        exchange.list_instrument(session, actor=actor, instrument=DEMO_INSTRUMENT, reference_price_fen=5000,
                                 fee_bp=5, settlement="trade", rules=rules)
    clock = exchange.describe_clock(session)
    if not is_open(clock["now"], rules=rules):
        clock = exchange.set_clock(session, actor=actor, mode="simulated",
                                   start=next_open(clock["now"], rules=rules), speed=1, step_seconds=60)
    return {"instrument": DEMO_INSTRUMENT, "accounts": [DEMO_ACCOUNT, compliance], "funded_now": funded,
            "clock": clock}


def cmd_exchange(args: argparse.Namespace) -> int:
    from api.store.db import session_factory
    from pipelines.cli import cli_actor
    from pipelines.settings import get_settings

    settings = get_settings()
    with session_factory(settings)() as session:
        done = demo_market(session, settings, cli_actor("officer"))
    clock = done["clock"]
    _write(sys.stdout, f"Demo market: {done['instrument']} listed; accounts {', '.join(done['accounts'])} "
                       f"({'funded now' if done['funded_now'] else 'funded earlier'}: CNY {DEMO_CASH_FEN // 100:,} "
                       f"and {DEMO_UNITS_T:,} t each).")
    if clock["mode"] == "simulated":
        _write(sys.stdout, f"The exchange runs on a rehearsal clock from "
                           f"{clock['now'].astimezone(CHINA_TZ):%Y-%m-%d %H:%M} China time (the market is closed now); "
                           'PUT /v1/exchange/clock {"mode": "real"} returns to real time.')
    _write(sys.stdout, 'Trade as demo-trader:  curl -s -H "Authorization: Bearer $TOKEN" '
                       '-H "Content-Type: application/json" -d \'{"account_id": "TR-DEMO-1", "client_order_id": '
                       '"demo-1", "side": "buy", "quantity_t": 100, "price_fen": 5000}\' '
                       f"http://127.0.0.1:8000/v1/exchange/instruments/{done['instrument']}/orders")
    _write(sys.stdout, "Many orders: one order session, ws://127.0.0.1:8000/v1/exchange/session (README, "
                       '"Order sessions")')
    return 0


def register_exchange(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `carbon exchange demo` to the `carbon` parser."""
    exchange = commands.add_parser("exchange", help="the mock exchange")
    actions = exchange.add_subparsers(dest="exchange_command", required=True)
    actions.add_parser("demo", help="list CEA-2025 and fund the demo users' accounts (after `carbon users demo`)")
    exchange.set_defaults(handler=cmd_exchange)

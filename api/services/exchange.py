"""The mock exchange as use cases: commands through the matching engine, prefunded and settled in the ledger.

Commands of one instrument are written in batches (group commit, ``api.services.exchange_queue``): a
request queues its command and waits; one writer takes what is queued and, in ONE transaction:

1. locks the instrument's row (and, in this process, its engine) so commands apply in one order;
2. catches the in-memory engine up with the command log (another process may have appended to it),
   with the holds of its orders and its client order ids; an engine that is ahead of the log (a
   transaction that failed) is rebuilt from the log;
3. rolls the trading day when the clock says so (``CloseDay`` at the close, ``OpenDay`` at the next
   session, each a command of the log of its own);
4. locks the balances of the accounts that sent the commands, then, for each command in order:
   checks the account (its own, a compliance or trading account) and the cash (a buy) or the units
   (a sell, not counting units bought today: T+1) it holds, against those balances as the batch's
   earlier commands left them; a missing balance is refused (``insufficient_funds`` /
   ``insufficient_holdings``) after the market rules, with nothing written; applies the command to the
   engine, settles its events (``accounting.settlement``: holds, deliveries, fees, releases) into one
   ledger entry checked by ``accounting.ledger``, and collects its log row, entry, trades and orders;
5. writes everything the batch collected in a few bulk statements, commits once, and only then answers
   every request of the batch. Any failure rolls everything back and drops the engine, which the next
   batch rebuilds from the log; nobody of the batch is acknowledged (see ``_write_batch``).

A command the engine refuses (``outside_band``, ``market_closed``...) is logged too (the engine's
sequence numbers count it) and answered with its code; a refused balance check never reaches the log.
A command alone is a batch of one: there is one way to apply a command.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType, SimpleNamespace
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, or_, select
from sqlalchemy.orm import Session

from accounting import exchange as ex
from accounting.errors import AccountingError
from accounting.exchange import BUY, SELL, ExchangeError, MatchingEngine
from accounting.ledger import (
    CLEARING,
    CNY,
    COMPLIANCE,
    FEES,
    TRADER,
    Account,
    JournalEntry,
    LedgerState,
    parse_instrument,
)
from accounting.market_rules import CHINA_TZ, InstrumentRules, SimulationClock, day_roll, is_open
from accounting.review import Actor
from accounting.settlement import (
    Hold,
    HoldKey,
    PendingTrade,
    Settlement,
    TradeFees,
    hold_for,
    postings_of,
    settle,
    settle_pending,
)
from api.services import ledger
from api.services.exchange_queue import CommandQueue, Ticket
from api.store import audit
from api.store import exchange as store
from api.store import ledger as ledger_store
from api.store.db import take_updates, write_rows
from api.store.schema import (
    ExchangeClock,
    ExchangeCommand,
    ExchangeDay,
    ExchangeInstrument,
    ExchangeOrder,
    ExchangeSettlement,
    ExchangeTrade,
    JournalEntryRow,
    LedgerAccount,
    PostingRow,
    ReferencePrice,
)

SETTLE_AT_TRADE = "trade"
SETTLE_END_OF_DAY = "end_of_day"
SETTLEMENT_MODES = (SETTLE_AT_TRADE, SETTLE_END_OF_DAY)
LISTED_MODES = (ex.MODE_CONTINUOUS, ex.MODE_LISTED_AGREEMENT)
TRADING_ACCOUNT_KINDS = (COMPLIANCE, TRADER)


def clearing_account_id(instrument: str) -> str:
    """The clearing account of ``instrument``: what its open orders hold and its unsettled trades owe."""
    return f"EX-{instrument}"


# -- the clock --------------------------------------------------------------------------------------


def real_now() -> datetime:
    return datetime.now(UTC)


def _simulation(row: ExchangeClock) -> SimulationClock:
    assert row.start is not None  # a simulated clock has a start  # noqa: S101
    return SimulationClock(start=row.start, speed=row.speed, step=timedelta(seconds=row.step_seconds))


def now(session: Session) -> datetime:
    """The exchange's moment: real time, or the rehearsal clock officers set."""
    return _moment(store.clock(session))


def _moment(row: ExchangeClock | None) -> datetime:
    """The moment the clock ``row`` shows now (no row: real time)."""
    if row is None or row.mode == "real":
        return real_now()
    return _simulation(row).now(elapsed=max(real_now() - row.set_at, timedelta(0)))


def describe_clock(session: Session) -> dict[str, Any]:
    row = store.clock(session)  # read once: the moment and the settings described come from the same row
    moment = _moment(row)
    if row is None:
        return {"mode": "real", "now": moment, "speed": 1, "step_seconds": 60, "set_by": None, "set_at": None}
    return {"mode": row.mode, "now": moment, "speed": row.speed, "step_seconds": row.step_seconds,
            "set_by": row.set_by, "set_at": row.set_at}


def set_clock(session: Session, *, actor: Actor, mode: str, start: datetime | None, speed: int,
              step_seconds: int) -> dict[str, Any]:
    """Real time, or a rehearsal clock from ``start`` running ``speed`` times real time (0: paused)."""
    if mode not in ("real", "simulated"):
        raise ExchangeError("the clock is real or simulated", code="invalid_clock")
    moment = real_now()
    if mode == "simulated":
        start = start or now(session)
        SimulationClock(start=start, speed=speed, step=timedelta(seconds=step_seconds))  # the rules' checks
        latest = max((r.trading_day for r in store.instruments(session) if r.trading_day), default=None)
        if latest is not None and start.astimezone(CHINA_TZ).date().isoformat() < latest:
            raise ExchangeError(f"the clock does not go back before a day that has traded ({latest})",
                                code="clock_backwards")
    row = store.clock(session)
    if row is None:
        row = ExchangeClock(id=1, mode=mode, start=start, speed=speed, step_seconds=step_seconds, set_at=moment,
                            set_by=actor.actor_id)
        session.add(row)
    else:
        row.mode, row.start, row.speed, row.step_seconds = mode, start, speed, step_seconds
        row.set_at, row.set_by = moment, actor.actor_id
    audit.append(session, actor=actor, action="exchange.clock", target="exchange/clock",
                 after={"mode": mode, "start": start.isoformat() if start else None, "speed": speed,
                        "step_seconds": step_seconds})
    session.commit()
    return describe_clock(session)


def step_clock(session: Session, *, actor: Actor, steps: int) -> dict[str, Any]:
    """Move a simulated clock ``steps`` steps forward (it keeps its speed; paused clocks move only so)."""
    row = store.clock(session)
    if row is None or row.mode != "simulated":
        raise ExchangeError("only a simulated clock steps; set one first", code="clock_not_simulated")
    moment = real_now()
    clock = _simulation(row).with_speed(row.speed, elapsed=max(moment - row.set_at, timedelta(0)))
    row.start, row.set_at, row.set_by = clock.stepped(steps).start, moment, actor.actor_id
    audit.append(session, actor=actor, action="exchange.clock_step", target="exchange/clock",
                 detail={"steps": steps, "now": row.start.isoformat()})
    session.commit()
    return describe_clock(session)


# -- engines in memory --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Loaded:
    """One instrument in this process: its engine as of log position ``seq``, and the queue of its commands.

    Beside the engine it keeps what else follows from the log: the holds of the orders (what
    ``accounting.settlement`` says the events leave in clearing) and the client order ids in use. A
    command then finds them in memory instead of reading its orders back from the database; they are
    rebuilt with the engine whenever it is.
    """

    instrument: str
    engine: MatchingEngine | None = None
    seq: int = 0
    created_at: datetime | None = None
    holds: dict[HoldKey, Hold] = field(default_factory=dict)
    client_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Ledger accounts met so far (an account's kind and owner never change): a trade's counterparty is
    #: credited without reading its account again.
    accounts: dict[str, Account] = field(default_factory=dict)
    #: The orders this process wrote, as written (their columns, and their fills so far): every open one and
    #: the last :data:`ENDED_KEPT` that ended (a late cancel's refusal shows how its order ended). A batch
    #: describes them without reading them back. An order another process's command touches is forgotten
    #: (read back when next described).
    views: dict[int, dict[str, Any]] = field(default_factory=dict)
    fills: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    ended: deque[int] = field(default_factory=deque)
    #: Tonnes each account bought on ``bought_day`` (T+1), as committed: read once, then kept up to date by
    #: this process's batches; forgotten when another process's command is met, or the day changes.
    bought: dict[str, int] = field(default_factory=dict)
    bought_day: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    queue: CommandQueue = field(init=False)
    #: The writer's database connection, kept from one batch to the next while the writer works.
    connection: Connection | None = None

    def __post_init__(self) -> None:
        self.queue = CommandQueue(lambda batch: _write_batch(self, batch), on_idle=self.release,
                                  name=f"exchange-writer {self.instrument}")

    def connection_to(self, bind: Engine | Connection) -> Connection:
        """The writer's connection to ``bind``'s database (opened, or opened again after a failure)."""
        engine = bind.engine if isinstance(bind, Connection) else bind
        if self.connection is not None and (self.connection.engine is not engine or self.connection.invalidated):
            self.close_connection()
        if self.connection is None:
            self.connection = engine.connect()
        return self.connection

    def release(self) -> None:
        """Give the writer's connection back to the pool (the writer stops)."""
        with self.lock:
            self.close_connection()

    def close_connection(self) -> None:
        """Close the writer's connection (under ``lock``): the next batch opens another."""
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.close()

    def drop(self) -> None:
        """Forget the engine (a transaction failed after applying to it); the next command rebuilds it."""
        self.engine, self.seq, self.created_at, self.holds, self.client_ids = None, 0, None, {}, {}
        self.accounts, self.views, self.fills, self.bought, self.bought_day = {}, {}, {}, {}, None
        self.ended.clear()

    def forget(self, order_ids: Iterable[int]) -> None:
        for order_id in order_ids:
            self.views.pop(order_id, None)
            self.fills.pop(order_id, None)

    def remember(self, run: _Run, *, trading_day: str | None) -> None:
        """After ``run`` committed (on ``trading_day``): the orders it wrote, as written (the oldest of those that
        ended beyond :data:`ENDED_KEPT` are forgotten), and the day's purchases it read or made."""
        if self.bought_day != trading_day:
            self.bought, self.bought_day = {}, trading_day
        for account, tonnes in run.bought_now.items():
            if account not in run.bought_before and account in self.bought:
                self.bought[account] += tonnes
        self.bought.update((a, before + run.bought_now.get(a, 0)) for a, before in run.bought_before.items())
        for order_id in run.orders:
            known = run.known_row(order_id)
            if known is None:
                self.forget((order_id,))
                continue
            self.fills[order_id] = run.known_fills(order_id, known["account_id"])
            self.views[order_id] = known
            if known["state"] not in ex.OPEN_STATES:
                self.ended.append(order_id)
        while len(self.ended) > ENDED_KEPT:
            self.forget((self.ended.popleft(),))


#: Ended orders each instrument's writer keeps describing from memory (a few seconds of trading under load).
ENDED_KEPT = 10_000
_ENGINES: dict[tuple[str, str], _Loaded] = {}
#: The tables a batch writes in bulk (Core statements: the rows are plain dicts, no ORM objects).
_TABLES = {model: cast(Table, model.__table__)
           for model in (JournalEntryRow, PostingRow, ExchangeCommand, ExchangeOrder, ExchangeTrade)}
_ENGINES_LOCK = threading.Lock()
#: The database each engine is on (engines of one URL share their instruments' engines).
_DATABASES: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def _loaded(session: Session, instrument: str) -> _Loaded:
    bind = session.get_bind()
    return _loaded_on(bind.engine if isinstance(bind, Connection) else bind, instrument)


def _loaded_on(engine: Engine, instrument: str) -> _Loaded:
    database = _DATABASES.get(engine)
    if database is None:
        database = _DATABASES[engine] = engine.url.render_as_string(hide_password=True)
    key = (database, instrument)
    with _ENGINES_LOCK:
        loaded = _ENGINES.get(key)
        if loaded is None:
            loaded = _ENGINES[key] = _Loaded(instrument)
        return loaded


def command_queue(session: Session, *, instrument: str) -> CommandQueue:
    """The queue of ``instrument``'s commands in this process (its counters say how commands were batched)."""
    return _loaded(session, instrument).queue


def _genesis(row: ExchangeInstrument) -> MatchingEngine:
    return MatchingEngine(rules=store.rules_of(row.rules), previous_close_fen=row.genesis_close_fen)


def _settlement(row: ExchangeInstrument, events: tuple[ex.Event, ...], holds: dict[HoldKey, Hold],
                band_high_fen: int) -> Settlement:
    """What one command's events move in the ledger under ``row``'s terms (fee, settlement mode)."""
    return settle(events, holds=holds, instrument=row.instrument, clearing_account=clearing_account_id(row.instrument),
                  fees_account=ledger.system_account_id(FEES), fee_bp=row.fee_bp, band_high_fen=band_high_fen,
                  settle_trades=row.settlement == SETTLE_AT_TRADE)


def _note_client_ids(client_ids: dict[tuple[str, str], int], events: tuple[ex.Event, ...]) -> None:
    """Record the (account, client order id) of every order, quote, take and proposal the events create."""
    for e in events:
        if isinstance(e, ex.OrderAccepted):
            client_ids[(e.account_id, e.client_order_id)] = e.order_id
        elif isinstance(e, ex.QuotePosted):
            client_ids[(e.account_id, e.client_order_id)] = e.quote_id
        elif isinstance(e, ex.QuoteTaken):
            client_ids[(e.account_id, e.client_order_id)] = e.take_id
        elif isinstance(e, ex.BlockProposed):
            client_ids[(e.account_id, e.client_order_id)] = e.proposal_id


def _catch_up(session: Session, row: ExchangeInstrument, loaded: _Loaded, *, exact: bool) -> MatchingEngine:
    """The engine as of the log's last command (``row.last_seq``), with its holds and client order ids.

    A writer (``exact``) rebuilds an engine that is ahead of the log from empty; a reader accepts one
    that is ahead (its row was read before a commit it then waited for).
    """
    if loaded.engine is None or loaded.created_at != row.created_at or (exact and loaded.seq > row.last_seq):
        loaded.drop()
        loaded.engine, loaded.created_at = _genesis(row), row.created_at
    engine = loaded.engine
    if loaded.seq >= row.last_seq:
        return engine
    for command in store.commands_after(session, row.instrument, after=loaded.seq, upto=row.last_seq):
        band_high = engine.price_band.high_fen
        events = engine.apply(store.command_of(command.command))
        loaded.holds = _settlement(row, events, loaded.holds, band_high).holds
        _note_client_ids(loaded.client_ids, events)
        loaded.forget(_touched_ids(events))  # another process's command: what it changed is read back
        loaded.bought = {}
        loaded.seq = command.seq
    return engine


def _instrument_row(session: Session, instrument: str) -> ExchangeInstrument:
    row = store.instrument(session, instrument)
    if row is None:
        raise ExchangeError(f"'{instrument}' is not listed on the exchange", code="instrument_not_listed")
    return row


@contextmanager
def _reading(session: Session, instrument: str) -> Iterator[tuple[ExchangeInstrument, MatchingEngine, int]]:
    """The instrument, its engine caught up with the log and the log position it reflects (no database lock)."""
    row = _instrument_row(session, instrument)
    loaded = _loaded(session, instrument)
    with loaded.lock:
        engine = _catch_up(session, row, loaded, exact=False)
        yield row, engine, loaded.seq


# -- running commands: a batch in one transaction -------------------------------------------------------

Key = tuple[str, str]  # (account id, instrument)


@dataclass(frozen=True, slots=True)
class _OrderAnswer:
    """A command's answer before the batch is written: the order to describe, and whether the command created it."""

    order_id: int
    created: bool


@dataclass(slots=True)
class _Run:
    """One transaction of commands on one instrument: a batch, applied in order and written together.

    Each command is applied to the engine and settled at once, so the next command of the batch sees its
    book, holds and balances; its ledger entry is checked by ``accounting.ledger`` against the balances
    locked in this transaction. Its log row, entry, postings, trades and order rows are collected and
    written with the rest of the batch in a few bulk statements just before the one commit.
    """

    session: Session
    row: ExchangeInstrument
    loaded: _Loaded
    engine: MatchingEngine
    at: datetime
    actor: Actor
    ledger: LedgerState = field(default_factory=LedgerState)
    locked: set[Key] = field(default_factory=set)
    #: Tonnes each account bought today, as committed before this batch (T+1), and bought in this batch.
    bought_before: dict[str, int] = field(default_factory=dict)
    bought_now: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    entries: list[dict[str, Any]] = field(default_factory=list)
    postings: list[dict[str, Any]] = field(default_factory=list)
    #: The batch's net change of each balance, written as one relative update per balance.
    deltas: dict[Key, int] = field(default_factory=dict)
    commands: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    new_orders: set[int] = field(default_factory=set)
    #: The day rows this batch read (the current one with the instrument's row) or updates, by trading day.
    bars: dict[str, ExchangeDay] = field(default_factory=dict)

    # -- applying ---------------------------------------------------------------------------------

    def apply(self, command: ex.Command) -> tuple[ex.Event, ...]:
        """Apply, settle, log and project one command (its rows are written with the batch)."""
        row = self.row
        band_high = self.engine.price_band.high_fen
        events = self.engine.apply(command)
        self.applied += 1
        seq = row.last_seq + 1
        result = _settlement(row, events, self.loaded.holds, band_high)
        self.loaded.holds = result.holds
        _note_client_ids(self.loaded.client_ids, events)
        entry_id = self._post(result.changes, kind="exchange", memo=f"{type(command).__name__} #{seq}",
                              reference=f"exchange/{row.instrument}/{seq}")
        # the command log (append-only, with actor, time and this entry's id) is the record of the change
        self.commands.append({"instrument": row.instrument, "seq": seq, "kind": type(command).__name__,
                              "command": store.document_of(command),
                              "events": [store.document_of(e) for e in events], "actor_id": self.actor.actor_id,
                              "received_at": real_now(), "entry_id": entry_id})
        row.last_seq = seq
        self._project_orders(events, seq)
        fees = iter(result.fees)
        for event in events:
            if isinstance(event, ex.TradeExecuted):
                self._record_trade(event, next(fees), seq=seq, entry_id=entry_id)
        return events

    def apply_accepted(self, command: ex.Command) -> tuple[ex.Event, ...]:
        """Apply ``command``; CommandRefusedError (the command stays in the log) when the engine refused it."""
        events = self.apply(command)
        rejected = next((e for e in events if isinstance(e, ex.OrderRejected)), None)
        if rejected is not None:
            raise CommandRefusedError(_REFUSALS.get(rejected.code, rejected.code.replace("_", " ")),
                                      code=rejected.code)
        return events

    def _post(self, changes: dict[Key, int], *, kind: str, memo: str, reference: str) -> str | None:
        postings = postings_of(changes)
        if not postings:
            return None
        self.lock(key for key, change in changes.items() if change < 0)  # a debit is checked against its balance
        self.know_accounts(account for account, _ in changes)
        entry = JournalEntry(entry_id=ledger.new_entry_id(), kind=kind, postings=postings, memo=memo)
        self.ledger = self.ledger.post(entry)  # the ledger's rules; LedgerError fails the whole batch
        self.entries.append({"entry_id": entry.entry_id, "kind": kind, "memo": memo, "reverses": None,
                             "reference": reference, "actor_id": self.actor.actor_id, "role": self.actor.role,
                             "created_at": real_now()})
        self.postings.extend({"entry_id": entry.entry_id, "account_id": p.account_id, "instrument": p.instrument,
                              "side": p.side, "quantity": p.quantity} for p in postings)
        for key, change in changes.items():
            self.deltas[key] = self.deltas.get(key, 0) + change
        return entry.entry_id

    def _project_orders(self, events: tuple[ex.Event, ...], seq: int) -> None:
        takes = {e.take_id: e for e in events if isinstance(e, ex.QuoteTaken)}
        created = _created_ids(events)
        moment = real_now()
        for order_id in sorted(_touched_ids(events)):
            values = _order_values(self.engine, order_id, takes.get(order_id))
            if values is None:
                continue
            hold = self.loaded.holds.get((order_id, values["account_id"]))
            values.update(instrument=self.row.instrument, order_id=order_id, held=hold.held if hold else 0,
                          hold_open_t=hold.open_t if hold else 0, updated_seq=seq, updated_at=moment)
            if order_id in self.orders:
                self.orders[order_id].update(values)
                continue
            if order_id in created:
                values.update(placed_by=self.actor.actor_id, created_seq=seq, created_at=moment)
                self.new_orders.add(order_id)
            self.orders[order_id] = values

    def _record_trade(self, event: ex.TradeExecuted, fees: TradeFees, *, seq: int, entry_id: str | None) -> None:
        row = self.row
        trading_day = row.trading_day or self.at.astimezone(CHINA_TZ).date().isoformat()
        self.trades.append({
            "instrument": row.instrument, "trade_id": event.trade_id, "seq": seq, "mode": event.mode,
            "price_fen": event.price_fen, "quantity_t": event.quantity_t, "buy_order_id": event.buy_order_id,
            "sell_order_id": event.sell_order_id, "buy_account_id": event.buy_account_id,
            "sell_account_id": event.sell_account_id, "aggressor_side": event.aggressor_side,
            "buyer_fee_fen": fees.buyer_fee_fen, "seller_fee_fen": fees.seller_fee_fen, "trading_day": trading_day,
            "executed_at": self.at, "entry_id": entry_id if fees.settled else None})
        if trading_day == row.trading_day:
            self.bought_now[event.buy_account_id] = self.bought_now.get(event.buy_account_id, 0) + event.quantity_t
        bar = self.bars.get(trading_day)
        if bar is None:
            bar = self.bars[trading_day] = _day_row(self.session, row, trading_day)
        value = event.price_fen * event.quantity_t
        bar.trades += 1
        if event.mode in LISTED_MODES:
            bar.open_fen = bar.open_fen if bar.open_fen is not None else event.price_fen
            bar.high_fen = max(bar.high_fen or event.price_fen, event.price_fen)
            bar.low_fen = min(bar.low_fen or event.price_fen, event.price_fen)
            bar.listed_volume_t += event.quantity_t
            bar.listed_value_fen += value
        else:
            bar.block_volume_t += event.quantity_t
            bar.block_value_fen += value

    # -- balances and accounts, as this transaction locked them -----------------------------------------

    def lock(self, keys: Iterable[Key]) -> None:
        """Lock and load the balances of ``keys`` not yet locked in this transaction (one sorted statement).

        Only a debit needs its balance: the batch locks its senders' balances and the clearing account's
        first. A balance that is only credited (a trade's resting counterparty, the fee account) is not
        read at all: its increase is written as a relative update, which locks the row then. Should a
        credited balance be debited later in the batch, it is locked and read here, plus what the batch
        already credited to it.
        """
        missing = set(keys) - self.locked
        if not missing:
            return
        more = ledger_store.lock_state(self.session, keys=missing, known_accounts=self.loaded.accounts)
        self.loaded.accounts.update(more.accounts)
        state = self.ledger
        balances = {**state.balances, **{k: more.balances.get(k, 0) + self.deltas.get(k, 0) for k in missing}}
        self.ledger = replace(state, accounts=MappingProxyType({**state.accounts, **more.accounts}),
                              balances=MappingProxyType({k: v for k, v in balances.items() if v}),
                              encumbrances=MappingProxyType({**state.encumbrances, **more.encumbrances}))
        self.locked |= missing

    def know_accounts(self, account_ids: Iterable[str]) -> None:
        """Give the ledger's rules the accounts an entry touches (from memory; unknown ones read in one query)."""
        state, cache = self.ledger, self.loaded.accounts
        wanted = set(account_ids) - set(state.accounts)
        if not wanted:
            return
        if unseen := sorted(wanted - set(cache)):
            cache.update((r.account_id, ledger_store.account_of(r)) for r in self.session.scalars(
                select(LedgerAccount).where(LedgerAccount.account_id.in_(unseen))))
        self.ledger = replace(state, accounts=MappingProxyType(
            {**state.accounts, **{a: cache[a] for a in wanted if a in cache}}))

    def trading_account(self, actor: Actor, account_id: str) -> None:
        """Refuse unless ``account_id`` is the actor's own compliance or trading account (another's is unknown)."""
        self.lock(((account_id, CNY), (account_id, self.row.instrument)))
        account = self.ledger.accounts.get(account_id)
        if account is None or not ledger.owns_account(actor, account_id):
            raise ExchangeError(f"unknown account '{account_id}'", code="unknown_account")
        if account.kind not in TRADING_ACCOUNT_KINDS:
            raise ExchangeError(f"account '{account_id}' is a {account.kind} account; trade from a compliance or "
                                "trading account", code="account_cannot_trade")

    def prefetch_bought(self, account_ids: Iterable[str]) -> None:
        """Today's purchases of the accounts about to sell (T+1 keeps them from a sale): as this process
        remembers them (``_Loaded.bought``), else in one query."""
        row = self.row
        if row.day_open and row.settlement == SETTLE_AT_TRADE and row.trading_day:
            remembered = self.loaded.bought if self.loaded.bought_day == row.trading_day else {}
            wanted = set(account_ids) - set(self.bought_before)
            self.bought_before.update((a, remembered[a]) for a in wanted if a in remembered)
            if unknown := sorted(wanted - set(remembered)):
                bought = store.bought_on_by_account(self.session, row.instrument, account_ids=unknown,
                                                    trading_day=row.trading_day)
                self.bought_before.update((a, bought.get(a, 0)) for a in unknown)

    def require(self, *, account_id: str, side: str, amount: int) -> None:
        """Refuse (before anything is applied) when the account lacks the cash or the sellable units."""
        instrument = self.row.instrument
        asset = CNY if side == BUY else instrument
        self.lock(((account_id, asset),))
        available = self.ledger.available(account_id=account_id, instrument=asset)
        if side == BUY:
            if available < amount:
                raise ExchangeError(f"account '{account_id}' has {available} fen available; this needs {amount} "
                                    "fen (price x quantity and the fee)", code="insufficient_funds")
            return
        # T+1: today's purchases are not sellable; with end-of-day settlement they are not delivered yet either
        bought_today = 0
        if self.row.day_open and self.row.settlement == SETTLE_AT_TRADE:
            self.prefetch_bought((account_id,))
            bought_today = self.bought_before.get(account_id, 0) + self.bought_now.get(account_id, 0)
        sellable = available - bought_today
        if sellable < amount:
            raise ExchangeError(f"account '{account_id}' can sell {max(sellable, 0)} t of {instrument} (frozen, "
                                f"pledged and today's purchases excluded: {bought_today} t bought today); this "
                                f"needs {amount} t", code="insufficient_holdings")

    def own(self, actor: Actor, order_id: int, kind: str) -> tuple[str, str | None]:
        """(account, counterparty) of an order, quote or block proposal the actor may act on (a block's
        counterparty may answer it too); ``unknown_order`` otherwise, as for an id that does not exist."""
        engine = self.engine
        status = (engine.order_status(order_id) if kind == "order" else engine.quote_status(order_id)
                  if kind == "quote" else engine.block_status(order_id))
        counterparty = status.counterparty_id if isinstance(status, ex.BlockStatus) else None
        if status is None or not any(ledger.owns_account(actor, p) for p in (status.account_id, counterparty) if p):
            raise ExchangeError(f"no {kind} {order_id} of yours on {self.row.instrument}", code="unknown_order")
        return status.account_id, counterparty

    # -- writing -------------------------------------------------------------------------------------

    def write(self) -> None:
        """Write what the batch collected, whatever the number of commands: one statement on PostgreSQL."""
        session, orders = self.session, _TABLES[ExchangeOrder]
        write_rows(session.connection(), inserts=[
            (_TABLES[JournalEntryRow], self.entries), (_TABLES[PostingRow], self.postings),
            (_TABLES[ExchangeCommand], self.commands),
            (orders, [v for order_id, v in self.orders.items() if order_id in self.new_orders]),
            (_TABLES[ExchangeTrade], self.trades)],
            updates=[(orders, [v for order_id, v in self.orders.items() if order_id not in self.new_orders],
                      ("instrument", "order_id")),
                     *take_updates(session, (ExchangeInstrument, ExchangeDay))],  # the log position, the day bars
            additions=[store.balance_additions({k: v for k, v in self.deltas.items() if v})])
        session.flush()  # whatever else the batch changed

    def describe(self, order_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The orders the answers show, with their fills, as written.

        An order this batch created, or one this process wrote and still remembers (``_Loaded.views``), is
        described from the rows written; the others are read back, two queries for the whole batch.
        """
        described: dict[int, dict[str, Any]] = {}
        ids = []
        for order_id in sorted(set(order_ids)):
            known = self.known_row(order_id)
            if known is None:
                ids.append(order_id)
                continue
            trades = [SimpleNamespace(**t) for t in self.known_fills(order_id, known["account_id"])]
            described[order_id] = describe_order(SimpleNamespace(**known), trades=trades)  # type: ignore[arg-type]
        if not ids:
            return described
        instrument = self.row.instrument
        fresh = {"populate_existing": True}
        rows = self.session.scalars(select(ExchangeOrder).where(
            ExchangeOrder.instrument == instrument, ExchangeOrder.order_id.in_(ids)).execution_options(**fresh))
        fills: dict[tuple[int, str], list[ExchangeTrade]] = {}
        for t in self.session.scalars(select(ExchangeTrade).where(
                ExchangeTrade.instrument == instrument,
                or_(ExchangeTrade.buy_order_id.in_(ids), ExchangeTrade.sell_order_id.in_(ids)))
                .order_by(ExchangeTrade.trade_id).execution_options(**fresh)):
            fills.setdefault((t.buy_order_id, t.buy_account_id), []).append(t)
            fills.setdefault((t.sell_order_id, t.sell_account_id), []).append(t)
        described.update((r.order_id, describe_order(r, trades=fills.get((r.order_id, r.account_id), [])))
                         for r in rows)
        return described

    def known_row(self, order_id: int) -> dict[str, Any] | None:
        """The order's columns as this batch leaves them, when known without reading (created or remembered)."""
        if order_id in self.new_orders:
            return self.orders[order_id]
        remembered = self.loaded.views.get(order_id)
        return None if remembered is None else {**remembered, **self.orders.get(order_id, {})}

    def known_fills(self, order_id: int, account_id: str) -> list[dict[str, Any]]:
        """The fills of a known order: those remembered, then this batch's, in trade order."""
        earlier = [] if order_id in self.new_orders else self.loaded.fills.get(order_id, [])
        return earlier + [t for t in self.trades if (t["buy_order_id"], t["buy_account_id"]) == (order_id, account_id)
                          or (t["sell_order_id"], t["sell_account_id"]) == (order_id, account_id)]

    # -- the trading day ----------------------------------------------------------------------------

    def roll(self) -> None:
        """Close the day when its last session has ended; open the next when its first session has begun."""
        due = day_roll(self.at, trading_day=self.row.trading_day, day_open=self.row.day_open, rules=self.engine.rules)
        if due.close_at is not None:
            self.close_day(at=due.close_at)
        if due.opens:
            self.open_day()

    def open_day(self) -> None:
        row = self.row
        day = self.at.astimezone(CHINA_TZ).date().isoformat()
        self.apply(ex.OpenDay(at=self.at, previous_close_fen=row.previous_close_fen))
        row.trading_day, row.day_open = day, True
        _day_row(self.session, row, day)

    def close_day(self, *, at: datetime) -> None:
        row = self.row
        assert row.trading_day is not None  # an open day has a date  # noqa: S101
        self.apply(ex.CloseDay(at=at))
        bar = _day_row(self.session, row, row.trading_day)
        close = _vwap(bar.listed_value_fen, bar.listed_volume_t) if bar.listed_volume_t else bar.previous_close_fen
        bar.close_fen = close
        row.previous_close_fen, row.day_open = close, False
        if row.settlement == SETTLE_END_OF_DAY:
            self._settle_day(row.trading_day)
        if self.session.get(ReferencePrice, (row.instrument, row.trading_day)) is None:
            self.session.add(ReferencePrice(
                instrument=row.instrument, day=row.trading_day, price_fen=close,
                volume=bar.listed_volume_t + bar.block_volume_t, recorded_by=self.actor.actor_id,
                recorded_at=real_now(), source="exchange close: volume-weighted average of the day's listed trades"
                if bar.listed_volume_t else "exchange close: no listed trade, previous close carried"))
        self.session.flush()

    def _settle_day(self, trading_day: str) -> None:
        row = self.row
        trades = store.unsettled_trades(self.session, row.instrument, trading_day=trading_day)
        settled = store.settlement(self.session, row.instrument, trading_day)
        if settled is not None:
            return
        changes = settle_pending(map(_pending, trades), instrument=row.instrument,
                                 clearing_account=clearing_account_id(row.instrument),
                                 fees_account=ledger.system_account_id(FEES))
        entry_id = self._post(changes, kind="exchange_settle", memo=f"settlement of {trading_day}",
                              reference=f"exchange/{row.instrument}/settle/{trading_day}")
        self.session.add(ExchangeSettlement(instrument=row.instrument, trading_day=trading_day, entry_id=entry_id,
                                            trades=len(trades), settled_at=real_now()))


def _pending(trade: ExchangeTrade) -> PendingTrade:
    """A stored trade as the settlement rules see one waiting for the end of the day."""
    return PendingTrade(trade_id=trade.trade_id, price_fen=trade.price_fen, quantity_t=trade.quantity_t,
                        buy_account_id=trade.buy_account_id, sell_account_id=trade.sell_account_id,
                        buyer_fee_fen=trade.buyer_fee_fen, seller_fee_fen=trade.seller_fee_fen)


def _vwap(value_fen: int, volume_t: int) -> int:
    """The volume-weighted average price, rounded half up to the fen (integer arithmetic)."""
    return (2 * value_fen + volume_t) // (2 * volume_t)


def _day_row(session: Session, row: ExchangeInstrument, trading_day: str) -> ExchangeDay:
    bar = store.day(session, row.instrument, trading_day)
    if bar is None:
        bar = ExchangeDay(instrument=row.instrument, trading_day=trading_day, previous_close_fen=row.previous_close_fen,
                          listed_volume_t=0, listed_value_fen=0, block_volume_t=0, block_value_fen=0, trades=0)
        session.add(bar)
        session.flush()
    return bar


def _touched_ids(events: tuple[ex.Event, ...]) -> set[int]:
    ids: set[int] = set()
    for e in events:
        if isinstance(e, ex.OrderAccepted | ex.OrderCancelled | ex.OrderExpired | ex.OrderReplaced):
            ids.add(e.order_id)
        elif isinstance(e, ex.TradeExecuted):
            ids.update((e.buy_order_id, e.sell_order_id))
        elif isinstance(e, ex.QuotePosted | ex.QuoteCancelled):
            ids.add(e.quote_id)
        elif isinstance(e, ex.QuoteTaken):
            ids.update((e.quote_id, e.take_id))
        elif isinstance(e, ex.BlockProposed | ex.BlockConfirmed | ex.BlockCancelled):
            ids.add(e.proposal_id)
    return ids


def _created_ids(events: tuple[ex.Event, ...]) -> set[int]:
    """The orders, quotes, takes and block proposals the events create."""
    return {e.order_id if isinstance(e, ex.OrderAccepted) else e.quote_id if isinstance(e, ex.QuotePosted)
            else e.take_id if isinstance(e, ex.QuoteTaken) else e.proposal_id
            for e in events if isinstance(e, ex.OrderAccepted | ex.QuotePosted | ex.QuoteTaken | ex.BlockProposed)}


def _order_values(engine: MatchingEngine, order_id: int, take: ex.QuoteTaken | None) -> dict[str, Any] | None:
    """The columns of an order, quote, take or block proposal as the engine has it now."""
    if (order := engine.order_status(order_id)) is not None:
        return {"kind": "order", "account_id": order.account_id, "client_order_id": order.client_order_id,
                "side": order.side, "order_type": order.order_type, "time_in_force": order.time_in_force,
                "price_fen": order.price_fen, "quantity_t": order.ordered_t, "filled_t": order.filled_t,
                "remaining_t": order.remaining_t, "cancelled_t": order.cancelled_t, "state": order.state,
                "reason": order.reason, "counterparty_id": None}
    if (quote := engine.quote_status(order_id)) is not None:
        return {"kind": "quote", "account_id": quote.account_id, "client_order_id": quote.client_order_id,
                "side": quote.side, "order_type": "limit", "time_in_force": "day", "price_fen": quote.price_fen,
                "quantity_t": quote.quantity_t, "filled_t": quote.taken_t, "remaining_t": quote.remaining_t,
                "cancelled_t": quote.cancelled_t, "state": quote.state, "reason": quote.reason,
                "counterparty_id": None}
    if (block := engine.block_status(order_id)) is not None:
        executed = block.state == ex.EXECUTED
        return {"kind": "block", "account_id": block.account_id, "client_order_id": block.client_order_id,
                "side": block.side, "order_type": "limit", "time_in_force": "day", "price_fen": block.price_fen,
                "quantity_t": block.quantity_t, "filled_t": block.quantity_t if executed else 0,
                "remaining_t": block.quantity_t if block.state == ex.PROPOSED else 0,
                "cancelled_t": block.quantity_t if block.state == ex.CANCELLED else 0, "state": block.state,
                "reason": block.reason, "counterparty_id": block.counterparty_id}
    if take is not None:
        return {"kind": "take", "account_id": take.account_id, "client_order_id": take.client_order_id,
                "side": take.side, "order_type": "limit", "time_in_force": "ioc", "price_fen": take.price_fen,
                "quantity_t": take.quantity_t, "filled_t": take.quantity_t, "remaining_t": 0, "cancelled_t": 0,
                "state": ex.FILLED, "reason": None, "counterparty_id": None}
    return None


class CommandRefusedError(ExchangeError):
    """The engine refused a command (logged, nothing else changed); ``code`` says which rule.

    A command on an order, quote or proposal that has already ended (``ORDER_ENDED``) is answered with it
    as it is now (``order``, with its fills): the trader learns how it ended without reading it again.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)
        #: The order the answer shows (named while the batch runs, described once it is written).
        self.order_id: int | None = None
        self.order: dict[str, Any] | None = None


#: Refusals of a command on something that has already ended: their answer shows it (filled, cancelled...).
ORDER_ENDED = frozenset({"order_not_open", "quote_not_open", "proposal_not_open"})


_REFUSALS = {
    "market_closed": "the market is closed (sessions 09:30-11:30 and 13:00-15:00 China time on trading days)",
    "halted": "trading in this instrument is halted by an officer",
    "account_restricted": "this account is restricted by an officer: it may only cancel",
    "outside_band": "the price is outside today's price band",
    "tick_size": "the price is not a multiple of the tick",
    "lot_size": "the quantity is not a multiple of the lot",
    "order_too_large": "a listed order must be below the block minimum (100,000 t by default)",
    "block_too_small": "a block agreement is at least the block minimum (100,000 t by default)",
    "open_order_cap": "the account already has the most open orders the instrument allows",
    "duplicate_client_order_id": "this client order id was used by another order of the account",
}

#: A ticket whose batch failed through no fault of its own is tried again at most this many times.
MAX_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class Submission:
    """A command ready for its instrument's queue: ``work`` runs in a batch, as ``actor``; ``accounts`` are
    those it may take cash or units from (their balances are locked when the batch starts)."""

    instrument: str
    actor: Actor
    work: Callable[[_Run], Any]
    accounts: tuple[str, ...] = ()


def _submit(session: Session, submission: Submission) -> Any:
    """Run ``submission`` in its instrument's next batch; its answer once that batch is committed.

    The request's own transaction is ended first: a request waiting for its batch holds no database lock
    (on SQLite the write lock belongs to the open transaction, and the writer needs it).
    """
    if session.in_transaction():
        session.commit()
    try:
        return _loaded(session, submission.instrument).queue.run(_ticket(submission, bind=session.get_bind()))
    finally:
        session.expire_all()  # rows this session read before may have changed in the batch


async def submit_async(engine: Engine, submission: Submission) -> Any:
    """:func:`_submit` for a coroutine, which has no session of its own: it waits for the batch on the event
    loop, holding no worker thread."""
    return await _loaded_on(engine, submission.instrument).queue.run_async(_ticket(submission, bind=engine))


def _ticket(submission: Submission, *, bind: Engine | Connection) -> Ticket:
    return Ticket(work=submission.work, actor=submission.actor, accounts=submission.accounts, bind=bind)


def _begin(session: Session, instrument: str, loaded: _Loaded, batch: list[Ticket]) -> _Run:
    """The locked, caught-up instrument whose day has been rolled, with its senders' balances locked."""
    session.expire_all()  # under the lock every row is read afresh
    row, clock, bar = store.locked_instrument(session, instrument)
    if row is None:
        raise ExchangeError(f"'{instrument}' is not listed on the exchange", code="instrument_not_listed")
    engine = _catch_up(session, row, loaded, exact=True)
    run = _Run(session=session, row=row, loaded=loaded, engine=engine, at=_moment(clock), actor=batch[0].actor,
               bars={} if bar is None else {bar.trading_day: bar})
    senders = sorted({a for ticket in batch for a in ticket.accounts} | {clearing_account_id(instrument)})
    run.lock((a, asset) for a in senders for asset in (CNY, instrument))
    run.roll()
    run.prefetch_bought(senders)
    return run


@dataclass(slots=True)
class _Progress:
    """How far a batch got: what its failure concerns."""

    run: _Run | None = None
    current: Ticket | None = None
    committing: bool = False
    #: The log position the engine reached, read before the commit: once committed, another process may
    #: append at once, and a read of the row after the commit would count its commands as this engine's.
    seq: int | None = None
    #: The trading day the batch committed in (read before the commit too).
    trading_day: str | None = None


class _NothingToWriteError(Exception):
    """Every command of the batch was refused before reaching the engine: it writes nothing, not even a roll."""


def _write_batch(loaded: _Loaded, batch: list[Ticket]) -> None:
    """Apply the batch's commands in order in one transaction, commit once, then decide every ticket.

    A command refused before it reached the engine (a missing balance, an unknown order) wrote nothing
    and is answered with its error; one the engine refused is logged and answered with its code. Any
    other failure rolls the whole transaction back and drops the engine (the next batch rebuilds it from
    the log): the command that failed gets the error, the others of the batch are tried again (nothing of
    theirs was kept, nobody was acknowledged). A failure of the commit itself is everybody's.
    """
    progress = _Progress()
    with loaded.lock:
        try:
            described = _commit_batch(loaded, batch, progress)
        except Exception as err:  # noqa: BLE001 - every failure is answered to the tickets it concerns
            _batch_failed(loaded, batch, progress, err)
            return
    for ticket in batch:
        if isinstance(ticket.pending, BaseException):
            if isinstance(ticket.pending, CommandRefusedError) and ticket.pending.order_id is not None:
                ticket.pending.order = described.get(ticket.pending.order_id)
            ticket.fail(ticket.pending)
        elif isinstance(ticket.pending, _OrderAnswer):
            ticket.succeed((ticket.pending.created, described[ticket.pending.order_id]))
        else:
            ticket.succeed(ticket.pending)


def _commit_batch(loaded: _Loaded, batch: list[Ticket], progress: _Progress) -> dict[int, dict[str, Any]]:
    """The batch in a session of its own, on the writer's connection to the database of its first ticket."""
    with Session(bind=loaded.connection_to(batch[0].bind), expire_on_commit=False) as session:
        try:
            described = _apply_and_commit(session, loaded.instrument, loaded, batch, progress)
        except Exception:
            session.rollback()
            raise
        finally:
            session.expire_all()
    if progress.seq is not None:
        loaded.seq = progress.seq
    if progress.run is not None:
        loaded.remember(progress.run, trading_day=progress.trading_day)
    return described


def _batch_failed(loaded: _Loaded, batch: list[Ticket], progress: _Progress, err: Exception) -> None:
    """After a rollback: a fresh connection and, if commands were applied, a fresh engine; answer the tickets."""
    loaded.close_connection()
    if progress.run is None or progress.run.applied:
        loaded.drop()
    if isinstance(err, _NothingToWriteError):  # the day's roll waits for a command that is accepted
        for ticket in batch:
            ticket.fail(ticket.pending)
    else:
        _fail(loaded.queue, batch, err, culprit=progress.current, committing=progress.committing,
              refused=progress.run is None and isinstance(err, AccountingError))


def _apply_and_commit(session: Session, instrument: str, loaded: _Loaded, batch: list[Ticket],
                      progress: _Progress) -> dict[int, dict[str, Any]]:
    """The batch's transaction: every command in order, the bulk writes, the orders to answer with, the commit."""
    with session.no_autoflush:  # the batch's changes are written by run.write(), not before each read
        progress.run = run = _begin(session, instrument, loaded, batch)
        for ticket in batch:
            progress.current = ticket
            _run_ticket(run, ticket)
        progress.current = None
        if all(isinstance(t.pending, BaseException) and not isinstance(t.pending, CommandRefusedError)
               for t in batch):
            raise _NothingToWriteError
    run.write()
    described = run.describe(_shown_order_ids(batch))
    progress.committing, progress.seq, progress.trading_day = True, run.row.last_seq, run.row.trading_day
    session.commit()
    return described


def _shown_order_ids(batch: list[Ticket]) -> Iterator[int]:
    """The orders the batch's answers show: those placed or changed, and those a refusal found ended."""
    for ticket in batch:
        if isinstance(ticket.pending, _OrderAnswer):
            yield ticket.pending.order_id
        elif isinstance(ticket.pending, CommandRefusedError) and ticket.pending.order_id is not None:
            yield ticket.pending.order_id


def _run_ticket(run: _Run, ticket: Ticket) -> None:
    """Run one command of the batch; a refusal becomes its answer, any failure after the engine moved is raised."""
    applied = run.applied
    run.actor = ticket.actor
    try:
        ticket.pending = ticket.work(run)
    except AccountingError as err:
        if run.applied != applied and not isinstance(err, CommandRefusedError):
            raise
        ticket.pending = err


def _fail(queue: CommandQueue, batch: list[Ticket], err: Exception, *, culprit: Ticket | None, refused: bool,
          committing: bool) -> None:
    """Decide the tickets of a batch that was rolled back: who gets the error, who is tried again."""
    if refused:  # the instrument itself refused (not listed): nothing was applied for anybody
        for ticket in batch:
            ticket.fail(err)
        return
    if culprit is not None:
        culprit.fail(err)
    again = [t for t in batch if t is not culprit and t.attempts + 1 < MAX_ATTEMPTS and not committing]
    for ticket in batch:
        if ticket is not culprit and ticket not in again:
            ticket.fail(err)
    queue.retry(again)


def _new_id(events: tuple[ex.Event, ...]) -> int:
    """The id of the order, quote, take or block proposal an accepted command created."""
    accepted = next(e for e in events if isinstance(e, ex.OrderAccepted | ex.QuotePosted | ex.QuoteTaken
                                                     | ex.BlockProposed))
    return (accepted.order_id if isinstance(accepted, ex.OrderAccepted) else accepted.quote_id
            if isinstance(accepted, ex.QuotePosted) else accepted.take_id if isinstance(accepted, ex.QuoteTaken)
            else accepted.proposal_id)


# -- instruments ------------------------------------------------------------------------------------------


def list_instrument(session: Session, *, actor: Actor, instrument: str, reference_price_fen: int, fee_bp: int,
                    settlement: str, rules: InstrumentRules) -> dict[str, Any]:
    """List ``instrument`` for trading around ``reference_price_fen`` (its first day's previous close)."""
    kind = parse_instrument(instrument).kind
    if kind not in ("allowance", "offset"):
        raise ExchangeError(f"only allowances (CEA-<year>) and CCER trade on the exchange, not {instrument}",
                            code="instrument_not_tradable")
    if settlement not in SETTLEMENT_MODES:
        raise ExchangeError(f"settlement is one of {', '.join(SETTLEMENT_MODES)}", code="invalid_settlement")
    if not 0 <= fee_bp < 10_000 or reference_price_fen <= 0:
        raise ExchangeError("the fee is 0-9999 basis points and the reference price positive", code="invalid_terms")
    if store.instrument(session, instrument) is not None:
        raise ExchangeError(f"{instrument} is already listed", code="already_listed")
    ledger.ensure_system_accounts(session)
    ledger._insert_missing_accounts(session, [{  # noqa: SLF001 - the same idempotent insert the ledger uses
        "account_id": clearing_account_id(instrument), "kind": CLEARING, "owner_id": None,
        "name": f"Exchange clearing for {instrument}", "created_at": real_now(), "created_by": actor.actor_id}])
    row = ExchangeInstrument(instrument=instrument, rules=store.rules_document(rules),
                             genesis_close_fen=reference_price_fen, fee_bp=fee_bp, settlement=settlement, last_seq=0,
                             trading_day=None, day_open=False, previous_close_fen=reference_price_fen,
                             created_by=actor.actor_id, created_at=real_now())
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="exchange.list", target=f"exchange/{instrument}",
                 after={"reference_price_fen": reference_price_fen, "fee_bp": fee_bp, "settlement": settlement,
                        "rules": row.rules})
    session.commit()
    return instrument_view(session, instrument=instrument)


def instrument_view(session: Session, *, instrument: str) -> dict[str, Any]:
    """An instrument's rules, its day, its bands and whether it trades now."""
    with _reading(session, instrument) as (row, engine, seq):
        moment = now(session)
        rules = engine.rules
        return {
            "instrument": row.instrument, "fee_bp": row.fee_bp, "settlement": row.settlement,
            "trading_day": row.trading_day, "day_open": row.day_open, "previous_close_fen": row.previous_close_fen,
            "halted": engine.halted, "listed_open": is_open(moment, rules=rules) and not engine.halted,
            "block_open": is_open(moment, rules=rules, kind="block") and not engine.halted,
            "now": moment,
            "listed_band": {"low_fen": engine.price_band.low_fen, "high_fen": engine.price_band.high_fen},
            "block_band": {"low_fen": engine.block_band.low_fen, "high_fen": engine.block_band.high_fen},
            "rules": store.rules_document(rules), "restricted_accounts": sorted(engine.restricted_accounts),
            "last_seq": seq,
        }


def list_instruments(session: Session) -> list[dict[str, Any]]:
    return [instrument_view(session, instrument=row.instrument) for row in store.instruments(session)]


# -- trader commands --------------------------------------------------------------------------------------


def describe_order(row: ExchangeOrder, *, trades: list[ExchangeTrade] | None = None) -> dict[str, Any]:
    view = {"instrument": row.instrument, "order_id": row.order_id, "kind": row.kind, "account_id": row.account_id,
            "client_order_id": row.client_order_id, "side": row.side, "order_type": row.order_type,
            "time_in_force": row.time_in_force, "price_fen": row.price_fen, "quantity_t": row.quantity_t,
            "filled_t": row.filled_t, "remaining_t": row.remaining_t, "cancelled_t": row.cancelled_t,
            "state": row.state, "reason": row.reason, "counterparty_id": row.counterparty_id,
            "held_fen": row.held if row.side == BUY else 0, "held_t": row.held if row.side == SELL else 0,
            "created_at": row.created_at, "updated_at": row.updated_at}
    if trades is not None:
        view["fills"] = [describe_fill(t, account_id=row.account_id) for t in trades]
    return view


def describe_fill(trade: ExchangeTrade, *, account_id: str) -> dict[str, Any]:
    side = BUY if trade.buy_account_id == account_id else SELL
    return {"trade_id": trade.trade_id, "side": side, "price_fen": trade.price_fen, "quantity_t": trade.quantity_t,
            "value_fen": trade.price_fen * trade.quantity_t,
            "fee_fen": trade.buyer_fee_fen if side == BUY else trade.seller_fee_fen,
            "liquidity": "taker" if trade.aggressor_side == side else "maker", "mode": trade.mode,
            "order_id": trade.buy_order_id if side == BUY else trade.sell_order_id,
            "trading_day": trade.trading_day, "executed_at": trade.executed_at, "settled": trade.entry_id is not None}


def _new(run: _Run, command: ex.Command) -> _OrderAnswer:
    """Apply a command that creates an order, quote, take or proposal; the answer names what it created."""
    return _OrderAnswer(order_id=_new_id(run.apply_accepted(command)), created=True)


def _changed(run: _Run, command: ex.Command, order_id: int) -> _OrderAnswer:
    """Apply a command on an existing order; the answer (or the refusal, once it has ended) is the order with
    every fill so far."""
    try:
        run.apply_accepted(command)
    except CommandRefusedError as refused:
        if refused.code in ORDER_ENDED:
            refused.order_id = order_id
        raise
    return _OrderAnswer(order_id=order_id, created=False)


def _resent(run: _Run, account_id: str, client_order_id: str) -> _OrderAnswer | None:
    """The existing order when the account used ``client_order_id`` before (a resend), else None."""
    found = run.loaded.client_ids.get((account_id, client_order_id))
    return None if found is None else _OrderAnswer(order_id=found, created=False)


def placing(*, actor: Actor, instrument: str, account_id: str, client_order_id: str, side: str, quantity_t: int,
            order_type: str = ex.LIMIT, time_in_force: str = ex.DAY, price_fen: int | None = None) -> Submission:
    """An order to place; its answer is (created, the order with its fills), as :func:`place_order`'s."""
    def work(run: _Run) -> _OrderAnswer:
        run.trading_account(actor, account_id)
        if (found := _resent(run, account_id, client_order_id)) is not None:
            return found
        command = ex.PlaceOrder(account_id=account_id, client_order_id=client_order_id, side=side,
                                quantity_t=quantity_t, at=run.at, order_type=order_type, time_in_force=time_in_force,
                                price_fen=price_fen)
        if run.engine.place_rejection(command) is None:
            price = price_fen if price_fen is not None else run.engine.price_band.high_fen
            run.require(account_id=account_id, side=side,
                        amount=hold_for(side=side, price_fen=price, quantity_t=quantity_t, fee_bp=run.row.fee_bp))
        return _new(run, command)

    return Submission(instrument=instrument, actor=actor, work=work, accounts=(account_id,))


def place_order(session: Session, *, actor: Actor, instrument: str, account_id: str, client_order_id: str, side: str,
                quantity_t: int, order_type: str = ex.LIMIT, time_in_force: str = ex.DAY,
                price_fen: int | None = None) -> tuple[bool, dict[str, Any]]:
    """(created, the order with its fills); the same client order id again answers the existing order."""
    created, described = _submit(session, placing(
        actor=actor, instrument=instrument, account_id=account_id, client_order_id=client_order_id, side=side,
        quantity_t=quantity_t, order_type=order_type, time_in_force=time_in_force, price_fen=price_fen))
    return created, described


def cancelling(*, actor: Actor, instrument: str, order_id: int) -> Submission:
    """A cancel of the open remainder of your order; its answer is (False, the order)."""
    def work(run: _Run) -> _OrderAnswer:
        account_id, _ = run.own(actor, order_id, "order")
        return _changed(run, ex.CancelOrder(account_id=account_id, order_id=order_id, at=run.at), order_id)

    return Submission(instrument=instrument, actor=actor, work=work)


def cancel_order(session: Session, *, actor: Actor, instrument: str, order_id: int) -> dict[str, Any]:
    """Cancel the open remainder of your order (accepted while the market is closed or halted)."""
    order: dict[str, Any] = _submit(session, cancelling(actor=actor, instrument=instrument, order_id=order_id))[1]
    return order


def replace_order(session: Session, *, actor: Actor, instrument: str, order_id: int, price_fen: int,
                  quantity_t: int) -> dict[str, Any]:
    """Cancel-replace: a new price and open quantity (priority lost when the price changes or the quantity grows)."""
    def work(run: _Run) -> _OrderAnswer:
        account_id, _ = run.own(actor, order_id, "order")
        current = run.engine.order_status(order_id)
        assert current is not None  # run.own found it  # noqa: S101
        hold = run.loaded.holds.get((order_id, account_id))
        held = hold.held if hold else 0
        needed = hold_for(side=current.side, price_fen=price_fen, quantity_t=quantity_t, fee_bp=run.row.fee_bp)
        if current.state in ex.OPEN_STATES and needed > held:
            run.require(account_id=account_id, side=current.side, amount=needed - held)
        command = ex.ReplaceOrder(account_id=account_id, order_id=order_id, price_fen=price_fen,
                                  quantity_t=quantity_t, at=run.at)
        return _changed(run, command, order_id)

    order: dict[str, Any] = _submit(session, Submission(instrument, actor, work))[1]
    return order


def post_quote(session: Session, *, actor: Actor, instrument: str, account_id: str, client_order_id: str, side: str,
               price_fen: int, quantity_t: int, allow_partial: bool | None = None) -> tuple[bool, dict[str, Any]]:
    """Listed agreement (挂牌): post a quote for others to take; it holds cash or units like an order."""
    def work(run: _Run) -> _OrderAnswer:
        run.trading_account(actor, account_id)
        if (found := _resent(run, account_id, client_order_id)) is not None:
            return found
        command = ex.PostQuote(account_id=account_id, client_order_id=client_order_id, side=side, price_fen=price_fen,
                               quantity_t=quantity_t, at=run.at, allow_partial=allow_partial)
        run.require(account_id=account_id, side=side,
                    amount=hold_for(side=side, price_fen=price_fen, quantity_t=quantity_t, fee_bp=run.row.fee_bp))
        return _new(run, command)

    created, order = _submit(session, Submission(instrument, actor, work, (account_id,)))
    return created, order


def take_quote(session: Session, *, actor: Actor, instrument: str, account_id: str, client_order_id: str,
               quote_id: int, quantity_t: int) -> tuple[bool, dict[str, Any]]:
    """Listed agreement (摘牌): take (part of) a quote at its price; settles at once like any trade."""
    def work(run: _Run) -> _OrderAnswer:
        run.trading_account(actor, account_id)
        if (found := _resent(run, account_id, client_order_id)) is not None:
            return found
        quote = run.engine.quote_status(quote_id)
        if quote is not None and quote.state in ex.OPEN_STATES and quote.account_id != account_id:
            side = SELL if quote.side == BUY else BUY
            run.require(account_id=account_id, side=side,
                        amount=hold_for(side=side, price_fen=quote.price_fen, quantity_t=quantity_t,
                                        fee_bp=run.row.fee_bp))
        return _new(run, ex.TakeQuote(account_id=account_id, client_order_id=client_order_id, quote_id=quote_id,
                                      quantity_t=quantity_t, at=run.at))

    created, order = _submit(session, Submission(instrument, actor, work, (account_id,)))
    return created, order


def cancel_quote(session: Session, *, actor: Actor, instrument: str, quote_id: int) -> dict[str, Any]:
    def work(run: _Run) -> _OrderAnswer:
        account_id, _ = run.own(actor, quote_id, "quote")
        return _changed(run, ex.CancelQuote(account_id=account_id, quote_id=quote_id, at=run.at), quote_id)

    order: dict[str, Any] = _submit(session, Submission(instrument, actor, work))[1]
    return order


def propose_block(session: Session, *, actor: Actor, instrument: str, account_id: str, client_order_id: str,
                  counterparty_id: str, side: str, price_fen: int, quantity_t: int) -> tuple[bool, dict[str, Any]]:
    """Block agreement (大宗协议): propose a trade to a named counterparty; the proposer's side is held."""
    if ledger_store.get_account(session, counterparty_id) is None:
        raise ExchangeError(f"unknown counterparty account '{counterparty_id}'", code="unknown_counterparty")

    def work(run: _Run) -> _OrderAnswer:
        run.trading_account(actor, account_id)
        if (found := _resent(run, account_id, client_order_id)) is not None:
            return found
        command = ex.ProposeBlock(account_id=account_id, client_order_id=client_order_id,
                                  counterparty_id=counterparty_id, side=side, price_fen=price_fen,
                                  quantity_t=quantity_t, at=run.at)
        run.require(account_id=account_id, side=side,
                    amount=hold_for(side=side, price_fen=price_fen, quantity_t=quantity_t, fee_bp=run.row.fee_bp))
        return _new(run, command)

    created, order = _submit(session, Submission(instrument, actor, work, (account_id,)))
    return created, order


def answer_block(session: Session, *, actor: Actor, instrument: str, proposal_id: int, answer: str) -> dict[str, Any]:
    """``confirm`` or ``decline`` (the counterparty), ``withdraw`` (the proposer)."""
    kinds: dict[str, type[ex.ConfirmBlock | ex.DeclineBlock | ex.WithdrawBlock]] = {
        "confirm": ex.ConfirmBlock, "decline": ex.DeclineBlock, "withdraw": ex.WithdrawBlock}

    def work(run: _Run) -> _OrderAnswer:
        proposer, counterparty = run.own(actor, proposal_id, "block")
        party = proposer if answer == "withdraw" else counterparty
        if party is None or not ledger.owns_account(actor, party):
            raise ExchangeError(f"only the {'proposer' if answer == 'withdraw' else 'named counterparty'} may "
                                f"{answer} block proposal {proposal_id}",
                                code="not_initiator" if answer == "withdraw" else "not_counterparty")
        if answer == "confirm":
            run.trading_account(actor, party)
            block = run.engine.block_status(proposal_id)
            if block is not None and block.state == ex.PROPOSED:
                side = SELL if block.side == BUY else BUY
                run.require(account_id=party, side=side,
                            amount=hold_for(side=side, price_fen=block.price_fen, quantity_t=block.quantity_t,
                                            fee_bp=run.row.fee_bp))
        return _changed(run, kinds[answer](account_id=party, proposal_id=proposal_id, at=run.at), proposal_id)

    order: dict[str, Any] = _submit(session, Submission(instrument, actor, work))[1]
    return order


# -- the trading day by the clock ----------------------------------------------------------------------

#: Who rolls a trading day that no command has rolled: the exchange's clock (``roll_due_days``).
CLOCK_ACTOR = Actor(actor_id="exchange-clock", role="officer")


def roll_due_days(session: Session) -> list[str]:
    """Roll every instrument whose trading day the clock says is due to close or open; the instruments rolled.

    Each batch of commands rolls its instrument's day first, so without this a day with no command after
    its close would stay open until the next day's first one: its close price, bar and reference price,
    the expiry of its day orders and the release of their holds would wait until then, and reads would show
    the day as still open. The application runs this every ``exchange_roll_seconds``; the roll is a batch
    of its own, logged as ``CLOCK_ACTOR``'s, exactly as the next command would have written it.
    """
    moment = now(session)
    due = [row.instrument for row in store.instruments(session)
           if day_roll(moment, trading_day=row.trading_day, day_open=row.day_open,
                       rules=store.rules_of(row.rules)).due]
    for instrument in due:
        _submit(session, Submission(instrument, CLOCK_ACTOR, _roll_only))
    return due


def _roll_only(run: _Run) -> None:
    """No command: the batch rolls the day when it begins (``_begin``)."""


# -- officer commands ------------------------------------------------------------------------------------


def officer_command(session: Session, *, actor: Actor, instrument: str, action: str, reason: str = "officer",
                    account_id: str | None = None, kind: str | None = None, band_bp: int | None = None
                    ) -> dict[str, Any]:
    """``halt``, ``resume``, ``band`` (change one), ``restrict`` or ``lift`` (an account), or ``roll`` the day."""
    if action in ("restrict", "lift") and (account_id is None or ledger_store.get_account(session, account_id) is None):
        raise ExchangeError(f"unknown account '{account_id}'", code="unknown_account")

    def work(run: _Run) -> None:
        if action in ("halt", "resume") and run.engine.halted == (action == "halt"):
            raise ExchangeError(f"{instrument} is {'already halted' if action == 'halt' else 'not halted'}",
                                code="already_halted" if action == "halt" else "not_halted")
        commands: dict[str, Callable[[], ex.Command]] = {
            "halt": lambda: ex.Halt(at=run.at, reason=reason),
            "resume": lambda: ex.Resume(at=run.at),
            "band": lambda: ex.ChangeBand(at=run.at, kind=kind or "", band_bp=-1 if band_bp is None else band_bp),
            "restrict": lambda: ex.RestrictAccount(account_id=account_id or "", at=run.at, reason=reason),
            "lift": lambda: ex.LiftRestriction(account_id=account_id or "", at=run.at),
        }
        if action in commands:
            run.apply_accepted(commands[action]())
        audit.append(run.session, actor=actor, action=f"exchange.{action}", target=f"exchange/{instrument}",
                     detail={"reason": reason, "account_id": account_id, "kind": kind, "band_bp": band_bp,
                             "seq": run.row.last_seq})

    _submit(session, Submission(instrument, actor, work))
    return instrument_view(session, instrument=instrument)
# -- market data ------------------------------------------------------------------------------------------


def depth(session: Session, *, instrument: str, levels: int | None) -> dict[str, Any]:
    """The book by price level, best first: ``levels`` per side, or the full book when ``None``."""
    with _reading(session, instrument) as (_, engine, seq):
        book = engine.depth(levels if levels is not None else 10**9)
        quotes = engine.quote_depth(5)

        def side(levels_: tuple[ex.Level, ...]) -> list[dict[str, int]]:
            return [{"price_fen": lv.price_fen, "quantity_t": lv.quantity_t, "orders": lv.orders} for lv in levels_]
        return {"instrument": instrument, "seq": seq, "bids": side(book.bids), "asks": side(book.asks),
                "quotes": {"bids": side(quotes.bids), "asks": side(quotes.asks)}}


def public_trade(trade: ExchangeTrade) -> dict[str, Any]:
    return {"trade_id": trade.trade_id, "price_fen": trade.price_fen, "quantity_t": trade.quantity_t,
            "aggressor_side": trade.aggressor_side, "mode": trade.mode, "trading_day": trade.trading_day,
            "executed_at": trade.executed_at}


def trades(session: Session, *, instrument: str, trading_day: str | None, before_id: int | None,
           limit: int) -> dict[str, Any]:
    """The latest trades first (without the parties); ``before_id`` pages back."""
    _instrument_row(session, instrument)
    query = select(ExchangeTrade).where(ExchangeTrade.instrument == instrument)
    if trading_day is not None:
        query = query.where(ExchangeTrade.trading_day == trading_day)
    if before_id is not None:
        query = query.where(ExchangeTrade.trade_id < before_id)
    rows = list(session.scalars(query.order_by(ExchangeTrade.trade_id.desc()).limit(limit)))
    return {"items": [public_trade(t) for t in rows],
            "next_before_id": rows[-1].trade_id if len(rows) == limit else None}


def describe_day(bar: ExchangeDay) -> dict[str, Any]:
    return {"trading_day": bar.trading_day, "previous_close_fen": bar.previous_close_fen, "open_fen": bar.open_fen,
            "high_fen": bar.high_fen, "low_fen": bar.low_fen, "close_fen": bar.close_fen,
            "listed_volume_t": bar.listed_volume_t, "listed_value_fen": bar.listed_value_fen,
            "block_volume_t": bar.block_volume_t, "block_value_fen": bar.block_value_fen,
            "volume_t": bar.listed_volume_t + bar.block_volume_t, "trades": bar.trades}


def daily(session: Session, *, instrument: str, day_from: date | None, day_to: date | None,
          limit: int) -> list[dict[str, Any]]:
    _instrument_row(session, instrument)
    query = select(ExchangeDay).where(ExchangeDay.instrument == instrument)
    if day_from is not None:
        query = query.where(ExchangeDay.trading_day >= day_from.isoformat())
    if day_to is not None:
        query = query.where(ExchangeDay.trading_day <= day_to.isoformat())
    return [describe_day(b) for b in session.scalars(query.order_by(ExchangeDay.trading_day).limit(limit))]


CANDLE_SECONDS = (60, 300, 900, 3600)


def candles(session: Session, *, instrument: str, trading_day: str, seconds: int) -> list[dict[str, Any]]:
    """Intraday candles of the listed trades of one day (China time buckets; no trade, no candle)."""
    if seconds not in CANDLE_SECONDS:
        raise ExchangeError(f"granularity is one of {', '.join(map(str, CANDLE_SECONDS))} seconds, got {seconds}",
                            code="invalid_granularity")
    _instrument_row(session, instrument)
    rows = session.scalars(select(ExchangeTrade).where(
        ExchangeTrade.instrument == instrument, ExchangeTrade.trading_day == trading_day,
        ExchangeTrade.mode.in_(LISTED_MODES)).order_by(ExchangeTrade.trade_id))
    out: dict[datetime, dict[str, Any]] = {}
    for t in rows:
        local = t.executed_at.astimezone(CHINA_TZ)
        midnight = datetime.combine(local.date(), time(0), CHINA_TZ)
        start = midnight + timedelta(seconds=(local - midnight).seconds // seconds * seconds)
        bar = out.get(start)
        if bar is None:
            out[start] = bar = {"start": start, "open_fen": t.price_fen, "high_fen": t.price_fen,
                                "low_fen": t.price_fen, "close_fen": t.price_fen, "volume_t": 0, "value_fen": 0}
        bar["high_fen"], bar["low_fen"] = max(bar["high_fen"], t.price_fen), min(bar["low_fen"], t.price_fen)
        bar["close_fen"] = t.price_fen
        bar["volume_t"] += t.quantity_t
        bar["value_fen"] += t.price_fen * t.quantity_t
    return list(out.values())


STREAM_EVENTS = {"TradeExecuted", "BookChanged", "TradingStatusChanged", "QuotePosted", "QuoteCancelled"}


def public_event(document: dict[str, Any]) -> dict[str, Any]:
    """An event as the public stream shows it: no account ids, no client order ids."""
    hidden = {"account_id", "buy_account_id", "sell_account_id", "client_order_id", "buy_order_id", "sell_order_id"}
    return {k: v for k, v in document.items() if k not in hidden}


def stream_after(session: Session, *, instrument: str, seq: int, limit: int = 500) -> tuple[int, list[dict[str, Any]]]:
    """(the last log seq read, the public trade, book and status events of commands after ``seq``)."""
    _instrument_row(session, instrument)
    out: list[dict[str, Any]] = []
    last = seq
    for command in session.scalars(select(ExchangeCommand).where(
            ExchangeCommand.instrument == instrument, ExchangeCommand.seq > seq)
            .order_by(ExchangeCommand.seq).limit(limit)):
        last = command.seq
        out.extend({"log_seq": command.seq, **public_event(e)} for e in command.events if e["type"] in STREAM_EVENTS)
    return last, out


# -- accounts' views --------------------------------------------------------------------------------------


def list_orders(session: Session, *, actor: Actor, instrument: str | None, account_id: str | None,
                state: str | None, limit: int, offset: int) -> dict[str, Any]:
    """Orders newest first: officers see all, a trader or enterprise its own accounts' only."""
    query = select(ExchangeOrder)
    if instrument is not None:
        query = query.where(ExchangeOrder.instrument == instrument)
    if account_id is not None:
        query = query.where(ExchangeOrder.account_id == account_id)
    if actor.role != "officer":
        own = sorted(ledger.acting_for(actor) | {ledger.compliance_account_id(e) for e in actor.enterprise_ids})
        query = query.where(ExchangeOrder.account_id.in_(own))
    if state == "open":
        query = query.where(ExchangeOrder.state.in_(sorted(ex.OPEN_STATES | {ex.PROPOSED})))
    elif state is not None:
        query = query.where(ExchangeOrder.state == state)
    rows = list(session.scalars(query.order_by(ExchangeOrder.created_at.desc(), ExchangeOrder.order_id.desc())
                                .limit(limit).offset(offset)))
    return {"items": [describe_order(r) for r in rows], "limit": limit, "offset": offset}


def get_order(session: Session, *, actor: Actor, instrument: str, order_id: int) -> dict[str, Any]:
    row, fills = store.order_with_fills(session, instrument, order_id)
    visible = row is not None and (actor.role == "officer" or ledger.owns_account(actor, row.account_id)
                                   or (row.counterparty_id is not None
                                       and ledger.owns_account(actor, row.counterparty_id)))
    if row is None or not visible:
        raise ExchangeError(f"no order {order_id} on {instrument}", code="unknown_order")
    return describe_order(row, trades=fills)


def statement(session: Session, *, account_id: str, day_from: date | None, day_to: date | None,
              limit: int, offset: int) -> dict[str, Any]:
    """An account's statement: holdings and cash (balance, held, available), its fills with fees, its orders."""
    view = ledger.account_view(session, account_id=account_id)
    query = select(ExchangeTrade).where(or_(ExchangeTrade.buy_account_id == account_id,
                                            ExchangeTrade.sell_account_id == account_id))
    if day_from is not None:
        query = query.where(ExchangeTrade.trading_day >= day_from.isoformat())
    if day_to is not None:
        query = query.where(ExchangeTrade.trading_day <= day_to.isoformat())
    fills = [describe_fill(t, account_id=account_id) | {"instrument": t.instrument}
             for t in session.scalars(query.order_by(ExchangeTrade.executed_at, ExchangeTrade.trade_id)
                                      .limit(limit).offset(offset))]
    open_orders = list(session.scalars(select(ExchangeOrder).where(
        ExchangeOrder.account_id == account_id, ExchangeOrder.state.in_(sorted(ex.OPEN_STATES | {ex.PROPOSED})))
        .order_by(ExchangeOrder.instrument, ExchangeOrder.order_id)))
    held: dict[str, int] = {}
    for o in open_orders:
        asset = CNY if o.side == BUY else o.instrument
        held[asset] = held.get(asset, 0) + o.held
    return {"account_id": account_id, "holdings": view["holdings"], "held_by_open_orders": held,
            "fills": fills, "fees_fen": sum(f["fee_fen"] for f in fills),
            "bought_t": sum(f["quantity_t"] for f in fills if f["side"] == BUY),
            "sold_t": sum(f["quantity_t"] for f in fills if f["side"] == SELL),
            "open_orders": [describe_order(o) for o in open_orders], "limit": limit, "offset": offset}


# -- determinism and invariants ---------------------------------------------------------------------------


def verify(session: Session, *, instrument: str) -> dict[str, Any]:
    """Replay the log from empty and compare with what is stored: events, orders, trades, holds, ledger entries.

    Also checks that the book is not crossed and that the clearing account holds exactly the open orders'
    holds plus what the unsettled trades owe.
    """
    row = _instrument_row(session, instrument)
    replay = _replay(session, row)
    problems = list(replay.problems)
    stored_trades = {t.trade_id: (t.price_fen, t.quantity_t, t.buy_account_id, t.sell_account_id)
                     for t in session.scalars(select(ExchangeTrade).where(ExchangeTrade.instrument == instrument))}
    if stored_trades != replay.trades:
        problems.append(f"trades differ: {len(stored_trades)} stored, {len(replay.trades)} replayed")
    problems += _order_problems(session, instrument, replay)
    book = replay.engine.book()
    if book.bids and book.asks and book.bids[0].price_fen >= book.asks[0].price_fen:
        problems.append(f"crossed book: bid {book.bids[0].price_fen} >= ask {book.asks[0].price_fen}")
    problems += _ledger_problems(session, instrument, replay)
    return {"instrument": instrument, "ok": not problems, "commands": row.last_seq, "trades": len(replay.trades),
            "problems": problems}


@dataclass(slots=True)
class _Replay:
    engine: MatchingEngine
    holds: dict[tuple[int, str], Hold] = field(default_factory=dict)
    changes: dict[tuple[str, str], int] = field(default_factory=dict)
    trades: dict[int, tuple[int, int, str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _replay(session: Session, row: ExchangeInstrument) -> _Replay:
    """The log replayed into a fresh engine and through the settlement rules."""
    replay = _Replay(engine=_genesis(row))
    for command in store.commands_after(session, row.instrument, after=0):
        band_high = replay.engine.price_band.high_fen
        events = replay.engine.apply(store.command_of(command.command))
        if [store.document_of(e) for e in events] != command.events:
            replay.problems.append(f"command {command.seq}: replayed events differ from the log")
        result = _settlement(row, events, replay.holds, band_high)
        replay.holds = result.holds
        for key, change in result.changes.items():
            replay.changes[key] = replay.changes.get(key, 0) + change
        replay.trades.update({e.trade_id: (e.price_fen, e.quantity_t, e.buy_account_id, e.sell_account_id)
                              for e in events if isinstance(e, ex.TradeExecuted)})
    return replay


def _order_problems(session: Session, instrument: str, replay: _Replay) -> list[str]:
    problems = []
    for order in session.scalars(select(ExchangeOrder).where(ExchangeOrder.instrument == instrument)):
        values = _order_values(replay.engine, order.order_id, None)
        if values is not None and (values["state"], values["filled_t"], values["remaining_t"]) != (
                order.state, order.filled_t, order.remaining_t):
            problems.append(f"order {order.order_id}: stored {order.state} {order.filled_t}/{order.remaining_t}, "
                            f"replayed {values['state']} {values['filled_t']}/{values['remaining_t']}")
        hold = replay.holds.get((order.order_id, order.account_id))
        if (hold.held if hold else 0) != order.held:
            problems.append(f"order {order.order_id}: holds {order.held}, replay says {hold.held if hold else 0}")
    return problems


def _ledger_problems(session: Session, instrument: str, replay: _Replay) -> list[str]:
    problems = []
    settled = _settled_changes(session, instrument)
    posted = _exchange_changes(session, instrument)
    for key in sorted(set(replay.changes) | set(settled) | set(posted)):
        expected = replay.changes.get(key, 0) + settled.get(key, 0)
        if expected != posted.get(key, 0):
            problems.append(f"ledger {key}: the exchange's entries move {posted.get(key, 0)}, the replay {expected}")
    pending = [t for t in session.scalars(select(ExchangeTrade).where(ExchangeTrade.instrument == instrument,
                                                                      ExchangeTrade.entry_id.is_(None)))
               if store.settlement(session, instrument, t.trading_day) is None]
    clearing = ledger_store.balances_of(session, account_id=clearing_account_id(instrument))
    owed_cash = sum(t.price_fen * t.quantity_t + t.buyer_fee_fen for t in pending)
    held_cash = sum(h.held for h in replay.holds.values() if h.side == BUY)
    if clearing.get(CNY, 0) != held_cash + owed_cash:
        problems.append(f"clearing holds {clearing.get(CNY, 0)} fen; open orders hold {held_cash} and "
                        f"unsettled trades owe {owed_cash}")
    owed_units = sum(t.quantity_t for t in pending)
    held_units = sum(h.held for h in replay.holds.values() if h.side == SELL)
    if clearing.get(instrument, 0) != held_units + owed_units:
        problems.append(f"clearing holds {clearing.get(instrument, 0)} t; open orders hold {held_units} and "
                        f"unsettled trades owe {owed_units}")
    return problems


def _exchange_changes(session: Session, instrument: str) -> dict[tuple[str, str], int]:
    """The net ledger changes of every entry the exchange posted for ``instrument`` (commands and settlements)."""
    totals: dict[tuple[str, str], int] = {}
    rows = session.execute(select(PostingRow.account_id, PostingRow.instrument, PostingRow.side, PostingRow.quantity)
                           .join(JournalEntryRow, JournalEntryRow.entry_id == PostingRow.entry_id)
                           .where(JournalEntryRow.reference.like(f"exchange/{instrument}/%")))
    for account_id, asset, side, quantity in rows:
        totals[(account_id, asset)] = totals.get((account_id, asset), 0) + (quantity if side == "credit" else -quantity)
    return {k: v for k, v in totals.items() if v}


def _settled_changes(session: Session, instrument: str) -> dict[tuple[str, str], int]:
    """What the end-of-day settlements delivered (the replay of commands alone does not deliver those trades)."""
    settled_days = [s.trading_day for s in session.scalars(select(ExchangeSettlement).where(
        ExchangeSettlement.instrument == instrument))]
    if not settled_days:
        return {}
    trades_ = session.scalars(select(ExchangeTrade).where(ExchangeTrade.instrument == instrument,
                                                          ExchangeTrade.trading_day.in_(settled_days),
                                                          ExchangeTrade.entry_id.is_(None)))
    return settle_pending(map(_pending, trades_), instrument=instrument,
                          clearing_account=clearing_account_id(instrument), fees_account=ledger.system_account_id(FEES))

"""The mock exchange as use cases: commands through the matching engine, prefunded and settled in the ledger.

One command at a time per instrument, in one transaction:

1. lock the instrument's row (and, in this process, its engine) so commands apply in one order;
2. catch the in-memory engine up with the command log (another process may have appended to it);
   an engine that is ahead of the log (a transaction that failed) is rebuilt from the log;
3. roll the trading day when the clock says so (``CloseDay`` at the close, ``OpenDay`` at the next
   session, each a command of the log of its own);
4. check the account: its own, a compliance or trading account, with the cash (a buy) or the units
   (a sell, not counting units bought today: T+1) the command holds; a missing balance is refused
   (``insufficient_funds`` / ``insufficient_holdings``) after the market rules, with nothing written;
5. apply the command to the engine, append it and its events to the log, post one ledger entry with
   what ``accounting.settlement`` says the events move (holds, deliveries, fees, releases), and write
   the orders, trades and the day's bar; then commit. Any failure rolls everything back and drops the
   engine, which the next command rebuilds from the log.

A command the engine refuses (``outside_band``, ``market_closed``...) is logged too (the engine's
sequence numbers count it) and answered with its code; a refused balance check never reaches the log.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select
from sqlalchemy.orm import Session

from accounting import exchange as ex
from accounting.exchange import BUY, SELL, ExchangeError, MatchingEngine
from accounting.ledger import CLEARING, CNY, COMPLIANCE, FEES, TRADER, JournalEntry, parse_instrument
from accounting.market_rules import CHINA_TZ, InstrumentRules, SimulationClock, is_open
from accounting.review import Actor
from accounting.settlement import Hold, PendingTrade, hold_for, postings_of, settle, settle_pending
from api.services import ledger
from api.store import audit
from api.store import exchange as store
from api.store import ledger as ledger_store
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
    row = store.clock(session)
    if row is None or row.mode == "real":
        return real_now()
    return _simulation(row).now(elapsed=max(real_now() - row.set_at, timedelta(0)))


def describe_clock(session: Session) -> dict[str, Any]:
    row = store.clock(session)
    moment = now(session)
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
    """The engine of one instrument in this process and the last log sequence number it has applied."""

    engine: MatchingEngine | None = None
    seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


_ENGINES: dict[tuple[str, str, str], _Loaded] = {}
_ENGINES_LOCK = threading.Lock()


def _loaded(session: Session, row: ExchangeInstrument) -> _Loaded:
    bind = session.get_bind()
    url = bind.engine.url if isinstance(bind, Connection) else bind.url
    key = (url.render_as_string(hide_password=True), row.instrument, row.created_at.isoformat())
    with _ENGINES_LOCK:
        return _ENGINES.setdefault(key, _Loaded())


def _genesis(row: ExchangeInstrument) -> MatchingEngine:
    return MatchingEngine(rules=store.rules_of(row.rules), previous_close_fen=row.genesis_close_fen)


def _catch_up(session: Session, row: ExchangeInstrument, loaded: _Loaded) -> MatchingEngine:
    """The engine as of the log's last command (``row.last_seq``), rebuilt from the log if it is ahead."""
    if loaded.engine is None or loaded.seq > row.last_seq:
        loaded.engine, loaded.seq = _genesis(row), 0
    if loaded.seq == row.last_seq:
        return loaded.engine
    for command in store.commands_after(session, row.instrument, after=loaded.seq, upto=row.last_seq):
        loaded.engine.apply(store.command_of(command.command))
        loaded.seq = command.seq
    return loaded.engine


def _instrument_row(session: Session, instrument: str, *, lock: bool = False) -> ExchangeInstrument:
    row = store.instrument(session, instrument, lock=lock)
    if row is None:
        raise ExchangeError(f"'{instrument}' is not listed on the exchange", code="instrument_not_listed")
    return row


@contextmanager
def _reading(session: Session, instrument: str) -> Iterator[tuple[ExchangeInstrument, MatchingEngine]]:
    """The instrument and its engine caught up with the log, for reading (no database lock)."""
    row = _instrument_row(session, instrument)
    loaded = _loaded(session, row)
    with loaded.lock:
        yield row, _catch_up(session, row, loaded)


# -- running commands -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """One transaction of commands on one instrument: the commands applied, their trades and ledger entries."""

    session: Session
    row: ExchangeInstrument
    engine: MatchingEngine
    actor: Actor
    at: datetime
    events: list[ex.Event] = field(default_factory=list)
    trades: list[ExchangeTrade] = field(default_factory=list)
    orders: dict[int, ExchangeOrder] = field(default_factory=dict)
    committed_seq: int = 0

    def apply(self, command: ex.Command) -> tuple[ex.Event, ...]:
        """Apply, log, settle and project one command."""
        row, session = self.row, self.session
        band_high = self.engine.price_band.high_fen
        events = self.engine.apply(command)
        seq = row.last_seq + 1
        ids = _touched_ids(events)
        rows = store.orders(session, row.instrument, ids)
        holds = {(r.order_id, r.account_id): Hold(order_id=r.order_id, account_id=r.account_id, side=r.side,
                                                  open_t=r.hold_open_t, held=r.held, price_fen=r.price_fen or 0)
                 for r in rows.values() if r.hold_open_t or r.held}
        result = settle(events, holds=holds, instrument=row.instrument,
                        clearing_account=clearing_account_id(row.instrument),
                        fees_account=ledger.system_account_id(FEES), fee_bp=row.fee_bp, band_high_fen=band_high,
                        settle_trades=row.settlement == SETTLE_AT_TRADE)
        entry_id = self._post(result.changes, kind="exchange", memo=f"{type(command).__name__} #{seq}",
                              reference=f"exchange/{row.instrument}/{seq}")
        session.add(ExchangeCommand(instrument=row.instrument, seq=seq, kind=type(command).__name__,
                                    command=store.document_of(command),
                                    events=[store.document_of(e) for e in events], actor_id=self.actor.actor_id,
                                    received_at=real_now(), entry_id=entry_id))
        row.last_seq = seq
        self._project_orders(events, rows, result.holds, seq)
        fees = iter(result.fees)
        for event in events:
            if isinstance(event, ex.TradeExecuted):
                self._record_trade(event, next(fees), seq=seq, entry_id=entry_id)
        session.flush()
        self.events.extend(events)
        return events

    def _post(self, changes: dict[tuple[str, str], int], *, kind: str, memo: str, reference: str) -> str | None:
        postings = postings_of(changes)
        if not postings:
            return None
        entry = JournalEntry(entry_id=uuid.uuid4().hex, kind=kind, postings=postings, memo=memo)
        # the command log (append-only, with actor, time and this entry's id) is the record of the change
        ledger.post(self.session, entry=entry, actor=self.actor, reference=reference, audited=False)
        return entry.entry_id

    def _project_orders(self, events: tuple[ex.Event, ...], rows: dict[int, ExchangeOrder],
                        holds: dict[tuple[int, str], Hold], seq: int) -> None:
        takes = {e.take_id: e for e in events if isinstance(e, ex.QuoteTaken)}
        moment = real_now()
        for order_id in sorted(_touched_ids(events)):
            values = _order_values(self.engine, order_id, takes.get(order_id))
            if values is None:
                continue
            key = (order_id, values["account_id"])
            hold = holds.get(key)
            values.update(held=hold.held if hold else 0, hold_open_t=hold.open_t if hold else 0, updated_seq=seq,
                          updated_at=moment)
            existing = rows.get(order_id)
            if existing is None:
                existing = ExchangeOrder(instrument=self.row.instrument, order_id=order_id,
                                         placed_by=self.actor.actor_id, created_seq=seq, created_at=moment, **values)
                self.session.add(existing)
            else:
                for name, value in values.items():
                    setattr(existing, name, value)
            self.orders[order_id] = existing

    def _record_trade(self, event: ex.TradeExecuted, fees: Any, *, seq: int, entry_id: str | None) -> None:
        row = self.row
        trading_day = row.trading_day or self.at.astimezone(CHINA_TZ).date().isoformat()
        trade = ExchangeTrade(instrument=row.instrument, trade_id=event.trade_id, seq=seq, mode=event.mode,
                              price_fen=event.price_fen, quantity_t=event.quantity_t, buy_order_id=event.buy_order_id,
                              sell_order_id=event.sell_order_id, buy_account_id=event.buy_account_id,
                              sell_account_id=event.sell_account_id, aggressor_side=event.aggressor_side,
                              buyer_fee_fen=fees.buyer_fee_fen, seller_fee_fen=fees.seller_fee_fen,
                              trading_day=trading_day, executed_at=self.at,
                              entry_id=entry_id if fees.settled else None)
        self.session.add(trade)
        self.trades.append(trade)
        bar = _day_row(self.session, row, trading_day)
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

    # -- the trading day ----------------------------------------------------------------------------

    def roll(self) -> None:
        """Close the day when its last session has ended; open the next when its first session has begun."""
        row, rules = self.row, self.engine.rules
        local = self.at.astimezone(CHINA_TZ)
        closes = max(s.closes for s in (*rules.listed_sessions, *rules.block_sessions))
        opens = min(s.opens for s in (*rules.listed_sessions, *rules.block_sessions))
        today = local.date().isoformat()
        if row.day_open and row.trading_day is not None and (today > row.trading_day or local.time() >= closes):
            closing = datetime.combine(date.fromisoformat(row.trading_day), closes, CHINA_TZ)
            self.close_day(at=min(self.at, closing))
        if (not row.day_open and rules.calendar.is_trading_day(local.date()) and today > (row.trading_day or "")
                and opens <= local.time() < closes):
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


@contextmanager
def _command(session: Session, *, actor: Actor, instrument: str) -> Iterator[_Run]:
    """A locked, caught-up instrument whose day has been rolled; commits on success, rolls back otherwise."""
    row = _instrument_row(session, instrument)
    loaded = _loaded(session, row)
    with loaded.lock:
        run: _Run | None = None
        try:
            # Rows read before the lock (the order to cancel, the account) may have changed since: under the
            # lock every row is read afresh.
            session.expire_all()
            row = session.scalars(select(ExchangeInstrument).where(ExchangeInstrument.instrument == instrument)
                                  .with_for_update()).one()
            engine = _catch_up(session, row, loaded)
            run = _Run(session=session, row=row, engine=engine, actor=actor, at=now(session))
            run.roll()
            yield run
            seq = row.last_seq
            session.commit()
            loaded.seq = seq
        except CommandRefusedError:  # the log kept the command (committed); the engine is in step with it
            loaded.seq = loaded.seq if run is None else run.committed_seq
            raise
        except BaseException:
            session.rollback()
            if run is None or run.events:  # the engine applied what the log did not keep
                loaded.engine = None
            raise


class CommandRefusedError(ExchangeError):
    """The engine refused a command (logged, nothing else changed); ``code`` says which rule."""


def _answer(run: _Run, events: tuple[ex.Event, ...]) -> None:
    """Raise the engine's refusal, if ``events`` are one (after the log has kept the command)."""
    rejected = next((e for e in events if isinstance(e, ex.OrderRejected)), None)
    if rejected is not None:
        run.committed_seq = run.row.last_seq
        run.session.commit()
        raise CommandRefusedError(_REFUSALS.get(rejected.code, rejected.code.replace("_", " ")), code=rejected.code)


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


# -- accounts and balances ---------------------------------------------------------------------------


def _trading_account(session: Session, actor: Actor, account_id: str) -> LedgerAccount:
    """The actor's own compliance or trading account (another's answers as unknown, like a missing one)."""
    row = ledger_store.get_account(session, account_id)
    if row is None or not ledger.owns_account(actor, account_id):
        raise ExchangeError(f"unknown account '{account_id}'", code="unknown_account")
    if row.kind not in TRADING_ACCOUNT_KINDS:
        raise ExchangeError(f"account '{account_id}' is a {row.kind} account; trade from a compliance or trading "
                            "account", code="account_cannot_trade")
    return row


def _available(session: Session, account_id: str, asset: str) -> int:
    balance = ledger_store.balances_of(session, account_id=account_id).get(asset, 0)
    return balance - ledger_store.encumbered_of(session, account_id=account_id).get(asset, 0)


def _require(run: _Run, *, account_id: str, side: str, amount: int) -> None:
    """Refuse (before anything is written) when the account lacks the cash or the sellable units."""
    if side == BUY:
        available = _available(run.session, account_id, CNY)
        if available < amount:
            raise ExchangeError(f"account '{account_id}' has {available} fen available; this needs {amount} fen "
                                "(price x quantity and the fee)", code="insufficient_funds")
        return
    instrument = run.row.instrument
    # T+1: today's purchases are not sellable; with end-of-day settlement they are not delivered yet either
    delivered_today = run.row.day_open and run.row.settlement == SETTLE_AT_TRADE
    bought_today = store.bought_on(run.session, instrument, account_id=account_id,
                                   trading_day=run.row.trading_day or "") if delivered_today else 0
    sellable = _available(run.session, account_id, instrument) - bought_today
    if sellable < amount:
        raise ExchangeError(f"account '{account_id}' can sell {max(sellable, 0)} t of {instrument} (frozen, pledged "
                            f"and today's purchases excluded: {bought_today} t bought today); this needs {amount} t",
                            code="insufficient_holdings")


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
    with _reading(session, instrument) as (row, engine):
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
            "last_seq": row.last_seq,
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


def _own_fills(run: _Run, order_id: int, account_id: str) -> list[ExchangeTrade]:
    return [t for t in run.trades if (t.buy_order_id == order_id and t.buy_account_id == account_id)
            or (t.sell_order_id == order_id and t.sell_account_id == account_id)]


def _new_order(run: _Run, events: tuple[ex.Event, ...], account_id: str) -> dict[str, Any]:
    _answer(run, events)
    accepted = next(e for e in events if isinstance(e, ex.OrderAccepted | ex.QuotePosted | ex.QuoteTaken
                                                     | ex.BlockProposed))
    order_id = (accepted.order_id if isinstance(accepted, ex.OrderAccepted) else accepted.quote_id
                if isinstance(accepted, ex.QuotePosted) else accepted.take_id if isinstance(accepted, ex.QuoteTaken)
                else accepted.proposal_id)
    run.session.flush()
    return describe_order(run.orders[order_id], trades=_own_fills(run, order_id, account_id))


def _existing(session: Session, instrument: str, account_id: str, client_order_id: str) -> dict[str, Any] | None:
    row = store.order_by_client_id(session, instrument, account_id=account_id, client_order_id=client_order_id)
    if row is None:
        return None
    trades = list(session.scalars(select(ExchangeTrade).where(
        ExchangeTrade.instrument == instrument,
        or_((ExchangeTrade.buy_order_id == row.order_id) & (ExchangeTrade.buy_account_id == account_id),
            (ExchangeTrade.sell_order_id == row.order_id) & (ExchangeTrade.sell_account_id == account_id)))
        .order_by(ExchangeTrade.trade_id)))
    return describe_order(row, trades=trades)


def place_order(session: Session, *, actor: Actor, instrument: str, account_id: str, client_order_id: str, side: str,
                quantity_t: int, order_type: str = ex.LIMIT, time_in_force: str = ex.DAY,
                price_fen: int | None = None) -> tuple[bool, dict[str, Any]]:
    """(created, the order with its fills); the same client order id again answers the existing order."""
    _trading_account(session, actor, account_id)
    with _command(session, actor=actor, instrument=instrument) as run:
        if (found := _existing(session, instrument, account_id, client_order_id)) is not None:
            return False, found
        command = ex.PlaceOrder(account_id=account_id, client_order_id=client_order_id, side=side,
                                quantity_t=quantity_t, at=run.at, order_type=order_type, time_in_force=time_in_force,
                                price_fen=price_fen)
        if run.engine.place_rejection(command) is None:
            price = price_fen if price_fen is not None else run.engine.price_band.high_fen
            _require(run, account_id=account_id, side=side,
                     amount=hold_for(side=side, price_fen=price, quantity_t=quantity_t, fee_bp=run.row.fee_bp))
        return True, _new_order(run, run.apply(command), account_id)


def _own_order(session: Session, actor: Actor, instrument: str, order_id: int, kinds: tuple[str, ...]) -> ExchangeOrder:
    """An order (quote, block proposal) of one of the actor's accounts; a block's counterparty may answer it too."""
    row = store.order(session, instrument, order_id)
    parties = set() if row is None else {row.account_id, row.counterparty_id} - {None}
    if row is None or row.kind not in kinds or not any(ledger.owns_account(actor, p) for p in parties if p):
        raise ExchangeError(f"no {' or '.join(kinds)} {order_id} of yours on {instrument}", code="unknown_order")
    return row


def _change(run: _Run, command: ex.Command, order_id: int) -> dict[str, Any]:
    events = run.apply(command)
    _answer(run, events)
    row = run.orders[order_id]
    found = _existing(run.session, run.row.instrument, row.account_id, row.client_order_id)  # every fill so far
    assert found is not None  # noqa: S101
    return found


def cancel_order(session: Session, *, actor: Actor, instrument: str, order_id: int) -> dict[str, Any]:
    """Cancel the open remainder of your order (accepted while the market is closed or halted)."""
    row = _own_order(session, actor, instrument, order_id, ("order",))
    with _command(session, actor=actor, instrument=instrument) as run:
        return _change(run, ex.CancelOrder(account_id=row.account_id, order_id=order_id, at=run.at), order_id)


def replace_order(session: Session, *, actor: Actor, instrument: str, order_id: int, price_fen: int,
                  quantity_t: int) -> dict[str, Any]:
    """Cancel-replace: a new price and open quantity (priority lost when the price changes or the quantity grows)."""
    row = _own_order(session, actor, instrument, order_id, ("order",))
    with _command(session, actor=actor, instrument=instrument) as run:
        current = store.order(session, instrument, order_id)
        assert current is not None  # noqa: S101
        needed = hold_for(side=current.side, price_fen=price_fen, quantity_t=quantity_t, fee_bp=run.row.fee_bp)
        if current.state in ex.OPEN_STATES and needed > current.held:
            _require(run, account_id=row.account_id, side=current.side, amount=needed - current.held)
        command = ex.ReplaceOrder(account_id=row.account_id, order_id=order_id, price_fen=price_fen,
                                  quantity_t=quantity_t, at=run.at)
        return _change(run, command, order_id)


def post_quote(session: Session, *, actor: Actor, instrument: str, account_id: str, client_order_id: str, side: str,
               price_fen: int, quantity_t: int, allow_partial: bool | None = None) -> tuple[bool, dict[str, Any]]:
    """Listed agreement (挂牌): post a quote for others to take; it holds cash or units like an order."""
    _trading_account(session, actor, account_id)
    if (found := _existing(session, instrument, account_id, client_order_id)) is not None:
        return False, found
    with _command(session, actor=actor, instrument=instrument) as run:
        command = ex.PostQuote(account_id=account_id, client_order_id=client_order_id, side=side, price_fen=price_fen,
                               quantity_t=quantity_t, at=run.at, allow_partial=allow_partial)
        _require(run, account_id=account_id, side=side,
                 amount=hold_for(side=side, price_fen=price_fen, quantity_t=quantity_t, fee_bp=run.row.fee_bp))
        return True, _new_order(run, run.apply(command), account_id)


def take_quote(session: Session, *, actor: Actor, instrument: str, account_id: str, client_order_id: str,
               quote_id: int, quantity_t: int) -> tuple[bool, dict[str, Any]]:
    """Listed agreement (摘牌): take (part of) a quote at its price; settles at once like any trade."""
    _trading_account(session, actor, account_id)
    if (found := _existing(session, instrument, account_id, client_order_id)) is not None:
        return False, found
    with _command(session, actor=actor, instrument=instrument) as run:
        quote = run.engine.quote_status(quote_id)
        if quote is not None and quote.state in ex.OPEN_STATES and quote.account_id != account_id:
            side = SELL if quote.side == BUY else BUY
            _require(run, account_id=account_id, side=side,
                     amount=hold_for(side=side, price_fen=quote.price_fen, quantity_t=quantity_t,
                                     fee_bp=run.row.fee_bp))
        command = ex.TakeQuote(account_id=account_id, client_order_id=client_order_id, quote_id=quote_id,
                               quantity_t=quantity_t, at=run.at)
        return True, _new_order(run, run.apply(command), account_id)


def cancel_quote(session: Session, *, actor: Actor, instrument: str, quote_id: int) -> dict[str, Any]:
    row = _own_order(session, actor, instrument, quote_id, ("quote",))
    with _command(session, actor=actor, instrument=instrument) as run:
        return _change(run, ex.CancelQuote(account_id=row.account_id, quote_id=quote_id, at=run.at), quote_id)


def propose_block(session: Session, *, actor: Actor, instrument: str, account_id: str, client_order_id: str,
                  counterparty_id: str, side: str, price_fen: int, quantity_t: int) -> tuple[bool, dict[str, Any]]:
    """Block agreement (大宗协议): propose a trade to a named counterparty; the proposer's side is held."""
    _trading_account(session, actor, account_id)
    if ledger_store.get_account(session, counterparty_id) is None:
        raise ExchangeError(f"unknown counterparty account '{counterparty_id}'", code="unknown_counterparty")
    if (found := _existing(session, instrument, account_id, client_order_id)) is not None:
        return False, found
    with _command(session, actor=actor, instrument=instrument) as run:
        command = ex.ProposeBlock(account_id=account_id, client_order_id=client_order_id,
                                  counterparty_id=counterparty_id, side=side, price_fen=price_fen,
                                  quantity_t=quantity_t, at=run.at)
        _require(run, account_id=account_id, side=side,
                 amount=hold_for(side=side, price_fen=price_fen, quantity_t=quantity_t, fee_bp=run.row.fee_bp))
        return True, _new_order(run, run.apply(command), account_id)


def answer_block(session: Session, *, actor: Actor, instrument: str, proposal_id: int, answer: str) -> dict[str, Any]:
    """``confirm`` or ``decline`` (the counterparty), ``withdraw`` (the proposer)."""
    row = _own_order(session, actor, instrument, proposal_id, ("block",))
    party = row.account_id if answer == "withdraw" else row.counterparty_id
    if party is None or not ledger.owns_account(actor, party):
        raise ExchangeError(f"only the {'proposer' if answer == 'withdraw' else 'named counterparty'} may "
                            f"{answer} block proposal {proposal_id}",
                            code="not_initiator" if answer == "withdraw" else "not_counterparty")
    with _command(session, actor=actor, instrument=instrument) as run:
        if answer == "confirm":
            _trading_account(session, actor, party)
            block = run.engine.block_status(proposal_id)
            if block is not None and block.state == ex.PROPOSED:
                side = SELL if block.side == BUY else BUY
                _require(run, account_id=party, side=side,
                         amount=hold_for(side=side, price_fen=block.price_fen, quantity_t=block.quantity_t,
                                         fee_bp=run.row.fee_bp))
        kinds: dict[str, type[ex.ConfirmBlock | ex.DeclineBlock | ex.WithdrawBlock]] = {
            "confirm": ex.ConfirmBlock, "decline": ex.DeclineBlock, "withdraw": ex.WithdrawBlock}
        return _change(run, kinds[answer](account_id=party, proposal_id=proposal_id, at=run.at), proposal_id)


# -- officer commands ------------------------------------------------------------------------------------


def officer_command(session: Session, *, actor: Actor, instrument: str, action: str, reason: str = "officer",
                    account_id: str | None = None, kind: str | None = None, band_bp: int | None = None
                    ) -> dict[str, Any]:
    """``halt``, ``resume``, ``band`` (change one), ``restrict`` or ``lift`` (an account), or ``roll`` the day."""
    if action in ("restrict", "lift") and (account_id is None or ledger_store.get_account(session, account_id) is None):
        raise ExchangeError(f"unknown account '{account_id}'", code="unknown_account")
    with _command(session, actor=actor, instrument=instrument) as run:
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
            _answer(run, run.apply(commands[action]()))
        audit.append(session, actor=actor, action=f"exchange.{action}", target=f"exchange/{instrument}",
                     detail={"reason": reason, "account_id": account_id, "kind": kind, "band_bp": band_bp,
                             "seq": run.row.last_seq})
    return instrument_view(session, instrument=instrument)


# -- market data ------------------------------------------------------------------------------------------


def depth(session: Session, *, instrument: str, levels: int | None) -> dict[str, Any]:
    """The book by price level, best first: ``levels`` per side, or the full book when ``None``."""
    with _reading(session, instrument) as (row, engine):
        book = engine.depth(levels if levels is not None else 10**9)
        quotes = engine.quote_depth(5)

        def side(levels_: tuple[ex.Level, ...]) -> list[dict[str, int]]:
            return [{"price_fen": lv.price_fen, "quantity_t": lv.quantity_t, "orders": lv.orders} for lv in levels_]
        return {"instrument": instrument, "seq": row.last_seq, "bids": side(book.bids), "asks": side(book.asks),
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
    row = store.order(session, instrument, order_id)
    visible = row is not None and (actor.role == "officer" or ledger.owns_account(actor, row.account_id)
                                   or (row.counterparty_id is not None
                                       and ledger.owns_account(actor, row.counterparty_id)))
    if row is None or not visible:
        raise ExchangeError(f"no order {order_id} on {instrument}", code="unknown_order")
    found = _existing(session, instrument, row.account_id, row.client_order_id)
    assert found is not None  # noqa: S101
    return found


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
        result = settle(events, holds=replay.holds, instrument=row.instrument,
                        clearing_account=clearing_account_id(row.instrument),
                        fees_account=ledger.system_account_id(FEES), fee_bp=row.fee_bp, band_high_fen=band_high,
                        settle_trades=row.settlement == SETTLE_AT_TRADE)
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

"""Repository of the mock exchange: the command log (and its JSON form), orders, trades, days, the clock.

Commands and events are dataclasses of ``accounting.exchange`` (commands frozen, events read-only to the
type checker); the log stores them as JSON objects ``{"type": <class name>, <field>: <value>...}`` with
moments as ISO 8601 strings, and :func:`command_of` reads them back into the same objects, so a replay
feeds the engine exactly what it received the first time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from accounting import exchange as engine_types
from accounting.exchange import Command, Event
from accounting.market_rules import InstrumentRules, TradingCalendar
from accounting.market_rules import Session as TradingSession
from api.store.schema import (
    ExchangeClock,
    ExchangeCommand,
    ExchangeDay,
    ExchangeInstrument,
    ExchangeOrder,
    ExchangeSettlement,
    ExchangeTrade,
    LedgerBalance,
)

COMMAND_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in (
    engine_types.PlaceOrder, engine_types.CancelOrder, engine_types.ReplaceOrder, engine_types.Halt,
    engine_types.Resume, engine_types.OpenDay, engine_types.ChangeBand, engine_types.CloseDay,
    engine_types.PostQuote, engine_types.TakeQuote, engine_types.CancelQuote, engine_types.ProposeBlock,
    engine_types.ConfirmBlock, engine_types.DeclineBlock, engine_types.WithdrawBlock, engine_types.RestrictAccount,
    engine_types.LiftRestriction)}


def document_of(item: Command | Event) -> dict[str, Any]:
    """A command or an event as a JSON object."""
    document: dict[str, Any] = {"type": type(item).__name__}
    for name in _field_names(type(item)):
        value = getattr(item, name)
        document[name] = value.isoformat() if isinstance(value, datetime) else value
    return document


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    """The field names of a command or event class (looked up once per class)."""
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


def command_of(document: dict[str, Any]) -> Command:
    """The command a log row holds."""
    values = dict(document)
    cls = COMMAND_TYPES[values.pop("type")]
    if "at" in values:
        values["at"] = datetime.fromisoformat(values["at"])
    command: Command = cls(**values)
    return command


def rules_document(rules: InstrumentRules) -> dict[str, Any]:
    """Instrument rules as JSON (sessions as HH:MM pairs, the calendar's days as ISO dates)."""
    return {
        "instrument": rules.instrument, "tick_fen": rules.tick_fen, "lot_t": rules.lot_t,
        "listed_band_bp": rules.listed_band_bp, "block_band_bp": rules.block_band_bp,
        "block_min_t": rules.block_min_t,
        "listed_sessions": [[s.opens.isoformat("minutes"), s.closes.isoformat("minutes")]
                            for s in rules.listed_sessions],
        "block_sessions": [[s.opens.isoformat("minutes"), s.closes.isoformat("minutes")] for s in rules.block_sessions],
        "holidays": sorted(d.isoformat() for d in rules.calendar.holidays),
        "extra_trading_days": sorted(d.isoformat() for d in rules.calendar.extra_trading_days),
        "quote_partial_takes": rules.quote_partial_takes, "quote_take_levels": rules.quote_take_levels,
        "max_open_orders": rules.max_open_orders,
    }


def rules_of(document: dict[str, Any]) -> InstrumentRules:
    """The instrument rules a row holds."""
    from datetime import date, time

    def sessions(pairs: list[list[str]]) -> tuple[TradingSession, ...]:
        return tuple(TradingSession(opens=time.fromisoformat(a), closes=time.fromisoformat(b)) for a, b in pairs)

    calendar = TradingCalendar(holidays=frozenset(date.fromisoformat(d) for d in document["holidays"]),
                               extra_trading_days=frozenset(date.fromisoformat(d)
                                                            for d in document["extra_trading_days"]))
    scalars = {k: document[k] for k in ("instrument", "tick_fen", "lot_t", "listed_band_bp", "block_band_bp",
                                        "block_min_t", "quote_partial_takes", "quote_take_levels",
                                        "max_open_orders")}
    return InstrumentRules(**scalars, listed_sessions=sessions(document["listed_sessions"]),
                           block_sessions=sessions(document["block_sessions"]), calendar=calendar)


# -- instruments and the log ----------------------------------------------------------------------


def instrument(session: Session, code: str) -> ExchangeInstrument | None:
    return session.scalars(select(ExchangeInstrument).where(ExchangeInstrument.instrument == code)).one_or_none()


def instruments(session: Session) -> list[ExchangeInstrument]:
    return list(session.scalars(select(ExchangeInstrument).order_by(ExchangeInstrument.instrument)))


def commands_after(session: Session, code: str, *, after: int, upto: int | None = None,
                   batch: int = 2000) -> Iterator[ExchangeCommand]:
    """The log of ``code`` from ``after`` + 1 (to ``upto``), in order, streamed."""
    last = after
    while True:
        query = select(ExchangeCommand).where(ExchangeCommand.instrument == code, ExchangeCommand.seq > last)
        if upto is not None:
            query = query.where(ExchangeCommand.seq <= upto)
        rows = list(session.scalars(query.order_by(ExchangeCommand.seq).limit(batch)))
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


# -- orders, trades and days -----------------------------------------------------------------------


def order_with_fills(session: Session, code: str, order_id: int) -> tuple[ExchangeOrder | None, list[ExchangeTrade]]:
    """The order and its fills (the trades on its side), in trade order, in one statement."""
    mine = or_(and_(ExchangeTrade.buy_order_id == ExchangeOrder.order_id,
                    ExchangeTrade.buy_account_id == ExchangeOrder.account_id),
               and_(ExchangeTrade.sell_order_id == ExchangeOrder.order_id,
                    ExchangeTrade.sell_account_id == ExchangeOrder.account_id))
    found = session.execute(select(ExchangeOrder, ExchangeTrade)
                            .outerjoin(ExchangeTrade, and_(ExchangeTrade.instrument == ExchangeOrder.instrument, mine))
                            .where(ExchangeOrder.instrument == code, ExchangeOrder.order_id == order_id)
                            .order_by(ExchangeTrade.trade_id)).all()
    return (found[0][0] if found else None), [trade for _, trade in found if trade is not None]


def bought_on_by_account(session: Session, code: str, *, account_ids: Iterable[str],
                         trading_day: str) -> dict[str, int]:
    """Tonnes each of ``account_ids`` bought of ``code`` on ``trading_day`` (absent: none), in one query."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = session.execute(select(ExchangeTrade.buy_account_id, func.sum(ExchangeTrade.quantity_t)).where(
        ExchangeTrade.buy_account_id.in_(ids), ExchangeTrade.instrument == code,
        ExchangeTrade.trading_day == trading_day).group_by(ExchangeTrade.buy_account_id))
    return {account_id: int(total) for account_id, total in rows}


def unsettled_trades(session: Session, code: str, *, trading_day: str) -> list[ExchangeTrade]:
    return list(session.scalars(select(ExchangeTrade).where(
        ExchangeTrade.instrument == code, ExchangeTrade.trading_day == trading_day,
        ExchangeTrade.entry_id.is_(None)).order_by(ExchangeTrade.trade_id)))


def day(session: Session, code: str, trading_day: str) -> ExchangeDay | None:
    return session.get(ExchangeDay, (code, trading_day))


def settlement(session: Session, code: str, trading_day: str) -> ExchangeSettlement | None:
    return session.get(ExchangeSettlement, (code, trading_day))


def clock(session: Session) -> ExchangeClock | None:
    return session.get(ExchangeClock, 1)


def locked_instrument(session: Session, code: str) -> tuple[ExchangeInstrument | None, ExchangeClock | None,
                                                            ExchangeDay | None]:
    """The instrument's row, locked until commit, the clock's row and the row of the instrument's trading day
    (None before its first), in one statement."""
    found = session.execute(_LOCKED_INSTRUMENT, {"code": code}).one_or_none()
    return (None, None, None) if found is None else (found[0], found[1], found[2])


#: Built once: every batch runs it, and building a statement costs more than the statement's round trip.
_LOCKED_INSTRUMENT = (select(ExchangeInstrument, ExchangeClock, ExchangeDay)
                      .select_from(ExchangeInstrument)
                      .outerjoin(ExchangeClock, ExchangeClock.id == 1)
                      .outerjoin(ExchangeDay, and_(ExchangeDay.instrument == ExchangeInstrument.instrument,
                                                   ExchangeDay.trading_day == ExchangeInstrument.trading_day))
                      .where(ExchangeInstrument.instrument == bindparam("code"))
                      .with_for_update(of=ExchangeInstrument))


# -- the ledger's balances, as a batch of exchange commands changes them --------------------------------------

_BALANCES = cast(Table, LedgerBalance.__table__)


def balance_additions(deltas: dict[tuple[str, str], int]) -> tuple[Table, list[dict[str, Any]], tuple[str, ...], str]:
    """Each delta added to its (account, instrument) balance, creating a missing row, as :func:`write_rows` takes it.

    A relative change locks the row as it changes it, so a balance that is only credited need not be
    read (or locked) before; the rows go in sorted order, as the ledger locks them.
    """
    return (_BALANCES, [{"account_id": a, "instrument": i, "quantity": deltas[(a, i)]} for a, i in sorted(deltas)],
            ("account_id", "instrument"), "quantity")

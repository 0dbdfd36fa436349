"""Reference prices: an officer records the price (fen per unit) and volume of an instrument on a day.

They value holdings (the latest price of each instrument), pledges (mark to market) and the penalty
estimate of a compliance shortfall (the volume-weighted average of a month's allowance prices). Until
the exchange publishes its closes, officers record them from the national market's daily report.

Recording the same values again changes nothing (the call is naturally idempotent); other values for
a day already recorded are refused (``price_already_recorded``) unless the officer asks to ``replace``
them, which is audited with the old and new values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accounting.compliance import ComplianceError, average_price_fen
from accounting.ledger import ALLOWANCE, CASH, check_quantity, parse_instrument
from accounting.review import Actor
from api.store import audit
from api.store.schema import ReferencePrice

#: The national market's day: China Standard Time.
MARKET_TIME = timezone(timedelta(hours=8), "CST")


def market_today() -> date:
    """Today in China Standard Time (the market's and the deadlines' calendar)."""
    return datetime.now(MARKET_TIME).date()


def describe(row: ReferencePrice) -> dict[str, Any]:
    return {"instrument": row.instrument, "day": row.day, "price_fen": row.price_fen, "volume": row.volume,
            "source": row.source, "recorded_by": row.recorded_by,
            "recorded_at": row.recorded_at}


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRecord:
    instrument: str
    day: date
    price_fen: int
    volume: int
    source: str
    replace: bool = False


def _check(record: PriceRecord) -> None:
    if parse_instrument(record.instrument).kind == CASH:
        raise ComplianceError("cash has no reference price", code="instrument_not_priced")
    check_quantity(record.price_fen, unit="fen")
    check_quantity(record.volume, unit="unit", allow_zero=True)
    if record.day > market_today():
        raise ComplianceError(f"{record.day} is in the future: a reference price is recorded after the day",
                              code="future_price_day")
    if not record.source.strip():
        raise ComplianceError("name the source of the price", code="missing_value")


def record_price(session: Session, *, actor: Actor, record: PriceRecord) -> tuple[bool, dict[str, Any]]:
    """Record (or, with ``replace``, correct) a day's price; (created, the stored price). Commits."""
    _check(record)
    day = record.day.isoformat()
    row = session.execute(select(ReferencePrice).where(ReferencePrice.instrument == record.instrument,
                                                       ReferencePrice.day == day).with_for_update()
                          ).scalar_one_or_none()
    source = record.source.strip()
    values: dict[str, Any] = {"price_fen": record.price_fen, "volume": record.volume, "source": source}
    if row is not None:
        before = {"price_fen": row.price_fen, "volume": row.volume, "source": row.source}
        if before == values:
            return False, describe(row)
        if not record.replace:
            raise ComplianceError(f"{record.instrument} already has a price for {day} ({row.price_fen} fen); "
                                  "send replace=true to correct it", code="price_already_recorded")
        row.price_fen, row.volume, row.source = record.price_fen, record.volume, source
        row.recorded_by, row.recorded_at = actor.actor_id, datetime.now(UTC)
        audit.append(session, actor=actor, action="price.corrected", target=f"price/{record.instrument}/{day}",
                     before=before, after=values)
        session.commit()
        return False, describe(row)
    row = ReferencePrice(instrument=record.instrument, day=day, price_fen=record.price_fen, volume=record.volume,
                         source=source, recorded_by=actor.actor_id, recorded_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="price.recorded", target=f"price/{record.instrument}/{day}",
                 after=values)
    session.commit()
    return True, describe(row)


def list_prices(session: Session, *, instrument: str | None, day_from: date | None, day_to: date | None,
                limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """Recorded prices, newest day first, optionally of one instrument and between two days (inclusive)."""
    statement = select(ReferencePrice)
    if instrument is not None:
        parse_instrument(instrument)
        statement = statement.where(ReferencePrice.instrument == instrument)
    if day_from is not None:
        statement = statement.where(ReferencePrice.day >= day_from.isoformat())
    if day_to is not None:
        statement = statement.where(ReferencePrice.day <= day_to.isoformat())
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(statement.order_by(ReferencePrice.day.desc(), ReferencePrice.instrument)
                           .limit(limit).offset(offset))
    return {"total": total, "items": [describe(r) for r in rows]}


def latest_price(session: Session, instrument: str) -> ReferencePrice | None:
    """The reference price of the latest day recorded for ``instrument``, if any."""
    return session.scalar(select(ReferencePrice).where(ReferencePrice.instrument == instrument)
                          .order_by(ReferencePrice.day.desc()).limit(1))


def latest_prices(session: Session) -> dict[str, ReferencePrice]:
    """The latest recorded price of every instrument (by day)."""
    latest: dict[str, ReferencePrice] = {}
    for row in session.scalars(select(ReferencePrice).order_by(ReferencePrice.day)):
        latest[row.instrument] = row
    return latest


def latest_allowance_price(prices: dict[str, ReferencePrice], *, vintage: int) -> ReferencePrice | None:
    """The price that values a year's allowances: that vintage's latest, else the latest of any vintage."""
    own = prices.get(f"CEA-{vintage}")
    if own is not None:
        return own
    allowances = [p for code, p in prices.items() if parse_instrument(code).kind == ALLOWANCE]
    return max(allowances, key=lambda p: (p.day, p.instrument), default=None)


def month_average_allowance_price_fen(session: Session, *, month: str) -> int | None:
    """The volume-weighted average of the allowance prices recorded in ``month`` (YYYY-MM); None without trades."""
    rows = session.scalars(select(ReferencePrice).where(ReferencePrice.day.startswith(f"{month}-"),
                                                        ReferencePrice.instrument.startswith("CEA-"),
                                                        ReferencePrice.volume > 0)).all()
    if not rows:
        return None
    return average_price_fen(trades=[(r.volume, r.price_fen) for r in rows])

"""Trading rules of the mock carbon exchange, as data: tick, lot, price bands, order sizes, sessions.

Pure rules, no storage and no clock of their own: every function takes the moment or the price it
judges. The matching core (``accounting.exchange``) and the services ask these functions, so a rule
lives in one place. A refused value raises ``MarketRuleError`` with a machine-readable ``code``; the
``*_rejection`` variants return the code (or ``None``) instead, for the engine's hot path.

The defaults follow the national market as announced by SEEE (``shared/reference/market-rules.md``
section 1.6; [S8] [S9]):

* price per tonne in integer **fen**, tick 1 fen (CNY 0.01); quantity in whole **tonnes**, lot 1 t;
* listed trading: band +-10 % of the previous close; a single order below 100,000 t
  (``order_too_large`` from 100,000 t on); sessions 09:30-11:30 and 13:00-15:00;
* block (bulk agreement) trading: band +-30 % of the previous close; at least 100,000 t
  (``block_too_small`` below); 13:00-15:00 only [S9];
* trading days: Monday to Friday minus the calendar's holidays and announced closures;
* listed agreement (挂牌协议): quotes may be taken in part unless the instrument says otherwise
  (``quote_partial_takes``), and only among the best ``quote_take_levels`` (five) price levels;
* an optional per-account cap on open orders and quotes (``max_open_orders``; none by default).

**Band rounding (our rule, stated because the sources do not give one):** the band limits are
rounded *inward* to the tick: the lower limit up, the upper limit down. So no accepted price is
ever more than the band's percentage away from the previous close; with a 1-fen tick the price
range loses at most one fen at each end. The band is given in basis points (1,000 = 10 %) so that
every limit is exact integer arithmetic; prices are never floats.

Times: sessions are wall-clock times in China Standard Time. China has kept UTC+8 without daylight
saving since 1991, so the zone is the fixed offset ``CHINA_TZ`` (no tz database needed, and the
answer cannot change with a tzdata update). Session intervals are half-open: ``[opens, closes)``.

>>> rules = InstrumentRules(instrument="CEA-2025")
>>> band(5000, LISTED, rules=rules)
PriceBand(low_fen=4500, high_fen=5500)
>>> band(5001, LISTED, rules=rules)  # 4500.9 rounds up, 5501.1 rounds down
PriceBand(low_fen=4501, high_fen=5501)
>>> from datetime import datetime
>>> is_open(datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ), rules=rules)  # a Monday morning
True
>>> is_open(datetime(2026, 3, 2, 12, 0, tzinfo=CHINA_TZ), rules=rules)  # lunch break
False
>>> check_quantity(100_000, LISTED, rules=rules)
Traceback (most recent call last):
...
accounting.market_rules.MarketRuleError: a listed order must be below 100000 t, got 100000 t
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone

from accounting.errors import AccountingError

#: China Standard Time (UTC+8, no daylight saving since 1991).
CHINA_TZ = timezone(timedelta(hours=8), "CST")

LISTED = "listed"
BLOCK = "block"
KINDS = (LISTED, BLOCK)
#: Basis points in one whole (100 %).
BP = 10_000


class MarketRuleError(AccountingError):
    """A price, quantity, moment or rule setting the market rules refuse; ``code`` says which rule."""

    code = "market_rule_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def _whole(value: object, *, name: str, unit: str) -> int:
    """``value`` if it is a plain ``int`` (not bool); MarketRuleError ``not_an_integer`` otherwise."""
    if type(value) is not int:
        raise MarketRuleError(f"{name} must be an int ({unit}), got {type(value).__name__} {value!r}",
                              code="not_an_integer")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """One trading session, ``[opens, closes)`` in China Standard Time."""

    opens: time
    closes: time

    def __post_init__(self) -> None:
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None or self.opens >= self.closes:
            raise MarketRuleError("a session needs naive wall-clock times with opens < closes", code="invalid_session")

    def contains(self, moment: time) -> bool:
        """True when the wall-clock time ``moment`` is in the session."""
        return self.opens <= moment < self.closes


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingCalendar:
    """Trading days: Monday to Friday, minus ``holidays`` (statutory holidays and announced closures).

    >>> TradingCalendar(holidays=frozenset({date(2026, 10, 1)})).is_trading_day(date(2026, 10, 1))
    False
    """

    holidays: frozenset[date] = frozenset()
    #: Weekend days that are worked as trading days (China's 调休 make-up days), if the exchange opens.
    extra_trading_days: frozenset[date] = frozenset()

    def is_trading_day(self, day: date) -> bool:
        """True when the exchange trades on ``day``."""
        if day in self.holidays:
            return False
        return day.weekday() < 5 or day in self.extra_trading_days


LISTED_SESSIONS = (Session(opens=time(9, 30), closes=time(11, 30)), Session(opens=time(13, 0), closes=time(15, 0)))
BLOCK_SESSIONS = (Session(opens=time(13, 0), closes=time(15, 0)),)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstrumentRules:
    """The rules of one instrument (an allowance vintage or CCER); every field is configuration.

    Prices are fen per tonne, quantities whole tonnes, bands basis points of the previous close.
    """

    instrument: str
    tick_fen: int = 1
    lot_t: int = 1
    listed_band_bp: int = 1_000
    block_band_bp: int = 3_000
    #: Listed orders must be *below* this; block trades at least this.
    block_min_t: int = 100_000
    listed_sessions: tuple[Session, ...] = LISTED_SESSIONS
    block_sessions: tuple[Session, ...] = BLOCK_SESSIONS
    calendar: TradingCalendar = field(default_factory=TradingCalendar)
    #: Listed agreement: whether a quote may be taken in part (a poster may still ask for all-or-none).
    quote_partial_takes: bool = True
    #: Listed agreement: a taker may take a quote only when its price is among this many best price
    #: levels of the quotes on that side (the "best five levels" traders see).
    quote_take_levels: int = 5
    #: Most open (resting) orders plus open quotes one account may have; ``None``: no cap.
    max_open_orders: int | None = None

    def __post_init__(self) -> None:
        for name in ("tick_fen", "lot_t", "block_min_t", "quote_take_levels"):
            if _whole(getattr(self, name), name=name, unit="integer") <= 0:
                raise MarketRuleError(f"{name} must be positive", code="invalid_rule")
        if self.max_open_orders is not None and _whole(self.max_open_orders, name="max_open_orders",
                                                       unit="orders") <= 0:
            raise MarketRuleError("max_open_orders must be positive or None", code="invalid_rule")
        if type(self.quote_partial_takes) is not bool:
            raise MarketRuleError("quote_partial_takes must be a bool", code="invalid_rule")
        for name in ("listed_band_bp", "block_band_bp"):
            if not 0 <= _whole(getattr(self, name), name=name, unit="basis points") < BP:
                raise MarketRuleError(f"{name} must be from 0 to {BP - 1} basis points", code="invalid_band")

    def with_band(self, *, kind: str, band_bp: int) -> InstrumentRules:
        """The same rules with the band of ``kind`` changed (an officer's decision); a new object."""
        if kind == LISTED:
            return replace(self, listed_band_bp=band_bp)
        if kind == BLOCK:
            return replace(self, block_band_bp=band_bp)
        raise MarketRuleError(f"kind must be one of {KINDS}, got {kind!r}", code="unknown_kind")


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceBand:
    """The prices accepted today, inclusive, in fen: ``low_fen <= price <= high_fen``."""

    low_fen: int
    high_fen: int

    def contains(self, price_fen: int) -> bool:
        """True when ``price_fen`` is inside the band."""
        return self.low_fen <= price_fen <= self.high_fen


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise MarketRuleError(f"kind must be one of {KINDS}, got {kind!r}", code="unknown_kind")
    return kind


def band(previous_close_fen: int, kind: str, *, rules: InstrumentRules) -> PriceBand:
    """The price band of ``kind`` around ``previous_close_fen``, limits rounded inward to the tick.

    >>> rules = InstrumentRules(instrument="CEA-2025", tick_fen=5)
    >>> band(9749, BLOCK, rules=rules)  # 6824.3 up to 6825, 12673.7 down to 12670
    PriceBand(low_fen=6825, high_fen=12670)
    """
    close = _whole(previous_close_fen, name="previous close", unit="fen")
    if close <= 0:
        raise MarketRuleError(f"the previous close must be positive, got {close} fen", code="invalid_price")
    band_bp = rules.listed_band_bp if _kind(kind) == LISTED else rules.block_band_bp
    tick = rules.tick_fen
    scale = BP * tick
    low = -((-close * (BP - band_bp)) // scale) * tick  # ceiling division: rounded up to the tick
    high = (close * (BP + band_bp)) // scale * tick  # floor division: rounded down to the tick
    low = max(low, tick)  # a price is at least one tick
    if low > high:
        raise MarketRuleError(f"no tick fits the band around {close} fen", code="empty_band")
    return PriceBand(low_fen=low, high_fen=high)


def price_rejection(price_fen: int, *, price_band: PriceBand, rules: InstrumentRules) -> str | None:
    """The rejection code of a limit price, or ``None`` when it is acceptable (``tick_size``, ``outside_band``)."""
    if price_fen % rules.tick_fen:
        return "tick_size"
    if not price_band.low_fen <= price_fen <= price_band.high_fen:
        return "outside_band"
    return None


def check_price(price_fen: int, *, price_band: PriceBand, rules: InstrumentRules) -> int:
    """``price_fen`` when it is a whole number of ticks inside the band; MarketRuleError otherwise.

    >>> rules = InstrumentRules(instrument="CCER")
    >>> check_price(5600, price_band=band(5000, LISTED, rules=rules), rules=rules)
    Traceback (most recent call last):
    ...
    accounting.market_rules.MarketRuleError: price 5600 fen is outside the band 4500-5500 fen
    """
    price = _whole(price_fen, name="price", unit="fen")
    if price <= 0:
        raise MarketRuleError(f"price must be positive, got {price} fen", code="invalid_price")
    code = price_rejection(price, price_band=price_band, rules=rules)
    if code == "tick_size":
        raise MarketRuleError(f"price {price} fen is not a multiple of the tick ({rules.tick_fen} fen)", code=code)
    if code == "outside_band":
        raise MarketRuleError(f"price {price} fen is outside the band {price_band.low_fen}-{price_band.high_fen} fen",
                              code=code)
    return price


def quantity_rejection(quantity_t: int, kind: str, *, rules: InstrumentRules) -> str | None:
    """The rejection code of an order quantity, or ``None`` (``lot_size``, ``order_too_large``, ``block_too_small``)."""
    if quantity_t % rules.lot_t:
        return "lot_size"
    if kind == LISTED and quantity_t >= rules.block_min_t:
        return "order_too_large"
    if kind == BLOCK and quantity_t < rules.block_min_t:
        return "block_too_small"
    return None


def check_quantity(quantity_t: int, kind: str, *, rules: InstrumentRules) -> int:
    """``quantity_t`` when it is a positive whole number of lots of the right size for ``kind``.

    >>> check_quantity(99_999, BLOCK, rules=InstrumentRules(instrument="CCER"))
    Traceback (most recent call last):
    ...
    accounting.market_rules.MarketRuleError: a block trade must be at least 100000 t, got 99999 t
    """
    quantity = _whole(quantity_t, name="quantity", unit="t")
    if quantity <= 0:
        raise MarketRuleError(f"quantity must be positive, got {quantity} t", code="invalid_quantity")
    code = quantity_rejection(quantity, _kind(kind), rules=rules)
    messages = {
        "lot_size": f"quantity {quantity} t is not a multiple of the lot ({rules.lot_t} t)",
        "order_too_large": f"a listed order must be below {rules.block_min_t} t, got {quantity} t",
        "block_too_small": f"a block trade must be at least {rules.block_min_t} t, got {quantity} t",
    }
    if code is not None:
        raise MarketRuleError(messages[code], code=code)
    return quantity


def _aware(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise MarketRuleError(f"a timezone-aware datetime is required, got {moment!r}", code="naive_datetime")
    return moment


def is_open(at: datetime, *, rules: InstrumentRules, kind: str = LISTED) -> bool:
    """True when ``kind`` trading is in session at ``at`` (any timezone; judged in China Standard Time)."""
    local = _aware(at).astimezone(CHINA_TZ)
    if not rules.calendar.is_trading_day(local.date()):
        return False
    sessions = rules.listed_sessions if _kind(kind) == LISTED else rules.block_sessions
    wall = local.time()
    return any(session.contains(wall) for session in sessions)


def session_rejection(at: datetime, *, rules: InstrumentRules, kind: str = LISTED, halted: bool = False) -> str | None:
    """``halted``, ``market_closed`` or ``None``: whether an order may be entered at ``at``."""
    if halted:
        return "halted"
    if not is_open(at, rules=rules, kind=kind):
        return "market_closed"
    return None


def check_open(at: datetime, *, rules: InstrumentRules, kind: str = LISTED, halted: bool = False) -> None:
    """Nothing when orders may be entered at ``at``; MarketRuleError ``halted`` or ``market_closed`` otherwise.

    >>> check_open(datetime(2026, 3, 7, 10, tzinfo=CHINA_TZ), rules=InstrumentRules(instrument="CCER"))
    Traceback (most recent call last):
    ...
    accounting.market_rules.MarketRuleError: listed trading is closed at 2026-03-07 10:00:00+08:00
    """
    code = session_rejection(at, rules=rules, kind=kind, halted=halted)
    if code == "halted":
        raise MarketRuleError(f"{rules.instrument} is halted", code=code)
    if code == "market_closed":
        raise MarketRuleError(f"{kind} trading is closed at {at.astimezone(CHINA_TZ)}", code=code)


def next_open(at: datetime, *, rules: InstrumentRules, kind: str = LISTED, max_days: int = 60) -> datetime:
    """The first moment at or after ``at`` when ``kind`` trading is in session (China Standard Time).

    >>> next_open(datetime(2026, 3, 6, 15, 0, tzinfo=CHINA_TZ), rules=InstrumentRules(instrument="CCER"))
    datetime.datetime(2026, 3, 9, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(seconds=28800), 'CST'))
    """
    local = _aware(at).astimezone(CHINA_TZ)
    sessions = sorted(rules.listed_sessions if _kind(kind) == LISTED else rules.block_sessions,
                      key=lambda s: s.opens)
    day = local.date()
    for _ in range(max_days + 1):
        if rules.calendar.is_trading_day(day):
            for session in sessions:
                opens = datetime.combine(day, session.opens, tzinfo=CHINA_TZ)
                closes = datetime.combine(day, session.closes, tzinfo=CHINA_TZ)
                if local < closes:
                    return max(opens, local)
        day += timedelta(days=1)
    raise MarketRuleError(f"no trading session within {max_days} days of {local}", code="no_session")


@dataclass(frozen=True, slots=True, kw_only=True)
class DayRoll:
    """What the trading day needs at a moment: the open day closed (at ``close_at``), the next one opened."""

    close_at: datetime | None
    opens: bool

    @property
    def due(self) -> bool:
        return self.close_at is not None or self.opens


def day_roll(at: datetime, *, trading_day: str | None, day_open: bool, rules: InstrumentRules) -> DayRoll:
    """Whether the trading day ``trading_day`` (ISO date; ``day_open`` when it has not closed) rolls at ``at``.

    An open day closes once its last session has ended, or on any later date; its close is stamped at
    that session's end, or at ``at`` if that is earlier (a day closed on a later date that began after the
    sessions' end). The next trading day opens during its sessions, once the day before has closed.

    >>> rules = InstrumentRules(instrument="CEA-2025")
    >>> day_roll(datetime(2026, 3, 3, 9, 0, tzinfo=CHINA_TZ), trading_day="2026-03-02", day_open=True, rules=rules)
    DayRoll(close_at=datetime.datetime(2026, 3, 2, 15, 0, tzinfo=...), opens=False)
    >>> day_roll(datetime(2026, 3, 3, 9, 30, tzinfo=CHINA_TZ), trading_day="2026-03-02", day_open=True,
    ...          rules=rules).opens
    True
    >>> day_roll(datetime(2026, 3, 2, 14, 59, tzinfo=CHINA_TZ), trading_day="2026-03-02", day_open=True,
    ...          rules=rules).due
    False
    """
    local = _aware(at).astimezone(CHINA_TZ)
    sessions = (*rules.listed_sessions, *rules.block_sessions)
    closes, opens = max(s.closes for s in sessions), min(s.opens for s in sessions)
    today = local.date().isoformat()
    close_at = None
    if day_open and trading_day is not None and (today > trading_day or local.time() >= closes):
        close_at = min(_aware(at), datetime.combine(date.fromisoformat(trading_day), closes, CHINA_TZ))
    opening = ((not day_open or close_at is not None) and rules.calendar.is_trading_day(local.date())
               and today > (trading_day or "") and opens <= local.time() < closes)
    return DayRoll(close_at=close_at, opens=opening)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationClock:
    """A rehearsal clock: simulated time = ``start`` + ``speed`` x real time elapsed since it was set.

    A pure value object: it reads no clock. The caller passes the real time elapsed (the service
    measures it), so a test or a replay gets the same simulated moments. ``speed`` 0 pauses the clock;
    officers then move it with ``stepped`` (``step`` at a time). Changing the speed re-bases the clock
    at the current simulated moment, so simulated time never jumps.

    >>> t0 = datetime(2026, 3, 2, 9, 30, tzinfo=CHINA_TZ)
    >>> clock = SimulationClock(start=t0, speed=60, step=timedelta(minutes=5))
    >>> clock.now(elapsed=timedelta(seconds=30)).time()  # 30 s of real time = 30 simulated minutes
    datetime.time(10, 0)
    >>> clock.stepped(3).now(elapsed=timedelta(0)).time()
    datetime.time(9, 45)
    """

    start: datetime
    speed: int = 1
    step: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        _aware(self.start)
        if _whole(self.speed, name="speed", unit="multiplier") < 0:
            raise MarketRuleError("speed must be 0 (paused) or more", code="invalid_speed")
        if not isinstance(self.step, timedelta) or self.step <= timedelta(0):
            raise MarketRuleError("step must be a positive timedelta", code="invalid_step")

    def now(self, *, elapsed: timedelta) -> datetime:
        """The simulated moment after ``elapsed`` real time since the clock was set."""
        if elapsed < timedelta(0):
            raise MarketRuleError("elapsed real time cannot be negative", code="invalid_elapsed")
        return self.start + elapsed * self.speed

    def stepped(self, steps: int = 1) -> SimulationClock:
        """The clock moved forward by ``steps`` x ``step``, from its start (use when paused)."""
        if _whole(steps, name="steps", unit="count") < 0:
            raise MarketRuleError("a clock only steps forward", code="invalid_step")
        return replace(self, start=self.start + self.step * steps)

    def with_speed(self, speed: int, *, elapsed: timedelta) -> SimulationClock:
        """A clock running at ``speed`` from the simulated moment reached after ``elapsed``."""
        return replace(self, start=self.now(elapsed=elapsed), speed=speed)

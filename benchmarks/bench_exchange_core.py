"""Benchmark: orders per second of the exchange's matching core alone, on one core.

The exchange's matching core has a target of at least 100,000 orders/s on one core, and is compared
with a published Python order-book library measured in the same run. A
figure only means something against the same stream, so:

* one seeded command stream with a realistic mix (default 60 % limit, 15 % market or IOC, 25 %
  cancel of a live order; prices around the previous close inside the band, 1-200 t, 20 accounts,
  self-trades included) is generated before timing;
* the timed part is ``MatchingEngine.apply`` over the whole stream (commands built beforehand, events
  kept in a list as the service would append them to its log);
* the reference matcher (``tests/reference/matcher.py``, re-sorts the book per step) runs a prefix of
  the same stream in the same process and must produce the same events there (else exit 1); the
  ratio is engine orders/s over reference orders/s;
* the PyPI library ``order-matching`` (khrapovs/OrderBookMatchingEngine) gets a prefix of the same stream
  (float prices, as that library has them; its cancel is by order id). It is the ``bench`` extra, which
  ``make bench-exchange`` installs, not a dependency of the service: run by hand without it, the row
  says it was skipped and why.

Run ``.venv/bin/python benchmarks/bench_exchange_core.py [--orders 200000] [--seed 7]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accounting import exchange as ex  # noqa: E402
from accounting.market_rules import CHINA_TZ, InstrumentRules  # noqa: E402
from tests.reference.matcher import ReferenceMatcher, project  # noqa: E402

CLOSE = 5000
AT = datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ)
RULES = InstrumentRules(instrument="CEA-2025")
TARGET_ORDERS_PER_S = 100_000


def make_stream(*, seed: int, count: int, accounts: int = 20) -> list[ex.Command]:
    """60 % limit, 15 % market or IOC, 25 % cancel of a (probably) live order, seeded."""
    rng = random.Random(seed)
    commands: list[ex.Command] = []
    live: list[tuple[int, str]] = []  # (order id, account) of limit orders, oldest first
    next_id = 0
    for number in range(count):
        roll = rng.random()
        account = f"T{rng.randrange(accounts)}"
        side = ex.BUY if rng.random() < 0.5 else ex.SELL
        # limit prices cluster near the touch: buys below the close, sells above, with overlap
        skew = -1 if side == ex.BUY else 1
        price = CLOSE + skew * rng.randint(-3, 40) * 5
        quantity = rng.randint(1, 200)
        if roll < 0.60 or (roll >= 0.75 and not live):
            commands.append(ex.PlaceOrder(account_id=account, client_order_id=str(number), side=side,
                                          quantity_t=quantity, price_fen=price, at=AT))
            next_id += 1
            live.append((next_id, account))
        elif roll < 0.75:
            if rng.random() < 0.5:
                commands.append(ex.PlaceOrder(account_id=account, client_order_id=str(number), side=side,
                                              quantity_t=quantity, order_type=ex.MARKET, at=AT))
            else:
                commands.append(ex.PlaceOrder(account_id=account, client_order_id=str(number), side=side,
                                              quantity_t=quantity, price_fen=price, time_in_force=ex.IOC, at=AT))
            next_id += 1
        else:
            order_id, owner = live.pop(rng.randrange(len(live)))
            commands.append(ex.CancelOrder(account_id=owner, order_id=order_id, at=AT))
    return commands


def time_engine(commands: list[ex.Command]) -> tuple[float, int, int]:
    engine = ex.MatchingEngine(rules=RULES, previous_close_fen=CLOSE)
    log: list[ex.Event] = []
    start = time.perf_counter()
    for command in commands:
        log.extend(engine.apply(command))
    seconds = time.perf_counter() - start
    return seconds, len(log), sum(1 for e in log if isinstance(e, ex.TradeExecuted))


def time_reference(commands: list[ex.Command]) -> tuple[float, bool]:
    reference = ReferenceMatcher(rules=RULES, previous_close_fen=CLOSE)
    start = time.perf_counter()
    expected = [reference.apply(c) for c in commands]
    seconds = time.perf_counter() - start
    engine = ex.MatchingEngine(rules=RULES, previous_close_fen=CLOSE)
    agree = all(project(engine.apply(c)) == e for c, e in zip(commands, expected, strict=True))
    return seconds, agree


def time_order_matching(commands: list[ex.Command]) -> float | str:
    """Seconds for the ``order-matching`` library on the same stream, or why it was skipped."""
    try:
        from loguru import logger
        from order_matching.enums import Side
        from order_matching.matching_engine import MatchingEngine
        from order_matching.order import LimitOrder, MarketOrder
        from order_matching.orders import Orders
    except ImportError:
        return "skipped: order-matching is not installed (the bench extra: make bench-exchange installs it)"
    logger.remove()
    naive = AT.replace(tzinfo=None)  # the library compares naive timestamps
    engine = MatchingEngine(seed=1)
    built: list[Any] = []
    next_id = 0
    for command in commands:  # convert before timing
        if isinstance(command, ex.PlaceOrder):
            next_id += 1
            side = Side.BUY if command.side == ex.BUY else Side.SELL
            if command.order_type == ex.MARKET:
                order: Any = MarketOrder(side=side, size=float(command.quantity_t), timestamp=naive,
                                         order_id=str(next_id), trader_id=command.account_id)
            else:  # its limit orders rest; IOC has no equivalent, so IOC runs as a limit order there
                order = LimitOrder(side=side, price=command.price_fen / 100, size=float(command.quantity_t),
                                   timestamp=naive, order_id=str(next_id), trader_id=command.account_id,
                                   price_number_of_digits=2)
            built.append(Orders([order]))
        elif isinstance(command, ex.CancelOrder):
            built.append(str(command.order_id))
    start = time.perf_counter()
    for item in built:
        if isinstance(item, str):
            try:
                engine.cancel_order(item)
            except ValueError:
                pass  # already filled there
        else:
            engine.place(item)
            engine.match(timestamp=naive)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--reference-orders", type=int, default=20_000)
    parser.add_argument("--library-orders", type=int, default=5_000,
                        help="the prefix order-matching gets (about 400 orders/s: default 5,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    commands = make_stream(seed=args.seed, count=args.orders)
    best, events, trade_count = min(time_engine(commands) for _ in range(args.repeat))
    engine_rate = args.orders / best
    prefix = commands[: args.reference_orders]
    engine_prefix_s = min(time_engine(prefix)[0] for _ in range(args.repeat))
    reference_s, agree = time_reference(prefix)
    library = time_order_matching(commands[: args.library_orders])
    print(f"load average before: {os.getloadavg()[0]:.2f}; seed {args.seed}; one core")
    print(f"engine     {args.orders:>8} commands  {best:7.3f} s  {engine_rate:>10,.0f} orders/s  "
          f"({events} events, {trade_count} trades)  target {TARGET_ORDERS_PER_S:,}: "
          f"{'PASS' if engine_rate >= TARGET_ORDERS_PER_S else 'MISS'}")
    prefix_rate = len(prefix) / engine_prefix_s
    reference_rate = len(prefix) / reference_s
    print(f"reference  {len(prefix):>8} commands  {reference_s:7.3f} s  {reference_rate:>10,.0f} orders/s  "
          f"engine on the same prefix {prefix_rate:,.0f}/s, ratio {prefix_rate / reference_rate:,.1f}x, "
          f"same events: {agree}")
    if isinstance(library, str):
        print(f"order-matching: {library}")
    else:
        lib_prefix = commands[: args.library_orders]
        lib_engine_s = min(time_engine(lib_prefix)[0] for _ in range(args.repeat))
        lib_rate = len(lib_prefix) / library
        print(f"order-matching {len(lib_prefix):>4} commands  {library:7.3f} s  {lib_rate:>10,.0f} orders/s  "
              f"engine on the same prefix {len(lib_prefix) / lib_engine_s:,.0f}/s, "
              f"ratio {len(lib_prefix) / lib_engine_s / lib_rate:,.1f}x")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())

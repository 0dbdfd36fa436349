"""Benchmark: durable orders per second and latency through the exchange's API, on SQLite and PostgreSQL.

The issue's target on 2 cores: at least 1,000 durable orders/s through the API on PostgreSQL with a
p99 latency under 100 ms, at 32 concurrent clients. What is measured, per database:

* a fresh database (SQLite: a file in a temporary folder, WAL; PostgreSQL: a throwaway schema dropped
  afterwards, never the rest of the database), set up by ``carbon simulate``'s own code
  (``pipelines.cli_exchange.prepare_market``): the registry, one funded trading account, user and API
  key per client, an officer;
* a live ``uvicorn api.main:create_app --factory`` on 127.0.0.1 (``--workers``, default 1), the rate
  limits raised far above the load (settings ``rate_limit_per_minute``, ``exchange_orders_per_minute``);
  CEA-2025 listed at 50.00 CNY, fee 10 bp, settlement at each trade, the clock paused in a session;
* the load: ``--clients`` threads (default 32), each a pilot trader (``accounting.agents.TraderAgent``,
  noise or mean-reversion, seeded) on its own keep-alive connection, measured twice: a REST request per
  order, then over an order-entry WebSocket per client (``/v1/exchange/session``, the same agents and
  answers; ``ORDER_ENTRIES``). Each client sends what its agent decides:
  limit buys and sells near the middle (some crossing it), some market and IOC orders, cancels of its
  resting orders (a cancel that comes too late learns how the order ended from its refusal). Every
  answer is durable: the service commits the command, its ledger entry and its trades before answering;
* **orders/s** = order-entry requests answered (placements and cancels, accepted or refused by a
  market rule) per second of wall time, all clients together; **p50/p99** = their latency at the client;
* baselines measured in the same run: one client alone against the same server (the ratio is
  ``--clients`` over one), the matching core alone (``bench_exchange_core``: the same kind of mix,
  one core, no I/O), and the floor of the request path: ``GET /v1/exchange/clock`` (the sign-in check and
  one read) from the same clients for ``--floor-seconds``;
* where the CPU went, per request: the server's (the uvicorn process and its workers, from ``/proc``) and the
  clients' own (this process), measured separately because both share the same cores: a figure that
  hides the load generator's cost would flatter or blame the server;
* afterwards ``api.services.ledger.verify`` and ``api.services.exchange.verify`` (replaying the whole
  log) must pass, or the benchmark exits 1. A missed target is reported, not an error.

Run ``.venv/bin/python benchmarks/bench_exchange_api.py [--seconds 10] [--clients 32] [--workers 1]``;
results go to ``benchmarks/out/exchange_api.json`` (git-ignored). PostgreSQL is
``CARBON_TEST_POSTGRES_URL`` or ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; unreachable, its
part is skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accounting.agents import MarketView  # noqa: E402
from accounting.market_rules import CHINA_TZ, PriceBand  # noqa: E402
from benchmarks.bench_exchange_core import make_stream, time_engine  # noqa: E402
from pipelines.cli_exchange import (  # noqa: E402
    FEE_BP,
    ORDER_ENTRIES,
    REFERENCE_PRICE_FEN,
    ApiClient,
    Seat,
    bearer,
    build_seats,
    live_api,
    prepare_market,
    rehearsal_settings,
)

INSTRUMENT = "CEA-2025"
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ)
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_ORDERS_PER_S = 1_000
TARGET_P99_MS = 100.0
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "exchange_api.json"
#: Each client stops after this many requests even if time remains (the loop is bounded in count and time).
MAX_REQUESTS_PER_CLIENT = 20_000


@contextmanager
def sqlite_database() -> Iterator[str | None]:
    yield None  # rehearsal_settings puts a SQLite file in its temporary folder


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL confined to a fresh schema of the PostgreSQL server, dropped afterwards; OSError if unreachable."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    base = os.environ.get("CARBON_TEST_POSTGRES_URL", POSTGRES_URL)
    schema = f"bench_exchange_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'create schema "{schema}"'))
    except OperationalError as err:
        admin.dispose()
        raise OSError(f"PostgreSQL is not reachable at {base}: {str(err).splitlines()[0]}") from err
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'drop schema "{schema}" cascade'))
        admin.dispose()


def percentile(sorted_values: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values (seconds)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(share * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def server_cpu_seconds() -> float | None:
    """CPU time (user + system) used so far by this process's descendants: the uvicorn server and its workers.

    Read from ``/proc`` (Linux); None elsewhere. Descendants that already ended are not counted, so read it
    around a phase while the server runs.
    """
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    ours, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - ours
        ours |= frontier
    return sum(times[pid] for pid in ours)


def client_cpu_seconds() -> float:
    """CPU time used so far by this process: the benchmark's clients (and, between phases, its setup)."""
    spent = os.times()
    return spent.user + spent.system


def read_clock(seat: Seat) -> None:
    """The request path's floor: the sign-in check and one small read, nothing written."""
    started = time.perf_counter()
    status, _ = seat.client.call("GET", "/v1/exchange/clock")
    if status != 200:
        raise RuntimeError(f"GET /v1/exchange/clock answered {status}")
    assert seat.latencies is not None
    seat.latencies.append(time.perf_counter() - started)
    seat.counts["clock"] += 1


def drive(seats: list[Seat], view: MarketView, *, seconds: float, tag: str,
          step: Callable[[Seat], None] | None = None) -> dict[str, Any]:
    """Every seat in a thread of its own, acting as fast as answers come, for ``seconds``.

    ``step`` is one unit of a seat's work: by default its agent's next decision (orders and cancels).
    """
    for seat in seats:
        seat.latencies = []
        seat.counts.clear()
    start_line = threading.Barrier(len(seats) + 1)
    errors: list[BaseException] = []

    def trade(seat: Seat) -> None:
        start_line.wait()
        deadline = time.perf_counter() + seconds
        try:
            while time.perf_counter() < deadline and len(seat.latencies or ()) < MAX_REQUESTS_PER_CLIENT:
                if step is None:
                    seat.act(view, tag=tag)
                else:
                    step(seat)
        except BaseException as err:  # reported below; the other clients finish their time
            errors.append(err)

    threads = [threading.Thread(target=trade, args=(seat,), daemon=True) for seat in seats]
    for thread in threads:
        thread.start()
    server_before, client_before = server_cpu_seconds(), client_cpu_seconds()
    start_line.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(seconds + 120)
    wall = time.perf_counter() - started
    server_after, client_after = server_cpu_seconds(), client_cpu_seconds()
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]!r}") from errors[0]
    latencies = sorted(x for seat in seats for x in seat.latencies or ())
    counts: Counter[str] = Counter()
    for seat in seats:
        counts.update(seat.counts)
    requests = max(1, len(latencies))
    server_ms = (None if server_before is None or server_after is None
                 else round((server_after - server_before) * 1000 / requests, 3))
    return {"clients": len(seats), "seconds": round(wall, 3), "requests": len(latencies),
            "orders_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
            "server_cpu_ms_per_request": server_ms,
            "client_cpu_ms_per_request": round((client_after - client_before) * 1000 / requests, 3),
            "mix": dict(sorted(counts.items()))}


def verify(settings: Any) -> dict[str, Any]:
    from api.services import exchange, ledger
    from api.store.db import session_factory

    started = time.perf_counter()
    with session_factory(settings)() as session:
        ledger_report = ledger.verify(session)
        exchange_report = exchange.verify(session, instrument=INSTRUMENT)
    session_factory(settings).kw["bind"].dispose()
    return {"ok": bool(ledger_report["ok"] and exchange_report["ok"]), "ledger_ok": ledger_report["ok"],
            "exchange_ok": exchange_report["ok"], "commands": exchange_report["commands"],
            "trades": exchange_report["trades"], "problems": exchange_report["problems"][:10],
            "seconds": round(time.perf_counter() - started, 2)}


def run_backend(name: str, database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """Set up a fresh market on one database, serve it, measure one client then all clients, verify."""
    with rehearsal_settings(database_url) as settings:
        roster = prepare_market(settings, seed=args.seed, instrument=INSTRUMENT, enterprises=0, traders=args.clients,
                                trader_cash_fen=10**13, trader_units_t=10**8)
        with live_api(settings, workers=args.workers) as base_url:
            officer = ApiClient(base_url, bearer(roster.officer_key))
            officer.ok("PUT", "/v1/exchange/clock", {"mode": "simulated", "start": MONDAY_10.isoformat(),
                                                     "speed": 0}, once=True)
            listed = officer.ok("POST", "/v1/exchange/instruments", {
                "instrument": INSTRUMENT, "reference_price_fen": REFERENCE_PRICE_FEN, "fee_bp": FEE_BP,
                "max_open_orders": 1000}, once=True, expect=201)
            officer.ok("POST", f"/v1/exchange/instruments/{INSTRUMENT}/roll", once=True)
            view = MarketView(band=PriceBand(**listed["listed_band"]), previous_close_fen=REFERENCE_PRICE_FEN)
            seats = build_seats(roster, base_url=base_url, instrument=INSTRUMENT, seed=args.seed, latencies=[])
            drive(seats, view, seconds=1.0, tag="warm")  # every key checked once, connections open
            floor = drive(seats, view, seconds=args.floor_seconds, tag="floor", step=read_clock)
            print(f"  {name}: floor GET /v1/exchange/clock, {args.clients} clients {floor['orders_per_s']:,.0f}/s, "
                  f"p50 {floor['p50_ms']} ms, p99 {floor['p99_ms']} ms", flush=True)
            entries: dict[str, Any] = {}
            for entry in ORDER_ENTRIES:
                if entry != "rest":  # the same agents, on fresh connections of the other kind
                    for seat in seats:
                        seat.client.close()
                    seats = build_seats(roster, base_url=base_url, instrument=INSTRUMENT, seed=args.seed + 1,
                                        latencies=[], order_entry=entry)
                    drive(seats, view, seconds=1.0, tag=f"warm-{entry}")
                single = drive(seats[:1], view, seconds=args.baseline_seconds, tag=f"one-{entry}")
                print(f"  {name} {entry}: one client {single['orders_per_s']:,.0f} orders/s, "
                      f"p50 {single['p50_ms']} ms", flush=True)
                load = drive(seats, view, seconds=args.seconds, tag=f"all-{entry}")
                print(f"  {name} {entry}: {args.clients} clients {load['orders_per_s']:,.0f} orders/s, "
                      f"p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms", flush=True)
                entries[entry] = {"single_client": single, "load": load,
                                  "ratio_vs_single_client": round(load["orders_per_s"] / single["orders_per_s"], 2)
                                  if single["orders_per_s"] else None}
            for seat in seats:
                seat.client.close()
            officer.close()
        checked = verify(settings)
    return {"database": name, "workers": args.workers, "floor_clock_reads": floor, "order_entry": entries,
            "verify": checked}


def core_baseline(orders: int, seed: int) -> dict[str, Any]:
    commands = make_stream(seed=seed, count=orders)
    best = min(time_engine(commands)[0] for _ in range(3))
    return {"orders": orders, "seconds": round(best, 4), "orders_per_s": round(orders / best)}


def _cpu_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def print_cpu_table(databases: dict[str, Any]) -> None:
    """The request path's floor beside the orders, and the CPU per request of the server and of the clients."""
    print(f"{'database':<12}{'phase':<16}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'server CPU ms/req':>19}"
          f"{'client CPU ms/req':>19}")
    for name, result in databases.items():
        phases = [("clock reads", result["floor_clock_reads"])]
        phases += [(f"orders {entry}", e["load"]) for entry, e in result["order_entry"].items()]
        for label, figures in phases:
            print(f"{name:<12}{label:<16}{figures['orders_per_s']:>8,.0f}{figures['p50_ms']:>9.1f}"
                  f"{figures['p99_ms']:>9.1f}{_cpu_ms(figures['server_cpu_ms_per_request']):>19}"
                  f"{_cpu_ms(figures['client_cpu_ms_per_request']):>19}")


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured load per database (default 10)")
    parser.add_argument("--baseline-seconds", type=float, default=4.0, help="one client alone (default 4)")
    parser.add_argument("--floor-seconds", type=float, default=4.0,
                        help="GET /v1/exchange/clock from every client, the request path's floor (default 4)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--core-orders", type=int, default=50_000, help="commands for the matching-core baseline")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    print(f"exchange API benchmark: {args.clients} clients, {args.workers} uvicorn worker(s), {args.seconds:g} s per "
          f"database, {os.cpu_count()} cores, load average {load_before:.2f}", flush=True)
    core = core_baseline(args.core_orders, args.seed)
    results: dict[str, Any] = {"clients": args.clients, "workers": args.workers, "cores": os.cpu_count(),
                               "python": platform.python_version(), "load_average_before": load_before,
                               "core_engine": core, "databases": {}, "skipped": {}}
    databases = {"sqlite": sqlite_database, "postgresql": postgres_schema}
    for name in [d.strip() for d in args.databases.split(",") if d.strip()]:
        try:
            with databases[name]() as url:
                results["databases"][name] = run_backend(name, url, args)
        except OSError as err:
            results["skipped"][name] = str(err)
            print(f"  {name}: skipped: {err}", flush=True)
    results["load_average_after"] = os.getloadavg()[0]
    print()
    print(f"{'database':<12}{'entry':<9}{'clients':>8}{'orders/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'1 client/s':>11}"
          f"{'x 1 client':>11}{'vs core':>9}  verify")
    failed = False
    for name, result in results["databases"].items():
        checked = result["verify"]
        failed |= not checked["ok"]
        for entry, figures in result["order_entry"].items():
            load, single = figures["load"], figures["single_client"]
            print(f"{name:<12}{entry:<9}{load['clients']:>8}{load['orders_per_s']:>10,.0f}{load['p50_ms']:>9.1f}"
                  f"{load['p99_ms']:>9.1f}{single['orders_per_s']:>11,.0f}{figures['ratio_vs_single_client']:>11.2f}"
                  f"{load['orders_per_s'] / core['orders_per_s']:>9.4f}  "
                  f"{'ok' if checked['ok'] else 'FAILED'} ({checked['commands']} commands, {checked['trades']} trades)")
    print_cpu_table(results["databases"])
    print(f"matching core alone: {core['orders_per_s']:,} orders/s (one core, {core['orders']:,} commands)")
    pg = results["databases"].get("postgresql")
    if pg is None:
        print(f"target (PostgreSQL >= {TARGET_ORDERS_PER_S:,} orders/s, p99 < {TARGET_P99_MS:g} ms): not measured "
              f"({results['skipped'].get('postgresql', 'not selected')})")
    else:
        results["targets"] = {}
        for entry, figures in pg["order_entry"].items():
            load = figures["load"]
            rate_ok, p99_ok = load["orders_per_s"] >= TARGET_ORDERS_PER_S, load["p99_ms"] < TARGET_P99_MS
            results["targets"][entry] = {"orders_per_s": verdict(rate_ok), "p99_ms": verdict(p99_ok)}
            print(f"target PostgreSQL, {entry} order entry: >= {TARGET_ORDERS_PER_S:,} durable orders/s: "
                  f"{load['orders_per_s']:,.0f} {verdict(rate_ok)}; p99 < {TARGET_P99_MS:g} ms: "
                  f"{load['p99_ms']:.1f} ms {verdict(p99_ok)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

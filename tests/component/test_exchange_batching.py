"""Group commit of the exchange's commands: many requests, one transaction and one commit per batch.

Twelve traders send an order each at once while the instrument's engine is held, so that the orders
pile up in the queue: they must be written in one batch with one commit, every acknowledged order must
be in the command log and the order table, and the replay must agree. A command that fails after the
engine applied it rolls its whole batch back: it gets its error, the others of the batch are written
again in the next batch and acknowledged, and the failed command leaves no trace in the log.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from accounting import exchange as ex
from accounting.market_rules import CHINA_TZ, InstrumentRules
from accounting.review import Actor
from api.services import exchange
from api.services import ledger as ledger_service
from api.store.db import create_db_engine, create_schema, make_session_factory
from api.store.schema import ExchangeCommand, ExchangeOrder
from tests.exchange_support import INSTRUMENT, SETUP, fund

TRADERS = 12
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=CHINA_TZ)


@dataclass
class Market:
    engine: Engine
    sessions: sessionmaker[Session]
    traders: list[Actor]
    commits: list[int]

    def account(self, n: int) -> str:
        return f"TR-B{n:02d}"


@pytest.fixture
def market(database_url: str) -> Iterator[Market]:
    """A listed instrument in session, twelve funded traders, and a count of the database's commits."""
    engine = create_db_engine(database_url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    traders = [Actor(actor_id=f"trader-b{n:02d}", role="trader", account_ids=frozenset({f"TR-B{n:02d}"}))
               for n in range(TRADERS)]
    with sessions() as session:
        ledger_service.ensure_system_accounts(session)
        for n, actor in enumerate(traders):
            ledger_service.open_account(session, actor=SETUP, account_id=f"TR-B{n:02d}", kind="trader",
                                       owner_id=actor.actor_id, name=actor.actor_id, commit=False)
            fund(session, f"TR-B{n:02d}", fen=10_000_000, tonnes=1_000)
        session.commit()
        exchange.set_clock(session, actor=SETUP, mode="simulated", start=MONDAY_10, speed=0, step_seconds=60)
        exchange.list_instrument(session, actor=SETUP, instrument=INSTRUMENT, reference_price_fen=5000, fee_bp=10,
                                 settlement="trade", rules=InstrumentRules(instrument=INSTRUMENT))
        exchange.officer_command(session, actor=SETUP, instrument=INSTRUMENT, action="roll")
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    try:
        yield Market(engine=engine, sessions=sessions, traders=traders, commits=commits)
    finally:
        engine.dispose()


@contextmanager
def another_process(engines: dict[Any, Any]) -> Iterator[None]:
    """Commands sent inside go through ``engines``: the in-memory engines of a second API process."""
    mine = exchange._ENGINES  # noqa: SLF001
    exchange._ENGINES = engines  # noqa: SLF001
    try:
        yield
    finally:
        exchange._ENGINES = mine  # noqa: SLF001


def held_back(market: Market, calls: list[Callable[[Session], Any]]) -> tuple[list[Future[Any]], int, int]:
    """Run ``calls`` (each in a session of its own) while the engine is held, so that they queue.

    The first call becomes the writer and takes a batch of its own before it waits for the engine; the
    others are sent then and queue behind it. Answers (futures), and the batches and commits it took.
    """
    with market.sessions() as probe:
        queue = exchange.command_queue(probe, instrument=INSTRUMENT)
        loaded = exchange._loaded(probe, INSTRUMENT)  # noqa: SLF001 - holding the engine makes the queue fill
    batches_before, commits_before = queue.batches, len(market.commits)

    def in_session(call: Callable[[Session], Any]) -> Any:
        with market.sessions() as session:
            return call(session)

    def until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert condition(), what

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        with loaded.lock:
            futures = [pool.submit(in_session, calls[0])]
            until(lambda: queue.writing and queue.waiting == 0, "the first call did not become the writer")
            futures += [pool.submit(in_session, call) for call in calls[1:]]
            until(lambda: queue.waiting == len(calls) - 1, "the other calls did not queue behind the writer")
        for future in futures:
            future.exception(timeout=60)
    return futures, queue.batches - batches_before, len(market.commits) - commits_before


def order_call(market: Market, n: int, *, side: str, price_fen: int, quantity_t: int = 10
               ) -> Callable[[Session], tuple[bool, dict[str, Any]]]:
    def call(session: Session) -> tuple[bool, dict[str, Any]]:
        return exchange.place_order(session, actor=market.traders[n], instrument=INSTRUMENT,
                                    account_id=market.account(n), client_order_id=f"b-{n}", side=side,
                                    quantity_t=quantity_t, price_fen=price_fen)
    return call


def logged_client_ids(market: Market) -> list[str]:
    with market.sessions() as session:
        return [c.command["client_order_id"] for c in session.scalars(
            select(ExchangeCommand).where(ExchangeCommand.kind == "PlaceOrder").order_by(ExchangeCommand.seq))]


def test_queued_orders_are_written_in_one_batch_with_one_commit_and_every_acknowledged_one_is_logged(
        market: Market) -> None:
    calls = [order_call(market, n, side="buy" if n % 2 else "sell", price_fen=5000 + (n % 3)) for n in range(TRADERS)]
    calls[5] = order_call(market, 5, side="buy", price_fen=5000, quantity_t=5_000)  # more cash than it has
    futures, batches, commits = held_back(market, calls)
    # the writer's own batch of one, then everything that queued behind it: two transactions, two commits
    assert (batches, commits) == (2, 2)
    refused = futures[5].exception()
    assert isinstance(refused, ex.ExchangeError) and refused.code == "insufficient_funds"
    acknowledged = {f"b-{n}": f.result()[1] for n, f in enumerate(futures) if n != 5}
    assert all(created for n, f in enumerate(futures) if n != 5 for created, _ in [f.result()])
    assert sorted(logged_client_ids(market)) == sorted(acknowledged)  # the refused one never reached the log
    with market.sessions() as session:
        stored = {o.client_order_id: o for o in session.scalars(select(ExchangeOrder))}
        for client_id, answer in acknowledged.items():
            row = stored[client_id]  # as the last batch left it; the writer's own order traded after its answer
            assert (row.order_id, row.account_id) == (answer["order_id"], answer["account_id"])
            assert sum(f["quantity_t"] for f in answer["fills"]) == answer["filled_t"] <= row.filled_t
        assert any(answer["fills"] for answer in acknowledged.values())  # the crossing orders traded in the batch
        replay = exchange.verify(session, instrument=INSTRUMENT)
        assert replay["ok"], replay["problems"]
        assert ledger_service.verify(session)["ok"]


def test_a_command_failing_after_the_engine_fails_alone_and_its_batch_is_written_again_without_it(
        market: Market) -> None:
    def failing(session: Session) -> Any:
        def work(run: Any) -> None:
            run.apply(ex.Halt(at=run.at, reason="about to fail"))
            raise RuntimeError("the command failed after the engine applied it")
        return exchange._submit(session, exchange.Submission(INSTRUMENT, market.traders[0], work))  # noqa: SLF001

    calls: list[Callable[[Session], Any]] = [order_call(market, n, side="sell", price_fen=5100) for n in range(1, 4)]
    calls.insert(2, failing)
    calls.extend(order_call(market, n, side="buy", price_fen=4900) for n in range(4, 7))
    futures, batches, commits = held_back(market, calls)
    error = futures[2].exception()
    assert isinstance(error, RuntimeError)
    others = [f.result() for n, f in enumerate(futures) if n != 2]
    assert all(created and order["state"] == "new" for created, order in others)  # not halted: the halt was undone
    # the first batch, the failed one, and the failed one's others written again: three transactions, two commits
    assert (batches, commits) == (3, 2)
    assert sorted(logged_client_ids(market)) == sorted(order["client_order_id"] for _, order in others)
    with market.sessions() as session:
        assert not session.scalars(select(ExchangeCommand).where(ExchangeCommand.kind == "Halt")).all()
        replay = exchange.verify(session, instrument=INSTRUMENT)
        assert replay["ok"], replay["problems"]
        assert exchange.instrument_view(session, instrument=INSTRUMENT)["halted"] is False


def test_an_engine_never_counts_another_processs_commands_committed_just_after_its_own(market: Market) -> None:
    """Two API processes share the log: each has its own engine and must catch up with the other's commands.

    The other process cancels an offer the instant this one has committed a command of its own: this one must
    not count that cancel as applied to its engine (it would go on matching against the cancelled offer).
    """
    other_process: dict[Any, Any] = {}

    def place(session: Session, n: int, side: str, price_fen: int) -> dict[str, Any]:
        return exchange.place_order(session, actor=market.traders[n], instrument=INSTRUMENT,
                                    account_id=market.account(n), client_order_id=f"p-{n}", side=side,
                                    quantity_t=5, price_fen=price_fen)[1]

    def cancel_in_other_process(order_id: int) -> None:
        with another_process(other_process), market.sessions() as session:
            exchange.cancel_order(session, actor=market.traders[1], instrument=INSTRUMENT, order_id=order_id)

    with market.sessions() as session:
        offer = place(session, 1, "sell", 5000)
    def cancel_the_offer(_session: Session) -> None:
        cancel_in_other_process(offer["order_id"])

    event.listen(Session, "after_commit", cancel_the_offer, once=True)  # the next commit is the bid's batch
    try:
        with market.sessions() as session:
            place(session, 0, "buy", 4900)
    finally:
        if event.contains(Session, "after_commit", cancel_the_offer):
            event.remove(Session, "after_commit", cancel_the_offer)
    with market.sessions() as session:
        bid = place(session, 2, "buy", 5000)
        assert bid["filled_t"] == 0 and bid["state"] == "new"  # the offer was cancelled before it came
        replay = exchange.verify(session, instrument=INSTRUMENT)
        assert replay["ok"], replay["problems"]
        assert ledger_service.verify(session)["ok"]


def test_every_answer_is_the_order_as_stored_whether_described_from_memory_or_read_back(
        market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch describes the orders this process wrote from memory (``_Loaded.views``): each answer must equal
    the order read back from the database right after, through fills, cancels, replaces, late cancels of
    orders that ended (remembered, or forgotten beyond ``ENDED_KEPT``) and commands another process sends
    (which make this process forget what they touch)."""
    monkeypatch.setattr(exchange, "ENDED_KEPT", 5)  # some ended orders are remembered, others read back
    rng = random.Random(5)
    other_process: dict[Any, Any] = {}
    open_orders: dict[int, list[int]] = {n: [] for n in range(4)}
    ended: dict[int, list[int]] = {n: [] for n in range(4)}
    late_cancels = 0

    def shown_by_refusal(err: ex.ExchangeError) -> dict[str, Any]:
        assert isinstance(err, exchange.CommandRefusedError) and err.code == "order_not_open", err
        assert err.order is not None
        return err.order

    for step in range(150):
        n = rng.randrange(4)
        # now and then the command comes through another process's engine
        through = another_process(other_process) if step % 7 == 3 else nullcontext()
        with through, market.sessions() as session:
            kwargs: dict[str, Any] = {"actor": market.traders[n], "instrument": INSTRUMENT}
            roll = rng.random()
            if open_orders[n] and roll < 0.3:
                order_id = open_orders[n].pop(rng.randrange(len(open_orders[n])))
                try:
                    answer = exchange.cancel_order(session, order_id=order_id, **kwargs)
                except ex.ExchangeError as err:  # filled meanwhile: the refusal shows the order
                    answer = shown_by_refusal(err)
            elif ended[n] and roll < 0.35:
                late_cancels += 1
                with pytest.raises(ex.ExchangeError) as refused:
                    exchange.cancel_order(session, order_id=rng.choice(ended[n]), **kwargs)
                answer = shown_by_refusal(refused.value)
            elif open_orders[n] and roll < 0.4:
                order_id = rng.choice(open_orders[n])
                try:
                    answer = exchange.replace_order(session, order_id=order_id, price_fen=5000 + rng.randint(-5, 5),
                                                    quantity_t=rng.randint(1, 20), **kwargs)
                except ex.ExchangeError:
                    continue
            else:
                answer = exchange.place_order(session, account_id=market.account(n), client_order_id=f"m-{step}",
                                              side=rng.choice(["buy", "sell"]), quantity_t=rng.randint(1, 30),
                                              price_fen=5000 + rng.randint(-5, 5), **kwargs)[1]
                open_orders[n].append(answer["order_id"])
        with market.sessions() as session:
            stored = exchange.get_order(session, actor=market.traders[n], instrument=INSTRUMENT,
                                        order_id=answer["order_id"])
        assert answer == stored, step
        if answer["state"] not in ("new", "partially_filled"):
            open_orders[n] = [i for i in open_orders[n] if i != answer["order_id"]]
            ended[n] = [*(i for i in ended[n] if i != answer["order_id"]), answer["order_id"]]
    assert late_cancels > 5
    with market.sessions() as session:
        assert exchange.verify(session, instrument=INSTRUMENT)["ok"]


def test_units_bought_today_stay_unsellable_whichever_process_bought_them(market: Market) -> None:
    """T+1 with the day's purchases remembered between batches (``_Loaded.bought``): a purchase through another
    process must count as soon as this process meets its command, not only what this process saw itself."""
    other_process: dict[Any, Any] = {}

    def order(n: int, side: str, quantity_t: int, tag: str) -> dict[str, Any]:
        with market.sessions() as session:
            return exchange.place_order(session, actor=market.traders[n], instrument=INSTRUMENT,
                                        account_id=market.account(n), client_order_id=tag, side=side,
                                        quantity_t=quantity_t, price_fen=5000)[1]

    def refusal(n: int, quantity_t: int, tag: str) -> str | None:
        try:
            order(n, "sell", quantity_t, tag)
        except ex.ExchangeError as err:
            return err.code
        return None

    order(1, "sell", 30, "s-1")
    assert order(0, "buy", 30, "b-1")["filled_t"] == 30  # 1,030 t held, 30 of them bought today
    assert refusal(0, 1_001, "x-1") == "insufficient_holdings"
    with another_process(other_process):  # 20 t more bought through another process
        order(2, "sell", 20, "s-2")
        assert order(0, "buy", 20, "b-2")["filled_t"] == 20
    assert refusal(0, 1_001, "x-2") == "insufficient_holdings"  # 1,050 held, 50 bought today
    assert refusal(0, 1_000, "x-3") is None

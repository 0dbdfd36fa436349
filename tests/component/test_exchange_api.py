"""The mock exchange through the API (issue 6): prefunded orders, DvP settlement with fees, T+1, rejections
with codes and nothing written, client order ids, listed and block agreements, officer controls, market data,
statements, the day's close as the next band, and replaying the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from accounting.market_rules import CHINA_TZ
from api.store.schema import ExchangeCommand, ExchangeOrder, JournalEntryRow, ReferencePrice
from tests.auth_support import OFFICER, VERIFIER
from tests.exchange_support import (
    CASH_FEN,
    CHP_ACCOUNT,
    CHP_USER,
    INSTRUMENT,
    MONDAY_10,
    QIAN,
    UNITS_T,
    ZHOU,
    Market,
    market,
)

URL = f"/v1/exchange/instruments/{INSTRUMENT}"


@pytest.fixture
def mkt(tmp_path: Path, database_url: str) -> Any:
    with market(tmp_path, database_url) as created:
        yield created


def footprint(mkt: Market) -> tuple[int, int, int]:
    with mkt.sessions() as session:
        return (int(session.scalar(select(func.count()).select_from(ExchangeCommand)) or 0),
                int(session.scalar(select(func.count()).select_from(ExchangeOrder)) or 0),
                int(session.scalar(select(func.count()).select_from(JournalEntryRow)) or 0))


def test_a_trade_settles_delivery_versus_payment_with_fees_and_holds_come_back(mkt: Market) -> None:
    sell = mkt.order(ZHOU, "TR-ZHOU", "sell", 300, 5010)
    assert sell.status_code == 201, sell.text
    assert (sell.json()["state"], sell.json()["held_t"]) == ("new", 300)
    assert mkt.balance("TR-ZHOU", INSTRUMENT) == UNITS_T - 300  # held in clearing
    buy = mkt.order(QIAN, "TR-QIAN", "buy", 500, 5050)
    assert buy.status_code == 201, buy.text
    body = buy.json()
    assert (body["state"], body["filled_t"], body["remaining_t"]) == ("partially_filled", 300, 200)
    [fill] = body["fills"]
    value = 5010 * 300
    fee = value * 10 // 10_000
    assert (fill["price_fen"], fill["quantity_t"], fill["fee_fen"], fill["liquidity"]) == (5010, 300, fee, "taker")
    # the buyer holds the rest: 200 t at its limit plus the fee on it
    assert body["held_fen"] == 5050 * 200 + 5050 * 200 * 10 // 10_000
    assert mkt.balance("TR-QIAN", INSTRUMENT) == UNITS_T + 300
    assert mkt.balance("TR-QIAN", "CNY") == CASH_FEN - value - fee - body["held_fen"]
    assert mkt.balance("TR-ZHOU", "CNY") == CASH_FEN + value - fee
    assert mkt.balance("SYS-FEES", "CNY") == 2 * fee
    cancelled = mkt.client.delete(f"{URL}/orders/{body['order_id']}", headers=QIAN)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["state"], cancelled.json()["held_fen"]) == ("cancelled", 0)
    assert mkt.balance("TR-QIAN", "CNY") == CASH_FEN - value - fee
    again = mkt.client.delete(f"{URL}/orders/{body['order_id']}", headers=QIAN)
    assert (again.status_code, again.json()["code"]) == (409, "order_not_open")
    # a command on an order that has ended shows the order as it is now, fills included
    assert again.json()["order"] == mkt.client.get(f"{URL}/orders/{body['order_id']}", headers=QIAN).json()
    filled_sell = mkt.client.delete(f"{URL}/orders/{sell.json()['order_id']}", headers=ZHOU)
    assert (filled_sell.status_code, filled_sell.json()["code"]) == (409, "order_not_open")
    shown = filled_sell.json()["order"]
    assert (shown["state"], shown["filled_t"], shown["remaining_t"]) == ("filled", 300, 0)
    assert [(f["price_fen"], f["quantity_t"], f["liquidity"]) for f in shown["fills"]] == [(5010, 300, "maker")]
    replaced = mkt.client.post(f"{URL}/orders/{sell.json()['order_id']}/replace", headers=ZHOU,
                               json={"price_fen": 5020, "quantity_t": 10})
    assert (replaced.status_code, replaced.json()["code"], replaced.json()["order"]) == (409, "order_not_open", shown)
    missing = mkt.client.delete(f"{URL}/orders/999999", headers=QIAN).json()
    assert (missing["code"], "order" in missing) == ("unknown_order", False)  # nothing to show
    mkt.verify()


def test_refusals_carry_their_code_and_a_missing_balance_writes_nothing(mkt: Market) -> None:
    before = footprint(mkt)
    poor = mkt.order(QIAN, "TR-QIAN", "buy", 2_000, 5000)  # 10,000,000 fen + fee > the 10,000,000 it has
    assert (poor.status_code, poor.json()["code"]) == (409, "insufficient_funds")
    short = mkt.order(QIAN, "TR-QIAN", "sell", UNITS_T + 1, 5000)
    assert (short.status_code, short.json()["code"]) == (409, "insufficient_holdings")
    assert footprint(mkt) == before
    for price, quantity, code in ((5600, 1, "outside_band"), (4400, 1, "outside_band"),
                                  (5000, 100_000, "order_too_large")):
        refused = mkt.order(QIAN, "TR-QIAN", "buy", quantity, price)
        assert (refused.status_code, refused.json()["code"]) == (422, code), refused.text
    float_price = mkt.client.post(f"{URL}/orders", headers=QIAN, json={
        "account_id": "TR-QIAN", "client_order_id": "f1", "side": "buy", "quantity_t": 1, "price_fen": 50.5})
    assert float_price.status_code == 422
    others = mkt.order(QIAN, "TR-ZHOU", "buy", 1, 5000)
    assert (others.status_code, others.json()["code"]) == (404, "unknown_account")
    commands, orders, entries = footprint(mkt)
    assert (orders, entries) == before[1:]  # rule refusals are logged, nothing else is written
    mkt.verify()


def test_the_same_client_order_id_answers_the_existing_order(mkt: Market) -> None:
    first = mkt.order(QIAN, "TR-QIAN", "buy", 10, 4990, client_order_id="q-1")
    assert first.status_code == 201
    again = mkt.order(QIAN, "TR-QIAN", "buy", 10, 4990, client_order_id="q-1")
    assert again.status_code == 200
    assert again.json()["order_id"] == first.json()["order_id"]
    assert mkt.balance("TR-QIAN", "CNY") == CASH_FEN - first.json()["held_fen"]


def test_units_bought_today_are_sold_from_the_next_trading_day(mkt: Market) -> None:
    assert mkt.order(ZHOU, "TR-ZHOU", "sell", UNITS_T, 5000).status_code == 201
    assert mkt.order(QIAN, "TR-QIAN", "buy", 100, 5000).status_code == 201
    # TR-QIAN holds 20,100 t; the 100 bought today are not sellable today
    today = mkt.order(QIAN, "TR-QIAN", "sell", UNITS_T + 1, 5100)
    assert (today.status_code, today.json()["code"]) == (409, "insufficient_holdings")
    mkt.clock(MONDAY_10 + timedelta(days=1))
    tomorrow = mkt.order(QIAN, "TR-QIAN", "sell", UNITS_T + 100, 5100)
    assert tomorrow.status_code == 201, tomorrow.text
    mkt.verify()


def test_the_close_is_the_vwap_of_listed_trades_and_sets_the_next_band(mkt: Market) -> None:
    assert mkt.order(ZHOU, "TR-ZHOU", "sell", 100, 5000).status_code == 201
    assert mkt.order(ZHOU, "TR-ZHOU", "sell", 300, 5200).status_code == 201
    assert mkt.order(QIAN, "TR-QIAN", "buy", 400, 5200).status_code == 201
    resting = mkt.order(QIAN, "TR-QIAN", "buy", 10, 4900)
    assert resting.status_code == 201
    mkt.clock(MONDAY_10 + timedelta(days=1))  # Tuesday 10:00: Monday closes, Tuesday opens (at the next command)
    assert mkt.client.get(URL, headers=VERIFIER).json()["trading_day"] == "2026-03-02"
    view = mkt.call("POST", f"{URL}/roll", OFFICER).json()
    assert (view["trading_day"], view["day_open"]) == ("2026-03-03", True)
    close = (100 * 5000 + 300 * 5200 + 200) // 400  # 5150, half up
    assert view["previous_close_fen"] == close == 5150
    days = mkt.client.get(f"{URL}/days", headers=VERIFIER).json()["items"]
    assert days[0] == {**days[0], "trading_day": "2026-03-02", "open_fen": 5000, "high_fen": 5200, "low_fen": 5000,
                       "close_fen": 5150, "listed_volume_t": 400}
    order = mkt.client.get(f"{URL}/orders/{resting.json()['order_id']}", headers=QIAN).json()
    assert (order["state"], order["reason"], order["held_fen"]) == ("expired", "end_of_day", 0)
    placed = mkt.order(QIAN, "TR-QIAN", "buy", 1, 5600)
    assert placed.status_code == 201, placed.text  # 5600 is inside 5150 +- 10 %
    view = mkt.client.get(URL, headers=VERIFIER).json()
    assert view["listed_band"] == {"low_fen": 4635, "high_fen": 5665}
    with mkt.sessions() as session:
        price = session.get(ReferencePrice, (INSTRUMENT, "2026-03-02"))
        assert price is not None and price.price_fen == 5150
    mkt.verify()


def wait_for(mkt: Market, condition: Callable[[dict[str, Any]], bool], *, seconds: float = 10) -> dict[str, Any]:
    """The instrument's view once ``condition`` holds for it (read again and again, nothing else sent)."""
    deadline = time.monotonic() + seconds
    while True:
        view: dict[str, Any] = mkt.client.get(URL, headers=VERIFIER).json()
        if condition(view) or time.monotonic() > deadline:
            return view
        time.sleep(0.05)


def test_the_clock_rolls_a_day_that_no_command_rolls(tmp_path: Path, database_url: str) -> None:
    with market(tmp_path, database_url, exchange_roll_seconds=0.05) as mkt:
        assert mkt.order(ZHOU, "TR-ZHOU", "sell", 100, 5000).status_code == 201
        assert mkt.order(QIAN, "TR-QIAN", "buy", 100, 5100).status_code == 201
        resting = mkt.order(QIAN, "TR-QIAN", "buy", 10, 4900).json()
        assert resting["held_fen"] > 0
        # Monday, half a minute before the close, running at 60 times real time; nobody sends anything
        mkt.clock(datetime(2026, 3, 2, 14, 59, 30, tzinfo=CHINA_TZ), speed=60)
        closed = wait_for(mkt, lambda view: not view["day_open"])
        assert (closed["trading_day"], closed["day_open"], closed["previous_close_fen"]) == ("2026-03-02", False, 5000)
        day = mkt.client.get(f"{URL}/days", headers=VERIFIER).json()["items"][0]
        assert (day["trading_day"], day["close_fen"], day["listed_volume_t"]) == ("2026-03-02", 5000, 100)
        order = mkt.client.get(f"{URL}/orders/{resting['order_id']}", headers=QIAN).json()
        assert (order["state"], order["reason"], order["held_fen"]) == ("expired", "end_of_day", 0)
        mkt.clock(datetime(2026, 3, 3, 9, 0, tzinfo=CHINA_TZ))  # Tuesday before the session: nothing to roll
        time.sleep(0.3)
        assert mkt.client.get(URL, headers=VERIFIER).json()["trading_day"] == "2026-03-02"
        mkt.clock(datetime(2026, 3, 3, 9, 29, 45, tzinfo=CHINA_TZ), speed=60)
        opened = wait_for(mkt, lambda view: view["day_open"])
        assert (opened["trading_day"], opened["listed_band"]) == ("2026-03-03", {"low_fen": 4500, "high_fen": 5500})
        with mkt.sessions() as session:
            rolls = session.execute(select(ExchangeCommand.kind, ExchangeCommand.actor_id)
                                    .where(ExchangeCommand.kind.in_(("CloseDay", "OpenDay")))
                                    .order_by(ExchangeCommand.seq)).all()
        assert [tuple(r) for r in rolls][-2:] == [("CloseDay", "exchange-clock"), ("OpenDay", "exchange-clock")]
        mkt.verify()


def test_a_change_of_the_clock_rolls_the_day_at_once(tmp_path: Path, database_url: str) -> None:
    with market(tmp_path, database_url, exchange_roll_seconds=3600) as mkt:  # no tick during the test
        resting = mkt.order(QIAN, "TR-QIAN", "buy", 10, 4900).json()
        mkt.clock(datetime(2026, 3, 2, 15, 30, tzinfo=CHINA_TZ))
        view = mkt.client.get(URL, headers=VERIFIER).json()
        assert (view["trading_day"], view["day_open"]) == ("2026-03-02", False)
        order = mkt.client.get(f"{URL}/orders/{resting['order_id']}", headers=QIAN).json()
        assert (order["state"], order["reason"]) == ("expired", "end_of_day")
        stepped = mkt.call("POST", "/v1/exchange/clock/step", OFFICER, json={"steps": 18 * 60 + 1})  # 09:31
        assert stepped.status_code == 200, stepped.text
        view = mkt.client.get(URL, headers=VERIFIER).json()
        assert (view["trading_day"], view["day_open"]) == ("2026-03-03", True)
        mkt.verify()


def test_outside_the_sessions_the_market_is_closed_but_cancels_are_taken(mkt: Market) -> None:
    resting = mkt.order(QIAN, "TR-QIAN", "buy", 10, 4990)
    mkt.clock(datetime(2026, 3, 2, 12, 0, tzinfo=CHINA_TZ))
    closed = mkt.order(QIAN, "TR-QIAN", "buy", 10, 4990)
    assert (closed.status_code, closed.json()["code"]) == (409, "market_closed")
    assert mkt.client.delete(f"{URL}/orders/{resting.json()['order_id']}", headers=QIAN).status_code == 200
    mkt.verify()


def test_officers_halt_resume_change_the_band_and_restrict(mkt: Market) -> None:
    resting = mkt.order(QIAN, "TR-QIAN", "buy", 10, 4600).json()
    assert mkt.call("POST", f"{URL}/halt", OFFICER, json={"reason": "rehearsal"}).json()["halted"] is True
    halted = mkt.order(QIAN, "TR-QIAN", "buy", 10, 5000)
    assert (halted.status_code, halted.json()["code"]) == (409, "halted")
    assert mkt.call("POST", f"{URL}/halt", OFFICER, json={}).json()["code"] == "already_halted"
    assert mkt.call("POST", f"{URL}/resume", OFFICER).json()["halted"] is False
    band = mkt.call("POST", f"{URL}/band", OFFICER, json={"kind": "listed", "band_bp": 500})
    assert band.json()["listed_band"] == {"low_fen": 4750, "high_fen": 5250}
    order = mkt.client.get(f"{URL}/orders/{resting['order_id']}", headers=QIAN).json()
    assert (order["state"], order["reason"]) == ("expired", "outside_band")
    assert mkt.call("POST", f"{URL}/restrictions", OFFICER, json={"account_id": "TR-QIAN"}).status_code == 200
    restricted = mkt.order(QIAN, "TR-QIAN", "buy", 10, 5000)
    assert (restricted.status_code, restricted.json()["code"]) == (403, "account_restricted")
    assert mkt.call("DELETE", f"{URL}/restrictions/TR-QIAN", OFFICER).status_code == 200
    assert mkt.order(QIAN, "TR-QIAN", "buy", 10, 5000).status_code == 201
    traders_cannot = mkt.call("POST", f"{URL}/halt", QIAN, json={})
    assert traders_cannot.status_code == 403
    mkt.verify()


def test_listed_agreement_quotes_are_taken_at_their_price(mkt: Market) -> None:
    quote = mkt.client.post(f"{URL}/quotes", headers=ZHOU, json={
        "account_id": "TR-ZHOU", "client_order_id": "z-q1", "side": "sell", "price_fen": 5100, "quantity_t": 1000})
    assert quote.status_code == 201, quote.text
    taken = mkt.client.post(f"{URL}/quotes/{quote.json()['order_id']}/take", headers=CHP_USER, json={
        "account_id": CHP_ACCOUNT, "client_order_id": "chp-t1", "quantity_t": 400})
    assert taken.status_code == 201, taken.text
    assert (taken.json()["kind"], taken.json()["filled_t"]) == ("take", 400)
    assert mkt.balance(CHP_ACCOUNT, INSTRUMENT) == UNITS_T + 400
    depth = mkt.client.get(f"{URL}/depth", headers=VERIFIER).json()
    assert depth["quotes"]["asks"] == [{"price_fen": 5100, "quantity_t": 600, "orders": 1}]
    withdrawn = mkt.client.delete(f"{URL}/quotes/{quote.json()['order_id']}", headers=ZHOU)
    assert withdrawn.status_code == 200, withdrawn.text
    assert (withdrawn.json()["state"], withdrawn.json()["cancelled_t"]) == ("cancelled", 600)
    again = mkt.client.delete(f"{URL}/quotes/{quote.json()['order_id']}", headers=ZHOU)
    assert (again.status_code, again.json()["code"]) == (409, "quote_not_open")
    assert again.json()["order"] == withdrawn.json()  # the quote as it ended
    mkt.verify()


def test_a_block_agreement_settles_when_the_counterparty_confirms(mkt: Market) -> None:
    mkt.clock(datetime(2026, 3, 2, 13, 30, tzinfo=CHINA_TZ))
    with mkt.sessions() as session:
        from tests.exchange_support import fund

        fund(session, "TR-QIAN", fen=700_000_000, tonnes=0)
        fund(session, "TR-ZHOU", fen=0, tonnes=100_000)
        session.commit()
    proposal = mkt.client.post(f"{URL}/blocks", headers=ZHOU, json={
        "account_id": "TR-ZHOU", "client_order_id": "blk-1", "counterparty_id": "TR-QIAN", "side": "sell",
        "price_fen": 6000, "quantity_t": 100_000})
    assert proposal.status_code == 201, proposal.text
    proposal_id = proposal.json()["order_id"]
    assert mkt.client.post(f"{URL}/blocks/{proposal_id}/confirm", headers=ZHOU).status_code == 403
    confirmed = mkt.client.post(f"{URL}/blocks/{proposal_id}/confirm", headers=QIAN)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["state"] == "executed"
    assert mkt.balance("TR-QIAN", INSTRUMENT) == UNITS_T + 100_000
    days = mkt.client.get(f"{URL}/trades", headers=VERIFIER).json()["items"]
    assert days[0]["mode"] == "block"
    mkt.verify()


def test_market_data_statement_and_stream(mkt: Market) -> None:
    for price in (5000, 5010, 5020):
        assert mkt.order(ZHOU, "TR-ZHOU", "sell", 100, price).status_code == 201
    bought = mkt.order(QIAN, "TR-QIAN", "buy", 250, order_type="market", price_fen=None)
    assert bought.status_code == 201, bought.text
    assert (bought.json()["state"], bought.json()["filled_t"]) == ("filled", 250)
    depth = mkt.client.get(f"{URL}/depth", headers=QIAN).json()
    assert depth["asks"] == [{"price_fen": 5020, "quantity_t": 50, "orders": 1}]
    trades = mkt.client.get(f"{URL}/trades", params={"limit": 2}, headers=QIAN).json()
    assert [t["price_fen"] for t in trades["items"]] == [5020, 5010]
    older = mkt.client.get(f"{URL}/trades", params={"before_id": trades["next_before_id"]}, headers=QIAN).json()
    assert [t["price_fen"] for t in older["items"]] == [5000]
    assert "buy_account_id" not in trades["items"][0]
    candles = mkt.client.get(f"{URL}/candles", params={"trading_day": "2026-03-02", "granularity": 60},
                             headers=QIAN).json()["items"]
    assert candles[0]["volume_t"] == 250 and candles[0]["open_fen"] == 5000 and candles[0]["close_fen"] == 5020
    statement = mkt.client.get("/v1/exchange/accounts/TR-QIAN/statement", headers=QIAN).json()
    assert statement["bought_t"] == 250 and len(statement["fills"]) == 3
    assert statement["fees_fen"] == sum(f["fee_fen"] for f in statement["fills"]) > 0
    assert mkt.client.get("/v1/exchange/accounts/TR-ZHOU/statement", headers=QIAN).status_code == 404
    with mkt.client.stream("GET", f"{URL}/stream", params={"max_events": 50, "max_seconds": 1}, headers=QIAN) as stream:
        text = "".join(stream.iter_text())
    assert text.count("event: TradeExecuted") >= 1 and "TR-QIAN" not in text
    mkt.verify()


def test_frozen_units_cannot_be_sold(mkt: Market) -> None:
    frozen = mkt.call("POST", "/v1/ledger/freezes", OFFICER, json={
        "account_id": "TR-ZHOU", "instrument": INSTRUMENT, "quantity": UNITS_T - 10, "reason": "inquiry"})
    assert frozen.status_code == 201, frozen.text
    refused = mkt.order(ZHOU, "TR-ZHOU", "sell", 11, 5000)
    assert (refused.status_code, refused.json()["code"]) == (409, "insufficient_holdings")
    assert mkt.order(ZHOU, "TR-ZHOU", "sell", 10, 5000).status_code == 201
    mkt.verify()


def test_ioc_fok_and_cancel_replace(mkt: Market) -> None:
    assert mkt.order(ZHOU, "TR-ZHOU", "sell", 100, 5000).status_code == 201
    fok = mkt.order(QIAN, "TR-QIAN", "buy", 150, 5000, time_in_force="fok")
    assert (fok.json()["state"], fok.json()["reason"], fok.json()["filled_t"]) == ("expired", "fok_unfilled", 0)
    ioc = mkt.order(QIAN, "TR-QIAN", "buy", 150, 5000, time_in_force="ioc")
    assert (ioc.json()["state"], ioc.json()["filled_t"], ioc.json()["held_fen"]) == ("expired", 100, 0)
    resting = mkt.order(QIAN, "TR-QIAN", "buy", 100, 4900).json()
    cash = mkt.balance("TR-QIAN", "CNY")
    moved = mkt.client.post(f"{URL}/orders/{resting['order_id']}/replace", headers=QIAN,
                            json={"price_fen": 4950, "quantity_t": 200})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["price_fen"], moved.json()["remaining_t"]) == (4950, 200)
    assert moved.json()["held_fen"] == 4950 * 200 + 4950 * 200 * 10 // 10_000
    assert mkt.balance("TR-QIAN", "CNY") == cash - (moved.json()["held_fen"] - resting["held_fen"])
    mkt.verify()


def test_open_order_cap_and_per_account_rate_limit(tmp_path: Path, database_url: str) -> None:
    with market(tmp_path, database_url, exchange_orders_per_minute=60, exchange_order_burst=3) as limited:
        for _ in range(3):
            assert limited.order(QIAN, "TR-QIAN", "buy", 1, 4900).status_code == 201
        flooded = limited.order(QIAN, "TR-QIAN", "buy", 1, 4900)
        assert (flooded.status_code, flooded.json()["code"]) == (429, "rate_limited")
        assert int(flooded.headers["Retry-After"]) >= 1
        assert limited.order(ZHOU, "TR-ZHOU", "sell", 1, 5100).status_code == 201  # another account's bucket
        capped = limited.call("POST", "/v1/exchange/instruments", OFFICER, json={
            "instrument": "CCER", "reference_price_fen": 3000, "max_open_orders": 1})
        assert capped.status_code == 201, capped.text
        with limited.sessions() as session:
            from tests.exchange_support import fund

            fund(session, "TR-ZHOU", fen=0, tonnes=0)
        first = limited.client.post("/v1/exchange/instruments/CCER/orders", headers=ZHOU, json={
            "account_id": "TR-ZHOU", "client_order_id": "c1", "side": "buy", "quantity_t": 1, "price_fen": 3000})
        assert first.status_code == 201, first.text
        second = limited.client.post("/v1/exchange/instruments/CCER/orders", headers=ZHOU, json={
            "account_id": "TR-ZHOU", "client_order_id": "c2", "side": "buy", "quantity_t": 1, "price_fen": 3000})
        assert (second.status_code, second.json()["code"]) == (409, "open_order_cap")


def test_end_of_day_settlement_delivers_at_the_close(tmp_path: Path, database_url: str) -> None:
    with market(tmp_path, database_url) as eod:
        listed = eod.call("POST", "/v1/exchange/instruments", OFFICER, json={
            "instrument": "CEA-2024", "reference_price_fen": 4000, "settlement": "end_of_day", "fee_bp": 10})
        assert listed.status_code == 201, listed.text
        with eod.sessions() as session:
            from accounting.ledger import transfer_entry
            from api.services.ledger import new_entry_id, post
            from tests.exchange_support import SETUP

            post(session, entry=transfer_entry(entry_id=new_entry_id(), kind="issue", from_account="SYS-ISSUANCE",
                                               to_account="TR-ZHOU", instrument="CEA-2024", quantity=500), actor=SETUP)
            session.commit()
        url = "/v1/exchange/instruments/CEA-2024/orders"
        sell = eod.client.post(url, headers=ZHOU, json={"account_id": "TR-ZHOU", "client_order_id": "s",
                                                         "side": "sell", "quantity_t": 500, "price_fen": 4000})
        buy = eod.client.post(url, headers=QIAN, json={"account_id": "TR-QIAN", "client_order_id": "b",
                                                        "side": "buy", "quantity_t": 500, "price_fen": 4000})
        assert sell.status_code == buy.status_code == 201
        assert buy.json()["fills"][0]["settled"] is False
        assert eod.balance("TR-QIAN", "CEA-2024") == 0  # bought, not yet delivered
        assert eod.balance("EX-CEA-2024", "CEA-2024") == 500
        eod.verify()
        eod.clock(datetime(2026, 3, 2, 15, 1, tzinfo=CHINA_TZ))
        assert eod.call("POST", "/v1/exchange/instruments/CEA-2024/roll", OFFICER).status_code == 200
        fee = 4000 * 500 * 10 // 10_000
        assert eod.balance("TR-QIAN", "CEA-2024") == 500
        assert eod.balance("TR-ZHOU", "CNY") == CASH_FEN + 4000 * 500 - fee
        assert eod.balance("EX-CEA-2024", "CNY") == eod.balance("EX-CEA-2024", "CEA-2024") == 0
        with eod.sessions() as session:
            from api.services import exchange

            assert exchange.verify(session, instrument="CEA-2024")["ok"]


def test_replay_finds_a_tampered_projection(mkt: Market) -> None:
    assert mkt.order(ZHOU, "TR-ZHOU", "sell", 100, 5000).status_code == 201
    assert mkt.order(QIAN, "TR-QIAN", "buy", 40, 5000).status_code == 201
    mkt.verify()
    with mkt.sessions() as session:
        order = session.scalars(select(ExchangeOrder).where(ExchangeOrder.account_id == "TR-ZHOU")).one()
        order.held += 1
        session.commit()
    report = mkt.client.get(f"{URL}/verify", headers=OFFICER).json()
    assert report["ok"] is False
    assert any("holds" in problem for problem in report["problems"])
    with mkt.sessions() as session:
        with pytest.raises(Exception, match="append-only"):
            session.execute(ExchangeCommand.__table__.delete())
            session.commit()

"""The market pages (issue 7): instruments, daily bars and intraday candles, five levels of depth, the latest trades,
auction results and the officers' exchange controls, each number equal to what the exchange API answers.

One market for the module (``tests.exchange_support.market``: CEA-2025 listed at 50.00 CNY, a rehearsal clock in
a Monday session, two funded traders) with a few trades and resting orders, and one CEA-2024 auction bid on,
closed and settled by two officers, all through the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from api.services import auctions
from api.web.render import format_number
from tests.auth_support import ENGINEER, OFFICER, OFFICER_2, TRADER, VERIFIER
from tests.component.web_support import Page, squash
from tests.exchange_support import CHP_USER, INSTRUMENT, QIAN, ZHOU, Market, market

URL = f"/v1/exchange/instruments/{INSTRUMENT}"
AUCTION = "A-WEB-1"
T0 = datetime(2026, 3, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def mkt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    data_dir = tmp_path_factory.mktemp("web-market")
    clock = [T0]
    with pytest.MonkeyPatch.context() as patch, market(data_dir, f"sqlite:///{data_dir / 'carbon.sqlite'}",
                                                        rate_limit_per_minute=0) as created:
        patch.setattr(auctions, "now", lambda: clock[0])
        for headers, account, side, quantity, price in ((ZHOU, "TR-ZHOU", "sell", 300, 5010),
                                                       (QIAN, "TR-QIAN", "buy", 500, 5050),  # 300 t trade
                                                       (ZHOU, "TR-ZHOU", "sell", 120, 5040),  # 120 t trade
                                                       (ZHOU, "TR-ZHOU", "sell", 100, 5100),
                                                       (ZHOU, "TR-ZHOU", "sell", 40, 5120),
                                                       (QIAN, "TR-QIAN", "buy", 60, 4990)):
            placed = created.order(headers, account, side, quantity, price)
            assert placed.status_code == 201, placed.text
        settle_an_auction(created, clock)
        yield created


def settle_an_auction(mkt: Market, clock: list[datetime]) -> None:
    """100 t offered at a 50.00 reserve: 80 t bid at 60.00 and 50 t at 55.00 clear at 55.00."""
    created = mkt.call("POST", "/v1/auctions", OFFICER, json={
        "auction_id": AUCTION, "instrument": "CEA-2024", "offered_t": 100, "reserve_price_fen": 5000,
        "min_bid_t": 10, "bidder_cap_t": 80, "lot_t": 10, "opens_at": T0.isoformat(),
        "closes_at": (T0 + timedelta(hours=2)).isoformat()})
    assert created.status_code == 201, created.text
    for headers, account, price, quantity in ((QIAN, "TR-QIAN", 6000, 80), (ZHOU, "TR-ZHOU", 5500, 50)):
        bid = mkt.call("POST", f"/v1/auctions/{AUCTION}/bids", headers,
                       json={"account_id": account, "price_fen": price, "quantity_t": quantity})
        assert bid.status_code == 201, bid.text
    clock[0] = T0 + timedelta(hours=3)
    closed = mkt.call("POST", f"/v1/auctions/{AUCTION}/close", OFFICER)
    assert closed.status_code == 202, closed.text
    approval = closed.json()["approval"]
    decided = mkt.call("POST", f"/v1/approvals/{approval['approval_id']}/decision", OFFICER_2,
                       json={"decision": "approve", "payload_digest": approval["payload_digest"]})
    assert decided.status_code == 200, decided.text


def page(mkt: Market, url: str, headers: dict[str, str], *, status: int = 200) -> Page:
    answer = mkt.client.get(url, headers=headers, follow_redirects=False)
    assert answer.status_code == status, (url, answer.status_code, answer.text[-800:])
    return Page.parse(answer.text)


def api(mkt: Market, url: str, headers: dict[str, str] = TRADER) -> Any:
    answer = mkt.client.get(url, headers=headers)
    assert answer.status_code == 200, (url, answer.text)
    return answer.json()


def yuan(fen: int) -> str:
    return str(Decimal(fen) / 100)


def fields(element: Any) -> dict[str, str]:
    return {c["data-field"]: c["data-value"] for c in element.children if "data-field" in c.attrs}


def test_the_market_lists_each_instrument_with_its_close_and_bands_in_chinese(mkt: Market) -> None:
    listed = page(mkt, "/ui/market", TRADER)
    assert 'lang="zh-CN"' in listed.html and "交易市场" in listed.text
    [row] = listed.all(testid="instrument-row")
    view = api(mkt, URL)
    assert row["data-instrument"] == INSTRUMENT
    assert format_number(Decimal(view["previous_close_fen"]) / 100, 2) == "50.00" in squash(row.text)
    assert listed.one(testid="instrument-link")["href"] == f"/ui/market/{INSTRUMENT}"


def test_depth_trades_and_bars_on_the_instrument_page_are_the_apis(mkt: Market) -> None:
    shown = page(mkt, f"/ui/market/{INSTRUMENT}", CHP_USER)
    depth = api(mkt, f"{URL}/depth")
    rows = [fields(r) for r in shown.all(testid="depth-row")]
    assert len(rows) == max(len(depth["bids"]), len(depth["asks"])) == 2
    for level, row in enumerate(rows):
        bid = depth["bids"][level] if level < len(depth["bids"]) else None
        ask = depth["asks"][level] if level < len(depth["asks"]) else None
        assert (row["bid_price"], row["bid_quantity"]) == ((yuan(bid["price_fen"]), str(bid["quantity_t"])) if bid
                                                           else ("", ""))
        assert (row["ask_price"], row["ask_quantity"]) == ((yuan(ask["price_fen"]), str(ask["quantity_t"])) if ask
                                                           else ("", ""))
    # 80 t of the 500 t bid at 50.50 are left after the two trades; the lowest ask is 51.00
    assert (rows[0]["bid_price"], rows[0]["bid_quantity"], rows[0]["ask_price"]) == ("50.5", "80", "51")

    trades = api(mkt, f"{URL}/trades")["items"]
    shown_trades = [(r["data-trade"], fields(r)) for r in shown.all(testid="trade-row")]
    assert shown_trades == [(str(t["trade_id"]), {"price": yuan(t["price_fen"]), "quantity_t": str(t["quantity_t"])})
                            for t in trades]
    assert [t["quantity_t"] for t in trades] == [120, 300]

    days = api(mkt, f"{URL}/days")["items"]
    assert [(r["data-day"], fields(r)["volume_t"]) for r in shown.all(testid="day-row")] == [
        (d["trading_day"], str(d["volume_t"])) for d in days]
    assert days[-1]["volume_t"] == 420
    candles = api(mkt, f"{URL}/candles?trading_day={days[-1]['trading_day']}&granularity=300")["items"]
    assert [(fields(r)["close"], fields(r)["volume_t"]) for r in shown.all(testid="candle-row")] == [
        (yuan(c["close_fen"]), str(c["volume_t"])) for c in candles]
    assert sum(c["volume_t"] for c in candles) == 420
    for chart in ("daily-chart", "intraday-chart"):
        assert shown.one(testid=chart)["data-figure"]  # drawn from the same lists as the tables
    assert '"50.1"' in shown.one(testid="intraday-chart")["data-figure"]  # prices as decimal strings, not floats


def test_officers_get_the_exchange_controls_and_the_page_follows_a_halt(mkt: Market) -> None:
    assert not page(mkt, f"/ui/market/{INSTRUMENT}", TRADER).all(testid="exchange-controls")
    assert not page(mkt, f"/ui/market/{INSTRUMENT}", VERIFIER).all(testid="exchange-controls")
    officer = page(mkt, f"/ui/market/{INSTRUMENT}", OFFICER)
    assert {f["data-control"] for f in officer.all(tag="form") if "data-control" in f.attrs} == {"halt", "band"}
    assert f'"/v1/exchange/instruments/{INSTRUMENT}"' in officer.html  # where the controls' script sends them
    assert officer.one(testid="band-bp")["name"] == "band_bp" and officer.one(testid="halt-reason")["name"] == "reason"
    halted = mkt.call("POST", f"{URL}/halt", OFFICER, json={"reason": "rehearsal"})
    assert halted.status_code == 200, halted.text
    try:
        stopped = page(mkt, f"/ui/market/{INSTRUMENT}", OFFICER)
        assert stopped.all(testid="halted") and stopped.one(testid="resume")
        assert not stopped.all(testid="halt")
        assert page(mkt, "/ui/market", TRADER).all(testid="halted")
    finally:
        resumed = mkt.call("POST", f"{URL}/resume", OFFICER)
        assert resumed.status_code == 200, resumed.text
    assert not page(mkt, f"/ui/market/{INSTRUMENT}", OFFICER).all(testid="halted")


def test_auction_results_and_who_won_what_for_officers_only(mkt: Market) -> None:
    report = api(mkt, f"/v1/auctions/{AUCTION}/report", VERIFIER)
    assert (report["status"], report["clearing_price_fen"], report["allocated_t"]) == ("settled", 5500, 100)
    for headers in (TRADER, CHP_USER):
        listed = page(mkt, "/ui/market/auctions", headers)
        [row] = listed.all(testid="auction-row")
        assert (row["data-auction"], row["data-status"], fields(row)["clearing_price"]) == (AUCTION, "settled", "55")
        assert not listed.all(testid="auction-report")
    shown = page(mkt, "/ui/market/auctions", VERIFIER).one(testid="auction-report")
    bidders = {r["data-account"]: squash(r.text) for r in shown.children if r.attrs.get("data-testid") == "bidder-row"}
    assert set(bidders) == {b["account_id"] for b in report["bidders"]} == {"TR-QIAN", "TR-ZHOU"}
    won = {c["data-field"]: squash(c.text) for c in shown.children if "data-field" in c.attrs}
    revenue = format_number(Decimal(report["revenue_fen"]) / 100, 2)
    assert won == {"allocated_t": "100", "unsold_t": "0", "revenue": revenue} and revenue == "5,500.00"


def test_an_unlisted_instrument_is_not_found_and_engineers_see_no_auctions(mkt: Market) -> None:
    missing = page(mkt, "/ui/market/CEA-2099", TRADER, status=404)
    assert missing.one(testid="page-error")["data-code"] == "instrument_not_listed"
    assert page(mkt, "/ui/market/auctions", ENGINEER, status=403).one(testid="page-error")["data-code"] == (
        "role_not_allowed")

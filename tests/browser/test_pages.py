"""The main pages open in a real browser, draw their charts with the bundled Plotly, and are photographed.

Why here: the page tests with TestClient check the numbers in the HTML; only a browser runs the scripts that
draw the charts, loads every asset (all from the server itself: the ``new_page`` fixture refuses any other
address) and shows how a page looks on a laptop and on a tablet. The screenshots are the record of that.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import TABLET, PageFactory, expect_page, playwright_api, shoot, sign_in
from tests.browser.zone import CEMENT_PLANT, ENTERPRISE_ID, OFFICER_ID, YEAR, BrowserZone

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.integration]
expect = playwright_api().expect

#: Officer pages: (screenshot name, path, an element that must be shown, whether the page draws a chart).
OFFICER_PAGES = (
    ("zone", f"/ui/zone?year={YEAR}", "zone-months", True),
    ("enterprises", "/ui/enterprises", "enterprise-list", False),
    ("review-queue", "/ui/review", "review-queue", False),
    ("zone-compliance", f"/ui/rights?year={YEAR}", "zone-compliance", False),  # a chart once a year is locked
    ("market", "/ui/market", "instruments", False),
    ("auctions", "/ui/market/auctions", "auctions", False),
)
ENTERPRISE_PAGES = (
    ("my-enterprises", "/ui/my", "my-enterprises", False),
    ("my-enterprise", f"/ui/my/{CEMENT_PLANT}?year={YEAR}", "emissions", True),
    ("balance", f"/ui/rights/{CEMENT_PLANT}?year={YEAR}", "balance-facts", False),
)


def visit(page: Page, zone: BrowserZone, folder: Path, *, name: str, path: str, shown: str, chart: bool) -> None:
    page.goto(zone.url(path))
    expect_page(page)
    expect(page.get_by_test_id(shown)).to_be_visible()
    if chart:  # drawn by the page's script: Plotly's SVG inside the chart box
        expect(page.locator(".chart .main-svg").first).to_be_visible()
    shoot(page, folder, name)


def test_the_officer_pages_show_their_tables_and_charts(
        browser_zone: BrowserZone, new_page: PageFactory, screenshot_dir: Path) -> None:
    page = new_page()
    sign_in(page, browser_zone, OFFICER_ID)
    for name, path, shown, chart in OFFICER_PAGES:
        visit(page, browser_zone, screenshot_dir, name=name, path=path, shown=shown, chart=chart)
    page.set_viewport_size(TABLET)
    visit(page, browser_zone, screenshot_dir, name="zone-tablet", path=f"/ui/zone?year={YEAR}",
          shown="zone-months", chart=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the zone overview is {overflow}px wider than a tablet's screen"


def test_the_enterprise_pages_show_their_tables_and_charts(
        browser_zone: BrowserZone, new_page: PageFactory, screenshot_dir: Path) -> None:
    page = new_page()
    sign_in(page, browser_zone, ENTERPRISE_ID)
    for name, path, shown, chart in ENTERPRISE_PAGES:
        visit(page, browser_zone, screenshot_dir, name=name, path=path, shown=shown, chart=chart)

"""Browser tests: the pages driven by Playwright in headless Chromium, against a live server of the real app.

Why a live server and a real browser: the pages act through their own scripts (sign-in, the CSRF header read
from the session cookie, uploads, review actions by ``fetch``), which only a browser runs. The server is
uvicorn on a free loopback port over a zone of its own (``tests.browser.zone``); nothing leaves 127.0.0.1.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``; Playwright downloads nothing). Without
it, or without the ``playwright`` package, the tests skip and say what to install, unless
CARBON_REQUIRE_BROWSER=1 (as in CI), where they fail. They run in the SQLite pass only (mark ``browser``).

Screenshots of the pages are written to CARBON_SCREENSHOT_DIR when it is set, else to ``screenshots/`` in
the run's temporary folder (``make test``: ``.pytest-tmp/sqlite/screenshots/``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from tests.browser.zone import BrowserZone, prepare_zone
from tests.faults.harness import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Route, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = "apt-get install -y --no-install-recommends chromium fonts-wqy-microhei"
#: Playwright's wait for a page, a navigation or an element (ms): generous for a loaded 2-core machine.
TIMEOUT_MS = 15_000
#: A laptop screen, and the tablet the pages must also work on.
LAPTOP: ViewportSize = {"width": 1366, "height": 900}
TABLET: ViewportSize = {"width": 820, "height": 1180}
#: ``new_page(viewport=...)``: a page in a browser context of its own.
PageFactory = Callable[..., "Page"]


def browser_required() -> bool:
    return os.environ.get("CARBON_REQUIRE_BROWSER") == "1"


def playwright_api() -> ModuleType:
    """``playwright.sync_api`` for a test module: without the package the module is skipped (a collection error
    when CARBON_REQUIRE_BROWSER=1)."""
    try:
        import playwright.sync_api as api
    except ImportError:
        message = "the playwright package is not installed: .venv/bin/pip install -e '.[dev]'"
        if browser_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)
    return api


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """Headless Chromium, once for the browser tests; skipped (failed when CARBON_REQUIRE_BROWSER=1) when missing.

    Closed after the browser tests: Playwright's event loop runs while it is open, and the Dagster runs of
    the other tests must not meet it."""
    if not CHROMIUM.is_file():
        message = f"Chromium is not installed at {CHROMIUM}; install it (as root): {INSTALL}"
        if browser_required():
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="package")
def browser_zone(chromium: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserZone]:
    """The zone of ``tests.browser.zone`` and a live server over it."""
    data_dir = tmp_path_factory.mktemp("browser-zone")
    zone = prepare_zone(data_dir)
    server = LiveServer(data_dir=data_dir, database_url=zone.settings.database, name="browser-server")
    zone.base_url = server.start()
    try:
        yield zone
    finally:
        server.stop()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("CARBON_SCREENSHOT_DIR") or tmp_path_factory.getbasetemp() / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                               ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so that ``new_page`` knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def new_page(chromium: Browser, browser_zone: BrowserZone, screenshot_dir: Path,
             request: pytest.FixtureRequest) -> Iterator[PageFactory]:
    """Pages in fresh browser contexts (no cookies: each person signs in for themselves), closed afterwards.

    Every request a page makes is watched: one to any other address than the server under test (a CDN, a
    font service) is refused and fails the test, and so does an error thrown by a page's script. When the
    test fails, each of its pages is saved as it was (``failed-<test>-<n>.png``) next to the screenshots.
    """
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    contexts: list[BrowserContext] = []
    outside: list[str] = []
    script_errors: list[str] = []

    def refuse(route: Route) -> None:
        outside.append(route.request.url)
        route.abort()

    def open_page(*, viewport: ViewportSize = LAPTOP) -> Page:
        context = chromium.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai")
        context.set_default_timeout(TIMEOUT_MS)
        context.route(lambda url: not url.startswith(browser_zone.base_url + "/"), refuse)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: script_errors.append(f"{page.url}: {error}"))
        return page

    yield open_page
    report = getattr(request.node, "report_call", None)
    for number, context in enumerate(contexts, start=1):
        if report is not None and report.failed:
            for page in context.pages:
                page.screenshot(path=str(screenshot_dir / f"failed-{request.node.name[:60]}-{number}.png"),
                                full_page=True)
        context.close()
    assert not outside, f"pages asked for outside addresses: {outside}"
    assert not script_errors, f"page scripts failed: {script_errors}"


def expect_page(page: Page) -> None:
    """The page was shown: not the error page (``page-error``, with the problem's code)."""
    error = page.get_by_test_id("page-error")
    if error.count():
        raise AssertionError(f"{page.url} shows the error page: {error.first.get_attribute('data-code')}: "
                             f"{error.first.inner_text()}")


def shoot(page: Page, folder: Path, name: str) -> Path:
    """A full-page screenshot ``<name>.png`` in ``folder``; the name says which page it is."""
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(f"screenshot names are lowercase words with dashes, got {name!r}")
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, zone: BrowserZone, user_id: str, *, next_page: str | None = None) -> None:
    """Sign in through the sign-in page as a person does, and wait for the page it opens."""
    page.goto(zone.url("/ui/login" + (f"?next={next_page}" if next_page else "")))
    page.get_by_test_id("username").fill(user_id)
    page.get_by_test_id("password").fill(zone.passwords[user_id])
    with page.expect_navigation():
        page.get_by_test_id("sign-in").click()

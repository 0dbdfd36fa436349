"""Signing in through the page, in Simplified Chinese by default and in English after the switch.

Why in a browser: sign-in is the page's own script posting to ``/v1/auth/session`` and the session cookie
that every later page and action rides on; a page not signed in must send the reader to this form and
back to where they were going.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import PageFactory, expect_page, playwright_api, shoot, sign_in
from tests.browser.zone import ENTERPRISE_ID, OFFICER_ID, BrowserZone

pytestmark = [pytest.mark.browser, pytest.mark.integration]
expect = playwright_api().expect

HAN = re.compile(r"[\u4e00-\u9fff]")  # a Chinese character


def test_an_officer_signs_in_on_the_chinese_page_comes_back_to_the_page_asked_for_and_switches_to_english(
        browser_zone: BrowserZone, new_page: PageFactory, screenshot_dir: Path) -> None:
    page = new_page()
    page.goto(browser_zone.url("/ui/zone"))
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Fzone$|/ui/login\?next=/ui/zone$"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_test_id("sign-in")).to_have_text(HAN)
    shoot(page, screenshot_dir, "sign-in-zh")

    page.get_by_test_id("username").fill(OFFICER_ID)
    page.get_by_test_id("password").fill(browser_zone.passwords[OFFICER_ID] + "-wrong")
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_test_id("sign-in-error")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    shoot(page, screenshot_dir, "sign-in-refused-zh")

    page.get_by_test_id("password").fill(browser_zone.passwords[OFFICER_ID])
    with page.expect_navigation(url=re.compile(r"/ui/zone$")):
        page.get_by_test_id("sign-in").click()
    expect(page.get_by_test_id("current-user")).to_contain_text(OFFICER_ID)
    expect_page(page)
    expect(page.locator("body")).to_have_attribute("data-lang", "zh")
    expect(page.get_by_test_id("nav-zone")).to_have_text(HAN)

    with page.expect_navigation(url=re.compile(r"/ui/zone$")):
        page.get_by_test_id("lang-en").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("nav-zone")).not_to_have_text(HAN)
    expect(page.get_by_test_id("sign-out")).not_to_have_text(HAN)
    expect_page(page)
    shoot(page, screenshot_dir, "zone-en")

    page.get_by_test_id("sign-out").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.goto(browser_zone.url("/ui/zone"))
    expect(page).to_have_url(re.compile(r"/ui/login"))  # the session is over
    expect(page.get_by_test_id("sign-in")).not_to_have_text(HAN)  # the language stays chosen


def test_an_enterprise_user_lands_on_its_own_page_after_signing_in(
        browser_zone: BrowserZone, new_page: PageFactory) -> None:
    page = new_page()
    sign_in(page, browser_zone, ENTERPRISE_ID)
    expect(page).to_have_url(re.compile(r"/ui/my$"))
    expect(page.get_by_test_id("current-user")).to_contain_text(ENTERPRISE_ID)

"""The review of a month from the officer's first look to the verified figure on the balance page, in a browser.

The story of the issue, as two people do it in two browsers: the officer opens the enterprise whose
December failed a data-quality check, follows its number down to the input row behind it (24,474,800 t of
clinker: kilograms in a tonne column), and rejects the month with a comment; the enterprise signs in, reads
the comment, uploads a corrected file that still has one bad row and sees that row's error, then a good
file and its receipt (December's deadline has long passed, but a month sent back takes its correction);
the pipeline calculates the correction, as the submissions sensor would have it; the officer approves and
locks December and then the year; the balance page shows the year's verified emissions, the API's figure.

One test, because each step stands on the state the one before it left.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.auth_support import OFFICER
from tests.browser.conftest import PageFactory, expect_page, playwright_api, shoot, sign_in
from tests.browser.zone import (
    CEMENT_PLANT,
    CLINKER_L1_REPORTED,
    ENTERPRISE_ID,
    FAULTY_MONTH,
    OFFICER_ID,
    YEAR,
    BrowserZone,
    is_clinker_l1,
    month_file,
)
from tests.faults.harness import request
from tests.support import sample_rows

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.integration]
expect = playwright_api().expect

COMMENT = "L1 熟料产量按千克填报（24474800），请改为吨后重新提交 / L1 clinker reported in kg: resend in t"


def api(zone: BrowserZone, path: str) -> Any:
    """A JSON read of the API as an officer (outside the browser), to compare the pages with."""
    answer = request("GET", zone.url(path), headers=OFFICER)
    assert answer.status == 200, (path, answer.status, answer.body)
    return answer.body


def file_row_of_clinker_l1(month: str) -> int:
    """The file row (the header is row 1) of the cement plant's clinker line L1 in the sample month file."""
    _, rows = sample_rows(month)
    return next(number for number, row in enumerate(rows, start=2) if is_clinker_l1(row))


def follow(page: Page, link: Locator) -> None:
    """Click a link and wait until the new page has loaded (its script included: the forms need it)."""
    with page.expect_navigation():
        link.click()


def act(page: Page, action: str, *, expected_status: str) -> None:
    """Press a review action button on the enterprise page and wait for the reloaded page's new status."""
    page.wait_for_load_state()
    page.get_by_test_id(f"action-{action}").click()
    expect(page.get_by_test_id("review-status")).to_have_attribute("data-status", expected_status)
    page.wait_for_load_state()
    expect(page.get_by_test_id("review-error")).to_be_hidden()


def test_an_officer_rejects_a_held_month_the_enterprise_corrects_it_and_the_locked_year_reaches_the_balance_page(
        browser_zone: BrowserZone, new_page: PageFactory, screenshot_dir: Path) -> None:
    zone = browser_zone
    enterprise_page = f"/ui/enterprises/{CEMENT_PLANT}"
    faulty_row = file_row_of_clinker_l1(FAULTY_MONTH)
    faulty_net = api(zone, f"/v1/review/periods/{CEMENT_PLANT}/{FAULTY_MONTH}")["calculation"]["net_tco2e"]

    # The officer finds the enterprise with a failed check and opens it: December is held back.
    officer = new_page()
    sign_in(officer, zone, OFFICER_ID, next_page="/ui/enterprises")
    officer.get_by_test_id("filter-failed").check()
    officer.get_by_test_id("filter-apply").click()
    expect(officer).to_have_url(re.compile(r"failed=true"))
    cement_row = officer.locator(f"[data-testid=enterprise-row][data-enterprise='{CEMENT_PLANT}']")
    expect(cement_row.get_by_test_id("enterprise-findings")).not_to_have_attribute("data-value", "0")
    shoot(officer, screenshot_dir, "enterprises-failed-checks")
    follow(officer, cement_row.get_by_test_id("enterprise-link"))
    expect(officer.get_by_test_id("enterprise-id")).to_have_text(CEMENT_PLANT)
    expect(officer.get_by_test_id("review-section")).to_have_attribute("data-period", FAULTY_MONTH)
    expect(officer.get_by_test_id("review-status")).to_have_attribute("data-status", "calculated")
    expect(officer.get_by_test_id("review-held")).to_be_visible()
    expect(officer.locator("[data-testid=finding][data-severity=hold]").first).to_be_visible()
    expect_page(officer)
    shoot(officer, screenshot_dir, "enterprise-held")

    # December's process emissions, followed down to the input row, its unit conversion and its factor.
    december = officer.locator(f"#monthly-balances tr[data-period='{FAULTY_MONTH}']")
    follow(officer, december.locator("[data-testid=lineage-link][data-column=process_tco2e]"))
    expect(officer).to_have_url(re.compile(rf"/lineage/{FAULTY_MONTH}\?line=process"))
    input_row = officer.locator(f"[data-testid=lineage-line][data-row='{faulty_row}']")
    expect(input_row).to_contain_text(f"{int(CLINKER_L1_REPORTED):,}")  # as reported, and converted to t
    expect(input_row).to_contain_text("cao_fraction")  # the measured parameters its emissions come from
    expect_page(officer)
    shoot(officer, screenshot_dir, "lineage")
    # The fuel lines of the same month name their factors and the standard the factors come from.
    follow(officer, officer.locator("[data-testid=lineage-groups] a[href$='line=combustion']"))
    expect(officer).to_have_url(re.compile(rf"/lineage/{FAULTY_MONTH}\?line=combustion"))
    expect(officer.get_by_test_id("lineage-factor").first).to_contain_text("GB/T 32151")
    shoot(officer, screenshot_dir, "lineage-factors")

    # Back on the enterprise page, the officer rejects December with a comment on that row.
    follow(officer, officer.get_by_test_id("lineage-back"))
    officer.get_by_test_id("review-comment").fill(COMMENT)
    officer.get_by_test_id("review-row").fill(str(faulty_row))
    act(officer, "reject", expected_status="rejected")
    expect(officer.get_by_test_id("history-comment").first).to_contain_text(COMMENT)
    shoot(officer, screenshot_dir, "enterprise-rejected")

    # The enterprise signs in and reads the comment on its own page.
    company = new_page()
    sign_in(company, zone, ENTERPRISE_ID)
    follow(company, company.locator(f"[data-testid=my-enterprise][data-enterprise='{CEMENT_PLANT}']")
           .get_by_test_id("my-enterprise-link"))
    rejection = company.locator(f"[data-testid=rejection][data-period='{FAULTY_MONTH}']")
    expect(rejection.get_by_test_id("rejection-comment")).to_have_text(COMMENT)
    expect(company.locator(f"[data-testid=period-row][data-period='{FAULTY_MONTH}']")).to_have_attribute(
        "data-status", "rejected")
    expect_page(company)
    shoot(company, screenshot_dir, "my-enterprise-rejected")

    # A corrected file that still has one bad row (a "ton", which the template refuses): that row's error.
    follow(company, company.get_by_test_id("upload-link"))
    expect_page(company)
    shoot(company, screenshot_dir, "upload")
    still_wrong = month_file(FAULTY_MONTH, enterprise_id=CEMENT_PLANT, unit_of_clinker_l1="ton")
    corrected = month_file(FAULTY_MONTH, enterprise_id=CEMENT_PLANT)
    bad_row = next(n for n, line in enumerate(still_wrong.decode().splitlines(), start=1) if ",ton," in line)
    upload(company, "cement-2024-12.csv", still_wrong)
    errors = company.get_by_test_id("upload-errors")
    expect(errors).to_be_visible()
    expect(errors.get_by_test_id("error-row")).to_have_count(1)
    expect(errors.get_by_test_id("error-row")).to_have_attribute("data-row", str(bad_row))
    expect(errors.get_by_test_id("error-row")).to_have_attribute("data-column", "unit")
    expect(company.get_by_test_id("upload-receipt")).to_be_hidden()
    shoot(company, screenshot_dir, "upload-refused")

    upload(company, "cement-2024-12.csv", corrected)
    receipt = company.get_by_test_id("upload-receipt")
    expect(receipt).to_be_visible()
    expect(company.get_by_test_id("receipt-periods")).to_contain_text(FAULTY_MONTH)
    expect(errors).to_be_hidden()
    submission_id = company.get_by_test_id("receipt-submission-id").inner_text().strip()
    shoot(company, screenshot_dir, "upload-receipt")
    state = api(zone, f"/v1/review/periods/{CEMENT_PLANT}/{FAULTY_MONTH}")
    assert (state["status"], state["submission_id"]) == ("submitted", submission_id)

    # The pipeline calculates the correction; the officer reviews, approves and locks December, then the year.
    zone.run_pipeline(months=(FAULTY_MONTH,))
    officer.goto(zone.url(f"{enterprise_page}?period={FAULTY_MONTH}"))
    expect(officer.get_by_test_id("review-status")).to_have_attribute("data-status", "calculated")
    expect(officer.get_by_test_id("review-held")).to_have_count(0)
    corrected_net = api(zone, f"/v1/review/periods/{CEMENT_PLANT}/{FAULTY_MONTH}")["calculation"]["net_tco2e"]
    assert corrected_net < faulty_net / 100  # the clinker line is in tonnes again
    for action, status in (("start_review", "in_review"), ("approve", "verified"), ("lock", "locked")):
        act(officer, action, expected_status=status)
    officer.goto(zone.url(f"{enterprise_page}?period={YEAR}"))
    expect(officer.get_by_test_id("review-section")).to_have_attribute("data-period", YEAR)
    for action, status in (("start_review", "in_review"), ("approve", "verified"), ("lock", "locked")):
        act(officer, action, expected_status=status)
    shoot(officer, screenshot_dir, "enterprise-year-locked")

    # The enterprise's balance page shows the year's verified emissions: the API's figure, the corrected one.
    verified = api(zone, f"/v1/compliance/{YEAR}/enterprises/{CEMENT_PLANT}")["verified_emissions"]
    year_calculation = api(zone, f"/v1/review/periods/{CEMENT_PLANT}/{YEAR}")["calculation"]
    assert verified["net_tco2e"] == pytest.approx(year_calculation["net_tco2e"])
    company.goto(zone.url(f"/ui/my/{CEMENT_PLANT}"))
    follow(company, company.get_by_test_id("rights-link"))
    shown = company.get_by_test_id("balance-verified")
    expect(shown).not_to_have_attribute("data-value", "")
    assert float(shown.get_attribute("data-value") or "nan") == pytest.approx(verified["net_tco2e"])
    expect(company.get_by_test_id("not-locked")).to_have_count(0)
    expect_page(company)
    shoot(company, screenshot_dir, "balance-verified")


def upload(page: Page, name: str, content: bytes) -> None:
    """Choose a file on the upload page and send it."""
    page.get_by_test_id("upload-file").set_input_files({"name": name, "mimeType": "text/csv", "buffer": content})
    page.get_by_test_id("upload-submit").click()

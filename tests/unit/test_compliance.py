"""Compliance (issue 5 §4): obligation rounding, eligible vintages, the CCER cap, shortfall, penalty,
next-year deduction, banking and the zone report; hand-computed values, the Ningxia case, and a cap property."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.compliance import (
    COMPLIANT,
    DEFICIT,
    SURPLUS,
    BankingDecision,
    ComplianceError,
    ComplianceRules,
    Surrendered,
    assess_compliance,
    average_price_fen,
    bank_surplus,
    banking_limit_t,
    ccer_cap_t,
    check_surrender,
    obligation_t,
    penalty_estimate_fen,
    vintages_up_to,
    zone_compliance_report,
)
from accounting.errors import AccountingError
from accounting.ledger import LedgerError

RULES = ComplianceRules(compliance_year=2025, eligible_vintages=vintages_up_to(2025))


# --- obligation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("emissions", "expected"), [
    (1000.0, 1000), (1000.0000000000001, 1000), (0.1 + 0.2, 1), (100.2, 101), (Decimal("100.2"), 101),
    (Decimal("999.0000004"), 999), (Decimal("999.0000006"), 1000), (12_345, 12_345), (0.0, 0),
])
def test_the_obligation_is_locked_emissions_rounded_up_after_reading_to_the_gram(
        emissions: float | Decimal | int, expected: int) -> None:
    assert obligation_t(verified_co2e_t=emissions, emissions_status="locked") == expected


@pytest.mark.parametrize(("emissions", "status", "expected"), [
    (100.0, "verified", "emissions_not_locked"), (100.0, "reopened", "emissions_not_locked"),
    (-1.0, "locked", "invalid_emissions"), (float("nan"), "locked", "invalid_emissions"),
    (float("inf"), "locked", "invalid_emissions"), (True, "locked", "invalid_emissions"),
    ("100", "locked", "invalid_emissions"), (Decimal("NaN"), "locked", "invalid_emissions"),
])
def test_an_obligation_needs_finite_locked_emissions(emissions: object, status: str, expected: str) -> None:
    with pytest.raises(ComplianceError) as error:
        obligation_t(verified_co2e_t=emissions, emissions_status=status)  # type: ignore[arg-type]
    assert error.value.code == expected


# --- surrender -----------------------------------------------------------------------------------


def test_the_ccer_cap_is_5_percent_of_the_obligation_rounded_down() -> None:
    assert ccer_cap_t(obligation_t=1000) == 50
    assert ccer_cap_t(obligation_t=1019) == 50  # 50.95
    assert ccer_cap_t(obligation_t=1000, share=Decimal("0.10")) == 100


def test_eligible_allowances_and_ccer_within_the_cap_are_accepted() -> None:
    after = check_surrender(rules=RULES, obligation_t=1000, surrendered=Surrendered(), instrument="CEA-2025",
                            quantity=900)
    after = check_surrender(rules=RULES, obligation_t=1000, surrendered=after, instrument="CEA-2023", quantity=50)
    after = check_surrender(rules=RULES, obligation_t=1000, surrendered=after, instrument="CCER", quantity=50)
    assert after == Surrendered(allowances_t=950, ccer_t=50)
    assert after.total_t == 1000


@pytest.mark.parametrize(("surrendered", "instrument", "quantity", "expected"), [
    (Surrendered(), "CEA-2026", 10, "vintage_not_eligible"),  # no borrowing from next year
    (Surrendered(ccer_t=40), "CCER", 11, "offset_cap_exceeded"),
    (Surrendered(), "CCER", 51, "offset_cap_exceeded"),
    (Surrendered(), "SO2", 10, "instrument_not_surrenderable"),
    (Surrendered(), "CNY", 10, "instrument_not_surrenderable"),
    (Surrendered(allowances_t=990), "CEA-2025", 11, "surrender_exceeds_obligation"),
])
def test_surrenders_breaking_a_rule_are_refused(surrendered: Surrendered, instrument: str, quantity: int,
                                                expected: str) -> None:
    with pytest.raises(ComplianceError) as error:
        check_surrender(rules=RULES, obligation_t=1000, surrendered=surrendered, instrument=instrument,
                        quantity=quantity)
    assert error.value.code == expected


@pytest.mark.parametrize(("instrument", "quantity", "expected"), [
    ("CEA-2025", 2.5, "fractional_quantity"), ("CEA-2025", -3, "negative_quantity"),
    ("CEA-1900", 1, "unknown_vintage"), ("XYZ", 1, "unknown_instrument"),
])
def test_bad_surrender_quantities_and_instruments_use_the_ledger_codes(instrument: str, quantity: object,
                                                                       expected: str) -> None:
    with pytest.raises(LedgerError) as error:
        check_surrender(rules=RULES, obligation_t=1000, surrendered=Surrendered(), instrument=instrument,
                        quantity=quantity)  # type: ignore[arg-type]
    assert error.value.code == expected


def test_eligible_vintages_and_the_cap_are_configurable() -> None:
    strict = ComplianceRules(compliance_year=2025, eligible_vintages=frozenset({2025}), ccer_cap_share=Decimal(0))
    with pytest.raises(ComplianceError) as error:
        check_surrender(rules=strict, obligation_t=1000, surrendered=Surrendered(), instrument="CEA-2024",
                        quantity=1)
    assert error.value.code == "vintage_not_eligible"
    with pytest.raises(ComplianceError) as error:
        check_surrender(rules=strict, obligation_t=1000, surrendered=Surrendered(), instrument="CCER", quantity=1)
    assert error.value.code == "offset_cap_exceeded"


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"penalty_multiple": Decimal("4.99")}, "penalty_multiple_out_of_range"),
    ({"penalty_multiple": Decimal(11)}, "penalty_multiple_out_of_range"),
    ({"penalty_multiple": 7.5}, "penalty_multiple_out_of_range"),
    ({"ccer_cap_share": Decimal("1.5")}, "invalid_ccer_cap"),
    ({"ccer_cap_share": 0.05}, "invalid_ccer_cap"),
    ({"eligible_vintages": frozenset()}, "unknown_vintage"),
    ({"eligible_vintages": frozenset({1990})}, "unknown_vintage"),
])
def test_bad_rules_are_refused(kwargs: dict[str, object], expected: str) -> None:
    values: dict[str, object] = {"compliance_year": 2025, "eligible_vintages": vintages_up_to(2025)}
    values.update(kwargs)
    with pytest.raises(ComplianceError) as error:
        ComplianceRules(**values)  # type: ignore[arg-type]
    assert error.value.code == expected


# --- penalty, deduction, banking -----------------------------------------------------------------


def test_the_penalty_reproduces_the_ningxia_case() -> None:
    # 865 300 t × CNY 98.00 × 5 = CNY 423 997 000 (market-rules.md §1.5)
    assert penalty_estimate_fen(shortfall_t=865_300, average_price_fen=98_00, multiple=Decimal(5)) == 42_399_700_000


def test_the_penalty_rounds_half_up_to_the_fen() -> None:
    # 1 t × 98.01 × 7.5 = 735.075 CNY = 73 507.5 fen -> 73 508 fen
    assert penalty_estimate_fen(shortfall_t=1, average_price_fen=98_01, multiple=Decimal("7.5")) == 73_508


@pytest.mark.parametrize("multiple", [Decimal(4), Decimal("10.01"), Decimal(0)])
def test_a_penalty_multiple_outside_5_to_10_is_refused(multiple: Decimal) -> None:
    with pytest.raises(ComplianceError) as error:
        penalty_estimate_fen(shortfall_t=1, average_price_fen=98_00, multiple=multiple)
    assert error.value.code == "penalty_multiple_out_of_range"


def test_the_average_price_is_volume_weighted_and_needs_trades() -> None:
    # (100 × 9800 + 300 × 9900) / 400 = 9875
    assert average_price_fen(trades=[(100, 98_00), (300, 99_00)]) == 98_75
    assert average_price_fen(trades=[(1, 1), (2, 2)]) == 2  # 5/3 = 1.67 -> 2
    with pytest.raises(ComplianceError) as error:
        average_price_fen(trades=[])
    assert error.value.code == "no_trades"


def test_banking_is_capped_by_the_limit() -> None:
    assert banking_limit_t(net_sales_t=2_000) == 13_000  # 10 000 + 1.5 × 2 000
    assert banking_limit_t(net_sales_t=-500) == 10_000  # a net buyer banks the base only
    assert bank_surplus(surplus_t=15_000, limit_t=13_000) == BankingDecision(banked_t=13_000, not_bankable_t=2_000)
    assert bank_surplus(surplus_t=15_000, limit_t=None) == BankingDecision(banked_t=15_000, not_bankable_t=0)


def test_a_shortfall_after_the_deadline_carries_a_penalty_and_a_deduction() -> None:
    rules = ComplianceRules(compliance_year=2025, eligible_vintages=vintages_up_to(2025),
                            penalty_multiple=Decimal(6))
    assessment = assess_compliance(enterprise_id="E1", rules=rules, obligation_t=5_000,
                                   surrendered=Surrendered(allowances_t=4_000, ccer_t=200), eligible_holdings_t=0,
                                   deadline_passed=True, previous_month_average_price_fen=98_00)
    assert (assessment.status, assessment.shortfall_t, assessment.surplus_t) == (DEFICIT, 800, 0)
    assert assessment.penalty_estimate_fen == 800 * 98_00 * 6 == 47_040_000
    assert assessment.next_year_deduction_t == 800


def test_before_the_deadline_a_shortfall_is_not_penalised() -> None:
    assessment = assess_compliance(enterprise_id="E1", rules=RULES, obligation_t=5_000, surrendered=Surrendered(),
                                   eligible_holdings_t=6_000, deadline_passed=False)
    assert (assessment.status, assessment.shortfall_t, assessment.surplus_t) == (DEFICIT, 5_000, 1_000)
    assert (assessment.penalty_estimate_fen, assessment.next_year_deduction_t) == (None, 0)
    assert assessment.banking.banked_t == 0  # nothing is banked while the obligation is open


def test_a_penalty_needs_a_price() -> None:
    with pytest.raises(ComplianceError) as error:
        assess_compliance(enterprise_id="E1", rules=RULES, obligation_t=10, surrendered=Surrendered(),
                          eligible_holdings_t=0, deadline_passed=True)
    assert error.value.code == "price_required"


def test_surplus_is_banked_up_to_the_limit() -> None:
    rules = ComplianceRules(compliance_year=2025, eligible_vintages=vintages_up_to(2025), banking_limit_t=10_000)
    assessment = assess_compliance(enterprise_id="E2", rules=rules, obligation_t=5_000,
                                   surrendered=Surrendered(allowances_t=5_000), eligible_holdings_t=12_500,
                                   deadline_passed=True, previous_month_average_price_fen=98_00)
    assert (assessment.status, assessment.surplus_t, assessment.penalty_estimate_fen) == (SURPLUS, 12_500, None)
    assert assessment.banking == BankingDecision(banked_t=10_000, not_bankable_t=2_500)


def test_the_zone_report_groups_enterprises_by_status() -> None:
    def assess(enterprise_id: str, surrendered: int, holdings: int) -> object:
        return assess_compliance(enterprise_id=enterprise_id, rules=RULES, obligation_t=1_000,
                                 surrendered=Surrendered(allowances_t=surrendered), eligible_holdings_t=holdings,
                                 deadline_passed=True, previous_month_average_price_fen=100_00)

    report = zone_compliance_report([assess("C", 1_000, 0), assess("A", 700, 0), assess("B", 1_000, 50),
                                     assess("D", 1_000, 0)], year=2025)  # type: ignore[list-item]
    assert (report.compliant, report.deficit, report.surplus) == (("C", "D"), ("A",), ("B",))
    assert assess("D", 1_000, 0).status == COMPLIANT  # type: ignore[attr-defined]
    assert (report.obligation_t, report.surrendered_t, report.shortfall_t, report.surplus_t) == (4_000, 3_700, 300, 50)
    assert report.penalty_estimate_fen == 300 * 100_00 * 5
    with pytest.raises(ComplianceError) as error:
        zone_compliance_report([assess("A", 700, 0), assess("A", 700, 0)], year=2025)  # type: ignore[list-item]
    assert error.value.code == "duplicate_enterprise"
    with pytest.raises(ComplianceError) as error:
        zone_compliance_report([assess("A", 700, 0)], year=2024)  # type: ignore[list-item]
    assert error.value.code == "wrong_year"


# --- property ------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(obligation=st.integers(min_value=0, max_value=10**7),
       requests=st.lists(st.tuples(st.sampled_from(["CCER", "CEA-2025", "CEA-2026"]),
                                   st.integers(min_value=1, max_value=10**6)), max_size=15))
def test_accepted_surrenders_never_pass_the_cap_or_the_obligation(obligation: int,
                                                                  requests: list[tuple[str, int]]) -> None:
    surrendered = Surrendered()
    for instrument, quantity in requests:
        try:
            surrendered = check_surrender(rules=RULES, obligation_t=obligation, surrendered=surrendered,
                                          instrument=instrument, quantity=quantity)
        except AccountingError:
            continue
    assert surrendered.ccer_t * 100 <= obligation * 5
    assert surrendered.total_t <= obligation

"""Compliance: the obligation from locked verified emissions, surrender rules, shortfall, penalty, banking.

Rules (market-rules.md §1.4–1.5; configurable in ``ComplianceRules``):

* **Obligation** of an enterprise and year = its locked verified emissions in whole tonnes. Rounding
  rule: the emissions (a float64 physical total) are first read to the gram (6 decimals, half-even)
  to drop float summation noise, then rounded **up** to the whole tonne: allowances are whole
  tonnes and the obligation must cover every tonne emitted (100.2 t need 101 allowances).
  Anything but a ``locked`` enterprise-year is refused (``emissions_not_locked``).
* **Surrender**: allowances whose vintage is eligible for the year (``eligible_vintages``; by default
  the year and earlier banked vintages, no borrowing) and CCER credits up to the offset cap, by
  default 5 % of the obligation, rounded **down** (a cap is a maximum). Surrendering more than the
  obligation is refused. The surrender itself is a ledger transfer to the retirement account.
* **After the deadline**: shortfall = obligation - surrendered; penalty estimate = shortfall ×
  the previous month's volume-weighted average price × a multiple from 5 to 10 (2024 Regulations,
  Art. 24), rounded half-up to the fen; the shortfall is deducted one-for-one from next year's
  allocation: from the next vintage held at the close, and what is still owed from each allocation of
  that vintage issued later (``owed_deduction_t``).
* **Banking**: surplus eligible allowances may be carried into later years up to a limit (the
  2023–24 national rule is 10 000 t + 1.5 × net sales, ``banking_limit_t``).

>>> obligation_t(verified_co2e_t=1000.0000000000001, emissions_status="locked")
1000
>>> obligation_t(verified_co2e_t=Decimal("100.2"), emissions_status="locked")
101
>>> penalty_estimate_fen(shortfall_t=865_300, average_price_fen=9_800, multiple=Decimal(5))  # Ningxia 2023
42399700000
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

from accounting.errors import AccountingError
from accounting.ledger import ALLOWANCE, FIRST_VINTAGE, LAST_VINTAGE, OFFSET, check_quantity, parse_instrument

DEFAULT_CCER_CAP_SHARE = Decimal("0.05")
PENALTY_MULTIPLE_MIN = Decimal(5)
PENALTY_MULTIPLE_MAX = Decimal(10)
#: Emissions are read to the gram before rounding up to the tonne (drops float summation noise).
EMISSIONS_RESOLUTION_T = Decimal("0.000001")
COMPLIANT = "compliant"
DEFICIT = "deficit"
SURPLUS = "surplus"


class ComplianceError(AccountingError):
    """A compliance rule refuses the input; ``code`` says which rule."""

    code = "compliance_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def obligation_t(*, verified_co2e_t: float | Decimal | int, emissions_status: str) -> int:
    """Whole tonnes to surrender for locked verified emissions: read to the gram, then rounded up."""
    if emissions_status != "locked":
        raise ComplianceError(f"the obligation needs locked verified emissions, status is {emissions_status!r}",
                              code="emissions_not_locked")
    if isinstance(verified_co2e_t, bool) or not isinstance(verified_co2e_t, float | Decimal | int):
        raise ComplianceError(f"verified emissions must be a number of tonnes, got {verified_co2e_t!r}",
                              code="invalid_emissions")
    if isinstance(verified_co2e_t, float) and not math.isfinite(verified_co2e_t):
        raise ComplianceError(f"verified emissions must be finite, got {verified_co2e_t}", code="invalid_emissions")
    # repr gives the shortest decimal that round-trips: 100.1 -> Decimal('100.1'), not 100.0999...
    exact = Decimal(repr(verified_co2e_t)) if isinstance(verified_co2e_t, float) else Decimal(verified_co2e_t)
    if not exact.is_finite() or exact < 0:
        raise ComplianceError(f"verified emissions must be finite and not negative, got {verified_co2e_t}",
                              code="invalid_emissions")
    grams = exact.quantize(EMISSIONS_RESOLUTION_T, rounding=ROUND_HALF_EVEN)
    return int(grams.to_integral_value(rounding=ROUND_CEILING))


def vintages_up_to(year: int) -> frozenset[int]:
    """The default eligible vintages for compliance year ``year``: that year and every earlier (banked) one.

    >>> sorted(vintages_up_to(2021))
    [2019, 2020, 2021]
    """
    return frozenset(range(FIRST_VINTAGE, year + 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class ComplianceRules:
    """The zone's compliance settings for one year."""

    compliance_year: int
    eligible_vintages: frozenset[int]
    ccer_cap_share: Decimal = DEFAULT_CCER_CAP_SHARE
    penalty_multiple: Decimal = PENALTY_MULTIPLE_MIN
    banking_limit_t: int | None = None

    def __post_init__(self) -> None:
        if type(self.compliance_year) is not int or not FIRST_VINTAGE <= self.compliance_year <= LAST_VINTAGE:
            raise ComplianceError(f"unknown compliance year {self.compliance_year!r}", code="unknown_vintage")
        if not self.eligible_vintages or any(
                type(v) is not int or not FIRST_VINTAGE <= v <= LAST_VINTAGE for v in self.eligible_vintages):
            raise ComplianceError(f"eligible vintages must be years from {FIRST_VINTAGE} to {LAST_VINTAGE}",
                                  code="unknown_vintage")
        if not isinstance(self.ccer_cap_share, Decimal) or not 0 <= self.ccer_cap_share <= 1:
            raise ComplianceError(f"the CCER cap must be a Decimal share from 0 to 1, got {self.ccer_cap_share!r}",
                                  code="invalid_ccer_cap")
        check_penalty_multiple(self.penalty_multiple)
        if self.banking_limit_t is not None:
            check_quantity(self.banking_limit_t, unit="t", allow_zero=True)


def check_penalty_multiple(multiple: Decimal) -> Decimal:
    """``multiple`` when it is a Decimal from 5 to 10; ``penalty_multiple_out_of_range`` otherwise."""
    if not isinstance(multiple, Decimal | int) or isinstance(multiple, bool) \
            or not PENALTY_MULTIPLE_MIN <= multiple <= PENALTY_MULTIPLE_MAX:
        raise ComplianceError(f"the penalty multiple must be from {PENALTY_MULTIPLE_MIN} to {PENALTY_MULTIPLE_MAX}, "
                              f"got {multiple!r}", code="penalty_multiple_out_of_range")
    return Decimal(multiple)


def ccer_cap_t(*, obligation_t: int, share: Decimal = DEFAULT_CCER_CAP_SHARE) -> int:
    """Most CCER tonnes usable against ``obligation_t``: share × obligation, rounded down.

    >>> ccer_cap_t(obligation_t=1019)
    50
    """
    return int((check_quantity(obligation_t, unit="t", allow_zero=True) * share).to_integral_value(ROUND_FLOOR))


@dataclass(frozen=True, slots=True, kw_only=True)
class Surrendered:
    """What an enterprise has surrendered for one year so far, in tonnes."""

    allowances_t: int = 0
    ccer_t: int = 0

    @property
    def total_t(self) -> int:
        """Allowances and offsets together."""
        return self.allowances_t + self.ccer_t


def check_surrender(*, rules: ComplianceRules, obligation_t: int, surrendered: Surrendered, instrument: str,
                    quantity: int) -> Surrendered:
    """The surrendered totals after surrendering ``quantity`` of ``instrument``, or ComplianceError.

    Codes: ``vintage_not_eligible``, ``offset_cap_exceeded``, ``instrument_not_surrenderable``
    (cash, pollutant rights), ``surrender_exceeds_obligation``; quantity errors as in the ledger.
    Holdings and encumbrances are the ledger's check (the retirement transfer).
    """
    check_quantity(quantity, unit="t")
    kind = parse_instrument(instrument)
    if kind.kind == ALLOWANCE:
        if kind.vintage not in rules.eligible_vintages:
            raise ComplianceError(f"{instrument} cannot be surrendered for {rules.compliance_year}",
                                  code="vintage_not_eligible")
        after = Surrendered(allowances_t=surrendered.allowances_t + quantity, ccer_t=surrendered.ccer_t)
    elif kind.kind == OFFSET:
        cap = ccer_cap_t(obligation_t=obligation_t, share=rules.ccer_cap_share)
        if surrendered.ccer_t + quantity > cap:
            raise ComplianceError(f"CCER would reach {surrendered.ccer_t + quantity} t, above the cap of {cap} t",
                                  code="offset_cap_exceeded")
        after = Surrendered(allowances_t=surrendered.allowances_t, ccer_t=surrendered.ccer_t + quantity)
    else:
        raise ComplianceError(f"{instrument} is not surrendered for carbon compliance",
                              code="instrument_not_surrenderable")
    if after.total_t > obligation_t:
        raise ComplianceError(f"surrendering {quantity} t would exceed the obligation of {obligation_t} t",
                              code="surrender_exceeds_obligation")
    return after


def average_price_fen(*, trades: Sequence[tuple[int, int]]) -> int:
    """Volume-weighted average price (fen per tonne) of ``(quantity_t, price_fen)`` trades, rounded half-up.

    >>> average_price_fen(trades=[(100, 9800), (300, 9900)])
    9875
    """
    if not trades:
        raise ComplianceError("no trades in the month: the average price is unknown", code="no_trades")
    volume = sum(check_quantity(q, unit="t") for q, _ in trades)
    value = sum(q * check_quantity(p, unit="fen") for q, p in trades)
    return int((Decimal(value) / Decimal(volume)).to_integral_value(ROUND_HALF_UP))


def penalty_estimate_fen(*, shortfall_t: int, average_price_fen: int, multiple: Decimal) -> int:
    """Penalty estimate: shortfall × previous month's average price × multiple (5 to 10), half-up to the fen."""
    amount = (check_quantity(shortfall_t, unit="t", allow_zero=True)
              * check_quantity(average_price_fen, unit="fen") * check_penalty_multiple(multiple))
    return int(amount.to_integral_value(ROUND_HALF_UP))


def owed_deduction_t(*, owed_t: int, issued_t: int) -> int:
    """What an allocation of the next vintage deducts of a shortfall still owed: all of it, as far as it goes.

    >>> owed_deduction_t(owed_t=311, issued_t=140), owed_deduction_t(owed_t=171, issued_t=900)
    (140, 171)
    """
    return min(check_quantity(owed_t, unit="t", allow_zero=True), check_quantity(issued_t, unit="t", allow_zero=True))


def banking_limit_t(*, net_sales_t: int, base_t: int = 10_000, sales_multiple: Decimal = Decimal("1.5")) -> int:
    """The 2023–24 national banking limit: base + multiple × net sales (net purchases count as 0), rounded down.

    >>> banking_limit_t(net_sales_t=3)
    10004
    """
    if type(net_sales_t) is not int:
        raise ComplianceError(f"net sales must be an int, got {net_sales_t!r}", code="not_an_integer")
    extra = (sales_multiple * max(net_sales_t, 0)).to_integral_value(ROUND_FLOOR)
    return check_quantity(base_t, unit="t", allow_zero=True) + int(extra)


@dataclass(frozen=True, slots=True, kw_only=True)
class BankingDecision:
    """How much surplus is carried into later years and how much is not."""

    banked_t: int
    not_bankable_t: int


def bank_surplus(*, surplus_t: int, limit_t: int | None) -> BankingDecision:
    """Split a surplus into what may be banked (up to ``limit_t``; None = no limit) and the rest.

    >>> bank_surplus(surplus_t=12_000, limit_t=10_000)
    BankingDecision(banked_t=10000, not_bankable_t=2000)
    """
    check_quantity(surplus_t, unit="t", allow_zero=True)
    banked = surplus_t if limit_t is None else min(surplus_t, check_quantity(limit_t, unit="t", allow_zero=True))
    return BankingDecision(banked_t=banked, not_bankable_t=surplus_t - banked)


@dataclass(frozen=True, slots=True, kw_only=True)
class ComplianceAssessment:
    """One enterprise-year: obligation, surrendered, shortfall, surplus, status and, after the deadline, penalty."""

    enterprise_id: str
    year: int
    obligation_t: int
    surrendered: Surrendered
    shortfall_t: int
    surplus_t: int
    status: str
    deadline_passed: bool
    penalty_estimate_fen: int | None
    next_year_deduction_t: int
    banking: BankingDecision


def assess_compliance(*, enterprise_id: str, rules: ComplianceRules, obligation_t: int, surrendered: Surrendered,
                      eligible_holdings_t: int, deadline_passed: bool,
                      previous_month_average_price_fen: int | None = None) -> ComplianceAssessment:
    """Where an enterprise stands for the rules' year.

    ``eligible_holdings_t`` are the eligible allowances still held and available (not surrendered,
    not encumbered). Shortfall = obligation - surrendered; surplus = holdings beyond the shortfall.
    Status: ``deficit`` while any shortfall remains, else ``surplus`` when holdings are left, else
    ``compliant``. After the deadline a shortfall carries a penalty estimate (the price is then
    required: ``price_required``) and an equal deduction from next year's allocation.
    """
    check_quantity(obligation_t, unit="t", allow_zero=True)
    check_quantity(eligible_holdings_t, unit="t", allow_zero=True)
    if surrendered.total_t > obligation_t:
        raise ComplianceError("surrendered more than the obligation", code="surrender_exceeds_obligation")
    shortfall = obligation_t - surrendered.total_t
    surplus = max(eligible_holdings_t - shortfall, 0)
    status = DEFICIT if shortfall else SURPLUS if surplus else COMPLIANT
    penalty: int | None = None
    deduction = 0
    if deadline_passed and shortfall:
        if previous_month_average_price_fen is None:
            raise ComplianceError("a penalty estimate needs the previous month's average price",
                                  code="price_required")
        penalty = penalty_estimate_fen(shortfall_t=shortfall, average_price_fen=previous_month_average_price_fen,
                                       multiple=rules.penalty_multiple)
        deduction = shortfall
    return ComplianceAssessment(
        enterprise_id=enterprise_id, year=rules.compliance_year, obligation_t=obligation_t, surrendered=surrendered,
        shortfall_t=shortfall, surplus_t=surplus, status=status, deadline_passed=deadline_passed,
        penalty_estimate_fen=penalty, next_year_deduction_t=deduction,
        banking=bank_surplus(surplus_t=surplus if not shortfall else 0, limit_t=rules.banking_limit_t))


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneComplianceReport:
    """The zone's compliance picture for one year: who is compliant, in deficit, in surplus, and the totals."""

    year: int
    compliant: tuple[str, ...]
    deficit: tuple[str, ...]
    surplus: tuple[str, ...]
    obligation_t: int
    surrendered_t: int
    shortfall_t: int
    surplus_t: int
    penalty_estimate_fen: int


def zone_compliance_report(assessments: Iterable[ComplianceAssessment], *, year: int) -> ZoneComplianceReport:
    """Group the assessments of ``year`` by status (enterprise ids sorted); one assessment per enterprise."""
    items = list(assessments)
    ids = [a.enterprise_id for a in items]
    if len(ids) != len(set(ids)):
        raise ComplianceError("an enterprise is assessed twice", code="duplicate_enterprise")
    if any(a.year != year for a in items):
        raise ComplianceError(f"every assessment must be for {year}", code="wrong_year")

    def having(status: str) -> tuple[str, ...]:
        return tuple(sorted(a.enterprise_id for a in items if a.status == status))

    return ZoneComplianceReport(
        year=year, compliant=having(COMPLIANT), deficit=having(DEFICIT), surplus=having(SURPLUS),
        obligation_t=sum(a.obligation_t for a in items), surrendered_t=sum(a.surrendered.total_t for a in items),
        shortfall_t=sum(a.shortfall_t for a in items), surplus_t=sum(a.surplus_t for a in items),
        penalty_estimate_fen=sum(a.penalty_estimate_fen or 0 for a in items))


def surrender_deadline(*, year: int, month_day: str) -> date:
    """The surrender deadline of compliance year ``year``: ``month_day`` (MM-DD) of the year after.

    >>> surrender_deadline(year=2024, month_day="12-31")
    datetime.date(2025, 12, 31)
    """
    try:
        month, day = (int(part) for part in month_day.split("-"))
        return date(year + 1, month, day)
    except ValueError as err:
        raise ComplianceError(f"the deadline must be MM-DD, got {month_day!r}", code="invalid_deadline") from err


def penalty_price_month(deadline: date) -> str:
    """The month whose average price sets the penalty: the calendar month before the deadline's month.

    2024 Regulations Art. 24: "the average market trading price in the month before the surrender
    deadline"; read as the last complete month before the deadline's month.

    >>> penalty_price_month(date(2025, 12, 31)), penalty_price_month(date(2026, 1, 15))
    ('2025-11', '2025-12')
    """
    year, month = (deadline.year, deadline.month - 1) if deadline.month > 1 else (deadline.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Take:
    """Units of one instrument to take from an account."""

    instrument: str
    quantity: int


def take_oldest_first(*, wanted_t: int, available: Mapping[str, int]) -> tuple[tuple[Take, ...], int]:
    """Up to ``wanted_t`` tonnes from ``available`` (instrument -> available t), oldest vintage first.

    Returns what to take and the tonnes that could not be taken (owed). Used for the next year's
    deduction (one vintage) and for cancelling allowances beyond the banking limit (oldest expire first).

    >>> take_oldest_first(wanted_t=7, available={"CEA-2024": 5, "CEA-2023": 1})
    ((Take(instrument='CEA-2023', quantity=1), Take(instrument='CEA-2024', quantity=5)), 1)
    """
    remaining = check_quantity(wanted_t, unit="t", allow_zero=True)
    takes: list[Take] = []
    for instrument in sorted(available, key=lambda code: (parse_instrument(code).vintage or 0, code)):
        quantity = min(remaining, check_quantity(available[instrument], unit="t", allow_zero=True))
        if quantity:
            takes.append(Take(instrument=instrument, quantity=quantity))
            remaining -= quantity
    return tuple(takes), remaining

"""Compliance use cases: the obligation, surrender, the balance view, the zone report and closing a year.

Rules (the pure ones are in ``accounting.compliance``; the settings in ``pipelines.settings``):

* **Obligation** of an enterprise and year = its locked verified emissions (the latest version in
  ``verified_emissions`` while the year's review is ``locked``), rounded up to the whole tonne by
  ``obligation_t``. A year not locked (never, or reopened for a restatement) has no obligation yet:
  status ``not_locked``, and nothing can be surrendered for it.
* **Surrender** (enterprise users, their own compliance account only): allowances of a vintage up to
  the year (banked earlier vintages included, no borrowing) and CCER up to ``ccer_cap_share`` of the
  obligation; never more than the obligation. It is one ledger entry of kind ``surrender`` from
  ``CA-<enterprise>`` to ``SYS-RETIREMENT`` with reference ``compliance:<enterprise>:<year>``; the
  ledger refuses frozen or pledged units, and retired units never move again.
* **Deadline**: ``compliance_deadline`` (MM-DD) of the year after the compliance year, in China
  Standard Time; it has passed from the day after. Surrenders stay possible after the deadline until
  the year is closed.
* **Closing a year** (officer, four eyes; only after the deadline): the proposal states the whole plan
  (the rules used and, per enterprise, the figures and the entries to post); the second officer
  approves that plan, and it is carried out only if recomputing it gives the same plan
  (``close_plan_changed`` otherwise: propose again). For each enterprise in deficit: the shortfall,
  the penalty estimate (shortfall × the volume-weighted average allowance price of the calendar month
  before the deadline's month × ``penalty_multiple``) and the next year's deduction: an entry of kind
  ``deduction`` taking the shortfall from the enterprise's allowances of the next vintage
  (``CEA-<year+1>``) into ``SYS-CANCELLATION``, as far as they are available; the rest is recorded as
  ``owed_t`` in the close result, and each free allocation of that vintage issued later deducts what it
  can of it in the same transaction (:func:`still_owed`: what is left). For each enterprise in
  surplus: allowances of eligible vintages (up to the year) beyond the banking limit
  (``banking_base_t`` + ``banking_sales_multiple`` × net allowance sales by transfer, when
  ``banking_limited``) are not bankable: they are cancelled, oldest vintage first, with an entry of kind
  ``cancel`` into ``SYS-CANCELLATION``; the banked ones stay in the account and remain eligible for
  later years. A closed year accepts no more surrenders and cannot be closed again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accounting.compliance import (
    BankingDecision,
    ComplianceAssessment,
    ComplianceError,
    ComplianceRules,
    Surrendered,
    assess_compliance,
    banking_limit_t,
    ccer_cap_t,
    check_surrender,
    obligation_t,
    penalty_price_month,
    surrender_deadline,
    take_oldest_first,
    vintages_up_to,
    zone_compliance_report,
)
from accounting.four_eyes import APPROVED, PENDING
from accounting.ledger import (
    ALLOWANCE,
    CANCELLATION,
    CCER,
    CREDIT,
    DEBIT,
    FIRST_VINTAGE,
    FREEZE,
    LAST_VINTAGE,
    PLEDGE,
    RETIREMENT,
    LedgerError,
    allowance_code,
    parse_instrument,
    transfer_entry,
)
from accounting.review import Actor
from api.services import approvals
from api.services import ledger as ledger_service
from api.services import prices as price_service
from api.store import audit
from api.store import ledger as repository
from api.store.schema import (
    AllocationRow,
    ApprovalRow,
    AuctionBidRow,
    AuctionRow,
    EncumbranceRow,
    Enterprise,
    JournalEntryRow,
    LedgerAccount,
    PeriodReview,
    PostingRow,
    ReferencePrice,
    VerifiedEmissions,
)
from pipelines.settings import Settings

CLOSE_KIND = "compliance_close"
NOT_LOCKED = "not_locked"


# ---------------------------------------------------------------------------------------------
# The zone's compliance policy (from the settings; frozen into a close proposal)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The configurable compliance rules of the zone."""

    ccer_cap_share: Decimal
    penalty_multiple: Decimal
    deadline_month_day: str
    banking_limited: bool
    banking_base_t: int
    banking_sales_multiple: Decimal

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(ccer_cap_share=settings.ccer_cap_share, penalty_multiple=settings.penalty_multiple,
                   deadline_month_day=settings.compliance_deadline, banking_limited=settings.banking_limited,
                   banking_base_t=settings.banking_base_t, banking_sales_multiple=settings.banking_sales_multiple)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Policy:
        return cls(ccer_cap_share=Decimal(payload["ccer_cap_share"]),
                   penalty_multiple=Decimal(payload["penalty_multiple"]),
                   deadline_month_day=str(payload["deadline_month_day"]),
                   banking_limited=bool(payload["banking_limited"]), banking_base_t=int(payload["banking_base_t"]),
                   banking_sales_multiple=Decimal(payload["banking_sales_multiple"]))

    def to_payload(self) -> dict[str, Any]:
        return {"ccer_cap_share": str(self.ccer_cap_share), "penalty_multiple": str(self.penalty_multiple),
                "deadline_month_day": self.deadline_month_day, "banking_limited": self.banking_limited,
                "banking_base_t": self.banking_base_t, "banking_sales_multiple": str(self.banking_sales_multiple)}

    def deadline(self, year: int) -> date:
        return surrender_deadline(year=year, month_day=self.deadline_month_day)

    def rules(self, *, year: int, banking_limit: int | None = None) -> ComplianceRules:
        return ComplianceRules(compliance_year=year, eligible_vintages=vintages_up_to(year),
                               ccer_cap_share=self.ccer_cap_share, penalty_multiple=self.penalty_multiple,
                               banking_limit_t=banking_limit)


def check_year(year: int) -> int:
    if type(year) is not int or not FIRST_VINTAGE <= year <= LAST_VINTAGE:
        raise ComplianceError(f"unknown compliance year {year!r} (from {FIRST_VINTAGE} to {LAST_VINTAGE})",
                              code="unknown_vintage")
    return year


def deadline_passed(deadline: date) -> bool:
    return price_service.market_today() > deadline


# ---------------------------------------------------------------------------------------------
# Reading the obligation, the holdings and what was surrendered


@dataclass(frozen=True, slots=True, kw_only=True)
class Obligation:
    enterprise_id: str
    year: int
    verified: VerifiedEmissions | None
    obligation_t: int | None

    @property
    def locked(self) -> bool:
        return self.obligation_t is not None


def _latest_verified(session: Session, *, year: int, enterprise_ids: list[str] | None) -> dict[str, VerifiedEmissions]:
    locked = select(PeriodReview.enterprise_id).where(PeriodReview.period == str(year),
                                                      PeriodReview.status == "locked")
    if enterprise_ids is not None:
        locked = locked.where(PeriodReview.enterprise_id.in_(enterprise_ids))
    ids = list(session.scalars(locked))
    latest: dict[str, VerifiedEmissions] = {}
    if not ids:
        return latest
    for row in session.scalars(select(VerifiedEmissions).where(VerifiedEmissions.year == str(year),
                                                               VerifiedEmissions.enterprise_id.in_(ids))
                               .order_by(VerifiedEmissions.version)):
        latest[row.enterprise_id] = row
    return latest


def obligations(session: Session, *, year: int, enterprise_ids: list[str] | None = None) -> dict[str, Obligation]:
    """The obligations of the enterprises whose ``year`` is locked (of ``enterprise_ids``, or all)."""
    return {e: Obligation(enterprise_id=e, year=year, verified=v,
                          obligation_t=obligation_t(verified_co2e_t=v.net_tco2e, emissions_status="locked"))
            for e, v in _latest_verified(session, year=year, enterprise_ids=enterprise_ids).items()}


def obligation_of(session: Session, *, enterprise_id: str, year: int) -> Obligation:
    found = obligations(session, year=year, enterprise_ids=[enterprise_id]).get(enterprise_id)
    return found or Obligation(enterprise_id=enterprise_id, year=year, verified=None, obligation_t=None)


def surrender_reference(enterprise_id: str, year: int) -> str:
    return f"compliance:{enterprise_id}:{year}"


def surrendered_of(session: Session, *, enterprise_id: str, year: int) -> Surrendered:
    """Allowances and CCER retired for this enterprise and year (the surrender entries' retirement legs)."""
    rows = session.execute(
        select(PostingRow.instrument, func.sum(PostingRow.quantity))
        .join(JournalEntryRow, JournalEntryRow.entry_id == PostingRow.entry_id)
        .where(JournalEntryRow.kind == "surrender",
               JournalEntryRow.reference == surrender_reference(enterprise_id, year),
               PostingRow.account_id == ledger_service.system_account_id(RETIREMENT), PostingRow.side == CREDIT)
        .group_by(PostingRow.instrument))
    allowances = ccer = 0
    for instrument, total in rows:
        if instrument == CCER:
            ccer += int(total)
        else:
            allowances += int(total)
    return Surrendered(allowances_t=allowances, ccer_t=ccer)


@dataclass(frozen=True, slots=True, kw_only=True)
class Holding:
    instrument: str
    balance: int
    frozen: int
    pledged: int

    @property
    def available(self) -> int:
        return self.balance - self.frozen - self.pledged


def holdings_of(session: Session, *, account_id: str) -> dict[str, Holding]:
    """Allowances and CCER of an account: balance, frozen, pledged (available = the rest)."""
    balances = repository.balances_of(session, account_id=account_id)
    encumbered: dict[tuple[str, str], int] = defaultdict(int)
    for instrument, kind, total in session.execute(
            select(EncumbranceRow.instrument, EncumbranceRow.kind, func.sum(EncumbranceRow.quantity))
            .where(EncumbranceRow.account_id == account_id, EncumbranceRow.released_at.is_(None))
            .group_by(EncumbranceRow.instrument, EncumbranceRow.kind)):
        encumbered[(instrument, kind)] += int(total)
    codes = set(balances) | {i for i, _ in encumbered}
    wanted = sorted((c for c in codes if c == CCER or parse_instrument(c).kind == ALLOWANCE),
                    key=lambda c: (c == CCER, c))
    return {c: Holding(instrument=c, balance=balances.get(c, 0), frozen=encumbered[(c, FREEZE)],
                       pledged=encumbered[(c, PLEDGE)]) for c in wanted}


def eligible_available(holdings: Mapping[str, Holding], *, year: int) -> dict[str, int]:
    """Available allowances of the vintages eligible for ``year`` (the year and banked earlier ones)."""
    eligible = vintages_up_to(year)
    return {c: h.available for c, h in holdings.items()
            if c != CCER and parse_instrument(c).vintage in eligible and h.available > 0}


def net_allowance_sales_t(session: Session, *, account_id: str) -> int:
    """Allowances the account sent by transfer minus those it received by transfer (any vintage)."""
    rows = session.execute(
        select(PostingRow.side, func.sum(PostingRow.quantity))
        .join(JournalEntryRow, JournalEntryRow.entry_id == PostingRow.entry_id)
        .where(JournalEntryRow.kind == "transfer", PostingRow.account_id == account_id,
               PostingRow.instrument.startswith("CEA-"))
        .group_by(PostingRow.side))
    totals = {side: int(total) for side, total in rows}
    return totals.get(DEBIT, 0) - totals.get(CREDIT, 0)


def _banking_limit(session: Session, policy: Policy, *, account_id: str) -> int | None:
    if not policy.banking_limited:
        return None
    return banking_limit_t(net_sales_t=net_allowance_sales_t(session, account_id=account_id),
                           base_t=policy.banking_base_t, sales_multiple=policy.banking_sales_multiple)


def _require_enterprise(session: Session, enterprise_id: str) -> Enterprise:
    row = session.get(Enterprise, enterprise_id)
    if row is None:
        raise LedgerError(f"enterprise {enterprise_id} is not in the registry", code="enterprise_not_found")
    return row


# ---------------------------------------------------------------------------------------------
# Closing records


def _close_approvals(session: Session, *, year: int, status: str) -> list[ApprovalRow]:
    rows = session.scalars(select(ApprovalRow).where(ApprovalRow.kind == CLOSE_KIND, ApprovalRow.status == status))
    return [r for r in rows if r.payload.get("year") == year]


def closure(session: Session, *, year: int) -> dict[str, Any] | None:
    """What closing ``year`` did (the approved close's result), or None while the year is open."""
    approved = _close_approvals(session, year=year, status=APPROVED)
    return {"approval_id": approved[0].approval_id, **(approved[0].result or {})} if approved else None


def owed_reference(enterprise_id: str, year: int) -> str:
    """The reference of the entries that deduct ``year``'s owed shortfall from later allocations."""
    return f"compliance-owed:{enterprise_id}:{year}"


def still_owed(session: Session, *, year: int) -> dict[str, int]:
    """Per enterprise, the part of ``year``'s shortfall that its close could not deduct and no allocation has since.

    Empty while the year is open. The close records ``owed_t``; each free allocation of ``CEA-<year+1>``
    issued afterwards deducts what it can (``api.services.allocation``), with entries referenced
    :func:`owed_reference`.
    """
    closed = closure(session, year=year)
    owed = {line["enterprise_id"]: int(line["owed_t"]) for line in closed["enterprises"]
            if line.get("owed_t")} if closed else {}
    if not owed:
        return {}
    deducted = dict(session.execute(
        select(JournalEntryRow.reference, func.sum(PostingRow.quantity))
        .join(PostingRow, PostingRow.entry_id == JournalEntryRow.entry_id)
        .where(JournalEntryRow.reference.in_([owed_reference(e, year) for e in owed]), PostingRow.side == DEBIT)
        .group_by(JournalEntryRow.reference)).all())
    left = {e: total - int(deducted.get(owed_reference(e, year), 0)) for e, total in owed.items()}
    return {e: quantity for e, quantity in left.items() if quantity}


# ---------------------------------------------------------------------------------------------
# Surrender


def surrender(session: Session, *, settings: Settings, actor: Actor, enterprise_id: str, year: int,
              instrument: str, quantity: int) -> dict[str, Any]:
    """Retire ``quantity`` of ``instrument`` from the enterprise's compliance account for ``year`` (no commit)."""
    account_id = ledger_service.compliance_account_id(enterprise_id)
    if not ledger_service.owns_account(actor, account_id):
        raise LedgerError(f"{actor.actor_id} does not act for enterprise {enterprise_id}", code="not_own_account")
    check_year(year)
    policy = Policy.from_settings(settings)
    # one surrender of an enterprise at a time: the account row is its lock (post() locks balances only)
    account = session.execute(select(LedgerAccount).where(LedgerAccount.account_id == account_id)
                              .with_for_update()).scalar_one_or_none()
    if account is None:
        raise LedgerError(f"enterprise {enterprise_id} has no compliance account yet", code="unknown_account")
    if closure(session, year=year) is not None:
        raise ComplianceError(f"{year} is closed: surrenders for it are no longer accepted", code="year_closed")
    obligation = obligation_of(session, enterprise_id=enterprise_id, year=year)
    if obligation.obligation_t is None:
        raise ComplianceError(f"{enterprise_id} {year} has no locked verified emissions yet",
                              code="emissions_not_locked")
    before = surrendered_of(session, enterprise_id=enterprise_id, year=year)
    after = check_surrender(rules=policy.rules(year=year), obligation_t=obligation.obligation_t,
                            surrendered=before, instrument=instrument, quantity=quantity)
    ledger_service.ensure_system_accounts(session)
    entry = transfer_entry(entry_id=ledger_service.new_entry_id(), kind="surrender", from_account=account_id,
                           to_account=ledger_service.system_account_id(RETIREMENT), instrument=instrument,
                           quantity=quantity, memo=f"surrender for {year}")
    ledger_service.post(session, entry=entry, actor=actor, reference=surrender_reference(enterprise_id, year))
    return {"entry_id": entry.entry_id, "enterprise_id": enterprise_id, "account_id": account_id, "year": year,
            "instrument": instrument, "quantity": quantity, "obligation_t": obligation.obligation_t,
            "surrendered": _surrendered(after), "remaining_t": obligation.obligation_t - after.total_t}


def _surrendered(value: Surrendered) -> dict[str, int]:
    return {"allowances_t": value.allowances_t, "ccer_t": value.ccer_t, "total_t": value.total_t}


# ---------------------------------------------------------------------------------------------
# Assessment of one enterprise-year (shared by the views and the close)


@dataclass(frozen=True, slots=True, kw_only=True)
class Prices:
    latest: dict[str, ReferencePrice]
    penalty_month: str
    penalty_average_fen: int | None

    @classmethod
    def load(cls, session: Session, *, deadline: date) -> Prices:
        month = penalty_price_month(deadline)
        return cls(latest=price_service.latest_prices(session), penalty_month=month,
                   penalty_average_fen=price_service.month_average_allowance_price_fen(session, month=month))


def _plan_line(session: Session, policy: Policy, prices: Prices, *, obligation: Obligation,
               passed: bool) -> dict[str, Any]:
    """One enterprise's figures and, after the deadline, what closing the year would post."""
    year, enterprise_id = obligation.year, obligation.enterprise_id
    assert obligation.obligation_t is not None  # noqa: S101 - callers pass locked years only
    account_id = ledger_service.compliance_account_id(enterprise_id)
    holdings = holdings_of(session, account_id=account_id)
    eligible = eligible_available(holdings, year=year)
    limit = _banking_limit(session, policy, account_id=account_id)
    surrendered = surrendered_of(session, enterprise_id=enterprise_id, year=year)
    assessment = assess_compliance(
        enterprise_id=enterprise_id, rules=policy.rules(year=year, banking_limit=limit),
        obligation_t=obligation.obligation_t, surrendered=surrendered, eligible_holdings_t=sum(eligible.values()),
        deadline_passed=passed and prices.penalty_average_fen is not None,
        previous_month_average_price_fen=prices.penalty_average_fen)
    line: dict[str, Any] = {
        "enterprise_id": enterprise_id, "status": assessment.status, "obligation_t": assessment.obligation_t,
        "surrendered_t": surrendered.total_t, "shortfall_t": assessment.shortfall_t,
        "surplus_t": assessment.surplus_t, "penalty_estimate_fen": assessment.penalty_estimate_fen,
        "deduction_instrument": None, "deducted_t": 0, "owed_t": 0, "banking_limit_t": limit,
        "banked_t": assessment.banking.banked_t, "cancelled": [], "cancelled_t": 0}
    if assessment.next_year_deduction_t and year < LAST_VINTAGE:
        code = allowance_code(year + 1)
        held = holdings.get(code)
        takes, owed = take_oldest_first(wanted_t=assessment.next_year_deduction_t,
                                        available={code: max(held.available, 0) if held else 0})
        line.update(deduction_instrument=code, deducted_t=sum(t.quantity for t in takes), owed_t=owed)
    elif assessment.next_year_deduction_t:
        line.update(owed_t=assessment.next_year_deduction_t)
    if passed and assessment.banking.not_bankable_t:
        takes, _ = take_oldest_first(wanted_t=assessment.banking.not_bankable_t, available=eligible)
        line.update(cancelled=[{"instrument": t.instrument, "quantity": t.quantity} for t in takes],
                    cancelled_t=sum(t.quantity for t in takes))
    return line


# ---------------------------------------------------------------------------------------------
# The balance view and the zone report


def _price_of(row: ReferencePrice | None) -> dict[str, Any] | None:
    return None if row is None else {"instrument": row.instrument, "day": row.day, "price_fen": row.price_fen}


def _free_allocation(session: Session, *, enterprise_id: str, year: int) -> dict[str, int]:
    rows = session.execute(select(AllocationRow.stage, func.sum(AllocationRow.quantity))
                           .where(AllocationRow.enterprise_id == enterprise_id,
                                  AllocationRow.instrument == allowance_code(year),
                                  AllocationRow.stage.in_(("pre", "true_up")))
                           .group_by(AllocationRow.stage))
    stages = {stage: int(total) for stage, total in rows}
    return {"pre_t": stages.get("pre", 0), "true_up_t": stages.get("true_up", 0),
            "total_t": stages.get("pre", 0) + stages.get("true_up", 0)}


def _paid_allocation(session: Session, *, account_id: str, year: int) -> dict[str, int]:
    """Allowances of the year bought at auction: settled into the account, and their cost at clearing prices."""
    code = allowance_code(year)
    settled = session.scalar(
        select(func.coalesce(func.sum(PostingRow.quantity), 0))
        .join(JournalEntryRow, JournalEntryRow.entry_id == PostingRow.entry_id)
        .where(JournalEntryRow.kind == "auction_settle", PostingRow.account_id == account_id,
               PostingRow.instrument == code, PostingRow.side == CREDIT)) or 0
    cost = 0
    for filled, result in session.execute(
            select(AuctionBidRow.filled, AuctionRow.result).join(AuctionRow, AuctionRow.auction_id ==
                                                                 AuctionBidRow.auction_id)
            .where(AuctionBidRow.account_id == account_id, AuctionRow.instrument == code, AuctionBidRow.filled > 0,
                   AuctionRow.status == "settled")):
        price = (result or {}).get("clearing_price_fen")
        if isinstance(price, int):
            cost += int(filled) * price
    return {"quantity_t": int(settled), "cost_fen": cost}


def balance_view(session: Session, *, settings: Settings, enterprise_id: str, year: int) -> dict[str, Any]:
    """Item 7: where an enterprise stands for a year, in tonnes and fen."""
    check_year(year)
    enterprise = _require_enterprise(session, enterprise_id)
    policy = Policy.from_settings(settings)
    deadline = policy.deadline(year)
    passed = deadline_passed(deadline)
    prices = Prices.load(session, deadline=deadline)
    account_id = ledger_service.compliance_account_id(enterprise_id)
    holdings = holdings_of(session, account_id=account_id)
    surrendered = surrendered_of(session, enterprise_id=enterprise_id, year=year)
    obligation = obligation_of(session, enterprise_id=enterprise_id, year=year)
    eligible = vintages_up_to(year)
    year_price = price_service.latest_allowance_price(prices.latest, vintage=year)
    held = []
    for code, h in holdings.items():
        price = prices.latest.get(code)
        held.append({"instrument": code, "vintage": parse_instrument(code).vintage,
                     "eligible": code == CCER or parse_instrument(code).vintage in eligible,
                     "balance": h.balance, "frozen": h.frozen, "pledged": h.pledged, "available": h.available,
                     "price": _price_of(price), "value_fen": h.balance * price.price_fen if price else None})
    view: dict[str, Any] = {
        "enterprise_id": enterprise_id, "name": enterprise.name, "year": year, "account_id": account_id,
        "deadline": deadline.isoformat(), "deadline_passed": passed,
        "verified_emissions": None, "obligation_t": obligation.obligation_t,
        "free_allocation": _free_allocation(session, enterprise_id=enterprise_id, year=year),
        "paid_allocation": _paid_allocation(session, account_id=account_id, year=year),
        "holdings": held, "surrendered": _surrendered(surrendered),
        "price": _price_of(year_price), "penalty_price_month": prices.penalty_month,
        "penalty_average_price_fen": prices.penalty_average_fen, "closed": None, "still_owed_t": None}
    if not obligation.locked or obligation.verified is None:
        return {**view, "status": NOT_LOCKED, "offsets": None, "eligible_available_t": None,
                "net_position_t": None, "shortfall_t": None, "shortfall_value_fen": None, "uncovered_t": None,
                "uncovered_value_fen": None, "penalty_estimate_fen": None}
    assert obligation.obligation_t is not None  # noqa: S101 - locked
    line = _plan_line(session, policy, prices, obligation=obligation, passed=passed)
    cap = ccer_cap_t(obligation_t=obligation.obligation_t, share=policy.ccer_cap_share)
    ccer_available = max(holdings[CCER].available, 0) if CCER in holdings else 0
    usable_ccer = min(max(cap - surrendered.ccer_t, 0), ccer_available, line["shortfall_t"])
    allowances_available = sum(eligible_available(holdings, year=year).values())
    net = allowances_available + usable_ccer - line["shortfall_t"]
    price_fen = year_price.price_fen if year_price else None
    closed = closure(session, year=year)
    return {**view, "status": line["status"],
            "verified_emissions": {"net_tco2e": obligation.verified.net_tco2e, "version": obligation.verified.version,
                                   "locked_at": obligation.verified.locked_at},
            "offsets": {"cap_t": cap, "surrendered_t": surrendered.ccer_t, "held_available_t": ccer_available,
                        "usable_t": usable_ccer},
            "eligible_available_t": allowances_available, "net_position_t": net,
            "shortfall_t": line["shortfall_t"],
            "shortfall_value_fen": line["shortfall_t"] * price_fen if price_fen is not None else None,
            "uncovered_t": max(-net, 0),
            "uncovered_value_fen": max(-net, 0) * price_fen if price_fen is not None else None,
            "penalty_estimate_fen": line["penalty_estimate_fen"],
            "closed": next((e for e in closed["enterprises"] if e["enterprise_id"] == enterprise_id), None)
            if closed else None,
            "still_owed_t": still_owed(session, year=year).get(enterprise_id, 0) if closed else None}


def _zone_plan(session: Session, policy: Policy, *, year: int) -> tuple[Prices, bool, list[dict[str, Any]]]:
    deadline = policy.deadline(year)
    passed = deadline_passed(deadline)
    prices = Prices.load(session, deadline=deadline)
    lines = [_plan_line(session, policy, prices, obligation=o, passed=passed)
             for _, o in sorted(obligations(session, year=year).items())]
    return prices, passed, lines


def zone_report(session: Session, *, settings: Settings, year: int) -> dict[str, Any]:
    """Every enterprise with an obligation for ``year``: compliant, in deficit or in surplus, and the totals."""
    check_year(year)
    policy = Policy.from_settings(settings)
    prices, passed, lines = _zone_plan(session, policy, year=year)
    assessments = [_as_assessment(line, year=year) for line in lines]
    report = zone_compliance_report(assessments, year=year)
    names = dict(session.execute(select(Enterprise.enterprise_id, Enterprise.name)).all())
    locked = {line["enterprise_id"] for line in lines}
    return {"year": year, "deadline": policy.deadline(year).isoformat(), "deadline_passed": passed,
            "penalty_price_month": prices.penalty_month, "penalty_average_price_fen": prices.penalty_average_fen,
            "closed": closure(session, year=year) is not None,
            "compliant": list(report.compliant), "deficit": list(report.deficit), "surplus": list(report.surplus),
            "not_locked": sorted(e for e in names if e not in locked),
            "totals": {"obligation_t": report.obligation_t, "surrendered_t": report.surrendered_t,
                       "shortfall_t": report.shortfall_t, "surplus_t": report.surplus_t,
                       "penalty_estimate_fen": report.penalty_estimate_fen},
            "enterprises": [{**_report_line(line), "name": names.get(line["enterprise_id"], "")} for line in lines]}


def _report_line(line: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("enterprise_id", "status", "obligation_t", "surrendered_t", "shortfall_t", "surplus_t",
            "penalty_estimate_fen")
    return {k: line[k] for k in keys}


def _as_assessment(line: Mapping[str, Any], *, year: int) -> ComplianceAssessment:
    """The assessment behind a plan line (the report only needs these fields)."""
    return ComplianceAssessment(
        enterprise_id=line["enterprise_id"], year=year, obligation_t=line["obligation_t"],
        surrendered=Surrendered(allowances_t=line["surrendered_t"]), shortfall_t=line["shortfall_t"],
        surplus_t=line["surplus_t"], status=line["status"], deadline_passed=False,
        penalty_estimate_fen=line["penalty_estimate_fen"], next_year_deduction_t=0,
        banking=BankingDecision(banked_t=line["banked_t"], not_bankable_t=line["cancelled_t"]))


# ---------------------------------------------------------------------------------------------
# Closing a year (four eyes)


def _close_payload(session: Session, policy: Policy, *, year: int) -> dict[str, Any]:
    deadline = policy.deadline(year)
    if not deadline_passed(deadline):
        raise ComplianceError(f"the {year} deadline is {deadline.isoformat()}: a year is closed after it",
                              code="deadline_not_passed")
    if closure(session, year=year) is not None:
        raise ComplianceError(f"{year} is already closed", code="year_already_closed")
    prices, _, lines = _zone_plan(session, policy, year=year)
    if prices.penalty_average_fen is None and any(line["shortfall_t"] for line in lines):
        raise ComplianceError(f"no allowance price with volume recorded in {prices.penalty_month}: the penalty "
                              "estimate needs it (record it with POST /v1/prices)", code="price_required")
    return {"year": year, "rules": policy.to_payload(), "deadline": deadline.isoformat(),
            "penalty_price_month": prices.penalty_month, "penalty_average_price_fen": prices.penalty_average_fen,
            "enterprises": lines}


def propose_close(session: Session, *, settings: Settings, actor: Actor, year: int) -> dict[str, Any]:
    """Propose closing ``year`` with the plan it would carry out (no commit: the caller's run_once commits)."""
    check_year(year)
    pending = [r for r in _close_approvals(session, year=year, status=PENDING)
               if r.expires_at > datetime.now(UTC)]
    if pending:
        raise ComplianceError(f"closing {year} is already proposed ({pending[0].approval_id})",
                              code="close_pending")
    payload = _close_payload(session, Policy.from_settings(settings), year=year)
    return approvals.propose(session, kind=CLOSE_KIND, payload=payload, actor=actor, commit=False)


@approvals.executor(CLOSE_KIND)
def execute_close(session: Session, payload: Mapping[str, Any], approved: approvals.Approved) -> dict[str, Any]:
    """Carry out an approved close: the same plan, recomputed now, or ``close_plan_changed``."""
    year = int(payload["year"])
    policy = Policy.from_payload(payload["rules"])
    now = _close_payload(session, policy, year=year)
    if now != dict(payload):
        raise ComplianceError(f"the holdings or prices of {year} changed since the close was proposed; "
                              "propose closing again", code="close_plan_changed")
    ledger_service.ensure_system_accounts(session)
    cancellation = ledger_service.system_account_id(CANCELLATION)
    done: list[dict[str, Any]] = []
    for line in now["enterprises"]:
        enterprise_id = line["enterprise_id"]
        account_id = ledger_service.compliance_account_id(enterprise_id)
        entries: list[str] = []
        if line["deducted_t"]:
            entry = transfer_entry(entry_id=ledger_service.new_entry_id(), kind="deduction",
                                   from_account=account_id, to_account=cancellation,
                                   instrument=line["deduction_instrument"], quantity=line["deducted_t"],
                                   memo=f"{year} shortfall of {line['shortfall_t']} t deducted from next year")
            ledger_service.post(session, entry=entry, actor=approved.approver,
                                reference=f"compliance-close:{enterprise_id}:{year}")
            entries.append(entry.entry_id)
        for take in line["cancelled"]:
            entry = transfer_entry(entry_id=ledger_service.new_entry_id(), kind="cancel", from_account=account_id,
                                   to_account=cancellation, instrument=take["instrument"],
                                   quantity=take["quantity"], memo=f"beyond the {year} banking limit")
            ledger_service.post(session, entry=entry, actor=approved.approver,
                                reference=f"compliance-close:{enterprise_id}:{year}")
            entries.append(entry.entry_id)
        done.append({**line, "entry_ids": entries})
    result = {"year": year, "proposed_by": approved.proposer.actor_id, "approved_by": approved.approver.actor_id,
              "penalty_price_month": now["penalty_price_month"],
              "penalty_average_price_fen": now["penalty_average_price_fen"], "enterprises": done}
    audit.append(session, actor=approved.approver, action="compliance.closed", target=f"compliance/{year}",
                 after=result, detail={"approval_id": approved.approval_id})
    return result

"""The carbon-rights ledger rules (issue 5 §1, §4, §5): integer quantities, balanced entries, reversals,
encumbrances, retirement, and the conservation and rebuild invariants under random operation sequences."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from accounting.errors import AccountingError
from accounting.ledger import (
    SOURCE_KINDS,
    Account,
    Encumbrance,
    JournalEntry,
    LedgerError,
    LedgerState,
    Posting,
    check_quantity,
    derive_balances,
    instrument_totals,
    parse_instrument,
    pledge_value_fen,
    reversing_entry,
    transfer_entry,
)

OFFICERS = frozenset({"officer-1"})


def zone() -> LedgerState:
    return LedgerState.empty().with_accounts(
        Account(account_id="issuance", kind="issuance"),
        Account(account_id="bank", kind="bank"),
        Account(account_id="retirement", kind="retirement"),
        Account(account_id="cancellation", kind="cancellation"),
        Account(account_id="auction", kind="auction"),
        Account(account_id="fees", kind="fees"),
        Account(account_id="e1", kind="compliance", owner_id="E1"),
        Account(account_id="e2", kind="compliance", owner_id="E2"),
        Account(account_id="t1", kind="trader", owner_id="T1"),
        Account(account_id="lender", kind="lender", owner_id="BANK-A"),
    )


def allocated(quantity: int = 1000, *, account: str = "e1", instrument: str = "CEA-2025") -> LedgerState:
    return zone().post(transfer_entry(entry_id="alloc", kind="allocate", from_account="issuance",
                                      to_account=account, instrument=instrument, quantity=quantity))


def code_of(error: pytest.ExceptionInfo[AccountingError]) -> str:
    return error.value.code


# --- instruments and quantities ------------------------------------------------------------------


def test_instruments_carry_their_kind_unit_and_vintage() -> None:
    assert parse_instrument("CEA-2025").vintage == 2025
    assert parse_instrument("CEA-2025").unit == "t"
    assert parse_instrument("CCER").kind == "offset"
    assert [parse_instrument(p).unit for p in ("SO2", "NOX", "COD", "NH3N")] == ["kg"] * 4
    assert parse_instrument("CNY").unit == "fen"


@pytest.mark.parametrize(("code", "expected"), [
    ("CEA", "unknown_instrument"), ("cea-2025", "unknown_instrument"), ("EUA", "unknown_instrument"),
    ("NOx", "unknown_instrument"), ("CEA-1999", "unknown_vintage"), ("CEA-2099", "unknown_vintage"),
])
def test_unknown_instruments_and_vintages_are_refused(code: str, expected: str) -> None:
    with pytest.raises(LedgerError) as error:
        parse_instrument(code)
    assert code_of(error) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (2.5, "fractional_quantity"), (Decimal("0.5"), "fractional_quantity"), (Fraction(1, 2), "fractional_quantity"),
    (3.0, "not_an_integer"), (Decimal("3"), "not_an_integer"), (True, "not_an_integer"), ("5", "not_an_integer"),
    (None, "not_an_integer"), (float("nan"), "not_an_integer"), (Decimal("Infinity"), "not_an_integer"),
    (-1, "negative_quantity"), (0, "zero_quantity"),
])
def test_only_positive_ints_are_quantities(value: object, expected: str) -> None:
    with pytest.raises(LedgerError) as error:
        check_quantity(value, unit="t")
    assert code_of(error) == expected


def test_zero_is_allowed_where_asked_and_ints_pass_through() -> None:
    assert check_quantity(0, allow_zero=True) == 0
    assert check_quantity(7) == 7


def test_a_posting_refuses_a_fractional_tonne() -> None:
    with pytest.raises(LedgerError) as error:
        Posting(account_id="e1", instrument="CEA-2025", side="debit", quantity=1.5)  # type: ignore[arg-type]
    assert code_of(error) == "fractional_quantity"


# --- entries -------------------------------------------------------------------------------------


def test_an_entry_must_balance_per_instrument() -> None:
    with pytest.raises(LedgerError) as error:
        JournalEntry(entry_id="j", kind="transfer", postings=(
            Posting(account_id="e1", instrument="CEA-2025", side="debit", quantity=10),
            Posting(account_id="e2", instrument="CEA-2025", side="credit", quantity=9)))
    assert code_of(error) == "unbalanced_entry"
    with pytest.raises(LedgerError) as error:  # 10 t of one vintage never pay for 10 t of another
        JournalEntry(entry_id="j", kind="transfer", postings=(
            Posting(account_id="e1", instrument="CEA-2025", side="debit", quantity=10),
            Posting(account_id="e2", instrument="CEA-2024", side="credit", quantity=10)))
    assert code_of(error) == "unbalanced_entry"


def test_a_one_legged_entry_is_unbalanced() -> None:
    with pytest.raises(LedgerError) as error:
        JournalEntry(entry_id="j", kind="issue", postings=(
            Posting(account_id="e1", instrument="CCER", side="credit", quantity=10),))
    assert code_of(error) == "unbalanced_entry"


def test_a_delivery_versus_payment_entry_balances_both_instruments() -> None:
    state = allocated(100, account="e1").post(transfer_entry(
        entry_id="cash", kind="deposit", from_account="bank", to_account="e2", instrument="CNY", quantity=980_000))
    dvp = JournalEntry(entry_id="dvp", kind="transfer", postings=(
        Posting(account_id="e1", instrument="CEA-2025", side="debit", quantity=100),
        Posting(account_id="e2", instrument="CEA-2025", side="credit", quantity=100),
        Posting(account_id="e2", instrument="CNY", side="debit", quantity=980_000),
        Posting(account_id="e1", instrument="CNY", side="credit", quantity=980_000)))
    after = state.post(dvp)
    assert after.balance(account_id="e2", instrument="CEA-2025") == 100
    assert after.balance(account_id="e1", instrument="CNY") == 980_000
    assert after.balance(account_id="e2", instrument="CNY") == 0


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"account_id": "x", "kind": "compliance"}, "owner_required"),
    ({"account_id": "x", "kind": "wallet", "owner_id": "E"}, "unknown_account_kind"),
    ({"account_id": "", "kind": "issuance"}, "unknown_account"),
])
def test_accounts_are_checked(kwargs: dict[str, str], expected: str) -> None:
    with pytest.raises(LedgerError) as error:
        Account(**kwargs)
    assert code_of(error) == expected


def test_an_account_id_is_opened_once() -> None:
    with pytest.raises(LedgerError) as error:
        zone().with_accounts(Account(account_id="e1", kind="trader", owner_id="T9"))
    assert code_of(error) == "duplicate_account"


# --- posting rules -------------------------------------------------------------------------------


def test_allocation_moves_units_from_issuance_which_goes_negative() -> None:
    state = allocated(1000)
    assert state.balance(account_id="e1", instrument="CEA-2025") == 1000
    assert state.balance(account_id="issuance", instrument="CEA-2025") == -1000
    assert instrument_totals(state.balances) == {"CEA-2025": 0}


@pytest.mark.parametrize(("entry", "expected"), [
    (transfer_entry(entry_id="x", kind="transfer", from_account="e1", to_account="nobody", instrument="CEA-2025",
                    quantity=1), "unknown_account"),
    (transfer_entry(entry_id="x", kind="transfer", from_account="e1", to_account="e2", instrument="CEA-2025",
                    quantity=1001), "insufficient_available"),
    (transfer_entry(entry_id="x", kind="transfer", from_account="e2", to_account="e1", instrument="CEA-2025",
                    quantity=1), "insufficient_available"),
    (transfer_entry(entry_id="x", kind="deposit", from_account="issuance", to_account="e1", instrument="CNY",
                    quantity=1), "instrument_not_allowed"),
    (transfer_entry(entry_id="x", kind="issue", from_account="bank", to_account="e1", instrument="CEA-2025",
                    quantity=1), "instrument_not_allowed"),
    (transfer_entry(entry_id="alloc", kind="transfer", from_account="e1", to_account="e2", instrument="CEA-2025",
                    quantity=1), "duplicate_entry"),
])
def test_refused_entries_change_nothing(entry: JournalEntry, expected: str) -> None:
    state = allocated(1000)
    before = (dict(state.balances), state.journal)
    with pytest.raises(LedgerError) as error:
        state.post(entry)
    assert code_of(error) == expected
    assert (dict(state.balances), state.journal) == before


def test_only_the_owner_acts_on_an_account() -> None:
    state = zone()
    assert state.check_holder(account_id="e1", acting_for=frozenset({"E1"})).owner_id == "E1"
    for account_id, acting_for in (("e2", {"E1"}), ("retirement", {"E1"}), ("e1", set())):
        with pytest.raises(LedgerError) as error:
            state.check_holder(account_id=account_id, acting_for=frozenset(acting_for))
        assert code_of(error) == "not_own_account"


def test_a_transfer_needs_two_accounts() -> None:
    with pytest.raises(LedgerError) as error:
        transfer_entry(entry_id="x", kind="transfer", from_account="e1", to_account="e1", instrument="CCER",
                       quantity=1)
    assert code_of(error) == "same_account"


def test_an_unknown_entry_kind_is_refused() -> None:
    with pytest.raises(LedgerError) as error:
        transfer_entry(entry_id="x", kind="gift", from_account="e1", to_account="e2", instrument="CCER", quantity=1)
    assert code_of(error) == "unknown_entry_kind"


def test_cash_enters_through_the_bank_account() -> None:
    state = zone().post(transfer_entry(entry_id="d", kind="deposit", from_account="bank", to_account="t1",
                                       instrument="CNY", quantity=5_000_00))
    assert state.available(account_id="t1", instrument="CNY") == 500_00 * 10
    assert state.balance(account_id="bank", instrument="CNY") == -500_000


# --- retirement and cancellation -----------------------------------------------------------------


def surrendered(quantity: int = 400) -> LedgerState:
    return allocated(1000).post(transfer_entry(entry_id="s1", kind="surrender", from_account="e1",
                                               to_account="retirement", instrument="CEA-2025", quantity=quantity))


def test_surrendered_units_never_move_again() -> None:
    state = surrendered(400)
    assert state.balance(account_id="retirement", instrument="CEA-2025") == 400
    with pytest.raises(LedgerError) as error:
        state.post(transfer_entry(entry_id="back", kind="transfer", from_account="retirement", to_account="e1",
                                  instrument="CEA-2025", quantity=1))
    assert code_of(error) == "retired_units_immutable"


def test_a_surrender_cannot_be_reversed() -> None:
    state = surrendered(400)
    original = state.journal[-1]
    with pytest.raises(LedgerError) as error:
        state.post(reversing_entry(original, entry_id="undo"))
    assert code_of(error) == "retired_units_immutable"


def test_cancelled_units_never_move_again() -> None:
    state = allocated(10).post(transfer_entry(entry_id="c", kind="cancel", from_account="e1",
                                              to_account="cancellation", instrument="CEA-2025", quantity=10))
    with pytest.raises(LedgerError) as error:
        state.post(transfer_entry(entry_id="x", kind="transfer", from_account="cancellation", to_account="e1",
                                  instrument="CEA-2025", quantity=10))
    assert code_of(error) == "cancelled_units_immutable"


# --- reversals -----------------------------------------------------------------------------------


def test_a_reversal_restores_the_balances_and_keeps_both_entries() -> None:
    state = allocated(1000)
    wrong = transfer_entry(entry_id="t", kind="transfer", from_account="e1", to_account="e2",
                           instrument="CEA-2025", quantity=300)
    state = state.post(wrong).post(reversing_entry(wrong, entry_id="t-rev", memo="wrong counterparty"))
    assert state.balance(account_id="e1", instrument="CEA-2025") == 1000
    assert state.balance(account_id="e2", instrument="CEA-2025") == 0
    assert [e.entry_id for e in state.journal] == ["alloc", "t", "t-rev"]


def test_an_entry_is_reversed_at_most_once() -> None:
    state = allocated(1000)
    original = state.journal[0]
    state = state.post(reversing_entry(original, entry_id="r1"))
    with pytest.raises(LedgerError) as error:
        state.post(reversing_entry(original, entry_id="r2"))
    assert code_of(error) == "already_reversed"


def test_a_reversal_must_mirror_an_existing_entry() -> None:
    state = allocated(1000)
    ghost = transfer_entry(entry_id="ghost", kind="transfer", from_account="e1", to_account="e2",
                           instrument="CEA-2025", quantity=1)
    with pytest.raises(LedgerError) as error:
        state.post(reversing_entry(ghost, entry_id="r"))
    assert code_of(error) == "unknown_entry"
    tampered = JournalEntry(entry_id="r", kind="reversal", reverses="alloc", postings=(
        Posting(account_id="e1", instrument="CEA-2025", side="debit", quantity=999),
        Posting(account_id="issuance", instrument="CEA-2025", side="credit", quantity=999)))
    with pytest.raises(LedgerError) as error:
        state.post(tampered)
    assert code_of(error) == "reversal_mismatch"


def test_only_a_reversal_names_a_reversed_entry() -> None:
    with pytest.raises(LedgerError) as error:
        JournalEntry(entry_id="x", kind="transfer", reverses="alloc", postings=(
            Posting(account_id="e1", instrument="CCER", side="debit", quantity=1),
            Posting(account_id="e2", instrument="CCER", side="credit", quantity=1)))
    assert code_of(error) == "reversal_mismatch"


# --- encumbrances --------------------------------------------------------------------------------


def freeze(quantity: int, *, encumbrance_id: str = "f1", by: str = "officer-1") -> Encumbrance:
    return Encumbrance(encumbrance_id=encumbrance_id, kind="freeze", account_id="e1", instrument="CEA-2025",
                       quantity=quantity, imposed_by=by)


def pledge(quantity: int, *, consent_by: str | None = "E1", lender: str = "lender") -> Encumbrance:
    return Encumbrance(encumbrance_id="p1", kind="pledge", account_id="e1", instrument="CEA-2025",
                       quantity=quantity, imposed_by="E1", lender_account_id=lender, consent_by=consent_by)


def test_frozen_units_reduce_what_is_available_not_what_is_held() -> None:
    state = allocated(1000).encumber(freeze(600), officer_ids=OFFICERS)
    assert state.balance(account_id="e1", instrument="CEA-2025") == 1000
    assert state.encumbered(account_id="e1", instrument="CEA-2025") == 600
    assert state.available(account_id="e1", instrument="CEA-2025") == 400
    state.post(transfer_entry(entry_id="ok", kind="transfer", from_account="e1", to_account="e2",
                              instrument="CEA-2025", quantity=400))
    for kind, target in (("transfer", "e2"), ("surrender", "retirement")):
        with pytest.raises(LedgerError) as error:
            state.post(transfer_entry(entry_id="x", kind=kind, from_account="e1", to_account=target,
                                      instrument="CEA-2025", quantity=401))
        assert code_of(error) == "units_encumbered"


def test_released_units_move_again() -> None:
    state = allocated(1000).encumber(freeze(1000), officer_ids=OFFICERS).release("f1")
    after = state.post(transfer_entry(entry_id="x", kind="transfer", from_account="e1", to_account="e2",
                                      instrument="CEA-2025", quantity=1000))
    assert after.balance(account_id="e2", instrument="CEA-2025") == 1000


def test_a_pledge_needs_a_lender_and_the_owners_consent() -> None:
    state = allocated(1000)
    pledged = state.encumber(pledge(700))
    assert pledged.available(account_id="e1", instrument="CEA-2025") == 300
    for encumbrance, expected in ((pledge(700, consent_by=None), "consent_required"),
                                  (pledge(700, consent_by="E2"), "consent_required"),
                                  (pledge(700, lender="e2"), "not_a_lender"),
                                  (pledge(700, lender="nowhere"), "unknown_account")):
        with pytest.raises(LedgerError) as error:
            state.encumber(encumbrance)
        assert code_of(error) == expected


@pytest.mark.parametrize(("action", "expected"), [
    (lambda s: s.encumber(freeze(10, by="E1"), officer_ids=OFFICERS), "officer_required"),
    (lambda s: s.encumber(freeze(1001), officer_ids=OFFICERS), "insufficient_available"),
    (lambda s: s.encumber(freeze(10), officer_ids=OFFICERS).encumber(freeze(10), officer_ids=OFFICERS),
     "duplicate_encumbrance"),
    (lambda s: s.release("nope"), "unknown_encumbrance"),
])
def test_encumbrance_rules(action, expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LedgerError) as error:
        action(allocated(1000))
    assert code_of(error) == expected


def test_a_freeze_and_a_pledge_cannot_encumber_the_same_units_twice() -> None:
    state = allocated(1000).encumber(freeze(600), officer_ids=OFFICERS)
    with pytest.raises(LedgerError) as error:
        state.encumber(pledge(401))
    assert code_of(error) == "insufficient_available"


def test_system_accounts_cannot_be_encumbered() -> None:
    state = surrendered(400)
    with pytest.raises(LedgerError) as error:
        state.encumber(Encumbrance(encumbrance_id="f", kind="freeze", account_id="retirement",
                                   instrument="CEA-2025", quantity=1, imposed_by="officer-1"), officer_ids=OFFICERS)
    assert code_of(error) == "not_encumberable"


def test_a_pledge_is_marked_to_market_in_fen() -> None:
    assert pledge_value_fen(quantity=700, price_fen=98_00) == 6_860_000


# --- invariants under random sequences -----------------------------------------------------------

HOLDERS = ("e1", "e2", "t1")
INSTRUMENTS = ("CEA-2024", "CEA-2025", "CCER", "SO2")


class LedgerMachine(RuleBasedStateMachine):
    """Random allocations, transfers, surrenders, freezes, releases and reversals, valid or not.

    A refused operation must leave the state exactly as it was; after every step: every instrument
    sums to zero over all accounts, the stored balances equal those rebuilt from the journal, no
    available quantity is negative, units outside the issuance account equal a model of what was
    issued, and the retirement account never shrinks.
    """

    @initialize()
    def start(self) -> None:
        self.state = zone()
        self.issued: dict[str, int] = dict.fromkeys(INSTRUMENTS, 0)
        self.retired: dict[str, int] = dict.fromkeys(INSTRUMENTS, 0)
        self.counter = 0

    def _next_id(self) -> str:
        self.counter += 1
        return f"j{self.counter}"

    def _try(self, operation) -> bool:  # type: ignore[no-untyped-def]
        before = self.state
        try:
            self.state = operation(self.state)
        except LedgerError:
            assert self.state is before
            return False
        return True

    @rule(to=st.sampled_from(HOLDERS), instrument=st.sampled_from(INSTRUMENTS),
          quantity=st.integers(min_value=1, max_value=500))
    def allocate(self, to: str, instrument: str, quantity: int) -> None:
        entry = transfer_entry(entry_id=self._next_id(), kind="allocate", from_account="issuance", to_account=to,
                               instrument=instrument, quantity=quantity)
        assert self._try(lambda s: s.post(entry))
        self.issued[instrument] += quantity

    @rule(source=st.sampled_from(HOLDERS), destination=st.sampled_from((*HOLDERS, "retirement", "auction")),
          instrument=st.sampled_from(INSTRUMENTS), quantity=st.integers(min_value=1, max_value=600))
    def move(self, source: str, destination: str, instrument: str, quantity: int) -> None:
        if source == destination:
            return
        entry = transfer_entry(entry_id=self._next_id(), kind="transfer", from_account=source,
                               to_account=destination,
                               instrument=instrument, quantity=quantity)
        available = self.state.available(account_id=source, instrument=instrument)
        moved = self._try(lambda s: s.post(entry))
        assert moved == (quantity <= available)
        if moved and destination == "retirement":
            self.retired[instrument] += quantity

    @rule(instrument=st.sampled_from(INSTRUMENTS), quantity=st.integers(min_value=1, max_value=50))
    def take_back_from_retirement(self, instrument: str, quantity: int) -> None:
        entry = transfer_entry(entry_id=self._next_id(), kind="transfer", from_account="retirement",
                               to_account="e1", instrument=instrument, quantity=quantity)
        assert not self._try(lambda s: s.post(entry))

    @rule(account=st.sampled_from(("e1", "e2")), instrument=st.sampled_from(INSTRUMENTS),
          quantity=st.integers(min_value=1, max_value=300))
    def freeze(self, account: str, instrument: str, quantity: int) -> None:
        encumbrance = Encumbrance(encumbrance_id=self._next_id(), kind="freeze", account_id=account,
                                  instrument=instrument, quantity=quantity, imposed_by="officer-1")
        available = self.state.available(account_id=account, instrument=instrument)
        assert self._try(lambda s: s.encumber(encumbrance, officer_ids=OFFICERS)) == (quantity <= available)

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if self.state.encumbrances:
            encumbrance_id = data.draw(st.sampled_from(sorted(self.state.encumbrances)))
            assert self._try(lambda s: s.release(encumbrance_id))

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        candidates = [e for e in self.state.journal if e.kind != "reversal"]
        if not candidates:
            return
        original = data.draw(st.sampled_from(candidates))
        if self._try(lambda s: s.post(reversing_entry(original, entry_id=self._next_id()))):
            assert all(p.account_id != "retirement" for p in original.postings)
            if original.kind == "allocate":
                self.issued[original.postings[0].instrument] -= original.postings[0].quantity

    @invariant()
    def every_instrument_sums_to_zero(self) -> None:
        assert all(total == 0 for total in instrument_totals(self.state.balances).values())

    @invariant()
    def balances_rebuild_from_the_journal(self) -> None:
        assert derive_balances(self.state.journal) == dict(self.state.balances)

    @invariant()
    def nothing_available_below_zero(self) -> None:
        for account_id, account in self.state.accounts.items():
            if account.kind in SOURCE_KINDS:
                continue
            for instrument in INSTRUMENTS:
                assert self.state.available(account_id=account_id, instrument=instrument) >= 0

    @invariant()
    def units_outside_issuance_change_only_by_issuance(self) -> None:
        for instrument in INSTRUMENTS:
            outside = sum(v for (account_id, i), v in self.state.balances.items()
                          if i == instrument and account_id != "issuance")
            assert outside == self.issued[instrument]

    @invariant()
    def retirement_only_grows(self) -> None:
        for instrument in INSTRUMENTS:
            assert self.state.balance(account_id="retirement", instrument=instrument) == self.retired[instrument]


LedgerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
test_ledger_invariants_hold_under_random_operations = LedgerMachine.TestCase

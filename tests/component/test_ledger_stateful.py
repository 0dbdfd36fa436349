"""Hypothesis stateful test of the ledger's services on a real database (SQLite and PostgreSQL).

Random sequences of issuance, deposits (four eyes), transfers, surrenders, freezes, pledges, releases
(four eyes) and reversals (four eyes), valid and invalid, go through the service layer; a pure ``LedgerState``
model of ``accounting.ledger`` predicts each outcome. After every step: a refused operation changed
nothing, the stored balances are the journal's (``verify``), every instrument is conserved, no
available balance is below zero, and the database agrees with the model.

Each example works on accounts of its own (a fresh prefix), since the journal is append-only and
cannot be wiped between examples; the system accounts are shared, so they are compared as changes
from the example's start.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from accounting.errors import AccountingError
from accounting.ledger import (
    BANK,
    CNY,
    FREEZE,
    ISSUANCE,
    LENDER,
    PLEDGE,
    RETIREMENT,
    TRADER,
    Account,
    Encumbrance,
    JournalEntry,
    LedgerError,
    LedgerState,
    check_quantity,
    reversing_entry,
    transfer_entry,
)
from accounting.review import Actor
from api.services import approvals, encumbrances, transfers
from api.services.ledger import ensure_system_accounts, new_entry_id, open_account, post, system_account_id, verify
from api.store import ledger as repository
from api.store.db import session_factory
from api.store.schema import EncumbranceRow, JournalEntryRow
from tests.conftest import zone_settings

OFFICER = Actor(actor_id="officer-li", role="officer")
OFFICER_2 = Actor(actor_id="officer-wang", role="officer")
INSTRUMENTS = ("CEA-2025", "CCER", CNY)
HOLDERS = ("A", "B", "C")
#: Trusted (from, to) pairs; C → B is deliberately not trusted.
TRUSTED = (("A", "B"), ("B", "A"), ("B", "C"), ("C", "A"), ("A", "C"))
SYSTEM = {kind: system_account_id(kind) for kind in (ISSUANCE, BANK, RETIREMENT)}
QUANTITIES = st.one_of(st.integers(min_value=-3, max_value=400), st.sampled_from([2.5, 3.0, 0.5]))
#: Mostly None (a valid amount is used); otherwise an invalid one.
BAD_QUANTITIES = st.one_of(st.none(), st.none(), st.none(), st.none(), st.sampled_from([2.5, 3.0, 0, -7]))
_examples = itertools.count()
#: The codes of the refusals checked, over the whole run (the run must have drawn invalid operations too).
REFUSALS: Counter[str] = Counter()


def predict(model: LedgerState, entry_of: Any) -> tuple[LedgerState | None, str | None]:
    """The model after the operation, or the code of the rule that refuses it."""
    try:
        return entry_of(model), None
    except LedgerError as err:
        return None, err.code


class LedgerMachine(RuleBasedStateMachine):
    sessions: sessionmaker[Session]

    def __init__(self) -> None:
        super().__init__()
        self.session = self.sessions()
        prefix = f"X{next(_examples)}"
        self.ids = {h: f"{prefix}-{h}" for h in HOLDERS}
        self.lender = f"{prefix}-L"
        self.holders = {h: Actor(actor_id=f"holder-{h}", role="trader", account_ids=frozenset({self.ids[h]}))
                        for h in HOLDERS}
        ensure_system_accounts(self.session)
        self.session.commit()
        self.base = {key: value for key, value in repository.stored_balances(self.session).items()
                     if key[0] in SYSTEM.values()}
        accounts = [Account(account_id=a, kind=k, owner_id=o) for a, k, o in (
            *((a, "issuance" if a == SYSTEM[ISSUANCE] else "bank" if a == SYSTEM[BANK] else "retirement", None)
              for a in SYSTEM.values()),
            *((self.ids[h], TRADER, f"holder-{h}") for h in HOLDERS), (self.lender, LENDER, "lender"))]
        self.model = LedgerState.empty().with_accounts(*accounts)
        self.entries: list[JournalEntry] = []

    @initialize()
    def open_accounts(self) -> None:
        for account in self.model.accounts.values():
            if account.kind in (TRADER, LENDER):
                open_account(self.session, actor=OFFICER, account_id=account.account_id, kind=account.kind,
                             owner_id=account.owner_id or "", name=account.account_id)
        for source, target in TRUSTED:
            transfers.add_counterparty(self.session, actor=self.holders[source], account_id=self.ids[source],
                                       counterparty_id=self.ids[target], delay=timedelta(0))
        self.session.commit()
        for holder in HOLDERS:  # a starting endowment, so that most drawn movements are possible
            for instrument, quantity in (("CEA-2025", 500), ("CCER", 100)):
                self.issue(holder, instrument, quantity)

    # --- helpers ------------------------------------------------------------------------------------------

    def _snapshot(self) -> tuple[Any, ...]:
        return (repository.stored_balances(self.session),
                self.session.scalar(select(func.count()).select_from(JournalEntryRow)),
                sorted(self.session.scalars(select(EncumbranceRow.encumbrance_id)
                                            .where(EncumbranceRow.released_at.is_(None)))))

    def _refused(self, code: str, operation: Any) -> None:
        before = self._snapshot()
        try:
            operation()
        except AccountingError as err:
            assert err.code == code, (err.code, code)
            REFUSALS[code] += 1
        else:
            raise AssertionError(f"expected a refusal with {code}")
        finally:
            self.session.rollback()
        assert self._snapshot() == before

    def _approve(self, pending: dict[str, Any]) -> dict[str, Any]:
        approval = pending["approval"]
        decided = approvals.decide(self.session, approval_id=approval["approval_id"], decision="approve",
                                   payload_digest=approval["payload_digest"], actor=OFFICER_2)
        assert decided["status"] == "approved"
        result: dict[str, Any] = decided["result"]
        return result

    def _record(self, entry: JournalEntry) -> None:
        self.model = self.model.post(entry)
        self.entries.append(entry)

    # --- rules --------------------------------------------------------------------------------------------

    @rule(holder=st.sampled_from(HOLDERS), instrument=st.sampled_from(INSTRUMENTS[:2]),
          quantity=st.integers(min_value=1, max_value=500))
    def issue(self, holder: str, instrument: str, quantity: int) -> None:
        entry = transfer_entry(entry_id=new_entry_id(), kind="issue", from_account=SYSTEM[ISSUANCE],
                               to_account=self.ids[holder], instrument=instrument, quantity=quantity)
        post(self.session, entry=entry, actor=OFFICER)
        self.session.commit()
        self._record(entry)

    @rule(holder=st.sampled_from(HOLDERS), quantity=QUANTITIES)
    def deposit(self, holder: str, quantity: Any) -> None:
        def propose() -> dict[str, Any]:
            return transfers.propose_deposit(self.session, actor=OFFICER, account_id=self.ids[holder],
                                             quantity=quantity)[1]
        try:
            check_quantity(quantity)
        except LedgerError as err:
            self._refused(err.code, propose)
            return
        pending = propose()
        self.session.commit()
        result = self._approve(pending)
        self._record(transfer_entry(entry_id=result["entry_id"], kind="deposit", from_account=SYSTEM[BANK],
                                    to_account=self.ids[holder], instrument=CNY, quantity=quantity))

    def _quantity(self, holder: str, instrument: str, share: int, bad: Any) -> Any:
        """``bad`` when given (an invalid amount), else ``share`` % of what is available (above 100: too much)."""
        if bad is not None:
            return bad
        available = self.model.available(account_id=self.ids[holder], instrument=instrument)
        return max(1, available * share // 100)

    def _holder(self, pick: int, instrument: str) -> str:
        """Mostly a holder with units of ``instrument`` available (so that valid moves are drawn often)."""
        holding = [h for h in HOLDERS if self.model.available(account_id=self.ids[h], instrument=instrument) > 0]
        candidates = holding if holding and pick % 4 else list(HOLDERS)
        return candidates[pick % len(candidates)]

    @rule(pick=st.integers(0, 11), step=st.sampled_from([1, 2, 2, 0]),
          intruder=st.one_of(st.none(), st.none(), st.none(), st.sampled_from(HOLDERS)),
          instrument=st.sampled_from(INSTRUMENTS), share=st.integers(1, 120), bad=BAD_QUANTITIES)
    def transfer(self, pick: int, step: int, intruder: str | None, instrument: str, share: int, bad: Any) -> None:
        source = self._holder(pick, instrument)
        recipient = HOLDERS[(HOLDERS.index(source) + step) % len(HOLDERS)]  # step 0: to itself (refused)
        owner = intruder or source  # mostly the owner; sometimes another holder tries
        quantity = self._quantity(source, instrument, share, bad)

        def move() -> tuple[int, dict[str, Any]]:
            return transfers.transfer(self.session, actor=self.holders[owner], from_account=self.ids[source],
                                      to_account=self.ids[recipient], instrument=instrument, quantity=quantity)

        def expected(model: LedgerState) -> LedgerState:
            check_quantity(quantity)
            if owner != source:
                raise LedgerError("", code="not_own_account")
            entry = transfer_entry(entry_id="probe", kind="transfer", from_account=self.ids[source],
                                   to_account=self.ids[recipient], instrument=instrument, quantity=quantity)
            if (source, recipient) not in TRUSTED:
                raise LedgerError("", code="counterparty_not_trusted")
            return model.post(entry)

        _, code = predict(self.model, expected)
        if code is not None:
            self._refused(code, move)
            return
        status, answer = move()
        self.session.commit()
        assert status == 201
        self._record(transfer_entry(entry_id=answer["entry"]["entry_id"], kind="transfer",
                                    from_account=self.ids[source], to_account=self.ids[recipient],
                                    instrument=instrument, quantity=quantity))

    @rule(pick=st.integers(0, 11), share=st.integers(1, 120))
    def surrender(self, pick: int, share: int) -> None:
        holder = self._holder(pick, "CEA-2025")
        quantity = self._quantity(holder, "CEA-2025", share, None)
        entry = transfer_entry(entry_id=new_entry_id(), kind="surrender", from_account=self.ids[holder],
                               to_account=SYSTEM[RETIREMENT], instrument="CEA-2025", quantity=quantity)
        after, code = predict(self.model, lambda m: m.post(entry))
        if code is not None:
            self._refused(code, lambda: post(self.session, entry=entry, actor=self.holders[holder]))
            return
        post(self.session, entry=entry, actor=self.holders[holder])
        self.session.commit()
        self._record(entry)

    @rule(pick=st.integers(0, 11), instrument=st.sampled_from(INSTRUMENTS), share=st.integers(1, 120),
          bad=BAD_QUANTITIES)
    def freeze(self, pick: int, instrument: str, share: int, bad: Any) -> None:
        holder = self._holder(pick, instrument)
        account_id = self.ids[holder]
        quantity = self._quantity(holder, instrument, share, bad)

        def expected(model: LedgerState) -> LedgerState:
            amount = check_quantity(quantity)
            return model.encumber(Encumbrance(encumbrance_id="probe", kind=FREEZE, account_id=account_id,
                                              instrument=instrument, quantity=amount, imposed_by=OFFICER.actor_id),
                                  officer_ids=frozenset({OFFICER.actor_id}))

        def impose() -> tuple[int, dict[str, Any]]:
            return encumbrances.freeze(self.session, actor=OFFICER, account_id=account_id, instrument=instrument,
                                       quantity=quantity, reason="stateful test")

        _, code = predict(self.model, expected)
        if code is not None:
            self._refused(code, impose)
            return
        _, frozen = impose()
        self.session.commit()
        self.model = self.model.encumber(
            Encumbrance(encumbrance_id=frozen["encumbrance_id"], kind=FREEZE, account_id=account_id,
                        instrument=instrument, quantity=quantity, imposed_by=OFFICER.actor_id),
            officer_ids=frozenset({OFFICER.actor_id}))

    @rule(pick=st.integers(0, 11), intruder=st.one_of(st.none(), st.none(), st.sampled_from(HOLDERS)),
          instrument=st.sampled_from(INSTRUMENTS[:2]), share=st.integers(1, 120), bad=BAD_QUANTITIES)
    def pledge(self, pick: int, intruder: str | None, instrument: str, share: int, bad: Any) -> None:
        holder = self._holder(pick, instrument)
        account_id, actor = self.ids[holder], self.holders[intruder or holder]
        quantity = self._quantity(holder, instrument, share, bad)

        def expected(model: LedgerState) -> LedgerState:
            amount = check_quantity(quantity)
            if intruder not in (None, holder):
                raise LedgerError("", code="not_own_account")
            return model.encumber(Encumbrance(encumbrance_id="probe", kind=PLEDGE, account_id=account_id,
                                              instrument=instrument, quantity=amount, imposed_by=actor.actor_id,
                                              lender_account_id=self.lender, consent_by=f"holder-{holder}"))

        def consent() -> tuple[int, dict[str, Any]]:
            return encumbrances.pledge(self.session, actor=actor, account_id=account_id, instrument=instrument,
                                       quantity=quantity, lender_account_id=self.lender, reason="loan")

        _, code = predict(self.model, expected)
        if code is not None:
            self._refused(code, consent)
            return
        _, pledged = consent()
        self.session.commit()
        self.model = self.model.encumber(Encumbrance(
            encumbrance_id=pledged["encumbrance_id"], kind=PLEDGE, account_id=account_id, instrument=instrument,
            quantity=quantity, imposed_by=actor.actor_id, lender_account_id=self.lender,
            consent_by=f"holder-{holder}"))

    @rule(pick=st.integers(min_value=0, max_value=10**6))
    def release(self, pick: int) -> None:
        in_force = sorted(self.model.encumbrances)
        if not in_force:
            self._refused("unknown_encumbrance", lambda: encumbrances.propose_release(
                self.session, actor=OFFICER, encumbrance_id="no-such-encumbrance", reason="x"))
            return
        encumbrance_id = in_force[pick % len(in_force)]
        _, pending = encumbrances.propose_release(self.session, actor=OFFICER, encumbrance_id=encumbrance_id,
                                                  reason="stateful test")
        self.session.commit()
        self._approve(pending)
        self.model = self.model.release(encumbrance_id)

    @rule(pick=st.integers(min_value=0, max_value=10**6))
    def reverse(self, pick: int) -> None:
        if not self.entries:
            return
        original = self.entries[pick % len(self.entries)]

        def propose() -> tuple[int, dict[str, Any]]:
            return transfers.propose_reversal(self.session, actor=OFFICER, entry_id=original.entry_id)

        _, code = predict(self.model, lambda m: m.post(reversing_entry(original, entry_id="probe")))
        if code is not None:
            self._refused(code, propose)
            return
        _, pending = propose()
        self.session.commit()
        result = self._approve(pending)
        self._record(reversing_entry(original, entry_id=result["entry_id"]))

    # --- invariants ---------------------------------------------------------------------------------------

    @invariant()
    def the_database_is_the_model(self) -> None:
        report = verify(self.session)
        assert report["ok"], report  # stored == derive_balances(journal), every instrument conserved
        stored = repository.stored_balances(self.session)
        mine = set(self.ids.values()) | {self.lender}
        holdings = {k: v for k, v in stored.items() if k[0] in mine}
        system = {k: v - self.base.get(k, 0) for k, v in stored.items() if k[0] in SYSTEM.values()}
        system = {k: v for k, v in system.items() if v}
        model = dict(self.model.balances)
        assert holdings == {k: v for k, v in model.items() if k[0] in mine}
        assert system == {k: v for k, v in model.items() if k[0] in SYSTEM.values()}
        for account_id in mine:
            encumbered = repository.encumbered_of(self.session, account_id=account_id)
            for instrument in INSTRUMENTS:
                balance = stored.get((account_id, instrument), 0)
                assert balance - encumbered.get(instrument, 0) >= 0
                assert encumbered.get(instrument, 0) == self.model.encumbered(account_id=account_id,
                                                                              instrument=instrument)
        self.session.rollback()

    def teardown(self) -> None:
        self.session.close()


def test_random_ledger_operations_keep_the_invariants_and_agree_with_the_pure_model(
        tmp_path: Path, database_url: str) -> None:
    config = zone_settings(tmp_path, database_url=database_url)
    sessions = session_factory(config)
    machine = type("Machine", (LedgerMachine,), {"sessions": sessions})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=15, stateful_step_count=25, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
    with sessions() as session:  # the run reached every kind of change, not only refusals
        kinds = dict(session.execute(select(JournalEntryRow.kind, func.count()).group_by(JournalEntryRow.kind)).all())
        released = session.scalar(select(func.count()).select_from(EncumbranceRow)
                                  .where(EncumbranceRow.released_at.is_not(None)))
        encumbered = set(session.scalars(select(EncumbranceRow.kind).distinct()))
    assert {"issue", "deposit", "transfer", "surrender", "reversal"} <= set(kinds), kinds
    assert encumbered == {"freeze", "pledge"} and released, "no freeze, pledge or approved release"
    assert {"insufficient_available", "not_own_account", "fractional_quantity"} <= set(REFUSALS), REFUSALS

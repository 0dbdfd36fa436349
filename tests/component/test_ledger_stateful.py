"""Hypothesis stateful test of the ledger's services on a real database (SQLite and PostgreSQL).

Random sequences of issuance, deposits (four eyes), transfers, surrenders, freezes, pledges, releases
(four eyes), reversals (four eyes) and auctions (create, bid, withdraw, close and settle with four eyes),
valid and invalid, go through the service layer; a plan-based free allocation (``allocate`` entries, four
eyes) runs once, in the first example's initialization (it is per plan and per database, too heavy per
step); every example opens with one auction. A pure ``LedgerState`` model of ``accounting.ledger``
predicts each outcome. After every step: a refused operation changed nothing, the stored balances are
the journal's (``verify``), every instrument is conserved (issued =
holdings + reserved in auctions + surrendered + cancelled; cash out of the bank = balances + fees +
reservations), no available balance is below zero, and the database agrees with the model. Entries
posted by the auction and allocation services (refunds, settlements, allocations) are read back from the
journal and applied to the model; a settlement is also checked against ``clear_auction`` of the model's bids.

Each example works on accounts of its own (a fresh prefix), since the journal is append-only and
cannot be wiped between examples; the system accounts are shared, so they are compared as changes
from the example's start.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from accounting.auction import CANCELLED, AuctionTerms, Bid, clear_auction
from accounting.errors import AccountingError
from accounting.ledger import (
    AUCTION,
    BANK,
    CANCELLATION,
    CNY,
    FEES,
    FREEZE,
    HOLDER_KINDS,
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
from api.services import allocation, approvals, auctions, encumbrances, transfers
from api.services.ledger import ensure_system_accounts, new_entry_id, open_account, post, system_account_id, verify
from api.services.registry import import_registry
from api.store import ledger as repository
from api.store.db import session_factory
from api.store.schema import AuctionRow, EncumbranceRow, JournalEntryRow, LedgerAccount
from tests.conftest import zone_settings

OFFICER = Actor(actor_id="officer-li", role="officer")
OFFICER_2 = Actor(actor_id="officer-wang", role="officer")
INSTRUMENTS = ("CEA-2025", "CCER", CNY)
HOLDERS = ("A", "B", "C")
#: Trusted (from, to) pairs; C → B is deliberately not trusted.
TRUSTED = (("A", "B"), ("B", "A"), ("B", "C"), ("C", "A"), ("A", "C"))
SYSTEM = {kind: system_account_id(kind) for kind in (ISSUANCE, BANK, RETIREMENT, AUCTION, FEES)}
ROOT = Path(__file__).resolve().parents[2]
PLAN_ID = "zone-2024-free"
#: The auction service's clock (``auctions.now`` reads it); each example moves it forward only.
CLOCK = [datetime(2026, 3, 2, 9, tzinfo=UTC)]
#: Terms of the auctions (cheap, so that the deposits drawn pay for bids): 1 t lots, 2 fen reserve.
AUCTION_TERMS = {"offered_t": 60, "reserve_price_fen": 2, "min_bid_t": 1, "bidder_cap_t": 40, "lot_t": 1}
WINDOW = timedelta(hours=2)
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
            *((a, k, None) for k, a in SYSTEM.items()),
            *((self.ids[h], TRADER, f"holder-{h}") for h in HOLDERS), (self.lender, LENDER, "lender"))]
        self.model = LedgerState.empty().with_accounts(*accounts)
        self.entries: list[JournalEntry] = []
        self.prefix = prefix
        #: The example's auctions: id -> {"terms": AuctionTerms, "status": ...}; bids: id -> a model ``Bid``
        #: with its auction, holder and status.
        self.auctions: dict[str, dict[str, Any]] = {}
        self.bids: dict[str, dict[str, Any]] = {}
        self.compliance: set[str] = set()  # the compliance accounts the plan allocated to (first example only)

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
            self.deposit(holder, 300)  # cash for bids
        self.create_auction(None)
        if not type(self).allocated:
            type(self).allocated = True
            self._allocate_by_plan()

    allocated = False

    def _allocate_by_plan(self) -> None:
        """Free allocation of the sample plan through the allocation service (four eyes), once per run."""
        since = self._seq()
        import_registry(self.session, content=(ROOT / "data" / "sample" / "enterprises.csv").read_bytes(),
                        source="enterprises.csv", actor=Actor(actor_id="test-loader", role="engineer"))
        plan = (ROOT / "data" / "sample" / "allocation" / "plan-2024.toml").read_text(encoding="utf-8")
        allocation.load_plan(self.session, actor=OFFICER, content=plan)
        self.session.commit()
        proposed = allocation.propose_pre_allocation(self.session, actor=OFFICER, plan_id=PLAN_ID, version=1)
        self.session.commit()
        result = self._approve(proposed)
        posted = [a["entry_id"] for a in result["allocations"] if a["entry_id"]]
        assert posted
        self._apply_journal(since, expect_kinds={"allocate"})
        assert {e.entry_id for e in self.entries[-len(posted):]} == set(posted)

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

    def _seq(self) -> int:
        return int(self.session.scalar(select(func.coalesce(func.max(JournalEntryRow.seq), 0))) or 0)

    def _apply_journal(self, since: int, *, expect_kinds: set[str], reversible: bool = True) -> list[JournalEntry]:
        """Apply to the model the entries the services posted after ``since`` (read back from the journal)."""
        rows = list(self.session.scalars(select(JournalEntryRow).where(JournalEntryRow.seq > since)
                                         .order_by(JournalEntryRow.seq)))
        posted = [repository.entry_of(r, repository.postings_of(self.session, r.entry_id)) for r in rows]
        assert {e.kind for e in posted} <= expect_kinds, [e.kind for e in posted]
        for entry in posted:
            for posting in entry.postings:  # accounts the services opened meanwhile (compliance accounts)
                if posting.account_id not in self.model.accounts:
                    row = self.session.get(LedgerAccount, posting.account_id)
                    assert row is not None
                    self.model = self.model.with_accounts(repository.account_of(row))
                    self.compliance.add(posting.account_id)
            if reversible:
                self._record(entry)
            else:  # auction entries: a reversal would pull the cash from under a live bid
                self.model = self.model.post(entry)
        self.session.rollback()
        return posted

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

    # --- auctions -----------------------------------------------------------------------------------------

    def _auction(self, pick: int) -> str | None:
        return sorted(self.auctions)[pick % len(self.auctions)] if self.auctions else None

    @rule(bad=st.sampled_from([None, None, None, "CCER", "cap", "duplicate"]))
    def create_auction(self, bad: str | None) -> None:
        if len(self.auctions) >= 3 and bad is None:
            return
        auction_id = f"{self.prefix}-AUC{len(self.auctions)}"
        terms = {**AUCTION_TERMS, "instrument": "CEA-2025", "opens_at": CLOCK[0], "closes_at": CLOCK[0] + WINDOW}

        def create(**changes: Any) -> dict[str, Any]:
            return auctions.create_auction(self.session, actor=OFFICER, **{**terms, "auction_id": auction_id,
                                                                            **changes})
        if bad == "CCER":  # only allowances are auctioned
            self._refused("not_an_allowance", lambda: create(instrument="CCER"))
            return
        if bad == "cap":
            self._refused("invalid_bidder_cap", lambda: create(bidder_cap_t=1, min_bid_t=2))
            return
        if bad == "duplicate":
            if self.auctions:
                self._refused("duplicate_auction", lambda: create(auction_id=self._auction(0)))
            return
        since = self._seq()
        create()
        self.session.commit()
        (posted,) = self._apply_journal(since, expect_kinds={"issue"}, reversible=False)
        assert posted.changes() == {(SYSTEM[ISSUANCE], "CEA-2025"): -AUCTION_TERMS["offered_t"],
                                    (SYSTEM[AUCTION], "CEA-2025"): AUCTION_TERMS["offered_t"]}
        self.auctions[auction_id] = {"status": auctions.OPEN, "terms": AuctionTerms(
            auction_id=auction_id, instrument="CEA-2025", opens_at=CLOCK[0], closes_at=CLOCK[0] + WINDOW,
            **AUCTION_TERMS)}

    @rule(minutes=st.sampled_from([1, 20, 90]))
    def tick(self, minutes: int) -> None:
        CLOCK[0] += timedelta(minutes=minutes)

    @rule(pick=st.integers(0, 11), holder=st.sampled_from(HOLDERS),
          intruder=st.one_of(st.none(), st.none(), st.none(), st.sampled_from(HOLDERS)),
          price=st.sampled_from([1, 2, 3, 5, 8]), quantity=st.integers(1, 45))
    def bid(self, pick: int, holder: str, intruder: str | None, price: int, quantity: int) -> None:
        auction_id = self._auction(pick) or f"{self.prefix}-NO-AUCTION"
        account_id, actor = self.ids[holder], self.holders[intruder or holder]

        def place() -> dict[str, Any]:
            return auctions.place_bid(self.session, actor=actor, auction_id=auction_id, account_id=account_id,
                                      price_fen=price, quantity_t=quantity)

        code = self._bid_refusal(auction_id, account_id, intruder not in (None, holder), price, quantity)
        if code is not None:
            self._refused(code, place)
            return
        view = place()
        self.session.commit()
        self.model = self.model.post(transfer_entry(
            entry_id=view["reserve_entry_id"], kind="auction_reserve", from_account=account_id,
            to_account=SYSTEM[AUCTION], instrument=CNY, quantity=price * quantity))
        self.bids[view["bid_id"]] = {"auction_id": auction_id, "status": auctions.ACTIVE, "bid": Bid(
            bid_id=view["bid_id"], bidder_id=account_id, price_fen=price, quantity_t=quantity,
            submitted_at=CLOCK[0])}

    def _bid_refusal(self, auction_id: str, account_id: str, foreign: bool, price: int, quantity: int) -> str | None:
        """The code the model expects for the bid, or None when it is valid."""
        if foreign:
            return "not_own_account"
        if auction_id not in self.auctions:
            return "unknown_auction"
        auction = self.auctions[auction_id]
        terms: AuctionTerms = auction["terms"]
        if auction["status"] != auctions.OPEN:
            return "auction_closed"
        if CLOCK[0] >= terms.closes_at:
            return "bid_window_closed"
        if price < terms.reserve_price_fen:
            return "below_reserve_price"
        own = sum(b["bid"].quantity_t for b in self.bids.values()
                  if b["auction_id"] == auction_id and b["status"] == auctions.ACTIVE
                  and b["bid"].bidder_id == account_id)
        if own + quantity > terms.bidder_cap_t:
            return "bidder_cap_exceeded"
        if price * quantity > self.model.available(account_id=account_id, instrument=CNY):
            return "insufficient_funds"
        return None

    @rule(pick=st.integers(0, 10**6), intruder=st.one_of(st.none(), st.none(), st.sampled_from(HOLDERS)))
    def withdraw(self, pick: int, intruder: str | None) -> None:
        if not self.bids:
            if self.auctions:
                self._refused("unknown_bid", lambda: auctions.withdraw_bid(
                    self.session, actor=self.holders["A"], auction_id=self._auction(pick) or "",
                    bid_id="no-such-bid"))
            return
        bid_id = sorted(self.bids)[pick % len(self.bids)]
        placed = self.bids[bid_id]
        bid: Bid = placed["bid"]
        auction = self.auctions[placed["auction_id"]]
        owner = next(h for h in HOLDERS if self.ids[h] == bid.bidder_id)
        actor = self.holders[intruder or owner]

        def withdraw() -> dict[str, Any]:
            return auctions.withdraw_bid(self.session, actor=actor, auction_id=placed["auction_id"], bid_id=bid_id)

        code = ("unknown_bid" if intruder not in (None, owner)
                else "auction_closed" if auction["status"] != auctions.OPEN
                else "bid_window_closed" if CLOCK[0] >= auction["terms"].closes_at
                else "bid_not_active" if placed["status"] != auctions.ACTIVE else None)
        if code is not None:
            self._refused(code, withdraw)
            return
        since = self._seq()
        assert withdraw()["status"] == auctions.WITHDRAWN
        self.session.commit()
        (refund,) = self._apply_journal(since, expect_kinds={"auction_refund"}, reversible=False)
        reserved = bid.price_fen * bid.quantity_t
        assert refund.changes() == {(SYSTEM[AUCTION], CNY): -reserved, (bid.bidder_id, CNY): reserved}
        placed["status"] = auctions.WITHDRAWN

    @rule(pick=st.integers(0, 11), early=st.booleans())
    def close_and_settle(self, pick: int, early: bool) -> None:
        auction_id = self._auction(pick)
        if auction_id is None:
            self._refused("unknown_auction", lambda: auctions.close_auction(
                self.session, actor=OFFICER, auction_id=f"{self.prefix}-NO-AUCTION"))
            return
        auction = self.auctions[auction_id]
        terms: AuctionTerms = auction["terms"]

        def close() -> dict[str, Any]:
            return auctions.close_auction(self.session, actor=OFFICER, auction_id=auction_id)

        if auction["status"] != auctions.OPEN:
            self._refused("auction_closed", close)
            return
        if early and CLOCK[0] < terms.closes_at:
            self._refused("bid_window_open", close)
            return
        CLOCK[0] = max(CLOCK[0], terms.closes_at)
        closed = close()
        self.session.commit()
        pending = closed["approval"]
        self._refused("same_officer", lambda: approvals.decide(
            self.session, approval_id=pending["approval_id"], decision="approve",
            payload_digest=pending["payload_digest"], actor=OFFICER))
        since = self._seq()
        settled = self._approve(closed)
        (entry,) = self._apply_journal(since, expect_kinds={"auction_settle"}, reversible=False)
        assert settled["entry_id"] == entry.entry_id
        # the settlement is what clearing the model's own bids gives
        active = {i: b for i, b in self.bids.items()
                  if b["auction_id"] == auction_id and b["status"] == auctions.ACTIVE}
        result = clear_auction(terms=terms, bids=[b["bid"] for b in active.values()])
        cancelled = result.status == CANCELLED
        expected: Counter[tuple[str, str]] = Counter()
        for outcome in result.bids:
            expected[(outcome.bidder_id, terms.instrument)] += 0 if cancelled else outcome.filled_t
            expected[(outcome.bidder_id, CNY)] += outcome.refund_fen
            expected[(SYSTEM[FEES], CNY)] += outcome.paid_fen
            expected[(SYSTEM[AUCTION], CNY)] -= outcome.reserved_fen
            active[outcome.bid_id]["status"] = ("filled" if outcome.filled_t == outcome.quantity_t
                                                else "partial" if outcome.filled_t else "unfilled")
        expected[(SYSTEM[ISSUANCE], terms.instrument)] += terms.offered_t if cancelled else result.unsold_t
        expected[(SYSTEM[AUCTION], terms.instrument)] -= terms.offered_t
        assert entry.changes() == {k: v for k, v in expected.items() if v}, (entry.changes(), expected)
        assert settled["status"] == (CANCELLED if cancelled else auctions.SETTLED)
        auction["status"] = settled["status"]
        row = self.session.get(AuctionRow, auction_id)
        assert row is not None and row.status == settled["status"] and row.settled_entry_id == entry.entry_id
        self.session.rollback()

    # --- invariants ---------------------------------------------------------------------------------------

    @invariant()
    def every_instrument_is_conserved_and_nothing_available_is_negative(self) -> None:
        stored = repository.stored_balances(self.session)
        kinds = dict(self.session.execute(select(LedgerAccount.account_id, LedgerAccount.kind)).all())
        encumbered: Counter[tuple[str, str]] = Counter()
        for account_id, instrument, quantity in self.session.execute(
                select(EncumbranceRow.account_id, EncumbranceRow.instrument, EncumbranceRow.quantity)
                .where(EncumbranceRow.released_at.is_(None))):
            encumbered[(account_id, instrument)] += quantity
        self.session.rollback()
        by_kind: dict[str, Counter[str]] = {}
        for (account_id, instrument), quantity in stored.items():
            by_kind.setdefault(instrument, Counter())[kinds[account_id]] += quantity
        for instrument, held in by_kind.items():
            assert sum(held.values()) == 0, (instrument, held)
            holdings = sum(held[k] for k in HOLDER_KINDS)
            if instrument == CNY:  # cash out of the bank = balances + fees + reservations in auctions
                assert -held[BANK] == holdings + held[FEES] + held[AUCTION], held
            else:  # issued = holdings + reserved (auctions) + surrendered + cancelled
                assert -held[ISSUANCE] == holdings + held[AUCTION] + held[RETIREMENT] + held[CANCELLATION], held
        for key, quantity in encumbered.items():
            assert kinds[key[0]] in HOLDER_KINDS
            assert stored.get(key, 0) - quantity >= 0, (key, stored.get(key), quantity)
        for key, quantity in stored.items():
            if kinds[key[0]] in HOLDER_KINDS:
                assert quantity >= 0, (key, quantity)

    @invariant()
    def the_auction_account_holds_what_the_open_auctions_reserve(self) -> None:
        reserved = sum(b["bid"].price_fen * b["bid"].quantity_t for b in self.bids.values()
                       if b["status"] == auctions.ACTIVE)
        offered = sum(a["terms"].offered_t for a in self.auctions.values() if a["status"] == auctions.OPEN)
        assert self.model.balances.get((SYSTEM[AUCTION], CNY), 0) == reserved
        assert self.model.balances.get((SYSTEM[AUCTION], "CEA-2025"), 0) == offered

    @invariant()
    def the_database_is_the_model(self) -> None:
        report = verify(self.session)
        assert report["ok"], report  # stored == derive_balances(journal), every instrument conserved
        stored = repository.stored_balances(self.session)
        mine = set(self.ids.values()) | {self.lender} | self.compliance
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
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auctions, "now", lambda: CLOCK[0])
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
    assert {"issue", "deposit", "transfer", "surrender", "reversal", "allocate", "auction_reserve",
            "auction_refund", "auction_settle"} <= set(kinds), kinds
    assert encumbered == {"freeze", "pledge"} and released, "no freeze, pledge or approved release"
    assert {"insufficient_available", "not_own_account", "fractional_quantity", "below_reserve_price",
            "insufficient_funds", "same_officer"} <= set(REFUSALS), REFUSALS

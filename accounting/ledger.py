"""The carbon-rights ledger rules: instruments, accounts, balanced journal entries, encumbrances.

Pure rules, no storage: the service loads a ``LedgerState`` (or the journal), asks ``post`` or
``encumber`` for the next state, and writes the entry and its audit record in one transaction. A
refused operation raises ``LedgerError`` with a machine-readable ``code`` and changes nothing: the
state objects are immutable and every method returns a new one.

Why double entry: every unit that exists came from the issuance account, so per instrument the
balances of all accounts sum to zero, and "issued = holdings + reserved + surrendered + cancelled"
is the same statement read from the issuance account's side. An entry that does not balance per
instrument would create or destroy units; it cannot be built.

Conventions:

* A posting moves a positive whole quantity of one instrument: a **debit** takes units out of the
  account, a **credit** puts units into it; balance = credits - debits.
* Quantities are ``int`` in the instrument's base unit: whole tonnes for allowances (``CEA-2025``)
  and offsets (``CCER``), kg for pollutant rights (``SO2``, ``NOX``, ``COD``, ``NH3N``), fen for
  cash (``CNY``). Floats, Decimals, bools and strings are refused, even when integral: finer
  amounts are refused, never rounded (peatio #2258; omnicore #41).
* Only two system accounts may go below zero: the issuance account (allowances, offsets, pollutant
  rights) and the settlement bank (cash enters and leaves the zone through it). Every other account
  keeps ``available = balance - encumbered >= 0``.
* Units in the retirement (surrender) and cancellation accounts never move again, not even by a
  reversing entry.
* Entries are append-only; a correction is a reversing entry (``reversing_entry``), at most one per
  entry.

>>> state = LedgerState.empty().with_accounts(
...     Account(account_id="issuance", kind="issuance"),
...     Account(account_id="e1", kind="compliance", owner_id="E1"))
>>> entry = transfer_entry(entry_id="j1", kind="allocate", from_account="issuance", to_account="e1",
...                        instrument="CEA-2025", quantity=1000)
>>> state = state.post(entry)
>>> state.balance(account_id="e1", instrument="CEA-2025"), state.balance(account_id="issuance", instrument="CEA-2025")
(1000, -1000)
>>> transfer_entry(entry_id="j2", kind="transfer", from_account="e1", to_account="issuance",
...                instrument="CEA-2025", quantity=2.5)
Traceback (most recent call last):
...
accounting.ledger.LedgerError: quantity must be a whole number of t, got 2.5
"""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType

from accounting.errors import AccountingError


class LedgerError(AccountingError):
    """A ledger operation the rules refuse; ``code`` says which rule."""

    code = "ledger_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Instruments

ALLOWANCE = "allowance"
OFFSET = "offset"
POLLUTANT = "pollutant"
CASH = "cash"

#: The pollutant discharge rights, held in kg.
POLLUTANTS: tuple[str, ...] = ("SO2", "NOX", "COD", "NH3N")
CCER = "CCER"
CNY = "CNY"
#: Allowance vintages the registry knows: the national market starts with 2019 emissions; a year far
#: in the future is a typo, not a vintage.
FIRST_VINTAGE = 2019
LAST_VINTAGE = 2060
_ALLOWANCE_CODE = re.compile(r"^CEA-(\d{4})$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """What a quantity counts: its code, kind, base unit and, for allowances, the vintage year."""

    code: str
    kind: str
    unit: str
    vintage: int | None = None


def allowance_code(vintage: int) -> str:
    """The instrument code of the allowances of compliance year ``vintage``.

    >>> allowance_code(2025)
    'CEA-2025'
    """
    return f"CEA-{vintage}"


def parse_instrument(code: str) -> Instrument:
    """The instrument called ``code``; LedgerError ``unknown_instrument`` or ``unknown_vintage`` otherwise.

    >>> parse_instrument("CEA-2025").vintage, parse_instrument("SO2").unit, parse_instrument("CNY").unit
    (2025, 'kg', 'fen')
    """
    if not isinstance(code, str):
        raise LedgerError(f"instrument must be a code string, got {code!r}", code="unknown_instrument")
    return _parse_code(code)


@functools.lru_cache(maxsize=1024)
def _parse_code(code: str) -> Instrument:
    match = _ALLOWANCE_CODE.match(code)
    if match:
        vintage = int(match.group(1))
        if not FIRST_VINTAGE <= vintage <= LAST_VINTAGE:
            raise LedgerError(f"unknown vintage {vintage} (from {FIRST_VINTAGE} to {LAST_VINTAGE})",
                              code="unknown_vintage")
        return Instrument(code=code, kind=ALLOWANCE, unit="t", vintage=vintage)
    if code == CCER:
        return Instrument(code=code, kind=OFFSET, unit="t")
    if code in POLLUTANTS:
        return Instrument(code=code, kind=POLLUTANT, unit="kg")
    if code == CNY:
        return Instrument(code=code, kind=CASH, unit="fen")
    raise LedgerError(f"unknown instrument '{code}'; CEA-<year>, {CCER}, {', '.join(POLLUTANTS)} or {CNY}",
                      code="unknown_instrument")


def _is_fractional(value: float | Decimal | Fraction) -> bool:
    """True for a finite number with a fractional part (NaN and infinities are not numbers of units)."""
    if isinstance(value, Fraction):
        return value.denominator != 1
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if isinstance(value, Decimal) and not value.is_finite():
        return False
    return value != int(value)


def check_quantity(value: object, *, unit: str = "unit", allow_zero: bool = False) -> int:
    """``value`` as a whole, non-negative ``int``; LedgerError naming what is wrong otherwise.

    Codes: ``not_an_integer`` (bool, str, None, float or Decimal even when integral: a float amount
    has already lost precision somewhere), ``fractional_quantity`` (a number with a fractional
    part), ``negative_quantity``, ``zero_quantity`` (unless ``allow_zero``).

    >>> check_quantity(5)
    5
    >>> check_quantity(Decimal("0.5"), unit="t")
    Traceback (most recent call last):
    ...
    accounting.ledger.LedgerError: quantity must be a whole number of t, got 0.5
    """
    if isinstance(value, float | Decimal | Fraction):
        if _is_fractional(value):
            raise LedgerError(f"quantity must be a whole number of {unit}, got {value}", code="fractional_quantity")
        raise LedgerError(f"quantity must be an int (whole {unit}), got {type(value).__name__} {value!r}",
                          code="not_an_integer")
    if type(value) is not int:
        raise LedgerError(f"quantity must be an int (whole {unit}), got {type(value).__name__} {value!r}",
                          code="not_an_integer")
    if value < 0:
        raise LedgerError(f"quantity must not be negative, got {value}", code="negative_quantity")
    if value == 0 and not allow_zero:
        raise LedgerError("quantity must be positive, got 0", code="zero_quantity")
    return value


# ---------------------------------------------------------------------------------------------
# Accounts

COMPLIANCE = "compliance"
TRADER = "trader"
ISSUANCE = "issuance"
AUCTION = "auction"
FEES = "fees"
RETIREMENT = "retirement"
CANCELLATION = "cancellation"
RISK_RESERVE = "risk_reserve"
LENDER = "lender"
BANK = "bank"
#: An instrument's clearing account on the exchange: what open orders hold and unsettled trades owe.
CLEARING = "clearing"

#: Accounts that belong to an enterprise or a trader (``owner_id`` required).
HOLDER_KINDS = frozenset({COMPLIANCE, TRADER, LENDER})
#: Every account kind: holders, plus the zone's system accounts.
ACCOUNT_KINDS = HOLDER_KINDS | frozenset({ISSUANCE, AUCTION, FEES, RETIREMENT, CANCELLATION, RISK_RESERVE, BANK,
                                          CLEARING})
#: Units that reach these accounts never move again.
FINAL_KINDS = frozenset({RETIREMENT, CANCELLATION})
#: The only accounts whose balance may be negative, and for which instrument kinds.
SOURCE_KINDS: Mapping[str, frozenset[str]] = MappingProxyType({
    ISSUANCE: frozenset({ALLOWANCE, OFFSET, POLLUTANT}),
    BANK: frozenset({CASH}),
})


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """A ledger account: its id, kind and, for enterprise, trader and lender accounts, the owner."""

    account_id: str
    kind: str
    owner_id: str | None = None

    def __post_init__(self) -> None:
        if not self.account_id:
            raise LedgerError("an account id is required", code="unknown_account")
        if self.kind not in ACCOUNT_KINDS:
            raise LedgerError(f"unknown account kind '{self.kind}'; one of {', '.join(sorted(ACCOUNT_KINDS))}",
                              code="unknown_account_kind")
        if self.kind in HOLDER_KINDS and not self.owner_id:
            raise LedgerError(f"a {self.kind} account needs an owner", code="owner_required")

    @property
    def may_go_negative(self) -> frozenset[str]:
        """Instrument kinds this account may hold below zero (only the issuance account and the bank)."""
        return SOURCE_KINDS.get(self.kind, frozenset())


# ---------------------------------------------------------------------------------------------
# Journal entries

DEBIT = "debit"
CREDIT = "credit"
ENTRY_KINDS = frozenset({
    "issue", "allocate", "true_up", "auction_reserve", "auction_settle", "auction_refund", "transfer",
    "surrender", "cancel", "deposit", "withdraw", "fee", "deduction", "reversal", "exchange", "exchange_settle",
})


@dataclass(frozen=True, slots=True, kw_only=True)
class Posting:
    """One leg of an entry: ``quantity`` units of ``instrument`` out of (debit) or into (credit) an account."""

    account_id: str
    instrument: str
    side: str
    quantity: int

    def __post_init__(self) -> None:
        unit = parse_instrument(self.instrument).unit
        check_quantity(self.quantity, unit=unit)
        if self.side not in (DEBIT, CREDIT):
            raise LedgerError(f"side must be debit or credit, got {self.side!r}", code="unknown_side")

    @property
    def signed(self) -> int:
        """The change of the account's balance: + for a credit, - for a debit."""
        return self.quantity if self.side == CREDIT else -self.quantity

    def mirrored(self) -> Posting:
        """The same posting on the other side (used by reversals)."""
        return replace(self, side=CREDIT if self.side == DEBIT else DEBIT)


def residuals(postings: Iterable[Posting]) -> dict[str, int]:
    """Per instrument, credits - debits, keeping only the instruments that do not balance.

    >>> residuals([Posting(account_id="a", instrument="CCER", side="debit", quantity=3),
    ...            Posting(account_id="b", instrument="CCER", side="credit", quantity=2)])
    {'CCER': -1}
    """
    totals: dict[str, int] = defaultdict(int)
    for posting in postings:
        totals[posting.instrument] += posting.signed
    return {instrument: total for instrument, total in sorted(totals.items()) if total}


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry:
    """An immutable, balanced journal entry; ``reverses`` names the entry a reversal undoes."""

    entry_id: str
    kind: str
    postings: tuple[Posting, ...]
    reverses: str | None = None
    memo: str = ""

    def __post_init__(self) -> None:
        if not self.entry_id:
            raise LedgerError("an entry id is required", code="entry_id_required")
        if self.kind not in ENTRY_KINDS:
            raise LedgerError(f"unknown entry kind '{self.kind}'; one of {', '.join(sorted(ENTRY_KINDS))}",
                              code="unknown_entry_kind")
        if (self.kind == "reversal") != (self.reverses is not None):
            raise LedgerError("a reversal, and only a reversal, names the entry it reverses",
                              code="reversal_mismatch")
        if len(self.postings) < 2:
            raise LedgerError(f"entry {self.entry_id} needs at least two postings", code="unbalanced_entry")
        if not all(isinstance(p, Posting) for p in self.postings):
            raise LedgerError("postings must be Posting objects", code="unbalanced_entry")
        if residual := residuals(self.postings):
            raise LedgerError(f"entry {self.entry_id} does not balance: {residual}", code="unbalanced_entry")

    def changes(self) -> dict[tuple[str, str], int]:
        """The net change of each (account, instrument) this entry touches."""
        net: dict[tuple[str, str], int] = defaultdict(int)
        for posting in self.postings:
            net[(posting.account_id, posting.instrument)] += posting.signed
        return dict(net)


def transfer_entry(*, entry_id: str, kind: str, from_account: str, to_account: str, instrument: str,
                   quantity: int, memo: str = "") -> JournalEntry:
    """The entry moving ``quantity`` of ``instrument`` from one account to another (two postings)."""
    if from_account == to_account:
        raise LedgerError("a transfer needs two different accounts", code="same_account")
    return JournalEntry(entry_id=entry_id, kind=kind, memo=memo, postings=(
        Posting(account_id=from_account, instrument=instrument, side=DEBIT, quantity=quantity),
        Posting(account_id=to_account, instrument=instrument, side=CREDIT, quantity=quantity),
    ))


def reversing_entry(original: JournalEntry, *, entry_id: str, memo: str = "") -> JournalEntry:
    """The entry that undoes ``original``: the same postings on the other side."""
    return JournalEntry(entry_id=entry_id, kind="reversal", reverses=original.entry_id, memo=memo,
                        postings=tuple(p.mirrored() for p in original.postings))


def _posting_key(posting: Posting) -> tuple[str, str, str, int]:
    return (posting.account_id, posting.instrument, posting.side, posting.quantity)


def derive_balances(entries: Iterable[JournalEntry]) -> dict[tuple[str, str], int]:
    """Balances rebuilt from the journal alone: (account, instrument) -> credits - debits (zeros omitted)."""
    balances: dict[tuple[str, str], int] = defaultdict(int)
    for entry in entries:
        for key, change in entry.changes().items():
            balances[key] += change
    return {key: value for key, value in sorted(balances.items()) if value}


# ---------------------------------------------------------------------------------------------
# Encumbrances

FREEZE = "freeze"
PLEDGE = "pledge"


@dataclass(frozen=True, slots=True, kw_only=True)
class Encumbrance:
    """Units that stay in the account but cannot be sold, transferred or surrendered until released.

    A freeze is imposed by an officer (``imposed_by``); a pledge names the lender account and needs
    the holder's consent (``consent_by``, the account owner).
    """

    encumbrance_id: str
    kind: str
    account_id: str
    instrument: str
    quantity: int
    imposed_by: str
    lender_account_id: str | None = None
    consent_by: str | None = None

    def __post_init__(self) -> None:
        check_quantity(self.quantity, unit=parse_instrument(self.instrument).unit)
        if self.kind not in (FREEZE, PLEDGE):
            raise LedgerError(f"encumbrance kind must be freeze or pledge, got {self.kind!r}",
                              code="unknown_encumbrance_kind")
        if not self.imposed_by:
            raise LedgerError("an encumbrance names who imposed it", code="officer_required")
        if self.kind == PLEDGE and not self.lender_account_id:
            raise LedgerError("a pledge names the lender account", code="lender_required")


def pledge_value_fen(*, quantity: int, price_fen: int) -> int:
    """Mark-to-market value of pledged units at the latest price (fen per unit): quantity × price.

    >>> pledge_value_fen(quantity=1000, price_fen=9800)
    9800000
    """
    return check_quantity(quantity, allow_zero=True) * check_quantity(price_fen, unit="fen", allow_zero=True)


# ---------------------------------------------------------------------------------------------
# State


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class LedgerState:
    """Accounts, journal, balances and encumbrances at one point; every operation returns a new state.

    ``balances`` is maintained incrementally by ``post``; ``derive_balances(state.journal)`` must
    always give the same mapping (the rebuild invariant).
    """

    accounts: Mapping[str, Account] = field(default_factory=lambda: MappingProxyType({}))
    journal: tuple[JournalEntry, ...] = ()
    balances: Mapping[tuple[str, str], int] = field(default_factory=lambda: MappingProxyType({}))
    encumbrances: Mapping[str, Encumbrance] = field(default_factory=lambda: MappingProxyType({}))
    reversed_ids: frozenset[str] = frozenset()

    @classmethod
    def empty(cls) -> LedgerState:
        """A ledger with no accounts and no entries."""
        return cls()

    # -- reading ------------------------------------------------------------------------------

    def account(self, account_id: str) -> Account:
        """The account ``account_id``; LedgerError ``unknown_account`` otherwise."""
        account = self.accounts.get(account_id)
        if account is None:
            raise LedgerError(f"unknown account '{account_id}'", code="unknown_account")
        return account

    def check_holder(self, *, account_id: str, acting_for: frozenset[str]) -> Account:
        """The account when its owner is one of ``acting_for`` (the enterprises or traders a user speaks for).

        ``not_own_account`` otherwise: nobody moves, surrenders or pledges someone else's units.
        """
        account = self.account(account_id)
        if account.owner_id is None or account.owner_id not in acting_for:
            raise LedgerError(f"account '{account_id}' does not belong to the acting party", code="not_own_account")
        return account

    def balance(self, *, account_id: str, instrument: str) -> int:
        """Units of ``instrument`` in the account, encumbered ones included."""
        return self.balances.get((account_id, instrument), 0)

    def encumbered(self, *, account_id: str, instrument: str) -> int:
        """Units of ``instrument`` in the account that are frozen or pledged."""
        return sum(e.quantity for e in self.encumbrances.values()
                   if e.account_id == account_id and e.instrument == instrument)

    def available(self, *, account_id: str, instrument: str) -> int:
        """Units that may be moved: balance - encumbered."""
        return (self.balance(account_id=account_id, instrument=instrument)
                - self.encumbered(account_id=account_id, instrument=instrument))

    # -- accounts -----------------------------------------------------------------------------

    def with_accounts(self, *accounts: Account) -> LedgerState:
        """The state with ``accounts`` opened; ``duplicate_account`` if an id is already taken."""
        opened = dict(self.accounts)
        for account in accounts:
            if account.account_id in opened:
                raise LedgerError(f"account '{account.account_id}' already exists", code="duplicate_account")
            opened[account.account_id] = account
        return replace(self, accounts=MappingProxyType(opened))

    # -- posting ------------------------------------------------------------------------------

    def post(self, entry: JournalEntry) -> LedgerState:
        """The state after ``entry``, or LedgerError (and this state unchanged) when a rule refuses it."""
        self._check_identity(entry)
        changes = entry.changes()
        for (account_id, instrument), change in changes.items():
            self._check_change(account_id=account_id, instrument=instrument, change=change)
        balances = dict(self.balances)
        for key, change in changes.items():
            balances[key] = balances.get(key, 0) + change
            if not balances[key]:
                del balances[key]
        reversed_ids = self.reversed_ids | {entry.reverses} if entry.reverses else self.reversed_ids
        return replace(self, journal=(*self.journal, entry), balances=MappingProxyType(balances),
                       reversed_ids=frozenset(reversed_ids))

    def _check_identity(self, entry: JournalEntry) -> None:
        if any(e.entry_id == entry.entry_id for e in self.journal):
            raise LedgerError(f"entry '{entry.entry_id}' already posted", code="duplicate_entry")
        if entry.reverses is None:
            return
        original = next((e for e in self.journal if e.entry_id == entry.reverses), None)
        if original is None:
            raise LedgerError(f"entry '{entry.reverses}' to reverse does not exist", code="unknown_entry")
        if original.kind == "reversal":
            raise LedgerError("a reversal is not reversed; post the original again", code="reversal_mismatch")
        if entry.reverses in self.reversed_ids:
            raise LedgerError(f"entry '{entry.reverses}' is already reversed", code="already_reversed")
        mirrored = sorted(_posting_key(p.mirrored()) for p in original.postings)
        if mirrored != sorted(_posting_key(p) for p in entry.postings):
            raise LedgerError("a reversal must mirror the postings of the entry it reverses",
                              code="reversal_mismatch")

    def _check_change(self, *, account_id: str, instrument: str, change: int) -> None:
        account = self.account(account_id)
        kind = parse_instrument(instrument).kind
        if account.kind in FINAL_KINDS and change < 0:
            code = "retired_units_immutable" if account.kind == RETIREMENT else "cancelled_units_immutable"
            raise LedgerError(f"units in {account.kind} account '{account_id}' never move again", code=code)
        if account.kind in SOURCE_KINDS and kind not in account.may_go_negative:
            raise LedgerError(f"{account.kind} account '{account_id}' does not hold {instrument}",
                              code="instrument_not_allowed")
        if change >= 0 or kind in account.may_go_negative:
            return
        balance = self.balance(account_id=account_id, instrument=instrument)
        available = self.available(account_id=account_id, instrument=instrument)
        if -change > balance:
            raise LedgerError(f"account '{account_id}' holds {balance} {instrument}, cannot move {-change}",
                              code="insufficient_available")
        if -change > available:
            raise LedgerError(f"account '{account_id}' has {available} {instrument} available "
                              f"({balance - available} frozen or pledged), cannot move {-change}",
                              code="units_encumbered")

    # -- encumbrances -------------------------------------------------------------------------

    def encumber(self, encumbrance: Encumbrance, *, officer_ids: frozenset[str] = frozenset()) -> LedgerState:
        """The state with ``encumbrance`` in force.

        A freeze must be imposed by one of ``officer_ids`` (``officer_required``); a pledge must go
        to a lender account (``not_a_lender``) with the holder's consent (``consent_required``).
        Only available units can be encumbered (``insufficient_available``).
        """
        if encumbrance.encumbrance_id in self.encumbrances:
            raise LedgerError(f"encumbrance '{encumbrance.encumbrance_id}' already exists",
                              code="duplicate_encumbrance")
        account = self.account(encumbrance.account_id)
        if account.kind not in (COMPLIANCE, TRADER):
            raise LedgerError(f"only enterprise and trader holdings can be encumbered, not {account.kind}",
                              code="not_encumberable")
        if encumbrance.kind == FREEZE and encumbrance.imposed_by not in officer_ids:
            raise LedgerError("a freeze is imposed by an officer", code="officer_required")
        if encumbrance.kind == PLEDGE:
            lender = self.account(encumbrance.lender_account_id or "")
            if lender.kind != LENDER:
                raise LedgerError(f"'{lender.account_id}' is not a lender account", code="not_a_lender")
            if not encumbrance.consent_by or encumbrance.consent_by != account.owner_id:
                raise LedgerError("a pledge needs the consent of the account's owner", code="consent_required")
        available = self.available(account_id=account.account_id, instrument=encumbrance.instrument)
        if encumbrance.quantity > available:
            raise LedgerError(f"only {available} {encumbrance.instrument} available to encumber",
                              code="insufficient_available")
        encumbrances = dict(self.encumbrances)
        encumbrances[encumbrance.encumbrance_id] = encumbrance
        return replace(self, encumbrances=MappingProxyType(encumbrances))

    def release(self, encumbrance_id: str) -> LedgerState:
        """The state without the encumbrance ``encumbrance_id`` (``unknown_encumbrance`` if absent)."""
        if encumbrance_id not in self.encumbrances:
            raise LedgerError(f"unknown encumbrance '{encumbrance_id}'", code="unknown_encumbrance")
        encumbrances = {k: v for k, v in self.encumbrances.items() if k != encumbrance_id}
        return replace(self, encumbrances=MappingProxyType(encumbrances))


def instrument_totals(balances: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """Per instrument, the sum over all accounts: always 0 for a balanced journal (conservation)."""
    totals: dict[str, int] = defaultdict(int)
    for (_, instrument), value in balances.items():
        totals[instrument] += value
    return dict(totals)

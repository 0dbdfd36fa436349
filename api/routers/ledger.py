"""``/v1/ledger``: accounts, statements, trusted counterparties, transfers, deposits, reversals, encumbrances.

Who may call what is in ``api.access``; the services confine holders to their own accounts
(``api.services.transfers``, ``api.services.encumbrances``). Every change takes a required
``Idempotency-Key`` and goes through ``run_once``: a replay answers the first result with
``Idempotent-Replayed: true``, the key with another body is refused (409 ``idempotency_key_reused``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from api.deps import ActorDep, LimitQuery, OffsetQuery, RequiredIdempotencyKeyDep, SessionDep, answer_once
from api.schemas import ApprovalOut, Problem
from api.services import encumbrances as encumbrance_service
from api.services import ledger as ledger_service
from api.services import transfers as service

router = APIRouter(prefix="/v1/ledger", tags=["ledger"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}})

CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 409: {"model": Problem}}
AccountId = Annotated[str, Field(min_length=1, max_length=64)]
InstrumentCode = Annotated[str, Field(min_length=1, max_length=16, description="CEA-<year>, CCER, SO2, NOX, COD, "
                                                                                "NH3N or CNY")]
#: Any JSON number is accepted here so that the ledger's rules name what is wrong with it
#: (``fractional_quantity``, ``not_an_integer``, ``negative_quantity``) instead of a generic 422.
Quantity = Annotated[StrictInt | StrictFloat, Field(description="whole units: t, kg or fen")]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountOut(BaseModel):
    account_id: str
    kind: str
    owner_id: str | None
    name: str


class AccountList(BaseModel):
    total: int
    items: list[AccountOut]


class OpenAccountRequest(RequestBody):
    """A trader or lender account (compliance accounts open with the registry, system accounts by themselves)."""

    account_id: AccountId
    kind: Literal["trader", "lender"]
    owner_id: str = Field(min_length=1, max_length=64)
    name: str = Field("", max_length=255)


class Holding(BaseModel):
    """One instrument of an account: available = balance - frozen - pledged; pledges marked to market."""

    instrument: str
    balance: int
    encumbered: int
    frozen: int
    pledged: int
    available: int
    price_fen: int | None = Field(description="the latest reference price, fen per unit (null: none yet)")
    price_day: str | None
    pledged_value_fen: int | None = Field(description="pledged × latest price (null without a price)")


class AccountDetail(AccountOut):
    holdings: list[Holding]


class StatementLine(BaseModel):
    seq: int
    entry_id: str
    kind: str
    memo: str
    reverses: str | None
    reference: str | None
    actor_id: str
    created_at: datetime
    instrument: str
    side: str
    quantity: int
    change: int


class Statement(BaseModel):
    account_id: str
    total: int
    items: list[StatementLine]


class CounterpartyRequest(RequestBody):
    counterparty_id: AccountId


class Counterparty(BaseModel):
    account_id: str
    counterparty_id: str
    added_by: str
    added_at: datetime
    effective_at: datetime = Field(description="transfers to it are accepted from this moment")
    is_effective: bool
    removed_at: datetime | None = None


class Counterparties(BaseModel):
    account_id: str
    items: list[Counterparty]


class TransferRequest(RequestBody):
    from_account: AccountId
    to_account: AccountId
    instrument: InstrumentCode
    quantity: Quantity
    memo: str = Field("", max_length=1000)


class DepositRequest(RequestBody):
    """Simulated cash (fen) from the settlement bank into an account; carried out on a second officer's approval."""

    account_id: AccountId
    quantity: Quantity
    memo: str = Field("", max_length=1000)


class ReversalRequest(RequestBody):
    entry_id: str = Field(min_length=1, max_length=64)
    memo: str = Field("", max_length=1000)


class PostingOut(BaseModel):
    account_id: str
    instrument: str
    side: str
    quantity: int


class EntryOut(BaseModel):
    entry_id: str
    seq: int
    kind: str
    memo: str
    reverses: str | None
    reference: str | None
    created_at: datetime
    postings: list[PostingOut]



class LedgerAction(BaseModel):
    """``posted`` (201, the entry) or ``pending_approval`` (202, the proposal for a second officer)."""

    status: Literal["posted", "pending_approval"]
    entry: EntryOut | None
    approval: ApprovalOut | None


class FreezeRequest(RequestBody):
    account_id: AccountId
    instrument: InstrumentCode
    quantity: Quantity
    reason: str = Field(min_length=1, max_length=4000)


class PledgeRequest(RequestBody):
    """Pledge units of your own account to a lender account; the request is the owner's consent."""

    account_id: AccountId
    instrument: InstrumentCode
    quantity: Quantity
    lender_account_id: AccountId
    reason: str = Field("", max_length=4000)


class ReleaseRequest(RequestBody):
    reason: str = Field(min_length=1, max_length=4000)


class EncumbranceOut(BaseModel):
    encumbrance_id: str
    kind: str
    account_id: str
    instrument: str
    quantity: int
    lender_account_id: str | None
    reason: str
    imposed_by: str
    consent_by: str | None
    created_at: datetime
    released_at: datetime | None
    released_by: str | None


class Encumbrances(BaseModel):
    total: int
    items: list[EncumbranceOut]


class VerifyReport(BaseModel):
    """Balances rebuilt from the journal against the stored ones, and conservation per instrument."""

    ok: bool
    balances_checked: int
    differences: list[dict[str, Any]]
    unbalanced_instruments: dict[str, int]
    negative_available: list[dict[str, Any]]


@router.get("/accounts", response_model=AccountList)
def list_accounts(actor: ActorDep, session: SessionDep, limit: LimitQuery = 100, offset: OffsetQuery = 0,
                  kind: Annotated[str | None, Query(max_length=32)] = None) -> dict[str, Any]:
    """Every account (officers, verifiers); an enterprise or trader user's own accounts."""
    return service.list_accounts(session, actor=actor, kind=kind, limit=limit, offset=offset)


@router.post("/accounts", response_model=AccountOut, status_code=status.HTTP_201_CREATED,
             responses=CHANGE_RESPONSES)
def open_account(body: OpenAccountRequest, actor: ActorDep, session: SessionDep, response: Response,
                 idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Open a trader or lender account (officer)."""
    return answer_once(session, actor=actor, key=idempotency_key, operation="ledger.open_account", body=body,
                response=response, change=lambda: service.open_holder_account(
                    session, actor=actor, account_id=body.account_id, kind=body.kind, owner_id=body.owner_id,
                    name=body.name))


@router.get("/accounts/{account_id}", response_model=AccountDetail, responses={404: {"model": Problem}})
def get_account(account_id: str, session: SessionDep) -> dict[str, Any]:
    """The account's holdings by instrument: balance, frozen, pledged, available, pledges' market value."""
    return service.account_detail(session, account_id=account_id)


@router.get("/accounts/{account_id}/entries", response_model=Statement, responses={404: {"model": Problem}})
def get_entries(account_id: str, session: SessionDep, limit: LimitQuery = 100, offset: OffsetQuery = 0
                ) -> dict[str, Any]:
    """The account's statement: its postings, newest first, paged."""
    return service.account_entries(session, account_id=account_id, limit=limit, offset=offset)


@router.get("/accounts/{account_id}/counterparties", response_model=Counterparties,
            responses={404: {"model": Problem}})
def get_counterparties(account_id: str, session: SessionDep) -> dict[str, Any]:
    """The accounts this account may transfer to, and from when."""
    return service.list_counterparties(session, account_id=account_id)


@router.post("/accounts/{account_id}/counterparties", response_model=Counterparty,
             status_code=status.HTTP_201_CREATED,
             responses={200: {"model": Counterparty, "description": "already trusted: unchanged"},
                        **CHANGE_RESPONSES})
def add_counterparty(account_id: str, body: CounterpartyRequest, actor: ActorDep, session: SessionDep,
                     response: Response, idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Trust an account as a recipient; effective after the delay (``COUNTERPARTY_DELAY``, 24 h)."""
    return answer_once(session, actor=actor, key=idempotency_key, operation=f"ledger.counterparty_add:{account_id}",
                body=body, response=response, change=lambda: service.add_counterparty(
                    session, actor=actor, account_id=account_id, counterparty_id=body.counterparty_id))


@router.delete("/accounts/{account_id}/counterparties/{counterparty_id}", response_model=Counterparty,
               responses=CHANGE_RESPONSES)
def remove_counterparty(account_id: str, counterparty_id: str, actor: ActorDep, session: SessionDep,
                        response: Response, idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Stop trusting an account, at once."""
    return answer_once(session, actor=actor, key=idempotency_key, operation="ledger.counterparty_remove",
                body={"account_id": account_id, "counterparty_id": counterparty_id}, response=response,
                change=lambda: service.remove_counterparty(session, actor=actor, account_id=account_id,
                                                           counterparty_id=counterparty_id))


@router.post("/transfers", response_model=LedgerAction, status_code=status.HTTP_201_CREATED,
             responses={202: {"model": LedgerAction, "description": "an officer's transfer, waiting for a second "
                                                                   "officer"}, **CHANGE_RESPONSES})
def create_transfer(body: TransferRequest, actor: ActorDep, session: SessionDep, response: Response,
                    idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Move units from your account to a trusted counterparty (201); an officer's transfer is proposed (202)."""
    return answer_once(session, actor=actor, key=idempotency_key,
                       operation="ledger.transfer", body=body, response=response,
                change=lambda: service.transfer(session, actor=actor, from_account=body.from_account,
                                                to_account=body.to_account, instrument=body.instrument,
                                                quantity=body.quantity, memo=body.memo))


@router.post("/deposits", response_model=LedgerAction, status_code=status.HTTP_202_ACCEPTED,
             responses=CHANGE_RESPONSES)
def create_deposit(body: DepositRequest, actor: ActorDep, session: SessionDep, response: Response,
                   idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Propose a deposit of simulated cash from the settlement bank (four eyes)."""
    return answer_once(session, actor=actor, key=idempotency_key,
                       operation="ledger.deposit", body=body, response=response,
                change=lambda: service.propose_deposit(session, actor=actor, account_id=body.account_id,
                                                       quantity=body.quantity, memo=body.memo))


@router.post("/reversals", response_model=LedgerAction, status_code=status.HTTP_202_ACCEPTED,
             responses=CHANGE_RESPONSES)
def create_reversal(body: ReversalRequest, actor: ActorDep, session: SessionDep, response: Response,
                    idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Propose the reversing entry of a journal entry (four eyes; retired units never move)."""
    return answer_once(session, actor=actor, key=idempotency_key,
                       operation="ledger.reversal", body=body, response=response,
                change=lambda: service.propose_reversal(session, actor=actor, entry_id=body.entry_id,
                                                        memo=body.memo))


@router.get("/encumbrances", response_model=Encumbrances)
def list_encumbrances(actor: ActorDep, session: SessionDep, limit: LimitQuery = 100, offset: OffsetQuery = 0,
                      account_id: Annotated[str | None, Query(max_length=64)] = None,
                      in_force: bool = True) -> dict[str, Any]:
    """Freezes and pledges (in force by default); an enterprise or trader user sees its own accounts'."""
    return encumbrance_service.list_encumbrances(session, actor=actor, account_id=account_id, in_force=in_force,
                                                 limit=limit, offset=offset)


@router.post("/freezes", response_model=EncumbranceOut, status_code=status.HTTP_201_CREATED,
             responses=CHANGE_RESPONSES)
def create_freeze(body: FreezeRequest, actor: ActorDep, session: SessionDep, response: Response,
                  idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Freeze available units at once (officer, with a reason)."""
    return answer_once(session, actor=actor, key=idempotency_key,
                       operation="ledger.freeze", body=body, response=response,
                change=lambda: encumbrance_service.freeze(session, actor=actor, account_id=body.account_id,
                                                          instrument=body.instrument, quantity=body.quantity,
                                                          reason=body.reason))


@router.post("/pledges", response_model=EncumbranceOut, status_code=status.HTTP_201_CREATED,
             responses=CHANGE_RESPONSES)
def create_pledge(body: PledgeRequest, actor: ActorDep, session: SessionDep, response: Response,
                  idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Pledge units of your own account to a lender account (your consent)."""
    return answer_once(session, actor=actor, key=idempotency_key,
                       operation="ledger.pledge", body=body, response=response,
                change=lambda: encumbrance_service.pledge(session, actor=actor, account_id=body.account_id,
                                                          instrument=body.instrument, quantity=body.quantity,
                                                          lender_account_id=body.lender_account_id,
                                                          reason=body.reason))


@router.post("/encumbrances/{encumbrance_id}/release", response_model=LedgerAction,
             status_code=status.HTTP_202_ACCEPTED, responses=CHANGE_RESPONSES)
def release_encumbrance(encumbrance_id: str, body: ReleaseRequest, actor: ActorDep, session: SessionDep,
                        response: Response, idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Propose releasing a freeze or pledge (four eyes)."""
    return answer_once(session, actor=actor, key=idempotency_key,
                       operation=f"ledger.release:{encumbrance_id}", body=body,
                response=response, change=lambda: encumbrance_service.propose_release(
                    session, actor=actor, encumbrance_id=encumbrance_id, reason=body.reason))


@router.get("/verify", response_model=VerifyReport)
def verify(session: SessionDep) -> dict[str, Any]:
    """Rebuild every balance from the journal, compare with the stored ones, check conservation per instrument."""
    return ledger_service.verify(session)

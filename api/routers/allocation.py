"""Free allocation: versioned plans, their preview, pre-allocation and true-up (four eyes)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    ActorDep,
    RequiredIdempotencyKeyDep,
    SessionDep,
    SettingsDep,
    answer_once,
    read_limited,
    replayed_form,
)
from api.errors import UnsupportedMediaTypeError
from api.schemas import ApprovalOut, Problem
from api.services import allocation

router = APIRouter(prefix="/v1/allocation", tags=["allocation"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}})

Version = Annotated[int, Path(ge=1, le=1_000_000, description="the plan version")]
PLAN_MEDIA_TYPES = ("text/plain", "application/toml", "text/toml", "text/x-toml", "multipart/form-data")


class PlanSummary(BaseModel):
    plan_id: str
    version: int
    year: int
    status: str = Field(description="loaded | proposed | pre_allocated | trued_up | superseded")
    content_sha256: str
    loaded_by: str
    loaded_at: datetime


class PlanAllocation(BaseModel):
    enterprise_id: str
    instrument: str = Field(description="CEA-<year> (t) or a pollutant (kg)")
    stage: str = Field(description="pre (allowances) or pollutant (discharge rights)")
    pre_allocation: int = Field(description="what the pre-allocation (or the permit) grants, whole units")
    issued_by_plan: int = Field(description="net issued so far under this plan id, any version")
    true_up: int | None
    basis: dict[str, Any] = Field(description="method, output, benchmark id, value and source, correction factors")


class Plan(PlanSummary):
    benchmark_edition: str
    pre_allocation_share: str
    allocations: list[PlanAllocation]
    pending_approvals: list[str]


class PlanList(BaseModel):
    items: list[PlanSummary]


class Proposal(BaseModel):
    plan: PlanSummary
    approval: ApprovalOut


class TrueUpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actual_outputs: dict[str, dict[str, int | Annotated[str, Field(pattern=r"^\d+(\.\d+)?$")]]] = Field(
        description="per enterprise, the verified actual output of each line (benchmark id or product), "
                    "as an integer or a decimal string", min_length=1)


class EnterpriseYear(BaseModel):
    year: int
    instrument: str
    pre_allocated_t: int
    true_up_t: int
    final_t: int
    shortfall_t: int = Field(description="taken back short: units the enterprise no longer held at true-up")
    owed_deducted_t: int = Field(description="deducted on issue for the previous year's shortfall, still owed "
                                             "after that year's close")
    pollutant_rights_kg: dict[str, int]
    moves: list[dict[str, Any]]


class EnterpriseAllocation(BaseModel):
    enterprise_id: str
    account_id: str
    years: list[EnterpriseYear]


async def _plan_text(request: Request, limit: int) -> tuple[str, str]:
    """The TOML text from the raw body (text/plain, application/toml) or a multipart ``file`` field."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in PLAN_MEDIA_TYPES:
        raise UnsupportedMediaTypeError(f"send the plan as TOML text (application/toml, text/plain) or as "
                                        f"multipart/form-data field 'file', not {media_type or 'no content type'}")
    body = await read_limited(request, limit=limit)
    name = "plan.toml"
    if media_type == "multipart/form-data":
        form = await replayed_form(request, body, limit=limit, max_fields=4)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                body = b""
            else:
                body = await upload.read()
                name = upload.filename or name
        finally:
            await form.close()
    try:
        return body.decode("utf-8-sig"), name
    except UnicodeDecodeError:
        return "", name


@router.post("/plans", response_model=Plan, status_code=201,
             responses={409: {"model": Problem}, 415: {"model": Problem}, 422: {"model": Problem}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/toml": {"schema": {"type": "string"}},
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "file": {"type": "string", "format": "binary"}}}}}}})
async def load_plan(request: Request, response: Response, session: SessionDep, actor: ActorDep,
                    settings: SettingsDep, idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Load a versioned allocation plan (TOML); every problem is listed with its row and field path."""
    text, name = await _plan_text(request, settings.max_upload_bytes)
    return answer_once(session, actor=actor, key=idempotency_key, response=response, operation="allocation.load_plan",
                       body={"content": text},
                       change=lambda: (201, allocation.load_plan(session, actor=actor, content=text, source=name)))


@router.get("/plans", response_model=PlanList)
def list_plans(session: SessionDep) -> PlanList:
    """Every loaded plan version, newest version first per plan."""
    return PlanList.model_validate({"items": allocation.list_plans(session)})


@router.get("/plans/{plan_id}/{version}", response_model=Plan, responses={404: {"model": Problem}})
def get_plan(plan_id: str, version: Version, session: SessionDep) -> dict[str, Any]:
    """A plan version with the allocation it computes per enterprise (a preview until carried out), with basis."""
    return allocation.get_plan(session, plan_id=plan_id, version=version)


@router.post("/plans/{plan_id}/{version}/pre-allocation", response_model=Proposal, status_code=202,
             responses={404: {"model": Problem}, 409: {"model": Problem}})
def propose_pre_allocation(plan_id: str, version: Version, response: Response, session: SessionDep, actor: ActorDep,
                           idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Propose the pre-allocation and pollutant rights; a second officer's approval carries them out."""
    return answer_once(session, actor=actor, key=idempotency_key, response=response, operation="allocation.pre",
                       body={"plan_id": plan_id, "version": version},
                       change=lambda: (202, allocation.propose_pre_allocation(session, actor=actor, plan_id=plan_id,
                                                                              version=version)))


@router.post("/plans/{plan_id}/{version}/true-up", response_model=Proposal, status_code=202,
             responses={404: {"model": Problem}, 409: {"model": Problem}})
def propose_true_up(plan_id: str, version: Version, body: TrueUpRequest, response: Response, session: SessionDep,
                    actor: ActorDep, idempotency_key: RequiredIdempotencyKeyDep) -> dict[str, Any]:
    """Propose the true-up of enterprises whose year is locked; a second officer's approval carries it out."""
    outputs = {e: {k: Decimal(str(v)) for k, v in lines.items()} for e, lines in body.actual_outputs.items()}
    return answer_once(session, actor=actor, key=idempotency_key, response=response, operation="allocation.true_up",
                       body={"plan_id": plan_id, "version": version, **body.model_dump(mode="json")},
                       change=lambda: (202, allocation.propose_true_up(session, actor=actor, plan_id=plan_id,
                                                                       version=version, actual_outputs=outputs)))


@router.get("/enterprises/{enterprise_id}", response_model=EnterpriseAllocation, responses={404: {"model": Problem}})
def enterprise_allocation(enterprise_id: str, session: SessionDep) -> dict[str, Any]:
    """An enterprise's free allocation per year: pre-allocation, true-up and final, with the basis of each move."""
    return allocation.enterprise_allocation(session, enterprise_id=enterprise_id)

"""Review workflow: period states, the review queue, review actions and comments, evidence, audit log.

Who acts comes from the request (``ActorDep``); what each role may see and do is decided by the
services (``api.services.review``, ``review_views``, ``evidence``), and refusals become problems
in ``api.errors`` only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile

from api.deps import ActorDep, LimitQuery, OffsetQuery, SessionDep, SettingsDep, read_limited, replayed_form
from api.errors import UnsupportedMediaTypeError
from api.schemas import Problem
from api.services import evidence as evidence_service
from api.services import review as review_service
from api.services import review_views
from api.store.review import QueueFilter

router = APIRouter(prefix="/v1/review", tags=["review"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}})

PERIOD_PATTERN = r"^\d{4}(-(0[1-9]|1[0-2]))?$"
StatusName = Literal["submitted", "calculated", "in_review", "verified", "locked", "rejected", "reopened"]
ActionName = Literal["start_review", "comment", "recommend", "approve", "reject", "lock", "reopen"]
EnterprisePath = Annotated[str, Path(min_length=1, max_length=18, description="unified social credit code")]
PeriodPath = Annotated[str, Path(pattern=PERIOD_PATTERN, description="YYYY-MM (a month) or YYYY (a year)")]

# ---------------------------------------------------------------------------------------------
# Models


class ActionRequest(BaseModel):
    """A review action on one enterprise-period; ``expected_version`` makes it refuse a state it did not see."""

    model_config = ConfigDict(extra="forbid")

    action: ActionName
    reason: str | None = Field(None, max_length=4000, description="the comment or reason (required by comment,"
                               " recommend, reject and reopen)")
    expected_version: int | None = Field(None, ge=0, description="the version the client saw; 409 if it changed")
    row_number: int | None = Field(None, ge=1, description="the row of the submitted file a comment is about")
    recommendation: Literal["approve", "reject"] | None = Field(None, description="with action recommend")

    @model_validator(mode="after")
    def _recommendation_goes_with_recommend(self) -> ActionRequest:
        if (self.action == "recommend") != (self.recommendation is not None):
            raise ValueError("a recommendation (approve or reject) is sent with action recommend, and only with it")
        return self


class CalculationSummary(BaseModel):
    calculation_id: str
    run_id: str
    edition: str
    ruleset: str
    grid_region: str
    gwp_set: str
    net_tco2e: float
    totals: dict[str, float | None]
    submission_ids: list[str]
    is_substituted: bool
    created_at: datetime


class ReviewEventOut(BaseModel):
    action: str
    from_status: str
    to_status: str
    actor_id: str
    role: str
    comment: str | None
    row_number: int | None
    recommendation: str | None
    at: datetime


class VerifiedVersion(BaseModel):
    version: int
    net_tco2e: float
    totals: dict[str, float | None]
    calculation_ids: list[str]
    locked_by: str
    locked_at: datetime
    reason: str | None
    diff: dict[str, dict[str, float]] | None


class PeriodState(BaseModel):
    enterprise_id: str
    period: str
    status: str
    version: int
    held: bool
    held_reasons: list[dict[str, Any]]
    is_substituted: bool
    submission_id: str | None
    calculation_id: str | None
    updated_at: datetime
    updated_by: str


class PeriodView(PeriodState):
    """The current state, the calculation behind it, verified versions (years) and the history with comments."""

    calculation: CalculationSummary | None
    verified: list[VerifiedVersion]
    history: list[ReviewEventOut]


class QueueItem(PeriodState):
    name: str | None
    sector_code: str | None
    category: str | None
    net_tco2e: float | None


class QueuePage(BaseModel):
    items: list[QueueItem]
    total: int
    limit: int
    offset: int


class EvidenceLinkOut(BaseModel):
    enterprise_id: str
    period: str
    submission_id: str | None
    row_number: int | None
    linked_by: str
    linked_at: datetime


class EvidenceRecord(BaseModel):
    sha256: str
    filename: str
    media_type: str
    size_bytes: int
    uploaded_by: str
    uploaded_at: datetime
    link: EvidenceLinkOut | None
    created: bool | None = Field(None, description="on upload: whether this request stored the file")
    linked: bool | None = Field(None, description="on upload: whether this request added the link")


class EvidenceList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[EvidenceRecord]


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor_id: str
    role: str
    action: str
    target: str
    before_hash: str | None
    after_hash: str | None
    detail: dict[str, Any]
    prev_hash: str
    entry_hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    total: int
    limit: int
    offset: int


class AuditProblem(BaseModel):
    seq: int
    code: str
    detail: str


class AuditVerification(BaseModel):
    entries: int
    intact: bool
    problems: list[AuditProblem]


# ---------------------------------------------------------------------------------------------
# Periods and the queue


@router.get("/queue", response_model=QueuePage)
def review_queue(
    session: SessionDep, actor: ActorDep,
    status_: Annotated[list[StatusName], Query(alias="status", description="repeatable")] = [],  # noqa: B006
    sector_code: str | None = None,
    category: str | None = None,
    held: Annotated[bool | None, Query(description="true: held back by data-quality checks")] = None,
    period: Annotated[str | None, Query(pattern=r"^\d{4}(-(0[1-9]|1[0-2]))?$",
                                        description="a year (2024) or a month (2024-03)")] = None,
    enterprise_id: str | None = None,
    limit: LimitQuery = 100,
    offset: OffsetQuery = 0,
) -> QueuePage:
    """Enterprise-periods to review, by period then enterprise; an enterprise user sees only its own."""
    where = QueueFilter(statuses=tuple(status_), sector_code=sector_code, category=category, held=held,
                        period_prefix=period, enterprise_id=enterprise_id)
    return QueuePage.model_validate(review_views.queue(session, actor=actor, where=where, limit=limit, offset=offset))


@router.get("/periods/{enterprise_id}/{period}", response_model=PeriodView, responses={404: {"model": Problem}})
def get_period(enterprise_id: EnterprisePath, period: PeriodPath, session: SessionDep, actor: ActorDep) -> PeriodView:
    """State, calculation with totals, and history (comments per line included) of one enterprise-period."""
    return PeriodView.model_validate(review_views.period_view(session, actor=actor, enterprise_id=enterprise_id,
                                                              period=period))


@router.post("/periods/{enterprise_id}/{period}/actions", response_model=PeriodView,
             responses={404: {"model": Problem}, 409: {"model": Problem}})
def act(enterprise_id: EnterprisePath, period: PeriodPath, body: ActionRequest, session: SessionDep,
        actor: ActorDep) -> PeriodView:
    """Take a review action; 409 with the current state when the period changed or the action does not apply."""
    review_service.act(session, actor=actor, enterprise_id=enterprise_id, period=period, action=body.action,
                       reason=body.reason, expected_version=body.expected_version, row_number=body.row_number,
                       recommendation=body.recommendation)
    return PeriodView.model_validate(review_views.period_view(session, actor=actor, enterprise_id=enterprise_id,
                                                              period=period))


@router.get("/periods/{enterprise_id}/{period}/evidence", response_model=EvidenceList,
            responses={404: {"model": Problem}})
def list_period_evidence(enterprise_id: EnterprisePath, period: PeriodPath, session: SessionDep,
                         actor: ActorDep, limit: LimitQuery = 100, offset: OffsetQuery = 0) -> EvidenceList:
    """Evidence linked to the enterprise-period or to its lines, oldest link first."""
    return EvidenceList.model_validate(evidence_service.period_evidence(
        session, actor=actor, enterprise_id=enterprise_id, period=period, limit=limit, offset=offset))


# ---------------------------------------------------------------------------------------------
# Evidence


class _EvidenceUpload(BaseModel):
    filename: str | None
    content: bytes
    media_type: str | None
    enterprise_id: str | None = Field(None, min_length=1, max_length=18)
    period: str | None = Field(None, pattern=PERIOD_PATTERN)
    submission_id: str | None = Field(None, min_length=1, max_length=36)
    row_number: int | None = Field(None, ge=1)


async def _read_evidence(request: Request, *, limit: int) -> _EvidenceUpload:
    """The multipart form (field ``file`` plus optional link fields), refused with 413 past ``limit`` bytes."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "multipart/form-data":
        raise UnsupportedMediaTypeError(f"send the evidence as multipart/form-data (field 'file'), not"
                                        f" {media_type or 'no content type'}")
    body = await read_limited(request, limit=limit)
    form = await replayed_form(request, body, limit=limit, max_fields=8)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise RequestValidationError([{"loc": ("body", "file"), "msg": "a file in the multipart field 'file'",
                                           "type": "missing"}])
        fields = {k: v for k in ("enterprise_id", "period", "submission_id", "row_number")
                  if isinstance(v := form.get(k), str) and v.strip()}
        try:
            return _EvidenceUpload.model_validate({"filename": upload.filename, "content": await upload.read(),
                                                   "media_type": upload.content_type, **fields})
        except ValidationError as err:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
                                         ) from err
    finally:
        await form.close()


@router.post("/evidence", response_model=EvidenceRecord, status_code=status.HTTP_201_CREATED,
             responses={200: {"model": EvidenceRecord, "description": "the same bytes were stored before"},
                        413: {"model": Problem}, 415: {"model": Problem}},
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["file"], "properties": {
                     "file": {"type": "string", "format": "binary"}, "enterprise_id": {"type": "string"},
                     "period": {"type": "string", "pattern": PERIOD_PATTERN}, "submission_id": {"type": "string"},
                     "row_number": {"type": "integer", "minimum": 1}}}}}}})
async def upload_evidence(request: Request, session: SessionDep, settings: SettingsDep, actor: ActorDep,
                          response: Response) -> EvidenceRecord:
    """Store a file by its SHA-256 (201; 200 when the same bytes are stored already) and link it to a period or line."""
    upload = await _read_evidence(request, limit=settings.max_upload_bytes)
    target = evidence_service.link_target(enterprise_id=upload.enterprise_id, period=upload.period,
                                          submission_id=upload.submission_id, row_number=upload.row_number)
    outcome = evidence_service.store_evidence(session, actor=actor, filename=upload.filename, content=upload.content,
                                              media_type=upload.media_type, target=target)
    response.headers["Location"] = f"{router.prefix}/evidence/{outcome.record['sha256']}"
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return EvidenceRecord.model_validate({**outcome.record, "created": outcome.created, "linked": outcome.linked})


@router.get("/evidence/{sha256}", response_class=Response, responses={
    200: {"content": {"application/octet-stream": {}}, "description": "the file's exact bytes"},
    404: {"model": Problem}})
def download_evidence(sha256: Annotated[str, Path(pattern=r"^[0-9a-fA-F]{64}$")], session: SessionDep,
                      actor: ActorDep) -> Response:
    """The stored bytes of an evidence file, under its first name."""
    evidence = evidence_service.evidence_file(session, actor=actor, sha256=sha256)
    return Response(content=evidence.content, media_type=evidence.media_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(evidence.filename)}",
        "ETag": f'"{evidence.sha256}"', "X-Content-Type-Options": "nosniff"})


# ---------------------------------------------------------------------------------------------
# Audit log


@router.get("/audit", response_model=AuditPage)
def audit_log(
    session: SessionDep, actor: ActorDep,
    target: Annotated[str | None, Query(description="prefix, e.g. period:914101022286058318:2024")] = None,
    actor_id: str | None = None,
    action: Annotated[str | None, Query(description="e.g. review.approve, submission.accept")] = None,
    limit: LimitQuery = 100,
    offset: OffsetQuery = 0,
) -> AuditPage:
    """Audit entries, newest first (officers and data engineers)."""
    return AuditPage.model_validate(review_views.audit_log(session, actor=actor, target=target, actor_id=actor_id,
                                                           action=action, limit=limit, offset=offset))


@router.get("/audit/verify", response_model=AuditVerification)
def verify_audit(session: SessionDep, actor: ActorDep) -> AuditVerification:
    """Check the whole hash chain: any edited, deleted or missing entry is named (officers and data engineers)."""
    return AuditVerification.model_validate(review_views.verify_audit(session, actor=actor))

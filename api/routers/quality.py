"""Data quality: findings per enterprise-period, completeness of key emitters, factor-edition checks, data docs.

Who sees what: verifier, officer and engineer the whole zone; an enterprise user only its own
enterprises (another enterprise's id is refused with 403). The response models live here, next to
the only routes that use them.
"""

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ActorDep, LibraryDep, LimitQuery, OffsetQuery, SessionDep, SettingsDep
from api.errors import NotFoundError
from api.schemas import Problem
from api.services import quality as service
from api.store.serving import SnapshotReader, SnapshotUnavailableError

router = APIRouter(prefix="/v1/quality", tags=["quality"], responses={401: {"model": Problem}, 403: {"model": Problem}})

PERIOD_PATTERN = r"^\d{4}(-(0[1-9]|1[0-2]))?$"


class DueMonths(BaseModel):
    first: str
    last: str
    count: int


class KeyEmitter(BaseModel):
    enterprise_id: str
    name: str
    declared: bool = Field(description="declared a key emitter in the registry")
    flagged_by_balances: bool = Field(description="at or above a threshold in its latest published yearly balance")


class MissingMonths(BaseModel):
    enterprise_id: str
    name: str
    missing: list[str] = Field(description="due months without a submission in force, oldest first")
    substituted: list[str] = Field(description="those of the missing months an officer substituted")


class Completeness(BaseModel):
    as_of: date
    first_period: str
    deadline_day: int
    due_months: DueMonths | None = Field(description="months whose deadline has passed at as_of (None: none yet)")
    key_emitters: list[KeyEmitter]
    missing: list[MissingMonths]
    missing_count: int


class QualityFinding(BaseModel):
    id: int
    enterprise_id: str
    period: str
    rule: str
    severity: str = Field(description="hold (keeps the period from approval) or warn")
    detail: dict[str, Any] = Field(description="metric, value, expected range, message; file and row where known")
    run_id: str
    recorded_at: str
    submission_id: str | None = Field(description="the period's current submission")
    status: str | None = Field(description="the period's review status")
    held: bool = Field(description="the period is held back by data-quality checks now")


class QualityFindings(BaseModel):
    run_id: str | None = Field(description="the pipeline run whose findings these are (the latest recorded)")
    recorded_at: str | None
    total: int
    limit: int
    offset: int
    items: list[QualityFinding]


class FactorCheckFinding(BaseModel):
    model_config = ConfigDict(extra="allow")

    check: str
    factor_ids: list[str]
    subject: str
    message: str
    blocking: bool


class FactorCheck(BaseModel):
    edition: str
    previous_edition: str | None
    passed: bool
    findings: list[FactorCheckFinding]


def get_published_key_emitters(request: Request) -> dict[str, bool]:
    """Key-emitter flags of the published yearly balances; empty before the first publication."""
    reader: SnapshotReader = request.app.state.snapshot_reader
    try:
        with reader.cursor() as cursor:
            return service.published_key_emitters(cursor)
    except SnapshotUnavailableError:
        return {}


PublishedKeyEmittersDep = Annotated[dict[str, bool], Depends(get_published_key_emitters)]


@router.get("/completeness", response_model=Completeness)
def completeness(session: SessionDep, settings: SettingsDep, actor: ActorDep, published: PublishedKeyEmittersDep,
                 as_of: Annotated[date | None, Query(description="YYYY-MM-DD (default: today, UTC)")] = None,
                 ) -> Completeness:
    """Key emitters missing a submission for a month whose deadline has passed, and which months."""
    found = service.completeness(session, settings=settings, actor=actor, as_of=as_of or datetime.now(UTC).date(),
                                 published_key_emitters=published)
    return Completeness.model_validate(found)


@router.get("/findings", response_model=QualityFindings)
def findings(session: SessionDep, actor: ActorDep,
             enterprise_id: str | None = None,
             period: Annotated[str | None, Query(pattern=PERIOD_PATTERN)] = None,
             rule: str | None = None,
             severity: Annotated[str | None, Query(pattern=r"^(hold|warn)$")] = None,
             limit: LimitQuery = 100, offset: OffsetQuery = 0) -> QualityFindings:
    """The data-quality findings of the latest pipeline run, with each period's current submission and state."""
    return QualityFindings.model_validate(service.current_findings(
        session, actor=actor, enterprise_id=enterprise_id, period=period, rule=rule, severity=severity,
        limit=limit, offset=offset))


@router.get("/factor-check", response_model=FactorCheck, responses={422: {"model": Problem}})
def factor_check(library: LibraryDep, actor: ActorDep,
                 edition: Annotated[str | None, Query(description="default: the latest edition")] = None,
                 ) -> FactorCheck:
    """The factor edition against the one before it (likely unit errors) and China against IPCC for oil and gas."""
    return FactorCheck.model_validate(service.factor_check(library, edition=edition))


def _docs_file(settings: SettingsDep, path: str) -> Path:
    found = service.data_docs_file(settings, path)
    if found is None:
        raise NotFoundError(f"no data-docs page {path!r}", code="data_docs_page_not_found")
    return found


@router.get("/data-docs/", response_class=FileResponse, responses={503: {"model": Problem}, 404: {"model": Problem}})
def data_docs_index(settings: SettingsDep) -> FileResponse:
    """The Great Expectations data docs of the latest plausibility run (HTML)."""
    return FileResponse(_docs_file(settings, ""))


@router.get("/data-docs/{path:path}", response_class=FileResponse,
            responses={503: {"model": Problem}, 404: {"model": Problem}})
def data_docs_page(settings: SettingsDep, path: str) -> FileResponse:
    """A page or asset of the data docs; nothing outside their folder is ever served."""
    return FileResponse(_docs_file(settings, path))

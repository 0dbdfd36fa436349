"""Substitution of missing months and restatement diffs.

Who acts comes from the request (``ActorDep``); the services decide what each role may do
(``api.services.substitution``, ``api.services.restatement``), and refusals become problems in
``api.errors`` only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ActorDep, LibraryDep, LimitQuery, OffsetQuery, SessionDep, SettingsDep
from api.schemas import Problem
from api.services import restatement as restatement_service
from api.services import substitution as substitution_service

router = APIRouter(prefix="/v1/restatements", tags=["restatements"],
                   responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}})

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


class SubstitutionRequest(BaseModel):
    """Substitute a missing month of a key emitter (officer only); ``rule`` defaults to the configured one."""

    model_config = ConfigDict(extra="forbid")

    enterprise_id: str = Field(min_length=1, max_length=18)
    period: str = Field(pattern=MONTH_PATTERN, description="the missing month, YYYY-MM")
    reason: str = Field(min_length=1, max_length=4000)
    rule: str | None = Field(None, max_length=64, description="default: the service's substitution_rule")
    expected_version: int | None = Field(None, ge=0, description="the version of the month the client saw")


class ReviewState(BaseModel):
    enterprise_id: str
    period: str
    status: str
    version: int
    submission_id: str | None
    calculation_id: str | None
    is_substituted: bool


class SubstitutionOut(BaseModel):
    """A stored substitution: the rule, the month it copied, the totals it put in place, who and why."""

    substitution_id: str
    enterprise_id: str
    period: str
    rule: str
    basis_period: str
    totals: dict[str, float | None]
    net_tco2e: float | None
    actor_id: str
    reason: str
    created_at: datetime


class SubstitutionCreated(SubstitutionOut):
    calculation_id: str
    review: ReviewState


class Substitutions(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SubstitutionOut]


class RestatementReport(BaseModel):
    """The restatement diff: each enterprise-period that moves, by how much, and why (factors, lines, data)."""

    factor_edition: str
    basis_editions: list[str]
    options: dict[str, Any]
    factor_changes: list[dict[str, Any]]
    summary: dict[str, Any]
    periods: list[dict[str, Any]]
    refused_files: list[dict[str, Any]]
    waiting_for_calculation: list[dict[str, str]]


@router.post("/substitutions", response_model=SubstitutionCreated, status_code=status.HTTP_201_CREATED,
             responses={404: {"model": Problem}, 409: {"model": Problem}})
def create_substitution(body: SubstitutionRequest, actor: ActorDep, session: SessionDep,
                        settings: SettingsDep) -> dict[str, Any]:
    """Put a conservative value in place of a missing month (officer, with a reason)."""
    return substitution_service.substitute(session, settings=settings, actor=actor, enterprise_id=body.enterprise_id,
                                           period=body.period, reason=body.reason, rule=body.rule,
                                           expected_version=body.expected_version)


@router.get("/substitutions", response_model=Substitutions)
def list_substitutions(actor: ActorDep, session: SessionDep,
                       enterprise_id: Annotated[str | None, Query(max_length=18)] = None,
                       limit: LimitQuery = 100, offset: OffsetQuery = 0) -> Substitutions:
    """The substitutions, newest first (an enterprise user: of its own enterprises only)."""
    return Substitutions.model_validate(substitution_service.list_substitutions(
        session, actor=actor, enterprise_id=enterprise_id, limit=limit, offset=offset))


@router.get("/diff", response_model=RestatementReport)
def diff(actor: ActorDep, session: SessionDep, settings: SettingsDep, library: LibraryDep,
         factor_edition: Annotated[str | None, Query(max_length=32, description="default: the configured edition,"
                                                     " else the latest")] = None) -> dict[str, Any]:
    """The restatement diff under ``factor_edition`` (a dry run: nothing is stored or reopened)."""
    restatement_service.require_reviewer(actor)
    report = restatement_service.restatement_report(session, settings=settings, factor_edition=factor_edition,
                                                    library=library)
    session.rollback()
    return report

"""The zone's enterprise registry, with each enterprise's latest-year key-emitter status."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ActorDep, LimitQuery, OffsetQuery, SnapshotDep
from api.errors import NotFoundError
from api.schemas import Enterprise, EnterprisePage, Problem, enterprise_from_row
from api.store import serving

router = APIRouter(prefix="/v1/enterprises", tags=["registry"], responses={503: {"model": Problem}})


@router.get("", response_model=EnterprisePage)
def list_enterprises(
    cursor: SnapshotDep,
    actor: ActorDep,
    category: str | None = None,
    sector_code: str | None = None,
    key_emitter: Annotated[bool | None, Query(
        description="latest published year's status; false also lists enterprises without balances")] = None,
    limit: LimitQuery = 100,
    offset: OffsetQuery = 0,
) -> EnterprisePage:
    """Registered enterprises by id, filtered and paginated; ``total`` counts every match.

    An enterprise user sees its own enterprises only.
    """
    only = actor.enterprise_ids if actor.role == "enterprise" else None
    rows, total = serving.list_enterprises(cursor, category=category, sector_code=sector_code,
                                           key_emitter=key_emitter, only=only, limit=limit, offset=offset)
    return EnterprisePage(items=[enterprise_from_row(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{enterprise_id}", response_model=Enterprise, responses={404: {"model": Problem}})
def get_enterprise(enterprise_id: str, cursor: SnapshotDep) -> Enterprise:
    """One registered enterprise; 404 when the registry does not list it."""
    row = serving.get_enterprise(cursor, enterprise_id=enterprise_id)
    if row is None:
        raise NotFoundError(f"no enterprise {enterprise_id!r} in the registry", code="enterprise_not_found")
    return enterprise_from_row(row)

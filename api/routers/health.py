"""Liveness and readiness: the process answers; the snapshot and the database are usable."""

from fastapi import APIRouter, Request

from api.deps import SnapshotDep
from api.schemas import Health, Problem, Readiness
from api.store import db, serving
from api.store.serving import SnapshotReader

router = APIRouter(tags=["health"])

#: What readiness requires of the snapshot: the tables every read endpoint queries.
REQUIRED_TABLES = [
    "core_registry__enterprises", "core_factors__factors", "core_emissions__monthly_lines",
    "out_emissions__monthly_enterprise_balances", "out_emissions__yearly_enterprise_balances",
    "out_zone__monthly_indicators",
]


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up; says nothing of its data (that is ``/readyz``)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Problem}})
def readyz(request: Request, cursor: SnapshotDep) -> Readiness:
    """Ready when the published snapshot holds every served table and the database answers."""
    counts = serving.table_counts(cursor, tables=REQUIRED_TABLES)
    db.ping(request.app.state.engine)
    reader: SnapshotReader = request.app.state.snapshot_reader
    return Readiness(status="ready", snapshot=str(reader.path), tables=counts, database="ok")

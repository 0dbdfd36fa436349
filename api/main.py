"""The FastAPI application: ``create_app(settings)`` builds it; the lifespan opens what requests share.

Nothing happens at import time: uvicorn calls the factory (``uvicorn api.main:create_app --factory``)
and tests call it with their own ``Settings``. The lifespan creates the database tables
(``metadata.create_all`` until Alembic arrives), opens and verifies the factor library once, and
prepares the snapshot reader (which opens the published snapshot lazily, per request, so the API
starts, and answers 503, before the first ``carbon run``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from accounting.factors import load_library
from api.errors import install_error_handlers
from api.routers import ROUTERS
from api.store import db
from api.store.serving import SnapshotReader
from pipelines.settings import Settings, get_settings

DESCRIPTION = """Carbon and emissions accounting for the Zhengzhou high-tech zone.

Published results (registry, balances, lineage, zone indicators) are read from the snapshot the
pipeline publishes; calculations compute without storing; submissions hand files to the pipeline.
Errors are `application/problem+json` with a stable `code`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; ``settings`` (tests) replaces ``get_settings()`` (environment) everywhere."""
    resolved = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.create_db_engine(resolved.database)
        db.create_schema(engine)
        app.state.engine = engine
        app.state.sessions = db.make_session_factory(engine)
        app.state.library = load_library()
        app.state.snapshot_reader = SnapshotReader(path=resolved.serving)
        try:
            yield
        finally:
            app.state.snapshot_reader.close()
            engine.dispose()

    app = FastAPI(title="Zone carbon accounting API", version="1", description=DESCRIPTION, lifespan=lifespan)
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app

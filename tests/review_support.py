"""A small zone in a database of its own, with its periods calculated, for the review and audit tests.

Why not a Dagster run per test: the review tests need a fresh database per test and per backend
(SQLite and PostgreSQL), and a run costs seconds. The periods are moved to ``calculated`` by the
very service the pipeline's last asset calls (``record_calculations``), with the balances that the
real pipeline published for the same sample files (the session fixture ``published_zone``): the
same bytes, so the same submissions behind each balance. Tests that need a new calculation (a
correction) run ``materialize_all`` for real.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from api.services.review import record_calculations
from api.store.db import create_db_engine, make_session_factory, session_factory
from api.store.schema import AuditHead, PeriodReview, metadata
from pipelines.settings import Settings
from pipelines.warehouse import BALANCES_WITH_SOURCES_SQL
from tests.auth_support import OFFICER
from tests.conftest import SAMPLE_DIR, zone_settings
from tests.support import load_zone

CHP_PLANT = "914101022286058318"  # coal-fired CHP, sector 4412, heat_power_supplier
GAS_HEATING = "91410102170679896E"  # sector 4430, heat_power_supplier
CEMENT_PLANT = "91410100437387498P"


def sample_rows(month: str) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a sample month, each row with its file row number under ``_row``."""
    text_ = (SAMPLE_DIR / "activity" / f"{month}.csv").read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text_))
    rows = [{**row, "_row": str(number)} for number, row in enumerate(reader, start=2)]
    return list(reader.fieldnames or []), rows


def to_csv(header: list[str], rows: Iterable[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def enterprise_month(enterprise_id: str, month: str, **changes: str) -> bytes:
    """The sample lines of one enterprise-month as a file of their own, with ``changes`` applied to every line."""
    header, rows = sample_rows(month)
    return to_csv(header, ({**r, **changes} for r in rows if r["enterprise_id"] == enterprise_id))


def record_published(settings: Settings, published: Settings, *, months: Iterable[str]) -> dict[str, int]:
    """Record the balances the pipeline published for ``months`` (and their complete years) as calculations."""
    wanted = set(months)
    years = {m[:4] for m in wanted}
    wanted |= {y for y in years if all(f"{y}-{i:02d}" in wanted for i in range(1, 13))}
    with duckdb.connect(str(published.serving), read_only=True) as conn:
        balances = conn.execute(BALANCES_WITH_SOURCES_SQL).df()
    balances = balances[balances["period"].isin(sorted(wanted))]
    records = balances.astype(object).where(balances.notna(), None).to_dict(orient="records")
    with session_factory(settings)() as session:
        return record_calculations(session, balances=records, run_id="published-sample-zone")


@dataclass
class Zone:
    settings: Settings
    client: TestClient
    sessions: sessionmaker[Session]

    def state(self, enterprise_id: str, period: str, headers: dict[str, str] = OFFICER) -> dict[str, Any]:
        response = self.client.get(f"/v1/review/periods/{enterprise_id}/{period}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def act(self, enterprise_id: str, period: str, action: str, headers: dict[str, str] = OFFICER,
            **body: Any) -> Any:
        return self.client.post(f"/v1/review/periods/{enterprise_id}/{period}/actions", headers=headers,
                                json={"action": action, **body})

    def footprint(self) -> dict[str, Any]:
        """Row counts of every table, every period's state and version, and the audit head."""
        with self.sessions() as session:
            counts = {t.name: session.scalar(select(func.count()).select_from(t)) for t in metadata.sorted_tables}
            states = sorted(tuple(r) for r in session.execute(select(
                PeriodReview.enterprise_id, PeriodReview.period, PeriodReview.status, PeriodReview.version)).all())
            head = tuple(session.execute(select(AuditHead.seq, AuditHead.entry_hash)).one())
        return {"counts": counts, "states": states, "head": head}

    def execute(self, sql: str) -> None:
        """Run raw SQL on the zone's database, outside the application (a tamperer's view)."""
        engine = create_db_engine(self.settings.database)
        try:
            with engine.connect() as connection:
                connection.execute(text(sql))
                connection.commit()
        finally:
            engine.dispose()


@contextmanager
def review_zone(data_dir: Path, *, database_url: str, published: Settings,
                months: Iterable[str] = ("2024-01", "2024-02"), **changes: Any) -> Iterator[Zone]:
    """The sample registry and ``months`` submitted and calculated in ``database_url``, and an API client over it."""
    settings = zone_settings(data_dir, database_url=database_url, **changes)
    months = tuple(months)
    load_zone(settings, months=months)
    record_published(settings, published, months=months)
    engine = create_db_engine(settings.database)
    try:
        with TestClient(create_app(settings)) as client:
            yield Zone(settings=settings, client=client, sessions=make_session_factory(engine))
    finally:
        engine.dispose()
        session_factory(settings).kw["bind"].dispose()

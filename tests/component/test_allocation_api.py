"""Free allocation through the API (issue 5 §2): plan loading, preview, pre-allocation and true-up with four eyes.

The numbers are checked by hand against the zone-defined 2024 rows of factors/benchmarks/2026.1.csv.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from accounting.ledger import transfer_entry
from accounting.review import Actor
from api.main import create_app
from api.services.ledger import ensure_system_accounts, new_entry_id, open_account, post, verify
from api.services.registry import import_registry
from api.store.db import create_db_engine, make_session_factory, session_factory
from api.store.schema import AllocationRow, JournalEntryRow, LedgerBalance, PeriodReview, VerifiedEmissions
from tests.auth_support import OFFICER, OFFICER_2, VERIFIER, enterprise
from tests.conftest import zone_settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_PLAN = (ROOT / "data" / "sample" / "allocation" / "plan-2024.toml").read_text(encoding="utf-8")
CHP, GAS, CEMENT, GLASS = "914101022286058318", "91410102170679896E", "91410100437387498P", "91410102438943329L"
SYSTEM = Actor(actor_id="test-setup", role="officer")


@dataclass
class Zone:
    client: TestClient
    sessions: sessionmaker[Session]

    def post(self, url: str, headers: dict[str, str], **kwargs: Any) -> Any:
        return self.client.post(url, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, **kwargs)

    def balance(self, account_id: str, instrument: str) -> int:
        with self.sessions() as session:
            row = session.get(LedgerBalance, (account_id, instrument))
            return row.quantity if row else 0

    def decide(self, approval: dict[str, Any], headers: dict[str, str], decision: str = "approve") -> Any:
        return self.post(f"/v1/approvals/{approval['approval_id']}/decision", headers,
                         json={"decision": decision, "payload_digest": approval["payload_digest"]})

    def verified(self) -> dict[str, Any]:
        with self.sessions() as session:
            return verify(session)

    def entries(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(JournalEntryRow)) or 0)


@pytest.fixture
def zone(tmp_path: Path, database_url: str) -> Iterator[Zone]:
    settings = zone_settings(tmp_path, database_url=database_url)
    with session_factory(settings)() as session:
        import_registry(session, content=(ROOT / "data" / "sample" / "enterprises.csv").read_bytes(),
                        source="enterprises.csv", actor=Actor(actor_id="test-loader", role="engineer"))
        ensure_system_accounts(session)
        session.commit()
    engine = create_db_engine(settings.database)
    try:
        with TestClient(create_app(settings)) as client:
            yield Zone(client=client, sessions=make_session_factory(engine))
    finally:
        engine.dispose()
        session_factory(settings).kw["bind"].dispose()


def load(zone: Zone, text: str = SAMPLE_PLAN) -> Any:
    return zone.client.post("/v1/allocation/plans", content=text.encode(), headers={
        **OFFICER, "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/toml"})


def lock_year(zone: Zone, enterprise_id: str, year: int = 2024) -> None:
    """The enterprise-year locked with its verified emissions, as the review workflow leaves it."""
    now = datetime.now(UTC)
    with zone.sessions() as session:
        session.add(PeriodReview(enterprise_id=enterprise_id, period=str(year), status="locked", version=1,
                                 updated_at=now, updated_by="officer-li"))
        session.add(VerifiedEmissions(enterprise_id=enterprise_id, year=str(year), version=1,
                                      totals={"net_tco2e": 1000.0}, net_tco2e=1000.0, calculation_ids=[],
                                      locked_by="officer-li", locked_at=now))
        session.commit()


def pre_allocate(zone: Zone) -> dict[str, Any]:
    assert load(zone).status_code == 201
    proposed = zone.post("/v1/allocation/plans/zone-2024-free/1/pre-allocation", OFFICER)
    assert proposed.status_code == 202, proposed.text
    decided = zone.decide(proposed.json()["approval"], OFFICER_2)
    assert decided.status_code == 200, decided.text
    result: dict[str, Any] = decided.json()["result"]
    return result


BAD_PLAN = """
plan_id = "zone-2024-free"
version = 1
year = 2024
benchmark_edition = "2026.1"

[[enterprises]]
enterprise_id = "91410100MA0000000X"
method = "benchmark"
lines = [{ benchmark_id = "zone-heat-gas", base_year_output = 1000 }]

[[enterprises]]
enterprise_id = "914101022286058318"
method = "benchmark"
lines = [{ benchmark_id = "power-coal-above-300mw", base_year_output = 1000 }]
"""


def test_a_plan_with_errors_is_refused_with_every_problem_and_its_path(zone: Zone) -> None:
    syntax = load(zone, 'plan_id = ""\nversion = 0\nyear = 2024\nbenchmark_edition = "x"\n')
    assert syntax.status_code == 422
    paths = {(e["column"], e["code"]) for e in syntax.json()["errors"]}
    assert {("plan_id", "missing_value"), ("version", "invalid_value"),
            ("benchmark_edition", "unknown_benchmark_edition"), ("enterprises", "missing_value")} <= paths
    zone_errors = load(zone, BAD_PLAN)
    assert zone_errors.status_code == 422
    assert [(e["row"], e["column"], e["code"]) for e in zone_errors.json()["errors"]] == [
        (1, "enterprises[1].enterprise_id", "unknown_enterprise"),
        (2, "enterprises[2].lines[0].benchmark_id", "benchmark_not_valid_for_year"),
    ]
    no_key = zone.client.post("/v1/allocation/plans", content=SAMPLE_PLAN.encode(),
                              headers={**OFFICER, "Content-Type": "application/toml"})
    assert no_key.status_code == 422
    assert zone.client.get("/v1/allocation/plans", headers=OFFICER).json()["items"] == []


def test_the_preview_shows_each_enterprise_with_its_basis(zone: Zone) -> None:
    loaded = zone.client.post("/v1/allocation/plans", files={"file": ("plan-2024.toml", SAMPLE_PLAN.encode())},
                              headers={**OFFICER, "Idempotency-Key": "load-1"})
    assert loaded.status_code == 201, loaded.text
    plan = zone.client.get("/v1/allocation/plans/zone-2024-free/1", headers=VERIFIER).json()
    assert plan["status"] == "loaded" and len(plan["content_sha256"]) == 64
    got = {(a["enterprise_id"], a["instrument"]): a for a in plan["allocations"]}
    # 0.70 × (600 000 MWh × 0.8218 × 1.03 + 2 500 000 GJ × 0.126) = 0.70 × 822 872.4 = 576 010.68 → 576 010
    assert got[(CHP, "CEA-2024")]["pre_allocation"] == 576_010
    assert got[(GAS, "CEA-2024")]["pre_allocation"] == 74_340  # 0.70 × 1 800 000 × 0.059
    assert got[(CEMENT, "CEA-2024")]["pre_allocation"] == 537_642  # 0.70 × 900 000 × 0.8534
    assert got[(GLASS, "CEA-2024")]["pre_allocation"] == 106_330  # 0.70 × 0.62 × 250 000 × 0.98 (grandfathering)
    assert got[(CHP, "SO2")]["pre_allocation"] == 180_500  # 180.5 t permitted, in kg
    assert got[(CEMENT, "NOX")]["pre_allocation"] == 410_250
    line = got[(CHP, "CEA-2024")]["basis"]["lines"][0]
    assert (line["benchmark_id"], line["benchmark_value"], line["correction_factors"], line["output"]) == (
        "zone-power-coal-electricity", "0.8218", ["1.03"], "600000")
    assert line["benchmark_source"].startswith("ZONE-DEFINED")
    assert got[(GLASS, "CEA-2024")]["basis"]["lines"][0]["method"] == "grandfathering"
    replay = zone.client.post("/v1/allocation/plans", files={"file": ("plan-2024.toml", SAMPLE_PLAN.encode())},
                              headers={**OFFICER, "Idempotency-Key": "load-1"})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    again = load(zone)
    assert (again.status_code, again.json()["code"]) == (409, "plan_version_exists")
    newer = load(zone, SAMPLE_PLAN.replace("version = 1", "version = 2"))
    assert newer.status_code == 201
    assert zone.client.get("/v1/allocation/plans/zone-2024-free/1", headers=OFFICER).json()["status"] == "superseded"
    stale = zone.post("/v1/allocation/plans/zone-2024-free/1/pre-allocation", OFFICER)
    assert (stale.status_code, stale.json()["code"]) == (409, "plan_superseded")


def test_pre_allocation_needs_a_second_officer_and_issues_the_plan(zone: Zone) -> None:
    assert load(zone).status_code == 201
    proposed = zone.post("/v1/allocation/plans/zone-2024-free/1/pre-allocation", OFFICER)
    assert proposed.status_code == 202, proposed.text
    approval = proposed.json()["approval"]
    assert approval["kind"] == "allocation_plan"
    pending = zone.post("/v1/allocation/plans/zone-2024-free/1/pre-allocation", OFFICER)
    assert (pending.status_code, pending.json()["code"]) == (409, "plan_not_approvable")
    assert zone.decide(approval, OFFICER_2, decision="reject").status_code == 200
    proposed = zone.post("/v1/allocation/plans/zone-2024-free/1/pre-allocation", OFFICER)  # again, after rejection
    assert proposed.status_code == 202, proposed.text
    approval = proposed.json()["approval"]
    before = zone.entries()
    same = zone.decide(approval, OFFICER)
    assert (same.status_code, same.json()["code"]) == (409, "same_officer")
    assert zone.entries() == before
    assert zone.decide(approval, OFFICER_2).status_code == 200
    assert zone.balance(f"CA-{CHP}", "CEA-2024") == 576_010
    assert zone.balance(f"CA-{GAS}", "CEA-2024") == 74_340
    assert zone.balance(f"CA-{CEMENT}", "CEA-2024") == 537_642
    assert zone.balance(f"CA-{GLASS}", "CEA-2024") == 106_330
    assert zone.balance(f"CA-{CHP}", "SO2") == 180_500
    assert zone.balance(f"CA-{CHP}", "NOX") == 260_000
    assert zone.balance(f"CA-{CEMENT}", "NOX") == 410_250
    assert zone.balance("SYS-ISSUANCE", "CEA-2024") == -(576_010 + 74_340 + 537_642 + 106_330)
    with zone.sessions() as session:
        rows = session.scalars(select(AllocationRow)).all()
        assert len(rows) == 7 and all(r.entry_id for r in rows)
    assert zone.entries() == before + 7
    assert zone.verified()["ok"]
    again = zone.post("/v1/allocation/plans/zone-2024-free/1/pre-allocation", OFFICER)
    assert (again.status_code, again.json()["code"]) == (409, "plan_not_approvable")
    view = zone.client.get(f"/v1/allocation/enterprises/{CEMENT}", headers=enterprise(CEMENT))
    assert view.status_code == 200
    assert view.json()["years"][0]["pre_allocated_t"] == 537_642
    assert view.json()["years"][0]["pollutant_rights_kg"] == {"NOX": 410_250}
    assert zone.client.get(f"/v1/allocation/enterprises/{CHP}", headers=enterprise(CEMENT)).status_code == 404


def test_true_up_issues_more_or_takes_back_once_the_year_is_locked(zone: Zone) -> None:
    pre_allocate(zone)
    outputs = {CHP: {"zone-power-coal-electricity": 650000, "zone-heat-coal": "2600000"},
               CEMENT: {"zone-cement-clinker": 500000}}
    unlocked = zone.post("/v1/allocation/plans/zone-2024-free/1/true-up", OFFICER, json={"actual_outputs": outputs})
    assert (unlocked.status_code, unlocked.json()["code"]) == (409, "emissions_not_locked")
    lock_year(zone, CHP)
    lock_year(zone, CEMENT)
    with zone.sessions() as session:  # the cement plant sold most of its allowances meanwhile
        open_account(session, actor=SYSTEM, account_id="TR-BUYER", kind="trader", owner_id="buyer", name="buyer")
        post(session, entry=transfer_entry(entry_id=new_entry_id(), kind="transfer", from_account=f"CA-{CEMENT}",
                                           to_account="TR-BUYER", instrument="CEA-2024", quantity=500_000),
             actor=SYSTEM)
        session.commit()
    proposed = zone.post("/v1/allocation/plans/zone-2024-free/1/true-up", OFFICER, json={"actual_outputs": outputs})
    assert proposed.status_code == 202, proposed.text
    moves = {m["enterprise_id"]: m for m in proposed.json()["approval"]["payload"]["allocations"]}
    # CHP: 650 000 × 0.8218 × 1.03 + 2 600 000 × 0.126 = 877 795.1 → 877 795; minus 576 010 pre-allocated
    assert (moves[CHP]["final"], moves[CHP]["quantity"]) == (877_795, 301_785)
    # cement: 500 000 × 0.8534 = 426 700; minus 537 642 → take back 110 942
    assert (moves[CEMENT]["final"], moves[CEMENT]["quantity"]) == (426_700, -110_942)
    assert proposed.json()["approval"]["kind"] == "allocation_true_up"
    decided = zone.decide(proposed.json()["approval"], OFFICER_2)
    assert decided.status_code == 200, decided.text
    assert zone.balance(f"CA-{CHP}", "CEA-2024") == 877_795
    assert zone.balance(f"CA-{CEMENT}", "CEA-2024") == 0  # held 37 642, all taken back; 73 300 short
    assert zone.balance("SYS-ISSUANCE", "CEA-2024") == -(877_795 + 74_340 + 537_642 - 37_642 + 106_330)
    assert zone.verified()["ok"]
    year = zone.client.get(f"/v1/allocation/enterprises/{CEMENT}", headers=OFFICER).json()["years"][0]
    assert (year["pre_allocated_t"], year["true_up_t"], year["final_t"], year["shortfall_t"]) == (
        537_642, -37_642, 500_000, 73_300)
    chp = zone.client.get(f"/v1/allocation/enterprises/{CHP}", headers=VERIFIER).json()["years"][0]
    assert (chp["pre_allocated_t"], chp["true_up_t"], chp["final_t"]) == (576_010, 301_785, 877_795)
    again = zone.post("/v1/allocation/plans/zone-2024-free/1/true-up", OFFICER,
                      json={"actual_outputs": {CHP: outputs[CHP]}})
    assert (again.status_code, again.json()["code"]) == (409, "already_applied")

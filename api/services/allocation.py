"""Free allocation as a use case: load a versioned plan, preview it, pre-allocate and true up (four eyes).

* **Loading** (one officer): the TOML plan is parsed by ``accounting.allocation``, then checked
  against the registry (every enterprise must be registered) and the benchmark edition (every
  benchmark must have a value for the plan's year); every problem is listed with its row and field
  path. The text is stored as loaded with its SHA-256. A new version of a plan id supersedes the
  older versions: they can no longer be pre-allocated or trued up.
* **Pre-allocation** (proposed by one officer, carried out on a second officer's approval, kind
  ``allocation_plan``): the share (default 70 %) of the allocation at base-year output, and the
  pollutant discharge rights from the permitted quantities (kg). The proposal carries every
  enterprise's quantity, so the approver's digest covers the numbers; the executor recomputes them
  and refuses (``plan_not_approvable``) if the plan changed meanwhile.
* **True-up** (four eyes, kind ``allocation_true_up``): once an enterprise's year is locked, the
  allocation at actual output minus what this plan id already issued (any version). Positive: issued
  from SYS-ISSUANCE. Negative: taken back **to SYS-ISSUANCE** (the units are un-issued: they should
  never have existed, so they return to where they came from rather than to cancellation, which is
  for units that existed and are withdrawn). If the enterprise no longer holds enough available
  units, what it holds is taken back and the rest is recorded as ``shortfall_t`` in the allocation's
  basis (it then surfaces in compliance as a smaller holding).
* **The previous year's shortfall still owed.** When closing year Y could not deduct a shortfall from
  the enterprise's ``CEA-<Y+1>`` (it held too few), the rest stays owed (``compliance.still_owed``).
  Each later issue of ``CEA-<Y+1>`` to that enterprise, pre-allocation or true-up, deducts what it can
  of it into SYS-CANCELLATION in the same transaction: the move carries ``owed_deduction_t``, so the
  approver's digest covers it, and the entry is referenced ``compliance-owed:<enterprise>:<Y>``.

Every issue is a transfer entry ``SYS-ISSUANCE → CA-<enterprise>`` posted with ``api.services.ledger.post``
and recorded in ``allocations`` with its entry id; an approval posts all of them in one transaction.
Amounts issued against a plan id are netted across its versions, so a corrected version issues only
the difference.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accounting.allocation import (
    AllocationError,
    AllocationPlan,
    BenchmarkLine,
    BenchmarkTable,
    EnterprisePlan,
    final_allocation_t,
    load_benchmarks,
    parse_allocation_plan,
    pollutant_rights_kg,
    pre_allocation_t,
    to_decimal,
    true_up_t,
)
from accounting.compliance import owed_deduction_t
from accounting.errors import InvalidFileError, RowError
from accounting.ledger import CANCELLATION, ISSUANCE, LedgerError, allowance_code, transfer_entry
from accounting.review import Actor
from api.services import approvals, compliance
from api.services.ledger import (
    compliance_account_id,
    ensure_compliance_accounts,
    ensure_system_accounts,
    new_entry_id,
    post,
    system_account_id,
)
from api.store import audit
from api.store import ledger as ledger_store
from api.store.schema import (
    AllocationPlanRow,
    AllocationRow,
    ApprovalRow,
    Enterprise,
    PeriodReview,
)

LOADED, PROPOSED, PRE_ALLOCATED, TRUED_UP, SUPERSEDED = "loaded", "proposed", "pre_allocated", "trued_up", "superseded"
PRE, TRUE_UP, POLLUTANT = "pre", "true_up", "pollutant"
PRE_KIND, TRUE_UP_KIND = "allocation_plan", "allocation_true_up"
MAX_PLAN_BYTES = 1_000_000


# ---------------------------------------------------------------------------------------------
# Loading and reading plans


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_against_zone(session: Session, plan: AllocationPlan, *, source: str) -> BenchmarkTable:
    """Registry and benchmark checks the pure parser cannot make; every problem listed at once."""
    errors: list[RowError] = []
    try:
        table = load_benchmarks(plan.benchmark_edition)
    except AllocationError as error:
        raise InvalidFileError([RowError(row=None, column="benchmark_edition", value=plan.benchmark_edition,
                                         expected="a shipped benchmark edition", code=error.code)],
                               source=source) from error
    named = {e.enterprise_id for e in plan.enterprises} | {p.enterprise_id for p in plan.pollutant_permits}
    known = set(session.scalars(select(Enterprise.enterprise_id).where(Enterprise.enterprise_id.in_(sorted(named)))))
    for row, enterprise in enumerate(plan.enterprises, start=1):
        if enterprise.enterprise_id not in known:
            errors.append(RowError(row=row, column=f"enterprises[{row}].enterprise_id", value=enterprise.enterprise_id,
                                   expected="an enterprise of the registry", code="unknown_enterprise"))
        for index, line in enumerate(enterprise.lines):
            if isinstance(line, BenchmarkLine):
                try:
                    table.find(benchmark_id=line.benchmark_id, year=plan.year)
                except AllocationError as error:
                    errors.append(RowError(row=row, column=f"enterprises[{row}].lines[{index}].benchmark_id",
                                           value=line.benchmark_id,
                                           expected=f"a benchmark of edition {table.edition} valid in {plan.year}",
                                           code=error.code))
    for row, permit in enumerate(plan.pollutant_permits, start=1):
        if permit.enterprise_id not in known:
            errors.append(RowError(row=row, column=f"pollutant_permits[{row}].enterprise_id",
                                   value=permit.enterprise_id, expected="an enterprise of the registry",
                                   code="unknown_enterprise"))
    if errors:
        raise InvalidFileError(errors, source=source)
    return table


def load_plan(session: Session, *, actor: Actor, content: str, source: str = "plan.toml") -> dict[str, Any]:
    """Check and store a plan version (not committed); older versions of the plan id are superseded."""
    plan = parse_allocation_plan(content, source=source)
    _check_against_zone(session, plan, source=source)
    if session.get(AllocationPlanRow, (plan.plan_id, plan.version)) is not None:
        raise AllocationError(f"plan {plan.plan_id} version {plan.version} is already loaded; "
                              "load a higher version", code="plan_version_exists")
    latest = session.scalar(select(func.max(AllocationPlanRow.version)).where(
        AllocationPlanRow.plan_id == plan.plan_id))
    if latest is not None and latest > plan.version:
        raise AllocationError(f"plan {plan.plan_id} already has version {latest}; load a higher version",
                              code="plan_version_exists")
    for older in session.scalars(select(AllocationPlanRow).where(AllocationPlanRow.plan_id == plan.plan_id,
                                                                 AllocationPlanRow.status != SUPERSEDED)):
        older.status = SUPERSEDED
    row = AllocationPlanRow(plan_id=plan.plan_id, version=plan.version, year=plan.year, content=content,
                            content_sha256=_sha256(content), status=LOADED, loaded_by=actor.actor_id,
                            loaded_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="allocation.plan_loaded", target=f"plan/{plan.plan_id}/{plan.version}",
                 detail={"sha256": row.content_sha256, "year": plan.year, "source": source})
    return describe_plan(session, row)


def _plan_row(session: Session, plan_id: str, version: int) -> AllocationPlanRow:
    row = session.get(AllocationPlanRow, (plan_id, version))
    if row is None:
        raise AllocationError(f"no allocation plan {plan_id} version {version}", code="unknown_plan")
    return row


def _summary(row: AllocationPlanRow) -> dict[str, Any]:
    return {"plan_id": row.plan_id, "version": row.version, "year": row.year, "status": row.status,
            "content_sha256": row.content_sha256, "loaded_by": row.loaded_by,
            "loaded_at": row.loaded_at}


def list_plans(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(AllocationPlanRow).order_by(AllocationPlanRow.plan_id,
                                                              AllocationPlanRow.version.desc()))
    return [_summary(r) for r in rows]


def _line_basis(line: Any, *, table: BenchmarkTable, year: int, output: Decimal) -> dict[str, Any]:
    if isinstance(line, BenchmarkLine):
        benchmark = table.find(benchmark_id=line.benchmark_id, year=year)
        return {"method": "benchmark", "benchmark_id": line.benchmark_id, "benchmark_value": str(benchmark.value),
                "benchmark_unit": benchmark.unit, "benchmark_origin": benchmark.origin,
                "benchmark_source": benchmark.source, "benchmark_edition": table.edition, "output": str(output),
                "output_unit": benchmark.output_unit,
                "correction_factors": [str(f) for f in line.correction_factors],
                "exact_t": str(line.amount(output=output, table=table, year=year))}
    return {"method": "grandfathering", "product": line.product, "historical_intensity": str(line.historical_intensity),
            "decline_factor": str(line.decline_factor), "output": str(output),
            "exact_t": str(line.amount(output=output, table=table, year=year))}


def _issued(session: Session, plan_id: str) -> dict[tuple[str, str], int]:
    """What this plan id (all versions) has issued, net, per (enterprise, instrument)."""
    total = func.sum(AllocationRow.quantity)
    rows = session.execute(select(AllocationRow.enterprise_id, AllocationRow.instrument, total)
                           .where(AllocationRow.plan_id == plan_id)
                           .group_by(AllocationRow.enterprise_id, AllocationRow.instrument))
    return {(e, i): int(q) for e, i, q in rows}


def _pre_targets(plan: AllocationPlan, table: BenchmarkTable) -> list[dict[str, Any]]:
    """The pre-allocation of each enterprise and its basis (base-year output)."""
    instrument = allowance_code(plan.year)
    out = []
    for enterprise in plan.enterprises:
        out.append({"enterprise_id": enterprise.enterprise_id, "instrument": instrument, "stage": PRE,
                    "target": pre_allocation_t(enterprise, table=table, year=plan.year,
                                               share=plan.pre_allocation_share),
                    "basis": {"method": enterprise.method, "share": str(plan.pre_allocation_share),
                              "output": "base_year",
                              "lines": [_line_basis(line, table=table, year=plan.year, output=line.base_year_output)
                                        for line in enterprise.lines]}})
    for permit in plan.pollutant_permits:
        out.append({"enterprise_id": permit.enterprise_id, "instrument": permit.pollutant, "stage": POLLUTANT,
                    "target": pollutant_rights_kg(pollutant=permit.pollutant, permitted_t=permit.permitted_t),
                    "basis": {"method": "permit", "permitted_t": str(permit.permitted_t), "unit": "kg"}})
    return out


def _parsed(row: AllocationPlanRow) -> tuple[AllocationPlan, BenchmarkTable]:
    plan = parse_allocation_plan(row.content, source=f"{row.plan_id}/{row.version}")
    return plan, load_benchmarks(plan.benchmark_edition)


def describe_plan(session: Session, row: AllocationPlanRow) -> dict[str, Any]:
    """A plan with its computed allocation per enterprise (a preview until carried out) and what was issued."""
    plan, table = _parsed(row)
    issued = _issued(session, row.plan_id)
    recorded: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for allocation in session.scalars(select(AllocationRow).where(AllocationRow.plan_id == row.plan_id,
                                                                  AllocationRow.version == row.version)):
        recorded[(allocation.enterprise_id, allocation.instrument)][allocation.stage] = allocation.quantity
    items = []
    for target in _pre_targets(plan, table):
        key = (target["enterprise_id"], target["instrument"])
        items.append({**{k: v for k, v in target.items() if k != "target"}, "pre_allocation": target["target"],
                      "issued_by_plan": issued.get(key, 0), "true_up": recorded[key].get(TRUE_UP)})
    return {**_summary(row), "benchmark_edition": plan.benchmark_edition,
            "pre_allocation_share": str(plan.pre_allocation_share), "allocations": items,
            "pending_approvals": _pending(session, row)}


def _pending(session: Session, row: AllocationPlanRow, kinds: tuple[str, ...] = (PRE_KIND, TRUE_UP_KIND)
             ) -> list[str]:
    """The pending (not yet decided) approvals of this plan version."""
    return [a.approval_id for a in session.scalars(select(ApprovalRow).where(
        ApprovalRow.kind.in_(kinds), ApprovalRow.status == "pending", ApprovalRow.expires_at > datetime.now(UTC)))
        if a.payload.get("plan_id") == row.plan_id and a.payload.get("version") == row.version]


def get_plan(session: Session, *, plan_id: str, version: int) -> dict[str, Any]:
    return describe_plan(session, _plan_row(session, plan_id, version))


# ---------------------------------------------------------------------------------------------
# Pre-allocation


def _require_current(row: AllocationPlanRow, *, allowed: tuple[str, ...]) -> None:
    if row.status == SUPERSEDED:
        raise AllocationError(f"plan {row.plan_id} version {row.version} is superseded by a newer version",
                              code="plan_superseded")
    if row.status not in allowed:
        raise AllocationError(f"plan {row.plan_id} version {row.version} is {row.status}",
                              code="plan_not_approvable")


def _with_owed_deductions(session: Session, moves: list[dict[str, Any]], *, year: int) -> list[dict[str, Any]]:
    """Each issue of allowances deducts what its enterprise still owes of the previous year's shortfall."""
    owed = compliance.still_owed(session, year=year - 1)
    out = []
    for move in moves:
        deduction = 0 if move["stage"] == POLLUTANT else owed_deduction_t(
            owed_t=owed.get(move["enterprise_id"], 0), issued_t=max(move["quantity"], 0))
        out.append({**move, "owed_deduction_t": deduction} if deduction else move)
    return out


def _pre_moves(session: Session, row: AllocationPlanRow) -> list[dict[str, Any]]:
    plan, table = _parsed(row)
    issued = _issued(session, row.plan_id)
    return _with_owed_deductions(session, [
        {"enterprise_id": t["enterprise_id"], "instrument": t["instrument"], "stage": t["stage"],
         "target": t["target"], "quantity": t["target"] - issued.get((t["enterprise_id"], t["instrument"]), 0)}
        for t in _pre_targets(plan, table)], year=plan.year)


def propose_pre_allocation(session: Session, *, actor: Actor, plan_id: str, version: int) -> dict[str, Any]:
    """Propose the plan's pre-allocation and pollutant rights for a second officer (not committed)."""
    row = _plan_row(session, plan_id, version)
    _require_current(row, allowed=(LOADED, PROPOSED))  # proposed again after a rejected or expired proposal
    if pending := _pending(session, row, (PRE_KIND,)):
        raise AllocationError(f"the pre-allocation of {plan_id} version {version} waits for approval {pending[0]}",
                              code="plan_not_approvable")
    payload = {"plan_id": plan_id, "version": version, "content_sha256": row.content_sha256, "stage": PRE,
               "allocations": _pre_moves(session, row)}
    approval = approvals.propose(session, kind=PRE_KIND, payload=payload, actor=actor, commit=False)
    row.status = PROPOSED
    return {"plan": _summary(row), "approval": approval}


def _issue(session: Session, *, move: Mapping[str, Any], plan: AllocationPlanRow, actor: Actor,
           basis: dict[str, Any]) -> AllocationRow:
    """Post one allocation move (issue or take back) and record it."""
    enterprise_id, instrument, quantity = move["enterprise_id"], move["instrument"], int(move["quantity"])
    account = compliance_account_id(enterprise_id)
    issuance = system_account_id(ISSUANCE)
    entry_id: str | None = None
    if quantity < 0:  # take back what the enterprise still holds; record the rest as a shortfall
        balances = ledger_store.balances_of(session, account_id=account)
        encumbered = ledger_store.encumbered_of(session, account_id=account)
        available = max(balances.get(instrument, 0) - encumbered.get(instrument, 0), 0)
        taken = min(-quantity, available)
        basis = {**basis, "take_back_t": -quantity, "taken_t": taken, "shortfall_t": -quantity - taken}
        quantity = -taken
    if quantity:
        entry_id = new_entry_id()
        source, target = (issuance, account) if quantity > 0 else (account, issuance)
        kind = "allocate" if move["stage"] != TRUE_UP else "true_up"
        post(session, entry=transfer_entry(entry_id=entry_id, kind=kind, from_account=source, to_account=target,
                                           instrument=instrument, quantity=abs(quantity),
                                           memo=f"{move['stage']} {plan.plan_id} v{plan.version}"),
             actor=actor, reference=f"allocation/{plan.plan_id}/{plan.version}")
    if deducted := int(move.get("owed_deduction_t", 0)):
        year = plan.year - 1
        deduction = transfer_entry(entry_id=new_entry_id(), kind="deduction", from_account=account,
                                   to_account=system_account_id(CANCELLATION), instrument=instrument,
                                   quantity=deducted, memo=f"{year} shortfall still owed after its close, deducted "
                                                           f"from {move['stage']} {plan.plan_id} v{plan.version}")
        post(session, entry=deduction, actor=actor, reference=compliance.owed_reference(enterprise_id, year))
        basis = {**basis, "owed_deducted_t": deducted, "owed_for_year": year, "owed_entry_id": deduction.entry_id}
    row = AllocationRow(plan_id=plan.plan_id, version=plan.version, enterprise_id=enterprise_id,
                        instrument=instrument, stage=move["stage"], quantity=quantity, basis=basis, entry_id=entry_id)
    session.add(row)
    return row


def _check_payload(row: AllocationPlanRow, payload: Mapping[str, Any], moves: list[dict[str, Any]]) -> None:
    if payload["content_sha256"] != row.content_sha256 or list(payload["allocations"]) != moves:
        raise AllocationError("the plan or the ledger changed since the proposal; propose again",
                              code="plan_not_approvable")


@approvals.executor(PRE_KIND)
def _execute_pre_allocation(session: Session, payload: Mapping[str, Any], approved: approvals.Approved
                            ) -> dict[str, Any]:
    row = _plan_row(session, str(payload["plan_id"]), int(payload["version"]))
    _require_current(row, allowed=(PROPOSED, LOADED))
    moves = _pre_moves(session, row)
    _check_payload(row, payload, moves)
    ensure_system_accounts(session)
    ensure_compliance_accounts(session, {m["enterprise_id"] for m in moves})
    plan, table = _parsed(row)
    bases = {(t["enterprise_id"], t["instrument"]): t["basis"] for t in _pre_targets(plan, table)}
    recorded = [_issue(session, move=m, plan=row, actor=approved.approver,
                       basis={**bases[(m["enterprise_id"], m["instrument"])], "target": m["target"],
                              "approval_id": approved.approval_id, "proposed_by": approved.proposer.actor_id})
                for m in moves]
    row.status = PRE_ALLOCATED
    session.flush()
    return {"plan_id": row.plan_id, "version": row.version, "stage": PRE,
            "allocations": [{"enterprise_id": r.enterprise_id, "instrument": r.instrument, "stage": r.stage,
                             "quantity": r.quantity, "entry_id": r.entry_id} for r in recorded]}


# ---------------------------------------------------------------------------------------------
# True-up


def emissions_status(session: Session, *, enterprise_id: str, year: int) -> str:
    """``locked`` when the enterprise-year has an obligation (locked, verified emissions stored), else why not."""
    if compliance.obligation_of(session, enterprise_id=enterprise_id, year=year).locked:
        return "locked"
    review = session.get(PeriodReview, (enterprise_id, str(year)))
    if review is None:
        return "not_reviewed"
    return "not_verified" if review.status == "locked" else review.status


def _outputs(raw: Mapping[str, Any], *, enterprise_id: str) -> dict[str, Decimal]:
    if not isinstance(raw, Mapping):
        raise AllocationError(f"actual outputs of {enterprise_id} must be an object", code="missing_output")
    return {str(k): to_decimal(v, name=f"output of {enterprise_id} {k}") for k, v in raw.items()}


def _true_up_moves(session: Session, row: AllocationPlanRow, actual_outputs: Mapping[str, Any]
                   ) -> list[dict[str, Any]]:
    plan, table = _parsed(row)
    by_id: dict[str, EnterprisePlan] = {e.enterprise_id: e for e in plan.enterprises}
    if not actual_outputs:
        raise AllocationError("name the actual outputs of at least one enterprise", code="missing_output")
    if unknown := sorted(set(actual_outputs) - set(by_id)):
        raise AllocationError(f"not in the plan: {', '.join(unknown)}", code="unknown_enterprise")
    issued = _issued(session, row.plan_id)
    instrument = allowance_code(plan.year)
    done = set(session.scalars(select(AllocationRow.enterprise_id).where(
        AllocationRow.plan_id == row.plan_id, AllocationRow.version == row.version, AllocationRow.stage == TRUE_UP)))
    moves = []
    for enterprise_id in sorted(actual_outputs):
        if enterprise_id in done:
            raise AllocationError(f"{enterprise_id} is already trued up by this plan version", code="already_applied")
        outputs = _outputs(actual_outputs[enterprise_id], enterprise_id=enterprise_id)
        final = final_allocation_t(by_id[enterprise_id], actual_outputs=outputs, table=table, year=plan.year)
        already = issued.get((enterprise_id, instrument), 0)
        quantity = true_up_t(final_allocation_t=final, pre_allocated_t=max(already, 0),
                             emissions_status=emissions_status(session, enterprise_id=enterprise_id, year=plan.year))
        moves.append({"enterprise_id": enterprise_id, "instrument": instrument, "stage": TRUE_UP, "final": final,
                      "issued_before": already, "quantity": quantity})
    return _with_owed_deductions(session, moves, year=plan.year)


def _plain_outputs(actual_outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Outputs as decimal strings (floats refused): the payload must have one canonical form."""
    return {e: {k: str(to_decimal(v, name=f"output of {e} {k}")) for k, v in lines.items()}
            for e, lines in actual_outputs.items()}


def propose_true_up(session: Session, *, actor: Actor, plan_id: str, version: int,
                    actual_outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Propose the true-up of the named enterprises (their years locked) for a second officer (not committed)."""
    row = _plan_row(session, plan_id, version)
    _require_current(row, allowed=(PRE_ALLOCATED, TRUED_UP))
    outputs = _plain_outputs(actual_outputs)
    payload = {"plan_id": plan_id, "version": version, "content_sha256": row.content_sha256, "stage": TRUE_UP,
               "actual_outputs": outputs, "allocations": _true_up_moves(session, row, outputs)}
    approval = approvals.propose(session, kind=TRUE_UP_KIND, payload=payload, actor=actor, commit=False)
    return {"plan": _summary(row), "approval": approval}


@approvals.executor(TRUE_UP_KIND)
def _execute_true_up(session: Session, payload: Mapping[str, Any], approved: approvals.Approved) -> dict[str, Any]:
    row = _plan_row(session, str(payload["plan_id"]), int(payload["version"]))
    _require_current(row, allowed=(PRE_ALLOCATED, TRUED_UP))
    moves = _true_up_moves(session, row, payload["actual_outputs"])
    _check_payload(row, payload, moves)
    ensure_system_accounts(session)
    ensure_compliance_accounts(session, {m["enterprise_id"] for m in moves})
    plan, table = _parsed(row)
    recorded = []
    for move in moves:
        enterprise = next(e for e in plan.enterprises if e.enterprise_id == move["enterprise_id"])
        outputs = _outputs(payload["actual_outputs"][move["enterprise_id"]], enterprise_id=move["enterprise_id"])
        basis = {"method": enterprise.method, "output": "actual", "final": move["final"],
                 "issued_before": move["issued_before"], "approval_id": approved.approval_id,
                 "proposed_by": approved.proposer.actor_id,
                 "lines": [_line_basis(line, table=table, year=plan.year, output=outputs[line.key])
                           for line in enterprise.lines]}
        recorded.append(_issue(session, move=move, plan=row, actor=approved.approver, basis=basis))
    session.flush()
    trued = set(session.scalars(select(AllocationRow.enterprise_id).where(
        AllocationRow.plan_id == row.plan_id, AllocationRow.version == row.version, AllocationRow.stage == TRUE_UP)))
    if {e.enterprise_id for e in plan.enterprises} <= trued:
        row.status = TRUED_UP
    return {"plan_id": row.plan_id, "version": row.version, "stage": TRUE_UP,
            "allocations": [{"enterprise_id": r.enterprise_id, "instrument": r.instrument, "stage": r.stage,
                             "quantity": r.quantity, "entry_id": r.entry_id,
                             "shortfall_t": r.basis.get("shortfall_t", 0)} for r in recorded]}


# ---------------------------------------------------------------------------------------------
# One enterprise's free allocation


def enterprise_allocation(session: Session, *, enterprise_id: str) -> dict[str, Any]:
    """Free allocation per year (pre, true-up, final) and pollutant rights, with the basis of each move."""
    if session.get(Enterprise, enterprise_id) is None:
        raise LedgerError(f"not in the registry: {enterprise_id}", code="unknown_enterprise")
    rows = session.execute(select(AllocationRow, AllocationPlanRow.year).join(
        AllocationPlanRow, (AllocationPlanRow.plan_id == AllocationRow.plan_id)
        & (AllocationPlanRow.version == AllocationRow.version))
        .where(AllocationRow.enterprise_id == enterprise_id).order_by(AllocationRow.id)).all()
    years: dict[int, dict[str, Any]] = {}
    for allocation, year in rows:
        item = years.setdefault(year, {"year": year, "instrument": allowance_code(year), "pre_allocated_t": 0,
                                       "true_up_t": 0, "final_t": 0, "shortfall_t": 0, "owed_deducted_t": 0,
                                       "pollutant_rights_kg": {}, "moves": []})
        if allocation.stage == POLLUTANT:
            rights = item["pollutant_rights_kg"]
            rights[allocation.instrument] = rights.get(allocation.instrument, 0) + allocation.quantity
        else:
            item["pre_allocated_t" if allocation.stage == PRE else "true_up_t"] += allocation.quantity
            item["final_t"] += allocation.quantity
            item["shortfall_t"] += int(allocation.basis.get("shortfall_t", 0))
            item["owed_deducted_t"] += int(allocation.basis.get("owed_deducted_t", 0))
        item["moves"].append({"plan_id": allocation.plan_id, "version": allocation.version,
                              "instrument": allocation.instrument, "stage": allocation.stage,
                              "quantity": allocation.quantity, "entry_id": allocation.entry_id,
                              "basis": allocation.basis})
    return {"enterprise_id": enterprise_id, "account_id": compliance_account_id(enterprise_id),
            "years": [years[y] for y in sorted(years)]}

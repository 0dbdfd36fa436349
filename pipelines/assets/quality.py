"""Data-quality assets and checks.

- ``out_quality__findings`` (month-partitioned, after the monthly balances): plausibility of every
  enterprise-month and measured fuel parameter, judged by Great Expectations suites built from
  ``accounting.quality``; one row per finding, with its severity. Also rebuilds the data docs.
- ``quality_findings_summary``: a NON-blocking check that lists the held enterprise-periods. One
  enterprise's hold must not stop the others: their months are still calculated and published; the
  hold only keeps that enterprise-period from approval (``api.services.review.record_findings``).
- ``out_review__quality_findings`` (publish job, after ``out_review__calculations``): records the
  published findings in the operational store and sets or clears ``held`` on every checked period.
- ``factor_edition_is_plausible``: a BLOCKING check of the factor edition in use against the one
  before it (likely unit errors) and of China against IPCC per-GJ CO2 factors for oil and gas.
"""

from pathlib import Path

import dagster as dg
import duckdb

from accounting.quality import QualityConfig, check_edition, load_quality_config
from pipelines import quality as pq
from pipelines import warehouse as wh
from pipelines.assets.accounts import monthly, single_run
from pipelines.resources import AccountingResource, OltpResource, WarehouseResource

FINDINGS_TABLE = "out_quality__findings"


class QualityResource(dg.ConfigurableResource):
    """Where the quality rules come from (None = the packaged ``factors/quality.toml``) and where data docs go."""

    data_docs_path: str
    config_path: str | None = None

    def config(self) -> QualityConfig:
        return load_quality_config(Path(self.config_path) if self.config_path else None)

    @property
    def data_docs(self) -> Path:
        # Great Expectations wants an absolute folder; ``absolute``, not ``resolve``: the folder is a symlink
        # swapped per run, and resolving it would name the next run's folder after the previous one's.
        return Path(self.data_docs_path).absolute()


@dg.asset(group_name="quality", partitions_def=monthly, backfill_policy=single_run,
          kinds={"duckdb", "great_expectations"},
          deps=["out_emissions__monthly_enterprise_balances", "core_activity__monthly_lines",
                "core_registry__enterprises", "core_factors__factors"])
def out_quality__findings(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                          quality: QualityResource) -> dg.MaterializeResult:
    """Plausibility findings of the month(s): intensity bands, jumps, fuel parameters, exports (see the module doc)."""
    months = list(context.partition_keys)
    config = quality.config()
    with wh.connect(warehouse.warehouse) as conn:
        factors = conn.execute("select * from core_factors__factors").df()
        frames = pq.plausibility_frames(conn, months=months, config=config, factors=factors)
        outcome = pq.validate(frames, config=config, docs_dir=quality.data_docs, run_name=context.run.run_id)
        if outcome.crashed or outcome.disagreements:
            raise dg.Failure(description="plausibility could not be judged (a bug, not a data problem)",
                             metadata={"crashed": dg.MetadataValue.json(outcome.crashed),
                                       "disagreements": dg.MetadataValue.json(outcome.disagreements[:50])})
        conn.register("findings_frame", pq.findings_frame(outcome.findings, run_id=context.run.run_id))
        count = wh.replace_partitions(conn, table=FINDINGS_TABLE, frame_sql=pq.FINDINGS_SQL, months=months)
    holds = sorted({(f.enterprise_id, f.period) for f in outcome.findings if f.severity == "hold"})
    return dg.MaterializeResult(metadata={
        "dagster/row_count": count, "months": months, "rows_checked": dg.MetadataValue.json(outcome.rows_checked),
        "holds": len([f for f in outcome.findings if f.severity == "hold"]),
        "warnings": len([f for f in outcome.findings if f.severity == "warn"]),
        "held_periods": dg.MetadataValue.json([f"{e} {p}" for e, p in holds][:100]),
        "data_docs": str(quality.data_docs)})


@dg.asset_check(asset=out_quality__findings, blocking=False)
def quality_findings_summary(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Fails (as a warning) when an enterprise-period is held; never stops the other enterprises."""
    with wh.connect(warehouse.warehouse) as conn:
        by_rule = conn.execute(f"select rule, severity, count(*) from {FINDINGS_TABLE} group by all order by all"
                               ).fetchall()
        held = conn.execute(f"select enterprise_id, period, list(distinct rule order by rule) from {FINDINGS_TABLE} "
                            "where severity = 'hold' group by all order by all").fetchall()
    return dg.AssetCheckResult(
        passed=not held, severity=dg.AssetCheckSeverity.WARN,
        metadata={"by_rule": dg.MetadataValue.json([{"rule": r, "severity": s, "count": n} for r, s, n in by_rule]),
                  "held_periods": len(held),
                  "held": dg.MetadataValue.json([{"enterprise_id": e, "period": p, "rules": list(r)}
                                                 for e, p, r in held[:100]])},
        description=f"{len(held)} enterprise-period(s) held by data-quality checks" if held else None)


@dg.asset(group_name="review", deps=["out_review__calculations"], automation_condition=dg.AutomationCondition.eager())
def out_review__quality_findings(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                                 oltp: OltpResource) -> dg.MaterializeResult:
    """The published findings recorded in the operational store; each checked period held or released."""
    from api.services.review import record_findings

    with duckdb.connect(str(warehouse.serving), read_only=True) as conn:
        present = {r[0] for r in conn.execute("select table_name from information_schema.tables").fetchall()}
        if FINDINGS_TABLE not in present:
            return dg.MaterializeResult(metadata={"recorded": 0, "note": f"{FINDINGS_TABLE} not published yet"})
        rows = conn.execute(f"select enterprise_id, period, rule, severity, detail from {FINDINGS_TABLE} "
                            "order by enterprise_id, period, rule, source_file, row_number").df()
        checked = {(e, p) for e, p in conn.execute(
            f"select distinct enterprise_id, period from {FINDINGS_TABLE} union "
            "select distinct enterprise_id, period from out_emissions__monthly_enterprise_balances").fetchall()}
    found = pq.findings_from_table(rows.to_dict(orient="records"))
    with oltp.sessions()() as session:
        changed = record_findings(session, findings=found, periods=sorted(checked), run_id=context.run.run_id)
    return dg.MaterializeResult(metadata={"recorded": len(found), "periods_checked": len(checked),
                                          "holds_changed": changed})


@dg.asset_check(asset="core_factors__factors", blocking=True)
def factor_edition_is_plausible(warehouse: WarehouseResource, accounting: AccountingResource,
                                quality: QualityResource) -> dg.AssetCheckResult:
    """No factor changed from the previous edition by a likely unit conversion; China and IPCC agree for oil and gas."""
    with wh.connect(warehouse.warehouse) as conn:
        factors = conn.execute("select * from core_factors__factors").df()
    edition = str(factors["edition"].iloc[0]) if not factors.empty else None
    library = accounting.library()
    editions = library.editions()
    previous = editions[editions.index(edition) - 1] if edition in editions and editions.index(edition) > 0 else None
    found = check_edition(factors, library.factors(previous) if previous else None, config=quality.config())
    blocking = [f for f in found if f.blocking]
    return dg.AssetCheckResult(
        passed=not blocking,
        metadata={"edition": edition or "", "previous_edition": previous or "", "blocking": len(blocking),
                  "findings": dg.MetadataValue.json([f.to_record() for f in found])},
        description="; ".join(f.message for f in blocking)[:2000] or None)


QUALITY_MONTHLY_ASSETS = [out_quality__findings]
QUALITY_PUBLISH_ASSETS = [out_review__quality_findings]
QUALITY_CHECKS = [quality_findings_summary, factor_edition_is_plausible]

__all__ = ["QUALITY_CHECKS", "QUALITY_MONTHLY_ASSETS", "QUALITY_PUBLISH_ASSETS", "QualityResource"]

"""Blocking asset checks: the table contracts of ``accounting.schemas`` run as Great Expectations suites.

A failed check names the expectation and the input rows (file and row number) that broke it, and,
being blocking, stops the assets downstream. Great Expectations is imported inside the check, so
loading the code location stays fast.
"""

from typing import Any

import dagster as dg
import pandas as pd

from accounting import schemas
from accounting.schemas import TableContract
from pipelines.resources import WarehouseResource

MAX_LISTED_ROWS = 50


def _expectations(contract: TableContract) -> list[Any]:
    import great_expectations as gx

    found: list[Any] = []
    for rule in contract.columns:
        found.append(gx.expectations.ExpectColumnToExist(column=rule.name))
        if rule.not_null:
            found.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=rule.name))
        if rule.allowed is not None:
            found.append(gx.expectations.ExpectColumnValuesToBeInSet(column=rule.name, value_set=list(rule.allowed)))
        if rule.pattern is not None:
            found.append(gx.expectations.ExpectColumnValuesToMatchRegex(column=rule.name, regex=rule.pattern))
        if rule.min_value is not None or rule.max_value is not None:
            found.append(gx.expectations.ExpectColumnValuesToBeBetween(
                column=rule.name, min_value=rule.min_value, max_value=rule.max_value))
    for columns in contract.unique:
        found.append(gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(columns)))
    return found


def validate_contract(frame: pd.DataFrame, contract: TableContract) -> list[dict[str, Any]]:
    """Run the contract over ``frame``; return one failure per broken rule with the offending rows."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (context.data_sources.add_pandas("warehouse").add_dataframe_asset(contract.table)
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame}))
    suite = gx.ExpectationSuite(name=contract.table, expectations=_expectations(contract))
    row_id = [c for c in contract.row_id if c in frame.columns]
    result = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                  "unexpected_index_column_names": row_id})
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        raised = (outcome.exception_info or {}).get("raised_exception", False)
        rows = outcome.result.get("unexpected_index_list") or []
        failures.append({
            "expectation": outcome.expectation_config.type,
            "kwargs": {k: v for k, v in outcome.expectation_config.kwargs.items() if k != "batch_id"},
            "unexpected_count": outcome.result.get("unexpected_count"),
            "rows": [{k: _plain(v) for k, v in r.items()} for r in rows[:MAX_LISTED_ROWS]],
            "raised_exception": bool(raised),
        })
    for query, description in contract.conditional:
        bad = frame.query(query, local_dict={"GHG_CATEGORIES": list(schemas.GHG_CATEGORIES),
                                             "FALLBACK_LEVELS": list(schemas.FALLBACK_LEVELS)})
        if not bad.empty:
            failures.append({"expectation": description, "kwargs": {"query": query}, "unexpected_count": len(bad),
                             "rows": bad[row_id].head(MAX_LISTED_ROWS).to_dict(orient="records"),
                             "raised_exception": False})
    return failures


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _check(table: str, contract: TableContract, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    import duckdb

    with duckdb.connect(str(warehouse.warehouse)) as conn:
        frame = conn.execute(f"select * from {table}").df()
    failures = validate_contract(frame, contract)
    return dg.AssetCheckResult(
        passed=not failures,
        metadata={"rows_checked": len(frame), "failed_rules": len(failures),
                  "failures": dg.MetadataValue.json(failures)},
        description="; ".join(f"{f['expectation']} ({f['unexpected_count']} rows)" for f in failures) or None,
    )


@dg.asset_check(asset="core_activity__monthly_lines", blocking=True)
def activity_lines_follow_contract(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Schema, allowed codes, ranges, and one line per enterprise/period/facility/activity/item."""
    return _check("core_activity__monthly_lines", schemas.ACTIVITY_LINES, warehouse)


@dg.asset_check(asset="core_emissions__monthly_lines", blocking=True)
def emission_lines_follow_contract(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Every greenhouse-gas line has tCO2e >= 0, a fallback level, an edition, a GWP set and a run."""
    return _check("core_emissions__monthly_lines", schemas.EMISSION_LINES, warehouse)

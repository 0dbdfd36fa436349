"""Options of an emissions calculation and the shape of its results.

The arithmetic runs in SQL (``pipelines.warehouse``); this module holds what is pure: the choices a
calculation is made under (ruleset, factor edition, grid region, GWP set, how far back a yearly
factor may be taken) and the turning of result rows into the JSON that the CLI and API print.
Numbers are carried at full precision; nothing here rounds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

GRID_REGIONS = ("national", "central_china", "henan")
RULESETS = ("cn", "ipcc2006")
GRAINS = ("month", "year")

#: Result columns of an enterprise-period balance, in report order.
TOTAL_COLUMNS: tuple[str, ...] = (
    "combustion_tco2e", "process_tco2e", "scope1_tco2e",
    "purchased_electricity_tco2e", "purchased_heat_tco2e", "scope2_tco2e",
    "exported_electricity_tco2e", "exported_heat_tco2e", "exported_tco2e",
    "net_tco2e", "total_excl_indirect_tco2e", "total_incl_indirect_tco2e",
    "co2_t", "ch4_t", "n2o_t",
    "energy_tce", "energy_input_tce", "output_value_10k_cny", "value_added_10k_cny",
    "tco2e_per_10k_cny_output_value", "tco2e_per_10k_cny_value_added",
    "tce_per_10k_cny_output_value", "tce_per_10k_cny_value_added",
    "so2_t", "nox_t", "pm_t", "cod_t", "nh3n_t",
)

LINE_COLUMNS: tuple[str, ...] = (
    "source_file", "source_sha256", "row_number", "enterprise_id", "period", "activity", "item",
    "facility", "quantity", "unit", "quantity_canonical", "unit_canonical", "category", "heat_gj",
    "co2_t", "ch4_t", "n2o_t", "tco2e", "energy_tce", "pollutant", "pollutant_t", "factor_ids",
    "fallback", "factor_year", "parameters", "ruleset", "edition", "gwp_set", "grid_region", "run_id",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CalculationOptions:
    """The choices one calculation is made under; every result line records them."""

    edition: str | None = None
    ruleset: str = "cn"
    grid_region: str = "national"
    gwp_set: str = "AR5"
    max_factor_lag_years: int = 3
    by: str = "month"

    def __post_init__(self) -> None:
        if self.ruleset not in RULESETS:
            raise ValueError(f"ruleset must be one of {', '.join(RULESETS)}, got {self.ruleset!r}")
        if self.grid_region not in GRID_REGIONS:
            raise ValueError(f"grid_region must be one of {', '.join(GRID_REGIONS)}, got {self.grid_region!r}")
        if self.by not in GRAINS:
            raise ValueError(f"by must be month or year, got {self.by!r}")
        if not 0 <= self.max_factor_lag_years <= 10:
            raise ValueError("max_factor_lag_years must be between 0 and 10")


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return _json_number(value.item())
    return value


def results_document(balances: list[dict[str, Any]], lines: list[dict[str, Any]], *,
                     options: CalculationOptions, edition: str) -> dict[str, Any]:
    """Group balance rows and line rows into ``{"results": [...]}``, one result per enterprise-period."""
    lines_by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in lines:
        key = (line["enterprise_id"], line["result_period"])
        lines_by_key.setdefault(key, []).append(_line_document(line))
    results = []
    for balance in balances:
        key = (balance["enterprise_id"], balance["period"])
        results.append({
            "enterprise_id": balance["enterprise_id"],
            "period": balance["period"],
            "totals": {c: _json_number(balance[c]) for c in TOTAL_COLUMNS},
            "products": balance.get("products") or [],
            "lines": lines_by_key.get(key, []),
        })
    return {
        "options": {"ruleset": options.ruleset, "edition": edition, "grid_region": options.grid_region,
                    "gwp_set": options.gwp_set, "by": options.by,
                    "max_factor_lag_years": options.max_factor_lag_years},
        "results": results,
    }


def _line_document(line: dict[str, Any]) -> dict[str, Any]:
    document = {c: _json_number(line[c]) for c in LINE_COLUMNS if c in line}
    document["row"] = document.pop("row_number")
    if isinstance(document.get("parameters"), str):
        document["parameters"] = json.loads(document["parameters"])
    return document

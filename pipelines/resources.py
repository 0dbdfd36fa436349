"""Dagster resources: where the warehouse and its snapshot live, and the accounting choices of a run."""

from pathlib import Path

import dagster as dg

from accounting.calculation import CalculationOptions
from accounting.factors import FactorLibrary, load_library


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse that the pipeline alone writes, and the snapshot the API reads."""

    path: str
    serving_path: str

    @property
    def warehouse(self) -> Path:
        return Path(self.path)

    @property
    def serving(self) -> Path:
        return Path(self.serving_path)


class AccountingResource(dg.ConfigurableResource):
    """Inputs and accounting choices: activity folders, registry file, factor library and options.

    Every value comes from ``Settings`` (``pipelines.definitions.build_resources``): no second set of defaults.
    """

    activity_folders: list[str]
    registry_file: str
    factor_root: str | None = None
    factor_edition: str | None
    ruleset: str
    grid_region: str
    gwp_set: str
    max_factor_lag_years: int
    key_emitter_tco2e: float
    key_emitter_tce: float

    def library(self) -> FactorLibrary:
        return load_library(Path(self.factor_root) if self.factor_root else None)

    def options(self, *, by: str = "month") -> CalculationOptions:
        return CalculationOptions(edition=self.factor_edition, ruleset=self.ruleset, grid_region=self.grid_region,
                                  gwp_set=self.gwp_set, max_factor_lag_years=self.max_factor_lag_years, by=by)

    def folders(self) -> list[Path]:
        return [Path(f) for f in self.activity_folders]

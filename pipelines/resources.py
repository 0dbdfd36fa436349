"""Dagster resources: where the warehouse and its snapshot live, and the accounting choices of a run."""

from pathlib import Path

import dagster as dg
from sqlalchemy.orm import Session, sessionmaker

from accounting.calculation import CalculationOptions
from accounting.factors import FactorLibrary, load_library
from pipelines.settings import Settings


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


class OltpResource(dg.ConfigurableResource):
    """The operational database: submissions in, calculations, findings and review states out."""

    database_url: str

    def sessions(self) -> sessionmaker[Session]:
        from api.store.db import session_factory_for

        return session_factory_for(self.database_url)


class AccountingResource(dg.ConfigurableResource):
    """Inputs and accounting choices: the inbox folder, factor library and options.

    Every value comes from ``Settings`` (``pipelines.definitions.build_resources``): no second set of defaults.
    """

    inbox_folder: str
    factor_root: str | None = None
    factor_edition: str | None
    ruleset: str
    grid_region: str
    gwp_set: str
    max_factor_lag_years: int
    key_emitter_tco2e: float
    key_emitter_tce: float
    first_period: str
    submission_deadline_day: int

    def library(self) -> FactorLibrary:
        return load_library(Path(self.factor_root) if self.factor_root else None)

    def options(self, *, by: str = "month") -> CalculationOptions:
        return CalculationOptions(edition=self.factor_edition, ruleset=self.ruleset, grid_region=self.grid_region,
                                  gwp_set=self.gwp_set, max_factor_lag_years=self.max_factor_lag_years, by=by)

    def submission_settings(self) -> Settings:
        """The settings a submission is checked against (factor edition, first period, deadline)."""
        return Settings(factor_edition=self.factor_edition, first_period=self.first_period,
                        submission_deadline_day=self.submission_deadline_day)

    def inbox(self) -> Path:
        return Path(self.inbox_folder)

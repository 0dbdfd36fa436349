"""Settings of the service, read from ``CARBON_*`` environment variables (and nothing at import time)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Paths and accounting choices. Defaults are the embedded ones: files under ``data/``.

    The inbox is a drop folder: the sensor submits each file found there, as a data engineer would.
    """

    model_config = SettingsConfigDict(env_prefix="CARBON_", extra="ignore")

    data_dir: Path = Path("data")
    sample_dir: Path = Path("data/sample")
    inbox_dir: Path | None = None
    warehouse_path: Path | None = None
    serving_path: Path | None = None
    database_url: str | None = None
    registry_file: Path | None = None
    factor_edition: str | None = None
    ruleset: str = "cn"
    grid_region: str = "national"
    gwp_set: str = "AR5"
    max_factor_lag_years: int = 3
    key_emitter_tco2e: float = 26000.0
    key_emitter_tce: float = 10000.0
    max_upload_bytes: int = 20 * 1024 * 1024
    first_period: str = "2023-01"
    submission_deadline_day: int = 15
    substitution_rule: str = "max_of_last_12_months"

    @property
    def inbox(self) -> Path:
        return self.inbox_dir or self.data_dir / "inbox"

    @property
    def warehouse(self) -> Path:
        return self.warehouse_path or self.data_dir / "warehouse.duckdb"

    @property
    def serving(self) -> Path:
        return self.serving_path or self.data_dir / "serving.duckdb"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'carbon.sqlite'}"

    @property
    def registry(self) -> Path:
        return self.registry_file or self.sample_dir / "enterprises.csv"



@lru_cache
def get_settings() -> Settings:
    return Settings()

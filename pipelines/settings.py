"""Settings of the service: ``CARBON_*`` environment variables over an optional TOML settings file.

``CARBON_SETTINGS_FILE`` names a TOML file whose keys are the field names below (``database_url = "..."``,
``cors_origins = ["https://dashboard.example"]``); the environment overrides it, and an unknown key or a
missing file is refused naming it. Nothing is read at import time: only when ``Settings()`` is built.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SETTINGS_FILE_VARIABLE = "CARBON_SETTINGS_FILE"


class SettingsFileError(ValueError):
    """The settings file is missing, unreadable, or names a setting that does not exist."""


class StrictTomlSource(TomlConfigSettingsSource):
    """The TOML settings file, refusing keys that are not settings (a typo must not pass silently)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        if not path.is_file():
            raise SettingsFileError(f"{SETTINGS_FILE_VARIABLE} names {path}, which is not a file")
        try:
            super().__init__(settings_cls, toml_file=path)
        except ValueError as err:  # tomllib.TOMLDecodeError
            raise SettingsFileError(f"the settings file {path} is not valid TOML: {err}") from err
        unknown = sorted(set(self.toml_data) - set(settings_cls.model_fields))
        if unknown:
            raise SettingsFileError(f"the settings file {path} has unknown setting(s): {', '.join(unknown)}; "
                                    f"known settings: {', '.join(sorted(settings_cls.model_fields))}")


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
    #: Lines in one activity file (CSV, XLSX or JSON); more is refused whole (``too_many_rows``).
    max_rows_per_file: int = Field(default=200_000, ge=1)
    first_period: str = "2023-01"
    submission_deadline_day: int = 15
    substitution_rule: str = "max_of_last_12_months"
    #: Browser origins allowed to call the API cross-origin (CORS); none by default, ``*`` refused.
    #: In the environment: a JSON list or comma-separated origins.
    cors_origins: Annotated[list[str], NoDecode] = []
    #: Per-client token bucket of each API process: the refill rate (0 disables the limit) and the burst.
    rate_limit_per_minute: int = Field(default=600, ge=0)
    rate_limit_burst: int = Field(default=120, ge=1)
    #: Sign-in: lifetimes of bearer access tokens and browser sessions, API key expiry, guessing throttle.
    access_token_minutes: int = Field(default=60, ge=1, le=24 * 60)
    session_hours: int = Field(default=8, ge=1, le=24 * 7)
    api_key_days: int = Field(default=365, ge=1, le=3 * 365)
    #: How long an API process trusts a credential it has checked before reading it again (0: every request).
    #: Changes made in the same process hold at once; this bounds how late another process's change is seen.
    credential_cache_seconds: float = Field(default=5, ge=0, le=60)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_minutes: int = Field(default=15, ge=1)
    password_min_length: int = Field(default=12, ge=8)
    #: Session cookies are ``Secure`` (sent over HTTPS only; browsers also send them to http://localhost).
    session_cookie_secure: bool = True
    #: Argon2id cost of new password and key hashes (RFC 9106's second recommended option by default).
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=64 * 1024, ge=32)
    #: Compliance (carbon rights): the CCER cap as a share of the obligation, the penalty multiple (5 to 10,
    #: 2024 Regulations Art. 24), the surrender deadline as MM-DD of the year after the compliance year, and
    #: the banking limit (base + multiple x net allowance sales; ``banking_limited = false``: no limit).
    ccer_cap_share: Decimal = Field(default=Decimal("0.05"), ge=0, le=1)
    penalty_multiple: Decimal = Field(default=Decimal(5), ge=5, le=10)
    compliance_deadline: str = Field(default="12-31", pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
    banking_limited: bool = True
    banking_base_t: int = Field(default=10_000, ge=0)
    banking_sales_multiple: Decimal = Field(default=Decimal("1.5"), ge=0)
    #: Exchange order entry (orders, replaces, quotes, takes, blocks): a token bucket per trading account,
    #: on top of the per-user limit; 0 disables it.
    exchange_orders_per_minute: int = Field(default=1_200, ge=0)
    exchange_order_burst: int = Field(default=100, ge=1)
    #: How often the API checks whether a trading day is due to close or open by the exchange's clock, and
    #: rolls it (``api.services.exchange.roll_due_days``; also right after the clock is set or stepped);
    #: 0: only commands and officers roll the day.
    exchange_roll_seconds: float = Field(default=1.0, ge=0, le=3600)
    #: The zone's intensity targets per 10,000 CNY of value added (the zone's plan), shown against the published
    #: monthly indicators; unset: no target is shown.
    zone_target_tco2e_per_10k_cny: Decimal | None = Field(default=None, gt=0)
    zone_target_tce_per_10k_cny: Decimal | None = Field(default=None, gt=0)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the environment, then the settings file named by ``CARBON_SETTINGS_FILE``."""
        sources = [init_settings, env_settings, dotenv_settings, file_secret_settings]
        if settings_file := os.environ.get(SETTINGS_FILE_VARIABLE):
            sources.append(StrictTomlSource(settings_cls, Path(settings_file)))
        return tuple(sources)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [o.strip() for o in text.split(",") if o.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _refuse_wildcard_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if "*" in origin:
                raise ValueError(f"the CORS origin '{origin}' is a wildcard; list each allowed origin "
                                 "(e.g. https://dashboard.example.org)")
            if not origin.startswith(("https://", "http://")) or origin.endswith("/"):
                raise ValueError(f"the CORS origin '{origin}' is not an origin like https://host[:port]")
        return origins

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

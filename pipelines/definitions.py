"""The Dagster code location: assets, checks, jobs and the submissions sensor, built from settings."""

import dagster as dg

from pipelines.assets import accounts, quality
from pipelines.checks import activity_lines_follow_contract, emission_lines_follow_contract
from pipelines.resources import AccountingResource, OltpResource, WarehouseResource
from pipelines.sensors import build_submissions_sensor
from pipelines.settings import Settings, get_settings

REFERENCE_ASSETS = [accounts.core_registry__enterprises, accounts.core_factors__factors]
MONTHLY_ASSETS = [
    accounts.raw_activity__monthly_lines,
    accounts.core_activity__monthly_lines,
    accounts.core_emissions__monthly_lines,
    accounts.out_emissions__monthly_enterprise_balances,
    accounts.out_zone__monthly_indicators,
    *quality.QUALITY_MONTHLY_ASSETS,
]
PUBLISH_ASSETS = [accounts.out_emissions__yearly_enterprise_balances, accounts.out_serving__snapshot,
                  accounts.out_review__calculations, *quality.QUALITY_PUBLISH_ASSETS]

reference_job = dg.define_asset_job("reference_job", selection=dg.AssetSelection.assets(*REFERENCE_ASSETS))
monthly_job = dg.define_asset_job("monthly_job", selection=dg.AssetSelection.assets(*MONTHLY_ASSETS))
publish_job = dg.define_asset_job("publish_job", selection=dg.AssetSelection.assets(*PUBLISH_ASSETS))


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    from api.services.quality import data_docs_dir

    return {
        "quality": quality.QualityResource(data_docs_path=str(data_docs_dir(settings))),
        "warehouse": WarehouseResource(path=str(settings.warehouse), serving_path=str(settings.serving)),
        "oltp": OltpResource(database_url=settings.database),
        "accounting": AccountingResource(
            inbox_folder=str(settings.inbox),
            factor_edition=settings.factor_edition,
            ruleset=settings.ruleset,
            grid_region=settings.grid_region,
            gwp_set=settings.gwp_set,
            max_factor_lag_years=settings.max_factor_lag_years,
            key_emitter_tco2e=settings.key_emitter_tco2e,
            key_emitter_tce=settings.key_emitter_tce,
            first_period=settings.first_period,
            submission_deadline_day=settings.submission_deadline_day,
        ),
    }


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    """All definitions, with resources from ``settings`` (tests pass their own)."""
    return dg.Definitions(
        assets=[*REFERENCE_ASSETS, *MONTHLY_ASSETS, *PUBLISH_ASSETS],
        asset_checks=[activity_lines_follow_contract, emission_lines_follow_contract, *quality.QUALITY_CHECKS],
        jobs=[reference_job, monthly_job, publish_job],
        sensors=[build_submissions_sensor(monthly_job=monthly_job, publish_job=publish_job)],
        resources=build_resources(settings or get_settings()),
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()

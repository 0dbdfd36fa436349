"""Request and response models of the API, by role; requests refuse unknown fields (``extra="forbid"``).

Totals carry exactly the names of ``accounting.calculation.TOTAL_COLUMNS`` (the CLI's JSON), so a
client reads a published balance and a ``POST /v1/calculations`` result the same way; the model is
built from that tuple, so the two cannot drift apart.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from accounting.activity import COLUMNS
from accounting.calculation import TOTAL_COLUMNS

# ---------------------------------------------------------------------------------------------
# Requests


class ActivityLine(BaseModel):
    """One activity line in the JSON form of template version 1 (``contracts/activity-data.md``).

    Values may be strings or numbers; they are checked by the same parser as a CSV file, which
    reports every problem with its row (the first line is row 2, as in a file under its header).
    """

    model_config = ConfigDict(extra="forbid")

    enterprise_id: str | None = None
    period: str | int | None = None
    activity: str | None = None
    item: str | None = None
    quantity: str | int | float | None = None
    unit: str | None = None
    facility: str | None = None
    heat_basis: str | None = None
    ncv: str | int | float | None = None
    ncv_unit: str | None = None
    carbon_content: str | int | float | None = None
    carbon_content_unit: str | None = None
    oxidation_rate: str | int | float | None = None
    density: str | int | float | None = None
    density_unit: str | None = None
    purity: str | int | float | None = None
    sulfur_content: str | int | float | None = None
    cao_fraction: str | int | float | None = None
    mgo_fraction: str | int | float | None = None
    cao_noncarbonate_fraction: str | int | float | None = None
    mgo_noncarbonate_fraction: str | int | float | None = None
    concentration: str | int | float | None = None
    concentration_unit: str | None = None
    emission_factor: str | int | float | None = None
    emission_factor_unit: str | None = None
    evidence: str | None = None
    note: str | None = None


class ActivityLinesRequest(BaseModel):
    """The JSON body of ``POST /v1/calculations`` and ``POST /v1/submissions``."""

    model_config = ConfigDict(extra="forbid")

    lines: list[ActivityLine] = Field(min_length=1)


def activity_lines_openapi() -> dict[str, Any]:
    """The OpenAPI request body of the upload endpoints: a multipart ``file`` or a JSON ``lines`` body.

    The body is read by hand (one endpoint, two media types), so FastAPI cannot derive it.
    """
    schema = ActivityLinesRequest.model_json_schema()
    line = schema.pop("$defs")["ActivityLine"]
    schema["properties"]["lines"]["items"] = line
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                                    "description": "CSV (UTF-8), XLSX or JSON activity file, template version 1"}},
        }},
        "application/json": {"schema": schema},
    }}}


# ---------------------------------------------------------------------------------------------
# Responses


class Problem(BaseModel):
    """An error (RFC 9457 problem details) with a machine-readable ``code``; file errors list ``errors``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None


class Fill(BaseModel):
    trade_id: int
    side: str
    price_fen: int
    quantity_t: int
    value_fen: int
    fee_fen: int
    liquidity: str = Field(description="maker | taker")
    mode: str
    order_id: int
    trading_day: str
    executed_at: datetime
    settled: bool


class Order(BaseModel):
    instrument: str
    order_id: int
    kind: str = Field(description="order | quote | take | block")
    account_id: str
    client_order_id: str
    side: str
    order_type: str
    time_in_force: str
    price_fen: int | None
    quantity_t: int
    filled_t: int
    remaining_t: int
    cancelled_t: int
    state: str = Field(description="new | partially_filled | filled | cancelled | expired; blocks: proposed | "
                                   "executed | cancelled")
    reason: str | None
    counterparty_id: str | None
    held_fen: int = Field(description="cash this order still holds in clearing")
    held_t: int = Field(description="tonnes this order still holds in clearing")
    created_at: datetime
    updated_at: datetime
    fills: list[Fill] | None = None


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    snapshot: str
    tables: dict[str, int]
    database: Literal["ok"]


class Enterprise(BaseModel):
    """A registry entry and its key-emitter status in the latest year with published balances."""

    enterprise_id: str
    name: str
    name_en: str | None = None
    category: str
    sector_code: str
    sector_name: str | None = None
    zone_code: str
    city_code: str
    province_code: str
    county_code: str
    facilities: list[str]
    key_emitter_declared: bool | None = None
    key_emitter: bool | None = Field(None, description="is_key_emitter of the latest published year")
    key_emitter_year: int | None = None


class EnterprisePage(BaseModel):
    items: list[Enterprise]
    total: int
    limit: int
    offset: int


if TYPE_CHECKING:
    class Totals(BaseModel):
        """The totals of an enterprise-period balance (what type checkers see; the model is built below)."""
else:
    #: The totals of an enterprise-period balance: exactly ``TOTAL_COLUMNS``, the names of ``carbon
    #: calculate``'s JSON, built from that tuple so that a column added to the calculation is served at once.
    Totals = create_model(
        "Totals", __doc__="The totals of an enterprise-period balance, named as in `carbon calculate`'s JSON.",
        **dict.fromkeys(TOTAL_COLUMNS, (float | None, None)))


class ProductOutput(BaseModel):
    product: str
    output: float | None = None
    unit: str | None = None
    tco2e_per_unit: float | None = None


class Balance(BaseModel):
    """One published enterprise-period balance and the choices it was calculated under."""

    enterprise_id: str
    period: str
    totals: Totals
    products: list[ProductOutput]
    line_count: int
    edition: str
    ruleset: str
    grid_region: str
    gwp_set: str
    run_id: str
    is_substituted: bool = Field(False, description="a month an officer substituted (a conservative value), "
                                                    "or a year that includes one")


class YearlyBalance(Balance):
    is_key_emitter: bool
    months_reported: int
    months_substituted: int = 0


class MonthlyBalances(BaseModel):
    """Monthly balances by period; a ``YYYY`` period holds the year's annual-only lines."""

    enterprise_id: str
    year: int | None
    items: list[Balance]


class YearlyBalances(BaseModel):
    enterprise_id: str
    items: list[YearlyBalance]


class LineageLine(BaseModel):
    """One emission line: the input row it came from, its units, result, factors and run."""

    source_file: str
    source_sha256: str
    row: int
    period: str
    activity: str
    item: str | None = None
    facility: str | None = None
    category: str
    quantity: float | None = None
    unit: str
    quantity_canonical: float | None = None
    unit_canonical: str | None = None
    heat_gj: float | None = None
    co2_t: float | None = None
    ch4_t: float | None = None
    n2o_t: float | None = None
    tco2e: float | None = None
    energy_tce: float | None = None
    pollutant: str | None = None
    pollutant_t: float | None = None
    factor_ids: list[str]
    fallback: str | None = None
    factor_year: int | None = None
    parameters: dict[str, Any] | None = None
    ruleset: str
    edition: str
    gwp_set: str
    grid_region: str
    run_id: str


class FactorProvenance(BaseModel):
    """Where a default factor comes from: publisher, document, locator, and the library file it was read from."""

    factor_id: str
    edition: str
    ruleset: str
    parameter: str
    subject: str
    region: str | None = None
    year: int | None = None
    value: float | str | None = None
    unit: str | None = None
    value_canonical: float | None = None
    unit_canonical: str | None = None
    publisher: str | None = None
    document: str | None = None
    locator: str | None = None
    url: str | None = None
    published_on: str | None = None
    review_status: str | None = None
    source_file: str | None = None
    source_sha256: str | None = None


class Lineage(BaseModel):
    enterprise_id: str
    period: str
    lines: list[LineageLine]
    factors: list[FactorProvenance]


class ZoneIndicator(BaseModel):
    """Zone totals and intensities of one month for one sector (``all``) and category (``all``)."""

    period: str
    sector_code: str
    category: str
    enterprise_count: int
    substituted_enterprise_count: int = Field(0, description="enterprises whose month is a substituted value")
    scope1_tco2e: float | None = None
    scope2_tco2e: float | None = None
    exported_tco2e: float | None = None
    net_tco2e: float | None = None
    energy_tce: float | None = None
    output_value_10k_cny: float | None = None
    value_added_10k_cny: float | None = None
    tco2e_per_10k_cny_value_added: float | None = None
    tce_per_10k_cny_value_added: float | None = None
    tco2e_per_10k_cny_output_value: float | None = None
    tce_per_10k_cny_output_value: float | None = None
    so2_t: float | None = None
    nox_t: float | None = None
    pm_t: float | None = None
    cod_t: float | None = None
    nh3n_t: float | None = None


class ZoneIndicators(BaseModel):
    items: list[ZoneIndicator]


class Receipt(BaseModel):
    """What the service confirms for an accepted file; a replay returns the first receipt unchanged."""

    submission_id: str
    content_sha256: str
    received_at: datetime
    filename: str
    line_count: int
    enterprise_ids: list[str]
    periods: list[str]
    submitter_id: str
    template_version: str
    status: Literal["accepted"]


#: The template columns the JSON form accepts; kept equal to the parser's list by a test.
ACTIVITY_LINE_FIELDS: tuple[str, ...] = tuple(ActivityLine.model_fields)
TEMPLATE_COLUMNS: tuple[str, ...] = COLUMNS


# ---------------------------------------------------------------------------------------------
# Converters from snapshot rows (plain dicts) to response models: the one place that knows both.


def enterprise_from_row(row: dict[str, Any]) -> Enterprise:
    facilities = [f for f in str(row.get("facilities") or "").split(";") if f]
    return Enterprise.model_validate({**row, "facilities": facilities})


def _balance_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "enterprise_id": row["enterprise_id"], "period": row["period"],
        "totals": Totals.model_validate({c: row.get(c) for c in Totals.model_fields}),
        "products": list(row.get("products") or []), "line_count": row["line_count"],
        "edition": row["edition"], "ruleset": row["ruleset"], "grid_region": row["grid_region"],
        "gwp_set": row["gwp_set"], "run_id": row["run_id"], "is_substituted": bool(row.get("is_substituted")),
    }


def balance_from_row(row: dict[str, Any]) -> Balance:
    return Balance.model_validate(_balance_fields(row))


def yearly_balance_from_row(row: dict[str, Any]) -> YearlyBalance:
    return YearlyBalance.model_validate({**_balance_fields(row), "is_key_emitter": bool(row["is_key_emitter"]),
                                         "months_reported": int(row["months_reported"] or 0),
                                         "months_substituted": int(row.get("months_substituted") or 0)})


def lineage_line_from_row(row: dict[str, Any]) -> LineageLine:
    parameters = row.get("parameters")
    if isinstance(parameters, str):
        parameters = json.loads(parameters)
    return LineageLine.model_validate({**row, "row": row["row_number"], "parameters": parameters,
                                       "factor_ids": list(row.get("factor_ids") or [])})


def factor_from_row(row: dict[str, Any]) -> FactorProvenance:
    published = row.get("published_on")
    return FactorProvenance.model_validate({
        **{k: row.get(k) for k in FactorProvenance.model_fields},
        "published_on": None if published is None else str(published),
        "year": None if row.get("year") is None else int(row["year"]),
    })


class ApprovalOut(BaseModel):
    """A four-eyes proposal; the deciding officer restates ``payload_digest`` (what they reviewed) at
    ``POST /v1/approvals/{approval_id}/decision``."""

    approval_id: str
    kind: str
    payload: dict[str, Any]
    payload_digest: str
    status: str
    proposed_by: str
    proposed_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    result: dict[str, Any] | None

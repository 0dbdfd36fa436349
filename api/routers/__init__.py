"""One router per resource; each route is a few lines: dependencies in, a store or service call, a model out."""

from fastapi import APIRouter

from api.routers import (
    allocation,
    approvals,
    auctions,
    auth,
    calculations,
    compliance,
    emissions,
    exchange,
    health,
    ledger,
    prices,
    quality,
    registry,
    reports,
    restatements,
    review,
    submissions,
    templates,
    users,
    zone,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router, auth.router, users.router, registry.router, emissions.router, zone.router, calculations.router,
    submissions.router, review.router, quality.router, restatements.router, ledger.router, approvals.router,
    compliance.router, prices.router, allocation.router, auctions.router, exchange.router, reports.router,
    templates.router,
)

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
    exchange_session,
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

#: The order is the order the application tries the routers in, one route pattern after another, for every
#: request (no two routers share a path, so it changes no answer): the exchange, whose order entry is the
#: busiest path by far, comes right after the health probes.
ROUTERS: tuple[APIRouter, ...] = (
    health.router, exchange.router, exchange_session.router, auth.router, users.router, registry.router,
    emissions.router, zone.router, calculations.router, submissions.router, review.router, quality.router,
    restatements.router, ledger.router, approvals.router, compliance.router, prices.router, allocation.router,
    auctions.router, reports.router, templates.router,
)

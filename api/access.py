"""Who may call what: one table of (endpoint, role, ownership rule), and the dependency that enforces it.

Every route of the application passes through :func:`authorize` (an application-wide dependency), which:

1. finds the route's entry in :data:`POLICY`; a route without one is refused to everybody (deny by default);
2. lets a public route through; otherwise authenticates the request (``Authorization: Bearer`` with an
   access token or an API key, or the browser's session cookie, which must carry ``X-CSRF-Token`` on any
   request that changes something) and answers 401 when that fails;
3. answers 403 (``role_not_allowed``) when the table gives the user's role no rule for the route;
4. applies the rule: ``any`` lets it through; ``own_enterprise`` answers 404 (``not_found``, the same as
   for an enterprise that does not exist, so existence does not leak) unless the path's ``{enterprise_id}``
   is one of the user's; ``own_account`` does the same for ``{account_id}`` and trading accounts;
   ``scoped`` lets it through and the service confines what it reads or changes to the user's own
   (another's resource answers 404 there).

Services keep their finer rules (the review state machine, who may read evidence): this table is the
first gate, not the only one. ``tests/component/test_access.py`` walks every route of the OpenAPI
document with every role and checks the outcome against this table.

Why :func:`authorize` is a coroutine: it runs before every route, so it must be cheap. A credential checked in
the last few seconds is answered from the process's credential cache (``api.security.CredentialCache``: a
change made in this process holds at once, one made elsewhere within ``credential_cache_seconds``) on the
event loop, with no database and no worker thread; only a miss reads the database, in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from fastapi import Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute

from accounting.review import USER_ROLES, Actor
from api.errors import AccessDeniedError, AuthenticationRequiredError, CsrfError, NotFoundError
from api.rate_limit import limit_client
from api.security import CredentialCache
from api.services.ledger import owns_account
from api.services.users import Authenticated, Credentials, authenticate, csrf_matches, now_utc
from api.store.db import READ_ONLY
from pipelines.settings import Settings

SESSION_COOKIE = "carbon_session"
CSRF_COOKIE = "carbon_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Rule(StrEnum):
    """How a role's access to a route depends on what the request names."""

    ANY = "any"
    OWN_ENTERPRISE = "own_enterprise"
    OWN_ACCOUNT = "own_account"
    SCOPED = "scoped"


@dataclass(frozen=True, slots=True)
class Access:
    """The entry of one route: public, or the rule of each role allowed (absent roles get 403)."""

    public: bool = False
    roles: Mapping[str, Rule] = field(default_factory=dict)


PUBLIC = Access(public=True)
ALL_USERS = " ".join(USER_ROLES)
ZONE_READERS = "verifier officer engineer"
#: Who may read the exchange's public market data.
MARKET_READERS = "officer verifier enterprise trader engineer"


def allow(*, any: str = "", own_enterprise: str = "", own_account: str = "", scoped: str = "") -> Access:  # noqa: A002
    """An entry from space-separated role lists, one per rule."""
    roles: dict[str, Rule] = {}
    for rule, names in ((Rule.ANY, any), (Rule.OWN_ENTERPRISE, own_enterprise), (Rule.OWN_ACCOUNT, own_account),
                        (Rule.SCOPED, scoped)):
        for role in names.split():
            if role not in USER_ROLES or role in roles:
                raise ValueError(f"role '{role}' unknown or given two rules")
            roles[role] = rule
    return Access(roles=roles)


#: The whole table: (method, path template) → who may call it and how ownership is checked.
POLICY: dict[tuple[str, str], Access] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    # signing in, and the signed-in user's own keys
    ("POST", "/v1/auth/token"): PUBLIC,
    ("POST", "/v1/auth/session"): PUBLIC,
    ("POST", "/v1/auth/logout"): allow(any=ALL_USERS),
    ("GET", "/v1/auth/me"): allow(any=ALL_USERS),
    ("GET", "/v1/auth/keys"): allow(any=ALL_USERS),
    ("POST", "/v1/auth/keys"): allow(any=ALL_USERS),
    ("DELETE", "/v1/auth/keys/{key_id}"): allow(scoped=ALL_USERS),
    # user administration
    ("GET", "/v1/users"): allow(any="admin"),
    ("POST", "/v1/users"): allow(any="admin"),
    ("GET", "/v1/users/{user_id}"): allow(any="admin"),
    ("PATCH", "/v1/users/{user_id}"): allow(any="admin"),
    ("GET", "/v1/users/{user_id}/keys"): allow(any="admin"),
    ("POST", "/v1/users/{user_id}/keys"): allow(any="admin"),
    ("DELETE", "/v1/users/{user_id}/keys/{key_id}"): allow(any="admin"),
    # the registry and published results
    ("GET", "/v1/enterprises"): allow(any=f"{ZONE_READERS} trader", scoped="enterprise"),
    ("GET", "/v1/enterprises/{enterprise_id}"): allow(any=f"{ZONE_READERS} trader", own_enterprise="enterprise"),
    ("GET", "/v1/enterprises/{enterprise_id}/emissions/monthly"): allow(any=ZONE_READERS, own_enterprise="enterprise"),
    ("GET", "/v1/enterprises/{enterprise_id}/emissions/yearly"): allow(any=ZONE_READERS, own_enterprise="enterprise"),
    ("GET", "/v1/enterprises/{enterprise_id}/lineage/{period}"): allow(any=ZONE_READERS, own_enterprise="enterprise"),
    ("GET", "/v1/zone/indicators"): allow(any=ZONE_READERS),
    ("POST", "/v1/calculations"): allow(any=f"{ZONE_READERS} enterprise"),
    # submissions and review
    ("POST", "/v1/submissions"): allow(any="officer engineer", scoped="enterprise"),
    ("GET", "/v1/submissions/{submission_id}"): allow(any=ZONE_READERS, scoped="enterprise"),
    ("GET", "/v1/review/queue"): allow(any=ZONE_READERS, scoped="enterprise"),
    ("GET", "/v1/review/periods/{enterprise_id}/{period}"): allow(any=ZONE_READERS, own_enterprise="enterprise"),
    ("POST", "/v1/review/periods/{enterprise_id}/{period}/actions"): allow(any="verifier officer"),
    ("GET", "/v1/review/periods/{enterprise_id}/{period}/evidence"): allow(any=ZONE_READERS,
                                                                         own_enterprise="enterprise"),
    ("POST", "/v1/review/evidence"): allow(any=ZONE_READERS, scoped="enterprise"),
    ("GET", "/v1/review/evidence/{sha256}"): allow(any="verifier officer", scoped="enterprise"),
    ("GET", "/v1/review/audit"): allow(any="officer engineer admin"),
    ("GET", "/v1/review/audit/verify"): allow(any="officer engineer admin"),
    # data quality and restatements
    ("GET", "/v1/quality/completeness"): allow(any=ZONE_READERS, scoped="enterprise"),
    ("GET", "/v1/quality/findings"): allow(any=ZONE_READERS, scoped="enterprise"),
    ("GET", "/v1/quality/factor-check"): allow(any=ZONE_READERS),
    ("GET", "/v1/quality/data-docs/"): allow(any=ZONE_READERS),
    ("GET", "/v1/quality/data-docs/{path:path}"): allow(any=ZONE_READERS),
    ("POST", "/v1/restatements/substitutions"): allow(any="officer"),
    ("GET", "/v1/restatements/substitutions"): allow(any=ZONE_READERS, scoped="enterprise"),
    ("GET", "/v1/restatements/diff"): allow(any="verifier officer"),
    # the carbon-rights ledger
    ("GET", "/v1/ledger/accounts"): allow(any="officer verifier", scoped="enterprise trader"),
    ("POST", "/v1/ledger/accounts"): allow(any="officer"),
    ("GET", "/v1/ledger/accounts/{account_id}"): allow(any="officer verifier", own_account="enterprise trader"),
    ("GET", "/v1/ledger/accounts/{account_id}/entries"): allow(any="officer verifier",
                                                              own_account="enterprise trader"),
    ("GET", "/v1/ledger/accounts/{account_id}/counterparties"): allow(any="officer verifier",
                                                                     own_account="enterprise trader"),
    ("POST", "/v1/ledger/accounts/{account_id}/counterparties"): allow(own_account="enterprise trader"),
    ("DELETE", "/v1/ledger/accounts/{account_id}/counterparties/{counterparty_id}"): allow(
        own_account="enterprise trader"),
    ("POST", "/v1/ledger/transfers"): allow(any="officer", scoped="enterprise trader"),
    ("POST", "/v1/ledger/deposits"): allow(any="officer"),
    ("POST", "/v1/ledger/reversals"): allow(any="officer"),
    ("GET", "/v1/ledger/encumbrances"): allow(any="officer verifier", scoped="enterprise trader"),
    ("POST", "/v1/ledger/freezes"): allow(any="officer"),
    ("POST", "/v1/ledger/pledges"): allow(scoped="enterprise trader"),
    ("POST", "/v1/ledger/encumbrances/{encumbrance_id}/release"): allow(any="officer"),
    ("GET", "/v1/ledger/verify"): allow(any="officer engineer"),
    # four eyes: what one officer proposed, a second decides
    ("GET", "/v1/approvals"): allow(any="officer"),
    ("GET", "/v1/approvals/{approval_id}"): allow(any="officer"),
    ("POST", "/v1/approvals/{approval_id}/decision"): allow(any="officer"),
    # allocation
    ("POST", "/v1/allocation/plans"): allow(any="officer"),
    ("GET", "/v1/allocation/plans"): allow(any="officer verifier"),
    ("GET", "/v1/allocation/plans/{plan_id}/{version}"): allow(any="officer verifier"),
    ("POST", "/v1/allocation/plans/{plan_id}/{version}/pre-allocation"): allow(any="officer"),
    ("POST", "/v1/allocation/plans/{plan_id}/{version}/true-up"): allow(any="officer"),
    ("GET", "/v1/allocation/enterprises/{enterprise_id}"): allow(any="officer verifier",
                                                                own_enterprise="enterprise"),
    # auctions
    ("POST", "/v1/auctions"): allow(any="officer"),
    ("GET", "/v1/auctions"): allow(any="officer verifier enterprise trader"),
    ("GET", "/v1/auctions/{auction_id}"): allow(any="officer verifier enterprise trader"),
    ("POST", "/v1/auctions/{auction_id}/bids"): allow(scoped="enterprise trader"),
    ("GET", "/v1/auctions/{auction_id}/bids"): allow(any="officer", scoped="enterprise trader"),
    ("DELETE", "/v1/auctions/{auction_id}/bids/{bid_id}"): allow(scoped="enterprise trader"),
    ("POST", "/v1/auctions/{auction_id}/close"): allow(any="officer"),
    ("GET", "/v1/auctions/{auction_id}/report"): allow(any="officer verifier"),
    # compliance and prices
    ("POST", "/v1/compliance/surrenders"): allow(scoped="enterprise"),
    ("GET", "/v1/compliance/{year}/report"): allow(any="officer verifier"),
    ("GET", "/v1/compliance/{year}/enterprises/{enterprise_id}"): allow(any="officer verifier",
                                                                       own_enterprise="enterprise"),
    ("POST", "/v1/compliance/{year}/close"): allow(any="officer"),
    ("GET", "/v1/prices"): allow(any=ALL_USERS),
    ("POST", "/v1/prices"): allow(any="officer"),
    # the mock exchange: officers list and control, enterprises and traders trade from their own accounts
    ("POST", "/v1/exchange/instruments"): allow(any="officer"),
    ("GET", "/v1/exchange/instruments"): allow(any=MARKET_READERS),
    ("GET", "/v1/exchange/instruments/{instrument}"): allow(any=MARKET_READERS),
    ("POST", "/v1/exchange/instruments/{instrument}/halt"): allow(any="officer"),
    ("POST", "/v1/exchange/instruments/{instrument}/resume"): allow(any="officer"),
    ("POST", "/v1/exchange/instruments/{instrument}/band"): allow(any="officer"),
    ("POST", "/v1/exchange/instruments/{instrument}/restrictions"): allow(any="officer"),
    ("DELETE", "/v1/exchange/instruments/{instrument}/restrictions/{account_id}"): allow(any="officer"),
    ("POST", "/v1/exchange/instruments/{instrument}/roll"): allow(any="officer"),
    ("GET", "/v1/exchange/clock"): allow(any=MARKET_READERS),
    ("PUT", "/v1/exchange/clock"): allow(any="officer"),
    ("POST", "/v1/exchange/clock/step"): allow(any="officer"),
    ("POST", "/v1/exchange/instruments/{instrument}/orders"): allow(scoped="enterprise trader"),
    ("GET", "/v1/exchange/orders"): allow(any="officer", scoped="enterprise trader"),
    ("GET", "/v1/exchange/instruments/{instrument}/orders/{order_id}"): allow(any="officer",
                                                                             scoped="enterprise trader"),
    ("DELETE", "/v1/exchange/instruments/{instrument}/orders/{order_id}"): allow(scoped="enterprise trader"),
    ("POST", "/v1/exchange/instruments/{instrument}/orders/{order_id}/replace"): allow(scoped="enterprise trader"),
    ("POST", "/v1/exchange/instruments/{instrument}/quotes"): allow(scoped="enterprise trader"),
    ("POST", "/v1/exchange/instruments/{instrument}/quotes/{quote_id}/take"): allow(scoped="enterprise trader"),
    ("DELETE", "/v1/exchange/instruments/{instrument}/quotes/{quote_id}"): allow(scoped="enterprise trader"),
    ("POST", "/v1/exchange/instruments/{instrument}/blocks"): allow(scoped="enterprise trader"),
    ("POST", "/v1/exchange/instruments/{instrument}/blocks/{proposal_id}/{answer}"): allow(
        scoped="enterprise trader"),
    ("GET", "/v1/exchange/instruments/{instrument}/depth"): allow(any=MARKET_READERS),
    ("GET", "/v1/exchange/instruments/{instrument}/trades"): allow(any=MARKET_READERS),
    ("GET", "/v1/exchange/instruments/{instrument}/days"): allow(any=MARKET_READERS),
    ("GET", "/v1/exchange/instruments/{instrument}/candles"): allow(any=MARKET_READERS),
    ("GET", "/v1/exchange/instruments/{instrument}/stream"): allow(any=MARKET_READERS),
    ("GET", "/v1/exchange/accounts/{account_id}/statement"): allow(any="officer", own_account="enterprise trader"),
    ("GET", "/v1/exchange/instruments/{instrument}/verify"): allow(any="officer engineer"),
    # reports (JSON, PDF, printable page, CSV, XLSX) and the blank activity template
    ("GET", "/v1/reports/enterprises/{enterprise_id}/ghg/{year}"): allow(any=ZONE_READERS,
                                                                        own_enterprise="enterprise"),
    ("GET", "/v1/reports/zone/{period}"): allow(any=ZONE_READERS),
    ("GET", "/v1/reports/compliance/{year}"): allow(any="officer verifier"),
    ("GET", "/v1/templates/activity.csv"): allow(any=ALL_USERS),
    ("GET", "/v1/templates/activity.xlsx"): allow(any=ALL_USERS),
}


#: The web pages (``api.web``, under ``/ui``): the same gate, kept apart from :data:`POLICY` because the pages are
#: not in the OpenAPI document that ``tests/component/test_access.py`` walks (``tests/component/test_web_access.py``
#: walks these). A page names the roles that may open it; the JSON API behind its actions keeps its own entries.
PAGE_POLICY: dict[tuple[str, str], Access] = {
    ("GET", "/ui/login"): PUBLIC,
    ("GET", "/ui/lang/{code}"): PUBLIC,
    ("GET", "/ui/static/vendor/plotly.min.js"): PUBLIC,
    ("GET", "/ui/"): allow(any=ALL_USERS),
    # officer pages: the zone at a glance, the enterprises, one enterprise and its lineage, the review queue
    ("GET", "/ui/zone"): allow(any=ZONE_READERS),
    ("GET", "/ui/enterprises"): allow(any=ZONE_READERS),
    ("GET", "/ui/enterprises/{enterprise_id}"): allow(any=ZONE_READERS),
    ("GET", "/ui/enterprises/{enterprise_id}/lineage/{period}"): allow(any=ZONE_READERS),
    ("GET", "/ui/review"): allow(any="verifier officer"),
    # an enterprise's own pages (officers and verifiers may open any, as the routes they read allow), carbon
    # rights as the compliance routes allow, and the market as its public data and the auction list allow
    ("GET", "/ui/my"): allow(any="enterprise"),
    ("GET", "/ui/my/{enterprise_id}"): allow(any="officer verifier", own_enterprise="enterprise"),
    ("GET", "/ui/my/{enterprise_id}/upload"): allow(any="officer engineer", own_enterprise="enterprise"),
    ("GET", "/ui/rights"): allow(any="officer verifier"),
    ("GET", "/ui/rights/{enterprise_id}"): allow(any="officer verifier", own_enterprise="enterprise"),
    ("GET", "/ui/market"): allow(any=MARKET_READERS),
    ("GET", "/ui/market/auctions"): allow(any="officer verifier enterprise trader"),
    ("GET", "/ui/market/{instrument}"): allow(any=MARKET_READERS),
}


#: WebSocket routes (not in the OpenAPI document either), under the pseudo-method ``WEBSOCKET``. A socket signs in
#: with the ``Authorization`` header only: a browser would send the session cookie from any site that opens it.
SOCKET_POLICY: dict[tuple[str, str], Access] = {
    ("WEBSOCKET", "/v1/exchange/session"): allow(scoped="enterprise trader"),
}


def access_of(method: str, path: str) -> Access | None:
    return POLICY.get((method, path)) or PAGE_POLICY.get((method, path)) or SOCKET_POLICY.get((method, path))


def method_of(connection: HTTPConnection) -> str:
    """The request's method, or ``WEBSOCKET`` for a WebSocket."""
    return str(connection.scope.get("method") or "WEBSOCKET")


def presented_credentials(request: HTTPConnection) -> Credentials | None:
    """The bearer token or API key of the ``Authorization`` header, else the session cookie (not for a socket)."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return Credentials(token=token.strip()) if scheme.lower() == "bearer" else Credentials(token="")
    cookie = request.cookies.get(SESSION_COOKIE) if request.scope["type"] == "http" else None
    if cookie:
        return Credentials(token=cookie, via_cookie=True, csrf_token=request.headers.get(CSRF_HEADER))
    return None


def _cache_kind(credentials: Credentials) -> str:
    return "cookie" if credentials.via_cookie else "header"


def _authenticate_in_database(request: HTTPConnection, settings: Settings,
                              credentials: Credentials) -> Authenticated | None:
    """A cache miss: read the credential and its user (in a worker thread), and remember a success."""
    cache: CredentialCache[Authenticated] = request.app.state.credentials
    generation = cache.generation  # before the read: a change committed during it keeps the answer out
    with request.app.state.sessions() as session:
        session.connection(execution_options=READ_ONLY)  # a sign-in check never waits behind a writer
        found = authenticate(session, settings, credentials, verified_keys=request.app.state.verified_keys)
    if found is not None:
        cache.remember(kind=_cache_kind(credentials), token=credentials.token, identity=found,
                       user_id=found.actor.actor_id, expires_at=found.expires_at, generation=generation)
    return found


async def _sign_in(request: HTTPConnection, settings: Settings, credentials: Credentials) -> Authenticated:
    cache: CredentialCache[Authenticated] = request.app.state.credentials
    found = cache.recall(kind=_cache_kind(credentials), token=credentials.token, now=now_utc())
    if found is None:
        found = await run_in_threadpool(_authenticate_in_database, request, settings, credentials)
    if found is None:
        limit_client(request, key=None)  # a failed attempt counts against the address
        raise AuthenticationRequiredError("the token, key or session is unknown, expired or revoked; sign in again")
    limit_client(request, key="user:" + found.actor.actor_id)
    if credentials.via_cookie and method_of(request) not in SAFE_METHODS and not csrf_matches(found,
                                                                                         credentials.csrf_token):
        raise CsrfError(f"a change made with a session cookie needs the {CSRF_HEADER} header of that session")
    return found


async def authorize(request: HTTPConnection) -> Actor | None:
    """Enforce :data:`POLICY` for this request; the signed-in user (None on a public route)."""
    route: BaseRoute | None = request.scope.get("route")
    path = getattr(route, "path", None)
    method = method_of(request)
    access = access_of(method, path) if isinstance(path, str) else None
    if access is None:
        raise AccessDeniedError(f"{method} {path} is in no access rule: refused to everybody")
    if access.public:
        return None
    credentials = presented_credentials(request)
    if credentials is None:
        raise AuthenticationRequiredError("sign in: send 'Authorization: Bearer <access token or API key>'")
    settings: Settings = request.app.state.settings
    found = await _sign_in(request, settings, credentials)
    actor = found.actor
    request.state.actor_role = actor.role  # for the request log (api.request_log): the role only, never the id
    request.state.authenticated = found
    rule = access.roles.get(actor.role)
    if rule is None:
        allowed = ", ".join(sorted(access.roles)) or "nobody"
        raise AccessDeniedError(f"{method} {path} is for {allowed}, not {actor.role}")
    if rule is Rule.OWN_ENTERPRISE and request.path_params.get("enterprise_id") not in actor.enterprise_ids:
        raise NotFoundError("no such resource")
    if rule is Rule.OWN_ACCOUNT and not owns_account(actor, str(request.path_params.get("account_id"))):
        raise NotFoundError("no such resource")
    return actor


async def signed_in_again(connection: HTTPConnection) -> Actor:
    """The user of a long-lived connection, checked again as each of its requests would be (revocations hold)."""
    credentials = presented_credentials(connection)
    if credentials is None:
        raise AuthenticationRequiredError("sign in: send 'Authorization: Bearer <access token or API key>'")
    return (await _sign_in(connection, connection.app.state.settings, credentials)).actor


async def current_actor(actor: Annotated[Actor | None, Depends(authorize)]) -> Actor:
    """The signed-in user of a route that is not public (a coroutine: a plain function would cost a thread hop)."""
    if actor is None:
        raise AuthenticationRequiredError("sign in: send 'Authorization: Bearer <access token or API key>'")
    return actor


async def current_sign_in(request: HTTPConnection, _: Annotated[Actor, Depends(current_actor)]) -> Authenticated:
    """How the signed-in user authenticated (for sign-out and the user's own description)."""
    found: Authenticated = request.state.authenticated
    return found


ActorDep = Annotated[Actor, Depends(current_actor)]
SignInDep = Annotated[Authenticated, Depends(current_sign_in)]

"""One Jinja2 environment for every page, and ``render``: a template plus what every page needs.

Every page gets ``t`` (the reader's language, ``api.web.i18n``), ``lang``, ``user`` (the signed-in
``Actor``, None on a public page), ``nav`` (the entries of the user's role) and ``path`` (for the language
switch's way back). Autoescaping is on for every template: a value from a file or a user is text, never markup.
Numbers are shown by one filter, ``num``: thousands separators and a fixed number of decimals, applied only
here, at presentation (nothing upstream is rounded).

Every page's data tables can also be downloaded: a page request with ``?export=<table id>&format=csv|xlsx`` is
rendered the same way and answered with that table as a file (``api.web.exports``), so each download holds what
the page shows, under the page's own access check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from accounting.market_rules import CHINA_TZ
from accounting.review import Actor
from api.services.users import Authenticated
from api.web.exports import export_href, requested_export, table_download
from api.web.i18n import LANGUAGES, language_of, problem_messages, translator

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
MISSING = "—"


@dataclass(frozen=True, slots=True)
class NavEntry:
    """A link of the navigation bar: a message key, where it goes, and the roles that see it."""

    key: str
    href: str
    roles: frozenset[str]


def _roles(names: str) -> frozenset[str]:
    return frozenset(names.split())


#: The navigation bar, in order; each role sees the entries that name it (the pages themselves are guarded
#: by ``api.access.PAGE_POLICY``, so a missing entry hides a link, never opens a page).
NAV: tuple[NavEntry, ...] = (
    NavEntry("nav.zone", "/ui/zone", _roles("officer verifier engineer")),
    NavEntry("nav.enterprises", "/ui/enterprises", _roles("officer verifier engineer")),
    NavEntry("nav.review", "/ui/review", _roles("officer verifier")),
    NavEntry("nav.my", "/ui/my", _roles("enterprise")),
    NavEntry("nav.rights", "/ui/rights", _roles("officer verifier")),
    NavEntry("nav.market", "/ui/market", _roles("officer verifier enterprise trader")),
)


def china_time(moment: datetime | str | None, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A stored moment (UTC; or its ISO text) as China wall-clock time, as the zone's people read the time and as
    the trading sessions are stated; "" for none."""
    if moment is None or moment == "":
        return ""
    parsed = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(CHINA_TZ).strftime(pattern)


def format_number(value: Any, digits: int = 0) -> str:
    """``12345.678`` → ``12,345.68`` (``digits=2``); None and NaN → a dash. The one number format of the pages."""
    if value is None or isinstance(value, bool):
        return MISSING
    if isinstance(value, float) and not math.isfinite(value):
        return MISSING
    if not isinstance(value, int | float | Decimal):
        raise TypeError(f"num expects a number, got {type(value).__name__}")
    return format(value, f",.{digits}f")


def query_string(params: dict[str, Any], **changes: Any) -> str:
    """``params`` with ``changes`` as a query string (lists repeat the name; empty values are left out)."""
    merged = {k: v for k, v in {**params, **changes}.items() if v not in ("", None, [])}
    return urlencode(merged, doseq=True)


def signed_in_user(request: Request) -> Actor | None:
    """The user ``api.access.authorize`` signed in for this request (None on a public page)."""
    found: Authenticated | None = getattr(request.state, "authenticated", None)
    return found.actor if found is not None else None


def nav_for(user: Actor | None, *, path: str) -> list[dict[str, Any]]:
    return [{"key": e.key, "href": e.href, "active": path == e.href or path.startswith(e.href + "/")}
            for e in NAV if user is not None and user.role in e.roles]


@cache
def environment() -> Environment:
    """The environment, built on first use (nothing happens at import time)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True,
                      default_for_string=True), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    env.filters["urlpart"] = lambda text: quote(str(text), safe="")
    env.filters["china_time"] = china_time
    env.globals["query_string"] = query_string
    env.globals["export_href"] = export_href
    return env


#: Every page: not cached (it shows one user's data), and the browser told to load nothing from another address,
#: to send no form elsewhere and to show the page in no other site's frame (the review and market actions).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline';"
                               " style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:;"
                               " connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self';"
                               " frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def render(request: Request, name: str, *, status_code: int = 200, **context: Any) -> Response:
    """The page ``name`` (a path under ``templates/``) in the reader's language, or one of its tables as a file."""
    lang = language_of(request)
    user = signed_in_user(request)
    path = request.url.path
    here = path + (f"?{request.url.query}" if request.url.query else "")
    page = environment().get_template(name).render(
        request=request, t=translator(lang), lang=lang, languages=LANGUAGES, user=user, nav=nav_for(user, path=path),
        path=path, here=here, problems=problem_messages(lang), **context)
    table_id = requested_export(request)
    if table_id is not None and status_code == 200 and path.startswith("/ui/"):
        return table_download(request, page, table_id=table_id)
    return HTMLResponse(page, status_code=status_code, headers=PAGE_HEADERS)

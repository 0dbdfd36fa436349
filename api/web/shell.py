"""The frame of the web pages: sign-in, the language switch, each role's home, the charting library, and
how errors look on a page.

A page request without a valid session does not get the API's 401 body: it is sent (303) to the sign-in page,
which comes back to the page afterwards (``next``, only ever a path under ``/ui/``). Every other refusal
(403, 404, 503...) is the same problem as the API's, shown as a page with the same status.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from api.errors import HANDLERS, NotFoundError
from api.request_log import REQUEST_ID_HEADER
from api.web.i18n import LANGUAGE_COOKIE, LANGUAGES
from api.web.render import render, signed_in_user

router = APIRouter(prefix="/ui", include_in_schema=False)
logger = logging.getLogger(__name__)

PAGE_PREFIX = "/ui"
HOME = "/ui/"
LOGIN = "/ui/login"
#: Where each role lands after signing in.
ROLE_HOMES = {"officer": "/ui/zone", "verifier": "/ui/zone", "engineer": "/ui/zone", "enterprise": "/ui/my",
              "trader": "/ui/market"}
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600
NextQuery = Annotated[str, Query(max_length=2000, description="the page to return to, a path under /ui/")]


def safe_next(target: str | None) -> str:
    """``target`` when it is a page of this service (a path under ``/ui/``), else the home page: never elsewhere."""
    if target and target.startswith(HOME) and "\\" not in target and "//" not in target:
        return target
    return HOME


def plotly_bundle() -> Path:
    """The minified Plotly.js shipped inside the installed ``plotly`` package (found without importing it)."""
    spec = find_spec("plotly")
    if spec is None or spec.origin is None:
        raise NotFoundError("the plotly package is not installed")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


@router.get("/login")
def login_page(request: Request, next_page: Annotated[str, Query(alias="next", max_length=2000)] = HOME
               ) -> Response:
    """The sign-in form; its script posts to ``/v1/auth/session`` and then opens ``next``."""
    return render(request, "login.html", next_page=safe_next(next_page))


@router.get("/lang/{code}")
def switch_language(code: str, next_page: Annotated[str, Query(alias="next", max_length=2000)] = HOME) -> Response:
    """Remember the reader's language in a cookie and go back to the page (``zh`` or ``en`` only)."""
    if code not in LANGUAGES:
        raise NotFoundError(f"no language '{code}'; one of {', '.join(LANGUAGES)}")
    response = RedirectResponse(safe_next(next_page), status_code=303)
    response.set_cookie(LANGUAGE_COOKIE, code, max_age=LANGUAGE_COOKIE_SECONDS, path="/", samesite="lax")
    return response


@router.get("/")
def home(request: Request) -> Response:
    """Each role's home page; a role without pages of its own (admin) gets a page saying so."""
    user = signed_in_user(request)
    if user is not None and user.role in ROLE_HOMES:
        return RedirectResponse(ROLE_HOMES[user.role], status_code=303)
    return render(request, "home.html")


@router.get("/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    """Plotly.js from the installed package: no page loads anything from another address."""
    return FileResponse(plotly_bundle(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})


# ---------------------------------------------------------------------------------------------
# Errors on pages


def is_page(request: Request) -> bool:
    path = request.url.path
    return path == PAGE_PREFIX or path.startswith(PAGE_PREFIX + "/")


_Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def page_aware(handler: _Handler) -> Callable[[Request, Exception], Awaitable[Response]]:
    """``handler`` (from ``api.errors``) as it is for the API; on a page, a redirect to sign in or an error page."""

    async def handle(request: Request, exc: Exception) -> Response:
        response = handler(request, exc)
        if inspect.isawaitable(response):
            response = await response
        if not is_page(request):
            return response
        if response.status_code == 401:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{LOGIN}?next={quote(here, safe='/')}", status_code=303)
        try:
            problem = json.loads(bytes(response.body)) if response.body else {}
            page = render(request, "error.html", status_code=response.status_code, problem=problem)
        except Exception:  # a page that cannot show the error still gives the API's answer  # noqa: BLE001
            logger.exception("the error page could not be rendered")
            return response
        for name in ("Retry-After", REQUEST_ID_HEADER):
            if name in response.headers:
                page.headers[name] = response.headers[name]
        return page

    return handle


def install_page_errors(app: FastAPI) -> None:
    """Wrap every handler of ``api.errors`` so that pages answer in HTML (after ``install_error_handlers``)."""
    for exception, handler in HANDLERS.items():
        app.add_exception_handler(exception, page_aware(handler))

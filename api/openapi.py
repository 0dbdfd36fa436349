"""The OpenAPI document as the application really answers: every error is ``application/problem+json``.

FastAPI documents a ``responses={404: {"model": Problem}}`` as ``application/json`` and adds its own
``HTTPValidationError`` for 422, while ``api.errors`` answers every error with a problem+json body. This
rewrites the generated document once: each 4xx/5xx response of each operation carries the ``Problem``
schema under ``application/problem+json``, and the errors any operation can return are listed on it:
422 (invalid parameters or body) where it takes input, 400 (a malformed multipart body) where it
takes a form, 401 on every route that is not public, 403 where some role is refused, 404 where the
access table checks ownership (``api.access``), and 503 (database or published snapshot unavailable)
everywhere. The security schemes (bearer token or API key, session cookie) come from the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from accounting.review import USER_ROLES
from api.access import CSRF_HEADER, SESSION_COOKIE, Access, Rule, access_of
from api.errors import PROBLEM_MEDIA_TYPE
from api.schemas import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
COMMON_ERRORS = {
    "400": "A multipart body that cannot be parsed (malformed, or too many fields)",
    "401": "Not signed in: no credentials, or unknown, expired or revoked ones",
    "403": "The user's role may not do this (or a cookie session's change without its CSRF token)",
    "404": "Not found (also what another enterprise's or account's resource answers)",
    "422": "Invalid parameters or body",
    "503": "The database or the published snapshot is unavailable",
}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "an access token from POST /v1/auth/token (cs_...) or an API key (ck_...)"},
    "password": {"type": "oauth2", "flows": {"password": {"tokenUrl": "/v1/auth/token", "scopes": {}}}},
    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                "description": f"the browser session of POST /v1/auth/session; changes also need {CSRF_HEADER}"},
}


def document_problems(schema: dict[str, Any], *, templates: dict[str, str]) -> dict[str, Any]:
    """Rewrite an OpenAPI document in place so its error responses say what ``api.errors`` sends.

    ``templates`` maps each documented path to the route's own template (``{path}`` → ``{path:path}``).
    """
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}"))
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in METHODS:
                _document_operation(operation, access_of(method.upper(), templates.get(path, path)))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def _document_operation(operation: dict[str, Any], access: Access | None) -> None:
    responses = operation.setdefault("responses", {})
    names = {p.get("name") for p in operation.get("parameters", [])}
    wanted = ["503"]
    if names or "requestBody" in operation:
        wanted.append("422")
    if "multipart/form-data" in operation.get("requestBody", {}).get("content", {}):
        wanted.append("400")
    if access is None or not access.public:
        operation["security"] = [{"bearer": []}, {"password": []}, {"session": []}]
        wanted.append("401")
        if access is None or set(access.roles) != set(USER_ROLES):
            wanted.append("403")
        if access is not None and ({Rule.OWN_ENTERPRISE, Rule.OWN_ACCOUNT, Rule.SCOPED} & set(access.roles.values())):
            wanted.append("404")
    for code in wanted:
        responses.setdefault(code, {"description": COMMON_ERRORS[code]})
    for code, response in responses.items():
        if code[:1] in ("4", "5"):
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, also inside included routers (which FastAPI keeps as routers of their own)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from api_routes(included.routes)


def problem_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """A replacement for ``app.openapi``: FastAPI's document, rewritten once by ``document_problems``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            templates = {r.path_format: r.path for r in api_routes(app.routes)}
            app.openapi_schema = document_problems(get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                description=app.description, routes=app.routes, tags=app.openapi_tags, servers=app.servers),
                templates=templates)
        return app.openapi_schema

    return openapi

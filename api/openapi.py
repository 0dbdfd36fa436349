"""The OpenAPI document as the application really answers: every error is ``application/problem+json``.

FastAPI documents a ``responses={404: {"model": Problem}}`` as ``application/json`` and adds its own
``HTTPValidationError`` for 422, while ``api.errors`` answers every error with a problem+json body. This
rewrites the generated document once: each 4xx/5xx response of each operation carries the ``Problem``
schema under ``application/problem+json``, and the errors any operation can return are listed on it:
422 (invalid parameters or body) where it takes input, 400 (a malformed multipart body) where it
takes a form, 401 and 403 where it names an actor, and 503
(database or published snapshot unavailable) everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.errors import PROBLEM_MEDIA_TYPE
from api.schemas import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
COMMON_ERRORS = {
    "400": "A multipart body that cannot be parsed (malformed, or too many fields)",
    "401": "Who is acting is not said (X-Actor-Id and X-Role)",
    "403": "The actor's role or enterprises do not allow this",
    "422": "Invalid parameters or body",
    "503": "The database or the published snapshot is unavailable",
}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an OpenAPI document in place so its error responses say what ``api.errors`` sends."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}"))
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method in METHODS:
                _document_operation(operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def _document_operation(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    names = {p.get("name") for p in operation.get("parameters", [])}
    wanted = ["503"]
    if names or "requestBody" in operation:
        wanted.append("422")
    if "multipart/form-data" in operation.get("requestBody", {}).get("content", {}):
        wanted.append("400")
    if "X-Actor-Id" in names:
        wanted += ["401", "403"]
    for code in wanted:
        responses.setdefault(code, {"description": COMMON_ERRORS[code]})
    for code, response in responses.items():
        if code[:1] in ("4", "5"):
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}


def problem_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """A replacement for ``app.openapi``: FastAPI's document, rewritten once by ``document_problems``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                description=app.description, routes=app.routes, tags=app.openapi_tags, servers=app.servers))
        return app.openapi_schema

    return openapi

"""The words of the web pages in Simplified Chinese (the default: the zone's officers read Chinese) and English.

Every visible string of a template goes through ``t("section.key")``; the catalog is ``messages.toml``, where
each message is a table with exactly the keys ``zh`` and ``en`` (a test checks that every key a template uses
exists in both). A message may name parameters in braces (``"{count} 家企业"``), filled by
``t("key", count=3)``. A key missing from the catalog is an error, never a silently English or empty page.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from starlette.requests import Request

CATALOG_PATH = Path(__file__).with_name("messages.toml")
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LANGUAGE_COOKIE = "carbon_lang"


class MessageCatalogError(LookupError):
    """A message key that the catalog does not hold, or a catalog entry without both languages."""


class Translate(Protocol):
    def __call__(self, key: str, /, **params: Any) -> str: ...


def _flatten(table: Mapping[str, Any], *, prefix: str = "") -> dict[str, dict[str, str]]:
    """``{"nav": {"zone": {"zh": .., "en": ..}}}`` → ``{"nav.zone": {"zh": .., "en": ..}}``."""
    messages: dict[str, dict[str, str]] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if not isinstance(value, Mapping):
            raise MessageCatalogError(f"{CATALOG_PATH.name}: '{key}' is not a table of languages")
        if not any(isinstance(v, Mapping) for v in value.values()):  # a message: its languages
            if set(value) != set(LANGUAGES) or not all(isinstance(v, str) for v in value.values()):
                raise MessageCatalogError(f"{CATALOG_PATH.name}: '{key}' needs a text in each of {LANGUAGES}")
            messages[key] = dict(value)
        else:
            messages.update(_flatten(value, prefix=f"{key}."))
    return messages


@cache
def catalog() -> dict[str, dict[str, str]]:
    """Every message by dotted key, read once per process."""
    with CATALOG_PATH.open("rb") as handle:
        return _flatten(tomllib.load(handle))


def translator(language: str) -> Translate:
    """The ``t`` of the templates for one language."""
    messages = catalog()

    def translate(key: str, /, **params: Any) -> str:
        entry = messages.get(key)
        if entry is None:
            raise MessageCatalogError(f"no message '{key}' in {CATALOG_PATH.name}")
        text = entry[language]
        return text.format(**params) if params else text

    return translate


@cache
def problem_messages(language: str) -> dict[str, str]:
    """What each error code of the API means, in ``language`` (the ``problem`` section): the page script shows it
    beside the API's own (English, technical) detail when an action or an upload is refused."""
    return {key.removeprefix("problem."): entry[language] for key, entry in catalog().items()
            if key.startswith("problem.")}


def language_of(request: Request) -> str:
    """The reader's language: the ``carbon_lang`` cookie when it names a known one, else Chinese."""
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE

"""Reading the web pages in tests: the elements a page marks with ``data-testid`` or ``id``, and their text.

A small parser of the standard library's ``html.parser``: enough for server-rendered pages whose key
elements carry stable ids, without a browser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "api" / "web" / "templates"
#: ``t("section.key")`` with a literal key in a template.
MESSAGE_KEY = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.]+)["']\s*[,)]""")
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)

    def __getitem__(self, name: str) -> str:
        return self.attrs[name]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        for parent in self._open:
            parent.children.append(element)
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


@dataclass
class Page:
    """A parsed page: ``page.all(testid="x")``, ``page.one(id="y")``, ``page.text``."""

    html: str
    elements: list[Element]

    @classmethod
    def parse(cls, html: str) -> Page:
        collector = _Collector()
        collector.feed(html)
        return cls(html, collector.elements)

    def all(self, *, tag: str | None = None, **attrs: str) -> list[Element]:
        """Elements with every attribute given (``testid`` is ``data-testid``, ``data_x`` is ``data-x``)."""
        wanted = {k.replace("testid", "data-testid").replace("_", "-"): v for k, v in attrs.items()}
        return [e for e in self.elements if (tag is None or e.tag == tag)
                and all(e.attrs.get(k) == v for k, v in wanted.items())]

    def one(self, *, tag: str | None = None, **attrs: str) -> Element:
        found = self.all(tag=tag, **attrs)
        assert len(found) == 1, f"{len(found)} elements with {attrs}"
        return found[0]

    @property
    def text(self) -> str:
        return " ".join(e.text for e in self.elements if e.tag == "body")


def squash(text: str) -> str:
    return " ".join(text.split())


def template_message_keys() -> dict[str, set[str]]:
    """Every literal message key each template uses, by template path."""
    return {str(path.relative_to(TEMPLATES)): set(MESSAGE_KEY.findall(path.read_text(encoding="utf-8")))
            for path in sorted(TEMPLATES.rglob("*.html"))}

"""Helpers shared by tests: build activity files in memory and calculate them."""

from __future__ import annotations

import csv
import io
import shutil
import tomllib
from collections.abc import Iterable
from hashlib import sha256
from pathlib import Path
from typing import Any

from accounting.activity import SourceFile
from accounting.calculation import CalculationOptions
from accounting.factors import FactorLibrary, load_library
from accounting.review import Actor
from api.services.registry import import_registry
from api.services.submissions import accept_submission
from api.store.db import session_factory
from pipelines.settings import Settings
from pipelines.warehouse import calculate_sources

ENTERPRISE = "91410100MA44A2B3CG"  # a valid unified social credit code


def csv_file(rows: list[dict[str, Any]], *, name: str = "lines.csv") -> SourceFile:
    """A template CSV with the union of the rows' keys as header; enterprise and period defaulted."""
    full = [{"enterprise_id": ENTERPRISE, "period": "2023-01", **row} for row in rows]
    columns = list(dict.fromkeys(k for row in full for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(full)
    return SourceFile(name, buffer.getvalue().encode("utf-8"))


def calculate(rows: list[dict[str, Any]], *, library: FactorLibrary | None = None, **options: Any) -> dict[str, Any]:
    return calculate_sources([csv_file(rows)], library=library or load_library(),
                             options=CalculationOptions(**options))


def only_line(document: dict[str, Any]) -> dict[str, Any]:
    lines = [line for result in document["results"] for line in result["lines"]]
    assert len(lines) == 1
    return lines[0]


def line_tco2e(row: dict[str, Any], **options: Any) -> float:
    return float(only_line(calculate([row], **options))["tco2e"])


SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
LOADER = Actor(actor_id="test-loader", role="engineer")


def load_zone(settings: Settings, *, months: Iterable[str] | None = None) -> None:
    """Import the sample registry and submit sample months (all by default), as a data engineer would."""
    wanted = None if months is None else set(months)
    with session_factory(settings)() as session:
        import_registry(session, content=(SAMPLE / "enterprises.csv").read_bytes(), source="enterprises.csv",
                        actor=LOADER)
        for path in sorted((SAMPLE / "activity").glob("*.csv")):
            if wanted is None or path.stem in wanted:
                accept_submission(session, settings=settings, actor=LOADER, filename=path.name,
                                  content=path.read_bytes())


def sample_rows(month: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of one sample month file."""
    reader = csv.DictReader(io.StringIO((SAMPLE / "activity" / f"{month}.csv").read_text(encoding="utf-8-sig")))
    return list(reader.fieldnames or []), list(reader)


def to_csv(header: list[str], rows: list[dict[str, str]]) -> bytes:
    """Rows back into a template CSV."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def library_with_edition(root: Path, *, old: bytes, new: bytes, name: str = "2027.1",
                         description: str = "test edition") -> FactorLibrary:
    """A copy of the packaged factor library at ``root`` with a new edition ``name``: the first edition with
    ``old`` replaced by ``new`` (exactly once) in its Table C.1 file, hashes and catalog entry included."""
    shutil.copytree(Path(load_library().root), root)
    catalog_text = (root / "catalog.toml").read_text(encoding="utf-8")
    first = tomllib.loads(catalog_text)["editions"][0]
    folder = root / "editions" / name
    folder.mkdir()
    entries = []
    for listed in first["files"]:
        content = (root / "editions" / first["edition"] / listed["file"]).read_bytes()
        if listed["file"].endswith("c1_fuels.csv"):
            assert content.count(old) == 1, f"{old!r} must stand once in {listed['file']}"
            content = content.replace(old, new)
        (folder / listed["file"]).write_bytes(content)
        entries.append(f'[[editions.files]]\nfile = "{listed["file"]}"\nsha256 = "{sha256(content).hexdigest()}"\n')
    block = f'\n[[editions]]\nedition = "{name}"\nreleased = "2027-01-01"\ndescription = "{description}"\n'
    (root / "catalog.toml").write_text(catalog_text + block + "\n".join(entries), encoding="utf-8")
    return load_library(root)

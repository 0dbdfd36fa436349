"""The dependency rule: accounting/ stays pure, pipelines/ never imports FastAPI, api/ never Dagster."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "accounting": {"dagster", "dagster_duckdb", "fastapi", "starlette", "duckdb", "sqlalchemy", "alembic",
                   "great_expectations", "uvicorn", "pipelines", "api"},
    "pipelines": {"fastapi", "starlette"},
    "api": {"dagster", "dagster_duckdb"},
    "api/store": {"fastapi", "starlette"},
    "api/services": {"fastapi", "starlette"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


CASES = [(package, path) for package in FORBIDDEN for path in sorted((ROOT / package).rglob("*.py"))]


@pytest.mark.parametrize(("package", "path"), CASES, ids=[str(p.relative_to(ROOT)) for _, p in CASES])
def test_imports_follow_the_dependency_rule(package: str, path: Path) -> None:
    assert not imported_roots(path) & FORBIDDEN[package]


def test_the_rule_covers_every_package() -> None:
    assert {p for p, _ in CASES} >= {"accounting", "pipelines", "api"}

"""Data-quality use cases for the API and the CLI: completeness, current findings, factor-edition check, data docs.

No FastAPI here. Role rule for all of them: verifier, officer and engineer see the whole zone; an
enterprise user sees only the enterprises it acts for (asking for another one is refused).

Findings are read from the operational store, where each pipeline publication records the findings
of the whole published zone under its run id (``record_findings``): the current findings are those
of the latest recorded run, each shown with the period's current submission and review state.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from accounting import quality
from accounting.factors import FactorLibrary
from accounting.review import Actor, ReviewError
from api.store.schema import Enterprise, PeriodReview, QualityFinding, SubmissionPeriod
from pipelines.settings import Settings


class DataDocsUnavailableError(Exception):
    """No data docs have been built yet (no pipeline run has checked plausibility)."""

    code = "data_docs_unavailable"


def data_docs_dir(settings: Settings) -> Path:
    """Where the pipeline builds the Great Expectations data docs of its latest run (a symlink, swapped per run)."""
    return settings.data_dir / "quality" / "data_docs"


def data_docs_file(settings: Settings, relative: str) -> Path | None:
    """The data-docs file at ``relative`` (``""`` = index.html), or None when there is none inside the folder.

    Raises DataDocsUnavailableError when nothing was built yet. Never leaves the folder: the path is
    resolved (symlinks included) and must stay under the resolved docs folder.
    """
    folder = data_docs_dir(settings)
    if not (folder / "index.html").is_file():
        raise DataDocsUnavailableError(f"no data docs built yet under {folder}; run the pipeline (`carbon run`)")
    base = folder.resolve()
    parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or relative.startswith("/"):
        return None
    target = (base.joinpath(*parts) if parts else base / "index.html").resolve()
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def _visible(actor: Actor, enterprise_id: str | None) -> set[str] | None:
    """The enterprises the actor may see (None = all); ReviewError 403 for another enterprise's id."""
    if actor.role != "enterprise":
        return None
    if enterprise_id is not None and not actor.speaks_for(enterprise_id):
        raise ReviewError(f"{actor.actor_id} does not act for enterprise {enterprise_id}", code="not_own_enterprise")
    return set(actor.enterprise_ids)


def completeness(session: Session, *, settings: Settings, actor: Actor, as_of: date,
                 published_key_emitters: dict[str, bool]) -> dict[str, Any]:
    """Key emitters and the due months each has no submission in force for (see ``accounting.quality``).

    Key emitters: declared in the registry, or flagged in the latest published yearly balance.
    """
    visible = _visible(actor, None)
    registry = {e.enterprise_id: e for e in session.scalars(select(Enterprise)).all()}
    declared = {i for i, e in registry.items() if e.key_emitter_declared}
    flagged = {i for i, flag in published_key_emitters.items() if flag and i in registry}
    keys = sorted(i for i in declared | flagged if visible is None or i in visible)
    reported = session.execute(select(SubmissionPeriod.enterprise_id, SubmissionPeriod.period).where(
        SubmissionPeriod.superseded_by.is_(None), SubmissionPeriod.enterprise_id.in_(keys))).all()
    missing = quality.missing_months(key_emitters=keys, reported=[(e, p) for e, p in reported],
                                     first_period=settings.first_period, as_of=as_of,
                                     deadline_day=settings.submission_deadline_day)
    substituted = {(r.enterprise_id, r.period) for r in session.scalars(select(PeriodReview).where(
        PeriodReview.enterprise_id.in_(keys), PeriodReview.is_substituted.is_(True))).all()}
    due = quality.due_months(first_period=settings.first_period, as_of=as_of,
                             deadline_day=settings.submission_deadline_day)
    return {
        "as_of": as_of.isoformat(), "first_period": settings.first_period,
        "deadline_day": settings.submission_deadline_day,
        "due_months": {"first": due[0], "last": due[-1], "count": len(due)} if due else None,
        "key_emitters": [{"enterprise_id": i, "name": registry[i].name, "declared": i in declared,
                          "flagged_by_balances": i in flagged} for i in keys],
        "missing": [{**m, "name": registry[m["enterprise_id"]].name,
                     "substituted": [p for p in m["missing"] if (m["enterprise_id"], p) in substituted]}
                    for m in missing],
        "missing_count": sum(len(m["missing"]) for m in missing),
    }


def published_key_emitters(cursor: duckdb.DuckDBPyConnection) -> dict[str, bool]:
    """Latest-year key-emitter status of each enterprise in the published snapshot (empty if not published)."""
    try:
        rows = cursor.execute("select enterprise_id, arg_max(is_key_emitter, period) from "
                              "out_emissions__yearly_enterprise_balances where length(period) = 4 "
                              "group by enterprise_id").fetchall()
    except duckdb.CatalogException:
        return {}
    return {str(e): bool(flag) for e, flag in rows}


def latest_run_id(session: Session) -> str | None:
    """The run id of the latest recorded quality findings (None before the first)."""
    return session.scalars(select(QualityFinding.run_id).order_by(QualityFinding.created_at.desc(),
                                                                  QualityFinding.id.desc()).limit(1)).first()


def current_findings(session: Session, *, actor: Actor, enterprise_id: str | None = None, period: str | None = None,
                     rule: str | None = None, severity: str | None = None, limit: int = 1000, offset: int = 0
                     ) -> dict[str, Any]:
    """One page of the findings of the latest recorded run, filtered, with each period's submission and state."""
    visible = _visible(actor, enterprise_id)
    run_id = latest_run_id(session)
    if run_id is None:
        return {"run_id": None, "recorded_at": None, "items": [], "total": 0, "limit": limit, "offset": offset}
    statement = select(QualityFinding).where(QualityFinding.run_id == run_id)
    for column, value in ((QualityFinding.enterprise_id, enterprise_id), (QualityFinding.period, period),
                          (QualityFinding.rule, rule), (QualityFinding.severity, severity)):
        if value is not None:
            statement = statement.where(column == value)
    if visible is not None:
        statement = statement.where(QualityFinding.enterprise_id.in_(visible))
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(statement.order_by(QualityFinding.enterprise_id, QualityFinding.period,
                                              QualityFinding.rule, QualityFinding.id).limit(limit).offset(offset)).all()
    keys = {(r.enterprise_id, r.period) for r in rows}
    reviews = {(r.enterprise_id, r.period): r for r in session.scalars(select(PeriodReview).where(
        PeriodReview.enterprise_id.in_({k[0] for k in keys}), PeriodReview.period.in_({k[1] for k in keys}))).all()}
    items = []
    for row in rows:
        review = reviews.get((row.enterprise_id, row.period))
        items.append({"id": row.id, "enterprise_id": row.enterprise_id, "period": row.period, "rule": row.rule,
                      "severity": row.severity, "detail": row.detail, "run_id": row.run_id,
                      "recorded_at": row.created_at.isoformat(),
                      "submission_id": review.submission_id if review else None,
                      "status": review.status if review else None, "held": bool(review.held) if review else False})
    return {"run_id": run_id, "recorded_at": rows[0].created_at.isoformat() if rows else None, "items": items,
            "total": total, "limit": limit, "offset": offset}


def factor_check(library: FactorLibrary, *, edition: str | None = None,
                 config: quality.QualityConfig | None = None) -> dict[str, Any]:
    """The factor-edition checks of ``edition`` (None = latest) against the edition before it."""
    name = edition or library.latest()
    editions = library.editions()
    new = library.factors(name)
    index = editions.index(name)
    previous = editions[index - 1] if index > 0 else None
    found = quality.check_edition(new, library.factors(previous) if previous else None,
                                  config=config or quality.load_quality_config())
    return {"edition": name, "previous_edition": previous, "passed": not any(f.blocking for f in found),
            "findings": [f.to_record() for f in found]}

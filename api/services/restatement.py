"""Restatement diff: which enterprise-periods move under a new factor edition or corrected data, and why.

``restatement_report`` recomputes every enterprise-month of the submissions in force, as the pipeline
would (``api.store.submissions.in_force``, ``pipelines.warehouse.read_submissions``, the calculation
SQL), with the new edition, in an in-memory DuckDB: nothing is stored. It compares each month with
its basis, the month's current calculation (or, for a month waiting for its first calculation after
a correction, its last one), and each enterprise-year with its basis, the latest version of its
verified emissions when it was locked, else its current calculation. The basis lines are recomputed
from the basis's own submissions with the basis's own edition, so that the diff can name the lines
and factors that changed (``accounting.restatement``).

Substituted months do not move: their value is the officer's decision, not a calculation; they
count in their years as substituted. Years are the sum of their months, as locked years are.

``apply_restatement`` (officer, with a reason) reopens every moved period that is verified or locked
(``api.services.review.act``), then records ``restatement.apply`` in the audit log with the hash of
the report. Re-locking a year then stores the next version of its verified emissions with its diff.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from accounting.activity import COLUMNS, FuelRules
from accounting.audit import content_hash
from accounting.calculation import CalculationOptions
from accounting.errors import AccountingError, FactorError
from accounting.factors import FactorLibrary, load_library
from accounting.restatement import factor_changes, period_diff, sum_totals, summarize, totals_change, year_diff
from accounting.review import Actor, ReviewError
from api.services.review import act
from api.store import audit
from api.store import substitutions as substitution_store
from api.store.schema import Calculation, PeriodReview, Submission, VerifiedEmissions
from api.store.submissions import in_force, months_reported
from pipelines.settings import Settings
from pipelines.warehouse import calculate_frames, fuel_rules, read_submissions

Key = tuple[str, str]
#: Template columns that say what a line is (a corrected file that repeats a line unchanged repeats these).
CONTENT_COLUMNS = tuple(c for c in COLUMNS if c not in ("enterprise_id", "period", "note"))
REVIEWERS = frozenset({"verifier", "officer"})
REOPENABLE = ("verified", "locked")


def require_reviewer(actor: Actor) -> None:
    """Restatement diffs are for verifiers and officers."""
    if actor.role not in REVIEWERS:
        raise ReviewError(f"restatement diffs are for officers and verifiers, not {actor.role}",
                          code="role_not_allowed")


def _options(settings: Settings, *, edition: str | None, calculation: Calculation | None = None
             ) -> CalculationOptions:
    if calculation is not None:
        return CalculationOptions(edition=calculation.edition, ruleset=calculation.ruleset,
                                  grid_region=calculation.grid_region, gwp_set=calculation.gwp_set,
                                  max_factor_lag_years=settings.max_factor_lag_years)
    return CalculationOptions(edition=edition, ruleset=settings.ruleset, grid_region=settings.grid_region,
                              gwp_set=settings.gwp_set, max_factor_lag_years=settings.max_factor_lag_years)


def _plain(value: Any) -> Any:
    """A JSON-ready value from a pandas/numpy cell (NaN -> None, arrays -> lists)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass
class _Computed:
    """Balances and lines of one recomputation, by enterprise-month."""

    balances: dict[Key, dict[str, Any]] = field(default_factory=dict)
    lines: dict[Key, list[dict[str, Any]]] = field(default_factory=dict)
    refused: list[dict[str, Any]] = field(default_factory=list)


class _Parser:
    """Parses each stored submission once per set of validation rules (editions nearly always share them).

    Parsing and validating the files is most of the cost of a report; the basis and the new
    calculation read the same files.
    """

    def __init__(self) -> None:
        self._rules: list[FuelRules] = []
        self._parsed: dict[tuple[int, str], tuple[pd.DataFrame, list[dict[str, Any]]]] = {}

    def read(self, pairs: list[tuple[Submission, set[Key]]], *, rules: FuelRules
             ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """What ``pipelines.warehouse.read_submissions`` returns for ``pairs``."""
        index = next((i for i, known in enumerate(self._rules) if known == rules), None)
        if index is None:
            self._rules.append(rules)
            index = len(self._rules) - 1
        frames, refused = [], []
        for submission, keys in pairs:
            cached = (index, submission.submission_id)
            if cached not in self._parsed:
                every = {(e, p) for e in submission.enterprise_ids for p in submission.periods}
                self._parsed[cached] = read_submissions([(submission, every)], rules=rules)
            lines, bad = self._parsed[cached]
            refused += bad
            if not lines.empty:
                wanted = [(e, p) in keys for e, p in zip(lines["enterprise_id"], lines["period"], strict=True)]
                frames.append(lines.loc[wanted])
        return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), refused


def _compute(parser: _Parser, pairs: list[tuple[Submission, set[Key]]], *, library: FactorLibrary,
             options: CalculationOptions) -> _Computed:
    """Parse the submissions' lines of their enterprise-months and calculate them; store nothing."""
    lines, refused = parser.read(pairs, rules=fuel_rules(library, options.edition))
    computed = _Computed(refused=[{k: r[k] for k in ("source_file", "source_sha256", "error_count")}
                                  for r in refused])
    if lines.empty:
        return computed
    content = lines[list(CONTENT_COLUMNS)].astype(object).where(lines[list(CONTENT_COLUMNS)].notna(), None)
    keys = pd.DataFrame({"source_sha256": lines["source_sha256"], "row_number": lines["row_number"],
                         "content_key": [json.dumps(row, default=str) for row in content.to_numpy().tolist()]})
    balances, line_rows = calculate_frames(lines, library=library, options=options)
    line_rows = line_rows.merge(keys, on=["source_sha256", "row_number"], how="left")
    for record in balances.to_dict(orient="records"):
        computed.balances[(record["enterprise_id"], record["period"])] = {k: _plain(v) for k, v in record.items()}
    for record in line_rows.to_dict(orient="records"):
        line = {k: _plain(v) for k, v in record.items()}
        line["row_number"] = int(line["row_number"])
        computed.lines.setdefault((line["enterprise_id"], line["period"]), []).append(line)
    return computed


@dataclass
class _Basis:
    """What the periods were calculated as: calculations, their lines recomputed, verified years."""

    reviews: dict[Key, PeriodReview]
    months: dict[Key, Calculation]
    verified: dict[Key, VerifiedEmissions]
    calculations: dict[str, Calculation]
    lines: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict)


def _load_basis(session: Session, *, month_keys: Iterable[Key]) -> _Basis:
    reviews = {(r.enterprise_id, r.period): r for r in session.scalars(select(PeriodReview)).all()}
    verified: dict[Key, VerifiedEmissions] = {}
    for version in session.scalars(select(VerifiedEmissions).order_by(VerifiedEmissions.version)).all():
        verified[(version.enterprise_id, version.year)] = version
    ids = {r.calculation_id for r in reviews.values() if r.calculation_id}
    ids |= {i for v in verified.values() for i in v.calculation_ids}
    calculations = {c.calculation_id: c for c in session.scalars(
        select(Calculation).where(Calculation.calculation_id.in_(sorted(ids)))).all()} if ids else {}
    months: dict[Key, Calculation] = {}
    for key in sorted(set(month_keys) | {k for k in reviews if len(k[1]) == 7}):
        review = reviews.get(key)
        calculation = calculations.get(review.calculation_id) if review and review.calculation_id else None
        if calculation is None:  # waiting for its first calculation after a correction: its last one
            calculation = session.scalars(select(Calculation).where(
                Calculation.enterprise_id == key[0], Calculation.period == key[1])
                .order_by(Calculation.created_at.desc()).limit(1)).one_or_none()
        if calculation is not None:
            months[key] = calculations.setdefault(calculation.calculation_id, calculation)
    return _Basis(reviews=reviews, months=months, verified=verified, calculations=calculations)


def _basis_lines(session: Session, parser: _Parser, basis: _Basis, *, needed: set[str], library: FactorLibrary,
                 settings: Settings) -> None:
    """Recompute the lines of the ``needed`` basis calculations from their own submissions, edition and options."""
    groups: dict[tuple[str, str, str, str], list[Calculation]] = {}
    for calculation in basis.calculations.values():
        if len(calculation.period) != 7 or calculation.calculation_id not in needed:
            continue
        if calculation.is_substituted:
            basis.lines[calculation.calculation_id] = []
            continue
        groups.setdefault((calculation.edition, calculation.ruleset, calculation.grid_region, calculation.gwp_set),
                          []).append(calculation)
    for calculations in groups.values():
        wanted: dict[str, set[Key]] = {}
        for calculation in calculations:
            for submission_id in calculation.submission_ids:
                wanted.setdefault(submission_id, set()).add((calculation.enterprise_id, calculation.period))
        submissions = {s.submission_id: s for s in session.scalars(
            select(Submission).where(Submission.submission_id.in_(sorted(wanted)))).all()}
        try:
            computed = _compute(parser, [(submissions[i], keys) for i, keys in sorted(wanted.items())
                                         if i in submissions],
                                library=library, options=_options(settings, edition=None,
                                                                  calculation=calculations[0]))
        except AccountingError:  # the basis edition is gone from the library, or no longer has a factor
            basis.lines.update(dict.fromkeys((c.calculation_id for c in calculations), None))
            continue
        for calculation in calculations:
            shas = {submissions[i].content_sha256 for i in calculation.submission_ids if i in submissions}
            basis.lines[calculation.calculation_id] = [
                line for line in computed.lines.get((calculation.enterprise_id, calculation.period), [])
                if line["source_sha256"] in shas]


@dataclass
class _Context:
    """Everything the diff of one period needs."""

    new: _Computed
    basis: _Basis
    substituted: dict[Key, dict[str, Any]]
    current: dict[Key, str]
    options: CalculationOptions
    library: FactorLibrary
    changes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def factor_changes(self, edition: str | None) -> dict[str, dict[str, Any]]:
        """Factor changes from ``edition`` to the new one (none when the edition is not in the library)."""
        name = edition or self.options.edition or ""
        if name not in self.changes:
            try:
                old = _factor_rows(self.library, name)
            except FactorError:
                old = {}
            self.changes[name] = factor_changes(old, _factor_rows(self.library, self.options.edition))
        return self.changes[name]

    def options_changed(self, calculation: Calculation) -> bool:
        return (calculation.ruleset, calculation.grid_region, calculation.gwp_set) != (
            self.options.ruleset, self.options.grid_region, self.options.gwp_set)


def _factor_rows(library: FactorLibrary, edition: str | None) -> dict[str, dict[str, Any]]:
    table = library.factors(edition)
    columns = ["factor_id", "parameter", "subject", "value_canonical", "unit_canonical"]
    return {r["factor_id"]: r for r in table[columns].astype(object).where(table[columns].notna(), None)
            .to_dict(orient="records")}


def _month_value(context: _Context, key: Key) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]] | None:
    """A month as it stands now: (totals, lines, submission ids), or None when it has nothing."""
    if key in context.substituted:
        return context.substituted[key]["totals"], [], []
    if key in context.new.balances:
        return context.new.balances[key], context.new.lines.get(key, []), [context.current[key]]
    calculation = context.basis.months.get(key)
    if calculation is not None:
        return calculation.totals, context.basis.lines.get(calculation.calculation_id) or [], calculation.submission_ids
    return None


def _differs(context: _Context, key: Key, calculation: Calculation | None) -> bool:
    """True when a month stands now otherwise than in ``calculation``: other totals or another submission."""
    now = _month_value(context, key)
    if now is None or calculation is None:
        return now is not None or calculation is not None
    totals, _, submission_ids = now
    return bool(totals_change(calculation.totals, totals)) or sorted(set(submission_ids)) != sorted(
        set(calculation.submission_ids))


def _needed_calculations(context: _Context, month_keys: Iterable[Key]) -> set[str]:
    """The basis calculations whose lines a diff will show: those of the months that differ from them."""
    basis = context.basis
    pairs: list[tuple[Key, Calculation | None]] = [(k, basis.months.get(k)) for k in month_keys]
    for (enterprise_id, year), verified in basis.verified.items():
        by_month = {c.period: c for i in verified.calculation_ids if (c := basis.calculations.get(i))}
        pairs += [((enterprise_id, m), by_month.get(m)) for m in (f"{year}-{i:02d}" for i in range(1, 13))]
    needed: set[str] = set()
    for key, calculation in pairs:
        if _differs(context, key, calculation):
            needed |= {c.calculation_id for c in (calculation, basis.months.get(key)) if c is not None}
    return needed


def _month_diff(context: _Context, key: Key, calculation: Calculation | None) -> dict[str, Any] | None:
    """The diff of one month against ``calculation`` (None: the month had no basis)."""
    now = _month_value(context, key)
    if now is None and calculation is None:
        return None
    totals, lines, submission_ids = now if now is not None else ({}, [], [])
    return period_diff(
        enterprise_id=key[0], period=key[1], old_totals=calculation.totals if calculation else {}, new_totals=totals,
        old_lines=context.basis.lines.get(calculation.calculation_id, []) if calculation else [], new_lines=lines,
        changed_factors=context.factor_changes(calculation.edition if calculation else None),
        old_submissions=calculation.submission_ids if calculation else [], new_submissions=submission_ids,
        options_changed=calculation is not None and context.options_changed(calculation))


def _state(review: PeriodReview | None) -> dict[str, Any]:
    return {"status": review.status if review else "none", "version": review.version if review else 0}


def _month_entries(context: _Context, keys: Iterable[Key]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    entries, waiting = [], []
    for key in sorted(keys):
        calculation = context.basis.months.get(key)
        if calculation is None:
            waiting.append({"enterprise_id": key[0], "period": key[1]})
            continue
        if key in context.substituted or key not in context.new.balances:
            continue  # a substitution does not move; a refused file is listed with the refused
        diff = _month_diff(context, key, calculation)
        if diff is not None:
            entries.append({**diff, **_state(context.basis.reviews.get(key)), "basis": {
                "kind": "calculation", "calculation_id": calculation.calculation_id, "edition": calculation.edition,
                "is_substituted": calculation.is_substituted}})
    return entries, waiting


def _year_entries(context: _Context) -> list[dict[str, Any]]:
    basis = context.basis
    entries = []
    for key in sorted({k for k in basis.reviews if len(k[1]) == 4} | set(basis.verified)):
        enterprise_id, year = key
        months = [f"{year}-{m:02d}" for m in range(1, 13)]
        verified = basis.verified.get(key)
        if verified is not None:
            old_totals: dict[str, Any] = verified.totals
            by_month = {c.period: c for i in verified.calculation_ids if (c := basis.calculations.get(i))}
            described = {"kind": "verified_emissions", "version": verified.version,
                         "calculation_ids": list(verified.calculation_ids)}
        else:
            review = basis.reviews[key]
            calculation = basis.calculations.get(review.calculation_id or "")
            if calculation is None:
                continue
            old_totals = calculation.totals
            by_month = {m: basis.months[(enterprise_id, m)] for m in months if (enterprise_id, m) in basis.months}
            described = {"kind": "calculation", "calculation_id": calculation.calculation_id,
                         "edition": calculation.edition}
        values = [v for m in months if (v := _month_value(context, (enterprise_id, m))) is not None]
        month_diffs = [d for m in months if (d := _month_diff(context, (enterprise_id, m), by_month.get(m)))]
        diff = year_diff(enterprise_id=enterprise_id, year=year, old_totals=old_totals,
                         new_totals=sum_totals(v[0] for v in values), months=month_diffs)
        if diff is not None:
            entries.append({**diff, **_state(basis.reviews.get(key)), "basis": described})
    return entries


def restatement_report(session: Session, *, settings: Settings, factor_edition: str | None = None,
                       library: FactorLibrary | None = None) -> dict[str, Any]:
    """The restatement diff of the whole zone under ``factor_edition`` (default: the configured or latest one).

    Deterministic for the same store and library (no timestamps), so that its hash identifies it.
    Raises FactorError for an unknown edition, and InvalidFileError naming rows without a factor in it.
    """
    library = library or load_library()
    edition = factor_edition or settings.factor_edition or library.latest()
    if edition not in library.editions():
        raise FactorError(f"unknown factor edition '{edition}'; known: {', '.join(library.editions())}")
    options = _options(settings, edition=edition)
    substituted = {(s["enterprise_id"], s["period"]): s for s in substitution_store.in_force(session)}
    pairs = [(submission, {k for k in keys if len(k[1]) == 7 and k not in substituted})
             for submission, keys in in_force(session, months=months_reported(session))]
    pairs = [(submission, keys) for submission, keys in pairs if keys]
    current = {key: submission.submission_id for submission, keys in pairs for key in keys}
    parser = _Parser()
    new = _compute(parser, pairs, library=library, options=options)
    basis = _load_basis(session, month_keys=current)
    context = _Context(new=new, basis=basis, substituted=substituted, current=current, options=options,
                       library=library)
    month_keys = set(current) | {k for k in basis.months if k not in substituted}
    _basis_lines(session, parser, basis, needed=_needed_calculations(context, month_keys), library=library,
                 settings=settings)
    months, waiting = _month_entries(context, month_keys)
    entries = sorted(months + _year_entries(context), key=lambda e: (e["enterprise_id"], e["period"]))
    used = {f["factor_id"] for e in entries for f in e["factors"]}
    return {
        "factor_edition": edition,
        "basis_editions": sorted({c.edition for c in basis.calculations.values()}),
        "options": {"ruleset": options.ruleset, "grid_region": options.grid_region, "gwp_set": options.gwp_set,
                    "max_factor_lag_years": options.max_factor_lag_years},
        "factor_changes": [{**change, "old_edition": old_edition, "new_edition": edition}
                           for old_edition, changes in sorted(context.changes.items())
                           for factor_id, change in sorted(changes.items()) if factor_id in used],
        "summary": {**summarize(entries), "refused_files": len(new.refused), "waiting_for_calculation": len(waiting),
                    "substituted_months": len(substituted)},
        "periods": entries,
        "refused_files": new.refused,
        "waiting_for_calculation": waiting,
    }


def apply_restatement(session: Session, *, settings: Settings, actor: Actor, reason: str,
                      factor_edition: str | None = None, library: FactorLibrary | None = None) -> dict[str, Any]:
    """Reopen every moved verified or locked period with ``reason`` and audit the report; return what was done.

    Each reopen is its own review action (version-checked against the report, so a period changed
    meanwhile is refused with StaleStateError); ``restatement.apply`` is recorded last, with the
    SHA-256 of the report and the periods reopened.
    """
    if actor.role != "officer":
        raise ReviewError(f"a restatement is applied by an officer, not {actor.role}", code="role_not_allowed")
    if not (reason or "").strip():
        raise ReviewError("a restatement needs a reason", code="reason_required")
    report = restatement_report(session, settings=settings, factor_edition=factor_edition, library=library)
    digest = content_hash(report)
    session.rollback()  # end the read transaction before the review actions
    reopened = []
    for entry in report["periods"]:
        if entry["moved"] and entry["status"] in REOPENABLE:
            state = act(session, actor=actor, enterprise_id=entry["enterprise_id"], period=entry["period"],
                        action="reopen", reason=f"restatement {digest[:12]}: {reason}",
                        expected_version=entry["version"])
            reopened.append({"enterprise_id": entry["enterprise_id"], "period": entry["period"],
                             "from_status": entry["status"], "version": state["version"]})
    try:
        audit.append(session, actor=actor, action="restatement.apply", target=f"restatement:{digest}",
                     after=report, detail={"report_sha256": digest, "factor_edition": report["factor_edition"],
                                           "reason": reason, "moved": report["summary"]["moved"],
                                           "reopened": reopened})
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return {"report_sha256": digest, "factor_edition": report["factor_edition"], "reopened": reopened,
            "summary": report["summary"], "report": report}

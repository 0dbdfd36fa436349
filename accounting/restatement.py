"""Restatements and substitutions: what moves when factors or data change, and what stands in for a missing month.

Why a diff before anything is locked again: a locked enterprise-year is what the allowance ledger
uses. When a factor edition changes or an enterprise corrects its data, the officer must see which
enterprise-periods move, by how much and why (which factor, which line) before reopening and
locking them again; re-locking then stores a new version of the verified emissions with its diff.

This module is the pure part: given the totals and the emission lines of an enterprise-period as
they were (the basis) and as they would be now, it says whether the period moves, by how much, and
which factors and lines explain it. The service (``api.services.restatement``) recomputes the lines
and loads the basis.

Why substitution: China's practice replaces missing (or falsified) data of a key emitter by a
conservative value. The default rule, ``max_of_last_12_months``, copies the full balance of the
month with the highest net emissions among the twelve before the missing one that have a balance
calculated from reported data (a substituted month is never a basis: that would let a value older
than the window keep propagating).

>>> rule = substitution_rule("max_of_last_12_months")
>>> rule.window("2024-03")[:2], rule.window("2024-03")[-1]
(['2023-03', '2023-04'], '2024-02')
>>> rule.choose("2024-03", {"2023-12": 40.0, "2024-01": 55.0, "2022-01": 99.0})
'2024-01'
>>> totals_change({"net_tco2e": 10.0}, {"net_tco2e": 12.5}, keys=("net_tco2e",))
{'net_tco2e': {'old': 10.0, 'new': 12.5, 'change': 2.5}}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from accounting.calculation import TOTAL_COLUMNS
from accounting.errors import AccountingError

#: Totals that add up over months (intensities and ratios do not).
ADDITIVE: tuple[str, ...] = tuple(c for c in TOTAL_COLUMNS if "_per_" not in c)
#: Two numbers are the same when they differ by less than this (relative, and absolute near zero):
#: a recomputation in another order may change the last bits of a float sum, not the result.
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-9

REASON_FACTORS = "factor_edition"
REASON_DATA = "data_correction"
REASON_OPTIONS = "calculation_options"
REASON_OTHER = "recalculation"


class RestatementError(AccountingError):
    """A substitution or restatement that the rules refuse; ``code`` says which rule."""

    code = "restatement_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Substitution of a missing month


def months_before(period: str, count: int) -> list[str]:
    """The ``count`` months before ``period`` (``YYYY-MM``), oldest first.

    >>> months_before("2024-02", 3)
    ['2023-11', '2023-12', '2024-01']
    """
    index = int(period[:4]) * 12 + int(period[5:7]) - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count, index)]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubstitutionRule:
    """A conservative value for a missing month: the highest net month within ``window_months`` before it."""

    name: str
    window_months: int
    description: str

    def window(self, period: str) -> list[str]:
        """The months a basis may come from."""
        return months_before(period, self.window_months)

    def choose(self, period: str, candidates: Mapping[str, float]) -> str | None:
        """The basis month among ``candidates`` (month -> net tCO2e): the highest, the latest on a tie.

        None when no candidate lies in the window.
        """
        window = set(self.window(period))
        eligible = [(float(net), month) for month, net in candidates.items()
                    if month in window and net is not None and math.isfinite(float(net))]
        return max(eligible)[1] if eligible else None


SUBSTITUTION_RULES: dict[str, SubstitutionRule] = {
    "max_of_last_12_months": SubstitutionRule(
        name="max_of_last_12_months", window_months=12,
        description="the month with the highest net emissions among the 12 before the missing one"),
    "max_of_last_24_months": SubstitutionRule(
        name="max_of_last_24_months", window_months=24,
        description="the month with the highest net emissions among the 24 before the missing one"),
}


def substitution_rule(name: str) -> SubstitutionRule:
    """The rule called ``name``; RestatementError (``unknown_substitution_rule``) for any other name."""
    rule = SUBSTITUTION_RULES.get(name)
    if rule is None:
        raise RestatementError(f"unknown substitution rule '{name}'; one of {', '.join(SUBSTITUTION_RULES)}",
                               code="unknown_substitution_rule")
    return rule


# ---------------------------------------------------------------------------------------------
# Totals


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def same(old: float | None, new: float | None) -> bool:
    """True when two totals are equal within the tolerance (None equals None and zero)."""
    a, b = _number(old) or 0.0, _number(new) or 0.0
    return abs(a - b) <= ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * max(abs(a), abs(b))


def totals_change(old: Mapping[str, Any], new: Mapping[str, Any], *,
                  keys: Sequence[str] = ADDITIVE) -> dict[str, dict[str, float | None]]:
    """The totals among ``keys`` that moved: old, new and the change."""
    moved: dict[str, dict[str, float | None]] = {}
    for key in keys:
        a, b = _number(old.get(key)), _number(new.get(key))
        if not same(a, b):
            moved[key] = {"old": a, "new": b, "change": (b or 0.0) - (a or 0.0)}
    return moved


def sum_totals(items: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The additive totals of several months summed (missing values count as zero)."""
    totals = dict.fromkeys(ADDITIVE, 0.0)
    for item in items:
        for key in ADDITIVE:
            totals[key] += _number(item.get(key)) or 0.0
    return totals


# ---------------------------------------------------------------------------------------------
# Factors


def factor_changes(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
                   ) -> dict[str, dict[str, Any]]:
    """Factors (by id) whose canonical value or unit differs between two editions, or that one lacks.

    ``old`` and ``new`` map a factor id to a row with ``parameter``, ``subject``, ``value_canonical``
    and ``unit_canonical`` (the edition tables of ``accounting.factors``).
    """
    changes: dict[str, dict[str, Any]] = {}
    for factor_id in sorted(set(old) | set(new)):
        before, after = old.get(factor_id), new.get(factor_id)
        old_value = None if before is None else _number(before.get("value_canonical"))
        new_value = None if after is None else _number(after.get("value_canonical"))
        old_unit = None if before is None else before.get("unit_canonical")
        new_unit = None if after is None else after.get("unit_canonical")
        if before is not None and after is not None and old_unit == new_unit and (
                old_value == new_value or (old_value is not None and new_value is not None
                                           and same(old_value, new_value))):
            continue
        described = after or before or {}
        changes[factor_id] = {
            "factor_id": factor_id, "parameter": described.get("parameter"), "subject": described.get("subject"),
            "old_value": old_value, "new_value": new_value, "old_unit": old_unit, "new_unit": new_unit,
        }
    return changes


# ---------------------------------------------------------------------------------------------
# Lines


def _line_number(line: Mapping[str, Any], key: str) -> float | None:
    return _number(line.get(key))


def _pair(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The change of one line, or None when it did not change."""
    if old is not None and new is not None and same(_line_number(old, "tco2e"), _line_number(new, "tco2e")) \
            and same(_line_number(old, "energy_tce"), _line_number(new, "energy_tce")):
        return None
    some = new if new is not None else old
    assert some is not None
    old_tco2e = None if old is None else _line_number(old, "tco2e")
    new_tco2e = None if new is None else _line_number(new, "tco2e")
    factor_ids = sorted({*(old or {}).get("factor_ids", ()), *(new or {}).get("factor_ids", ())})
    return {
        "activity": some.get("activity"), "item": some.get("item"), "facility": some.get("facility"),
        "source_file": None if new is None else new.get("source_file"),
        "row_number": None if new is None else new.get("row_number"),
        "old_source_file": None if old is None else old.get("source_file"),
        "old_row_number": None if old is None else old.get("row_number"),
        "old_tco2e": old_tco2e, "new_tco2e": new_tco2e, "change_tco2e": (new_tco2e or 0.0) - (old_tco2e or 0.0),
        "old_energy_tce": None if old is None else _line_number(old, "energy_tce"),
        "new_energy_tce": None if new is None else _line_number(new, "energy_tce"),
        "factor_ids": factor_ids,
        "change": "removed" if new is None else "added" if old is None else "changed",
    }


def _match(old: list[Mapping[str, Any]], new: list[Mapping[str, Any]], key: Any
           ) -> tuple[list[tuple[Mapping[str, Any], Mapping[str, Any]]], list[Mapping[str, Any]],
                      list[Mapping[str, Any]]]:
    """Pair lines with equal ``key(line)`` in order of appearance; return pairs and the unpaired of each side."""
    waiting: dict[Any, list[Mapping[str, Any]]] = {}
    for line in new:
        waiting.setdefault(key(line), []).append(line)
    pairs, old_left = [], []
    for line in old:
        candidates = waiting.get(key(line))
        if candidates:
            pairs.append((line, candidates.pop(0)))
        else:
            old_left.append(line)
    paired = {id(n) for _, n in pairs}
    return pairs, old_left, [n for n in new if id(n) not in paired]


def line_changes(old_lines: Sequence[Mapping[str, Any]], new_lines: Sequence[Mapping[str, Any]]
                 ) -> list[dict[str, Any]]:
    """The lines of one enterprise-period whose emissions or energy changed, were removed or added.

    Lines are paired first by file and row (the same submission recalculated), then by their content
    (a corrected file that repeats an unchanged line), then by activity, item and facility in order
    (a corrected quantity); what remains was removed or added. Each line is a mapping with
    ``source_file``, ``source_sha256``, ``row_number``, ``activity``, ``item``, ``facility``,
    ``tco2e``, ``energy_tce``, ``factor_ids`` and optionally ``content_key``.
    """
    keys = (
        lambda line: (line.get("source_sha256"), line.get("row_number")),
        lambda line: line.get("content_key") or (line.get("activity"), line.get("item"), line.get("facility"),
                                                 line.get("unit"), _line_number(line, "quantity")),
        lambda line: (line.get("activity"), line.get("item"), line.get("facility")),
    )
    old_left, new_left = list(old_lines), list(new_lines)
    changes: list[dict[str, Any]] = []
    for key in keys:
        pairs, old_left, new_left = _match(old_left, new_left, key)
        changes += [c for o, n in pairs if (c := _pair(o, n)) is not None]
    changes += [c for o in old_left if (c := _pair(o, None)) is not None]
    changes += [c for n in new_left if (c := _pair(None, n)) is not None]
    return sorted(changes, key=lambda c: (c["source_file"] or c["old_source_file"] or "",
                                          c["row_number"] if c["row_number"] is not None else c["old_row_number"] or 0,
                                          c["old_row_number"] or 0))


# ---------------------------------------------------------------------------------------------
# Periods


def _used_factors(lines: Iterable[Mapping[str, Any]]) -> set[str]:
    return {f for line in lines for f in line.get("factor_ids") or ()}


def period_diff(*, enterprise_id: str, period: str, old_totals: Mapping[str, Any], new_totals: Mapping[str, Any],
                old_lines: Sequence[Mapping[str, Any]] | None, new_lines: Sequence[Mapping[str, Any]],
                changed_factors: Mapping[str, Mapping[str, Any]], old_submissions: Iterable[str],
                new_submissions: Iterable[str], options_changed: bool = False,
                keys: Sequence[str] = ADDITIVE) -> dict[str, Any] | None:
    """How one enterprise-month moves from its basis, and why; None when it neither moves nor changed data.

    ``changed_factors`` are the factor changes between the basis edition and the new one
    (``factor_changes``); only those that a line of the period uses are listed. ``old_lines`` is None
    when the basis lines cannot be recomputed (its edition is no longer in the library): the lines
    are then not listed. Reasons: ``data_correction`` (the submission differs from the basis's),
    ``factor_edition`` (a used factor changed), ``calculation_options`` (ruleset, grid region or GWP
    set changed), else ``recalculation``.
    """
    change = totals_change(old_totals, new_totals, keys=keys)
    corrected = sorted(set(old_submissions)) != sorted(set(new_submissions))
    if not change and not corrected:
        return None
    lines = None if old_lines is None else line_changes(old_lines, new_lines)
    used = _used_factors(new_lines) | _used_factors(old_lines or ())
    factors = [dict(changed_factors[f]) for f in sorted(used) if f in changed_factors]
    reasons = [r for r, present in ((REASON_DATA, corrected), (REASON_FACTORS, bool(factors)),
                                    (REASON_OPTIONS, options_changed)) if present]
    if change and not reasons:
        reasons.append(REASON_OTHER)
    return {
        "enterprise_id": enterprise_id, "period": period, "grain": "month" if len(period) == 7 else "year",
        "moved": bool(change), "net_tco2e": _net(old_totals, new_totals), "change": change, "reasons": reasons,
        "factors": factors, "lines": lines,
        "old_submission_ids": sorted(set(old_submissions)), "new_submission_ids": sorted(set(new_submissions)),
    }


def _net(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, float | None]:
    a, b = _number(old.get("net_tco2e")), _number(new.get("net_tco2e"))
    return {"old": a, "new": b, "change": (b or 0.0) - (a or 0.0)}


def year_diff(*, enterprise_id: str, year: str, old_totals: Mapping[str, Any], new_totals: Mapping[str, Any],
              months: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """How one enterprise-year moves from its basis (its verified emissions, or its calculation), and why.

    ``months`` are the month diffs against the months the basis was made of (``period_diff``); the
    year's reasons and factors are theirs. None when neither the year nor any month moved.
    """
    change = totals_change(old_totals, new_totals)
    if not change and not months:
        return None
    reasons = sorted({r for month in months for r in month["reasons"]})
    if change and not reasons:
        reasons = [REASON_OTHER]
    factors: dict[str, Mapping[str, Any]] = {}
    for month in months:
        for factor in month["factors"]:
            factors.setdefault(factor["factor_id"], factor)
    return {
        "enterprise_id": enterprise_id, "period": year, "grain": "year", "moved": bool(change),
        "net_tco2e": _net(old_totals, new_totals), "change": change, "reasons": reasons,
        "factors": [dict(factors[f]) for f in sorted(factors)], "months": [dict(m) for m in months],
    }


def summarize(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of a report: periods listed, moved, months and years, and the net change of the months."""
    moved = [e for e in entries if e["moved"]]
    return {
        "periods": len(entries), "moved": len(moved),
        "months_moved": sum(1 for e in moved if e["grain"] == "month"),
        "years_moved": sum(1 for e in moved if e["grain"] == "year"),
        "data_corrections": sum(1 for e in entries if REASON_DATA in e["reasons"]),
        "net_tco2e_change_of_months": sum(e["net_tco2e"]["change"] or 0.0 for e in moved if e["grain"] == "month"),
    }

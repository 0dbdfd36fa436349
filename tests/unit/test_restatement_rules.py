"""The pure rules of substitution and restatement: which month stands in, what moves, and why."""

from __future__ import annotations

from typing import Any

import pytest

from accounting.restatement import (
    ADDITIVE,
    SUBSTITUTION_RULES,
    RestatementError,
    factor_changes,
    line_changes,
    months_before,
    period_diff,
    same,
    substitution_rule,
    sum_totals,
    summarize,
    totals_change,
    year_diff,
)

RULE = SUBSTITUTION_RULES["max_of_last_12_months"]


def line(row: int, tco2e: float, *, sha: str = "a" * 64, source: str = "2024-01.csv", item: str = "lpg",
         quantity: float = 1.0, factor_ids: tuple[str, ...] = ("cn.c1.lpg.ncv",), energy: float = 1.0,
         **more: Any) -> dict[str, Any]:
    return {"source_file": source, "source_sha256": sha, "row_number": row, "activity": "fuel_combustion",
            "item": item, "facility": "", "unit": "t", "quantity": quantity, "tco2e": tco2e, "energy_tce": energy,
            "factor_ids": list(factor_ids), **more}


# ---------------------------------------------------------------------------------------------
# Substitution rules


def test_the_default_rule_takes_the_highest_net_month_of_the_twelve_before_the_missing_one() -> None:
    candidates = {"2023-05": 900.0, "2023-06": 80.0, "2024-01": 120.0, "2024-05": 119.0, "2024-06": 500.0}
    assert RULE.window("2024-06") == months_before("2024-06", 12)
    assert RULE.window("2024-06")[0] == "2023-06" and RULE.window("2024-06")[-1] == "2024-05"
    # 2023-05 is 13 months back and 2024-06 is the missing month itself: neither may be the basis
    assert RULE.choose("2024-06", candidates) == "2024-01"


def test_a_tie_goes_to_the_latest_month_and_an_empty_window_gives_no_basis() -> None:
    assert RULE.choose("2024-06", {"2024-01": 50.0, "2024-03": 50.0, "2024-02": 10.0}) == "2024-03"
    assert RULE.choose("2024-06", {"2022-01": 50.0}) is None
    assert RULE.choose("2024-06", {}) is None


def test_the_window_crosses_years_and_a_longer_rule_looks_further_back() -> None:
    assert months_before("2024-01", 2) == ["2023-11", "2023-12"]
    longer = substitution_rule("max_of_last_24_months")
    assert longer.choose("2024-06", {"2022-07": 70.0, "2024-01": 60.0}) == "2022-07"
    assert RULE.choose("2024-06", {"2022-07": 70.0, "2024-01": 60.0}) == "2024-01"


def test_an_unknown_rule_is_refused_with_its_code() -> None:
    with pytest.raises(RestatementError) as refused:
        substitution_rule("average_of_last_3_months")
    assert refused.value.code == "unknown_substitution_rule"
    assert "max_of_last_12_months" in str(refused.value)


# ---------------------------------------------------------------------------------------------
# Totals and factors


def test_float_noise_is_not_a_move_but_a_real_change_is() -> None:
    assert same(1000.0, 1000.0 + 1e-10) and same(None, 0.0)
    assert totals_change({"net_tco2e": 1e6}, {"net_tco2e": 1e6 * (1 + 1e-12)}) == {}
    assert totals_change({"net_tco2e": 10.0, "energy_tce": 2.0}, {"net_tco2e": 10.0, "energy_tce": 2.5}) == {
        "energy_tce": {"old": 2.0, "new": 2.5, "change": 0.5}}


def test_months_add_up_to_a_year_with_missing_values_as_zero() -> None:
    totals = sum_totals([{"net_tco2e": 1.5, "output_value_10k_cny": None}, {"net_tco2e": 2.0}])
    assert set(totals) == set(ADDITIVE) and "tco2e_per_10k_cny_value_added" not in totals
    assert totals["net_tco2e"] == 3.5 and totals["output_value_10k_cny"] == 0.0


def test_factor_changes_name_changed_added_and_removed_factors_and_ignore_equal_ones() -> None:
    def row(value: float, unit: str = "GJ/t") -> dict[str, Any]:
        return {"parameter": "ncv", "subject": "lpg", "value_canonical": value, "unit_canonical": unit}

    old = {"same": row(1.0), "changed": row(50.179), "gone": row(2.0), "unit": row(3.0)}
    new = {"same": row(1.0), "changed": row(51.0), "added": row(4.0), "unit": row(3.0, "GJ/kg")}
    changes = factor_changes(old, new)
    assert sorted(changes) == ["added", "changed", "gone", "unit"]
    assert changes["changed"]["old_value"] == 50.179 and changes["changed"]["new_value"] == 51.0
    assert changes["gone"]["new_value"] is None and changes["added"]["old_value"] is None
    assert changes["unit"]["old_unit"] == "GJ/t" and changes["unit"]["new_unit"] == "GJ/kg"


# ---------------------------------------------------------------------------------------------
# Lines


def test_a_line_recalculated_from_the_same_file_is_listed_with_its_old_and_new_emissions() -> None:
    changes = line_changes([line(5, 10.0), line(6, 3.0, item="diesel")], [line(5, 10.5), line(6, 3.0, item="diesel")])
    assert changes == [{
        "activity": "fuel_combustion", "item": "lpg", "facility": "", "source_file": "2024-01.csv", "row_number": 5,
        "old_source_file": "2024-01.csv", "old_row_number": 5, "old_tco2e": 10.0, "new_tco2e": 10.5,
        "change_tco2e": 0.5, "old_energy_tce": 1.0, "new_energy_tce": 1.0, "factor_ids": ["cn.c1.lpg.ncv"],
        "change": "changed"}]


def test_a_corrected_file_lists_only_the_lines_it_changed() -> None:
    old = [line(2, 5.0, content_key="a", item="diesel"), line(3, 10.0, content_key="b", quantity=1.0)]
    corrected = [line(2, 5.0, sha="b" * 64, source="fix.csv", content_key="a", item="diesel"),
                 line(3, 12.0, sha="b" * 64, source="fix.csv", content_key="c", quantity=1.2),
                 line(4, 1.0, sha="b" * 64, source="fix.csv", content_key="d", item="natural_gas")]
    changes = line_changes(old, corrected)
    assert [(c["change"], c["item"], c["old_row_number"], c["row_number"]) for c in changes] == [
        ("changed", "lpg", 3, 3), ("added", "natural_gas", None, 4)]
    assert changes[0]["old_source_file"] == "2024-01.csv" and changes[0]["source_file"] == "fix.csv"
    assert changes[0]["change_tco2e"] == pytest.approx(2.0)
    removed = line_changes(old, corrected[:1])
    assert [(c["change"], c["old_row_number"], c["new_tco2e"]) for c in removed] == [("removed", 3, None)]


# ---------------------------------------------------------------------------------------------
# Periods


def test_a_period_moved_by_a_factor_lists_that_factor_only_and_its_lines() -> None:
    changed = {"cn.c1.lpg.ncv": {"factor_id": "cn.c1.lpg.ncv", "old_value": 50.179, "new_value": 51.0},
               "cn.c1.coke.ncv": {"factor_id": "cn.c1.coke.ncv", "old_value": 28.4, "new_value": 28.5}}
    diff = period_diff(enterprise_id="E", period="2024-03", old_totals={"net_tco2e": 10.0},
                       new_totals={"net_tco2e": 10.5}, old_lines=[line(5, 10.0)], new_lines=[line(5, 10.5)],
                       changed_factors=changed, old_submissions=["s1"], new_submissions=["s1"])
    assert diff is not None
    assert diff["moved"] and diff["reasons"] == ["factor_edition"] and diff["grain"] == "month"
    assert [f["factor_id"] for f in diff["factors"]] == ["cn.c1.lpg.ncv"]
    assert diff["net_tco2e"] == {"old": 10.0, "new": 10.5, "change": 0.5}
    assert [(x["row_number"], x["old_tco2e"], x["new_tco2e"]) for x in diff["lines"]] == [(5, 10.0, 10.5)]


def test_a_new_submission_is_a_data_correction_even_when_the_totals_stay() -> None:
    diff = period_diff(enterprise_id="E", period="2024-03", old_totals={"net_tco2e": 10.0},
                       new_totals={"net_tco2e": 10.0}, old_lines=[line(5, 10.0, content_key="k")],
                       new_lines=[line(2, 10.0, sha="b" * 64, content_key="k")], changed_factors={},
                       old_submissions=["s1"], new_submissions=["s2"])
    assert diff is not None and not diff["moved"] and diff["reasons"] == ["data_correction"] and diff["lines"] == []
    assert diff["old_submission_ids"] == ["s1"] and diff["new_submission_ids"] == ["s2"]


def test_an_unchanged_period_is_not_listed_and_an_unexplained_move_is_a_recalculation() -> None:
    common = {"enterprise_id": "E", "period": "2024-03", "old_lines": [], "new_lines": [], "changed_factors": {},
              "old_submissions": ["s1"], "new_submissions": ["s1"]}
    assert period_diff(old_totals={"net_tco2e": 1.0}, new_totals={"net_tco2e": 1.0}, **common) is None
    moved = period_diff(old_totals={"net_tco2e": 1.0}, new_totals={"net_tco2e": 2.0}, **common)
    assert moved is not None and moved["reasons"] == ["recalculation"]
    options = period_diff(old_totals={"net_tco2e": 1.0}, new_totals={"net_tco2e": 2.0}, options_changed=True,
                          **common)
    assert options is not None and options["reasons"] == ["calculation_options"]
    unknown_lines = period_diff(old_totals={"net_tco2e": 1.0}, new_totals={"net_tco2e": 2.0},
                                **{**common, "old_lines": None})
    assert unknown_lines is not None and unknown_lines["lines"] is None


def test_a_year_moves_by_the_sum_of_its_months_and_carries_their_reasons_and_factors() -> None:
    factor = {"factor_id": "cn.c1.lpg.ncv", "old_value": 50.179, "new_value": 51.0}
    months = [period_diff(enterprise_id="E", period=f"2024-0{m}", old_totals={"net_tco2e": 10.0},
                          new_totals={"net_tco2e": 10.0 + m}, old_lines=[line(5, 10.0)], new_lines=[line(5, 10.0 + m)],
                          changed_factors={"cn.c1.lpg.ncv": factor}, old_submissions=["s"], new_submissions=["s"])
              for m in (1, 2)]
    year = year_diff(enterprise_id="E", year="2024", old_totals=sum_totals([{"net_tco2e": 10.0}] * 12),
                     new_totals=sum_totals([{"net_tco2e": 11.0}, {"net_tco2e": 12.0}, *[{"net_tco2e": 10.0}] * 10]),
                     months=[m for m in months if m])
    assert year is not None and year["grain"] == "year" and year["moved"]
    assert year["net_tco2e"]["change"] == pytest.approx(3.0)
    assert year["reasons"] == ["factor_edition"] and year["factors"] == [factor]
    assert [m["period"] for m in year["months"]] == ["2024-01", "2024-02"]
    assert year_diff(enterprise_id="E", year="2024", old_totals={}, new_totals={}, months=[]) is None
    summary = summarize([*(m for m in months if m), year])
    assert summary["moved"] == 3 and summary["months_moved"] == 2 and summary["years_moved"] == 1
    assert summary["net_tco2e_change_of_months"] == pytest.approx(3.0)

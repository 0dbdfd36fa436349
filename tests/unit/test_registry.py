"""The zone's enterprise registry: parsing, every problem reported, key-emitter thresholds."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable

import pytest

from accounting.errors import InvalidFileError
from accounting.registry import (
    CATEGORIES,
    Enterprise,
    KeyEmitterThresholds,
    is_key_emitter,
    parse_registry,
    registry_columns,
)
from accounting.uscc import make_uscc

CHP = make_uscc("91410100MA44A2B3C")
GLASS = make_uscc("91410102MA45B7C8D")
HEADER = ",".join(registry_columns())


def row(enterprise_id: str = CHP, **overrides: str) -> str:
    values = {
        "enterprise_id": enterprise_id,
        "name": "郑州高新示例热电有限公司",
        "name_en": "Example CHP Co., Ltd.",
        "category": "heat_power_supplier",
        "sector_code": "4412",
        "sector_name": "热电联产",
        "zone_code": "ZZHTZ",
        "city_code": "410100",
        "province_code": "410000",
        "county_code": "410102",
        "facilities": "B1;B2",
        "key_emitter_declared": "true",
    }
    values.update(overrides)
    return line(values[c] for c in registry_columns())


def line(cells: Iterable[str]) -> str:
    """One CSV line, quoted where needed (English names contain commas)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(list(cells))
    return buffer.getvalue()


def csv_bytes(*rows: str, header: str = HEADER, bom: bool = False) -> bytes:
    text = "\n".join([header, *rows]) + "\n"
    return ("\ufeff" if bom else "").encode() + text.encode("utf-8")


def errors_of(content: bytes) -> list[tuple[int | None, str | None, str | None, str]]:
    with pytest.raises(InvalidFileError) as caught:
        parse_registry(content, source="registry.csv")
    assert caught.value.source == "registry.csv"
    return [(e.row, e.column, e.value, e.code) for e in caught.value.errors]


def test_a_valid_registry_gives_frozen_enterprises_in_file_order():
    content = csv_bytes(
        row(), row(GLASS, category="manufacturer", sector_code="3041", facilities="", key_emitter_declared="")
    )
    chp, glass = parse_registry(content, source="registry.csv")
    assert chp == Enterprise(
        enterprise_id=CHP,
        name="郑州高新示例热电有限公司",
        name_en="Example CHP Co., Ltd.",
        category="heat_power_supplier",
        sector_code="4412",
        sector_name="热电联产",
        zone_code="ZZHTZ",
        city_code="410100",
        province_code="410000",
        county_code="410102",
        facilities=("B1", "B2"),
        key_emitter_declared=True,
    )
    assert glass.facilities == ()
    assert glass.key_emitter_declared is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        chp.name = "x"  # type: ignore[misc]


def test_a_byte_order_mark_and_free_column_order_are_accepted():
    columns = list(reversed(registry_columns()))
    values = dict(zip(registry_columns(), next(csv.reader([row()])), strict=True))
    content = csv_bytes(line(values[c] for c in columns), header=",".join(columns), bom=True)
    [enterprise] = parse_registry(content, source="registry.csv")
    assert enterprise.enterprise_id == CHP


def test_optional_columns_may_be_left_out():
    required = [
        "enterprise_id",
        "name",
        "category",
        "sector_code",
        "zone_code",
        "province_code",
        "city_code",
        "county_code",
    ]
    text = f"{CHP},某某公司,manufacturer,3011,ZZHTZ,410000,410100,410102"
    [enterprise] = parse_registry(csv_bytes(text, header=",".join(required)), source="r.csv")
    assert enterprise.name_en == ""
    assert enterprise.facilities == ()
    assert enterprise.key_emitter_declared is None


def test_key_emitter_declared_reads_true_false_and_empty_in_any_case():
    content = csv_bytes(row(key_emitter_declared="TRUE"), row(GLASS, key_emitter_declared="False"))
    assert [e.key_emitter_declared for e in parse_registry(content, source="r.csv")] == [True, False]


def test_every_problem_is_reported_with_row_column_value_and_code():
    bad_check = CHP[:17] + ("0" if CHP[17] != "0" else "1")
    content = csv_bytes(
        row(bad_check),
        row(GLASS, category="power_plant", sector_code="D4412"),
        row(GLASS, province_code="41000", city_code="420100", county_code="410200"),
        row(make_uscc("91410100MA46C1D2E"), facilities="B1;B2;B1", key_emitter_declared="yes"),
    )
    found = errors_of(content)
    assert (2, "enterprise_id", bad_check, "invalid_enterprise_id") in found
    assert (3, "category", "power_plant", "unknown_category") in found
    assert (3, "sector_code", "D4412", "invalid_sector_code") in found
    assert (4, "enterprise_id", GLASS, "duplicate_enterprise_id") in found
    assert (4, "province_code", "41000", "invalid_division_code") in found
    assert (4, "county_code", "410200", "invalid_division_code") in found
    assert (5, "facilities", "B1", "duplicate_facility") in found
    assert (5, "key_emitter_declared", "yes", "invalid_boolean") in found


def test_the_check_character_message_names_the_expected_character():
    bad_check = CHP[:17] + ("0" if CHP[17] != "0" else "1")
    with pytest.raises(InvalidFileError) as caught:
        parse_registry(csv_bytes(row(bad_check)), source="r.csv")
    [error] = caught.value.errors
    assert f"expected '{CHP[17]}'" in error.expected


def test_a_sector_code_with_its_section_letter_gets_a_hint():
    with pytest.raises(InvalidFileError) as caught:
        parse_registry(csv_bytes(row(sector_code="C3011")), source="r.csv")
    assert "write 3011 without the section letter" in caught.value.errors[0].expected


@pytest.mark.parametrize("code", ["441", "44120", "98AB", "0011", "9801", "44.1"])
def test_sector_codes_must_be_gbt_4754_class_codes(code):
    assert (2, "sector_code", code, "invalid_sector_code") in errors_of(csv_bytes(row(sector_code=code)))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("province_code", "410100"),  # a city code where a province is expected
        ("province_code", "990000"),  # no such province
        ("city_code", "410000"),  # a province code where a city is expected
        ("city_code", "410101"),  # a county code where a city is expected
        ("county_code", "410100"),  # a city code where a county is expected
        ("county_code", "4101O2"),  # letter O
    ],
)
def test_region_codes_must_be_six_digit_division_codes_at_the_right_level(column, value):
    found = errors_of(csv_bytes(row(**{column: value})))
    assert any(r == 2 and c == column and v == value for r, c, v, _ in found)


def test_region_codes_must_nest():
    found = errors_of(csv_bytes(row(city_code="420100", county_code="420102")))
    assert (2, "city_code", "420100", "inconsistent_division_code") in found
    found = errors_of(csv_bytes(row(county_code="410202")))
    assert (2, "county_code", "410202", "inconsistent_division_code") in found


def test_missing_required_columns_are_all_named_and_stop_row_checks():
    header = "enterprise_id,name,category,sector_code"
    found = errors_of(csv_bytes(f"{CHP},x,manufacturer,3011", header=header))
    assert {c for _, c, _, code in found if code == "missing_column"} == {
        "zone_code",
        "province_code",
        "city_code",
        "county_code",
    }
    assert all(r == 1 for r, *_ in found)


def test_unknown_and_duplicate_columns_are_refused():
    header = HEADER + ",sector code,name"
    found = errors_of(csv_bytes(row() + ",x,y", header=header))
    assert (1, "sector code", "sector code", "unknown_column") in found
    assert (1, "name", "name", "duplicate_column") in found


def test_empty_required_cells_are_missing_values():
    found = errors_of(csv_bytes(row(name="", zone_code="")))
    assert (2, "name", None, "missing_value") in found
    assert (2, "zone_code", None, "missing_value") in found


def test_a_row_longer_than_the_header_is_refused():
    found = errors_of(csv_bytes(row() + ",extra"))
    assert (2, None, "extra", "too_many_cells") in found


def test_blank_lines_are_skipped_but_keep_row_numbers():
    content = csv_bytes("", row(category="farm"))
    assert (3, "category", "farm", "unknown_category") in errors_of(content)


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "empty_file"), (HEADER.encode() + b"\n", "empty_file"), ("名称".encode("gbk"), "bad_encoding")],
)
def test_unreadable_or_empty_files_are_refused_whole(content, code):
    assert errors_of(content)[0][3] == code


def test_the_error_report_is_serialisable():
    with pytest.raises(InvalidFileError) as caught:
        parse_registry(csv_bytes(row(category="x")), source="r.csv")
    report = caught.value.to_report()
    assert report["error_count"] == 1
    assert report["errors"][0]["column"] == "category"  # type: ignore[index]


def test_registry_columns_start_with_the_identity_and_cover_every_field():
    columns = registry_columns()
    assert columns[0] == "enterprise_id"
    assert set(columns) == {f.name for f in dataclasses.fields(Enterprise)}
    columns.append("x")
    assert "x" not in registry_columns()  # a fresh list each time


def test_categories_are_the_four_of_the_zone():
    assert CATEGORIES == ("heat_power_supplier", "cooling_supplier", "manufacturer", "construction_project")


@pytest.mark.parametrize(
    ("tco2e", "tce", "expected"),
    [(26000, 0, True), (25999.99, 9999.99, False), (0, 10000, True), (30000, 12000, True), (0, 0, False)],
)
def test_either_threshold_reached_makes_a_key_emitter(tco2e, tce, expected):
    thresholds = KeyEmitterThresholds()
    assert is_key_emitter(annual_tco2e=tco2e, annual_energy_tce=tce, thresholds=thresholds) is expected


def test_thresholds_are_configurable_and_must_be_positive():
    provincial = KeyEmitterThresholds(co2e_t=13000, energy_tce=5000)
    assert is_key_emitter(annual_tco2e=13000, annual_energy_tce=0, thresholds=provincial)
    assert not is_key_emitter(annual_tco2e=12999, annual_energy_tce=4999, thresholds=provincial)
    with pytest.raises(ValueError, match="positive"):
        KeyEmitterThresholds(co2e_t=0)

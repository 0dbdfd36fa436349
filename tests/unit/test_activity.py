"""Reading and validating activity files: every kind of invalid row is named, the whole file refused."""

import io
import json

import openpyxl
import pytest

from accounting.activity import SourceFile, parse_activity
from accounting.errors import InvalidFileError
from accounting.factors import load_library
from pipelines.warehouse import fuel_rules
from tests.support import ENTERPRISE, csv_file

RULES = fuel_rules(load_library())
COAL = {"activity": "fuel_combustion", "item": "bituminous_coal", "quantity": "10", "unit": "t"}


def errors_of(rows: list[dict[str, str]]) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(InvalidFileError) as caught:
        parse_activity(csv_file(rows), rules=RULES)
    return [(e.row, e.column, e.code) for e in caught.value.errors]


def test_a_valid_file_gives_typed_lines_with_source_and_row() -> None:
    lines = parse_activity(csv_file([COAL, {**COAL, "facility": "B2", "oxidation_rate": "93%"}]), rules=RULES)
    assert list(lines["row_number"]) == [2, 3]
    assert lines.loc[1, "oxidation_rate"] == pytest.approx(0.93)
    assert lines.loc[0, "quantity_kind"] == "fuel_mass"
    assert set(lines["source_file"]) == {"lines.csv"}
    assert len(lines.loc[0, "source_sha256"]) == 64


INVALID_ROWS = [
    ({"enterprise_id": "91410100MA44A2B3CX"}, "enterprise_id", "invalid_enterprise_id"),
    ({"enterprise_id": "123"}, "enterprise_id", "invalid_enterprise_id"),
    ({"period": "2023-13"}, "period", "invalid_period"),
    ({"period": "23-01"}, "period", "invalid_period"),
    ({"activity": "burning"}, "activity", "unknown_activity"),
    ({"item": "coal"}, "item", "invalid_item"),
    ({"quantity": "-1"}, "quantity", "negative"),
    ({"quantity": "1,000"}, "quantity", "not_a_number"),
    ({"quantity": ""}, "quantity", "missing_value"),
    ({"unit": "ton"}, "unit", "invalid_unit"),
    ({"unit": "MT"}, "unit", "invalid_unit"),
    ({"unit": "kWh"}, "heat_basis", "missing_heat_basis"),
    ({"unit": "GJ", "heat_basis": "GCV"}, "heat_basis", "gross_basis"),
    ({"unit": "GJ", "heat_basis": "LHV"}, "heat_basis", "invalid_heat_basis"),
    ({"unit": "L"}, "unit", "invalid_unit"),
    ({"unit": "Nm3"}, "unit", "invalid_unit"),
    ({"unit": "CNY"}, "unit", "invalid_unit"),
    ({"oxidation_rate": "93"}, "oxidation_rate", "fraction_out_of_range"),
    ({"oxidation_rate": "0"}, "oxidation_rate", "fraction_out_of_range"),
    ({"oxidation_rate": "120%"}, "oxidation_rate", "fraction_out_of_range"),
    ({"ncv": "20.1"}, "ncv_unit", "missing_unit"),
    ({"ncv_unit": "GJ/t"}, "ncv", "missing_value"),
    ({"ncv": "20.1", "ncv_unit": "GJ/(10^4 Nm3)"}, "ncv_unit", "basis_mismatch"),
    ({"ncv": "20.1", "ncv_unit": "tC/GJ"}, "ncv_unit", "invalid_unit"),
    ({"carbon_content": "0.5", "carbon_content_unit": "tC/t", "unit": "GJ", "heat_basis": "NCV"},
     "carbon_content_unit", "basis_mismatch"),
    ({"purity": "0.9"}, "purity", "not_applicable"),
    ({"facility": "x" * 65}, "facility", "too_long"),
]


@pytest.mark.parametrize(("change", "column", "code"), INVALID_ROWS,
                         ids=[f"{c}-{k}" for _, c, k in INVALID_ROWS])
def test_each_kind_of_invalid_row_is_named_with_row_and_column(change: dict[str, str], column: str,
                                                               code: str) -> None:
    found = errors_of([COAL, {**COAL, "facility": "B9", **change}])
    assert (3, column, code) in found
    assert all(row == 3 for row, _, _ in found)


@pytest.mark.parametrize(("row", "column", "code"), [
    ({"activity": "fuel_combustion", "item": "natural_gas", "quantity": "5", "unit": "m3"}, "unit", "invalid_unit"),
    ({"activity": "fuel_combustion", "item": "natural_gas", "quantity": "5", "unit": "t"}, "unit", "invalid_unit"),
    ({"activity": "fuel_combustion", "item": "diesel", "quantity": "5", "unit": "L"}, "density", "missing_density"),
    ({"activity": "fuel_combustion", "item": "bituminous_coal", "quantity": "5", "unit": "10^4 Nm3"}, "unit",
     "invalid_unit"),
    ({"activity": "clinker_production", "quantity": "5", "unit": "t", "mgo_fraction": "0.02"}, "cao_fraction",
     "missing_value"),
    ({"activity": "clinker_production", "quantity": "5", "unit": "t", "cao_fraction": "0.6", "mgo_fraction": "0.02",
      "cao_noncarbonate_fraction": "0.7"}, "cao_noncarbonate_fraction", "inconsistent"),
    ({"activity": "carbonate_use", "item": "limestone", "quantity": "5", "unit": "t"}, "item", "invalid_item"),
    ({"activity": "purchased_electricity", "quantity": "5", "unit": "tce"}, "unit", "invalid_unit"),
    ({"activity": "purchased_electricity", "quantity": "5", "unit": "t"}, "unit", "invalid_unit"),
    ({"activity": "purchased_electricity", "item": "green_certified", "quantity": "5", "unit": "MWh"}, "evidence",
     "missing_evidence"),
    ({"activity": "purchased_heat", "quantity": "5", "unit": "GJ", "emission_factor": "0.1",
      "emission_factor_unit": "tCO2/GJ"}, "evidence", "missing_evidence"),
    ({"activity": "purchased_heat", "quantity": "5", "unit": "GJ", "emission_factor": "0.1",
      "emission_factor_unit": "tCO2/t", "evidence": "cert-1"}, "emission_factor_unit", "invalid_unit"),
    ({"activity": "wastewater_discharge", "item": "COD", "quantity": "5", "unit": "m3"}, "concentration",
     "missing_value"),
    ({"activity": "pollutant_monitored", "item": "CO2", "quantity": "5", "unit": "t"}, "item", "invalid_item"),
    ({"activity": "economic_output", "item": "profit", "quantity": "5", "unit": "CNY"}, "item", "invalid_item"),
    ({"activity": "exported_heat", "item": "steam", "quantity": "5", "unit": "GJ"}, "item", "invalid_item"),
])
def test_activity_specific_rules(row: dict[str, str], column: str, code: str) -> None:
    assert (2, column, code) in errors_of([row])


def test_every_error_of_a_file_is_reported_not_only_the_first() -> None:
    found = errors_of([{**COAL, "unit": "ton"}, {**COAL, "facility": "F", "period": "2023-1"},
                       {**COAL, "facility": "G", "item": "coal", "unit": "kt"}])
    assert (2, "unit", "invalid_unit") in found
    assert (3, "period", "invalid_period") in found
    assert (4, "item", "invalid_item") in found
    assert (4, "unit", "invalid_unit") in found


def test_the_ton_error_names_the_fix() -> None:
    with pytest.raises(InvalidFileError) as caught:
        parse_activity(csv_file([{**COAL, "unit": "ton"}]), rules=RULES)
    (error,) = caught.value.errors
    assert error.value == "ton"
    assert "t (metric tonne) or short_ton" in error.expected


def test_duplicate_lines_are_refused_naming_the_first() -> None:
    with pytest.raises(InvalidFileError) as caught:
        parse_activity(csv_file([COAL, COAL]), rules=RULES)
    (error,) = caught.value.errors
    assert (error.row, error.code) == (3, "duplicate_line")
    assert "row 2" in error.expected


def test_header_problems_are_reported_on_row_one() -> None:
    content = f"enterprise_id,period,activity,item,quantitiy,unit\n{ENTERPRISE},2023-01,fuel_combustion,coke,1,t\n"
    with pytest.raises(InvalidFileError) as caught:
        parse_activity(SourceFile("h.csv", content.encode()), rules=RULES)
    found = {(e.row, e.column, e.code) for e in caught.value.errors}
    assert found == {(1, "quantitiy", "unknown_column"), (1, "quantity", "missing_column")}


def test_non_utf8_and_empty_files_are_refused_clearly() -> None:
    with pytest.raises(InvalidFileError) as caught:
        parse_activity(SourceFile("gbk.csv", "enterprise_id,period\n郑州,2023-01\n".encode("gbk")), rules=RULES)
    assert caught.value.errors[0].code == "bad_encoding"
    with pytest.raises(InvalidFileError) as caught:
        parse_activity(SourceFile("empty.csv", b""), rules=RULES)
    assert caught.value.errors[0].code == "empty_file"


def test_bom_crlf_and_chinese_units_are_accepted() -> None:
    content = ("\ufeffenterprise_id,period,activity,item,quantity,unit\r\n"
               f"{ENTERPRISE},2023-01,fuel_combustion,natural_gas,1.5,万Nm3\r\n"
               f"{ENTERPRISE},2023-01,economic_output,value_added,12,万元\r\n")
    lines = parse_activity(SourceFile("bom.csv", content.encode("utf-8")), rules=RULES)
    assert list(lines["unit"]) == ["万Nm3", "万元"]


def test_xlsx_and_json_forms_give_the_same_lines_as_csv() -> None:
    rows = [COAL, {"activity": "purchased_electricity", "quantity": "12.5", "unit": "MWh"}]
    from_csv = parse_activity(csv_file(rows), rules=RULES)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    header = ["enterprise_id", "period", "activity", "item", "quantity", "unit"]
    sheet.append(header)
    sheet.append([ENTERPRISE, "2023-01", "fuel_combustion", "bituminous_coal", 10, "t"])
    sheet.append([ENTERPRISE, "2023-01", "purchased_electricity", None, 12.5, "MWh"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    from_xlsx = parse_activity(SourceFile("lines.xlsx", buffer.getvalue()), rules=RULES)
    document = {"lines": [{"enterprise_id": ENTERPRISE, "period": "2023-01", **r} for r in rows]}
    from_json = parse_activity(SourceFile("lines.json", json.dumps(document).encode()), rules=RULES)
    for other in (from_xlsx, from_json):
        assert list(other["quantity"]) == list(from_csv["quantity"])
        assert list(other["quantity_kind"]) == list(from_csv["quantity_kind"])


def test_blank_lines_are_skipped_and_row_numbers_stay_those_of_the_file() -> None:
    content = ("enterprise_id,period,activity,item,quantity,unit\n"
               f"{ENTERPRISE},2023-01,fuel_combustion,coke,1,t\n\n,,,,,\n"
               f"{ENTERPRISE},2023-01,fuel_combustion,lignite,1,ton\n")
    with pytest.raises(InvalidFileError) as caught:
        parse_activity(SourceFile("gaps.csv", content.encode()), rules=RULES)
    assert [(e.row, e.column) for e in caught.value.errors] == [(5, "unit")]

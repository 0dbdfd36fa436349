"""Hostile or merely odd files: every limit and every encoding trap is refused by name, or read correctly.

Why these tests: an activity file comes from outside, often from Excel on a desktop. The parser must
read what honest tools write (a UTF-8 BOM, CRLF or mixed line ends, Excel's UTF-16 "Unicode text") the
same as plain UTF-8, and refuse what it cannot use (GBK, NUL bytes, a huge line, too many lines) with
one named problem, before any table is built from it. The JSON depth scanner runs before any parser
sees a request body, so it must be exact, iterative and cheap on deep input.
"""

from __future__ import annotations

import io
import json

import openpyxl
import pandas as pd
import pytest

from accounting.activity import MAX_LINE_BYTES, SourceFile, parse_activity, read_table
from accounting.errors import InvalidFileError
from accounting.factors import load_library
from api.body_limits import json_depth
from pipelines.warehouse import fuel_rules
from tests.support import ENTERPRISE

RULES = fuel_rules(load_library())
HEADER = "enterprise_id,period,activity,item,quantity,unit"
LINES = [f"{ENTERPRISE},2023-01,fuel_combustion,raw_coal,120.5,t",
         f"{ENTERPRISE},2023-01,purchased_electricity,,3400,MWh",
         f"{ENTERPRISE},2023-02,fuel_combustion,natural_gas,12.5,10^4 Nm3"]
TEXT = "\n".join([HEADER, *LINES]) + "\n"


def refusal(content: bytes, *, name: str = "lines.csv", max_rows: int = 200_000) -> dict[str, object]:
    """The single error of a refused file."""
    with pytest.raises(InvalidFileError) as caught:
        read_table(SourceFile(name, content), max_rows=max_rows)
    errors = caught.value.to_report()["errors"]
    assert isinstance(errors, list) and len(errors) >= 1
    first: dict[str, object] = errors[0]
    return first


def plain() -> pd.DataFrame:
    return parse_activity(SourceFile("plain.csv", TEXT.encode()), rules=RULES).drop(
        columns=["source_file", "source_sha256"])


@pytest.mark.parametrize("encode", [
    pytest.param(lambda t: ("\ufeff" + t).encode("utf-8"), id="utf-8 BOM"),
    pytest.param(lambda t: t.replace("\n", "\r\n").encode(), id="CRLF"),
    pytest.param(lambda t: "".join(line + end for line, end in zip(t.splitlines(), ["\r\n", "\r", "\n", "\r\n"],
                                                                     strict=True)).encode(), id="mixed CRLF, CR, LF"),
    pytest.param(lambda t: t.encode("utf-16"), id="utf-16 with BOM, commas"),
    pytest.param(lambda t: ("\ufeff" + t.replace(",", "\t")).encode("utf-16-le"), id="excel unicode text"),
    pytest.param(lambda t: ("\ufeff" + t.replace(",", "\t")).encode("utf-16-be"), id="utf-16be, tabs"),
])
def test_what_honest_tools_write_is_read_as_the_same_lines_as_plain_utf8(encode: object) -> None:
    assert callable(encode)
    lines = parse_activity(SourceFile("lines.csv", encode(TEXT)), rules=RULES).drop(
        columns=["source_file", "source_sha256"])
    pd.testing.assert_frame_equal(lines, plain())


def test_mixed_line_ends_keep_the_physical_row_numbers() -> None:
    content = (HEADER + "\r\n" + LINES[0] + "\r" + LINES[1] + "\n\n" + LINES[2] + "\n").encode()
    assert read_table(SourceFile("mixed.csv", content))["row_number"].tolist() == [2, 3, 5]


def test_gbk_is_refused_naming_the_fix() -> None:
    error = refusal((HEADER + "\n郑州,2023-01,production,cement,1,t\n").encode("gbk"))
    assert error["code"] == "bad_encoding" and "CSV UTF-8" in str(error["expected"])


def test_utf16_without_its_bom_is_refused_as_nul_bytes_naming_the_fix() -> None:
    error = refusal(TEXT.encode("utf-16-le"))
    assert error["code"] == "nul_byte" and error["row"] == 1
    assert "CSV UTF-8" in str(error["expected"]) and "UTF-16" in str(error["expected"])


def test_a_nul_byte_is_refused_naming_its_row() -> None:
    content = (HEADER + "\n" + LINES[0] + "\n" + LINES[1].replace("3400", "34\x0000") + "\n").encode()
    error = refusal(content)
    assert error["code"] == "nul_byte" and error["row"] == 3


def test_a_nul_character_in_a_json_value_is_refused_naming_row_and_column() -> None:
    document = [{"enterprise_id": ENTERPRISE, "period": "2023-01", "note": "fine"},
                {"enterprise_id": ENTERPRISE, "period": "2023-01", "note": "bad\u0000"}]
    error = refusal(json.dumps(document).encode(), name="lines.json")
    assert (error["code"], error["row"], error["column"]) == ("nul_byte", 3, "note")


def test_a_line_longer_than_the_limit_is_refused_naming_its_row() -> None:
    long_note = "x" * (MAX_LINE_BYTES + 1)
    content = (HEADER + ",note\n" + LINES[0] + ",short\n" + LINES[1] + f",{long_note}\n").encode()
    error = refusal(content)
    assert (error["code"], error["row"]) == ("line_too_long", 3)
    assert str(MAX_LINE_BYTES) in str(error["expected"])


def test_a_line_just_under_the_limit_is_read() -> None:
    note = "漢" * ((MAX_LINE_BYTES - len(LINES[0]) - 2) // 3)  # three UTF-8 bytes a character
    content = (HEADER + ",note\n" + LINES[0] + f",{note}\n").encode()
    assert read_table(SourceFile("long.csv", content))["note"].tolist() == [note]


def xlsx(rows: int) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER.split(","))
    for _ in range(rows):
        sheet.append(LINES[0].split(","))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "make"), [
    ("lines.csv", lambda n: (HEADER + "\n" + (LINES[0] + "\n") * n).encode()),
    ("lines.json", lambda n: json.dumps({"lines": [dict(zip(HEADER.split(","), LINES[0].split(","), strict=True))] * n
                                         }).encode()),
    ("lines.xlsx", xlsx),
])
def test_more_lines_than_the_limit_are_refused_naming_the_limit(name: str, make: object) -> None:
    assert callable(make)
    assert len(read_table(SourceFile(name, make(5)), max_rows=5)) == 5
    error = refusal(make(6), name=name, max_rows=5)
    assert error["code"] == "too_many_rows" and "at most 5 lines" in str(error["expected"])


@pytest.mark.parametrize(("body", "depth"), [
    (b"1", 0), (b'"[[[{"', 0), (b"[]", 1), (b'{"lines": [{"a": [1, 2]}]}', 4),
    (b'["\\"[", {"b": "]]]]"}]', 2), (b'{"a": "\\\\"}', 1), (b" [ [ ] , [ [ ] ] ] ", 3),
])
def test_json_depth_counts_arrays_and_objects_not_brackets_in_strings(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


def test_json_depth_scans_a_hundred_thousand_levels_without_recursion() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert json_depth(deep) == 100_000
    assert json_depth(deep, stop_above=32) == 33

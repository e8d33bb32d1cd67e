"""Tests for deepstrata.data.sources: reading tables, and errors that name file, line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepstrata.data.sources import read_table
from deepstrata.data.table import TABLE_SUFFIXES, Table
from deepstrata.errors import DataError, DataWarning


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    """Write ``content`` byte for byte (no newline translation); return the path as a str."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return str(path)


def read_error(data) -> DataError:
    with pytest.raises(DataError) as caught:
        read_table(data)
    return caught.value


# --- good paths -------------------------------------------------------------------------


def test_csv_infers_types_and_records_start_lines(tmp_path):
    path = write(
        tmp_path,
        "people.csv",
        'id,name,score\n1,alice,0.5\n\n2,"bob\nsmith",1.5\n3,carol,2.0\n',
    )
    table = read_table(path)

    assert table.source == path
    assert table.frame.columns.tolist() == ["id", "name", "score"]
    assert isinstance(table.frame.index, pd.RangeIndex)
    assert table.frame["id"].dtype == np.int64
    assert table.frame["score"].dtype == np.float64
    assert pd.api.types.is_string_dtype(table.frame["name"])
    assert table.frame["name"].tolist() == ["alice", "bob\nsmith", "carol"]
    # Line 3 is blank; row 2 spans lines 4-5.
    assert table.lines.dtype == np.int64
    assert table.lines.tolist() == [2, 4, 6]
    assert table.location(1) == {"row": 2, "line": 4}


@pytest.mark.parametrize("suffix", [".tsv", ".tab"])
def test_tab_separated(tmp_path, suffix):
    path = write(tmp_path, f"data{suffix}", "a\tb\n1\tx, y\n2\tz\n")
    table = read_table(path)
    assert table.frame.columns.tolist() == ["a", "b"]
    assert table.frame["b"].tolist() == ["x, y", "z"]
    assert table.lines.tolist() == [2, 3]


def test_txt_is_comma_separated_and_suffix_case_is_ignored(tmp_path):
    table = read_table(write(tmp_path, "DATA.TXT", "a,b\n1,2\n"))
    assert table.frame.to_dict("list") == {"a": [1], "b": [2]}


def test_crlf_and_whitespace_only_lines_are_skipped_like_pandas(tmp_path):
    table = read_table(write(tmp_path, "crlf.csv", "a,b\r\n1,2\r\n \t \r\n3,4\r\n"))
    assert table.frame.to_dict("list") == {"a": [1, 3], "b": [2, 4]}
    assert table.lines.tolist() == [2, 4]


def test_lone_carriage_return_line_ends(tmp_path):
    # pandas alone would read the last row as (3, NaN): it drops the leading empty
    # field of a line that follows a blank line ended by a lone CR.
    table = read_table(write(tmp_path, "mac.csv", "a,b\r1,2\r\r,3\r"))
    assert table.frame["b"].tolist() == [2, 3]
    assert np.isnan(table.frame["a"][1])
    assert table.lines.tolist() == [2, 4]


def test_utf8_byte_order_mark_is_dropped(tmp_path):
    table = read_table(write(tmp_path, "bom.csv", b"\xef\xbb\xbfname,age\nJos\xc3\xa9,31\n"))
    assert table.frame.columns.tolist() == ["name", "age"]
    assert table.frame["name"].tolist() == ["José"]


def test_json_lines(tmp_path):
    path = write(tmp_path, "rows.jsonl", '{"a": 1, "b": "x"}\n\n{"a": 2}\n{"b": "z", "c": true}\n')
    table = read_table(path)
    assert table.frame.columns.tolist() == ["a", "b", "c"]
    assert table.frame["a"].tolist()[:2] == [1.0, 2.0]
    assert np.isnan(table.frame["a"][2])
    assert table.lines.tolist() == [1, 3, 4]
    assert isinstance(table.frame.index, pd.RangeIndex)


def test_parquet(tmp_path):
    expected = pd.DataFrame({"x": [1.5, 2.5, 3.5], "label": ["a", "b", "a"]})
    path = str(tmp_path / "data.parquet")
    expected.to_parquet(path)
    table = read_table(path)
    pd.testing.assert_frame_equal(table.frame, expected, check_dtype=False)
    assert table.lines is None
    assert table.location(2) == {"row": 3, "line": None}


def test_parquet_named_index_becomes_a_column(tmp_path):
    path = tmp_path / "indexed.pq"
    pd.DataFrame({"id": [7, 9], "x": [0.1, 0.2]}).set_index("id").to_parquet(path)
    table = read_table(path)
    assert table.source == str(path)
    assert table.frame.columns.tolist() == ["id", "x"]
    assert isinstance(table.frame.index, pd.RangeIndex)


def test_dataframe_is_copied_with_index_dropped_and_string_names():
    original = pd.DataFrame({0: [1, 2], "b": [3, 4]}, index=[10, 20])
    table = read_table(original)
    assert table.source == "<DataFrame>"
    assert table.lines is None
    assert table.frame.columns.tolist() == ["0", "b"]
    assert table.frame.index.equals(pd.RangeIndex(2))
    table.frame.loc[0, "b"] = 99
    assert original.loc[10, "b"] == 3
    assert original.columns.tolist() == [0, "b"]


def test_table_passes_through():
    table = read_table(pd.DataFrame({"a": [1]}))
    assert read_table(table) is table


def test_table_error_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "ages.csv", "name,age\nann,31\nbob,abc\n")
    error = read_table(path).error("expected a number, got 'abc'", column="age", position=1)
    assert isinstance(error, DataError)
    assert (error.file, error.line, error.row, error.column) == (path, 3, 2, "age")
    assert str(error) == f"{path}, line 3 (row 2), column 'age': expected a number, got 'abc'"


def test_table_error_without_position():
    error = read_table(pd.DataFrame({"a": [1]})).error("no label column", hint="pass --label")
    assert (error.file, error.line, error.row, error.column) == ("<DataFrame>", None, None, None)
    assert error.hint == "pass --label"


# --- errors ------------------------------------------------------------------------------


def test_dataframe_duplicate_names():
    error = read_error(pd.DataFrame([[1, 2]], columns=["1", 1]))
    assert (error.file, error.column) == ("<DataFrame>", "1")
    assert "duplicate" in error.message


@pytest.mark.parametrize("content", [b"", b" \n\t\r\n  ", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path, content):
    path = write(tmp_path, "empty.csv", content)
    error = read_error(path)
    assert error.message == "file is empty"
    assert (error.file, error.line, error.row) == (path, None, None)


def test_header_only(tmp_path):
    path = write(tmp_path, "header.csv", "a,b\n\n")
    error = read_error(path)
    assert error.message == "no data rows"
    assert (error.file, error.line, error.row) == (path, None, None)


def test_duplicate_header_name(tmp_path):
    path = write(tmp_path, "dup.csv", "a,b,a\n1,2,3\n")
    error = read_error(path)
    assert (error.file, error.line, error.column) == (path, 1, "a")
    assert "duplicate" in error.message


def test_too_many_fields(tmp_path):
    path = write(tmp_path, "wide.csv", "a,b\n1,2\n3,4,5\n")
    error = read_error(path)
    assert error.message == "expected 2 fields (as in the header), found 3"
    assert (error.file, error.line, error.row, error.column) == (path, 3, 2, None)


def test_too_few_fields_names_the_physical_line(tmp_path):
    # pandas would fill the missing field with NaN. Row 3 starts on line 6: line 2
    # is blank and row 2 spans lines 4-5.
    path = write(tmp_path, "short.tsv", 'a\tb\tc\n\n1\t2\t3\n4\t"x\ny"\t6\n7\t8\n9\t10\t11\n')
    error = read_error(path)
    assert error.message == "expected 3 fields (as in the header), found 2"
    assert (error.file, error.line, error.row) == (path, 6, 3)
    assert "tab" in error.hint


def test_unterminated_quote_names_the_line_it_opened_on(tmp_path):
    path = write(tmp_path, "quote.csv", 'a,b\n1,2\n3,"never closed\n4,5\n6,7\n')
    error = read_error(path)
    assert "unterminated quote" in error.message
    assert (error.file, error.line, error.row) == (path, 3, 2)


def test_malformed_quote(tmp_path):
    path = write(tmp_path, "bad.csv", 'a,b\n1,2\n3,"x"y\n')
    error = read_error(path)
    assert "malformed quoting" in error.message
    assert (error.file, error.line, error.row) == (path, 3, 2)


def test_invalid_utf8_names_line_and_byte_offset(tmp_path):
    path = write(tmp_path, "latin1.csv", b"name,city\nann,Paris\nbob,K\xf6ln\n")
    error = read_error(path)
    assert (error.file, error.line, error.row) == (path, 3, None)
    assert "byte offset 25" in error.hint
    assert "UTF-8" in error.hint


def test_invalid_utf8_after_byte_order_mark(tmp_path):
    error = read_error(write(tmp_path, "bom.csv", b"\xef\xbb\xbfa\n\xff\n"))
    assert error.line == 2
    assert "byte offset 5" in error.hint


def test_json_lines_bad_json(tmp_path):
    path = write(tmp_path, "rows.ndjson", '{"a": 1}\n\n{"a": 2,}\n')
    error = read_error(path)
    assert error.message.startswith("invalid JSON: ")
    assert (error.file, error.line, error.row) == (path, 3, 2)


def test_json_lines_non_object(tmp_path):
    path = write(tmp_path, "rows.jsonl", '{"a": 1}\n[1, 2]\n')
    error = read_error(path)
    assert error.message == "expected a JSON object on each line, found an array"
    assert (error.file, error.line, error.row) == (path, 2, 2)


def test_json_lines_invalid_utf8(tmp_path):
    path = write(tmp_path, "rows.jsonl", b'{"a": 1}\n{"a": "\xff"}\n')
    error = read_error(path)
    assert (error.file, error.line) == (path, 2)


def test_corrupt_parquet(tmp_path):
    path = write(tmp_path, "broken.parquet", "a,b\n1,2\n")
    error = read_error(path)
    assert error.file == path
    assert "Parquet" in error.message
    assert (error.line, error.row, error.column) == (None, None, None)


def test_parquet_without_rows(tmp_path):
    path = tmp_path / "empty.parquet"
    pd.DataFrame({"a": pd.Series([], dtype="float64")}).to_parquet(path)
    error = read_error(path)
    assert (error.message, error.file) == ("no data rows", str(path))


def test_missing_file(tmp_path):
    path = str(tmp_path / "nowhere.csv")
    error = read_error(path)
    assert (error.message, error.file) == ("file not found", path)


def test_a_folder_without_files_to_read(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.docx").write_bytes(b"PK")
    with pytest.warns(DataWarning, match=r"skipped files of other types \(1 \.docx\)"):
        error = read_error(tmp_path)
    assert error.file == str(tmp_path)
    assert "no image, audio or text files found" in error.message
    assert all(suffix in error.hint for suffix in TABLE_SUFFIXES)


def test_unknown_suffix(tmp_path):
    path = write(tmp_path, "book.xlsx", b"PK\x03\x04")
    error = read_error(path)
    assert error.file == path
    assert "'.xlsx'" in error.message
    assert all(suffix in error.hint for suffix in TABLE_SUFFIXES)


def test_wrong_argument_type_is_a_type_error():
    with pytest.raises(TypeError):
        read_table([1, 2, 3])


def test_table_is_frozen():
    table = Table(frame=pd.DataFrame({"a": [1]}), source="<DataFrame>", lines=None)
    with pytest.raises(AttributeError):
        table.source = "other"

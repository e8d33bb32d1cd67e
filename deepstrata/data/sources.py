"""Read a table (CSV, TSV, JSON Lines, Parquet or a DataFrame) into a :class:`Table`.

A :class:`Table` is a DataFrame plus where each of its rows came from, so that an
error found anywhere later (a bad value in preprocessing, a missing label) can
name the file, the line and the column a user would look at in an editor.

Why CSV and TSV files are scanned before ``pandas.read_csv`` parses them:
pandas silently pads a row that has too few fields with NaN, so a missing comma
turns into missing values far from the mistake; and pandas knows nothing of the
physical line on which a row starts once quoted fields span lines or blank
lines are skipped. One pass over the decoded text checks every record's field
count against the header, reports a runaway quote at the line where it opened,
and records each record's first line. pandas then parses the same text, so the
column types are pandas's own inference.

The scan is per record but never per field. A line without a quote character
(nearly every line of most files) cannot span lines, and its field count is its
number of delimiters plus one, so ``str.count`` gives it; only lines that hold a
quote go through the ``csv`` module, which continues a record over the
following lines when a quoted field holds a line break.

>>> table = read_table(pd.DataFrame({"age": [31, 45]}))
>>> table.location(1)
{'row': 2, 'line': None}
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from deepstrata.data.table import TABLE_SUFFIXES, Table
from deepstrata.errors import DataError

__all__ = ["TABLE_SUFFIXES", "Table", "read_table"]


_DELIMITERS = {".csv": ",", ".txt": ",", ".tsv": "\t", ".tab": "\t"}
_DELIMITER_NAMES = {",": "comma", "\t": "tab"}
_JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_FRAME_SOURCE = "<DataFrame>"
_QUOTE = '"'
_UTF8_BOM = b"\xef\xbb\xbf"
_SUPPORTED = "supported: " + ", ".join(TABLE_SUFFIXES)


def read_table(data: str | os.PathLike | pd.DataFrame | Table) -> Table:
    """Read a table file or a folder of raw files, or wrap a DataFrame, into a :class:`Table`.

    Files are told apart by suffix (:data:`TABLE_SUFFIXES`): ``.csv`` and
    ``.txt`` are comma-separated, ``.tsv`` and ``.tab`` tab-separated, ``.jsonl``
    and ``.ndjson`` hold one JSON object per line, ``.parquet`` and ``.pq`` are
    Parquet. Text files must be UTF-8 (a byte-order mark is accepted). A folder
    of class sub-folders is read by :func:`deepstrata.data.folders.read_folder`. A
    DataFrame is copied with its index dropped and its column names made
    strings; a Table is returned as it is.

    Raises :class:`DataError` naming the file, and the line, row and column
    where known, for anything wrong with the data.

    >>> read_table(pd.DataFrame({1: [0.5]})).frame.columns.tolist()
    ['1']
    """
    if isinstance(data, Table):
        return data
    if isinstance(data, pd.DataFrame):
        return Table(frame=_tidy_frame(data, _FRAME_SOURCE), source=_FRAME_SOURCE, lines=None)
    if not isinstance(data, str | os.PathLike):
        expected = "a file path, a pandas DataFrame or a Table"
        raise TypeError(f"read_table expects {expected}, got {type(data).__name__}")

    source = os.fsdecode(data)
    path = Path(source)
    if not path.exists():
        raise DataError("file not found", file=source, hint=f"looked for {path.resolve()}")
    if path.is_dir():
        from deepstrata.data.folders import read_folder  # folders read files; tables come first

        return read_folder(source)
    suffix = path.suffix.lower()
    if suffix in _DELIMITERS:
        return _read_delimited(path, source, _DELIMITERS[suffix])
    if suffix in _JSON_LINES_SUFFIXES:
        return _read_json_lines(path, source)
    if suffix in _PARQUET_SUFFIXES:
        return _read_parquet(path, source)
    found = f"suffix {suffix!r}" if suffix else "no suffix"
    raise DataError(
        f"cannot tell the table format: the file has {found}", file=source, hint=_SUPPORTED
    )


def _read_delimited(path: Path, source: str, delimiter: str) -> Table:
    text = _read_text(path, source)
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        # Lone CR line ends (old Mac exports). After a skipped blank line pandas
        # drops a leading empty field of the next line, shifting its values, so
        # both the scan and pandas read LF line ends instead.
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = _scan_delimited(text, delimiter, source)
    frame = pd.read_csv(io.StringIO(text), sep=delimiter, skip_blank_lines=True)
    if len(frame) != len(lines):
        raise RuntimeError(
            f"{source}: the scan found {len(lines)} data rows but pandas parsed {len(frame)}; "
            "this is a bug in deepstrata, please report it with the file"
        )
    return Table(frame=frame, source=source, lines=lines)


class _RecordFeed:
    """The line iterator ``csv.reader`` reads: the line we hand it, then lines from the file.

    The main scan loop and the reader share one iterator over the file's lines,
    so lines the reader takes to finish a quoted field are skipped by the loop.
    """

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.first: str | None = None
        self.exhausted = False

    def __iter__(self) -> _RecordFeed:
        return self

    def __next__(self) -> str:
        if self.first is not None:
            line, self.first = self.first, None
            return line
        try:
            return next(self.lines)
        except StopIteration:
            self.exhausted = True
            raise


def _scan_delimited(text: str, delimiter: str, source: str) -> np.ndarray:
    """Check every record against the header; return each data record's first line, int64 (n,)."""
    # A quoted field may be as long as the whole text (2**31 - 1: a C long on
    # every platform). The limit is only ever raised, never restored, so a
    # concurrent reader cannot be cut short.
    if csv.field_size_limit() < len(text):
        csv.field_size_limit(min(len(text), 2**31 - 1))
    # Splitting at LF is about twice as fast as iterating a StringIO. The LFs are
    # not needed: csv.reader ends a record at the end of each string it is given
    # unless a quoted field is open. A CR of a CR LF stays on its line.
    lines = iter(text.split("\n"))
    feed = _RecordFeed(lines)
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    # pandas skips a line of only spaces and tabs, unless the tab is the delimiter.
    blank = " \r\n" if delimiter == "\t" else " \t\r\n"

    header: list[str] | None = None
    width = 0
    starts: list[int] = []
    line_number = 0
    for line in lines:
        line_number += 1
        start = line_number
        fields = None
        if _QUOTE in line:
            feed.first = line
            taken = reader.line_num
            try:
                fields = next(reader)
            except csv.Error as exc:
                here = line_number + reader.line_num - taken - 1
                row = None if header is None else len(starts) + 1
                raise _quote_error(exc, feed.exhausted, source, start, here, row) from None
            line_number += reader.line_num - taken - 1
            count = len(fields)
        else:
            count = line.count(delimiter) + 1
            if count == 1 and not line.strip(blank):
                continue
        if header is None:
            header = fields if fields is not None else line.rstrip("\r\n").split(delimiter)
            width = count
            _check_header(header, source, start)
            continue
        if count != width:
            raise DataError(
                f"expected {_fields(width)} (as in the header), found {count}",
                file=source,
                row=len(starts) + 1,
                line=start,
                hint=_ragged_hint(count > width, delimiter),
            )
        starts.append(start)

    if header is None:
        raise DataError("file is empty", file=source)
    if not starts:
        raise DataError("no data rows", file=source, hint="the file has a header line only")
    return np.array(starts, dtype=np.int64)


def _check_header(header: list[str], source: str, line: int) -> None:
    seen: set[str] = set()
    for name in header:
        # pandas names empty header fields "Unnamed: <i>", which never collide.
        if name and name in seen:
            raise DataError(
                f"duplicate column name {name!r} in the header",
                file=source,
                line=line,
                column=name,
                hint="rename the columns so that each name appears once",
            )
        seen.add(name)


def _fields(count: int) -> str:
    return f"{count} field" if count == 1 else f"{count} fields"


def _ragged_hint(too_many: bool, delimiter: str) -> str:
    name = _DELIMITER_NAMES[delimiter]
    if too_many:
        return f"a value that contains a {name} must be enclosed in double quotes"
    return f"every row needs one value, possibly empty, for each column: check for a missing {name}"


def _quote_error(
    error: csv.Error, exhausted: bool, source: str, start: int, here: int, row: int | None
) -> DataError:
    if exhausted:
        # The reader hit the end of the file inside a quoted field: the quote
        # opened on the record's first line, since a record without an open
        # quote ends at its first line break.
        return DataError(
            "unterminated quote: a quoted field opened on this line is never closed",
            file=source,
            row=row,
            line=start,
            hint='close the quote; a quote inside a quoted field is written twice ("")',
        )
    return DataError(
        f"malformed quoting: {error}",
        file=source,
        row=row,
        line=here,
        hint='a quoted field ends at its closing quote; a quote inside it is written twice ("")',
    )


def _read_json_lines(path: Path, source: str) -> Table:
    text = _read_text(path, source)
    records: list[dict] = []
    numbers: list[int] = []
    for number, line in enumerate(io.StringIO(text), start=1):  # splits at "\n" only
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"invalid JSON: {exc.msg} (column {exc.colno})",
                file=source,
                row=len(records) + 1,
                line=number,
            ) from None
        surrogate = _lone_surrogate(record)
        if surrogate is not None:
            key, code, in_key = surrogate
            where = f"the key {key!a}" if in_key else f"the value of {key!r}"
            raise DataError(
                f"{where} holds a lone surrogate \\u{code:04x} (half of a "
                "UTF-16 pair, which is no character): the text was cut or mis-encoded",
                file=source,
                row=len(records) + 1,
                line=number,
                column=None if in_key else key,
                hint="write the whole character (both \\u escapes of the pair) or remove it",
            )
        if not isinstance(record, dict):
            raise DataError(
                f"expected a JSON object on each line, found {_json_kind(record)}",
                file=source,
                row=len(records) + 1,
                line=number,
                hint='write one object per line, such as {"age": 31, "label": "yes"}',
            )
        records.append(record)
        numbers.append(number)

    frame = pd.DataFrame.from_records(records)
    if len(frame) != len(records):  # every object was empty: no columns, and pandas drops the rows
        raise DataError("no columns: every JSON object in the file is empty", file=source)
    return Table(frame=frame, source=source, lines=np.array(numbers, dtype=np.int64))


def _lone_surrogate(record) -> tuple[str, int, bool] | None:
    """``(key, code point, whether in the key)`` of the first key or string value holding a
    lone UTF-16 surrogate (JSON's \\ud800 without its partner: Python reads it, no text
    encoding can write it)."""
    if not isinstance(record, dict):
        return None
    for key, value in record.items():
        for text, in_key in ((key, True), (value, False)):
            if isinstance(text, str) and not text.isascii():
                for char in text:
                    if 0xD800 <= ord(char) <= 0xDFFF:
                        return str(key), ord(char), in_key
    return None


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def _read_parquet(path: Path, source: str) -> Table:
    # Imported here: only Parquet files need it, and it slows every start-up.
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DataError("file is empty", file=source)
    try:
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"cannot read the file as Parquet: {exc}",
            file=source,
            hint="the file may be damaged, or not a Parquet file despite its suffix",
        ) from exc
    if len(frame) == 0:
        raise DataError("no data rows", file=source)
    # A named index written by pandas is a column of the file: keep it as one.
    named = [name for name in frame.index.names if name is not None]
    if named:
        frame = frame.reset_index(level=named, allow_duplicates=True)
    return Table(frame=_tidy_frame(frame, source), source=source, lines=None)


def _tidy_frame(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """A copy of ``frame`` with a RangeIndex and unique string column names."""
    names = [name if isinstance(name, str) else str(name) for name in frame.columns]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(
                f"duplicate column name {name!r}",
                file=source,
                column=name,
                hint="rename the columns so that each name appears once",
            )
        seen.add(name)
    # A new frame: under copy-on-write, changes to it never reach the caller's.
    # reset_index and renaming only where needed: each costs tens of microseconds,
    # which is a tenth of a single-row prediction.
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        frame = frame.copy(deep=False)
    else:
        frame = frame.reset_index(drop=True)
    if any(type(name) is not str for name in frame.columns):
        frame.columns = names
    return frame


def _read_text(path: Path, source: str) -> str:
    """The file decoded as UTF-8 (a byte-order mark dropped); never empty or all whitespace."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", file=source) from exc
    skip = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    try:
        text = (data[skip:] if skip else data).decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        raise DataError(
            "the file is not valid UTF-8",
            file=source,
            line=data.count(b"\n", 0, offset) + 1,
            hint=f"byte 0x{data[offset]:02x} at byte offset {offset} cannot be decoded; "
            "re-save the file as UTF-8",
        ) from None
    if not text or text.isspace():
        raise DataError("file is empty", file=source)
    return text

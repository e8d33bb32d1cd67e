"""Tests for deepstrata.data.files: resolving path columns, decoding (in workers), the cache,
and one error that lists every bad file."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepstrata.data import files
from deepstrata.data.files import (
    SHOWN_BAD_FILES,
    WORKER_MIN_FILES,
    BadFile,
    DecodeCache,
    decode_column,
    decode_workers,
    read_files,
)
from deepstrata.data.folders import read_folder
from deepstrata.data.sources import read_table
from deepstrata.errors import ConfigError, DataError

# Decoders are module-level functions (or partials of them) so worker processes can run them.


def decode_bytes(path: Path) -> np.ndarray:
    """The file's bytes as a writable uint8 array; a file starting with b"bad" is corrupt."""
    data = Path(path).read_bytes()
    if data.startswith(b"bad"):
        raise ValueError(f"corrupt ({data.decode()})")
    return np.frombuffer(data, dtype=np.uint8).copy()


def logged_decode(log: Path, path: Path) -> np.ndarray:
    """decode_bytes, appending "<pid> <file name>" to ``log`` first: counts calls in any process."""
    with open(log, "a") as handle:
        handle.write(f"{os.getpid()} {Path(path).name}\n")
    return decode_bytes(path)


def decode_silently_failing(path: Path) -> np.ndarray:
    raise OSError()  # no message: the reason falls back to the exception's name


def decode_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))  # (H, W, 3)


def logged(log: Path) -> list[tuple[int, str]]:
    """The (pid, file name) of every logged_decode call so far."""
    if not log.exists():
        return []
    return [
        (int(pid), name)
        for pid, name in (line.split() for line in log.read_text().split("\n") if line)
    ]


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch):
    """Each test starts and ends with an empty decode cache and no worker override."""
    monkeypatch.delenv("DEEPSTRATA_DECODE_WORKERS", raising=False)
    files.CACHE.clear()
    yield
    files.CACHE.clear()


def decoded(results: list[np.ndarray | None]) -> list[bytes | None]:
    return [None if array is None else array.tobytes() for array in results]


# --- where relative paths point -----------------------------------------------------------


def test_paths_are_relative_to_the_folder_of_a_csv(tmp_path, monkeypatch):
    write(tmp_path / "data" / "images" / "a.bin", b"aa")
    write(tmp_path / "data" / "b.bin", b"bbb")
    csv = write(tmp_path / "data" / "table.csv", b"image\nimages/a.bin\nb.bin\n")
    write(tmp_path / "b.bin", b"wrong file: relative to the working directory")
    monkeypatch.chdir(tmp_path)

    table = read_table(csv)
    results, bad = read_files(table.frame["image"], table, decode_bytes, key="k", workers=0)

    assert bad == []
    assert decoded(results) == [b"aa", b"bbb"]


def test_paths_of_a_relative_csv_path_are_relative_to_its_folder(tmp_path, monkeypatch):
    write(tmp_path / "data" / "a.bin", b"aa")
    write(tmp_path / "data" / "table.csv", b"image\na.bin\n")
    monkeypatch.chdir(tmp_path)

    table = read_table("data/table.csv")
    results, bad = read_files(table.frame["image"], table, decode_bytes, key="k", workers=0)

    assert bad == []
    assert decoded(results) == [b"aa"]


def test_paths_are_relative_to_the_folder_of_a_folder_table(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    for name, colour in (("cat/1.png", (255, 0, 0)), ("dog/deep/2.png", (0, 0, 255))):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (3, 2), colour).save(folder / name)
    monkeypatch.chdir(tmp_path)

    table = read_folder(folder)
    results, bad = read_files(table.frame["image"], table, decode_png, key="png", workers=0)

    assert bad == []
    assert [array.shape for array in results] == [(2, 3, 3), (2, 3, 3)]
    assert results[0][0, 0].tolist() == [255, 0, 0]
    assert results[1][0, 0].tolist() == [0, 0, 255]


def test_paths_are_relative_to_the_working_directory_for_a_dataframe(tmp_path, monkeypatch):
    write(tmp_path / "work" / "sub" / "a.bin", b"aa")
    monkeypatch.chdir(tmp_path / "work")

    table = read_table(pd.DataFrame({"image": ["sub/a.bin"]}))
    results, bad = read_files(table.frame["image"], table, decode_bytes, key="k", workers=0)

    assert bad == []
    assert decoded(results) == [b"aa"]


def test_absolute_paths_are_kept(tmp_path, monkeypatch):
    elsewhere = write(tmp_path / "elsewhere" / "a.bin", b"aa")
    csv = tmp_path / "data" / "table.csv"
    write(csv, f"image\n{elsewhere}\n".encode())
    monkeypatch.chdir(tmp_path / "data")

    for table in (read_table(csv), read_table(pd.DataFrame({"image": [str(elsewhere)]}))):
        results, bad = read_files(table.frame["image"], table, decode_bytes, key="k", workers=0)
        assert bad == []
        assert decoded(results) == [b"aa"]


def test_missing_cells_are_none_and_not_bad_files(tmp_path, monkeypatch):
    write(tmp_path / "a.bin", b"aa")
    monkeypatch.chdir(tmp_path)
    table = read_table(pd.DataFrame({"image": [None, np.nan, "", "  ", "a.bin", pd.NA]}))

    results, bad = read_files(table.frame["image"], table, decode_bytes, key="k", workers=0)

    assert bad == []
    assert decoded(results) == [None, None, None, None, b"aa", None]
    assert (
        decode_column(table.frame["image"], table, decode_bytes, key="k", workers=0)[4] is not None
    )


def test_missing_cells_in_a_csv_are_none(tmp_path):
    write(tmp_path / "a.bin", b"aa")
    csv = write(tmp_path / "table.csv", b"id,image\n1,\n2,a.bin\n3,\n")

    table = read_table(csv)
    results, bad = read_files(table.frame["image"], table, decode_bytes, key="k", workers=0)

    assert bad == []
    assert decoded(results) == [None, b"aa", None]


def test_path_objects_in_a_dataframe_are_read_like_strings(tmp_path, monkeypatch):
    write(tmp_path / "a.bin", b"aa")
    monkeypatch.chdir(tmp_path)
    table = read_table(pd.DataFrame({"image": [Path("a.bin"), tmp_path / "missing.bin"]}))

    results, bad = read_files(table.frame["image"], table, decode_bytes, key="k", workers=0)

    assert decoded(results) == [b"aa", None]
    assert [(b.position, b.reason) for b in bad] == [(1, "file not found")]


# --- bad files ----------------------------------------------------------------------------


def test_every_bad_file_of_a_csv_is_listed_in_one_error_with_its_line(tmp_path):
    write(tmp_path / "good.bin", b"ok")
    write(tmp_path / "corrupt.bin", b"bad bytes")
    (tmp_path / "a_folder").mkdir()
    csv = write(
        tmp_path / "table.csv",
        b"image,note\ngood.bin,x\n\nmissing.bin,y\na_folder,z\ncorrupt.bin,w\n",
    )
    table = read_table(csv)  # line 3 is blank: rows 2-4 are on lines 4-6

    with pytest.raises(DataError) as caught:
        decode_column(table.frame["image"], table, decode_bytes, key="k", what="image", workers=0)

    error = caught.value
    assert error.file == str(csv)
    assert error.column == "image"
    assert (error.row, error.line) == (2, 4)  # the first bad one
    assert error.message.splitlines() == [
        "3 images could not be read:",
        "  line 4: missing.bin: file not found",
        "  line 5: a_folder: not a file",
        "  line 6: corrupt.bin: corrupt (bad bytes)",
    ]
    assert "--skip-bad-files" in error.hint


def test_bad_files_of_a_dataframe_are_listed_with_row_numbers(tmp_path, monkeypatch):
    write(tmp_path / "good.bin", b"ok")
    monkeypatch.chdir(tmp_path)
    table = read_table(pd.DataFrame({"audio": ["good.bin", "missing.wav"]}))

    with pytest.raises(DataError) as caught:
        decode_column(table.frame["audio"], table, decode_bytes, key="k", what="sound", workers=0)

    error = caught.value
    assert error.file == "<DataFrame>"
    assert (error.row, error.line) == (2, None)
    assert error.message.splitlines() == [
        "1 sound could not be read:",
        "  row 2: missing.wav: file not found",
    ]


def test_bad_files_of_a_folder_table_are_listed_by_path_without_rows(tmp_path):
    folder = tmp_path / "photos"
    write(folder / "cat" / "1.png", b"fine")
    write(folder / "cat" / "2.png", b"bad header")
    write(folder / "dog" / "3.png", b"bad too")
    table = read_folder(folder)

    with pytest.raises(DataError) as caught:
        decode_column(table.frame["image"], table, decode_bytes, key="k", what="image", workers=0)

    error = caught.value
    assert error.file == str(folder)
    assert (error.row, error.line) == (None, None)
    assert error.message.splitlines() == [
        "2 images could not be read:",
        "  cat/2.png: corrupt (bad header)",
        "  dog/3.png: corrupt (bad too)",
    ]


def test_a_decode_error_without_a_message_is_named_by_its_type(tmp_path):
    write(tmp_path / "a.bin", b"aa")
    table = read_table(pd.DataFrame({"x": [str(tmp_path / "a.bin")]}))

    _, bad = read_files(table.frame["x"], table, decode_silently_failing, key="k", workers=0)

    assert bad == [BadFile(position=0, path=str(tmp_path / "a.bin"), reason="OSError")]


def test_more_bad_files_than_shown_are_counted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = 3
    paths = [f"missing_{i:03d}.bin" for i in range(SHOWN_BAD_FILES + extra)]
    table = read_table(pd.DataFrame({"image": paths}))

    with pytest.raises(DataError) as caught:
        decode_column(table.frame["image"], table, decode_bytes, key="k", workers=0)

    lines = caught.value.message.splitlines()
    assert lines[0] == f"{SHOWN_BAD_FILES + extra} files could not be read:"
    assert lines[1:-1] == [
        f"  row {i + 1}: {path}: file not found" for i, path in enumerate(paths[:SHOWN_BAD_FILES])
    ]
    assert lines[-1] == f"  … and {extra} more"


def test_bad_files_are_sorted_by_position(tmp_path, monkeypatch):
    # Missing files are found before any file is decoded; the list still follows the rows.
    write(tmp_path / "corrupt.bin", b"bad")
    write(tmp_path / "good.bin", b"ok")
    monkeypatch.chdir(tmp_path)
    table = read_table(pd.DataFrame({"image": ["corrupt.bin", "good.bin", "missing.bin"]}))

    results, bad = read_files(table.frame["image"], table, decode_bytes, key="k", workers=0)

    assert [(b.position, b.path) for b in bad] == [(0, "corrupt.bin"), (2, "missing.bin")]
    assert decoded(results) == [None, b"ok", None]


def test_positions_are_the_tables_index_labels_for_a_subset(tmp_path):
    write(tmp_path / "good.bin", b"ok")
    write(tmp_path / "corrupt.bin", b"bad")
    csv = write(
        tmp_path / "table.csv",
        b"image\ngood.bin\ngood.bin\ngood.bin\nmissing.bin\ngood.bin\ncorrupt.bin\n",
    )
    table = read_table(csv)
    subset = table.frame["image"].iloc[[5, 3, 4]]

    results, bad = read_files(subset, table, decode_bytes, key="k", workers=0)

    assert decoded(results) == [None, None, b"ok"]  # in the subset's order
    assert [(b.position, b.path) for b in bad] == [(3, "missing.bin"), (5, "corrupt.bin")]
    with pytest.raises(DataError) as caught:
        decode_column(subset, table, decode_bytes, key="k", workers=0)
    assert (caught.value.row, caught.value.line) == (4, 5)
    assert caught.value.message.splitlines()[1:] == [
        "  line 5: missing.bin: file not found",
        "  line 7: corrupt.bin: corrupt (bad)",
    ]


# --- the decode cache ---------------------------------------------------------------------


def test_a_second_read_of_the_same_files_is_served_from_the_cache(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    decode = functools.partial(logged_decode, log)
    write(tmp_path / "a.bin", b"aa")
    write(tmp_path / "b.bin", b"bad")
    monkeypatch.chdir(tmp_path)
    table = read_table(pd.DataFrame({"image": ["a.bin", "b.bin"]}))

    first, first_bad = read_files(table.frame["image"], table, decode, key="k", workers=0)
    second, second_bad = read_files(table.frame["image"], table, decode, key="k", workers=0)

    # The good file is decoded once; a bad file is not cached, so it is tried again.
    assert [name for _, name in logged(log)] == ["a.bin", "b.bin", "b.bin"]
    assert second[0] is first[0]
    assert first_bad == second_bad == [BadFile(1, "b.bin", "corrupt (bad)")]


def test_the_cache_is_keyed_by_the_resolved_path(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    decode = functools.partial(logged_decode, log)
    write(tmp_path / "sub" / "a.bin", b"aa")
    monkeypatch.chdir(tmp_path)
    spellings = ["sub/a.bin", "./sub/../sub/a.bin", str(tmp_path / "sub" / "a.bin")]
    table = read_table(pd.DataFrame({"image": spellings}))

    read_files(table.frame["image"].iloc[:1], table, decode, key="k", workers=0)
    results, _ = read_files(table.frame["image"], table, decode, key="k", workers=0)

    assert len(logged(log)) == 1
    assert results[0] is results[1] is results[2]


def test_a_changed_file_is_decoded_again(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    decode = functools.partial(logged_decode, log)
    path = write(tmp_path / "a.bin", b"aa")
    monkeypatch.chdir(tmp_path)
    table = read_table(pd.DataFrame({"image": ["a.bin"]}))
    column = table.frame["image"]

    assert decoded(read_files(column, table, decode, key="k", workers=0)[0]) == [b"aa"]

    path.write_bytes(b"ccc")  # a new size
    assert decoded(read_files(column, table, decode, key="k", workers=0)[0]) == [b"ccc"]

    mtime = path.stat().st_mtime_ns
    path.write_bytes(b"ddd")  # the same size: only the modification time tells
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    assert decoded(read_files(column, table, decode, key="k", workers=0)[0]) == [b"ddd"]

    assert len(logged(log)) == 3


def test_a_different_key_is_decoded_again(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    decode = functools.partial(logged_decode, log)
    write(tmp_path / "a.bin", b"aa")
    monkeypatch.chdir(tmp_path)
    table = read_table(pd.DataFrame({"image": ["a.bin"]}))

    read_files(table.frame["image"], table, decode, key="size=32", workers=0)
    read_files(table.frame["image"], table, decode, key="size=64", workers=0)
    read_files(table.frame["image"], table, decode, key="size=32", workers=0)

    assert len(logged(log)) == 2


def test_decoded_arrays_are_read_only(tmp_path, monkeypatch):
    write(tmp_path / "a.bin", b"aa")
    monkeypatch.chdir(tmp_path)
    table = read_table(pd.DataFrame({"image": ["a.bin"]}))

    first = read_files(table.frame["image"], table, decode_bytes, key="k", workers=0)[0][0]
    second = read_files(table.frame["image"], table, decode_bytes, key="k", workers=0)[0][0]

    for array in (first, second):
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 7
    assert second.tolist() == [ord("a"), ord("a")]


def test_decode_cache_evicts_the_least_recently_used_beyond_its_budget():
    cache = DecodeCache(max_bytes=300)
    arrays = {name: np.full(100, index, dtype=np.uint8) for index, name in enumerate("abcd")}
    for name in "abc":
        cache.put((name,), arrays[name])
    assert cache.bytes == 300

    assert cache.get(("a",)) is arrays["a"]  # "a" is now the most recently used
    cache.put(("d",), arrays["d"])

    assert cache.get(("b",)) is None
    assert [cache.get((name,)) is arrays[name] for name in "acd"] == [True, True, True]
    assert cache.bytes == 300

    cache.put(("e",), np.zeros(250, dtype=np.uint8))  # needs room of three of them
    assert [cache.get((name,)) for name in "acd"] == [None, None, None]
    assert cache.get(("e",)) is not None
    assert cache.bytes == 250


def test_decode_cache_refuses_an_array_bigger_than_its_budget():
    cache = DecodeCache(max_bytes=100)
    small = np.zeros(10, dtype=np.uint8)
    cache.put(("small",), small)

    big = np.zeros(101, dtype=np.uint8)
    cache.put(("big",), big)

    assert cache.get(("big",)) is None
    assert cache.get(("small",)) is small  # nothing was evicted for it
    assert cache.bytes == 10
    assert big.flags.writeable  # not shared, so left as the caller's own


def test_decode_cache_makes_its_arrays_read_only_and_clears():
    cache = DecodeCache(max_bytes=1000)
    array = np.arange(4.0)
    cache.put(("x",), array)
    assert not cache.get(("x",)).flags.writeable

    cache.clear()
    assert cache.get(("x",)) is None
    assert cache.bytes == 0


# --- worker processes ---------------------------------------------------------------------


def test_decoding_in_workers_gives_the_same_arrays_and_bad_files(tmp_path, monkeypatch):
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)  # _decode_all sets it
    log = tmp_path / "calls.log"
    decode = functools.partial(logged_decode, log)
    names = []
    for index in range(18):
        name = f"f{index:02d}.bin"
        names.append(name)
        if index == 7:
            continue  # missing
        write(tmp_path / name, b"bad" if index in (3, 12) else bytes([index]) * (index + 1))
    names.insert(5, "")  # a missing cell among them
    monkeypatch.chdir(tmp_path)
    table = read_table(pd.DataFrame({"image": names}))

    in_process, in_process_bad = read_files(table.frame["image"], table, decode, key="k", workers=0)
    files.CACHE.clear()
    log.unlink()
    in_workers, in_workers_bad = read_files(table.frame["image"], table, decode, key="k", workers=2)

    assert decoded(in_workers) == decoded(in_process)
    assert all(a is None or a.dtype == np.uint8 for a in in_workers)
    assert in_workers_bad == in_process_bad
    assert [(b.position, b.path, b.reason) for b in in_workers_bad] == [
        (3, "f03.bin", "corrupt (bad)"),
        (8, "f07.bin", "file not found"),
        (13, "f12.bin", "corrupt (bad)"),
    ]
    pids = {pid for pid, _ in logged(log)}
    assert len(logged(log)) == 17  # every file on disk, once
    assert os.getpid() not in pids  # decoded in the workers, not here


def test_decode_workers_is_none_for_few_files():
    assert decode_workers(0) == 0
    assert decode_workers(WORKER_MIN_FILES - 1) == 0
    expected = min(4, os.cpu_count() or 1, WORKER_MIN_FILES // 8)
    assert decode_workers(WORKER_MIN_FILES) == expected >= 1


def test_decode_workers_honours_the_environment(monkeypatch):
    monkeypatch.setenv("DEEPSTRATA_DECODE_WORKERS", "3")
    assert decode_workers(1000) == 3
    assert decode_workers(24) == 3  # below WORKER_MIN_FILES: the override still counts
    assert decode_workers(16) == 2  # but never more than count // 8
    assert decode_workers(7) == 0
    assert decode_workers(1000, workers=1) == 1  # an explicit count wins

    monkeypatch.setenv("DEEPSTRATA_DECODE_WORKERS", "0")
    assert decode_workers(10_000) == 0


def test_decode_workers_never_exceeds_an_eighth_of_the_files():
    for count in (0, 7, 8, 15, 16, 40, 1000):
        assert decode_workers(count, workers=16) == min(16, count // 8)
    assert decode_workers(100, workers=-2) == 0


def test_a_decode_worker_count_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setenv("DEEPSTRATA_DECODE_WORKERS", "auto")
    with pytest.raises(ConfigError, match="DEEPSTRATA_DECODE_WORKERS: expected a whole number"):
        decode_workers(1000)


def test_tiny_files_decode_in_this_process_and_photos_in_workers(monkeypatch):
    """bench/image_pipeline.py: workers lose on 100-byte PNGs and win on 20 kB JPEGs."""
    monkeypatch.setattr(files, "_usable_cores", lambda: 2)
    assert decode_workers(1_000, mean_bytes=100) == 0
    assert decode_workers(1_000, mean_bytes=20_000) == 2
    assert decode_workers(WORKER_MIN_FILES - 1, mean_bytes=20_000) == 0

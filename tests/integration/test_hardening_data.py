"""What an outside test found in how fit reads data (issue 24, points 9, 10, 12 and 13):
each case as the user met it, through the command line where they used it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.errors import DataError, DataWarning

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]
FAST = ("--max-epochs", "2", "--quiet")


def test_a_nested_parquet_column_is_named_with_its_type(tmp_path, cli):
    """Point 9: struct and list columns crashed schema inference with TypeError."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=30), "y": ["a", "b"] * 15})
    frame["meta"] = [{"source": "web", "score": float(i)} for i in range(30)]
    frame["tags"] = [["new", "red"] if i % 2 else ["old"] for i in range(30)]
    data = tmp_path / "nested.parquet"
    frame.to_parquet(data)
    line = cli("fit", data, "--target", "y", "--out", tmp_path / "bundle", *FAST).error_line()
    assert "column 'meta'" in line and "struct values" in line and "--ignore meta" in line
    line = cli("fit", data, "--target", "y", "--ignore", "meta", "--out", tmp_path / "b", *FAST)
    assert "column 'tags'" in line.error_line() and "list values" in line.error_line()
    result = cli(
        "fit",
        data,
        "--target",
        "y",
        "--ignore",
        "meta",
        "--ignore",
        "tags",
        "--out",
        tmp_path / "ok",
        *FAST,
    )
    assert (tmp_path / "ok" / "manifest.json").is_file(), result.err
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "b").exists()


def test_a_three_row_table_is_trained_with_a_warning_saying_why_it_is_weak(tmp_path, cli):
    """Point 10: 3 rows trained on 2, validated on 1, exit 0 with no warning."""
    data = tmp_path / "tiny.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.5, 2.5, 3.5]}).to_csv(data, index=False)
    result = cli("fit", data, "--target", "y", "--out", tmp_path / "bundle", *FAST)
    assert "only 3 labelled rows" in result.err
    assert "held out for validation" in result.err and "--folds 5" in result.err


def test_rare_classes_are_named_in_a_warning():
    frame = pd.DataFrame({"x": np.arange(40.0), "y": ["a"] * 19 + ["b"] * 18 + ["c"] * 3})
    with pytest.warns(DataWarning, match=r"class 'c' \(3\) of 'y' has fewer than 5 rows"):
        deepstrata.fit(frame, target="y", max_epochs=1, progress=False)


def test_paths_may_be_confined_to_the_table_s_folder(tmp_path, monkeypatch):
    """Point 12: image paths outside the table's folder were read though the README said
    paths are relative to it. They still are by default (documented); with
    DEEPSTRATA_FILES_INSIDE_TABLE=1 an absolute path or a '..' out of the folder is a bad
    file, named with its row."""
    from PIL import Image

    from deepstrata.data.sources import read_table
    from deepstrata.preprocess.image import ImagePreprocessor

    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), "red").save(outside)
    folder = tmp_path / "table"
    folder.mkdir()
    Image.new("RGB", (8, 8), "blue").save(folder / "inside.png")
    data = folder / "photos.csv"
    pd.DataFrame({"photo": ["inside.png", "../secret.png", str(outside)]}).to_csv(data, index=False)
    table = read_table(data)
    column = table.frame["photo"]
    assert ImagePreprocessor(size=8).bad_files(column, table) == []  # the default: read
    monkeypatch.setenv("DEEPSTRATA_FILES_INSIDE_TABLE", "1")
    bad = ImagePreprocessor(size=8).bad_files(column, table)
    assert [b.position for b in bad] == [1, 2]
    assert all("outside the table's folder" in b.reason for b in bad)
    with pytest.raises(DataError, match="2 images could not be read"):
        ImagePreprocessor(size=8).fit(column, table)


def test_a_wide_table_prints_no_fragmentation_warning():
    """Point 13: pandas' 'DataFrame is highly fragmented' PerformanceWarning on 5,000
    columns, raised by the report's record of the validation rows."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 1500)), columns=[f"c{i}" for i in range(1500)])
    frame["y"] = ["a", "b"] * 20
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        model = deepstrata.fit(frame, target="y", max_epochs=1, hidden_dims=[4], progress=False)
        model.predictions(frame.head(5), proba=True)


def test_a_lone_surrogate_in_json_lines_is_named_as_such(tmp_path, cli):
    """Point 13: a lone surrogate (\\ud800) in a JSON string was reported misleadingly."""
    data = tmp_path / "rows.jsonl"
    data.write_text('{"x": 1, "y": "a"}\n{"x": 2, "y": "b\\ud800"}\n', encoding="utf-8")
    line = cli("inspect", data, "--target", "y").error_line()
    assert "line 2" in line and "column 'y'" in line and "lone surrogate \\ud800" in line


def test_a_lone_surrogate_in_a_json_lines_key_is_named_too(tmp_path, cli):
    """Point 13: in a key, the surrogate ended in a UnicodeEncodeError traceback."""
    data = tmp_path / "rows.jsonl"
    data.write_text('{"x": 1, "y": "a"}\n{"x\\udc00": 2, "y": "b"}\n', encoding="utf-8")
    line = cli("inspect", data, "--target", "y").error_line()
    assert "line 2" in line and "the key 'x\\udc00'" in line and "lone surrogate \\udc00" in line

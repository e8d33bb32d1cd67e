"""``predict`` streamed over a Parquet folder, in one process and in two (``--nproc``)."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepstrata.cli.launch import cores
from deepstrata.data.stream import ParquetStream
from deepstrata.model.streamed import RowProgress, shares
from tests.conftest import make_churn_frame, torch_threads


def write_folder(path, frame, files=3, row_group_size=16):
    """``frame`` split over ``files`` Parquet files of several row groups each."""
    path.mkdir()
    size = -(-len(frame) // files)
    for index in range(files):
        part = frame.iloc[index * size : (index + 1) * size]
        table = pa.Table.from_pandas(part, preserve_index=False)
        pq.write_table(table, path / f"{index}.parquet", row_group_size=row_group_size)
    return path


@pytest.fixture
def rows(tmp_path):
    """120 rows in 3 files of 3 row groups (16, 16, 8 rows); tenure as text, so that one
    value can be made wrong without changing the column's type."""
    frame = make_churn_frame(120).drop(columns="churned")
    frame["tenure"] = frame["tenure"].astype(str)
    return write_folder(tmp_path / "rows", frame)


def test_two_processes_predict_exactly_what_one_does(rows, tmp_path, fitted_churn_bundle, cli):
    out = tmp_path / "out"
    common = ["predict", fitted_churn_bundle, rows, "--keep", "customer_id", "--proba"]
    # float32 sums depend on torch's thread count: one process runs on a worker's share
    with torch_threads(max(1, cores() // 2)):
        for suffix in ("parquet", "csv"):
            result = cli(*common, "-o", out / f"one.{suffix}")
            assert result.code == 0, result.err
    for suffix in ("parquet", "csv"):
        result = cli(*common, "-o", out / f"two.{suffix}", "--nproc", 2, "--oversubscribe")
        assert result.code == 0, result.err
        assert "120 predictions written" in result.err and "2 processes" in result.err
    one, two = pd.read_parquet(out / "one.parquet"), pd.read_parquet(out / "two.parquet")
    assert two["customer_id"].tolist() == [f"C{i:04d}" for i in range(120)]  # input order
    pd.testing.assert_frame_equal(two, one, check_exact=True)
    assert (out / "two.csv").read_text() == (out / "one.csv").read_text()
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "two.csv"), pd.read_csv(io.StringIO(one.to_csv(index=False)))
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "one.csv",
        "one.parquet",
        "two.csv",
        "two.parquet",
    ]  # no part left beside them


def test_a_bad_value_in_the_third_file_names_it_and_leaves_nothing(
    rows, tmp_path, fitted_churn_bundle, cli
):
    bad = rows / "2.parquet"
    frame = pd.read_parquet(bad)
    frame.loc[20, "tenure"] = "abc"  # row 21 of the file: its second row group
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), bad, row_group_size=16)
    out = tmp_path / "out"
    for nproc in (1, 2):
        result = cli(
            "predict", fitted_churn_bundle, rows, "-o", out / "p.parquet",
            "--nproc", nproc, "--oversubscribe",
        )  # fmt: skip
        line = result.error_line()
        assert f"{bad}, row 21, column 'tenure'" in line, line
        assert "row group 1 (rows 17-32 of this file)" in line and "'abc'" in line, line
        assert ("process 2 of 2" in line) == (nproc == 2), line
        assert not out.exists() or list(out.iterdir()) == []  # no output, no part


def test_refused_before_any_work(rows, tmp_path, fitted_churn_bundle, churn_csv, cli):
    out = tmp_path / "p.parquet"
    too_many = cli("predict", fitted_churn_bundle, rows, "-o", out, "--nproc", cores() + 1)
    assert "--nproc" in too_many.error_line() and "--oversubscribe" in too_many.error_line()
    two = ["--nproc", "2", "--oversubscribe"]
    assert "stdout" in cli("predict", fitted_churn_bundle, rows, *two).error_line()
    json_out = cli("predict", fitted_churn_bundle, rows, "-o", tmp_path / "p.json", *two)
    assert "--nproc" in json_out.error_line() and "'p.json'" in json_out.error_line()
    csv_in = cli("predict", fitted_churn_bundle, churn_csv, "-o", out, *two)
    assert "not Parquet" in csv_in.error_line()
    keep = cli("predict", fitted_churn_bundle, rows, "-o", out, "--keep", "nope", *two)
    assert "column 'nope'" in keep.error_line()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["churn.csv", "rows"]


def test_shares_are_contiguous_balanced_and_never_empty(rows):
    stream = ParquetStream(rows)  # 9 row groups of 16, 16 and 8 rows
    assert shares(stream, 1) == [(0, 9)]
    assert shares(stream, 2) == [(0, 4), (4, 9)]  # 56 and 64 rows
    assert shares(stream, 20) == [(index, index + 1) for index in range(9)]
    for nproc in range(1, 10):
        ranges = shares(stream, nproc)
        assert ranges[0][0] == 0 and ranges[-1][1] == 9 and all(a < b for a, b in ranges)
        assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))


def test_progress_counts_rows_on_stderr():
    lines = io.StringIO()
    progress = RowProgress(1000, interval=0.0, stream=lines)
    progress.add(250)
    progress.add(750)
    shown = lines.getvalue().splitlines()
    assert shown[0].startswith("predicted 250/1,000 rows (25%)")
    assert shown[1].startswith("predicted 1,000/1,000 rows (100%)")
    quiet = io.StringIO()
    RowProgress(10, enabled=False, interval=0.0, stream=quiet).add(10)
    assert quiet.getvalue() == ""


def test_a_worker_that_dies_without_a_word_is_named_with_its_rows(rows):
    from types import SimpleNamespace

    from deepstrata.errors import DistributedError
    from deepstrata.model.streamed import _check_alive

    stream = ParquetStream(rows)
    workers = [SimpleNamespace(exitcode=None), SimpleNamespace(exitcode=-9)]
    args = [(0, "b", "d", (0, 4)), (1, "b", "d", (4, 9))]
    with pytest.raises(DistributedError, match=r"process 2 of 2 was killed by signal 9 .*4-8"):
        _check_alive(workers, {0, 1}, args, stream)
    _check_alive(workers, {0}, args, stream)  # the living one, and one already done: fine

"""Parquet streamed by row group: the type check across files, the reservoir sample, the
seeded two-stage shuffle (reproducible, resumable, sharded) and ``predict`` streamed to
Parquet. The memory-capped run is in tests/integration/test_big_parquet.py."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepstrata.data.stream import ParquetStream, is_parquet
from deepstrata.errors import DataError
from tests.conftest import make_churn_frame


def folder(tmp_path, files=4, rows=250, group=50):
    path = tmp_path / "big"
    path.mkdir()
    for index in range(files):
        start = index * rows
        frame = pd.DataFrame({"id": np.arange(start, start + rows), "x": np.arange(rows) * 0.5})
        pq.write_table(
            pa.Table.from_pandas(frame), path / f"part-{index}.parquet", row_group_size=group
        )
    return path


def test_row_groups_of_a_folder(tmp_path):
    stream = ParquetStream(folder(tmp_path))
    assert stream.rows == 1000 and len(stream.pieces) == 20 and is_parquet(tmp_path / "big")
    assert pd.concat(stream.chunks())["id"].tolist() == list(range(1000))


def test_files_that_disagree_on_a_column_type_name_the_file_and_the_column(tmp_path):
    path = folder(tmp_path, files=2)
    pq.write_table(pa.table({"id": ["a", "b"], "x": [1.0, 2.0]}), path / "part-9.parquet")
    with pytest.raises(DataError) as error:
        ParquetStream(path)
    assert "part-9.parquet" in str(error.value) and "'id'" in str(error.value)
    assert "string here but int64" in str(error.value)


def test_the_reservoir_sample_is_bounded_uniform_and_seeded(tmp_path):
    stream = ParquetStream(folder(tmp_path))
    sample = stream.sample(200, seed=3)
    assert len(sample) == 200 and sample["id"].is_unique
    assert sample["id"].tolist() == stream.sample(200, seed=3)["id"].tolist()
    assert 350 < sample["id"].mean() < 650  # drawn from every file, not the first 200 rows
    assert len(stream.sample(5000)) == 1000


def flat(batches) -> list:
    return [row for batch in batches for row in batch]


def test_batches_are_seeded_resumable_and_cover_every_row_once(tmp_path):
    stream = ParquetStream(folder(tmp_path))
    epoch = [b["id"].tolist() for b in stream.batches(64, seed=1, epoch=2, buffer_rows=200)]
    assert sorted(flat(epoch)) == list(range(1000))
    assert flat(epoch) != list(range(1000))  # shuffled
    again = [b["id"].tolist() for b in stream.batches(64, seed=1, epoch=2, buffer_rows=200)]
    assert again == epoch
    resumed = [
        b["id"].tolist() for b in stream.batches(64, seed=1, epoch=2, buffer_rows=200, skip=5)
    ]
    assert resumed == epoch[5:]
    other = [b["id"].tolist() for b in stream.batches(64, seed=1, epoch=3, buffer_rows=200)]
    assert other != epoch
    shards = [
        flat(b["id"].tolist() for b in stream.batches(64, seed=1, epoch=2, rank=r, world=2))
        for r in range(2)
    ]
    assert sorted(shards[0] + shards[1]) == list(range(1000)) and not set(shards[0]) & set(
        shards[1]
    )


def test_predict_streams_parquet_in_and_out(tmp_path, fitted_churn_bundle, cli):
    path = tmp_path / "rows"
    path.mkdir()
    frame = make_churn_frame(120).drop(columns="churned")
    for index in range(3):
        part = frame.iloc[index * 40 : (index + 1) * 40]
        pq.write_table(
            pa.Table.from_pandas(part, preserve_index=False),
            path / f"{index}.parquet",
            row_group_size=16,
        )
    out = tmp_path / "preds.parquet"
    result = cli(
        "predict", fitted_churn_bundle, path, "-o", out, "--keep", "customer_id", "--proba"
    )
    assert result.code == 0, result.err
    assert "120 predictions written" in result.err and "(streamed)" in result.err
    streamed = pd.read_parquet(out)
    from deepstrata import api

    expected = api.load(fitted_churn_bundle).predictions(frame, proba=True, keep=["customer_id"])
    pd.testing.assert_frame_equal(streamed, expected, check_dtype=False)

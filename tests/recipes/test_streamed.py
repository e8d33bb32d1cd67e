"""fit on a folder of Parquet files: streamed, preprocessors fitted on the sample,
validation held out of it; what streaming cannot do is refused before any work."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import deepstrata
from deepstrata.errors import ConfigError


@pytest.fixture
def parts(tmp_path):
    path = tmp_path / "parts"
    path.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        x = rng.normal(size=(200, 3))
        frame = pd.DataFrame(x, columns=["a", "b", "c"])
        frame["kind"] = rng.choice(["p", "q"], 200)
        frame["y"] = x @ [1.0, -2.0, 0.5] + (frame["kind"] == "p")
        pq.write_table(pa.Table.from_pandas(frame), path / f"{index}.parquet", row_group_size=50)
    return path


def test_a_parquet_folder_is_streamed(parts, tmp_path):
    model = deepstrata.fit(
        parts,
        target="y",
        max_epochs=2,
        sample_rows=300,
        batch_size=32,
        learning_rate=3e-3,
        hidden_dims=[16],
        progress=False,
    )
    assert model.metrics["streamed"] == {
        "files": 3,
        "row_groups": 12,
        "sample_rows": 300,
        "shuffle_buffer": 65536,
    }
    assert model.metrics["rows"] == {"train": 540, "validation": 60}
    assert len(model.metrics["history"]["epochs"]) == 2
    assert len(model.predictions(pd.read_parquet(parts))) == 600


def test_what_streaming_cannot_do_is_refused(parts, tmp_path):
    with pytest.raises(ConfigError, match="--folds"):
        deepstrata.fit(parts, target="y", folds=3, progress=False)
    with pytest.raises(ConfigError, match="--ensemble"):
        deepstrata.fit(parts, target="y", ensemble=True, progress=False)
    with pytest.raises(ConfigError, match="--adversarial"):  # was a RuntimeError mid-fit
        deepstrata.fit(parts, target="y", adversarial="fgsm", epsilon=0.05, progress=False)
    csv = tmp_path / "t.csv"
    pd.read_parquet(parts).to_csv(csv, index=False)
    with pytest.raises(ConfigError, match="--stream"):
        deepstrata.fit(csv, target="y", stream=True, progress=False)

"""Model theft: fidelity rises with the queries and falls when the API answers labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepstrata.attack.extraction import made_up_rows, parse_queries, steal
from deepstrata.errors import ConfigError, DataError
from tests.attack.conftest import QUICK, noisy_frame
from tests.conftest import torch_threads


@pytest.fixture(scope="module")
def victim():
    import deepstrata

    with torch_threads(1):
        return deepstrata.fit(
            noisy_frame(300, seed=3, columns=6), target="y", max_epochs=10, **QUICK
        )


@pytest.fixture(scope="module")
def pool() -> pd.DataFrame:
    return noisy_frame(700, seed=4, columns=6).drop(columns="y")


def test_fidelity_rises_with_queries_and_falls_with_labels(victim, pool):
    with torch_threads(1):
        soft = steal(victim, pool, queries=[10, 400], output="probabilities", epochs=8)
        hard = steal(victim, pool, queries=[10, 400], output="labels", epochs=8)
    few, many = (point["fidelity"] for point in soft["curve"])
    assert many > few + 0.05, soft["curve"]
    assert many > 0.9, soft["curve"]
    assert hard["curve"][1]["fidelity"] < many, (hard["curve"], soft["curve"])
    assert soft["held_out"] == 210 and soft["curve"][1]["real"] == 400


def test_queries_past_the_pool_are_made_up_from_its_columns(victim, pool):
    rows = made_up_rows(pool, 1000, np.random.default_rng(0))
    assert len(rows) == 1000 and list(rows.columns) == list(pool.columns)
    assert set(rows["x0"]) <= set(pool["x0"])  # each column's own values, redrawn
    with torch_threads(1):
        result = steal(victim, pool.iloc[:100], queries=[200], epochs=2)
    assert result["curve"][0]["real"] == 70 and result["curve"][0]["made_up"] == 130


def test_refusals(victim, pool):
    for text in ("", "ten", "1"):
        with pytest.raises(ConfigError, match="--queries"):
            parse_queries(text)
    assert parse_queries("1000, 100,1000") == [100, 1000]
    with pytest.raises(ConfigError, match="--output"):
        steal(victim, pool, queries=[10], output="logits")
    with pytest.raises(DataError, match="x3"):
        steal(victim, pool.drop(columns="x3"), queries=[10])


def test_steal_command(cli, fitted_churn_bundle, tmp_path):
    from tests.conftest import make_churn_frame

    data = tmp_path / "pool.csv"
    make_churn_frame(seed=1).to_csv(data, index=False)
    result = cli("steal", fitted_churn_bundle, data, "--queries", "20,60", "--output", "rounded",
                 "--epochs", "2", "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert '"output": "rounded"' in result.out and '"queries": 60' in result.out
    assert "--output" in cli("steal", fitted_churn_bundle, data, "--output", "x").error_line()

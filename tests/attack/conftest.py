"""Tables and models of the attack tests: a noisy two-class table (labels drawn from a
logistic model, so no model can be right on every row: what a model gets right on its
training rows beyond that, it memorised), fitted once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import torch_threads

QUICK = {
    "progress": False,
    "ensemble": False,
    "learning_rate": 3e-3,
    "schedule": "constant",
    "batch_size": 32,
}


def noisy_frame(rows: int, seed: int, columns: int = 16) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, columns))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(columns)])
    chance = 1 / (1 + np.exp(-(x[:, 0] + 0.5 * x[:, 1])))
    frame["y"] = np.where(rng.random(rows) < chance, "yes", "no")
    return frame


@pytest.fixture(scope="session")
def member_frame() -> pd.DataFrame:
    """60 rows, each twice: the validation split holds copies of training rows, so early
    stopping never stops a network from memorising them."""
    base = noisy_frame(60, seed=1)
    return pd.concat([base, base], ignore_index=True)


@pytest.fixture(scope="session")
def outside_frame() -> pd.DataFrame:
    return noisy_frame(400, seed=2)


@pytest.fixture(scope="session")
def tables(tmp_path_factory, member_frame, outside_frame) -> tuple[Path, Path]:
    """The two frames as CSV files (for the commands)."""
    folder = tmp_path_factory.mktemp("attack-tables")
    member_frame.to_csv(folder / "train.csv", index=False)
    outside_frame.to_csv(folder / "test.csv", index=False)
    return folder / "train.csv", folder / "test.csv"


@pytest.fixture(scope="session")
def memorising_model(member_frame):
    """Wide, no dropout, no weight decay, 40 epochs on 48 distinct rows: it memorises."""
    import deepstrata

    with torch_threads(1):
        return deepstrata.fit(
            member_frame, target="y", hidden_dims=[128, 128], dropout=0.0, weight_decay=0.0,
            max_epochs=40, patience=40, calibrate=False, **QUICK,
        )  # fmt: skip


@pytest.fixture(scope="session")
def simple_model(member_frame):
    """One hidden unit, strong weight decay, 5 epochs: too small to memorise."""
    import deepstrata

    with torch_threads(1):
        return deepstrata.fit(
            member_frame, target="y", hidden_dims=[1], dropout=0.0, weight_decay=0.5,
            max_epochs=5, **QUICK,
        )  # fmt: skip

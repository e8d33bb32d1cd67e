"""Models the explanation tests share, fitted once per session on one thread.

``two_column_frame``: five inputs (four numbers and a category) and a target that depends
on ``x1`` and ``x2`` only (regression: 2 x1 + 1.5 x2; classification: whether x1 + x2 > 0);
``n1``, ``n2`` and ``c1`` are noise the model should learn to ignore. ``tones``: eight
clips of a low or a high tone and an audio model fit on them for one epoch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepstrata
from tests.conftest import torch_threads

FIT = {"max_epochs": 15, "progress": False, "seed": 0, "learning_rate": 3e-3}


def two_column_frame(rows: int = 300, seed: int = 0, *, classes: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(0, 1, rows),
            "x2": rng.normal(0, 1, rows),
            "n1": rng.normal(0, 1, rows),
            "n2": rng.normal(0, 1, rows),
            "c1": rng.choice(["a", "b", "c"], rows),
        }
    )
    if classes:
        frame["y"] = np.where(frame.x1 + frame.x2 > 0, "yes", "no")
    else:
        frame["y"] = 2 * frame.x1 + 1.5 * frame.x2 + rng.normal(0, 0.05, rows)
    return frame


def away_from_baseline(frame: pd.DataFrame, rows: int = 60) -> pd.DataFrame:
    """Rows whose x1 and x2 are both away from their baseline (the training median, ~0):
    at the baseline a column moves nothing, and any faithful attribution of it is ~0."""
    far = frame[(frame.x1.abs() > 0.5) & (frame.x2.abs() > 0.5)]
    return far.drop(columns="y").head(rows).reset_index(drop=True)


@pytest.fixture(scope="session")
def regression_model():
    """A network alone (integrated gradients apply)."""
    with torch_threads(1):
        return deepstrata.fit(two_column_frame(), target="y", ensemble=False, **FIT)


@pytest.fixture(scope="session")
def ensemble_model():
    """The default on a table: the network and the best classical model (a linear one wins
    here), or the one kept: KernelSHAP and the others must explain either."""
    with torch_threads(1):
        return deepstrata.fit(two_column_frame(), target="y", **FIT)


@pytest.fixture(scope="session")
def classifier_model():
    with torch_threads(1):
        frame = two_column_frame(classes=True)
        return deepstrata.fit(frame, target="y", ensemble=False, **FIT)


FILLER = [  # reviews' filler words
    "the",
    "a",
    "film",
    "plot",
    "actor",
    "scene",
    "story",
    "music",
    "long",
    "short",
    "day",
    "night",
    "city",
    "old",
    "new",
]


def reviews(rows: int, seed: int) -> pd.DataFrame:
    """Six to ten filler words with 'excellent' (class good) or 'awful' (bad) among them."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for index in range(rows):
        words = list(rng.choice(FILLER, rng.integers(6, 11)))
        good = index % 2 == 0
        words.insert(int(rng.integers(0, len(words) + 1)), "excellent" if good else "awful")
        texts.append(" ".join(words))
        labels.append("good" if good else "bad")
    return pd.DataFrame({"review": texts, "stars": rng.normal(0, 1, rows), "label": labels})


@pytest.fixture(scope="session")
def transformer_reviews():
    """A one-layer transformer over reviews(): the attention and token IG tests share it."""
    with torch_threads(1):
        return deepstrata.fit(
            reviews(120, seed=0), target="label", ensemble=False, max_epochs=6, progress=False,
            seed=0, strategy="scratch", text_layers=1, text_width=16, learning_rate=3e-3,
        )  # fmt: skip


@pytest.fixture(scope="session")
def tones(tmp_path_factory):
    """(an audio model fit one epoch on 8 low or high tones, their frame with target ``y``)."""
    soundfile = pytest.importorskip("soundfile")
    folder = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    paths = []
    for index in range(8):  # low or high tones
        tone = np.sin(2 * np.pi * (300 if index % 2 else 2000) * np.arange(4000) / 8000)
        path = folder / f"clip{index}.wav"
        soundfile.write(path, (0.5 * tone + rng.normal(0, 0.05, 4000)).astype(np.float32), 8000)
        paths.append(str(path))
    frame = pd.DataFrame({"clip": paths, "y": ["high", "low"] * 4})
    with torch_threads(1):
        model = deepstrata.fit(
            frame, target="y", columns={"clip": "audio"}, ensemble=False, max_epochs=1,
            progress=False, seed=0, sample_rate=8000, audio_seconds=0.5, audio_mels=16,
            audio_width=4, audio_depth=1, decode_workers=0,
        )  # fmt: skip
    return model, frame

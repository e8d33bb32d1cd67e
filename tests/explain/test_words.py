"""Words: on texts whose class one word decides, that word gets the top attribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.explain import explain
from deepstrata.explain.output import write_folder
from tests.conftest import torch_threads

pytest.importorskip("shap", reason="the explain extra (shap) is not installed")
FILLER = [
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


@pytest.fixture(scope="module")
def review_model():
    with torch_threads(1):
        return deepstrata.fit(
            reviews(120, seed=0), target="label", ensemble=False, max_epochs=8, progress=False,
            seed=0, text_encoder="bag", learning_rate=3e-3, strategy="scratch",
        )  # fmt: skip


def test_the_deciding_word_gets_the_top_attribution(review_model, tmp_path):
    rows = reviews(12, seed=1)
    with torch_threads(1):
        assert review_model.evaluate(rows)["accuracy"] == 1.0
        explanation = explain(review_model, rows.drop(columns="label"), method="exact")
    per_row = explanation.words["review"]
    tops = [entry["words"][int(np.argmax(entry["values"]))] for entry in per_row]
    assert tops == ["excellent" if i % 2 == 0 else "awful" for i in range(12)]
    # the words sum to the prediction's change from the empty text
    for index, entry in enumerate(per_row):
        total = entry["base_value"] + sum(entry["values"])
        assert total == pytest.approx(explanation.predictions[index], abs=1e-6)
    folder = write_folder(explanation, tmp_path / "out", title="Why?")
    words = pd.read_csv(folder / "words.csv")
    assert set(words.columns) == {"row", "column", "position", "word", "attribution"}
    assert "Which words in review" in (folder / "explain.html").read_text()

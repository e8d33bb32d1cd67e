"""Words: on texts whose class one word decides, that word gets the top attribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.explain import explain
from deepstrata.explain.output import write_folder
from tests.conftest import torch_threads
from tests.explain.conftest import reviews

pytest.importorskip("shap", reason="the explain extra (shap) is not installed")


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


def test_attention_rollout_weighs_every_word_of_a_transformer_text(transformer_reviews):
    from deepstrata.explain.attention import relevance_sums

    with torch_threads(1):
        rows = reviews(6, seed=2).drop(columns="label")
        explanation = explain(transformer_reviews, rows, method="attention", faithfulness=False)
    assert explanation.method == "ig"  # the columns as auto explains them
    assert explanation.settings["words"].startswith("attention rollout")
    per_row = explanation.words["review"]
    for entry, text in zip(per_row, rows.review):
        assert " ".join(entry["words"]) == text  # word pieces merged back into the words
    np.testing.assert_allclose(relevance_sums(per_row), 1.0, atol=1e-5)


def test_rollout_follows_where_the_attention_goes():
    import torch

    from deepstrata.explain.attention import rollout

    real = torch.tensor([[True, True, True, False]])
    to_first = torch.zeros(1, 2, 4, 4)
    to_first[..., 0] = 1.0  # every token attends to the first
    relevance = rollout([to_first, to_first], real)[0]
    assert relevance[0] > 0.7 and relevance[3] == 0  # the first dominates; padding gets none
    assert float(relevance.sum()) == pytest.approx(1.0)

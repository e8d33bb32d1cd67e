"""Integrated gradients per token: the deciding word gets the top attribution; word
pieces merge into words; the words' faithfulness is measured by their deletion curve."""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.explain import explain
from deepstrata.explain.tokens import merge_pieces
from tests.conftest import torch_threads
from tests.explain.conftest import reviews

pytest.importorskip("captum", reason="the explain extra (captum) is not installed")


def test_the_deciding_word_gets_the_top_token_attribution(transformer_reviews):
    rows = reviews(12, seed=1)
    with torch_threads(1):
        assert transformer_reviews.evaluate(rows)["accuracy"] == 1.0
        explanation = explain(transformer_reviews, rows.drop(columns="label"), method="ig")
    assert explanation.settings["words"].startswith("integrated gradients per token")
    per_row = explanation.words["review"]
    tops = [entry["words"][int(np.argmax(entry["values"]))] for entry in per_row]
    assert tops == ["excellent" if i % 2 == 0 else "awful" for i in range(12)]
    for entry, text in zip(per_row, rows.review):
        assert " ".join(entry["words"]) == text
    assert explanation.settings["words_completeness_gap"]["review"] < 0.05
    faith = explanation.faithfulness  # dropping the top words first beats a random order
    assert faith["words_deletion_area:review"] < faith["words_deletion_area_random:review"]


def test_pieces_merge_into_words_and_special_tokens_drop():
    words, values = merge_pieces(
        ["[CLS]", "ex", "##cell", "##ent", "day", "[SEP]"], [5, 1, 2, 3, 4, 5]
    )
    assert words == ["excellent", "day"] and values == [6.0, 4.0]


def test_attention_names_what_it_needs_before_any_work(regression_model):
    from deepstrata.errors import ConfigError
    from tests.explain.conftest import two_column_frame

    with pytest.raises(ConfigError, match="attention needs a text column") as error:
        explain(regression_model, two_column_frame().head(3), method="attention")
    assert error.value.option == "--method"

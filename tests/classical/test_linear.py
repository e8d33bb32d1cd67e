import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from deepstrata.classical.linear import LinearHead
from tests.classical.conftest import load_split


def standardised(head: LinearHead, features: np.ndarray) -> np.ndarray:
    return (features - head.mean_) / head.scale_


def test_classification_outputs_are_logistic_regressions_decision_function():
    for task in ("binary", "multiclass"):
        split = load_split(task)
        head = LinearHead(task=task, num_classes=split.num_classes).fit(*split.train)
        reference = LogisticRegression(C=1.0, max_iter=5000)
        reference.fit(standardised(head, split.train[0]), split.train[1])
        test = split.test[0]
        expected = reference.decision_function(standardised(head, test))
        np.testing.assert_allclose(head.outputs(test), expected, rtol=1e-9, atol=1e-9)


def test_regression_outputs_are_ridges_predictions():
    split = load_split("regression")
    head = LinearHead(task="regression").fit(*split.train)
    reference = Ridge(alpha=1.0).fit(standardised(head, split.train[0]), split.train[1])
    test = split.test[0]
    expected = reference.predict(standardised(head, test))
    np.testing.assert_allclose(head.outputs(test), expected, rtol=1e-9, atol=1e-9)


def test_standardisation_uses_training_columns_and_leaves_constant_columns_alone():
    split = load_split("binary")
    features, target = split.train
    with_constant = np.column_stack([features, np.full(len(features), 0.1)])
    head = LinearHead(task="binary").fit(with_constant, target)
    np.testing.assert_allclose(head.mean_[:-1], features.mean(axis=0))
    np.testing.assert_allclose(head.scale_[:-1], features.std(axis=0))
    assert head.scale_[-1] == 1.0
    assert np.isfinite(head.outputs(np.column_stack([features, np.full(len(features), 5.0)]))).all()


def test_two_classes_of_a_multiclass_target_give_the_binary_probabilities():
    # A fold can hold two of K classes; their scores must still be softmax-ready logits.
    split = load_split("multiclass")
    features, target = split.train
    keep = target != 1
    head = LinearHead(task="multiclass", num_classes=3).fit(features[keep], target[keep])
    binary = LinearHead(task="binary").fit(features[keep], (target[keep] == 2).astype(np.int64))
    scores = head.outputs(split.test[0])
    softmax = np.exp(scores - scores.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    sigmoid = 1 / (1 + np.exp(-binary.outputs(split.test[0])))
    np.testing.assert_allclose(softmax[:, 2], sigmoid, rtol=1e-6, atol=1e-9)
    assert softmax[:, 1].max() < 1e-9

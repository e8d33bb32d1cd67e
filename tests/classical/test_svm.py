import numpy as np
import pytest
from sklearn.svm import SVC, SVR

from deepstrata.classical import svm
from deepstrata.classical.svm import SVMHead
from deepstrata.errors import ConfigError
from tests.classical.conftest import load_split


def standardised(head: SVMHead, features: np.ndarray) -> np.ndarray:
    return (features - head.mean_) / head.scale_


def test_binary_outputs_are_svcs_decision_function():
    split = load_split("binary")
    head = SVMHead(task="binary").fit(*split.train)
    x = standardised(head, split.train[0])
    assert head.gamma_ == pytest.approx(1 / (x.shape[1] * x.var()))
    reference = SVC(kernel="rbf", C=1.0, gamma="scale").fit(x, split.train[1])
    expected = reference.decision_function(standardised(head, split.test[0]))
    np.testing.assert_allclose(head.outputs(split.test[0]), expected, rtol=1e-7, atol=1e-9)


def test_each_multiclass_score_is_a_one_vs_rest_svc():
    split = load_split("multiclass")
    head = SVMHead(task="multiclass", num_classes=3).fit(*split.train)
    x = standardised(head, split.train[0])
    outputs = head.outputs(split.test[0])
    supports = set()
    for label in range(3):
        reference = SVC(kernel="rbf", C=1.0, gamma=head.gamma_)
        reference.fit(x, (split.train[1] == label).astype(np.int64))
        expected = reference.decision_function(standardised(head, split.test[0]))
        np.testing.assert_allclose(outputs[:, label], expected, rtol=1e-7, atol=1e-9)
        supports |= set(reference.support_.tolist())
    # The models share one matrix: the union of their support vectors, each once.
    assert head.support_vectors_.shape == (len(supports), x.shape[1])
    assert head.dual_coef_.shape == (3, len(supports))


def test_regression_outputs_are_svrs_predictions():
    split = load_split("regression")
    head = SVMHead(task="regression").fit(*split.train)
    x = standardised(head, split.train[0])
    reference = SVR(kernel="rbf", C=1.0, gamma="scale", epsilon=0.1).fit(x, split.train[1])
    expected = reference.predict(standardised(head, split.test[0]))
    np.testing.assert_allclose(head.outputs(split.test[0]), expected, rtol=1e-7, atol=1e-9)


def test_outputs_in_chunks_equal_outputs_at_once(monkeypatch):
    split = load_split("binary")
    head = SVMHead(task="binary").fit(*split.train)
    whole = head.outputs(split.test[0])
    monkeypatch.setattr(svm, "_KERNEL_ELEMENTS", 7 * len(head.support_vectors_))  # 7 rows a chunk
    np.testing.assert_allclose(head.outputs(split.test[0]), whole, rtol=1e-12, atol=1e-12)


def test_too_many_rows_is_refused_before_training():
    rows = svm.MAX_ROWS + 1
    features = np.random.default_rng(0).normal(size=(rows, 2))
    target = (features[:, 0] > 0).astype(np.int64)
    with pytest.raises(ConfigError, match="--head logreg or --head gbm") as error:
        SVMHead(task="binary").fit(features, target)
    assert error.value.option == "--head" and str(svm.MAX_ROWS) in str(error.value)

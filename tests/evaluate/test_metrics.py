import math

import numpy as np
import pytest

from deepstrata.evaluate.metrics import classification_metrics, regression_metrics


def test_binary_metrics_on_a_hand_checked_case():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    m = classification_metrics(y, proba)
    assert m["accuracy"] == 0.75
    assert m["balanced_accuracy"] == 0.75
    assert m["roc_auc"] == 1.0  # every positive scores above every negative
    expected_log_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.7]))
    assert m["log_loss"] == pytest.approx(expected_log_loss)


def test_multiclass_with_an_absent_class_still_reports_auc():
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2], [0.3, 0.6, 0.1]])
    m = classification_metrics(y, proba)
    assert m["accuracy"] == 1.0 and m["roc_auc"] == 1.0 and m["f1_macro"] == 1.0


def test_single_class_rows_give_nan_auc_not_an_error():
    m = classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.4, 0.6]]))
    assert math.isnan(m["roc_auc"]) and m["accuracy"] == 1.0


def test_regression_metrics():
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert m["r2"] == pytest.approx(1 - 4 / 2)

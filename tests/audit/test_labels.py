"""Confident learning: flipped labels on a real table are found from out-of-fold
probabilities, and a search that cannot be done is refused before any work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepstrata.audit.labels import check_for_labels, label_issues, out_of_fold
from deepstrata.config import FitConfig
from deepstrata.data.sources import read_table
from deepstrata.errors import ConfigError

pytest.importorskip("cleanlab", reason="the audit extra: pip install 'deepstrata[audit]'")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def flipped_breast_cancer(share: float, seed: int = 0) -> tuple[pd.DataFrame, set[int]]:
    """scikit-learn's breast cancer table (569 rows) with ``share`` of its labels flipped;
    and the 1-based rows flipped."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = np.where(frame["target"] == 1, "benign", "malignant")
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(frame), round(share * len(frame)), replace=False)
    frame.loc[flipped, "target"] = np.where(
        frame.loc[flipped, "target"] == "benign", "malignant", "benign"
    )
    return frame, {int(i) + 1 for i in flipped}


def test_obvious_flips_are_found_and_suggested():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    probabilities = np.full((300, 3), 0.05)
    probabilities[np.arange(300), labels] = 0.9
    wrong = np.arange(0, 300, 25)
    labels_given = labels.copy()
    labels_given[wrong] = (labels[wrong] + 1) % 3
    issues = label_issues(labels_given, probabilities, classes=["a", "b", "c"], rows=np.arange(300))
    assert sorted(issues["row"] - 1) == list(wrong)
    names = np.array(["a", "b", "c"])
    truth = dict(zip(wrong + 1, names[labels[wrong]]))
    assert all(truth[r] == s for r, s in zip(issues["row"], issues["suggested"]))
    assert (issues["quality"] < 0.1).all()


def test_refused_without_folds_or_for_regression():
    table = read_table(
        pd.DataFrame({"x": [i % 7 for i in range(40)], "y": [0.5 * i for i in range(40)]})
    )
    with pytest.raises(ConfigError, match="--folds"):
        check_for_labels(table, FitConfig(target="y"))
    with pytest.raises(ConfigError, match=r"--target: .* regression target"):
        check_for_labels(table, FitConfig(target="y", folds=3))


def test_flipped_labels_of_a_real_table_are_found():
    frame, flipped = flipped_breast_cancer(0.10)
    cfg = FitConfig(
        target="target", folds=3, ensemble=False, max_epochs=15, learning_rate=3e-3, batch_size=64
    )
    model, rows, labels, probabilities = out_of_fold(read_table(frame), cfg)
    assert len(model.members) == 3  # the fold networks, no refit
    assert probabilities.shape == (len(frame), 2) and np.allclose(probabilities.sum(1), 1)
    issues = label_issues(labels, probabilities, classes=model.classes, rows=rows)
    found = set(issues["row"])
    precision, recall = len(found & flipped) / len(found), len(found & flipped) / len(flipped)
    assert precision >= 0.7 and recall >= 0.7, (precision, recall)

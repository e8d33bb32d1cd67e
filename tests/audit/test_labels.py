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


@pytest.mark.slow
@pytest.mark.parametrize("share", [0.10, 0.20])
def test_flipped_labels_of_a_real_image_set_are_found(share):
    """scikit-learn's 1,797 handwritten digits (8x8 images, as 64 pixel columns) with
    ``share`` of the labels moved to another digit at random: precision and recall of the
    rows flagged, from 5 folds' out-of-fold probabilities."""
    from sklearn.datasets import load_digits

    digits = load_digits(as_frame=True).frame
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(digits), round(share * len(digits)), replace=False)
    labels = digits["target"].to_numpy().copy()
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, len(flipped))) % 10
    frame = digits.assign(target=[f"d{v}" for v in labels])
    cfg = FitConfig(target="target", folds=5, ensemble=False, max_epochs=60)
    model, rows, given, probabilities = out_of_fold(read_table(frame), cfg)
    issues = label_issues(given, probabilities, classes=model.classes, rows=rows)
    found, truth = set(issues["row"]), {int(i) + 1 for i in flipped}
    precision, recall = len(found & truth) / len(found), len(found & truth) / len(truth)
    print(f"digits, {share:.0%} flipped: precision {precision:.3f} recall {recall:.3f}")
    if share == 0.10:
        assert precision >= 0.8
    assert recall >= 0.7

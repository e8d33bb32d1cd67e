"""``fit --drop-label-issues``: the rows flagged are left out of a second fit, the bundle
lists them, and before and after are scored on the same kept rows. (The flag itself is
generated from its option; tests/recipes/test_fairness.py runs it through the CLI.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.audit.test_labels import flipped_breast_cancer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAST = {"max_epochs": 10, "learning_rate": 3e-3, "batch_size": 128, "ensemble": False}


def test_fit_drops_the_rows_flagged_and_scores_before_and_after(tmp_path):
    import deepstrata

    frame, flipped = flipped_breast_cancer(0.10, seed=1)
    fitted = deepstrata.fit(
        frame, target="target", folds=2, drop_label_issues=True, progress=False, **FAST
    )
    out = fitted.save(tmp_path / "bundle")
    model = deepstrata.load(out)
    found = model.metrics["label_issues"]
    dropped = set(found["dropped_rows"])
    listed = pd.read_csv(out / "label_issues.csv")
    assert set(listed["row"]) == dropped and found["found"] == len(dropped)
    assert len(dropped & flipped) >= 0.7 * len(dropped)  # mostly the rows flipped
    assert model.metrics["rows"]["train"] == len(frame) - len(dropped)
    kept = len(frame) - len(dropped)
    assert found["compared_on"].startswith(f"the {kept} rows kept")
    # both fits scored on the kept rows (the first flatters itself: it agreed with them)
    assert set(found["before"]) >= {"accuracy", "log_loss"}
    assert found["after"]["accuracy"] > 0.9 and found["before"]["accuracy"] > 0.9


def test_relabelling_keeps_every_row_with_the_suggested_class():
    import deepstrata
    from deepstrata.report.card import model_card

    frame, flipped = flipped_breast_cancer(0.10, seed=3)
    model = deepstrata.fit(
        frame, target="target", folds=2, relabel_issues=True, progress=False, **FAST
    )
    found = model.metrics["label_issues"]
    assert "dropped_rows" not in found and len(found["relabelled_rows"]) == found["found"] > 0
    assert len(set(found["relabelled_rows"]) & flipped) >= 0.7 * found["found"]
    assert model.metrics["rows"]["train"] == len(frame)  # every row trained on
    assert "relabelled with the suggested class" in model_card(model.bundle_config(), model.metrics)


@pytest.mark.slow
@pytest.mark.parametrize("share", [0.10, 0.20])
def test_dropping_label_issues_recovers_test_accuracy(share, tmp_path):
    """Breast cancer (569 rows): 30 % held out clean; the rest with ``share`` flipped.
    Flagged rows' precision and recall, and test accuracy clean / noisy / cleaned."""
    import deepstrata

    frame, flipped = flipped_breast_cancer(share, seed=2)
    clean, _ = flipped_breast_cancer(0.0)
    rng = np.random.default_rng(0)
    test_rows = rng.choice(len(frame), 170, replace=False)
    train = frame.drop(index=test_rows)  # keeps the original index: row = index + 1
    flipped_train = {r for r in flipped if r - 1 not in set(test_rows)}
    test = clean.iloc[test_rows]
    options = {"max_epochs": 60, "ensemble": False, "progress": False, "folds": 5}
    accuracy = {}
    for name, rows in (("clean", clean.drop(index=test_rows)), ("noisy", train)):
        model = deepstrata.fit(rows.reset_index(drop=True), target="target", **options)
        accuracy[name] = model.evaluate(test)["accuracy"]
    model = deepstrata.fit(
        train.reset_index(drop=True), target="target", drop_label_issues=True, **options
    )
    accuracy["cleaned"] = model.evaluate(test)["accuracy"]
    positions = train.index.to_numpy()
    dropped = {int(positions[r - 1]) + 1 for r in model.metrics["label_issues"]["dropped_rows"]}
    precision = len(dropped & flipped_train) / max(len(dropped), 1)
    recall = len(dropped & flipped_train) / len(flipped_train)
    print(
        f"{share:.0%} flipped: precision {precision:.3f} recall {recall:.3f}; test accuracy {accuracy}"
    )
    if share == 0.10:
        assert precision >= 0.8
    assert recall >= 0.6
    cost = accuracy["clean"] - accuracy["noisy"]
    assert accuracy["cleaned"] - accuracy["noisy"] >= cost / 2 or cost <= 0.01

"""``fit --drop-label-issues``: the rows flagged are left out of a second fit, the bundle
lists them, and before and after are scored on the same kept rows. (The flag itself is
generated from its option; tests/recipes/test_fairness.py runs it through the CLI.)"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from tests.audit.test_labels import flipped_breast_cancer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SEEDS = (0, 1, 2)
CV_MODEL = "ensemble"  # see test_dropping_label_issues_recovers_digit_accuracy
# The share of the noise's cost a cleaned fit must win back in the digit tests below: half.
# Measured 0.60 to 0.83 (their docstrings), each +- about 0.15 from one fit's spread.
RECOVERS = 0.5
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
    suspects, second = found["found_per_round"]  # the second round judges every row
    assert second <= len(dropped) <= suspects + second and 0 <= found["cleared"] <= suspects
    assert len(dropped) >= suspects - found["cleared"]  # the suspects upheld, at least
    # both fits scored on the kept rows (the first flatters itself: it agreed with them)
    assert set(found["before"]) >= {"accuracy", "log_loss"}
    assert found["after"]["accuracy"] > 0.9 and found["before"]["accuracy"] > 0.9


def test_each_row_is_judged_by_networks_that_never_trained_on_it():
    from deepstrata.audit.cleaning import unseen_probabilities
    from deepstrata.data.sources import read_table

    class Judge:  # stands in for the second round's K networks: "a" below 0.5, else "b"
        classes = ("b", "a")  # not the first round's order

        def predict_proba(self, table):
            x = table.frame["x"].to_numpy()
            return np.stack([x >= 0.5, x < 0.5], axis=1).astype(float)

    table = read_table(pd.DataFrame({"x": [0.1, 0.9, 0.2, 0.8], "y": ["a", "a", "b", "c"]}))
    held_out = np.array([[0.3, 0.7], [0.6, 0.4]])  # rows 1 and 3, out of fold, as b, a
    judged = unseen_probabilities(
        Judge(), table, np.arange(4), np.array([1, 3]), held_out, ["a", "b", "c"]
    )
    # rows 0 and 2 by the networks' average; 1 and 3 held out; "c" never seen by them
    expected = [[1, 0, 0], [0.7, 0.3, 0], [1, 0, 0], [0.4, 0.6, 0]]
    np.testing.assert_allclose(judged, expected)
    assert unseen_probabilities(
        Judge(), table, np.array([1]), np.array([1]), held_out[:1], ["a", "b"]
    ).tolist() == [[0.7, 0.3]]


def test_the_second_round_clears_suspects_it_finds_right_and_finds_what_the_first_learnt(
    monkeypatch,
):
    import deepstrata.audit.labels as labels_module
    from deepstrata.audit.cleaning import search
    from deepstrata.config import FitConfig
    from deepstrata.data.sources import read_table

    given = np.arange(40) % 2  # rows 0-2 look wrong to the first round; row 3 to the second
    table = read_table(pd.DataFrame({"id": np.arange(40), "y": np.array(["a", "b"])[given]}))

    def confident(rows, doubted):  # 0.95 on the given label, 0.05 where doubted
        right = np.where(np.isin(rows, doubted), 0.05, 0.95)
        return np.where(given[rows][:, None] == [0, 1], right[:, None], 1 - right[:, None])

    class Judge:  # the second round's K networks, trained without rows 0-2
        classes = ("a", "b")

        def predict_proba(self, part):  # row 0 right after all, rows 1 and 2 not
            return confident(part.frame["id"].to_numpy(), doubted=[1, 2])

    def out_of_fold(part, cfg, progress=False):
        rows = np.arange(len(part.frame))
        ids = part.frame["id"].to_numpy()
        doubted = [0, 1, 2] if len(rows) == 40 else [3]
        return Judge(), rows, given[ids], confident(ids, doubted)

    monkeypatch.setattr(labels_module, "out_of_fold", out_of_fold)
    cfg = FitConfig.from_dict({"target": "y", "folds": 2}, source="test")
    *_, issues, found = search(table, cfg)
    assert sorted(issues["row"]) == [2, 3, 4]  # 1-based: rows 1 and 2 upheld, row 3 found
    assert found == {"per_round": [3, 3], "cleared": 1}
    assert list(issues["quality"]) == sorted(issues["quality"])  # worst first


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


def test_a_folder_of_images_trains_again_from_its_own_folder(tmp_path, monkeypatch):
    """Image rows hold paths relative to their folder: the second fit reads the same files
    from any working directory (it was handed the bare frame, so paths were read from it)."""
    import deepstrata
    from tests.audit.test_embedded import flipped_digit_folder

    wrong = flipped_digit_folder(tmp_path / "digits", 0.1, rows=range(200))
    monkeypatch.chdir(tmp_path)  # not the folder: a relative path read from here is not found
    settings = {"folds": 2, "strategy": "scratch", "image_size": 8, "max_epochs": 3}
    settings |= {"ensemble": False, "cv_model": "ensemble"}  # no classical model, no refit
    model = deepstrata.fit(tmp_path / "digits", drop_label_issues=True, progress=False, **settings)
    found = model.metrics["label_issues"]
    assert model.metrics["rows"]["train"] == 200 - found["found"] > 0
    listed = pd.read_csv(io.BytesIO(model.artifacts["label_issues.csv"]))
    assert list(listed.columns[:2]) == ["row", "image"]  # which file, not only its row
    assert len(set(listed["image"]) & wrong) >= len(wrong) / 2  # 3 epochs find half at least


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


def flipped_digit_folds(share: float):
    """scikit-learn's 1,797 handwritten digits as 64 pixel columns in 4 stratified outer
    folds, each in turn the test: for each, ``(test, clean, noisy, flipped)``: the ~450 rows
    held out (clean), the other ~1,347 clean, the same with ``share`` of their labels moved
    to another digit at random, and the 1-based rows moved."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import StratifiedKFold

    digits = load_digits()
    frame = pd.DataFrame(digits.data, columns=[f"p{i}" for i in range(64)])
    frame["digit"] = digits.target.astype(str)
    outer = StratifiedKFold(4, shuffle=True, random_state=0)
    for fold, (train_rows, test_rows) in enumerate(outer.split(frame, frame["digit"])):
        clean = frame.iloc[train_rows].reset_index(drop=True)
        noisy = clean.copy()
        rng = np.random.default_rng(100 + fold)
        flipped = rng.choice(len(noisy), int(share * len(noisy)), replace=False)
        for row in flipped:
            noisy.at[row, "digit"] = rng.choice(
                [d for d in "0123456789" if d != noisy.at[row, "digit"]]
            )
        test = frame.iloc[test_rows].reset_index(drop=True)
        yield test, clean, noisy, {int(row) + 1 for row in flipped}


class Tally:
    """Test rows right for each fit (clean, noisy, cleaned) and the flagged rows' precision
    and recall, over runs."""

    def __init__(self):
        self.right = {"clean": 0, "noisy": 0, "cleaned": 0}
        self.precision, self.recall = [], []

    def add(self, name: str, accuracy: float, rows: int) -> None:
        self.right[name] += round(accuracy * rows)

    def flagged(self, rows: set, flipped: set) -> None:
        from tests.audit.test_embedded import precision_recall

        precision, recall = precision_recall(rows, flipped)
        self.precision.append(precision)
        self.recall.append(recall)

    def check(self, what: str, recovers: float) -> None:
        """Print the figures; assert precision and recall >= 0.8 and that the cleaned fit
        wins back at least ``recovers`` of the test rows the noise cost."""
        right = self.right
        recovered = (right["cleaned"] - right["noisy"]) / (right["clean"] - right["noisy"])
        precision, recall = np.mean(self.precision), np.mean(self.recall)
        print(
            f"{what}: precision {precision:.3f} recall {recall:.3f}; test rows right "
            f"{right}; recovered {recovered:.2f} of the cost"
        )
        assert precision >= 0.8 and recall >= 0.8
        assert right["clean"] > right["noisy"]  # the noise costs something to recover
        assert recovered >= recovers


@pytest.mark.slow  # 3 seeds x 4 outer folds x 3 fits of 5 networks (15 the cleaned one): minutes
@pytest.mark.parametrize("share", [0.10, 0.20])
def test_dropping_label_issues_recovers_digit_accuracy(share):
    """Digits as a table, ``share`` of the training labels flipped: the rows flagged
    (precision, recall) and the test rows right clean / noisy / cleaned. One network's
    accuracy moves by about 0.01 from seed to seed, as much as 10 % noise costs on 450 test
    rows, so each fit is the 5 folds' networks averaged (``cv_model="ensemble"``), every
    one of the 1,797 rows is a test row once (4 outer folds) and 3 seeds are pooled.

    Measured (two search rounds, the second judging every row): 10 %: precision 0.910,
    recall 0.968; rows right of 5,391: clean 5,286 / noisy 5,188 / cleaned 5,255, so 0.68 of
    the cost recovered. 20 %: precision 0.939, recall 0.965; 5,286 / 5,118 / 5,218: 0.60.
    With the second round searching only the rows kept: 0.46 and 0.57 (10 %: 144 right rows
    dropped and 117 flips missed over the 12 runs, now 155 and 52). Where the rest goes
    (10 %, that search): every flip dropped and nothing else, 0.92 (seeds 0, 1); only the
    flips it flagged, 0.79; every flip and the right rows it flagged, 0.71: a right row
    dropped and a flip missed each cost about a fifth of a test row."""
    import deepstrata

    options = {"max_epochs": 60, "ensemble": False, "progress": False, "folds": 5}
    options |= {"cv_model": CV_MODEL, "columns": {f"p{i}": "number" for i in range(64)}}
    tally = Tally()
    for test, clean, noisy, flipped in flipped_digit_folds(share):
        for seed in SEEDS:
            for name, rows in (("clean", clean), ("noisy", noisy), ("cleaned", noisy)):
                model = deepstrata.fit(
                    rows, target="digit", seed=seed, drop_label_issues=name == "cleaned", **options
                )
                tally.add(name, model.evaluate(test)["accuracy"], len(test))
            tally.flagged(set(model.metrics["label_issues"]["dropped_rows"]), flipped)
    tally.check(f"digits, {share:.0%} flipped, seeds {SEEDS} x 4 outer folds", RECOVERS)


@pytest.mark.slow  # 4 outer folds x 3 fits of 5 CNNs (15 the cleaned one): about 50 minutes
@pytest.mark.parametrize("share", [0.10, 0.20])
def test_dropping_label_issues_recovers_digit_image_accuracy(tmp_path, share):
    """The digits as 8x8 PNGs in class folders (``fit FOLDER``, CNNs from scratch), in the
    same 4 outer folds, ``share`` of the training files moved to another class's folder:
    the files flagged (precision, recall) and the test images right clean / noisy /
    cleaned, every image a test image once.

    Measured: 10 %: precision 0.976, recall 0.969; images right of 1,797: clean 1,784 /
    noisy 1,772 / cleaned 1,782, so 0.83 of the cost recovered. 20 %: precision 0.986,
    recall 0.990; 1,784 / 1,763 / 1,779: 0.76. (The noise costs 12 and 21 images: one
    image moves the share by 0.05 to 0.08.) 40 epochs, not 20: at 20 the networks were
    still learning (best epoch 14 to 20), so a fit on 20 % fewer rows, with as many
    epochs and fewer steps, was short of training; the same search recovered 0.71 and
    0.48 there."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import StratifiedKFold

    import deepstrata
    from tests.audit.test_embedded import flipped_digit_folder

    labels = load_digits().target
    options = {"strategy": "scratch", "image_size": 8, "max_epochs": 40, "folds": 5}
    options |= {"cv_model": CV_MODEL, "ensemble": False, "progress": False}
    tally = Tally()
    outer = StratifiedKFold(4, shuffle=True, random_state=0)
    for fold, (train_rows, test_rows) in enumerate(outer.split(labels, labels)):
        root = tmp_path / str(fold)
        flipped_digit_folder(root / "clean", 0.0, rows=train_rows)
        moved = flipped_digit_folder(root / "noisy", share, rows=train_rows)
        flipped_digit_folder(root / "test", 0.0, rows=test_rows)
        for name, folder in (("clean", "clean"), ("noisy", "noisy"), ("cleaned", "noisy")):
            model = deepstrata.fit(root / folder, drop_label_issues=name == "cleaned", **options)
            tally.add(name, model.evaluate(root / "test")["accuracy"], len(test_rows))
        listed = pd.read_csv(io.BytesIO(model.artifacts["label_issues.csv"]))
        tally.flagged(set(listed["image"]), moved)
    tally.check(f"digit images, {share:.0%} flipped, 4 outer folds", RECOVERS)

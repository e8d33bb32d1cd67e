"""Rare classes: how training weighs them, and where a binary model's threshold sits.

A model trained with plain cross-entropy on 0.1 % positives and judged at 0.5 can score
99.9 % accuracy by always saying "no". Three remedies, chosen by ``--imbalance``:

- ``weight``: the loss of each row is weighted by ``rows / (classes x rows of its class)``
  (scikit-learn's "balanced" weights), so every class carries the same total weight;
- ``focal``: the focal loss of Lin et al. (2017), ``(1 - p_t)^gamma`` times cross-entropy,
  which lets easy (mostly majority) rows count for less, with the balanced weights as its
  alpha;
- ``sample``: the rarer classes' training rows are repeated (random oversampling, drawn
  from the seed) until each class has as many rows as the largest.

``auto`` uses ``weight`` when a class is rare: the rarest has under a ninth of the rows of
the largest (for two classes: under 10 % of the rows; ten balanced classes are not rare).
Then the threshold (``--threshold``) is chosen on held-out rows: for F1, for a given
precision, or for a cost ratio; stored as the bundle's ``decision`` and used by predict,
evaluate and serve.

>>> import numpy as np
>>> balanced_weights(np.array([0, 0, 0, 1]), 2).round(3).tolist()
[0.667, 2.0]
"""

from __future__ import annotations

import numpy as np

FOCAL_GAMMA = 2.0
RARE = 0.10  # a binary model's rarer class under this share of the rows is rare
RARE_RATIO = RARE / (1 - RARE)  # any classifier: rarest / largest class under 1/9


def balanced_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``rows / (classes x rows of class k)`` per class (a class with no row: weight 1)."""
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes).astype(np.float64)
    weights = np.ones(num_classes)
    present = counts > 0
    weights[present] = len(labels) / (num_classes * counts[present])
    return weights


def resolve(method: str, labels: np.ndarray, num_classes: int, classes: list) -> dict:
    """What ``--imbalance method`` means for these training labels: the method used
    (``auto`` resolved), the rarest class and its share, and the class weights."""
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes)
    rarest = int(np.argmin(counts))
    share = float(counts[rarest] / max(len(labels), 1))
    rare = bool(counts[rarest] < RARE_RATIO * counts.max())
    used = method
    if method == "auto":
        used = "weight" if rare else "none"
    entry = {
        "configured": method,
        "method": used,
        "rarest_class": str(classes[rarest]) if rarest < len(classes) else str(rarest),
        "rarest_share": round(share, 6),
        "rare": rare,
    }
    if used in ("weight", "focal"):
        entry["class_weights"] = [round(float(w), 6) for w in balanced_weights(labels, num_classes)]
    if used == "focal":
        entry["focal_gamma"] = FOCAL_GAMMA
    return entry


def describe(entry: dict) -> str:
    """One line for the progress output: what was detected and what was done."""
    share = f"{100 * entry['rarest_share']:.2g}%"
    found = f"the rarest class {entry['rarest_class']!r} is {share} of the training rows"
    done = {
        "weight": "class-weighted loss (--imbalance weight)",
        "focal": f"focal loss, gamma {FOCAL_GAMMA:g}, class-weighted (--imbalance focal)",
        "sample": "its rows oversampled to balance (--imbalance sample)",
        "none": "trained as given (--imbalance none)",
    }[entry["method"]]
    return f"imbalance: {found}; {done}"


def oversample(rows: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """``rows`` plus repeats of the rarer classes' rows (drawn with replacement from the
    seed) so that every class has as many rows as the largest; the order is shuffled by
    the trainer."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    extra = [
        rng.choice(rows[labels == k], size=counts.max() - n, replace=True)
        for k, n in zip(classes, counts)
        if n < counts.max()
    ]
    return np.concatenate([rows, *extra]) if extra else rows


def loss_function(task: str, entry: dict, label_smoothing: float = 0.0):
    """The training loss of a binary or multiclass network under ``entry`` (see
    :func:`resolve`): ``loss(output, target) -> torch scalar``, a weighted mean over rows
    (``sum w_i l_i / sum w_i``, as PyTorch's ``weight=`` does); ``weight``: rows' own
    weights multiplying their class's."""
    import torch
    from torch.nn import functional as F

    weights = torch.tensor(entry["class_weights"], dtype=torch.float32)
    gamma = float(entry.get("focal_gamma", 0.0))

    def loss(output: torch.Tensor, target: torch.Tensor, weight=None) -> torch.Tensor:
        labels = target.long()
        if task == "binary":
            soft = target.to(output.dtype) * (1 - label_smoothing) + label_smoothing / 2
            rows = F.binary_cross_entropy_with_logits(output, soft, reduction="none")
            positive = torch.sigmoid(output.detach().float())
            p_true = torch.where(labels == 1, positive, 1 - positive)
        else:
            rows = F.cross_entropy(
                output, labels, reduction="none", label_smoothing=label_smoothing
            )
            p_true = torch.softmax(output.detach().float(), 1).gather(1, labels[:, None])[:, 0]
        if gamma:
            rows = rows * (1 - p_true).pow(gamma)
        w = weights.to(output.device)[labels]
        if weight is not None:  # each row's own weight too (fairness reweighing)
            w = w * weight.to(w.dtype)
        return (w * rows).sum() / w.sum()

    return loss


def choose_threshold(probability: np.ndarray, labels: np.ndarray, rule: str, amount) -> dict:
    """The probability of the positive class above which a row is called positive, chosen
    on held-out rows ``probability`` (of class 1) and ``labels`` (0/1) by ``rule``:

    - ``f1``: the best F1;
    - ``precision`` (``amount`` P): the lowest threshold whose precision reaches P (the
      most recall at that precision); the best-precision threshold when none reaches it;
    - ``cost`` (``amount`` C): the least ``C x missed positives + false alarms``;
    - ``fixed``: ``amount`` itself.
    """
    if rule == "fixed":
        return {"threshold": float(amount), "rule": f"fixed at {amount:g}"}
    from sklearn.metrics import precision_recall_curve

    truth = labels.astype(np.int64) == 1
    if truth.all() or not truth.any():
        return {"threshold": 0.5, "rule": "0.5: the held-out rows have one class only"}
    precision, recall, cuts = precision_recall_curve(truth, probability)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if rule == "f1":
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1))
        return {"threshold": float(cuts[best]), "rule": "best F1 on held-out rows"}
    if rule == "precision":
        reached = np.flatnonzero(precision >= amount)
        if len(reached):
            best = int(reached[0])  # cuts ascend: the lowest threshold, the most recall
            return {"threshold": float(cuts[best]), "rule": f"precision >= {amount:g}"}
        best = int(np.argmax(precision))
        return {
            "threshold": float(cuts[best]),
            "rule": f"best precision {precision[best]:.3f} (no threshold reached {amount:g})",
        }
    positives = truth.sum()
    missed = positives - recall * positives
    alarms = np.where(precision > 0, recall * positives * (1 / np.maximum(precision, 1e-12) - 1), 0)
    best = int(np.argmin(amount * missed + alarms))
    return {"threshold": float(cuts[best]), "rule": f"least cost, a miss = {amount:g} alarms"}


def rare_metrics(probability: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """PR-AUC (average precision), recall at precision 0.9, and the confusion counts,
    precision, recall and F1 at ``threshold``: the figures that matter when positives are
    rare (accuracy does not)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    truth = labels.astype(np.int64) == 1
    called = probability >= threshold
    tp, fp = int((called & truth).sum()), int((called & ~truth).sum())
    fn, tn = int((~called & truth).sum()), int((~called & ~truth).sum())
    result = {
        "threshold": float(threshold),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }
    result["f1"] = (
        2 * result["precision"] * result["recall"] / (result["precision"] + result["recall"])
        if result["precision"] + result["recall"]
        else 0.0
    )
    if truth.any() and not truth.all():
        result["pr_auc"] = float(average_precision_score(truth, probability))
        precision, recall, _ = precision_recall_curve(truth, probability)
        reached = recall[precision >= 0.9]
        result["recall_at_precision_90"] = float(reached.max()) if len(reached) else 0.0
    return result

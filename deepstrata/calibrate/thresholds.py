"""Group-specific decision thresholds that trade accuracy for fairness (post-processing).

As Fairlearn's ``ThresholdOptimizer`` does, a binary classifier's positive-class
probability is compared with a threshold of the row's group (its sensitive values),
chosen on held-out rows; unlike it, the thresholds are deterministic (no randomised
mixing of two thresholds), so a row always gets the same answer, and they are plain JSON
in the bundle.

For a ``strength`` λ, the thresholds maximise ``accuracy - λ * disparity`` on the
held-out rows, where the disparity is that of the constraint:

- ``demographic_parity``: the largest difference between groups' selection rates;
- ``equal_opportunity``: between true-positive rates;
- ``equalized_odds``: the larger of the true- and false-positive rate differences.

λ = 0 is the most accurate thresholds; a large λ the fairest. The search is coordinate
ascent over each group's candidate thresholds (quantiles of its scores), from 0.5.
Groups with fewer than ``min_group_size`` held-out rows keep 0.5 and take no part in the
disparity. :func:`tradeoff` gives the accuracy and disparity for several strengths.

>>> rng = np.random.default_rng(0)
>>> groups = np.repeat(["a", "b"], 500)
>>> truth = rng.integers(0, 2, 1000)
>>> scores = np.clip(truth * 0.3 + rng.random(1000) * 0.7 + (groups == "a") * 0.2, 0, 1)
>>> plain = disparity("demographic_parity", truth, scores >= 0.5, groups)
>>> chosen = choose_thresholds(scores, truth, groups, constraint="demographic_parity", strength=10)
>>> fair = disparity("demographic_parity", truth, apply_thresholds(chosen, scores, groups), groups)
>>> bool(fair < plain / 4)
True
"""

from __future__ import annotations

import numpy as np

from deepstrata.options.audit import FAIRNESS as CONSTRAINTS

STRENGTHS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 10.0)  # the trade-off table's rows
DEFAULT = 0.5  # the threshold of a group too small (or unseen): the plain argmax
CANDIDATES = 64  # quantiles of a group's scores tried as its threshold
ROUNDS = 4


def _rates(truth: np.ndarray, said: np.ndarray, rows: np.ndarray) -> tuple[float, float, float]:
    """(selection rate, TPR, FPR) of ``rows``; NaN where undefined."""
    t, s = truth[rows], said[rows]
    positives, negatives = t.sum(), (1 - t).sum()
    tpr = (s * t).sum() / positives if positives else np.nan
    fpr = (s * (1 - t)).sum() / negatives if negatives else np.nan
    return s.mean(), tpr, fpr


def disparity(
    constraint: str, truth: np.ndarray, said: np.ndarray, groups: np.ndarray, scored=None
) -> float:
    """The constraint's disparity between the ``scored`` groups (default: all)."""
    truth, said = np.asarray(truth, dtype=float), np.asarray(said, dtype=float)
    names = np.unique(groups) if scored is None else scored
    rates = np.array([_rates(truth, said, groups == name) for name in names])  # (G, 3)

    def spread(column: int) -> float:
        values = rates[:, column][np.isfinite(rates[:, column])]
        return float(values.max() - values.min()) if len(values) > 1 else 0.0

    if constraint == "demographic_parity":
        return spread(0)
    if constraint == "equal_opportunity":
        return spread(1)
    if constraint == "equalized_odds":
        return max(spread(1), spread(2))
    raise ValueError(f"unknown constraint {constraint!r}; expected one of {CONSTRAINTS}")


def apply_thresholds(fairness: dict, scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``(N,)`` 0/1: positive where the score reaches the row's group threshold."""
    table = fairness["thresholds"]
    default = fairness.get("default", DEFAULT)
    limits = np.array([table.get(str(g), default) for g in groups], dtype=float)
    return (np.asarray(scores) >= limits).astype(np.int64)


def choose_thresholds(
    scores: np.ndarray,
    truth: np.ndarray,
    groups: np.ndarray,
    *,
    constraint: str,
    strength: float,
    min_group_size: int = 30,
) -> dict:
    """Thresholds per group maximising ``accuracy - strength * disparity`` on these rows
    (``scores``: positive-class probabilities; ``truth``: 1 for the positive class)."""
    truth = np.asarray(truth, dtype=float)
    groups = np.asarray(groups).astype(str)
    names, counts = np.unique(groups, return_counts=True)
    scored = [str(n) for n, c in zip(names, counts) if c >= min_group_size]
    thresholds = dict.fromkeys(scored, DEFAULT)
    member = {name: groups == name for name in scored}
    candidates = {
        name: np.unique(
            np.r_[DEFAULT, np.quantile(scores[rows], np.linspace(0, 1, CANDIDATES)) + 1e-12]
        )
        for name, rows in member.items()
    }
    said = (scores >= DEFAULT).astype(float)

    def objective(decided: np.ndarray) -> float:
        accuracy = (decided == truth).mean()
        return accuracy - strength * disparity(constraint, truth, decided, groups, scored)

    best = objective(said)
    for _ in range(ROUNDS):
        improved = False
        for name, rows in member.items():
            for threshold in candidates[name]:
                trial = said.copy()
                trial[rows] = scores[rows] >= threshold
                value = objective(trial)
                if value > best + 1e-12:
                    best, said, thresholds[name], improved = value, trial, float(threshold), True
        if not improved:
            break
    return {
        "constraint": constraint,
        "strength": float(strength),
        "thresholds": thresholds,
        "default": DEFAULT,
        "held_out": {
            "rows": len(truth),
            "accuracy": float((said == truth).mean()),
            "disparity": disparity(constraint, truth, said, groups, scored),
        },
    }


def tradeoff(
    scores: np.ndarray,
    truth: np.ndarray,
    groups: np.ndarray,
    *,
    constraint: str,
    min_group_size: int = 30,
    strengths: tuple[float, ...] = STRENGTHS,
) -> list[dict]:
    """Accuracy and disparity on these rows for each strength (the first: 0, plain)."""
    rows = []
    for strength in strengths:
        chosen = choose_thresholds(
            scores,
            truth,
            groups,
            constraint=constraint,
            strength=strength,
            min_group_size=min_group_size,
        )
        rows.append({"strength": strength, **chosen["held_out"]})
    return rows

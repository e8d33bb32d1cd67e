"""Shapley values: KernelSHAP through shap for any model; exact values for few columns.

The players are the raw input columns; a coalition keeps its columns and puts the others
at their baseline (:mod:`deepstrata.explain.baselines`), so shap sees a function of a
0/1 keep-mask: the row is all ones, the background the single all-zeros row. Its values
are then interventional Shapley values against that one baseline, their sum is exactly
f(x) - f(baseline), and both explainers work on any model (ensembles, classical heads)
because they only call it.
"""

from __future__ import annotations

import numpy as np

from deepstrata.explain.library import require

MAX_EXACT_COLUMNS = 10  # 2^10 coalitions per row


class _Seeded:
    """shap's KernelExplainer samples coalitions from NumPy's global generator: seed it
    for the block and put the caller's state back."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self):
        self.state = np.random.get_state()
        np.random.seed(self.seed)

    def __exit__(self, *exc) -> None:
        np.random.set_state(self.state)


def default_samples(columns: int) -> int:
    """shap's own default, 2M + 2048 coalitions (all of them when there are fewer)."""
    return 2 * columns + 2048


def kernel_shap(target, *, samples: int | None = None, seed: int = 0, **_):
    """``(rows, columns)`` KernelSHAP values and the settings they ran with."""
    shap = require("shap", "shap")
    columns = len(target.columns)
    samples = samples or default_samples(columns)
    background = np.zeros((1, columns))
    values = np.zeros((target.rows, columns))
    for row in range(target.rows):
        explainer = shap.KernelExplainer(target.of_row(row), background)
        with _Seeded(seed + row):
            values[row] = np.asarray(
                explainer.shap_values(
                    np.ones((1, columns)), nsamples=samples, l1_reg=False, silent=True
                )
            ).reshape(columns)
    coalitions = min(samples, 2**columns - 2)
    return values, {"samples": coalitions, "seed": seed, "explainer": "shap.KernelExplainer"}


def coalitions(columns: int) -> np.ndarray:
    """``(2^M, M)`` keep-masks; row ``k`` keeps column ``j`` when bit ``j`` of ``k`` is set."""
    codes = np.arange(2**columns)
    return (codes[:, None] >> np.arange(columns)) & 1 == 1


def exact_shapley(target, **_):
    """``(rows, columns)`` exact Shapley values: every coalition of every row evaluated
    (2^M per row), combined by the Shapley weights |S|! (M - |S| - 1)! / M!.

    Written here rather than through ``shap.explainers.Exact``: that explainer compiles
    its code with numba on first use, which took 15 s per process on 2 cores, for a sum
    this short; tests/explain/test_shapley.py checks the two agree, through KernelSHAP."""
    from math import factorial

    columns = len(target.columns)
    masks = coalitions(columns)  # (2^M, M)
    sizes = masks.sum(axis=1)
    weight = np.array(
        [factorial(s) * factorial(columns - s - 1) / factorial(columns) for s in range(columns)]
    )
    values = np.zeros((target.rows, columns))
    per_pass = max(1, 8192 // len(masks))
    for start in range(0, target.rows, per_pass):
        rows = np.arange(start, min(start + per_pass, target.rows))
        payoff = target.values(np.repeat(rows, len(masks)), np.tile(masks, (len(rows), 1)))
        payoff = payoff.reshape(len(rows), len(masks))  # (n, 2^M)
        for column in range(columns):
            without = np.flatnonzero(~masks[:, column])  # coalitions S not holding the column
            gain = payoff[:, without | (1 << column)] - payoff[:, without]
            values[rows, column] = gain @ weight[sizes[without]]
    return values, {"coalitions": 2**columns, "explainer": "exact (every coalition)"}

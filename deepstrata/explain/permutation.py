"""Permutation importance, the model-agnostic baseline: how much a row's explained
value changes when one column takes the value of another row.

Written here rather than taken from scikit-learn: ``sklearn.inspection.
permutation_importance`` scores an estimator against labels (the loss it gains), while
an explanation needs no labels and is per row; this is the same shuffle, measured on
the prediction: ``values[i, j] = f(x_i) - mean_k f(x_i with column j of row π_k(i))``.
Its mean |value| per column is the global permutation importance.
"""

from __future__ import annotations

import numpy as np


def permutation_values(target, *, repeats: int = 5, seed: int = 0, **_):
    """``(rows, columns)`` permutation attributions and the settings they ran with."""
    rows, columns = target.rows, len(target.columns)
    rng = np.random.default_rng(seed)
    values = np.zeros((rows, columns))
    everything = np.arange(rows)
    for column in range(columns):
        keep = np.ones((rows * repeats, columns), dtype=bool)
        keep[:, column] = False
        sources = np.concatenate([rng.permutation(rows) for _ in range(repeats)])
        changed = target.values(np.tile(everything, repeats), keep, sources)
        values[:, column] = target.predictions - changed.reshape(repeats, rows).mean(axis=0)
    return values, {"repeats": repeats, "seed": seed, "replaced_by": "other explained rows"}

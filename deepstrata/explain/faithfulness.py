"""How faithful an explanation is to the model, measured rather than assumed.

- **deletion / insertion** (Petsiuk et al., 2018): set a row's columns to their
  baseline one at a time in attribution order (deletion: the prediction should fall
  fast, small area) or restore them from the baseline in that order (insertion: it
  should rise fast, large area); each area is against the same curve in random order.
- **completeness**: Shapley values and integrated gradients must sum to
  f(x) - f(baseline), each row against its own baseline (a blurred image is the row's
  own); the gap is reported relative to the total |f(x) - f(baseline)|.
- **word deletion**: the same deletion curve over a text's words (dropped from the text
  in attribution order, most supportive first, against a random order);
- **region deletion / insertion** (:mod:`deepstrata.explain.regions`): the same curves
  over the cells of an image's (a spectrogram's) heat map, for a column whose one
  attribution gives a single-step column curve;
- **rank agreement**: Spearman correlation of two methods' attributions per row.
- **model randomisation** (Adebayo et al., 2018): re-initialise every network's weights
  and explain again; attributions that barely change (rank correlation of |values|
  ≥ 0.3) describe the input, not the model, and the method fails the check.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

RANDOMISATION_THRESHOLD = 0.3
CURVE_ROWS = 200  # rows the curves are drawn on (a seeded sample beyond that)
RANDOMISATION_ROWS = 50


def sample_rows(rows: int, limit: int, seed: int) -> np.ndarray:
    if rows <= limit:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))


def _curve(target, rows: np.ndarray, order: np.ndarray, *, insert: bool) -> np.ndarray:
    """``(n, M + 1)`` explained values after 0..M steps along ``order`` (n, M)."""
    n, columns = order.shape
    keep = np.full((n, columns + 1, columns), not insert)
    for step in range(1, columns + 1):
        keep[np.arange(n), step:, order[:, step - 1]] = insert
    values = target.values(np.repeat(rows, columns + 1), keep.reshape(-1, columns))
    return values.reshape(n, columns + 1)


def _area(curve: np.ndarray) -> float:
    """Mean over rows of the area under the curve, the x axis scaled to [0, 1]."""
    return float(np.trapezoid(curve, dx=1 / (curve.shape[1] - 1), axis=1).mean())


def curves(target, values: np.ndarray, *, seed: int = 0) -> dict:
    """Deletion and insertion areas in attribution order and in random order."""
    rows = sample_rows(len(values), CURVE_ROWS, seed)
    rng = np.random.default_rng(seed)
    ordered = np.argsort(-values[rows], axis=1, kind="stable")  # most supportive first
    shuffled = rng.permuted(np.tile(np.arange(values.shape[1]), (len(rows), 1)), axis=1)
    out = {"rows": len(rows)}
    for name, insert in (("deletion", False), ("insertion", True)):
        out[f"{name}_area"] = _area(_curve(target, rows, ordered, insert=insert))
        out[f"{name}_area_random"] = _area(_curve(target, rows, shuffled, insert=insert))
    return out


def completeness(target, values: np.ndarray) -> dict:
    """How far the rows' sums are from f(x) - f(baseline), each row's own (``target.base``
    holds f at each row's baseline)."""
    change = target.predictions - target.base
    gap = values.sum(axis=1) - change
    total = float(np.abs(change).sum())
    return {
        "completeness_gap": float(np.abs(gap).sum() / total) if total > 0 else 0.0,
        "completeness_max_abs_gap": float(np.abs(gap).max()) if len(gap) else 0.0,
    }


def rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of the Spearman correlation of two ``(rows, columns)`` arrays
    (rows where either is constant are left out).

    >>> rank_agreement(np.array([[1.0, 2, 3]]), np.array([[10.0, 20, 30]]))
    1.0
    """
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra, rb = ra - ra.mean(axis=1, keepdims=True), rb - rb.mean(axis=1, keepdims=True)
    norm = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    valid = norm > 0
    if not valid.any():
        return float("nan")
    return float(((ra * rb).sum(axis=1)[valid] / norm[valid]).mean())


def randomised_model(model, seed: int = 0):
    """A copy of ``model`` with every network's weights re-initialised (its
    preprocessors, calibration and mixing kept)."""
    clone = copy.deepcopy(model)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for member in clone.members:
            for module in member.network.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    finally:
        torch.random.set_rng_state(generator_state)
    return clone


def randomisation(run, model, table, values: np.ndarray, classes, *, seed: int = 0) -> dict:
    """The model-randomisation check: ``run(model, table, classes) -> values`` explains
    the same rows (the same classes) with the re-initialised copy."""
    rows = sample_rows(len(values), RANDOMISATION_ROWS, seed)
    from deepstrata.data.table import Table

    subset = Table(
        frame=table.frame.iloc[rows].reset_index(drop=True),
        source=table.source,
        lines=None if table.lines is None else table.lines[rows],
    )
    chosen = None if classes is None else np.asarray(classes)[rows]
    randomised = run(randomised_model(model, seed), subset, chosen)
    correlation = rank_agreement(np.abs(values[rows]), np.abs(randomised))
    return {  # one column has no ranks to compare: not measured (None), not failed
        "randomisation_rank_correlation": correlation,
        "randomisation_passed": None
        if np.isnan(correlation)
        else bool(correlation < RANDOMISATION_THRESHOLD),
        "randomisation_rows": len(rows),
    }


WORD_ROWS = 50  # texts the word deletion curve is drawn on


def word_deletion(target, column: str, entries: list[dict], *, seed: int = 0) -> dict:
    """Deletion areas over the words of ``column`` (per text, x scaled to [0, 1]) in the
    order of ``entries``' values and in random order, on up to WORD_ROWS texts; the words
    are those the explanation shows (pieces merged), dropped from the text as written."""
    from deepstrata.explain.words import _values

    rng = np.random.default_rng(seed)
    ordered, shuffled = [], []
    for row in sample_rows(len(entries), WORD_ROWS, seed):
        words, values = entries[row]["words"], np.asarray(entries[row]["values"])
        if len(words) < 2:
            continue
        for order, areas in (
            (np.argsort(-values, kind="stable"), ordered),
            (rng.permutation(len(words)), shuffled),
        ):
            keep = np.ones((len(words) + 1, len(words)))
            for step in range(1, len(words) + 1):
                keep[step:, order[step - 1]] = 0
            curve = _values(target, int(row), column, words, keep)[None]
            areas.append(_area(curve))
    if not ordered:
        return {}
    return {
        f"words_deletion_area:{column}": float(np.mean(ordered)),
        f"words_deletion_area_random:{column}": float(np.mean(shuffled)),
        f"words_rows:{column}": len(ordered),
    }

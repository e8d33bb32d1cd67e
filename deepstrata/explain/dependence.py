"""Partial dependence of the most important numeric columns: the mean explained value
over the explained rows (at most 200, sampled) when one column is set to each value of a grid (its quantiles
among those rows), everything else as it is (Friedman, 2001).

For a classifier it is the probability of one class for every row: ``target_class``
when given, else the class explained most often, so the curve is of one quantity.
"""

from __future__ import annotations

import numpy as np

from deepstrata.data.table import Table

GRID = 10
TOP = 3
ROWS = 200  # rows averaged over (a seeded sample beyond that): grid x rows model calls


def partial_dependence(target, importance, *, grid: int = GRID, top: int = TOP) -> dict:
    """``{column: {"values": [...], "mean": [...]}, "class": name or None}`` for the
    ``top`` numeric columns of ``importance`` (a global-importance frame)."""
    numeric = {f.name for f in target.model.schema.inputs if f.kind == "number"}
    chosen = [c for c in importance.column if c in numeric][:top]
    from deepstrata.explain.faithfulness import sample_rows

    frame = target.table.frame
    frame = frame.iloc[sample_rows(len(frame), ROWS, seed=0)].reset_index(drop=True)
    index = None
    if target.classes is not None:
        index = int(np.bincount(target.classes).argmax())
    out: dict = {"class": None if index is None else str(target.model.classes[index])}
    for column in chosen:
        values = np.asarray(frame[column], dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            continue
        points = np.unique(np.quantile(values, np.linspace(0, 1, grid)))
        repeated = frame.loc[np.tile(np.arange(len(frame)), len(points))].reset_index(drop=True)
        repeated[column] = np.repeat(points, len(frame))
        outputs = target.model.outputs_of(
            Table(frame=repeated, source=target.table.source, lines=None)
        )
        if index is None:
            explained = np.asarray(target.model.decode(outputs), dtype=np.float64)
        else:
            explained = target.spec.probabilities(outputs)[:, index]
        means = explained.reshape(len(points), len(frame)).mean(axis=1)
        out[column] = {"values": points.tolist(), "mean": means.tolist()}
    return out

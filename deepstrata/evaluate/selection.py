"""Choosing among candidates measured on few rows: the one-standard-error rule the table
ensemble (:mod:`deepstrata.recipes.ensemble`) and the forecaster's ensemble
(:mod:`deepstrata.forecast.ensemble`) both pick their weight by."""

from __future__ import annotations

import numpy as np


def within_one_standard_error(losses: np.ndarray) -> np.ndarray:
    """Which candidates' mean loss is within one standard error of the lowest mean (the
    standard error of that mean over the rows): those the data cannot tell from the best.
    ``losses`` is candidates × rows.

    The lowest point of a curve measured on a few hundred rows is partly noise; the
    one-standard-error rule (Breiman et al., as in choosing a tree's size by
    cross-validation) then takes the simplest of them."""
    means = losses.mean(axis=1)
    lowest = losses[int(np.argmin(means))]
    error = lowest.std(ddof=1) / np.sqrt(len(lowest)) if len(lowest) > 1 else 0.0
    return means - means.min() <= error

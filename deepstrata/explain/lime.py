"""LIME through the lime package, on the same keep-or-baseline columns as SHAP.

lime's tabular explainer perturbs each numeric feature with noise drawn from training
statistics, which a bundle does not keep; its text and image explainers instead switch
interpretable parts on and off, which is what a column kept or set to its baseline is.
So the neighbourhood is drawn as ``LimeTextExplainer`` draws one (a uniform number of
parts removed, at random places), weighed by its kernel (exponential on the cosine
distance, width 25), and fitted by lime's own ``LimeBase`` (a weighted ridge).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from deepstrata.explain.library import require

KERNEL_WIDTH = 25  # lime's text and image default


def _kernel(distances: np.ndarray, width: float) -> np.ndarray:
    return np.sqrt(np.exp(-(distances**2) / width**2))


def neighbourhood(columns: int, samples: int, rng) -> np.ndarray:
    """``(samples, columns)`` keep-masks; the first keeps everything."""
    masks = np.ones((samples, columns), dtype=bool)
    removed = rng.integers(1, columns, samples - 1) if columns > 1 else np.ones(samples - 1, int)
    for index, count in enumerate(removed, start=1):
        masks[index, rng.choice(columns, count, replace=False)] = False
    return masks


def lime_values(target, *, samples: int | None = None, seed: int = 0, **_):
    """``(rows, columns)`` LIME weights and the settings they ran with."""
    lime_base = require("lime.lime_base", "lime")
    from sklearn.metrics import pairwise_distances

    columns = len(target.columns)
    samples = samples or 1000
    explainer = lime_base.LimeBase(partial(_kernel, width=KERNEL_WIDTH), random_state=seed)
    values = np.zeros((target.rows, columns))
    scores = []
    for row in range(target.rows):
        rng = np.random.default_rng(seed + row)
        masks = neighbourhood(columns, samples, rng)
        labels = target.values(np.full(samples, row), masks)[:, None]  # (S, 1)
        data = masks.astype(float)
        distances = pairwise_distances(data, data[:1], metric="cosine").ravel() * 100
        _, weights, score, _ = explainer.explain_instance_with_data(
            data, labels, distances, 0, columns, feature_selection="none"
        )
        for column, weight in weights:
            values[row, column] = weight
        scores.append(score)
    settings = {
        "samples": samples,
        "seed": seed,
        "kernel_width": KERNEL_WIDTH,
        "mean_local_r2": float(np.mean(scores)),
        "explainer": "lime.lime_base.LimeBase",
    }
    from deepstrata.explain.superpixels import image_columns, superpixel_maps

    if image_columns(target):  # and each image's superpixels, as a heat map
        settings["maps"] = superpixel_maps(target, samples=samples, seed=seed)
        settings["superpixels"] = "lime.lime_image over SLIC superpixels (scikit-image)"
    return values, settings

"""The baseline of each kind: the input an attribution is measured from.

An attribution says how much a column moved the prediction away from what the model
predicts with that column at its baseline, so the baseline is part of the answer and is
stated with it (:func:`describe_baseline`). Each is given in the preprocessed block's
terms (one value per position of the column's block):

- number: the training median (scaled: 0), not missing;
- boolean: neither true nor false (scaled: 0), not missing (no mode is stored);
- datetime: the training rows' mean year, every cyclic encoding at its centre (0);
- category: the most frequent training category;
- text: padding tokens only (an empty text);
- image: the training rows' mean colour in every pixel (the mean image);
- audio: a flat spectrogram at the normalised mean (0), the closest to silence a
  per-clip-normalised spectrogram has.
"""

from __future__ import annotations

import numpy as np

from deepstrata.errors import ConfigError


def _zeros(pre) -> np.ndarray:
    return np.zeros(pre.width)


def _category(pre) -> np.ndarray:
    from deepstrata.preprocess.category import FIRST, UNKNOWN

    return np.array([FIRST if pre.vocabulary else UNKNOWN])


def _image(pre) -> np.ndarray:
    colour = np.round(np.asarray(pre.mean) * 255)
    return np.repeat(colour, pre.size * pre.size)  # (3 * S * S,), channel-major


BASELINES = {
    "number": (_zeros, lambda pre: f"training median {pre.center:.6g}"),
    "boolean": (_zeros, lambda pre: "neither true nor false"),
    "datetime": (_zeros, lambda pre: "training mean date"),
    "category": (
        _category,
        lambda pre: (
            f"most frequent training category {pre.vocabulary[0]!r}"
            if pre.vocabulary
            else "unknown category"
        ),
    ),
    "text": (_zeros, lambda pre: "padding tokens (empty text)"),
    "image": (_image, lambda pre: "mean training image (mean colour)"),
    "audio": (_zeros, lambda pre: "flat spectrogram at the normalised mean"),
}


def _entry(pre):
    if pre.kind not in BASELINES:
        raise ConfigError(f"no explanation baseline for columns of kind {pre.kind!r}")
    return BASELINES[pre.kind]


def baseline_values(pre) -> np.ndarray:
    """``(pre.width,)``: the baseline of a fitted preprocessor's column, in its block."""
    values = _entry(pre)[0](pre)
    if values.shape != (pre.width,):
        raise ValueError(f"{pre.kind} baseline of shape {values.shape}, expected {pre.width}")
    return values


def describe_baseline(pre) -> str:
    """The baseline in words: ``training median 41``."""
    return _entry(pre)[1](pre)

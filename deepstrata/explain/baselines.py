"""The baseline of each kind: the input an attribution is measured from.

An attribution says how much a column moved the prediction away from what the model
predicts with that column at its baseline, so the baseline is part of the answer and is
stated with it (:func:`describe_baseline`). Each is given in the preprocessed block's
terms (one value per position of the column's block), one per explained row:

- number: the training median (scaled: 0), not missing;
- boolean: neither true nor false (scaled: 0), not missing (no mode is stored);
- datetime: the training rows' mean year, every cyclic encoding at its centre (0);
- category: the most frequent training category;
- text: padding tokens only (an empty text);
- image (``image="blurred"``, the default): the row's own image under a strong Gaussian
  blur (sigma a quarter of the side), as Sturmfels et al. (2020, "Visualizing the Impact
  of Feature Attribution Baselines") propose; ``image="mean"``: the training rows' mean
  colour in every pixel (the mean image). A flat image has no spatial variance, and the
  image encoder's GroupNorm divides by that variance: along the straight path from a
  flat image GroupNorm's output jumps from its bias to its full value within the first
  1e-3 of the path, which no quadrature of 50 (or 300) steps sees, so integrated
  gradients on a trained CNN miss most of f(x) - f(mean image). A blurred image keeps
  some spatial variance, so the path is smooth and completeness holds;
- audio: a flat spectrogram at the normalised mean (0), the closest to silence a
  per-clip-normalised spectrogram has.
"""

from __future__ import annotations

import numpy as np

from deepstrata.errors import ConfigError

IMAGE_BASELINES = ("blurred", "mean")
BLUR_SIGMA = 0.25  # of the image's side, in pixels: 4 px on a 16 px image, 16 on 64


def blur_sigma(size: int) -> float:
    return BLUR_SIGMA * size


def _constant(values):
    """A baseline the same in every row: ``(pre, block (N, W)) -> (N, W)``."""
    return lambda pre, block, image: np.broadcast_to(values(pre), (len(block), pre.width))


def _zeros(pre) -> np.ndarray:
    return np.zeros(pre.width)


def _category(pre) -> np.ndarray:
    from deepstrata.preprocess.category import FIRST, UNKNOWN

    return np.array([FIRST if pre.vocabulary else UNKNOWN])


def _mean_image(pre) -> np.ndarray:
    colour = np.round(np.asarray(pre.mean) * 255)
    return np.repeat(colour, pre.size * pre.size)  # (3 * S * S,), channel-major


def blurred(block: np.ndarray, size: int) -> np.ndarray:
    """``(N, 3 * S * S)`` channel-major pixels -> each image under a Gaussian blur of
    sigma :func:`blur_sigma` (edges reflected), rounded back to 0..255.

    scipy's ``gaussian_filter`` rather than Pillow's GaussianBlur: it blurs the whole
    batch in one call and reflects the edges (Pillow extends them)."""
    from scipy.ndimage import gaussian_filter

    images = np.asarray(block, dtype=np.float64).reshape(len(block), 3, size, size)
    sigma = blur_sigma(size)
    smooth = gaussian_filter(images, sigma=(0, 0, sigma, sigma), mode="reflect")
    return np.clip(np.round(smooth), 0, 255).reshape(len(block), -1)


def _image(pre, block: np.ndarray, image: str) -> np.ndarray:
    if image == "mean":
        return np.broadcast_to(_mean_image(pre), (len(block), pre.width))
    return blurred(block, pre.size)


def _describe_image(pre, image: str) -> str:
    if image == "mean":
        return "mean training image (mean colour)"
    return f"blurred image (the row's own, Gaussian sigma={blur_sigma(pre.size):.3g} px)"


BASELINES = {
    "number": (_constant(_zeros), lambda pre, image: f"training median {pre.center:.6g}"),
    "boolean": (_constant(_zeros), lambda pre, image: "neither true nor false"),
    "datetime": (_constant(_zeros), lambda pre, image: "training mean date"),
    "category": (
        _constant(_category),
        lambda pre, image: (
            f"most frequent training category {pre.vocabulary[0]!r}"
            if pre.vocabulary
            else "unknown category"
        ),
    ),
    "text": (_constant(_zeros), lambda pre, image: "padding tokens (empty text)"),
    "image": (_image, _describe_image),
    "audio": (_constant(_zeros), lambda pre, image: "flat spectrogram at the normalised mean"),
}


def check_image_baseline(image: str) -> None:
    if image not in IMAGE_BASELINES:
        raise ConfigError(
            f"unknown image baseline {image!r}; expected {' or '.join(IMAGE_BASELINES)}",
            option="--image-baseline",
        )


def _entry(pre):
    if pre.kind not in BASELINES:
        raise ConfigError(f"no explanation baseline for columns of kind {pre.kind!r}")
    return BASELINES[pre.kind]


def baseline_values(pre, block: np.ndarray, *, image: str = "blurred") -> np.ndarray:
    """``(N, pre.width)``: the baseline of each of the N rows of a fitted preprocessor's
    column, whose preprocessed block is ``block`` (N, pre.width)."""
    check_image_baseline(image)
    values = _entry(pre)[0](pre, np.asarray(block), image)
    if values.shape != (len(block), pre.width):
        raise ValueError(
            f"{pre.kind} baseline of shape {values.shape}, expected {(len(block), pre.width)}"
        )
    return values


def describe_baseline(pre, *, image: str = "blurred") -> str:
    """The baseline in words: ``training median 41``."""
    return _entry(pre)[1](pre, image)

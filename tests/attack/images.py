"""Image folders for the attack tests: scikit-learn's digits (real, 1797 scans of
handwritten digits) and tiny synthetic shapes, written as PNGs in class sub-folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_digits(
    folder: Path, *, size: int = 16, classes: int = 10, rows: slice = slice(None)
) -> Path:
    """scikit-learn's digits (8x8, 0..16) scaled to ``size`` px, one sub-folder per digit;
    ``rows`` picks a part (a train/test split by position: the scans are in random order)."""
    from sklearn.datasets import load_digits

    digits = load_digits(n_class=classes)
    images, labels = digits.images[rows], digits.target[rows]
    for index, (image, label) in enumerate(zip(images, labels)):
        grey = Image.fromarray((image * 255 / 16).astype(np.uint8)).resize(
            (size, size), Image.BILINEAR
        )
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        grey.convert("RGB").save(folder / str(label) / f"{index:04d}.png")
    return folder


def write_shapes(folder: Path, *, rows: int = 48, size: int = 8, seed: int = 0) -> Path:
    """Two classes a tiny network learns in a few epochs: a bright square on the left or on
    the right of a noisy background."""
    rng = np.random.default_rng(seed)
    half = size // 2
    for index in range(rows):
        label = index % 2
        pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        columns = slice(0, half) if label == 0 else slice(half, size)
        pixels[1:-1, columns] = 200
        (folder / ("left" if label == 0 else "right")).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(
            folder / ("left" if label == 0 else "right") / f"{index:03d}.png"
        )
    return folder

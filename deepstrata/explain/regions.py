"""Deletion and insertion curves over the regions of an image's (or a spectrogram's) map.

A model whose input is one image column has one column: its column curves have a single
step and say nothing. Here the column is cut into a fixed grid of cells (at most
GRID x GRID = 64: an image's rows and columns of pixels, a spectrogram's mel bands and
time slices, each split into GRID near-equal bands), the cells are ranked by the
method's summed heat map for that row (most supportive first), and the curves of
:mod:`deepstrata.explain.faithfulness` are drawn over them: deletion replaces cells by
the row's own baseline (its blurred image, or the mean colour; a flat spectrogram) in
that order, insertion restores them from the baseline; each area against a random order
of the same cells, with the same seed handling as the column curves.

Why a grid rather than SLIC superpixels (:mod:`deepstrata.explain.superpixels`): the
same cells for every method, so LIME's maps (flat over its own superpixels) are not
favoured over integrated gradients'; the same for every member of an ensemble whatever
its image size (cells are fractions of the side); and a spectrogram's time x frequency
map has no superpixels to speak of.
"""

from __future__ import annotations

import numpy as np
import torch

from deepstrata.explain.faithfulness import _area, sample_rows

GRID = 8  # cells per side: at most 64 cells
REGION_ROWS = 50  # rows the region curves are drawn on (a seeded sample beyond that)
EVALUATIONS_PER_PASS = 1024  # masked images per forward pass at most
VALUES_PER_PASS = 2**24  # and at most this many block values (64 MB of float32 per copy)


def cell_labels(height: int, width: int, grid: int = GRID) -> np.ndarray:
    """``(height, width)`` cell index of each pixel: ``min(grid, side)`` near-equal bands
    per axis, numbered row-major.

    >>> cell_labels(4, 4, 2)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [2, 2, 3, 3],
           [2, 2, 3, 3]])
    """
    return _bands(height, width, min(grid, height), min(grid, width))


def _bands(height: int, width: int, down: int, across: int) -> np.ndarray:
    """``(height, width)`` cells of ``down`` x ``across`` near-equal bands, row-major."""
    rows = np.arange(height) * down // height
    columns = np.arange(width) * across // width
    return rows[:, None] * across + columns[None, :]


def cell_scores(heat: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(rows, cells)``: each row's map ``heat (rows, H, W)`` summed over each cell."""
    cells = int(labels.max()) + 1
    flat = labels.ravel()
    return np.stack([np.bincount(flat, weights=row.ravel(), minlength=cells) for row in heat])


def _column_cells(inputs, target, column: str, shape: tuple[int, int]) -> tuple[str, np.ndarray]:
    """The kind of ``column``'s block in one member and the cell of each of its positions
    (an image's ``(3, S, S)`` channel-major pixels; a spectrogram's ``(mels, frames)``),
    cut into the same fractions of the side as the map of ``shape``."""
    index = target.columns.index(column)
    pre = inputs.member.preprocessors[column]
    kind = next(k for k, positions in inputs.positions.items() if (positions == index).any())
    height, width = (pre.n_mels, pre.frames) if kind == "audio" else (pre.size, pre.size)
    labels = _bands(height, width, min(GRID, shape[0]), min(GRID, shape[1]))
    channels = pre.width // (height * width)
    return kind, np.tile(labels.ravel(), channels)


def _values(target, column: str, shape, rows: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``(n,)`` explained values of ``rows`` (n,) with the cells of ``column`` kept where
    ``keep`` (n, cells), the others at each row's baseline; every other column as it is."""
    index = target.columns.index(column)
    members = [(inputs, *_column_cells(inputs, target, column, shape)) for inputs in target.inputs]
    out = np.empty(len(rows))
    width = sum(block.shape[1] for inputs in target.inputs for block in inputs.blocks.values())
    per_pass = max(1, min(EVALUATIONS_PER_PASS, VALUES_PER_PASS // max(width, 1)))
    for start in range(0, len(rows), per_pass):
        part = slice(start, start + per_pass)
        picked = torch.from_numpy(rows[part])
        blocks = []
        for inputs, kind, cells in members:
            member_blocks = {k: block[picked] for k, block in inputs.blocks.items()}
            where = inputs.positions[kind] == index
            mask = np.ones((len(picked), len(where)), bool)
            mask[:, where] = keep[part][:, cells]
            member_blocks[kind] = torch.where(
                torch.from_numpy(mask), member_blocks[kind], inputs.baseline[kind][picked]
            )
            blocks.append(member_blocks)
        out[part] = target._pick(target.mixed(blocks), rows[part])
    return out


def _curves(target, column, shape, rows, order, *, insert: bool) -> np.ndarray:
    """``(n, C + 1)`` explained values after 0..C cells along ``order`` (n, C)."""
    n, cells = order.shape
    keep = np.full((n, cells + 1, cells), not insert)
    for step in range(1, cells + 1):
        keep[np.arange(n), step:, order[:, step - 1]] = insert
    values = _values(target, column, shape, np.repeat(rows, cells + 1), keep.reshape(-1, cells))
    return values.reshape(n, cells + 1)


def region_curves(target, column: str, heat: np.ndarray, *, seed: int = 0) -> dict:
    """Deletion and insertion areas over the cells of ``column``, ranked by ``heat``
    (rows, H, W) (the method's map of every explained row), and in random order."""
    labels = cell_labels(*heat.shape[1:])
    cells = int(labels.max()) + 1
    if cells < 2:
        return {}
    rows = sample_rows(len(heat), REGION_ROWS, seed)
    rng = np.random.default_rng(seed)
    scores = cell_scores(heat[rows], labels)
    ordered = np.argsort(-scores, axis=1, kind="stable")  # most supportive first
    shuffled = rng.permuted(np.tile(np.arange(cells), (len(rows), 1)), axis=1)
    out = {}
    for name, insert in (("deletion", False), ("insertion", True)):
        for suffix, order in (("", ordered), ("_random", shuffled)):
            curve = _curves(target, column, heat.shape[1:], rows, order, insert=insert)
            out[f"regions_{name}_area{suffix}:{column}"] = _area(curve)
    out[f"regions_rows:{column}"] = len(rows)
    out[f"regions_cells:{column}"] = cells
    return out


def region_faithfulness(target, maps: dict[str, np.ndarray], *, seed: int = 0) -> dict:
    """:func:`region_curves` for every column with a map (image or audio)."""
    out: dict = {}
    for column, heat in maps.items():
        out.update(region_curves(target, column, heat, seed=seed))
    return out

"""LIME over superpixels for image columns, through lime's ``LimeImageExplainer``.

Each image is cut into superpixels by scikit-image's SLIC (through lime's
``SegmentationAlgorithm``), about one per 4 x 4 pixels, at most 100; a neighbour switches
superpixels off, painting them from the row's baseline image (its blurred self, or the
training mean colour: :mod:`deepstrata.explain.baselines`; lime copies ``hide_color``
over the whole image, so an image of the same shape is taken pixel by pixel), with the
row's other columns as they are. lime
fits its weighted ridge to the explained value of those images. A superpixel's weight is
spread evenly over its pixels, so a map sums to the sum of the weights.
"""

from __future__ import annotations

import numpy as np
import torch

from deepstrata.explain.library import require

BATCH = 100


class _quiet:
    """No tqdm bar from lime_image inside the block: its module's ``tqdm`` (the bar it
    draws per image, with no switch) is swapped for a plain iteration and put back.
    (tqdm's TQDM_DISABLE is read once, when tqdm is imported.)"""

    def __enter__(self):
        import lime.lime_image

        self.module, self.previous = lime.lime_image, lime.lime_image.tqdm
        self.module.tqdm = lambda iterable, *args, **kwargs: iterable

    def __exit__(self, *exc) -> None:
        self.module.tqdm = self.previous


def image_columns(target) -> list[str]:
    pres = target.model.members[0].preprocessors
    return [name for name in target.columns if pres[name].kind == "image"]


def _classifier(target, row: int, column: str):
    """``images (n, S, S, 3) uint8 -> (n, 1)``: the explained value of ``row`` with
    ``column``'s image replaced."""
    index = target.columns.index(column)

    def classify(images: np.ndarray) -> np.ndarray:
        flat = torch.from_numpy(
            np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)
        )
        blocks = []
        for inputs in target.inputs:
            member_blocks = {k: b[[row]].repeat(len(images), 1) for k, b in inputs.blocks.items()}
            for kind, positions in inputs.positions.items():
                where = torch.from_numpy(positions == index)
                if where.any():
                    member_blocks[kind][:, where] = flat.to(member_blocks[kind].dtype)
            blocks.append(member_blocks)
        outputs = target.mixed(blocks)
        return target._pick(outputs, np.full(len(images), row))[:, None]

    return classify


def superpixel_maps(target, *, samples: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """``{column: (rows, S, S)}`` LIME weights spread over each superpixel's pixels."""
    lime_image = require("lime.lime_image", "lime")
    wrappers = require("lime.wrappers.scikit_image", "lime")
    maps = {}
    for column in image_columns(target):
        pixels = target.pixels(column)  # (N, S, S, 3)
        pre = target.model.members[0].preprocessors[column]
        hidden = target.baseline_pixels(column)  # (N, S, S, 3): each row's baseline image
        segments_wanted = int(min(100, max(4, (pre.size // 4) ** 2)))
        heat = np.zeros(pixels.shape[:3])
        for row in range(target.rows):
            explainer = lime_image.LimeImageExplainer(random_state=seed + row)
            segmenter = wrappers.SegmentationAlgorithm(
                "slic", n_segments=segments_wanted, compactness=10, start_label=0
            )
            with _quiet():  # lime draws a tqdm bar per image
                found = explainer.explain_instance(
                    pixels[row],
                    _classifier(target, row, column),
                    labels=(0,),
                    hide_color=hidden[row],  # lime paints it over: fudged[:] = hide_color
                    num_samples=samples,
                    batch_size=BATCH,
                    segmentation_fn=segmenter,
                )
            segments = found.segments
            sizes = np.bincount(segments.ravel())
            for segment, weight in found.local_exp[0]:
                heat[row][segments == segment] = weight / sizes[segment]
        maps[column] = heat
    return maps

"""Image columns, trained from scratch: augment, normalise, a small ResNet per column.

``(B, sum of 3 * S * S) uint8 -> (B, columns * resnet.out_dim)``. Each column gets
its own ResNet: two image columns of one table usually show different things (a
photo and a scan, a front and a back), and the compute is the same as a shared
network's (every image goes through one ResNet once); sharing would only save
parameters, a few hundred thousand per column at the default size.

>>> encoder = ImageEncoder(sizes=[8], means=[[0.5] * 3], stds=[[0.25] * 3], width=8, depth=2)
>>> encoder(torch.zeros(4, 3 * 8 * 8, dtype=torch.uint8)).shape
torch.Size([4, 16])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepstrata.config import with_defaults
from deepstrata.encoders.pretrained import ImagePixels, build_pretrained_encoder, uses_pretrained
from deepstrata.nn.augment import TRANSFORMS, ImageAugment
from deepstrata.nn.conv import ResNet, stem_stride_for
from deepstrata.preprocess.image import ImagePreprocessor


class ImageColumnEncoder(nn.Module):
    """One column: ``(B, 3 * S * S) uint8 -> (B, out_dim)``."""

    def __init__(
        self,
        *,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        width: int,
        depth: int,
        augment: Sequence[str],
    ) -> None:
        super().__init__()
        self.size = size
        self.augment = ImageAugment(transforms=augment)
        # Not saved with the weights: they come from the preprocessor's JSON state,
        # so a bundle holds one copy of them. They still move with .to(device).
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.resnet = ResNet(
            in_channels=3, width=width, depth=depth, stem_stride=stem_stride_for(size, size)
        )
        self.out_dim = self.resnet.out_dim

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.reshape(-1, 3, self.size, self.size).float() / 255  # (B, 3, S, S) in 0..1
        x = self.augment(x)  # identity unless training
        x = (x - self.mean) / self.std
        return self.resnet(x)  # (B, out_dim)


class ImageEncoder(nn.Module):
    """``(B, sum of 3 * S_c * S_c) uint8 -> (B, columns * out_dim)``, one ResNet per column.

    ``means`` and ``stds``: per column, the three channel statistics (0..1 scale)
    of the training images. ``augment``: the transforms applied in training mode
    (see :class:`~deepstrata.nn.augment.ImageAugment`); empty turns it off.
    """

    def __init__(
        self,
        *,
        sizes: Sequence[int],
        means: Sequence[Sequence[float]],
        stds: Sequence[Sequence[float]],
        width: int = 32,
        depth: int = 3,
        augment: Sequence[str] = TRANSFORMS,
    ) -> None:
        super().__init__()
        self.widths = [3 * size * size for size in sizes]
        self.columns = nn.ModuleList(
            ImageColumnEncoder(
                size=size, mean=mean, std=std, width=width, depth=depth, augment=augment
            )
            for size, mean, std in zip(sizes, means, stds)
        )
        self.out_dim = sum(column.out_dim for column in self.columns)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        blocks = pixels.split(self.widths, dim=1)  # C tensors of (B, 3 * S_c * S_c)
        return torch.cat([encode(block) for encode, block in zip(self.columns, blocks)], dim=1)


def parse_augment(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"crop,flip"`` -> ("crop", "flip"); ``"none"``, ``""`` or None -> ()."""
    if value is None:
        return ()
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [name.strip().lower() for name in names if name.strip()]
    if names == ["none"]:
        return ()
    unknown = [name for name in names if name not in TRANSFORMS]
    if unknown:
        raise ValueError(
            f"unknown image augmentation {', '.join(map(repr, unknown))}; "
            f"expected a comma-separated list of {', '.join(TRANSFORMS)}, or 'none'"
        )
    return tuple(names)


def build_image_encoder(
    preprocessors: Sequence[ImagePreprocessor], options: dict | None = None
) -> nn.Module:
    """The image kind's encoder, from its fitted columns and the fit options.

    With ``strategy`` finetune or features, the pretrained network (EfficientNet-Lite0)
    encodes every column (see :mod:`deepstrata.encoders.pretrained`); otherwise a
    ResNet per column is trained from scratch.

    Reads ``image_width``, ``image_depth`` and ``image_augment`` (``"none"`` or ``""``
    turns it off); a missing one is its default (:mod:`deepstrata.kinds`).
    """
    options = with_defaults(options or {})
    augment = parse_augment(options["image_augment"])
    if uses_pretrained(options):  # features: the backbone runs once, so nothing to augment
        if options.get("strategy") == "features":
            augment = ()
        prepare = [ImagePixels(size=pre.size, augment=augment) for pre in preprocessors]
        return build_pretrained_encoder("image", [p.width for p in preprocessors], options, prepare)
    return ImageEncoder(
        sizes=[pre.size for pre in preprocessors],
        means=[pre.mean for pre in preprocessors],
        stds=[pre.std for pre in preprocessors],
        width=options["image_width"],
        depth=options["image_depth"],
        augment=augment,
    )

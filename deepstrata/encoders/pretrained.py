"""A kind's columns through one pretrained backbone (``--strategy finetune|features``).

``(B, sum of the columns' widths) -> (B, columns * backbone.out_dim)``: the block is
split per column, each column is made ready for the backbone by its ``prepare``
module (images: reshaped to ``(B, 3, S, S)`` on the 0..1 scale and augmented while
training; text ids pass as they are) and encoded by the one shared backbone. Two
image columns share the ImageNet features as a person shares their eyes; the head
and combiner above tell the columns apart.

The backbone carries ``lr_scale``: the trainer gives its parameters that fraction
of the learning rate (discriminative learning rates), so fine-tuning adapts the
pretrained layers gently while the new layers learn fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from deepstrata.config import with_defaults
from deepstrata.nn.augment import ImageAugment
from deepstrata.pretrained.registry import pretrained_name, uses_pretrained

__all__ = [
    "ImagePixels",
    "PretrainedEncoder",
    "build_pretrained_encoder",
    "pretrained_name",
    "uses_pretrained",
]


class ImagePixels(nn.Module):
    """``(B, 3 * S * S)`` uint8 -> ``(B, 3, S, S)`` on 0..1, augmented in training mode."""

    def __init__(self, *, size: int, augment: Sequence[str] = ()) -> None:
        super().__init__()
        self.size = size
        self.augment = ImageAugment(transforms=augment)

    def extra_repr(self) -> str:
        return f"size={self.size}"

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.reshape(-1, 3, self.size, self.size).float() / 255
        return self.augment(x)


class PretrainedEncoder(nn.Module):
    """Columns side by side through one backbone (see the module docstring)."""

    def __init__(
        self,
        *,
        backbone: nn.Module,
        network: str,
        widths: Sequence[int],
        prepare: Sequence[nn.Module] | None = None,
        lr_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.network = network  # its name in deepstrata.pretrained.registry
        self.backbone.lr_scale = lr_scale
        self.widths = list(widths)
        self.prepare = nn.ModuleList(prepare or [nn.Identity() for _ in widths])
        self.out_dim = len(self.widths) * backbone.out_dim
        # Set by the feature extractor while it embeds (a plain attribute: never saved): the
        # backbone run through ONNX Runtime (deepstrata.pretrained.runtime).
        self.runtime: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, block: torch.Tensor) -> torch.Tensor:
        backbone = self.runtime if self.runtime is not None and not self.training else self.backbone
        columns = block.split(self.widths, dim=1)  # C tensors of (B, width_c)
        encoded = [backbone(prepare(c)) for prepare, c in zip(self.prepare, columns)]
        return torch.cat(encoded, dim=1)  # (B, C * out_dim)

    def lengths(self, block: torch.Tensor) -> torch.Tensor | None:
        """``(B,)``: how much of each row the backbone reads, when that varies (text: tokens,
        over every column); None when it does not (images). Batches of like length cost less."""
        count = getattr(self.backbone, "lengths", None)
        return count(block) if callable(count) else None


def build_pretrained_encoder(
    kind: str, widths: Sequence[int], options: dict, prepare: Sequence[nn.Module] | None = None
) -> PretrainedEncoder:
    from deepstrata.pretrained.registry import get

    name = pretrained_name(kind, options)
    return PretrainedEncoder(
        backbone=get(name).build(),
        network=name,
        widths=widths,
        prepare=prepare,
        lr_scale=with_defaults(options)["pretrained_lr_scale"],
    )

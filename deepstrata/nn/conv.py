"""A small ResNet for 2-D inputs (images, spectrograms): stages of residual blocks.

GroupNorm rather than BatchNorm, for the same reason as the MLP's LayerNorm: a
row's prediction must not depend on which other rows share its batch.

>>> net = ResNet(in_channels=3, width=8, depth=2)
>>> net(torch.zeros(4, 3, 32, 32)).shape
torch.Size([4, 16])
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(8, channels), num_channels=channels)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut; ``stride`` 2 halves height and width."""

    def __init__(self, *, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = _norm(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                _norm(out_channels),
            )
        self.activation = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation(self.norm1(self.conv1(x)))  # (B, C_out, H / stride, W / stride)
        y = self.norm2(self.conv2(y))
        return self.activation(y + self.shortcut(x))


class ResNet(nn.Module):
    """``(B, in_channels, H, W) -> (B, out_dim)``.

    A 3x3 stem of ``width`` channels (``stem_stride`` 2 halves the resolution
    first), then ``depth`` stages of ``blocks`` residual
    blocks; each stage after the first halves the resolution and doubles the
    channels. Global average pooling makes any input size work.
    ``out_dim = width * 2 ** (depth - 1)``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        width: int = 32,
        depth: int = 3,
        blocks: int = 1,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if width < 1 or depth < 1 or blocks < 1 or stem_stride < 1:
            raise ValueError(
                f"width, depth, blocks and stem_stride must be >= 1, "
                f"got {width}, {depth}, {blocks}, {stem_stride}"
            )
        # A strided stem quarters the work of every later layer: on inputs of 48 pixels or
        # more, the first stage at full resolution costs most of the time and adds little.
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=stem_stride, padding=1, bias=False),
            _norm(width),
            nn.GELU(),
        )
        stages: list[nn.Module] = []
        channels = width
        for stage in range(depth):
            out_channels = width * 2**stage
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(
                    ResidualBlock(in_channels=channels, out_channels=out_channels, stride=stride)
                )
                channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.out_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(x))  # (B, out_dim, H', W'): H / stem / 2**(depth-1)
        return features.mean(dim=(2, 3))  # (B, out_dim)


STRIDED_STEM_FROM = 48


def stem_stride_for(height: int, width: int) -> int:
    """2 for inputs of at least 48 x 48 (photos, spectrograms), else 1 (thumbnails, digits)."""
    return 2 if min(height, width) >= STRIDED_STEM_FROM else 1

"""Audio columns: a small ResNet over each column's log-mel spectrogram, trained from scratch.

The preprocessor has already made each clip a standardised ``(n_mels, frames)``
spectrogram, flattened; this encoder reshapes it to a one-channel image, masks
random mel bands and time spans while training (SpecAugment), and runs one
ResNet per column (columns may hold different sounds, so they share nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepstrata.config import with_defaults
from deepstrata.nn.conv import ResNet, stem_stride_for
from deepstrata.nn.spectrogram import SpecAugment
from deepstrata.preprocess.audio import AudioPreprocessor


class AudioEncoder(nn.Module):
    """``(B, sum of n_mels * frames) float32 -> (B, columns * ResNet out_dim)``.

    ``shapes`` is one ``(n_mels, frames)`` per column, in the order of the block.

    >>> encoder = AudioEncoder(shapes=[(16, 20)], width=4, depth=2)
    >>> encoder(torch.zeros(3, 16 * 20)).shape
    torch.Size([3, 8])
    """

    def __init__(
        self,
        *,
        shapes: Sequence[tuple[int, int]],
        width: int = 32,
        depth: int = 3,
        spec_augment: bool = True,
    ) -> None:
        super().__init__()
        self.shapes = [(int(n_mels), int(frames)) for n_mels, frames in shapes]
        self.widths = [n_mels * frames for n_mels, frames in self.shapes]
        self.augment: nn.Module = SpecAugment() if spec_augment else nn.Identity()
        self.networks = nn.ModuleList(
            ResNet(in_channels=1, width=width, depth=depth, stem_stride=stem_stride_for(*shape))
            for shape in self.shapes
        )
        self.out_dim = sum(network.out_dim for network in self.networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        columns = x.split(self.widths, dim=1)  # C tensors of (B, n_mels * frames)
        features = []
        for column, (n_mels, frames), network in zip(columns, self.shapes, self.networks):
            spectrogram = column.reshape(-1, 1, n_mels, frames)  # (B, 1, n_mels, frames)
            features.append(network(self.augment(spectrogram)))  # (B, out_dim)
        return torch.cat(features, dim=1)  # (B, columns * out_dim)


def build_audio_encoder(preprocessors: Sequence[AudioPreprocessor], options: dict) -> AudioEncoder:
    """The audio kind's encoder for its fitted :class:`AudioPreprocessor` columns.

    Options read: ``audio_width`` (the ResNet's first-stage channels), ``audio_depth``
    (its stages) and ``spec_augment``; a missing one is its default.
    """
    options = with_defaults(options)
    return AudioEncoder(
        shapes=[(p.n_mels, p.frames) for p in preprocessors],
        width=options["audio_width"],
        depth=options["audio_depth"],
        spec_augment=options["spec_augment"],
    )

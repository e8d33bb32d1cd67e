"""Audio columns: a small ResNet over each column's log-mel spectrogram, trained from scratch.

The preprocessor has already made each clip a standardised ``(n_mels, frames)``
spectrogram, flattened; this encoder reshapes it to a one-channel image and, per
column (columns may hold different sounds, so they share nothing):

1. while training, makes a new voice of each clip (``audio_augment``: speed, pitch,
   noise, time shift; :class:`~deepstrata.nn.spectrogram.LogMelAugment`) on the
   log-mel itself: the standardisation is undone, the clip changed, and redone;
2. with the preprocessor's ``normalise`` (``audio_normalise``, on for new fits), takes
   each clip to mean 0 and variance 1, at training and prediction alike. It is done
   here rather than in the preprocessor because noise is added to the clip as recorded,
   before it is normalised; the preprocessor's state carries the switch, so a bundle
   made before it existed (no switch: off) gives the same outputs as before;
3. while training, masks random mel bands and time spans (SpecAugment);
4. runs the column's ResNet.

Waveform augmentations would need the encoder to get waveforms and make a spectrogram
per batch; their log-mel forms need neither, and leave the decode cache and the
bundle's inputs as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from deepstrata.config import with_defaults
from deepstrata.nn.conv import ResNet, stem_stride_for
from deepstrata.nn.spectrogram import LogMelAugment, SpecAugment, per_clip_normalise
from deepstrata.preprocess.audio import AudioPreprocessor, frame_settings


class LogMelInput(nn.Module):
    """One column's standardised ``(B, 1, n_mels, frames)`` -> what its ResNet sees.

    ``mean``, ``std``: the preprocessor's per-bin statistics (``(n_mels,)``), to undo
    the standardisation; ``augment``: a :class:`LogMelAugment` for training, or None;
    ``normalise``: each clip to mean 0, variance 1 (training and eval). With neither,
    the input passes through untouched (bit for bit).
    """

    def __init__(
        self,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        augment: nn.Module | None = None,
        normalise: bool = False,
    ) -> None:
        super().__init__()
        # Non-persistent: they come from the preprocessor's state, not the weights.
        column = torch.tensor(np.asarray(mean, dtype=np.float32))[:, None]  # (n_mels, 1)
        self.register_buffer("mean", column, persistent=False)
        self.register_buffer(
            "std", torch.tensor(np.asarray(std, dtype=np.float32))[:, None], persistent=False
        )
        self.augment = augment
        self.normalise = normalise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        augmenting = self.training and self.augment is not None
        if not augmenting and not self.normalise:
            return x  # what every bundle made before these options saw
        log_mel = x * self.std + self.mean  # natural log of mel power, as decoded
        if augmenting:
            log_mel = self.augment(log_mel)
        if self.normalise:
            return per_clip_normalise(log_mel)
        return (log_mel - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"normalise={self.normalise}"


class AudioEncoder(nn.Module):
    """``(B, sum of n_mels * frames) float32 -> (B, columns * ResNet out_dim)``.

    ``shapes`` is one ``(n_mels, frames)`` per column, in the order of the block;
    ``inputs`` one :class:`LogMelInput` per column (default: none, the input as it is).

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
        inputs: Sequence[LogMelInput] | None = None,
    ) -> None:
        super().__init__()
        self.shapes = [(int(n_mels), int(frames)) for n_mels, frames in shapes]
        self.widths = [n_mels * frames for n_mels, frames in self.shapes]
        if inputs is None:
            inputs = [nn.Identity() for _ in self.shapes]
        self.inputs = nn.ModuleList(inputs)
        self.augment: nn.Module = SpecAugment() if spec_augment else nn.Identity()
        self.networks = nn.ModuleList(
            ResNet(in_channels=1, width=width, depth=depth, stem_stride=stem_stride_for(*shape))
            for shape in self.shapes
        )
        self.out_dim = sum(network.out_dim for network in self.networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        columns = x.split(self.widths, dim=1)  # C tensors of (B, n_mels * frames)
        features = []
        for column, (n_mels, frames), prepare, network in zip(
            columns, self.shapes, self.inputs, self.networks
        ):
            spectrogram = prepare(column.reshape(-1, 1, n_mels, frames))  # (B, 1, n_mels, frames)
            features.append(network(self.augment(spectrogram)))  # (B, out_dim)
        return torch.cat(features, dim=1)  # (B, columns * out_dim)


def augment_transforms(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"speed,noise"`` -> ``("speed", "noise")``; ``"none"`` or empty -> ``()``."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(part.strip() for part in parts if part.strip() and part.strip() != "none")


def build_audio_encoder(preprocessors: Sequence[AudioPreprocessor], options: dict) -> AudioEncoder:
    """The audio kind's encoder for its fitted :class:`AudioPreprocessor` columns.

    Options read: ``audio_width`` (the ResNet's first-stage channels), ``audio_depth``
    (its stages), ``spec_augment`` and ``audio_augment``; a missing one is its default.
    Each preprocessor gives its statistics and its ``normalise`` switch.
    """
    options = with_defaults(options)
    transforms = augment_transforms(options["audio_augment"])
    inputs = [
        LogMelInput(
            mean=p.mean,
            std=p.std,
            augment=LogMelAugment(
                sample_rate=p.sample_rate,
                n_fft=frame_settings(p.sample_rate)[0],
                n_mels=p.n_mels,
                transforms=transforms,
            )
            if transforms
            else None,
            normalise=p.normalise,
        )
        for p in preprocessors
    ]
    return AudioEncoder(
        shapes=[(p.n_mels, p.frames) for p in preprocessors],
        width=options["audio_width"],
        depth=options["audio_depth"],
        spec_augment=options["spec_augment"],
        inputs=inputs,
    )

"""Log-mel spectrograms in torch, and SpecAugment masking for training.

The audio kind turns a waveform into a log-mel spectrogram once, at decode time
(:func:`log_mel_spectrogram`); the encoder then masks random mel bands and time
spans of it while training (:class:`SpecAugment`), the standard augmentation for
spectrogram models (Park et al., 2019).

Choices, so results match a reader's expectations:

- frames: ``torch.stft`` with a periodic Hann window and ``center=True``
  (reflect padding), so there are ``1 + samples // hop_length`` frames and frame
  ``t`` is centred on sample ``t * hop_length``;
- power spectrum ``|X|**2``, then an HTK mel filterbank (triangles, peak 1, no
  area normalisation), the same as ``torchaudio``'s ``MelSpectrogram`` defaults;
- natural log of ``mel + 1e-6``: the offset keeps digital silence finite (about
  -13.8) without clamping quiet sounds the way a decibel floor would.

>>> log_mel_spectrogram(torch.zeros(2, 16000), sample_rate=16000).shape
torch.Size([2, 64, 101])
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

LOG_OFFSET = 1e-6


def hz_to_mel(frequency: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 * log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def _filterbank(
    n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float
) -> np.ndarray:
    bin_frequencies = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)  # (n_freqs,)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # (n_mels + 2,)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1)
    rising = (bin_frequencies - lower) / (centre - lower)
    falling = (upper - bin_frequencies) / (upper - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)  # (n_mels, n_freqs)
    empty = np.flatnonzero(weights.sum(axis=1) == 0)
    if len(empty):
        raise ValueError(
            f"{n_mels} mel bins are too many for n_fft={n_fft} at {sample_rate} Hz: "
            f"{len(empty)} of the filters (the lowest centred on {centre[empty[0], 0]:.0f} Hz) "
            "catch no frequency bin; use fewer mel bins or a longer window"
        )
    weights.flags.writeable = False
    return weights


def mel_filterbank(
    *,
    n_fft: int,
    n_mels: int,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> torch.Tensor:
    """``(n_mels, n_fft // 2 + 1)`` float32 triangular filters on the HTK mel scale.

    Filter ``m`` rises linearly from 0 at mel edge ``m`` to 1 at edge ``m + 1`` and
    falls back to 0 at edge ``m + 2``; the ``n_mels + 2`` edges are evenly spaced
    in mel between ``f_min`` and ``f_max`` (default: the Nyquist frequency).
    Raises ValueError when a filter is so narrow that no frequency bin falls in it.

    >>> mel_filterbank(n_fft=400, n_mels=64, sample_rate=16000).shape
    torch.Size([64, 201])
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    weights = _filterbank(int(n_fft), int(n_mels), int(sample_rate), float(f_min), float(f_max))
    return torch.from_numpy(weights.astype(np.float32))


def mel_centre_frequencies(
    *, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> np.ndarray:
    """``(n_mels,)`` the frequency in Hz at which each filter of :func:`mel_filterbank` peaks."""
    f_max = sample_rate / 2 if f_max is None else f_max
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))[1:-1]


def log_mel_spectrogram(
    waveform: torch.Tensor,
    *,
    sample_rate: int,
    n_fft: int = 400,
    hop_length: int = 160,
    n_mels: int = 64,
) -> torch.Tensor:
    """``(B, samples)`` or ``(samples,)`` float -> ``(B, n_mels, frames)`` or ``(n_mels, frames)``.

    ``frames = 1 + samples // hop_length``. The defaults are a 25 ms window and a
    10 ms hop at 16 kHz. Values are ``log(mel power + 1e-6)``; the waveform must
    be longer than ``n_fft // 2`` samples (the reflect padding needs it).
    """
    single = waveform.dim() == 1
    batch = waveform[None] if single else waveform  # (B, samples)
    window = torch.hann_window(n_fft, periodic=True, dtype=batch.dtype, device=batch.device)
    spectrum = torch.stft(
        batch,
        n_fft=n_fft,
        hop_length=hop_length,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )  # (B, n_fft // 2 + 1, frames)
    power = spectrum.real**2 + spectrum.imag**2
    filters = mel_filterbank(n_fft=n_fft, n_mels=n_mels, sample_rate=sample_rate)
    mel = filters.to(device=batch.device, dtype=batch.dtype) @ power  # (B, n_mels, frames)
    log_mel = torch.log(mel + LOG_OFFSET)
    return log_mel[0] if single else log_mel


class SpecAugment(nn.Module):
    """Zero random mel bands and time spans of ``(B, ..., n_mels, frames)``, in training only.

    Each sample gets its own ``frequency_masks`` bands of 0 to ``max_frequency_width``
    mel bins and ``time_masks`` spans of 0 to ``max_time_width`` frames (widths and
    starts uniform; masks may overlap). Masked cells become 0, which for the audio
    kind's standardised spectrograms is each bin's training mean: the model sees
    "no information" rather than a loud or silent patch. In eval mode, identity.
    Randomness comes from torch's global RNG on the input's device.

    >>> augment = SpecAugment().eval()
    >>> x = torch.randn(2, 1, 64, 101)
    >>> torch.equal(augment(x), x)
    True
    """

    def __init__(
        self,
        *,
        frequency_masks: int = 2,
        max_frequency_width: int = 8,
        time_masks: int = 2,
        max_time_width: int = 10,
    ) -> None:
        super().__init__()
        self.frequency_masks = frequency_masks
        self.max_frequency_width = max_frequency_width
        self.time_masks = time_masks
        self.max_time_width = max_time_width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        batch, n_mels, frames = x.shape[0], x.shape[-2], x.shape[-1]
        masked_bins = _random_spans(
            batch, self.frequency_masks, self.max_frequency_width, n_mels, x.device
        )  # (B, n_mels)
        masked_frames = _random_spans(
            batch, self.time_masks, self.max_time_width, frames, x.device
        )  # (B, frames)
        leading = (1,) * (x.dim() - 3)  # channel dimensions, if any
        mask = masked_bins.view(batch, *leading, n_mels, 1) | masked_frames.view(
            batch, *leading, 1, frames
        )  # (B, ..., n_mels, frames)
        return x.masked_fill(mask, 0.0)


def _random_spans(
    batch: int, count: int, max_width: int, size: int, device: torch.device
) -> torch.Tensor:
    """``(batch, size)`` bool: the union of ``count`` random spans of 0..max_width per row."""
    positions = torch.arange(size, device=device)
    if count <= 0 or max_width <= 0:
        return torch.zeros(batch, size, dtype=torch.bool, device=device)
    max_width = min(max_width, size)
    widths = torch.floor(torch.rand(batch, count, 1, device=device) * (max_width + 1))
    starts = torch.floor(torch.rand(batch, count, 1, device=device) * (size - widths + 1))
    inside = (positions >= starts) & (positions < starts + widths)  # (B, count, size)
    return inside.any(dim=1)

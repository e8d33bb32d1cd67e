"""Log-mel spectrograms in torch, and the augmentations audio models train with.

The audio kind turns a waveform into a log-mel spectrogram once, at decode time
(:func:`log_mel_spectrogram`); the encoder then changes it while training:
:class:`LogMelAugment` makes new voices of it (speed, pitch, noise, time shift, all
on the log-mel itself, see there) and :class:`SpecAugment` masks random mel bands
and time spans, the standard augmentation for spectrogram models (Park et al., 2019).
:func:`per_clip_normalise` takes each clip to mean 0 and variance 1 (loudness and
dynamic range vary with the recording, not the word).

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
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOG_OFFSET = 1e-6
LOG_SILENCE = math.log(LOG_OFFSET)  # a cell of digital silence: log(0 + offset)


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


AUDIO_TRANSFORMS = ("speed", "pitch", "noise", "shift")


class LogMelAugment(nn.Module):
    """New voices of ``(B, ..., n_mels, frames)`` log-mel spectrograms (natural log of mel
    power, as :func:`log_mel_spectrogram` makes them), random per clip, in training only.

    Each transform is the log-mel form of a waveform augmentation, so clips are decoded
    once and augmented on the batch's device without a waveform or an STFT per epoch:

    - ``"speed"``: the clip played ``r`` times faster, ``r`` uniform in ``speed`` (0.9 to
      1.1, Kaldi's speed perturbation): frame ``t`` shows time ``r * t``, and a
      frequency ``f`` moves to ``r * f`` (the mel axis warped through Hz);
    - ``"pitch"``: every frequency times ``p``, ``p`` uniform in ``pitch`` (0.9 to 1.1),
      the duration kept: a vocal-tract-length warp (Jaitly and Hinton, 2013), what makes
      one speaker sound like another;
    - ``"shift"``: the clip moved in time by up to ``shift`` of its length either way,
      silence coming in;
    - ``"noise"``: to a clip in two (``noise_probability``), white noise at a
      signal-to-noise ratio uniform in ``snr`` dB, added in the power domain
      (``log(exp(x) + noise)``): each mel band gets power in proportion to its filter's
      width, and each cell a Gamma-distributed draw around it, as a periodogram summed
      over the band's bins has. The other clips stay clean: a model that only ever heard
      noise finds clean clips, and their digital silence, strange.

    Speed, pitch and shift make one resample (``grid_sample``); what comes in from
    outside the clip, or above the Nyquist frequency, is silence. In eval mode, identity.
    Randomness comes from torch's global generator on the input's device.

    >>> augment = LogMelAugment(sample_rate=16000, n_fft=400, n_mels=16).eval()
    >>> x = torch.randn(2, 1, 16, 30)
    >>> torch.equal(augment(x), x)
    True
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        n_fft: int,
        n_mels: int,
        transforms: Sequence[str] = AUDIO_TRANSFORMS,
        speed: tuple[float, float] = (0.9, 1.1),
        pitch: tuple[float, float] = (0.9, 1.1),
        shift: float = 0.1,
        snr: tuple[float, float] = (10.0, 30.0),
        noise_probability: float = 0.5,
    ) -> None:
        super().__init__()
        unknown = set(transforms) - set(AUDIO_TRANSFORMS)
        if unknown:
            raise ValueError(f"unknown transforms {sorted(unknown)}; expected {AUDIO_TRANSFORMS}")
        self.transforms = tuple(t for t in AUDIO_TRANSFORMS if t in transforms)
        self.speed, self.pitch, self.shift, self.snr = speed, pitch, shift, snr
        self.noise_probability = noise_probability
        nyquist_mel = float(hz_to_mel(sample_rate / 2))
        self.mel_step = nyquist_mel / (n_mels + 1)  # filter k peaks at mel (k + 1) * step
        filters = mel_filterbank(n_fft=n_fft, n_mels=n_mels, sample_rate=sample_rate)
        width = filters.sum(dim=1)  # (n_mels,) how much white noise each band collects
        # Non-persistent: derived from the settings, so no bundle stores them.
        centres = mel_centre_frequencies(n_mels=n_mels, sample_rate=sample_rate)
        self.register_buffer("centres", torch.tensor(centres, dtype=torch.float32), False)
        self.register_buffer("noise_share", width / width.sum(), False)
        self.register_buffer("noise_shape", width**2 / filters.square().sum(dim=1), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.transforms:
            return x
        shape = x.shape
        x = x.reshape(-1, 1, shape[-2], shape[-1])  # (B, 1, n_mels, frames)
        if {"speed", "pitch", "shift"} & set(self.transforms):
            x = self._warp(x)
        if "noise" in self.transforms:
            x = self._noise(x)
        return x.reshape(shape)

    def extra_repr(self) -> str:
        return f"transforms={self.transforms}"

    def _uniform(self, batch: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, 1, device=like.device, dtype=like.dtype)

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, n_mels, frames = x.shape
        ones = torch.ones(batch, 1, device=x.device, dtype=x.dtype)
        rate = self._uniform(batch, *self.speed, x) if "speed" in self.transforms else ones
        scale = rate * (self._uniform(batch, *self.pitch, x) if "pitch" in self.transforms else 1)
        offset = 0 * ones
        if "shift" in self.transforms:
            offset = torch.round(self._uniform(batch, -self.shift, self.shift, x) * frames)
        time = torch.arange(frames, device=x.device, dtype=x.dtype)
        source_frame = rate * time - offset  # (B, frames): where each output frame comes from
        source_hz = self.centres.to(x.dtype) / scale  # (B, n_mels): a frequency f came from f/scale
        source_bin = 2595.0 * torch.log10(1 + source_hz / 700.0) / self.mel_step - 1
        grid = torch.stack(
            [
                (2 * source_frame / max(frames - 1, 1) - 1)[:, None, :].expand(-1, n_mels, -1),
                (2 * source_bin / max(n_mels - 1, 1) - 1)[:, :, None].expand(-1, -1, frames),
            ],
            dim=-1,
        )  # (B, n_mels, frames, 2): (x, y) = (time, mel) in [-1, 1]
        # Shifted by silence so that the zeros grid_sample brings in from outside are silence.
        moved = F.grid_sample(
            x - LOG_SILENCE, grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        return moved + LOG_SILENCE

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        signal = x.exp().sum(dim=-2).mean(dim=-1)  # (B, 1): mel power per frame, clip average
        snr = self._uniform(batch, *self.snr, x)  # (B, 1) dB
        noise = (signal / 10 ** (snr / 10))[:, :, None, None] * self.noise_share[:, None]
        shape = self.noise_shape[:, None].to(x.dtype).expand(x.shape)  # (B, 1, n_mels, frames)
        draw = torch.distributions.Gamma(shape, shape).sample()  # mean 1 per cell
        noisy = torch.rand(batch, 1, 1, 1, device=x.device) < self.noise_probability
        return torch.where(noisy, torch.logaddexp(x, torch.log(noise * draw + 1e-30)), x)


def per_clip_normalise(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``(B, ..., n_mels, frames)``: each clip minus its mean, over its standard deviation
    (all its cells: one mean and one variance per clip).

    >>> x = per_clip_normalise(torch.randn(3, 1, 8, 10) * 5 + 2)
    >>> bool(x.mean(dim=(-2, -1)).abs().max() < 1e-5)
    True
    """
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)

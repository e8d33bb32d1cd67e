"""Audio files: one fixed-size, standardised log-mel spectrogram per row.

A cell holds a path to a WAV, FLAC or OGG file (anything libsndfile reads),
relative to the table's folder. Each file is decoded once (in worker processes
when there are many, see :mod:`deepstrata.data.files`):

1. read as float32 and mixed to mono (the mean of the channels);
2. resampled to ``sample_rate`` with a polyphase filter (``scipy.signal.resample_poly``);
3. brought to ``seconds``: a shorter clip is padded with silence at the end; a
   longer one is cut to the window of ``seconds`` with the most energy (the sum
   of squared samples), so a word in a long recording is kept rather than the
   silence before it;
4. turned into a log-mel spectrogram (:func:`deepstrata.nn.spectrogram.log_mel_spectrogram`)
   with a 25 ms window and a 10 ms hop: ``(n_mels, frames)``, ``frames = 1 + samples // hop``.

``fit`` learns each mel bin's mean and standard deviation over the training
clips (all their frames); ``transform`` returns ``(log_mel - mean) / std``
flattened to ``n_mels * frames`` values per row, mel bin major. ``normalise``
(``--audio-normalise``, on for new fits) asks the encoder to take each clip to mean 0
and variance 1 after its training augmentations (:mod:`deepstrata.encoders.audio`); it
is part of the state, and a state without it (a bundle made before it) means off. A missing cell
(empty or NaN) gives zeros: every bin at its training mean. A file that cannot
be read is not missing: all such files are listed in one DataError.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch

from deepstrata.config import default
from deepstrata.data.files import BadFile, decode_column, read_files
from deepstrata.data.table import Table
from deepstrata.nn.spectrogram import log_mel_spectrogram, mel_filterbank
from deepstrata.preprocess.base import Preprocessor, file_field

WINDOW_SECONDS = 0.025  # 400 samples at 16 kHz: the usual speech analysis window
HOP_SECONDS = 0.010
MIN_STD = 0.1  # natural-log units; only a bin that is constant over the training clips is near it


def frame_settings(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop_length)`` in samples for ``sample_rate``: 25 ms and 10 ms."""
    return round(WINDOW_SECONDS * sample_rate), round(HOP_SECONDS * sample_rate)


def read_waveform(path: Path, *, sample_rate: int) -> np.ndarray:
    """``(samples,)`` float32 mono waveform of the file at ``path``, at ``sample_rate``.

    Raises ValueError with a reason a user can act on for an unreadable file.
    """
    if path.stat().st_size == 0:
        raise ValueError("empty file")
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)  # (samples, channels)
    except soundfile.LibsndfileError as exc:
        # Without the "Error opening '<path>'" prefix: the error already names the file.
        raise ValueError(f"not a readable audio file: {exc.error_string}") from None
    if data.shape[0] == 0:
        raise ValueError("no audio samples")
    if not np.isfinite(data).all():
        raise ValueError("the audio holds samples that are not finite (NaN or infinity)")
    mono = data.mean(axis=1)  # (samples,)
    if rate != sample_rate:
        common = math.gcd(sample_rate, rate)
        # Imported here: scipy.signal takes most of a second to import, and only audio
        # at another rate needs it (every fit imports this module through the registry).
        from scipy.signal import resample_poly

        mono = resample_poly(mono, sample_rate // common, rate // common)
    return np.ascontiguousarray(mono, dtype=np.float32)


def fit_length(waveform: np.ndarray, samples: int) -> np.ndarray:
    """``(samples,)``: ``waveform`` padded with zeros at the end, or its loudest window.

    The loudest window is the one of ``samples`` consecutive samples with the
    largest sum of squares (the first such window on a tie, so silence keeps the start).
    """
    if len(waveform) <= samples:
        return np.pad(waveform, (0, samples - len(waveform)))
    cumulative = np.concatenate([[0.0], np.cumsum(np.square(waveform, dtype=np.float64))])
    energy = cumulative[samples:] - cumulative[:-samples]  # (len - samples + 1,)
    start = int(np.argmax(energy))
    return waveform[start : start + samples]


def decode_audio(path: Path, *, sample_rate: int, seconds: float, n_mels: int) -> np.ndarray:
    """``(n_mels * frames,)`` float32: the log-mel spectrogram of the file, mel bin major.

    Module level (and used through ``functools.partial``) so decode workers can run it.
    """
    samples = round(sample_rate * seconds)
    waveform = fit_length(read_waveform(path, sample_rate=sample_rate), samples)
    n_fft, hop_length = frame_settings(sample_rate)
    log_mel = log_mel_spectrogram(
        torch.from_numpy(waveform),
        sample_rate=sample_rate,
        n_fft=n_fft,
        hop_length=hop_length,
        n_mels=n_mels,
    )  # (n_mels, frames)
    return log_mel.numpy().reshape(-1)


class AudioPreprocessor(Preprocessor):
    """Paths to audio files -> ``(rows, n_mels * frames)`` standardised log-mel spectrograms.

    ``workers``: decode processes (None: automatic, see :mod:`deepstrata.data.files`);
    a property of this machine, so it is not part of the state.

    >>> pre = AudioPreprocessor(seconds=1.0, n_mels=64)
    >>> (pre.n_mels, pre.frames, pre.width)
    (64, 101, 6464)
    """

    kind = "audio"
    dtype = "float32"

    def __init__(
        self,
        *,
        sample_rate: int = default("sample_rate"),
        seconds: float = default("audio_seconds"),
        n_mels: int = default("audio_mels"),
        normalise: bool = default("audio_normalise"),
        workers: int | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.seconds = seconds
        self.n_mels = n_mels
        self.normalise = normalise
        self.workers = workers
        self.mean = np.zeros(n_mels)  # (n_mels,) float64, per mel bin
        self.std = np.ones(n_mels)

    @property
    def samples(self) -> int:
        return round(self.sample_rate * self.seconds)

    @property
    def frames(self) -> int:
        return 1 + self.samples // frame_settings(self.sample_rate)[1]

    @property
    def width(self) -> int:
        return self.n_mels * self.frames

    cost_unit = "samples"

    @property
    def input_cost(self) -> int:
        """Samples of one clip the network takes (``sample_rate * seconds``)."""
        return self.samples

    def decode_cost(self, file) -> int:
        """Samples decoding ``file`` (a path or a binary file object) would produce, read from
        its header alone: every channel's, plus the clip resampled to ``sample_rate`` (a
        header claiming 1 Hz asks for 16,000 samples per sample); 0 where libsndfile cannot
        open it (decoding fails at once too). A server budgets a request's decoding with it
        (:mod:`deepstrata.serve.staging`)."""
        try:
            info = soundfile.info(file)
        except Exception:
            return 0
        rate = max(int(info.samplerate), 1)
        resampled = (
            math.ceil(info.frames * self.sample_rate / rate) if rate != self.sample_rate else 0
        )
        return info.frames * info.channels + resampled

    def fit(self, column: pd.Series, table: Table) -> AudioPreprocessor:
        self._check_settings()
        count = 0
        total = np.zeros(self.n_mels)
        total_squares = np.zeros(self.n_mels)
        for array in self._decode(column, table):
            if array is None:
                continue
            log_mel = array.reshape(self.n_mels, self.frames).astype(np.float64)
            total += log_mel.sum(axis=1)
            total_squares += np.square(log_mel).sum(axis=1)
            count += self.frames
        if count == 0:  # no file in the training rows: nothing to learn, as for numbers
            self.mean, self.std = np.zeros(self.n_mels), np.ones(self.n_mels)
            return self
        self.mean = total / count
        variance = np.maximum(total_squares / count - np.square(self.mean), 0.0)
        self.std = np.maximum(np.sqrt(variance), MIN_STD)
        return self

    def transform(self, column: pd.Series, table: Table) -> np.ndarray:
        out = np.zeros((len(column), self.n_mels, self.frames), dtype=np.float32)
        mean, std = self.mean[:, None], self.std[:, None]  # (n_mels, 1)
        for row, array in enumerate(self._decode(column, table)):
            if array is not None:
                out[row] = (array.reshape(self.n_mels, self.frames) - mean) / std
        return out.reshape(len(column), self.width)

    def bad_files(self, column: pd.Series, table: Table) -> list[BadFile]:
        """The files of ``column`` that cannot be read, with their rows (for --skip-bad-files)."""
        _, bad = read_files(column, table, self._decoder(), key=self._key(), workers=self.workers)
        return bad

    def state(self) -> dict:
        return {
            "sample_rate": self.sample_rate,
            "seconds": self.seconds,
            "n_mels": self.n_mels,
            "normalise": self.normalise,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def from_options(cls, options: dict) -> AudioPreprocessor:
        return cls(
            sample_rate=options["sample_rate"],
            seconds=options["audio_seconds"],
            n_mels=options["audio_mels"],
            normalise=options["audio_normalise"],
            workers=options.get("decode_workers"),  # a general option
        )

    @classmethod
    def from_state(cls, state: dict) -> AudioPreprocessor:
        pre = cls(
            sample_rate=state["sample_rate"],
            seconds=state["seconds"],
            n_mels=state["n_mels"],
            normalise=state.get("normalise", False),  # older bundles: none, as they were made
        )
        pre.mean = np.asarray(state["mean"], dtype=np.float64)
        pre.std = np.asarray(state["std"], dtype=np.float64)
        return pre

    # -- helpers ---------------------------------------------------------------------------
    def _decoder(self) -> functools.partial:
        return functools.partial(
            decode_audio, sample_rate=self.sample_rate, seconds=self.seconds, n_mels=self.n_mels
        )

    def _key(self) -> str:
        # The cache key: a change to any setting (or to this format, v1) decodes afresh.
        return f"audio/v1 rate={self.sample_rate} seconds={self.seconds} mels={self.n_mels}"

    def _decode(self, column: pd.Series, table: Table) -> list[np.ndarray | None]:
        return decode_column(
            column, table, self._decoder(), key=self._key(), what="audio file", workers=self.workers
        )

    def _check_settings(self) -> None:
        if not (isinstance(self.sample_rate, int) and self.sample_rate > 0):
            raise ValueError(f"sample_rate must be a positive integer, got {self.sample_rate!r}")
        n_fft, _ = frame_settings(self.sample_rate)
        if not self.samples >= n_fft:
            raise ValueError(
                f"seconds must be at least {WINDOW_SECONDS} (one analysis window), "
                f"got {self.seconds!r}"
            )
        mel_filterbank(n_fft=n_fft, n_mels=self.n_mels, sample_rate=self.sample_rate)  # may raise


def check_mel_bands(n_mels: int, values: dict) -> str | None:
    """--audio-mels: narrow mel bands at a low rate can hold no frequency bin at all."""
    sample_rate = values.get("sample_rate") or default("sample_rate")
    try:
        n_fft, _ = frame_settings(sample_rate)
        mel_filterbank(n_fft=n_fft, n_mels=n_mels, sample_rate=sample_rate)
    except ValueError as error:
        return str(error)
    return None


HTTP = file_field("audio")


def sample(pre: AudioPreprocessor, rng, rows: int) -> list:
    """Missing: the preprocessor's fill value (silence)."""
    return [None] * rows


def examples(rng, rows: int, folder) -> list:
    """Raw training values for checks (:func:`deepstrata.testing.check_kind`): paths to
    short WAV files written into ``folder``, one missing."""
    values: list = []
    for row in range(rows):
        path = Path(folder) / f"clip-{row}.wav"
        soundfile.write(path, rng.normal(0, 0.1, 4000 + 500 * row).astype(np.float32), 16000)
        values.append(str(path))
    values[1] = None
    return values

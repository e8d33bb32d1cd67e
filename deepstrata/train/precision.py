"""Numeric precision and devices: autocast contexts, and ``auto`` that measures.

``--precision 32`` trains in float32. ``bf16`` and ``fp16`` run the forward pass
under ``torch.autocast`` (weights and optimizer state stay float32); ``fp16``
also scales the loss (``GradScaler``) so small gradients do not flush to zero.
bf16 autocast works on CPU: on CPUs with AVX512-BF16 it speeds up convolutions
and attention, while a small MLP gains nothing.

``auto`` does not guess: it times a few real training steps in float32 and in
the reduced precision the device offers, and keeps the reduced one only when it
is at least ``MIN_SPEEDUP`` faster. Because the choice depends on a timing, two
runs with the same seed may choose differently; pass an explicit precision when
bit-identical reruns matter (that is why ``32`` is the default).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable

import torch

from deepstrata.config import DEVICES, PRECISIONS
from deepstrata.errors import ConfigError

__all__ = [
    "DEVICES",
    "PRECISIONS",
    "autocast",
    "choose_precision",
    "reduced_precision",
    "resolve_device",
]

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MIN_SPEEDUP = 1.10  # a reduced precision must win by this much to be chosen


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit device that is absent is a ConfigError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was asked for but torch sees no CUDA device", option="--device")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("MPS was asked for but torch sees no MPS device", option="--device")
    if name not in DEVICES:
        raise ConfigError(f"expected one of {', '.join(DEVICES)}, got {name!r}", option="--device")
    return torch.device(name)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context a forward pass runs in: nothing for float32, ``torch.autocast`` otherwise."""
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def reduced_precision(device: torch.device) -> str:
    """The reduced precision worth trying on ``device``."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "fp16"
    return "bf16"


def choose_precision(
    step: Callable[[str], None],
    device: torch.device,
    *,
    warmup: int = 3,
    repeats: int = 8,
) -> tuple[str, dict]:
    """Time ``step(precision)`` (one real training step) in float32 and reduced precision.

    The caller restores weights and random state afterwards. Returns the choice and a
    record of the evidence, which the run keeps.
    """
    candidates = ["32", reduced_precision(device)]
    seconds = {}
    for precision in candidates:
        for _ in range(warmup):
            step(precision)
        times = []
        for _ in range(repeats):
            _synchronize(device)
            begin = time.perf_counter()
            step(precision)
            _synchronize(device)
            times.append(time.perf_counter() - begin)
        seconds[precision] = statistics.median(times)
    reduced = candidates[1]
    speedup = seconds["32"] / max(seconds[reduced], 1e-12)
    choice = reduced if speedup >= MIN_SPEEDUP else "32"
    return choice, {
        "choice": choice,
        "seconds_per_step": seconds,
        "speedup": speedup,
        "rule": f"{reduced} when its median step is at least {MIN_SPEEDUP:.2f}x faster than float32",
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

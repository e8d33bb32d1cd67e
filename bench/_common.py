"""What both benchmarks share: thread setup, a clock, medians and a header line.

Benchmarks print figures; they are not tests. They make no claim that a figure
is "good": read the ratios, not the absolute numbers, on a shared machine.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch


def set_threads(threads: int | None) -> int:
    """Pin torch's intra-op thread count (default: every core) for the whole run."""
    count = threads or os.cpu_count() or 1
    torch.set_num_threads(count)
    return count


def header(title: str, threads: int) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"# {title}\n"
        f"# torch {torch.__version__}, python {platform.python_version()}, "
        f"{os.cpu_count()} cores, torch threads {threads}, load average {load:.2f} at start"
    )


def footer() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return f"# load average at the end: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min)"


def clock() -> float:
    return time.perf_counter()


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in [0, 1]) of ``values``."""
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))  # 1-based
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def int_list(text: str) -> list[int]:
    """``"100000,1000000"`` -> ``[100000, 1000000]`` (underscores allowed: ``1_000_000``)."""
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def filesystem_of(path: str) -> str:
    """The filesystem type ``path`` lives on (ext4, tmpfs, ...), from /proc/mounts; ``?`` elsewhere."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "?"
    path, best, kind = os.path.realpath(path), "", "?"
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1]
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind

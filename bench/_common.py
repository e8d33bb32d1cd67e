"""What both benchmarks share: thread setup, a clock, medians and a header line.

Benchmarks print figures; they are not tests. They make no claim that a figure
is "good": read the ratios, not the absolute numbers, on a shared machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

CATEGORY_VALUES = [f"value_{i}" for i in range(10)]


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


def timed(call, repeats: int) -> float:
    """The median seconds of ``repeats`` calls of ``call()``."""
    times = []
    for _ in range(repeats):
        start = clock()
        call()
        times.append(clock() - start)
    return median(times)


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


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """The mixed table of the prediction benchmarks (8 number columns, 2 of categories, a
    boolean, a few values missing), with a ``label`` column ("yes" / "no") from a fixed
    noisy rule."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {f"number_{i}": rng.normal(size=rows) for i in range(8)}
    data["number_0"][rng.random(rows) < 0.02] = np.nan
    for name in ("category_0", "category_1"):
        data[name] = np.asarray(CATEGORY_VALUES, dtype=object)[rng.integers(0, 10, rows)]
    data["category_1"][rng.random(rows) < 0.02] = None
    data["flag"] = rng.random(rows) < 0.3
    score = (
        np.nan_to_num(data["number_0"])
        + data["number_1"] * data["number_2"]
        + np.isin(data["category_0"], CATEGORY_VALUES[:3])
        - data["flag"]
        + 0.5 * rng.normal(size=rows)
    )
    data["label"] = np.where(score > 0, "yes", "no")
    return pd.DataFrame(data)


class Before:
    """A worker process running ``script`` with another checkout of deepstrata (``--before
    DIR``, e.g. ``git worktree add /tmp/before fd17a4b``) first on its path, so that one run
    measures both. The script prints ``ready`` (or a line of its own), then answers each
    line sent to it with one line of JSON."""

    def __init__(self, tree: str, script: str, *args: str) -> None:
        self.tree = str(Path(tree).resolve())
        if not (Path(self.tree) / "deepstrata" / "__init__.py").is_file():
            raise SystemExit(f"--before {tree}: no deepstrata package there")
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=self.tree,
            env={**os.environ, "PYTHONPATH": self.tree + os.pathsep + str(Path(__file__).parent)},
        )
        self.first = self.process.stdout.readline().strip()
        if not self.first:
            raise SystemExit(f"the worker on {self.tree} ended before it was ready")

    def ask(self, line: str):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def commit_of(tree: str) -> str:
    """The short commit of a checkout, for the header."""
    try:
        return subprocess.run(
            ["git", "-C", tree, "log", "-1", "--format=%h %s"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()[:60]  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "?"

"""``deepstrata predict DIR -o preds.parquet --nproc N``: rows/s with 1 process and with 2.

A bundle (the network alone, 2 epochs) is fitted on 5,000 rows of a synthetic table of
32 input columns (30 numbers, 2 categories of 10 values) and a yes/no target; then a
Parquet folder of ``--rows`` rows of the same columns (8 files, 4 row groups each) is
predicted by the command as a user runs it (a subprocess: the imports, the workers'
start and the join of the parts included), with ``--nproc 1`` (the baseline: one
process, every core's threads) and ``--nproc N``, interleaved, ``--repeats`` times.
Printed: the median rows/s of each, and their ratio.

    .venv/bin/python bench/predict_parallel.py              # about 3 minutes on 2 cores
    .venv/bin/python bench/predict_parallel.py --quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NUMBERS, CATEGORIES, FILES, GROUPS = 30, 2, 8, 4


def table(rows: int, seed: int) -> pd.DataFrame:
    """30 number columns (float32), 2 category columns, a target from a few of them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, NUMBERS), dtype=np.float32)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(NUMBERS)])
    for index in range(CATEGORIES):
        frame[f"c{index}"] = rng.choice([f"value_{i}" for i in range(10)], rows)
    frame["y"] = np.where(x[:, 0] + x[:, 1] * x[:, 2] + (frame["c0"] == "value_3") > 0, "a", "b")
    return frame


def write_folder(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.mkdir()
    per_file = -(-rows // FILES)
    for index in range(FILES):
        part = table(min(per_file, rows - index * per_file), seed=100 + index).drop(columns="y")
        pq.write_table(
            pa.Table.from_pandas(part, preserve_index=False),
            path / f"part-{index}.parquet",
            row_group_size=-(-per_file // GROUPS),
        )


def timed_predict(bundle: Path, data: Path, out: Path, nproc: int) -> float:
    """Seconds of one ``deepstrata predict`` command, start to exit."""
    command = [sys.executable, "-m", "deepstrata", "predict", str(bundle), str(data)]
    command += ["-o", str(out), "--overwrite", "--nproc", str(nproc), "--oversubscribe"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 100_000, 1
    import deepstrata

    load = os.getloadavg()[0]
    print(f"# predict --nproc: {args.rows:,} rows x {NUMBERS + CATEGORIES} columns, ", end="")
    print(f"{os.cpu_count()} cores, load average {load:.2f} at start")
    work = Path(tempfile.mkdtemp(prefix="deepstrata-bench-pnproc-"))
    try:
        model = deepstrata.fit(
            table(5000, seed=0), target="y", ensemble=False, max_epochs=2, progress=False
        )
        bundle = model.save(work / "bundle")
        data = work / "rows"
        write_folder(data, args.rows)
        seconds: dict[int, list[float]] = {1: [], args.nproc: []}
        for repeat in range(args.repeats):
            for nproc in seconds:  # interleaved: a change in the load hits both
                seconds[nproc].append(timed_predict(bundle, data, work / "p.parquet", nproc))
                rate = args.rows / seconds[nproc][-1]
                print(f"repeat {repeat + 1}: --nproc {nproc}: {rate:,.0f} rows/s", flush=True)
        one = args.rows / statistics.median(seconds[1])
        many = args.rows / statistics.median(seconds[args.nproc])
        print("\n| processes | median seconds | rows/s | ratio |\n|---|---|---|---|")
        for nproc, rate in ((1, one), (args.nproc, many)):
            median = statistics.median(seconds[nproc])
            print(f"| {nproc} | {median:.2f} | {rate:,.0f} | {rate / one:.2f} |")
        print(f"\nratio {args.nproc} processes / 1: {many / one:.2f}x")
        print(f"# load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

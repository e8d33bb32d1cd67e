"""Data bigger than memory: ``fit`` trains on a Parquet folder several times larger than
the address space its own process is allowed (``RLIMIT_AS``, set after the imports), and
``predict`` streams it back; the peak RSS is printed (run with ``-s``)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
CAP_MB = 512  # address space allowed beyond what the imports took
COLUMNS = 64


def write_folder(path: Path, files: int, rows: int) -> int:
    """``files`` Parquet files of ``rows`` rows of COLUMNS float64 columns and a target;
    returns the bytes the table takes in memory (8 per value)."""
    path.mkdir()
    rng = np.random.default_rng(0)
    weights = rng.normal(size=COLUMNS)
    for index in range(files):
        x = rng.normal(size=(rows, COLUMNS))
        columns = {f"x{i}": x[:, i] for i in range(COLUMNS)}
        columns["y"] = x @ weights + 0.1 * rng.normal(size=rows)
        pq.write_table(pa.table(columns), path / f"part-{index:03d}.parquet", row_group_size=50_000)
    return files * rows * (COLUMNS + 1) * 8


SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import torch, pyarrow.parquet, pandas
    import deepstrata
    from deepstrata.cli import main
    torch.set_num_threads(1)
    size = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize"))
    cap = size * 1024 + int(sys.argv[1]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    code = 0
    try:
        main(sys.argv[2:])
    except SystemExit as exit_:
        code = exit_.code or 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"code": code, "peak_rss": peak, "cap": cap, "base": size * 1024}))
    """
)


def capped(*args, cap_mb=CAP_MB):
    # One malloc arena and Arrow on the system allocator: each arena or pool reserves
    # address space far beyond what it uses, which RLIMIT_AS counts.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.update({"MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"})
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(cap_mb), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, done.stderr[-3000:]
    return result, done.stderr


@pytest.mark.slow
def test_fit_and_predict_stream_a_folder_larger_than_the_memory_cap(tmp_path):
    files, rows = int(os.environ.get("BIG_FILES", 14)), int(os.environ.get("BIG_ROWS", 250_000))
    in_memory = write_folder(tmp_path / "big", files, rows)
    fit, _ = capped(
        "fit",
        tmp_path / "big",
        "--target",
        "y",
        "--max-epochs",
        "1",
        "--batch-size",
        "8192",
        "--learning-rate",
        "0.003",
        "--sample-rows",
        "20000",
        "--shuffle-buffer",
        "50000",
        "-o",
        tmp_path / "bundle",
        "--quiet",
    )
    mb = 2**20
    print(
        f"\nfit: {files * rows} rows, {in_memory / mb:.0f} MB as a table in memory; address "
        f"space cap {CAP_MB} MB beyond the imports ({fit['base'] / mb:.0f} MB); peak RSS "
        f"{fit['peak_rss'] / mb:.0f} MB"
    )
    assert in_memory > 3 * CAP_MB * mb
    predicted, _ = capped(
        "predict", tmp_path / "bundle", tmp_path / "big", "-o", tmp_path / "p.parquet"
    )
    print(f"predict: peak RSS {predicted['peak_rss'] / mb:.0f} MB")
    assert pq.ParquetFile(tmp_path / "p.parquet").metadata.num_rows == files * rows

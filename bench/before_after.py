"""One benchmark script, this checkout against another, alternating in one run.

Runs ``SCRIPT ARGS`` from another checkout (``--before DIR``, e.g. ``git worktree add
/tmp/before fd17a4b``) and from this one, in turn, ``--rounds`` times (before, now, now,
before, ...: the order alternates so that a change in the machine's load hits both), each
with its own tree's package first on the path, and prints every line of each run that
matches ``--lines`` (a regular expression; default: the lines with a ratio or a median),
tagged ``before``/``now`` and the round. Each script prints its figures against its own
baseline (the plain PyTorch loop, the bare network) measured in the same process, so the
lines read side by side compare the two versions through that baseline.

    python bench/before_after.py --before /tmp/before bench/train_throughput.py -- --sizes 100000 --repeats 3
    python bench/before_after.py --before /tmp/before bench/predict_throughput.py -- --quick
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def run(tree: Path, script: str, args: list[str], pattern: re.Pattern, tag: str) -> float:
    """Run ``script`` (a path relative to a checkout) from ``tree``; print its matching lines."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    process = subprocess.run(
        [sys.executable, str(tree / script), *args],
        cwd=tree, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    for line in process.stdout.splitlines():
        if pattern.search(line):
            print(f"{tag:<12} {line.strip()}", flush=True)
    if process.returncode != 0:
        tail = process.stderr.strip().splitlines()[-1:] or ["(nothing on stderr)"]
        print(f"{tag:<12} FAILED (exit {process.returncode}): {tail[0]}", flush=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, metavar="DIR", help="the other checkout")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each (default 2)")
    parser.add_argument(
        "--lines", default=r"ratio|median|p50|p99|rows/s", help="which output lines to print"
    )
    parser.add_argument("script", help="the benchmark, relative to a checkout: bench/x.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="after --: the script's flags")
    options = parser.parse_args()
    before = Path(options.before).resolve()
    for tree in (before, HERE):
        if not (tree / options.script).is_file():
            raise SystemExit(f"{tree / options.script}: no such script")
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    pattern = re.compile(options.lines)
    commit = subprocess.run(
        ["git", "-C", str(before), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    print(f"# {options.script} {' '.join(args)}: before = {before} ({commit or '?'}), now = {HERE}")
    for round_ in range(1, options.rounds + 1):
        trees = [("before", before), ("now", HERE)]
        for name, tree in trees if round_ % 2 else trees[::-1]:
            seconds = run(tree, options.script, args, pattern, f"{name} r{round_}")
            print(f"{name + ' r' + str(round_):<12} ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

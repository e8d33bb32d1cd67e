"""deepstrata search on three real tables from installed packages, through the command line.

For each table (scikit-learn's breast cancer: binary; wine: 3 classes; diabetes:
regression) a test split (20 %) is held out once, then:

1. the test metric of a default ``fit`` against ``search --trials T`` (its refit bundle),
2. the samplers side by side at the same budget (tpe, random, evolution, rl): the best
   validation loss each found, median over the tables of the ratio to random's,
3. trials per hour with 1 and 2 workers (one table),
4. the training time pruning saved (search.json's estimate).

    python bench/search.py --trials 30 --max-epochs 60

Figures depend on the shared machine: read the ratios. The plain baseline is the
default fit (and random search for the samplers), run in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tables(folder: Path) -> dict:
    """name -> (train csv, test csv, target, metric)."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
    from sklearn.model_selection import train_test_split

    made = {}
    for name, loader, metric in (
        ("breast_cancer", load_breast_cancer, "accuracy"),
        ("wine", load_wine, "accuracy"),
        ("diabetes", load_diabetes, "r2"),
    ):
        frame = loader(as_frame=True).frame
        train, test = train_test_split(frame, test_size=0.2, random_state=0)
        train.to_csv(folder / f"{name}.csv", index=False)
        test.to_csv(folder / f"{name}_test.csv", index=False)
        made[name] = (folder / f"{name}.csv", folder / f"{name}_test.csv", "target", metric)
    return made


def cli(*args: str) -> float:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "deepstrata", *args, "--quiet"], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def test_metric(bundle: Path, test_csv: Path, target: str, metric: str) -> float:
    import pandas as pd
    from sklearn.metrics import accuracy_score, r2_score

    sys.path.insert(0, str(ROOT))
    import deepstrata

    frame = pd.read_csv(test_csv)
    predicted = deepstrata.load(bundle).predict(frame.drop(columns=[target]))
    truth = frame[target].to_numpy()
    if metric == "accuracy":
        return float(accuracy_score(truth.astype(str), predicted.astype(str)))
    return float(r2_score(truth, predicted.astype(float)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--sampler-trials", type=int, default=None)
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--tables", default="breast_cancer,wine,diabetes")
    args = parser.parse_args()
    budget = args.sampler_trials or args.trials
    epochs = ["--max-epochs", str(args.max_epochs)]
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    made = {k: v for k, v in tables(work).items() if k in args.tables.split(",")}
    print(f"# deepstrata search: {args.trials} trials (samplers: {budget}), max {args.max_epochs} "
          f"epochs, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f} at start")  # fmt: skip
    print(
        "\n| table | metric | default fit (test) | search refit (test) | search minutes | pruned | training saved |"
    )
    print("|---|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {}
    for name, (train, test, target, metric) in made.items():
        cli("fit", str(train), "--target", target, *epochs, "-o", str(work / f"{name}.fit"))
        default = test_metric(work / f"{name}.fit", test, target, metric)
        out = work / f"{name}.search"
        seconds = cli("search", str(train), "--target", target, "--trials", str(args.trials),
                      *epochs, "-o", str(out))  # fmt: skip
        found = json.loads((out / "search.json").read_text())
        searched = test_metric(out / "bundle", test, target, metric)
        pruning = found["pruning"]
        print(f"| {name} | {metric} | {default:.4f} | {searched:.4f} | {seconds / 60:.1f} | "
              f"{pruning['pruned']}/{args.trials} | {100 * pruning['fraction_saved']:.0f} % "
              f"({pruning['seconds_saved']:.0f} s) |")  # fmt: skip
        values = {}
        for sampler in ("random", "tpe", "evolution", "rl"):
            out = work / f"{name}.{sampler}"
            cli("search", str(train), "--target", target, "--trials", str(budget), "--sampler",
                sampler, *epochs, "-o", str(out), "--no-refit")  # fmt: skip
            values[sampler] = json.loads((out / "search.json").read_text())["best"]["values"][0]
        for sampler, value in values.items():
            ratios.setdefault(sampler, []).append(value / values["random"])
        print(
            "|   samplers' best val_loss | "
            + ", ".join(f"{s} {v:.4f}" for s, v in values.items())
            + " | | | | | |"
        )
    print("\n| sampler | best val_loss / random's (median over tables) |")
    print("|---|---|")
    for sampler, values in ratios.items():
        print(f"| {sampler} | {statistics.median(values):.3f} |")
    name, (train, _, target, _) = next(iter(made.items()))
    print(f"\n| workers | trials per hour ({name}, {budget} trials, no pruning) |")
    print("|---|---|")
    for workers in (1, 2):
        out = work / f"{name}.w{workers}"
        seconds = cli("search", str(train), "--target", target, "--trials", str(budget), "--workers",
                      str(workers), "--pruner", "none", *epochs, "-o", str(out), "--no-refit")  # fmt: skip
        print(f"| {workers} | {3600 * budget / seconds:.0f} |")


if __name__ == "__main__":
    main()

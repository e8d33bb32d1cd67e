"""What a drift check costs on 100,000 rows, against plain numpy/scipy (issue 19, point 10).

A network is fitted on a synthetic table (``--columns`` numbers and a third as many
categories, 5,000 rows); new rows (``--rows``, half the number columns shifted) are then
checked three ways, each timed ``--repeats`` times (medians):

1. ``check_drift``: every column's PSI and test, and the model's predictions' shift;
2. its column statistics alone (``column_drifts``);
3. the plain baseline: the same statistics written directly with numpy (``searchsorted``,
   ``bincount``), pandas ``value_counts`` and scipy (``ks_2samp``, ``chi2_contingency``)
   from the same reference, plus the model's predictions for the prediction shift;

and what ``serve``'s drift window adds to a one-record request, against its forward pass.

    python bench/drift.py                  # 100,000 rows, 20 columns, 5 repeats
    python bench/drift.py --quick          # 10,000 rows, 2 repeats
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from _common import clock, footer, header, median, set_threads
from scipy.stats import chi2_contingency, ks_2samp

import deepstrata
from deepstrata.attack.drift import check_drift, column_drifts
from deepstrata.data.sources import read_table
from deepstrata.model.reference import REFERENCE
from deepstrata.serve.drift import DriftWindow


def table(rows: int, columns: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {}
    for index in range(columns):
        moved = shift if index % 2 == 0 else 0.0
        data[f"x{index}"] = rng.normal(moved, 1 + 0.1 * index, rows)
    for index in range(max(columns // 3, 1)):
        data[f"c{index}"] = rng.choice(["a", "b", "c", "d", "e"], rows)
    score = data["x0"] + data["x1"] - (data["c0"] == "a") + rng.normal(0, 0.5, rows)
    data["y"] = np.where(score > 0, "yes", "no")
    return pd.DataFrame(data)


def plain(reference: dict, frame: pd.DataFrame, model) -> int:
    """The same statistics, written directly; returns the number of columns flagged."""
    flagged = 0
    for name, entry in reference["columns"].items():
        if entry["statistic"] == "numeric":
            values = frame[name].to_numpy(dtype=np.float64)
            present = values[~np.isnan(values)]
            counts = np.bincount(
                np.searchsorted(entry["edges"], present, side="right"),
                minlength=len(entry["edges"]) + 1,
            )
            actual = np.maximum(np.append(counts, len(values) - len(present)) / len(values), 1e-4)
            expected = np.maximum(np.append(entry["shares"], entry["missing"]), 1e-4)
            index = np.sum((actual - expected) * np.log(actual / expected))
            p_value = ks_2samp(entry["sample"], present, method="asymp").pvalue
        else:
            counts = frame[name].astype(str).value_counts()
            names = list(entry["counts"])
            observed = np.array(
                [[entry["counts"][n] for n in names], counts.reindex(names, fill_value=0)]
            )
            p_value = chi2_contingency(observed, correction=False).pvalue
            shares = np.maximum(observed / observed.sum(axis=1, keepdims=True), 1e-4)
            index = np.sum((shares[1] - shares[0]) * np.log(shares[1] / shares[0]))
        flagged += bool(p_value < 0.01 and index >= 0.1)
    predictions = model.predict(frame)  # the prediction shift needs the model's predictions
    kept = reference["prediction"]["counts"]
    new = pd.Series(predictions).astype(str).value_counts().reindex(list(kept), fill_value=0)
    chi2_contingency(np.array([list(kept.values()), new.to_numpy()]), correction=False)
    return flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 10_000, 2
    threads = set_threads(args.threads)
    print(header(f"drift check on {args.rows:,} rows, {args.columns} number columns", threads))
    with tempfile.TemporaryDirectory() as folder:
        model = deepstrata.fit(
            table(5000, args.columns, seed=0), target="y", ensemble=False, max_epochs=2,
            progress=False,
        )  # fmt: skip
        bundle = model.save(Path(folder) / "bundle")
        model = deepstrata.load(bundle)
        reference = json.loads((bundle / REFERENCE).read_text())
        frame = table(args.rows, args.columns, seed=1, shift=0.5).drop(columns=["y"])
        new = read_table(frame)
        timings: dict[str, list[float]] = {"check_drift": [], "columns only": [], "plain": []}
        for _ in range(args.repeats):
            start = clock()
            report = check_drift(bundle, frame, model=model)
            timings["check_drift"].append(clock() - start)
            start = clock()
            column_drifts(model, reference, new, 0.01, 0.1, 0)
            timings["columns only"].append(clock() - start)
            start = clock()
            flagged = plain(reference, frame, model)
            timings["plain"].append(clock() - start)
        window = DriftWindow(reference)
        one = {name: [frame[name].iloc[0]] for name in frame.columns}
        observe, forward = [], []
        for _ in range(args.repeats):
            start = clock()
            for _ in range(1000):
                window.observe(one, ["yes"])
            observe.append((clock() - start) / 1000)
            start = clock()
            for _ in range(100):
                model.outputs_of_values(one)
            forward.append((clock() - start) / 100)
    base = median(timings["plain"])
    for name, values in timings.items():
        print(f"{name:>14}: {median(values):.3f} s (median of {len(values)}), "
              f"{median(values) / base:.2f}x plain")  # fmt: skip
    print(f"serve's window: {median(observe) * 1e6:.1f} us per one-record request, "
          f"{median(observe) / median(forward):.2%} of its forward pass "
          f"({median(forward) * 1e3:.2f} ms)")  # fmt: skip
    least = 0.5 / (1 + 0.1 * (args.columns - 2))  # the widest moved column's shift in its sd
    print(f"flagged: {len(report.drifted)} columns by check_drift, {flagged} by the plain code "
          f"(of the {args.columns // 2} moved by {least:.2f} to 0.5 standard deviations)")  # fmt: skip
    print(footer())


if __name__ == "__main__":
    main()

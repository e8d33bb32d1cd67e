"""What a drift check costs on 100,000 rows, against plain numpy/scipy (issue 19, point 10).

A network is fitted on a synthetic table (``--columns`` numbers and a third as many
categories, 5,000 rows); new rows (``--rows``, half the number columns shifted) are then
checked three ways, each timed ``--repeats`` times (medians):

1. ``check_drift``: every column's PSI and test, and the model's predictions' shift;
2. its column statistics alone (``column_drifts``);
3. the plain baseline: the same statistics written directly with numpy (``searchsorted``,
   ``bincount``), pandas ``value_counts`` and scipy (``ks_2samp``, ``chi2_contingency``)
   from the same reference, plus the model's predictions for the prediction shift;

and what ``serve``'s drift window adds to a one-record request, against its forward pass:
for the table's model (values appended), and for a text model and an image model, whose
columns' vectors the window takes from the encoder's output by a forward hook (the tap's
work timed on a module replaying one captured encoder output, quickest of 7 runs, against
the median of ``--calls`` one-record forward passes), with what one MMD test of a full
window costs ``/drift`` or a scrape.

    python bench/drift.py                  # 100,000 rows, 20 columns, 5 repeats
    python bench/drift.py --quick          # 10,000 rows, 2 repeats
    python bench/drift.py --serve-only     # the window's cost per request alone
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
from deepstrata.serve.drift import WINDOW, DriftWindow
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.records import Rows


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


def reviews(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = ["good", "great", "fine", "slow", "broken", "cheap", "solid", "late", "nice"]
    texts = [" ".join(rng.choice(words, 12)) for _ in range(rows)]
    liked = ["yes" if text.count("good") + text.count("nice") > 2 else "no" for text in texts]
    return pd.DataFrame({"review": texts, "liked": liked})


def photos(folder: Path, per_class: int, side: int = 64) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, level in (("dark", 60), ("light", 190)):
        (folder / label).mkdir(parents=True)
        for index in range(per_class):
            pixels = np.clip(rng.normal(level, 40, (side, side, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / label / f"{index}.png")
    return folder


def replaying(output):
    """A module that gives back one captured encoder output: the tap's added work (the
    batcher's wrapper, torch's hook dispatch, the slice, projection and append) can then
    be timed apart from the forward pass, whose noise on a shared machine is far larger."""
    import torch

    class Replay(torch.nn.Module):
        def forward(self, rows):
            return output

    return Replay()


def quickest(function, argument, calls: int) -> float:
    """Seconds per call: the quickest of 7 runs of ``calls`` calls (timeit's advice)."""
    import timeit

    return min(timeit.repeat(lambda: function(argument), number=calls, repeat=7)) / calls


def embedding_window(name: str, model, one, calls: int) -> None:
    """What the window's encoder tap adds to a one-record request of ``model``, against
    the request's forward pass, and what one MMD test of a full window costs."""
    predictor = Predictor(model)
    window = DriftWindow.of(predictor.model)
    encoder, taps = window._taps[0]
    captured = []
    handle = encoder.register_forward_hook(lambda module, args, out: captured.append(out))
    predictor.outputs(one)
    handle.remove()
    forward = []
    for _ in range(calls):
        start = clock()
        predictor.outputs(one)
        forward.append(clock() - start)
    replay = replaying(captured[0])
    bare = quickest(replay, one, calls * 20)
    window._taps = [(replay, taps)]  # the same tap, on the replaying module
    window.attach()
    tapped = quickest(window.watching(replay), one, calls * 20)
    window.detach()
    window._taps = [(encoder, taps)]
    added = tapped - bare
    window.attach()
    run = window.watching(predictor.outputs)
    for _ in range(WINDOW // 50):  # a full window of 50-row batches, then one MMD test
        run(Rows({k: v * 50 for k, v in one.columns.items()}, 50) if isinstance(one, Rows) else
            pd.concat([one] * 50, ignore_index=True))  # fmt: skip
        window.observe({}, ["yes"] * 50)
    window.detach()
    start = clock()
    report = window.report()
    tested = clock() - start
    column = report["columns"][-1]
    width = window.reference["columns"][column["column"]]["width"]
    print(f"serve's window, {name} ({column['column']}: {width}-wide vectors): "
          f"{added * 1e6:.1f} us per one-record request, {added / median(forward):.2%} of "
          f"its forward pass ({median(forward) * 1e3:.2f} ms, median of {calls}; "
          f"{added / min(forward):.2%} of the quickest, {min(forward) * 1e3:.2f} ms); one "
          f"MMD test of the full window ({len(window.vectors[column['column']])} rows, "
          f"{column['rows']} tested): {tested * 1e3:.1f} ms, then kept until the window "
          f"changes")  # fmt: skip


def embedding_models(folder: Path, calls: int) -> None:
    text = deepstrata.fit(
        reviews(400, seed=0), target="liked", strategy="scratch", ensemble=False,
        max_epochs=2, progress=False,
    )  # fmt: skip
    one = Rows({"review": [reviews(1, seed=1)["review"].iloc[0]]}, 1)
    embedding_window("text model", text, one, calls)
    images = photos(folder / "photos", per_class=40)
    image = deepstrata.fit(
        images, strategy="scratch", ensemble=False, max_epochs=2, progress=False
    )  # fmt: skip
    (feature,) = image.schema.inputs
    path = str(next((images / "dark").iterdir()))
    one = pd.DataFrame({feature.name: [path]})  # decoded once, then from the decode cache
    embedding_window("image model", image, one, calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve-only", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 10_000, 2
    threads = set_threads(args.threads)
    if args.serve_only:
        print(header("serve's drift window on text and image models", threads))
        with tempfile.TemporaryDirectory() as folder:
            embedding_models(Path(folder), args.calls)
        print(footer())
        return
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
    with tempfile.TemporaryDirectory() as folder:
        embedding_models(Path(folder), args.calls)
    print(footer())


if __name__ == "__main__":
    main()

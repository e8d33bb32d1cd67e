"""Learning curves: deepstrata's network against classical baselines on the same features.

``compare`` holds one test split out, then for every seed draws a nested sequence of
training subsets (10 %, 25 %, 50 %, 100 % of the remaining rows by default) and
trains every family on each subset:

- ``network``: what ``deepstrata.fit`` trains with the same options: preprocessors
  fitted on the subset's training rows, the usual validation split
  (``validation_fraction``) for early stopping and calibration, the learning-rate
  range test unless a rate is given. On image or text data the fit's own
  ``--strategy auto`` may choose ``features`` (a classical head on pretrained
  embeddings); pass ``strategy="finetune"`` or ``"scratch"`` to train a network;
- ``logreg`` (logistic / ridge regression), ``forest`` (random forest), ``gbm``
  (LightGBM), ``svm`` (RBF kernel) and ``mlp`` (:mod:`deepstrata.classical`) on the
  feature matrix of :func:`deepstrata.features.build_extractor`: numbers, booleans
  and dates as their preprocessors scale them, categories one-hot, image and text
  columns through their pretrained networks (so those must be installed; a kind
  with no fixed representation, audio, is refused). Preprocessors are fitted on the
  same training rows as the network's. ``gbm`` and ``mlp`` stop early on the same
  validation rows as the network; the others train on every row of the subset.

Every family of one (seed, fraction) sees exactly the same rows, and none sees a
test row. The test split is drawn once (stratified for classes, from the fit's
``seed``) and is the same for every seed and fraction, so two points differ only by
what was trained. The subsets of one seed are nested (stratified ordering: each
prefix keeps the classes' shares), and ``seeds`` also seed every fit.

The metric: accuracy for classifiers, R² for regression, or ``metric`` (balanced
accuracy, macro F1, ROC AUC; RMSE, MAE). The table shows the mean over seeds ±
half the range (max - min) / 2, and the winner per size is the best mean.

The RBF SVM is skipped on subsets of more than ``deepstrata.classical.svm.MAX_ROWS``
rows (20,000: libsvm's time grows quadratically to cubically with the rows); the
result lists it under ``skipped`` with the reason.

>>> import pandas as pd
>>> frame = pd.DataFrame({"x": [i % 10 for i in range(60)], "y": ["a", "b"] * 30})
>>> result = compare(frame, target="y", fractions=(0.5, 1.0), seeds=(0,),
...                  families=("network", "logreg"), max_epochs=2, learning_rate=0.01,
...                  progress=False)
>>> sorted(result.to_dict()), len(result.points)
(['data', 'fractions', 'higher_is_better', 'metric', 'points', 'seeds', 'skipped', 'target', 'test_rows', 'winners'], 4)
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepstrata.errors import ConfigError, DataError

FAMILIES = ("network", "logreg", "forest", "gbm", "svm")
KNOWN_FAMILIES = (*FAMILIES, "mlp")
METRICS = {
    "classification": ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc"),
    "regression": ("r2", "rmse", "mae"),
}
EARLY_STOPPING = ("gbm", "mlp")  # classical heads that use the validation rows
SPREAD = "half the range over seeds, (max - min) / 2"


@dataclass
class CompareResult:
    """Every fit's test score (``points``), and what the table and the plot show."""

    data: str
    target: str
    task: str
    metric: str
    higher_is_better: bool
    test_rows: int
    fractions: list[float]
    seeds: list[int]
    families: list[str]
    points: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    strategy: str = "scratch"  # what the network family used (see the module docstring)

    def summary(self, family: str, fraction: float) -> tuple[float, float, int] | None:
        """(mean, half range, rows) over seeds of one family at one fraction; None if none ran."""
        found = [p for p in self.points if p["family"] == family and p["fraction"] == fraction]
        values = [p["value"] for p in found if math.isfinite(p["value"])]
        if not values:
            return None
        return float(np.mean(values)), (max(values) - min(values)) / 2, found[0]["rows"]

    def winners(self) -> list[dict]:
        """Per fraction, the family with the best mean (ties: the first in ``families``)."""
        result = []
        for fraction in self.fractions:
            best = None
            for family in self.families:
                summary = self.summary(family, fraction)
                if summary is None:
                    continue
                mean, _, rows = summary
                better = best is None or (
                    mean > best["mean"] if self.higher_is_better else mean < best["mean"]
                )
                if better:
                    best = {"fraction": fraction, "rows": rows, "family": family, "mean": mean}
            if best is not None:
                result.append(best)
        return result

    def to_dict(self) -> dict:
        """The ``compare.json`` format (read by the report renderer)."""
        return {
            "data": self.data,
            "target": self.target,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "test_rows": self.test_rows,
            "fractions": list(self.fractions),
            "seeds": list(self.seeds),
            "points": list(self.points),
            "skipped": dict(self.skipped),
            "winners": self.winners(),
        }

    def table(self) -> tuple[list[str], list[list[str]]]:
        """(header, rows): one row per family, one ``mean ± spread`` column per size."""
        columns = {}
        for fraction in self.fractions:
            rows = {p["rows"] for p in self.points if p["fraction"] == fraction}
            columns[fraction] = f"{fraction:.0%}" + (f" ({rows.pop()} rows)" if rows else "")
        body = []
        for family in self.families:
            cells = []
            for fraction in self.fractions:
                summary = self.summary(family, fraction)
                cells.append("-" if summary is None else f"{summary[0]:.4f} ± {summary[1]:.4f}")
            body.append([family, *cells])
        return ["family", *columns.values()], body

    def lines(self) -> list[str]:
        """One sentence per size naming the winner, then what was skipped and why."""
        said = []
        for w in self.winners():
            tied = [
                family
                for family in self.families
                if family != w["family"]
                and (summary := self.summary(family, w["fraction"])) is not None
                and summary[0] == w["mean"]
            ]
            also = f" (tied with {', '.join(tied)})" if tied else ""
            said.append(
                f"{w['rows']} rows ({w['fraction']:.0%}): {w['family']} wins{also}, "
                f"{self.metric} {w['mean']:.4f}"
            )
        return said + [f"{family} skipped: {why}" for family, why in self.skipped.items()]

    def html(self) -> str:
        """A self-contained page: the learning-curve plot (inline PNG), the table, the winners."""
        return render_html(self)

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``compare.json`` and ``compare.html`` into ``directory``, atomically: a
        temporary sibling renamed into place. An existing directory is replaced only with
        ``overwrite``, and only if it is a compare output (or empty)."""
        directory = Path(directory)
        check_destination(directory, overwrite=overwrite)
        from deepstrata.bundle.write import publish, staging_directory

        staging = staging_directory(directory)
        try:
            (staging / "compare.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
            (staging / "compare.html").write_text(self.html(), encoding="utf-8")
            publish(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory


def check_destination(directory: Path, *, overwrite: bool) -> None:
    """Refuse an output directory that exists (without ``overwrite``) or that is not a
    compare output (never replaced): a ConfigError naming ``--out``."""
    if not directory.exists():
        return
    if not overwrite:
        raise ConfigError(
            f"{directory} already exists; pass --overwrite or choose another --out",
            option="--out",
        )
    if not directory.is_dir() or (
        any(directory.iterdir()) and not (directory / "compare.json").is_file()
    ):
        raise ConfigError(
            f"{directory} is not a compare output (no compare.json); refusing to replace it",
            option="--out",
        )


def compare(
    data,
    target: str | None = None,
    *,
    fractions: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
    seeds: Sequence[int] = (0, 1, 2),
    families: Sequence[str] = FAMILIES,
    test_fraction: float = 0.2,
    metric: str | None = None,
    progress: bool = True,
    **options,
) -> CompareResult:
    """Train the network and each classical family on nested subsets; score on one test split.

    ``data`` is what ``deepstrata.fit`` takes; ``options`` are its :class:`FitConfig`
    fields (``max_epochs=50``, ``learning_rate=1e-3``, ``columns={...}``; not ``folds``
    or ``ensemble``). ``progress`` prints one line per fit to stderr. See the module
    docstring for how the rows are split and what each family is.
    """
    from deepstrata.api import _prepare
    from deepstrata.config import FitConfig
    from deepstrata.data.folders import default_target
    from deepstrata.data.sources import read_table
    from deepstrata.data.split import train_validation_split
    from deepstrata.evaluate.metrics import HIGHER_IS_BETTER
    from deepstrata.preprocess.target import TargetEncoder
    from deepstrata.seeding import preserved_random_state

    fractions, seeds, families = _check_arguments(fractions, seeds, families, test_fraction)
    settings = {**options, **({"target": target} if target is not None else {})}
    cfg = FitConfig.from_dict(settings, source="compare()").validate()
    if cfg.folds:
        raise ConfigError("compare trains on one validation split per fit", option="--folds")
    if cfg.ensemble:
        raise ConfigError("compare trains single models", option="--ensemble")
    table = read_table(data)
    cfg.target = cfg.target or default_target(table)
    if cfg.target is None:
        raise DataError("no target column given", hint="pass target=NAME (--target NAME)")
    prepared = _prepare(table, cfg)
    task = prepared.schema.task
    kind = "regression" if task == "regression" else "classification"
    metric = metric or METRICS[kind][0]
    if metric not in METRICS[kind]:
        raise ConfigError(
            f"expected one of {', '.join(METRICS[kind])} for {task}, got {metric!r}",
            option="--metric",
        )
    classical = [f for f in families if f != "network"]
    baseline_options = _baseline_options(prepared) if classical else {}

    stratify = task != "regression"
    pool, test = train_validation_split(
        prepared.encoded, stratify=stratify, fraction=test_fraction, seed=cfg.seed
    )
    frame = prepared.frame
    # The target's scale (regression) comes from the training pool only.
    encoder = TargetEncoder(task).fit(frame.iloc[pool][cfg.target], table)
    encoded = encoder.encode(frame[cfg.target], table)
    sizes = _subset_sizes(fractions, len(pool), len(encoder.classes))
    result = CompareResult(
        data=str(table.source),
        target=cfg.target,
        task=task,
        metric=metric,
        higher_is_better=metric in HIGHER_IS_BETTER,
        test_rows=len(test),
        fractions=fractions,
        seeds=seeds,
        families=families,
        strategy=prepared.strategy["used"],
    )
    say = _say if progress else (lambda line: None)
    say(
        f"compare: {len(pool)} training rows, {len(test)} test rows ({task}, {metric}); "
        f"{len(families)} families x {len(fractions)} sizes x {len(seeds)} seeds"
    )
    if "network" in families and prepared.strategy["used"] == "features":
        say(
            "note: the network family uses --strategy features here (a classical head on "
            "pretrained embeddings); --strategy finetune or scratch trains a network"
        )
    with preserved_random_state():
        for seed in seeds:
            order = pool[_nested_order(encoded[pool], stratify=stratify, seed=seed)]
            for fraction, size in zip(fractions, sizes):
                subset = np.sort(order[:size])
                sub = dataclasses.replace(
                    prepared,
                    cfg=dataclasses.replace(cfg, seed=seed),
                    frame=frame.iloc[subset],
                    encoded=encoded[subset],
                    target_encoder=encoder,
                )
                train, validation = train_validation_split(
                    sub.encoded, stratify=stratify, fraction=cfg.validation_fraction, seed=seed
                )
                if len(validation) == 0:
                    raise prepared.table.error(
                        f"fraction {fraction:g} ({size} rows): no row can be held out for "
                        "validation, every class has a single row",
                        column=cfg.target,
                        hint="use larger --fractions",
                    )
                where = {"fraction": fraction, "rows": size, "seed": seed}
                test_rows = (frame.iloc[test], encoded[test])
                if "network" in families:
                    value, seconds = _network(sub, train, validation, test_rows, metric)
                    _record(result, say, family="network", value=value, seconds=seconds, **where)
                if classical:
                    fitted = _classical(
                        sub, train, validation, test_rows, classical, baseline_options, metric
                    )
                    for family, (value, seconds) in fitted.items():
                        _record(result, say, family=family, value=value, seconds=seconds, **where)
    _note_svm_skips(result, sizes, fractions, classical)
    return result


def _check_arguments(fractions, seeds, families, test_fraction):
    fractions = sorted({float(f) for f in fractions})
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise ConfigError(f"expected fractions in (0, 1], got {fractions}", option="--fractions")
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise ConfigError("expected at least one seed", option="--seeds")
    families = list(dict.fromkeys(families))
    unknown = [f for f in families if f not in KNOWN_FAMILIES]
    if unknown or not families:
        raise ConfigError(
            f"expected some of {', '.join(KNOWN_FAMILIES)}, got {', '.join(unknown) or 'none'}",
            option="--families",
        )
    if not 0 < test_fraction < 1:
        raise ConfigError(
            f"expected a fraction in (0, 1), got {test_fraction!r}", option="--test-fraction"
        )
    return fractions, seeds, families


def _subset_sizes(fractions: list[float], pool: int, num_classes: int) -> list[int]:
    """Rows per fraction; each must leave something to learn from and to validate on."""
    least = max(8, 2 * num_classes)
    sizes = [min(pool, max(1, round(f * pool))) for f in fractions]
    if sizes[0] < least:
        raise ConfigError(
            f"{fractions[0]:g} of the {pool} training rows is {sizes[0]} rows; a fit needs at "
            f"least {least} here. Use larger fractions or more data",
            option="--fractions",
        )
    return sizes


def _nested_order(target: np.ndarray, *, stratify: bool, seed: int) -> np.ndarray:
    """A permutation of the rows whose every prefix keeps the classes' shares (stratify):
    row i of its class, of n, is placed at (i + u) / n with u uniform in [0, 1)."""
    from deepstrata.seeding import numpy_rng

    rng = numpy_rng(seed, stream=11)
    if not stratify:
        return rng.permutation(len(target))
    position = np.empty(len(target))
    for label in np.unique(target):
        members = rng.permutation(np.flatnonzero(target == label))
        count = len(members)
        position[members] = (np.arange(count) + rng.random(count)) / count
    return np.argsort(position, kind="stable")


def _baseline_options(prepared) -> dict:
    """The options under which build_extractor gives fixed features for every input column."""
    from deepstrata.features import fixed_feature_networks

    networks = fixed_feature_networks(
        prepared.schema,
        who="the classical families",
        option="--families",
        remedy="compare only the network (--families network) or leave the column out (--ignore)",
    )
    return {**prepared.cfg.to_dict(), "strategy": "features", "pretrained": networks}


def _network(sub, train, validation, test_rows, metric) -> tuple[float, float]:
    from deepstrata.fitting import calibrated, train_split, transform
    from deepstrata.train.progress import Progress

    started = time.perf_counter()
    trained = train_split(
        sub,
        train,
        validation,
        directory=None,
        resume=False,
        progress=Progress(enabled=False),
        callbacks=[],
    )
    member = trained.member
    raw = member.raw_outputs(transform(member.preprocessors, test_rows[0], sub.table))
    value = _score(sub, calibrated(raw, member), test_rows[1], metric)
    return value, time.perf_counter() - started


def _classical(sub, train, validation, test_rows, families, options, metric) -> dict:
    """``{family: (test value, seconds)}``; each family's seconds include the shared
    preprocessing and feature extraction, what it would cost on its own."""
    from deepstrata.classical import new_head, svm
    from deepstrata.features import build_extractor
    from deepstrata.fitting import transform
    from deepstrata.kinds import REGISTRY

    started = time.perf_counter()
    frame, table, schema = sub.frame, sub.table, sub.schema
    train_frame = frame.iloc[train]
    preprocessors = {
        f.name: REGISTRY[f.kind].new_preprocessor(options).fit(train_frame[f.name], table)
        for f in schema.inputs
    }
    extractor = build_extractor(preprocessors, options)

    def features(rows_frame):
        return extractor.extract(transform(preprocessors, rows_frame, table), cache=True)[0]

    subset_features, test_features = features(frame), features(test_rows[0])
    shared = time.perf_counter() - started
    fitted = {}
    for family in families:
        if family == "svm" and len(frame) > svm.MAX_ROWS:
            continue  # listed under "skipped" at the end
        started = time.perf_counter()
        head = new_head(
            family,
            task=schema.task,
            num_classes=len(sub.target_encoder.classes),
            seed=sub.cfg.seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)  # convergence chatter
            if family in EARLY_STOPPING:
                head.fit(
                    subset_features[train],
                    sub.encoded[train],
                    validation=(subset_features[validation], sub.encoded[validation]),
                )
            else:
                head.fit(subset_features, sub.encoded)
        value = _score(sub, head.outputs(test_features), test_rows[1], metric)
        fitted[family] = (value, shared + time.perf_counter() - started)
    return fitted


def _score(sub, outputs: np.ndarray, encoded: np.ndarray, metric: str) -> float:
    from deepstrata.evaluate.metrics import classification_metrics, regression_metrics
    from deepstrata.heads import probabilities

    task, encoder = sub.schema.task, sub.target_encoder
    if task == "regression":  # in the target's units (R² is the same either way)
        values = regression_metrics(
            encoder.decode(encoded.astype(np.float64)), encoder.decode(outputs)
        )
    else:
        values = classification_metrics(encoded, probabilities(task, outputs))
    return values[metric]


def _record(result: CompareResult, say, **point) -> None:
    point["value"] = float(point["value"])
    point["seconds"] = round(float(point["seconds"]), 3)
    result.points.append(point)
    say(
        f"{point['family']:<8} {point['fraction']:>5.0%} ({point['rows']} rows) seed "
        f"{point['seed']}: {result.metric} {point['value']:.4f} ({point['seconds']:.1f}s)"
    )


def _note_svm_skips(result: CompareResult, sizes, fractions, classical) -> None:
    from deepstrata.classical import svm

    if "svm" not in classical:
        return
    over = [f"{f:g}" for f, size in zip(fractions, sizes) if size > svm.MAX_ROWS]
    if over:
        result.skipped["svm"] = (
            f"more than {svm.MAX_ROWS} training rows at fraction {', '.join(over)}: an RBF "
            "SVM trains in time quadratic to cubic in the rows "
            "(deepstrata.classical.svm.MAX_ROWS)"
        )


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- the page ------------------------------------------------------------------------------


def render_html(result: CompareResult) -> str:
    """compare.html: inline CSS, the plot as a data: URI, every string escaped (the report's
    pieces: :mod:`deepstrata.evaluate.html`, :mod:`deepstrata.evaluate.plots`)."""
    from deepstrata.evaluate.html import CSP, CSS, Html, esc, image, note, table
    from deepstrata.evaluate.plots import learning_curve_png

    header, rows = result.table()
    winners = {w["fraction"]: w["family"] for w in result.winners()}
    for row in rows:  # the winner of each size in bold
        for index, fraction in enumerate(result.fractions, start=1):
            if winners.get(fraction) == row[0]:
                row[index] = Html(f"<b>{esc(row[index])}</b>")
    direction = "higher" if result.higher_is_better else "lower"
    items = "".join(f"<li>{esc(line)}</li>" for line in result.lines())
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(f"compare: {result.target}")}'
        f"</title>{CSP}<style>{CSS}</style></head><body><header><h1>{esc(result.data)}: "
        f"{esc(result.target)}</h1></header>"
        + note(
            f"Task {result.task}; test {result.metric} ({direction} is better) on "
            f"{result.test_rows} held-out rows, the same for every fit; seeds "
            f"{', '.join(map(str, result.seeds))}; network strategy {result.strategy}. "
            f"Cells: mean ± {SPREAD}."
        )
        + image(learning_curve_png(result.to_dict()), "learning curves")
        + table(header, rows, numeric=tuple(range(1, len(header))))
        + f"<ul>{items}</ul></body></html>\n"
    )

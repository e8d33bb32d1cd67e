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
  feature matrix of :func:`deepstrata.recipes.features.build_extractor`: numbers, booleans
  and dates as their preprocessors scale them, categories one-hot, image and text
  columns through their pretrained networks (so those must be installed; a kind
  with no fixed representation, audio, is refused). Preprocessors are fitted on the
  same training rows as the network's. ``gbm`` and ``mlp`` stop early on the same
  validation rows as the network; the others train on every row of the subset.

Every family of one (seed, fraction) sees exactly the same rows, and none sees a
test row. The test split is drawn once (stratified for classes, from the fit's
``seed``) and is the same for every seed and fraction, so two points differ only by
what was trained. The subsets of one seed are nested (stratified ordering: each
prefix keeps the classes' shares), and ``seeds`` also seed every fit. With ``group`` (a
column: a speaker, a patient), every group is on one side of the test split and of each
subset's validation split, and the subsets take whole groups in a seeded order (the last
one cut to the size): the test then measures groups never trained on.

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
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np

from deepstrata.compare.result import SPREAD, CompareResult, check_destination
from deepstrata.errors import ConfigError, DataError

__all__ = ["SPREAD", "CompareResult", "check_destination", "compare"]

FAMILIES = ("network", "logreg", "forest", "gbm", "svm")
KNOWN_FAMILIES = (*FAMILIES, "mlp")
EARLY_STOPPING = ("gbm", "mlp")  # classical heads that use the validation rows


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
    from deepstrata.data.split import train_validation_split
    from deepstrata.evaluate.metrics import HIGHER_IS_BETTER
    from deepstrata.preprocess.target import TargetEncoder

    fractions, seeds, families = _check_arguments(fractions, seeds, families, test_fraction)
    prepared = _prepared(data, target, options)
    task, cfg, table = prepared.task, prepared.cfg, prepared.table
    metric = metric or task.compare_metrics[0]
    if metric not in task.compare_metrics:
        raise ConfigError(
            f"expected one of {', '.join(task.compare_metrics)} for {task.name}, got {metric!r}",
            option="--metric",
        )
    classical = [f for f in families if f != "network"]
    baseline_options = _baseline_options(prepared) if classical else {}
    _require_groups(
        prepared, prepared.groups, 3, "in the labelled rows", "a test split and subsets to validate"
    )
    pool, test = train_validation_split(
        prepared.encoded,
        stratify=task.stratify,
        fraction=test_fraction,
        seed=cfg.seed,
        groups=prepared.groups,
    )
    # The target's scale (regression) comes from the training pool only.
    encoder = TargetEncoder(task.name).fit(prepared.frame.iloc[pool][cfg.target], table)
    prepared = dataclasses.replace(
        prepared,
        target_encoder=encoder,
        encoded=encoder.encode(prepared.frame[cfg.target], table),
    )
    sizes = _subset_sizes(fractions, len(pool), len(encoder.classes))
    _check_subset_groups(prepared, pool, sizes[0], fractions[0], seeds)
    result = CompareResult(
        data=str(table.source),
        target=cfg.target,
        task=task.name,
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
        f"compare: {len(pool)} training rows, {len(test)} test rows"
        f"{_groups_said(prepared, pool, test)} ({task.name}, {metric}); {len(families)} "
        f"families x {len(fractions)} sizes x {len(seeds)} seeds"
    )
    if "network" in families and prepared.strategy["used"] == "features":
        say(
            "note: the network family uses --strategy features here (a classical head on "
            "pretrained embeddings); --strategy finetune or scratch trains a network"
        )
    grid = zip(fractions, sizes)
    _run_grid(prepared, result, pool, test, list(grid), classical, baseline_options, say)
    _note_svm_skips(result, sizes, fractions, classical)
    return result


def _prepared(data, target, options):
    """The fit's preparation of ``data`` under ``options`` (one split per fit only)."""
    from deepstrata.config import FitConfig
    from deepstrata.data.folders import default_target
    from deepstrata.data.sources import read_table
    from deepstrata.recipes.prepare import prepare

    settings = {**options, **({"target": target} if target is not None else {})}
    cfg = FitConfig.from_dict(settings, source="compare()")
    if cfg.folds:
        raise ConfigError("compare trains on one validation split per fit", option="--folds")
    if cfg.ensemble:
        raise ConfigError("compare trains single models", option="--ensemble")
    table = read_table(data)
    cfg.target = cfg.target or default_target(table)
    if cfg.target is None:
        raise DataError("no target column given", hint="pass target=NAME (--target NAME)")
    return prepare(table, cfg)


def _require_groups(prepared, groups, needed: int, where: str, what: str) -> None:
    """DataError naming the --group column when ``groups`` holds fewer than ``needed``."""
    count = 0 if groups is None else len(np.unique(groups))
    if groups is not None and count < needed:
        raise prepared.table.error(
            f"{count} group(s) {where}, and {what} needs at least {needed} (each group on "
            "one side)",
            column=prepared.cfg.group,
            hint="a column with more groups, or larger --fractions",
        )


def _check_subset_groups(prepared, pool, size: int, fraction: float, seeds) -> None:
    """Every seed's smallest subset holds two groups at least (to validate on one)."""
    groups = prepared.groups
    if groups is None:
        return
    for seed in seeds:
        order = _nested_order(
            prepared.encoded[pool], stratify=False, seed=seed, groups=groups[pool]
        )
        where = f"in fraction {fraction:g} ({size} rows, seed {seed})"
        _require_groups(prepared, groups[pool[order[:size]]], 2, where, "its validation split")


def _groups_said(prepared, pool, test) -> str:
    """`` (in 40 and 8 groups of 'voice')``, or nothing without --group."""
    groups = prepared.groups
    if groups is None:
        return ""
    counts = len(np.unique(groups[pool])), len(np.unique(groups[test]))
    return f" (in {counts[0]} and {counts[1]} groups of {prepared.cfg.group!r})"


def _run_grid(prepared, result, pool, test, sizes, classical, baseline_options, say) -> None:
    """Every family on every (seed, size): nested subsets of the pool, one test split."""
    from deepstrata.data.split import train_validation_split
    from deepstrata.seeding import preserved_random_state

    cfg, frame, encoded, stratify, groups = (
        prepared.cfg,
        prepared.frame,
        prepared.encoded,
        prepared.task.stratify,
        prepared.groups,
    )
    test_rows = (frame.iloc[test], encoded[test])
    with preserved_random_state():
        for seed in result.seeds:
            pooled = None if groups is None else groups[pool]
            order = pool[_nested_order(encoded[pool], stratify=stratify, seed=seed, groups=pooled)]
            for fraction, size in sizes:
                subset = np.sort(order[:size])
                sub = dataclasses.replace(
                    prepared,
                    cfg=dataclasses.replace(cfg, seed=seed),
                    frame=frame.iloc[subset],
                    encoded=encoded[subset],
                )
                train, validation = train_validation_split(
                    sub.encoded,
                    stratify=stratify,
                    fraction=cfg.validation_fraction,
                    seed=seed,
                    groups=sub.groups,
                )
                if len(validation) == 0:
                    raise prepared.table.error(
                        f"fraction {fraction:g} ({size} rows): no row can be held out for "
                        "validation, every class has a single row",
                        column=cfg.target,
                        hint="use larger --fractions",
                    )
                where = {"fraction": fraction, "rows": size, "seed": seed}
                if "network" in result.families:
                    value, seconds = _network(sub, train, validation, test_rows, result.metric)
                    _record(result, say, family="network", value=value, seconds=seconds, **where)
                if classical:
                    fitted = _classical(
                        sub,
                        train,
                        validation,
                        test_rows,
                        classical,
                        baseline_options,
                        result.metric,
                    )
                    for family, (value, seconds) in fitted.items():
                        _record(result, say, family=family, value=value, seconds=seconds, **where)


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


def _nested_order(
    target: np.ndarray, *, stratify: bool, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """A permutation of the rows whose every prefix keeps the classes' shares (stratify):
    row i of its class, of n, is placed at (i + u) / n with u uniform in [0, 1). With
    ``groups``: the groups in a seeded order, each group's rows together (a prefix is
    whole groups but for the last), the classes' shares as the groups give them."""
    from deepstrata.seeding import numpy_rng

    rng = numpy_rng(seed, stream=11)
    if groups is not None:
        _, codes = np.unique(groups, return_inverse=True)
        rank = rng.permutation(codes.max() + 1)  # (groups,): each group's place
        return np.lexsort((rng.random(len(target)), rank[codes]))
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
    from deepstrata.recipes.features import fixed_feature_networks

    networks = fixed_feature_networks(
        prepared.schema,
        who="the classical families",
        option="--families",
        remedy="compare only the network (--families network) or leave the column out (--ignore)",
    )
    return {**prepared.cfg.to_dict(), "strategy": "features", "pretrained": networks}


def _network(sub, train, validation, test_rows, metric) -> tuple[float, float]:
    from deepstrata.recipes.network import train_split
    from deepstrata.recipes.prepare import calibrated, transform
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
    from deepstrata.kinds import KINDS
    from deepstrata.model.extractor import build_extractor
    from deepstrata.recipes.prepare import transform

    started = time.perf_counter()
    frame, table, schema = sub.frame, sub.table, sub.schema
    train_frame = frame.iloc[train]
    preprocessors = {
        f.name: KINDS[f.kind].new_preprocessor(options).fit(train_frame[f.name], table)
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
    """The test ``metric`` (regression: in the target's units; R² is the same either way)."""
    return sub.task.metrics(encoded, outputs, sub.target_encoder)[metric]


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

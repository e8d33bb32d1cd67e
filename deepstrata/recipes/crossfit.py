"""``fit --ensemble --folds K``: the network and the classical model cross-fitted, their
weight chosen on every row's out-of-fold outputs.

With one validation split, ``fit --ensemble`` chooses the weight, and whether to keep
the mix at all, on a fifth of the rows: a few dozen on a small table, where one row
tips the verdict. Here each of K folds is held out once. On the other K - 1 folds a
network and each candidate classical model are trained, each stopping early and
calibrating on an inner validation split drawn from those K - 1 folds only
(``validation_fraction`` of them), and both predict the held-out fold. Every row so
gets one output from each side made by models that neither trained on it nor chose
their epoch on it: stacking's out-of-fold predictions (Wolpert 1992), with the early
stopping nested, since a fold whose held-out rows also picked the network's epoch
would flatter the network against a model that never looked at them.

The classical head with the lowest out-of-fold loss (log loss; regression: mean
squared error) is the classical side, and :func:`deepstrata.recipes.ensemble.weigh` chooses
the weight and the verdict on all rows' outputs instead of a fifth of them.

The model kept is the one those outputs measured: the K networks and the K classical
models, averaged within each side and mixed by the weight (``member_weights`` w/K for
each network, (1 - w)/K for each classical model); when the verdict returns one side
alone, its K models, equally weighted.

>>> import deepstrata, pandas as pd
>>> frame = pd.DataFrame({"x": [i % 10 for i in range(60)], "y": ["a", "b", "c"] * 20})
>>> model = deepstrata.fit(
...     frame, target="y", ensemble=True, folds=3, max_epochs=2, progress=False
... )
>>> model.metrics["ensemble"]["cross_fitted"]["rows"]
60
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from deepstrata.data.split import kfold_split, train_validation_split
from deepstrata.model.model import Model, combine
from deepstrata.recipes.crossval import (
    check_folds,
    fold_logs,
    oof_table,
    over_folds,
    say,
    train_fold,
)
from deepstrata.recipes.ensemble import classical_heads, classical_side, row_losses, weigh
from deepstrata.recipes.fairness import fairness_metrics, fairness_thresholds
from deepstrata.recipes.features import train_features
from deepstrata.recipes.prepare import (
    Prepared,
    Trained,
    assemble,
    group_counts,
    held_out_outputs,
)
from deepstrata.recipes.records import data_summary, prediction_records
from deepstrata.report.render import PREDICTIONS, SUMMARY


@dataclass
class CrossFit:
    """Both sides' fold models and out-of-fold outputs (calibrated), and the verdict."""

    networks: list[Trained]  # one per fold
    classical: list  # the chosen head's FeatureMember, one per fold
    network_outputs: np.ndarray  # (rows, ...) out of fold
    classical_outputs: np.ndarray
    fold_of: np.ndarray  # each row's 1-based fold
    verdict: dict  # deepstrata.recipes.ensemble.weigh's, with the classical side and the folds

    def members(self, weight: float) -> tuple[list, list[float] | None]:
        """The members and their weights for the network's share ``weight``."""
        folds = len(self.networks)
        if weight == 1.0:
            return [trained.member for trained in self.networks], None
        if weight == 0.0:
            return list(self.classical), None
        shares = [weight / folds] * folds + [(1 - weight) / folds] * folds
        return [trained.member for trained in self.networks] + list(self.classical), shares

    def outputs(self, weight: float, task: str) -> np.ndarray:
        """The out-of-fold outputs of the mix at ``weight``."""
        return combine(task, [self.network_outputs, self.classical_outputs], [weight, 1 - weight])


def nested_splits(
    encoded: np.ndarray,
    *,
    folds: int,
    stratify: bool,
    fraction: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per fold: (rows to train on, rows to stop and calibrate on, the held-out fold).

    The first two split the other folds' rows; the held-out fold is in neither. With
    ``groups``, every group is on one side of both splits (ValueError when the other
    folds hold a single group)."""
    splits = []
    outer = kfold_split(encoded, folds=folds, stratify=stratify, seed=seed, groups=groups)
    for train_rows, held_out in outer:
        fit, stop = train_validation_split(
            encoded[train_rows],
            stratify=stratify,
            fraction=fraction,
            seed=seed,
            groups=None if groups is None else groups[train_rows],
        )
        splits.append((train_rows[fit], train_rows[stop], held_out))
    return splits


def _splits(prepared: Prepared) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`nested_splits` of the prepared rows; DataError when a fold leaves nothing
    to stop on (a class of one row there, or a single group)."""
    cfg = prepared.cfg
    try:
        splits = nested_splits(
            prepared.encoded,
            folds=cfg.folds,
            stratify=prepared.task.stratify,
            fraction=cfg.validation_fraction,
            seed=cfg.seed,
            groups=prepared.groups,
        )
    except ValueError as error:  # too few groups for a fold's inner split
        raise prepared.table.error(
            f"{error} ({len(np.unique(prepared.groups))} groups in all)",
            column=cfg.group,
            hint="use fewer folds (--folds), or a column with more groups",
        ) from None
    if any(len(stop) == 0 for _, stop, _ in splits):
        raise prepared.table.error(
            "no row of a fold can be held out to stop training on: every class has a "
            "single row there",
            column=cfg.target,
            hint="use fewer folds (--folds), add rows or merge rare classes",
        )
    return splits


def cross_fit(prepared: Prepared, *, run, resume, progress, callbacks) -> CrossFit:
    """Train both sides on every fold and weigh them on the out-of-fold outputs."""
    from deepstrata.classical.svm import MAX_ROWS

    cfg, encoded, task = prepared.cfg, prepared.encoded, prepared.schema.task
    check_folds(prepared)
    side = classical_side(prepared)  # a column it cannot take fails before any training
    heads = classical_heads(cfg.head)
    splits = _splits(prepared)
    skipped = {}  # decided once, so that every fold fits the same heads
    if len(heads) > 1 and max(len(fit) for fit, _, _ in splits) > MAX_ROWS:
        skipped["svm"] = f"more than {MAX_ROWS} training rows"  # --head svm: as asked
    heads = tuple(head for head in heads if head not in skipped)
    networks: list[Trained] = []
    classical: dict[str, list] = {head: [] for head in heads}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in ("network", *heads)}
    seconds = {"network": 0.0, "classical": 0.0}
    for number, (fit_rows, stop_rows, held_out) in enumerate(splits, start=1):
        say(
            progress,
            f"fold {number}/{cfg.folds}: {len(fit_rows)} rows to train, {len(stop_rows)} "
            f"to stop on, {len(held_out)} held out",
        )
        started = time.perf_counter()
        directory = run.path / f"fold-{number}" if run else None
        trained = train_fold(prepared, fit_rows, stop_rows, directory, resume, progress, callbacks)
        networks.append(trained)
        outputs["network"].append(held_out_outputs(prepared, trained.member, held_out))
        seconds["network"] += time.perf_counter() - started
        started = time.perf_counter()
        for head in heads:
            member = train_features(side, fit_rows, stop_rows, progress=None, heads=(head,)).member
            classical[head].append(member)
            outputs[head].append(held_out_outputs(side, member, held_out))
        seconds["classical"] += time.perf_counter() - started

    held_out = np.concatenate([rows for _, _, rows in splits])
    order = np.argsort(held_out)  # the folds' outputs, back in row order
    stacked = {name: np.concatenate(values)[order] for name, values in outputs.items()}
    fold_of = np.repeat(np.arange(1, cfg.folds + 1), [len(rows) for _, _, rows in splits])[order]
    losses = {head: float(np.mean(row_losses(task, stacked[head], encoded))) for head in classical}
    head = min(losses, key=losses.get)
    verdict = weigh(task, stacked["network"], stacked[head], encoded, scored_on="out-of-fold")
    metric = verdict["metric"]
    verdict["classical"] = head
    verdict["classical_heads"] = [
        {"head": name, "score": -loss, "scored_by": f"out-of-fold {metric}", metric: loss}
        for name, loss in losses.items()
    ] + [{"head": name, "skipped": why} for name, why in skipped.items()]
    verdict["cross_fitted"] = {
        "folds": cfg.folds,
        "rows": len(encoded),
        **group_counts(
            prepared,
            [{"train": fit, "stop": stop, "held_out": out} for fit, stop, out in splits],
        ),
        "early_stopping": "an inner split of each fold's training rows "
        f"({cfg.validation_fraction:g} of them), never the held-out fold",
        "seconds": {name: round(value, 3) for name, value in seconds.items()},
    }
    verdict["reason"] += f" ({cfg.folds} folds, {len(encoded)} rows)"
    return CrossFit(networks, classical[head], stacked["network"], stacked[head], fold_of, verdict)


def cross_fitted_ensemble(prepared: Prepared, *, run, resume, progress, callbacks) -> Model:
    """``fit --ensemble --folds K`` (see the module doc): the model and its metrics."""
    cfg, encoded, task = prepared.cfg, prepared.encoded, prepared.schema.task
    fit = cross_fit(prepared, run=run, resume=resume, progress=progress, callbacks=callbacks)
    verdict = fit.verdict
    progress.note(f"ensemble with {verdict['classical']}: {verdict['reason']}")
    weight = verdict["weight_network"]
    members, weights = fit.members(weight)
    outputs = fit.outputs(weight, task)
    model = assemble(prepared, members, fold_logs(fit.networks), weights=weights)
    # group thresholds on every row's out-of-fold outputs of the mix (what predict mixes)
    model.fairness = fairness_thresholds(prepared, np.arange(len(encoded)), outputs)
    fairness_entry, figure = fairness_metrics(model.fairness)
    model.artifacts.update(figure)
    per_fold = []
    for number, trained in enumerate(fit.networks, start=1):
        rows = fit.fold_of == number
        per_fold.append(
            {
                **model.metrics_of(outputs[rows], encoded[rows]),
                "best_epoch": trained.history["best_epoch"],
                "stopped": trained.history["stopped"],
            }
        )
    names = [name for name in per_fold[0] if name not in ("best_epoch", "stopped")]
    k = cfg.folds
    kept = {
        "ensemble": f"the {k} networks and {k} classical models, mixed",
        "network": f"the {k} folds' networks, averaged",
        "classical": f"the {k} folds' classical models, averaged",
    }[verdict["returned"]]
    model.metrics = {
        "validation": model.metrics_of(outputs, encoded),  # out of fold: every row held out once
        "cross_validation": {
            "folds": cfg.folds,
            "model": f"cross-fitted --ensemble: {kept}",
            "mean": {n: float(np.mean([f[n] for f in per_fold])) for n in names},
            "std": {n: float(np.std([f[n] for f in per_fold])) for n in names},
            "per_fold": per_fold,
        },
        "rows": {"train": len(encoded), "validation": len(encoded)},
        **({"groups": verdict["cross_fitted"]["groups"]} if cfg.group else {}),
        "training": f"cross-fitted ensemble over {cfg.folds} folds: {kept}",
        "ensemble": verdict,
        **fairness_entry,
        **over_folds(fit.networks, "adversarial"),  # fit --adversarial: each fold's twin
    }
    model.artifacts["oof_predictions.csv"] = oof_table(
        prepared, model, outputs, fit.fold_of.tolist()
    )
    model.artifacts[PREDICTIONS] = prediction_records(
        prepared, model, np.arange(len(encoded)), outputs
    )
    model.artifacts[SUMMARY] = data_summary(prepared, {"folds": cfg.folds, "rows": len(encoded)})
    return model

"""``fit --ensemble``: the network beside the best classical model, weighed on validation.

After the network trains, a classical model (logistic/linear regression, RBF SVM,
LightGBM: the best on the validation rows, or ``--head``) is fitted on the same rows'
features as ``--strategy features`` builds them (numbers and dates as scaled,
categories one-hot, image and text columns through their pretrained networks). Both
are temperature-calibrated on the validation rows; the ensemble mixes their
probabilities (regression: their values) as ``w * network + (1 - w) * classical``, with
``w`` on the grid 0, 0.05, ..., 1 by validation log loss (regression: mean squared
error): of the mixes that beat both models and lie within one standard error of the
lowest loss, the one nearest an even mix (see :func:`within_one_standard_error`). Weights
fitted on a few hundred rows chase noise; equal weights are known to hold up better on
new data than estimated ones (the "forecast combination puzzle").

The ensemble is kept only when it beats both models on validation; otherwise the
better one is returned alone (the classical one when validation cannot tell the two
apart: the simpler model), and ``metrics["ensemble"]`` (and the log) say which and
why. The weight is chosen on the same rows it is judged on, so the margin is an
optimistic one: one number fitted to hundreds of rows, not a second model.

The bundle holds both members: the network's weights in safetensors, the classical
model as arrays (LightGBM in its own text format), the weights in config.json.

With ``--folds K`` the same weighing runs on every row's out-of-fold outputs of K
networks and K classical models instead of one validation split
(:mod:`deepstrata.recipes.crossfit`): steadier on small tables, at K networks' cost.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from deepstrata import tasks
from deepstrata.evaluate.selection import within_one_standard_error
from deepstrata.model.model import combine
from deepstrata.recipes.features import train_features
from deepstrata.recipes.prepare import calibrated

CLASSICAL_HEADS = ("logreg", "svm", "gbm")  # --head auto's candidates for the classical side
WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)  # the network's share
TOLERANCE = 1e-6  # a relative margin below this is a tie, not a win


def auto_ensemble(prepared) -> tuple[bool, str]:
    """What ``--ensemble auto`` (the default) means for this data: ``(on, why)``.

    On for a table (every input a number, category, boolean or date, so no pretrained
    network is involved) whose task the classical models serve: there gradient boosting
    or a linear model often beats the network alone, and the validation split decides at
    the cost of a few classical fits. Off otherwise: image, text and audio columns have
    their own ways (``--strategy``), and ``--ensemble`` says so outright. Off with
    ``--folds``: K-fold cross-validation of the network, as asked (``--ensemble --folds``
    cross-fits both)."""
    from deepstrata.pretrained.strategy import TABULAR

    if prepared.cfg.folds:
        return False, "--folds cross-validates the network (--ensemble: cross-fitted with both)"

    kinds = sorted({feature.kind for feature in prepared.schema.inputs})
    if not tasks.get(prepared.schema.task).classical:
        return False, f"the classical models do not serve the {prepared.schema.task} task"
    if set(kinds) - set(TABULAR):
        return False, f"not a table of {', '.join(TABULAR)} columns ({', '.join(kinds)})"
    if prepared.cfg.strategy != "scratch":
        return False, f"--strategy {prepared.cfg.strategy} has no network to mix"
    return True, "a table whose task the classical models serve (--no-ensemble: the network)"


def classical_side(prepared):
    """A copy of ``prepared`` that trains a classical model on features (see module doc)."""
    from deepstrata.recipes.features import fixed_feature_networks

    kinds = fixed_feature_networks(
        prepared.schema,
        who="--ensemble's classical model",
        option="--ensemble",
        remedy="fit without --ensemble, or leave the column out (--ignore)",
    )
    cfg = dataclasses.replace(prepared.cfg, strategy="features", ensemble=False)
    return dataclasses.replace(prepared, cfg=cfg, pretrained=kinds)


def classical_heads(requested: str) -> tuple[str, ...]:
    return CLASSICAL_HEADS if requested == "auto" else (requested,)


def row_losses(task: str, outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per row: log loss (classifiers) or squared error (regression, on the encoded scale)."""
    return tasks.get(task).row_losses(outputs, labels)


def validation_loss(task: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    """The mean of :func:`row_losses`: log loss, or mean squared error."""
    return float(np.mean(row_losses(task, outputs, labels)))


def accuracy(task: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(tasks.get(task).probabilities(outputs).argmax(axis=1) == labels))


def weigh(
    task: str,
    network: np.ndarray,
    classical: np.ndarray,
    labels: np.ndarray,
    scored_on: str = "validation",
) -> dict:
    """Choose the network's weight on validation outputs (both calibrated); the verdict.
    ``scored_on`` names those outputs in the reason ("out-of-fold": deepstrata.recipes.crossfit).

    Returns ``{"kept", "returned", "weight_network", "metric", "validation", "reason"}``
    (plus ``"validation_accuracy"`` for classifiers)."""
    spec = tasks.get(task)
    metric = spec.loss_metric
    losses = np.stack(
        [row_losses(task, combine(task, [network, classical], [w, 1 - w]), labels) for w in WEIGHTS]
    )  # (weights, rows)
    curve = losses.mean(axis=1).tolist()
    alone = {"network": curve[-1], "classical": curve[0]}
    winner = min(alone, key=alone.get)
    close = within_one_standard_error(losses)
    if close[0] and close[-1]:  # validation cannot tell them apart: the simpler model
        winner = "classical"
    beats_both = np.array(curve) < min(alone.values()) * (1 - TOLERANCE)  # never at the ends
    candidates = np.flatnonzero(close & beats_both)
    kept = len(candidates) > 0
    if kept:  # of the mixes that beat both and the best cannot be told from: the most even
        best = int(candidates[np.argmin(np.abs(WEIGHTS[candidates] - 0.5))])
    else:
        best = int(np.argmin(curve))
    weight = float(WEIGHTS[best])
    if kept:
        returned = "ensemble"
        reason = (
            f"kept: {scored_on} {metric} {curve[best]:.4g} with the network at {weight:g} "
            f"beats the network ({alone['network']:.4g}) and the classical model "
            f"({alone['classical']:.4g})"
        )
    else:
        returned = winner
        reason = (
            f"not kept: no mix beats both alone on {scored_on} {metric} (network "
            f"{alone['network']:.4g}, classical {alone['classical']:.4g}), so the {winner} "
            "is returned"
            + (
                ": the two are within a standard error, and it is the simpler"
                if winner != min(alone, key=alone.get)
                else ""
            )
        )
    verdict = {
        "kept": kept,
        "returned": returned,
        "weight_network": weight if kept else float(returned == "network"),
        "metric": metric,
        "validation": {**alone, "ensemble": curve[best]},
        "reason": reason,
        "curve": {"weights": WEIGHTS.tolist(), metric: curve},
    }
    if spec.classifier:
        verdict["validation_accuracy"] = {
            "network": accuracy(task, network, labels),
            "classical": accuracy(task, classical, labels),
            "ensemble": accuracy(
                task, combine(task, [network, classical], [weight, 1 - weight]), labels
            ),
        }
    return verdict


FEW_VALIDATION_ROWS = 200  # below this, fit --ensemble suggests --folds (one row tips it)


def with_classical(side, trained, network_outputs, train_rows, val_rows, progress):
    """``fit --ensemble`` on one split: train the classical side and weigh it against the
    network. Returns the members, their weights, the validation outputs and info to keep."""
    progress.note("ensemble: the best classical model on the same rows")
    classical = train_features(
        side, train_rows, val_rows, progress=progress, heads=classical_heads(side.cfg.head)
    )
    classical_outputs = calibrated(classical.raw_outputs, classical.member)
    task = side.schema.task
    verdict = weigh(task, network_outputs, classical_outputs, side.encoded[val_rows])
    verdict["classical"] = classical.member.head.name
    verdict["classical_heads"] = classical.info["head"]["candidates"]
    progress.note(f"ensemble with {verdict['classical']}: {verdict['reason']}")
    if len(val_rows) < FEW_VALIDATION_ROWS:
        progress.note(
            f"ensemble: weighed on {len(val_rows)} validation rows; --folds 5 weighs it on "
            "every row's out-of-fold outputs (five networks; see deepstrata.recipes.crossfit)"
        )
    info = {**trained.info, "ensemble": verdict}
    if "calibration" in classical.info:
        info["ensemble"]["classical_calibration"] = classical.info["calibration"]
    if verdict["returned"] == "network":
        return [trained.member], None, network_outputs, info
    if verdict["returned"] == "classical":
        return [classical.member], None, classical_outputs, {**info, **classical.info}
    weight = verdict["weight_network"]
    mixed = combine(task, [network_outputs, classical_outputs], [weight, 1 - weight])
    return [trained.member, classical.member], [weight, round(1 - weight, 2)], mixed, info

"""``fit --ensemble``: the network beside the best classical model, weighed on validation.

After the network trains, a classical model (logistic/linear regression, RBF SVM,
LightGBM: the best on the validation rows, or ``--head``) is fitted on the same rows'
features as ``--strategy features`` builds them (numbers and dates as scaled,
categories one-hot, image and text columns through their pretrained networks). Both
are temperature-calibrated on the validation rows; the ensemble mixes their
probabilities (regression: their values) as ``w * network + (1 - w) * classical``, with
``w`` the grid point (0, 0.05, ..., 1) of the lowest validation log loss (regression:
mean squared error).

The ensemble is kept only when it beats both models on validation; otherwise the
better one is returned alone, and ``metrics["ensemble"]`` (and the log) say which and
why. The weight is chosen on the same rows it is judged on, so the margin is an
optimistic one: one number fitted to hundreds of rows, not a second model.

The bundle holds both members: the network's weights in safetensors, the classical
model as arrays (LightGBM in its own text format), the weights in config.json.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from deepstrata.errors import ConfigError
from deepstrata.heads import probabilities
from deepstrata.model import combine

CLASSICAL_HEADS = ("logreg", "svm", "gbm")  # --head auto's candidates for the classical side
WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)  # the network's share
TOLERANCE = 1e-6  # a relative margin below this is a tie, not a win


def classical_side(prepared):
    """A copy of ``prepared`` that trains a classical model on features (see module doc)."""
    from deepstrata.pretrained.registry import get
    from deepstrata.pretrained.strategy import TABULAR, pretrained_kinds

    schema = prepared.schema
    kinds = pretrained_kinds(schema)
    others = sorted({f.kind for f in schema.inputs} - set(kinds) - set(TABULAR))
    if others:
        raise ConfigError(
            "--ensemble: the classical model reads numbers, categories, booleans, dates and "
            f"pretrained image or text embeddings; {', '.join(others)} columns have no such form",
            option="--ensemble",
        )
    for name in kinds.values():
        get(name).require()  # a missing package fails now, naming the extra
    cfg = dataclasses.replace(prepared.cfg, strategy="features")
    return dataclasses.replace(prepared, cfg=cfg, pretrained=kinds)


def classical_heads(requested: str) -> tuple[str, ...]:
    return CLASSICAL_HEADS if requested == "auto" else (requested,)


def validation_loss(task: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    """Log loss (classifiers) or mean squared error (regression, on the encoded scale)."""
    if task == "regression":
        return float(np.mean((outputs.astype(np.float64) - labels) ** 2))
    chance = probabilities(task, outputs)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(chance, 1e-15, 1.0))))


def accuracy(task: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probabilities(task, outputs).argmax(axis=1) == labels))


def weigh(task: str, network: np.ndarray, classical: np.ndarray, labels: np.ndarray) -> dict:
    """Choose the network's weight on validation outputs (both calibrated); the verdict.

    Returns ``{"kept", "returned", "weight_network", "metric", "validation", "reason"}``
    (plus ``"validation_accuracy"`` for classifiers)."""
    metric = "mse" if task == "regression" else "log_loss"
    curve = [
        validation_loss(task, combine(task, [network, classical], [w, 1 - w]), labels)
        for w in WEIGHTS
    ]
    best = int(np.argmin(curve))
    alone = {"network": curve[-1], "classical": curve[0]}
    winner = min(alone, key=alone.get)
    kept = 0 < best < len(WEIGHTS) - 1 and curve[best] < alone[winner] * (1 - TOLERANCE)
    weight = float(WEIGHTS[best])
    if kept:
        returned = "ensemble"
        reason = (
            f"kept: validation {metric} {curve[best]:.4g} with the network at {weight:g} "
            f"beats the network ({alone['network']:.4g}) and the classical model "
            f"({alone['classical']:.4g})"
        )
    else:
        returned = winner
        reason = (
            f"not kept: no mix beats the {winner} alone on validation {metric} "
            f"({alone[winner]:.4g}; network {alone['network']:.4g}, classical "
            f"{alone['classical']:.4g}), so the {winner} is returned"
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
    if task != "regression":
        verdict["validation_accuracy"] = {
            "network": accuracy(task, network, labels),
            "classical": accuracy(task, classical, labels),
            "ensemble": accuracy(
                task, combine(task, [network, classical], [weight, 1 - weight]), labels
            ),
        }
    return verdict

"""Temperature scaling and expected calibration error (Guo et al., 2017).

Networks trained with cross-entropy tend to be over-confident: a predicted 95%
comes true far less often than 95% of the time. Temperature scaling divides the
logits by one scalar ``T > 0`` fitted to minimise the negative log-likelihood on
the *validation* rows (never the training rows, where the network is confident
for a reason). ``T > 1`` softens the probabilities, ``T < 1`` sharpens them.
Dividing by a positive number keeps the order of the logits, so the predicted
class, the accuracy and the ROC AUC never change; only the probabilities do.

The expected calibration error (ECE) measures what temperature scaling fixes:
bin the rows by the confidence of their top class and average, weighted by the
bin's size, the gap between the bin's accuracy and its mean confidence.

>>> logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
>>> target = torch.tensor([0, 1, 1, 0])  # right half the time, yet 98% sure
>>> temperature = fit_temperature(logits, target, task="multiclass")
>>> temperature > 1
True
>>> before = torch.softmax(logits, dim=1).numpy()
>>> after = torch.softmax(logits / temperature, dim=1).numpy()
>>> expected_calibration_error(after, target.numpy()) < expected_calibration_error(before, target.numpy())
True
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepstrata.evaluate.metrics import expected_calibration_error

__all__ = ["calibrate", "expected_calibration_error", "fit_temperature"]

MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0
_SEARCH_STEPS = 50  # golden-section steps: the log-T bracket (width 6) shrinks to ~1e-10


def fit_temperature(logits: torch.Tensor, target: torch.Tensor, *, task: str) -> float:
    """The ``T`` in ``[0.05, 20]`` that minimises the NLL of ``logits / T``.

    ``task="binary"``: logits ``(B,)`` (of the positive class), target ``(B,)`` in {0, 1}.
    ``task="multiclass"``: logits ``(B, K)``, target ``(B,)`` class indices.
    ``task="multilabel"``: logits and 0/1 targets ``(B, L)``.
    Returns 1.0 (leave the network as it is) for no rows or a single class
    present, where the NLL is minimised at an endless ``T`` and says nothing.

    The NLL is convex in ``1/T``, so it has one minimum along ``log T``; a
    golden-section search over ``log T`` finds it deterministically, with no
    learning rate or starting point to tune.
    """
    from deepstrata import tasks

    logits = logits.detach().to(torch.float64)
    target = target.detach()
    if task not in tasks.TASKS:
        raise ValueError(f"task must be one of {', '.join(tasks.TASKS)}, got {task!r}")
    nll = tasks.get(task).calibration_nll(logits, target)  # checks the shapes
    if len(target) != len(logits):
        raise ValueError(f"target must be (B,) = ({len(logits)},), got shape {tuple(target.shape)}")
    if len(target) == 0 or torch.unique(target).numel() < 2:  # one class (or label value)
        return 1.0
    if not torch.isfinite(logits).all():  # a NaN would steer the search to a bound
        bad = int((~torch.isfinite(logits)).sum())
        raise ValueError(f"logits must be finite; {bad} are NaN or infinite")

    low, high = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    left, right = high - ratio * (high - low), low + ratio * (high - low)
    loss_left, loss_right = nll(math.exp(left)), nll(math.exp(right))
    for _ in range(_SEARCH_STEPS):
        if loss_left <= loss_right:  # the minimum lies in [low, right]
            high, right, loss_right = right, left, loss_left
            left = high - ratio * (high - low)
            loss_left = nll(math.exp(left))
        else:  # in [left, high]
            low, left, loss_left = left, right, loss_right
            right = low + ratio * (high - low)
            loss_right = nll(math.exp(right))
    temperature = math.exp((low + high) / 2.0)
    return min(max(temperature, MIN_TEMPERATURE), MAX_TEMPERATURE)


def calibrate(member, raw: np.ndarray, labels: np.ndarray) -> dict:
    """Temperature scaling of ``member`` on held-out logits ``raw``; what it did (the
    temperature, ECE before and after).

    With no misclassified held-out row the likelihood keeps rising as the temperature
    falls, so the fit would sharpen without limit on no evidence: then the temperature
    may soften (> 1) but not sharpen.
    """
    from deepstrata import tasks

    task = tasks.get(member.architecture["task"])
    temperature = fit_temperature(torch.from_numpy(raw), torch.from_numpy(labels), task=task.name)
    note = ""
    if temperature < 1.0 and np.array_equal(task.point_predictions(raw), labels):
        temperature, note = 1.0, "every held-out row is right: no evidence to sharpen on"
    member.temperature = temperature
    return {
        "method": "temperature scaling",
        "temperature": temperature,
        "ece_before": task.calibration_error(raw, labels),
        "ece_after": task.calibration_error(raw / temperature, labels),
        "fitted_on": f"validation ({len(labels)} rows)",
        **({"note": note} if note else {}),
    }

"""TreeSHAP through shap's ``TreeExplainer`` for LightGBM members; integrated gradients
for the network members beside them.

A LightGBM member (``--strategy features --head gbm``, or the classical side of an
ensemble) sees each row as its features (:mod:`deepstrata.model.extractor`): numbers
scaled, categories one-hot, texts and images as pretrained embeddings. TreeSHAP gives
exact interventional Shapley values of the trees' raw score against one reference, the
features of the row's stated baseline (one for all rows unless a blurred image makes
each row's its own), in polynomial time; each feature's value is summed
into the raw column it came from. The raw score is a logit (binary: of the positive
class, negated when the other is explained; multiclass: the explained class's score) or
the standardised value, and the explained value is the member's calibrated probability
(or the value in the target's units), so each row's values are scaled by
(f(x) - f(baseline)) / (their sum) onto it: exact for regression (an affine map), a
linearisation of the logistic link for classes (its sign and ranks kept). So a row's
values sum to the member's f(x) - f(baseline) by construction, and the members' weighted
values to the model's (the completeness gap then only measures the network members').
"""

from __future__ import annotations

import numpy as np
import torch

from deepstrata.explain.gradients import member_ig, member_weights, output_widths
from deepstrata.explain.library import require
from deepstrata.kinds import group_by_kind


def is_gbm(member) -> bool:
    return getattr(getattr(member, "head", None), "name", None) == "gbm"


def refusal(model) -> str | None:
    """Why TreeSHAP does not apply to ``model``, or None."""
    kinds = [is_gbm(m) or hasattr(m, "network") for m in model.members]
    if not any(is_gbm(m) for m in model.members) or not all(kinds):
        return (
            "TreeSHAP needs a LightGBM member (--head gbm) and only LightGBM or network "
            "members beside it (use shap, exact, lime or permutation)"
        )
    return None


def _feature_columns(member, columns: list[str]) -> np.ndarray:
    """``(D,)`` the raw column of each of the member's features."""
    by_kind = group_by_kind(member.preprocessors)
    owners = []
    for kind, encoder in member.extractor.encoders.items():
        names = by_kind[kind]
        for name, width in zip(names, output_widths(encoder, names, member.preprocessors)):
            owners += [columns.index(name)] * width
    return np.asarray(owners)


def _explained_change(target, inputs) -> np.ndarray:
    """``(rows,)`` the member's explained value at each row minus at the baseline."""
    from deepstrata import tasks

    member, rows = inputs.member, np.arange(target.rows)
    task = tasks.get(member.architecture["task"])
    ends = []
    for keep in (True, False):
        blocks = inputs.masked(rows, np.full((target.rows, len(target.columns)), keep))
        ends.append(
            target._pick(task.calibrated(member.raw_outputs(blocks), member.temperature), rows)
        )
    return ends[0] - ends[1]


def _shap_values(shap, member, reference: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Interventional TreeSHAP values of ``features`` (n, D) against one ``reference`` row."""
    explainer = shap.TreeExplainer(
        member.head.booster_,
        data=reference,
        feature_perturbation="interventional",
        model_output="raw",
    )
    return np.asarray(explainer.shap_values(features, check_additivity=False))


def member_tree_shap(target, inputs) -> np.ndarray:
    """``(rows, columns)`` one LightGBM member's TreeSHAP values on the explained scale."""
    shap = require("shap", "shap")
    member = inputs.member
    rows = np.arange(target.rows)
    with torch.inference_mode():
        features = member.extractor(inputs.blocks).double().numpy()  # (N, D)
        reference = member.extractor(inputs.baseline).double().numpy()  # (N, D): each row's
    if (reference == reference[:1]).all():  # one baseline for every row: one explainer
        values = _shap_values(shap, member, reference[:1], features)
    else:  # a blurred image is each row's own: each row against its own reference
        parts = [_shap_values(shap, member, reference[[i]], features[[i]]) for i in rows]
        values = np.concatenate(parts, axis=0)
    if values.ndim == 3:  # multiclass: (N, D, K), the explained class's score
        values = values[rows, :, target.classes]
    elif target.classes is not None:  # binary: the positive class's logit
        values = np.where(target.classes[:, None] == 1, values, -values)
    columns = np.zeros((target.rows, len(target.columns)))
    np.add.at(columns.T, _feature_columns(member, target.columns), values.T)
    sums = columns.sum(axis=1)
    change = _explained_change(target, inputs)
    scale = np.divide(change, sums, out=np.zeros_like(change), where=np.abs(sums) > 1e-12)
    return columns * scale[:, None]


def tree_shap(target, *, steps: int = 50, **_):
    """``(rows, columns)`` values and the settings they ran with."""
    total = np.zeros((target.rows, len(target.columns)))
    maps: dict = {}
    for weight, inputs in zip(member_weights(target), target.inputs):
        if is_gbm(inputs.member):
            total += weight * member_tree_shap(target, inputs)
        else:
            member_ig(target, inputs, weight, steps, total, maps)
    settings = {
        "explainer": "shap.TreeExplainer (interventional, the baseline row's features)",
        "scale": "raw score values scaled onto the explained value per row",
    }
    if any(hasattr(inputs.member, "network") for inputs in target.inputs):
        settings["steps"] = steps  # the network members: integrated gradients
    if maps:
        settings["maps"] = maps
    return total, settings

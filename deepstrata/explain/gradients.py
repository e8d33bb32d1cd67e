"""Integrated gradients through Captum, on every network member.

Category codes and token ids are integers, which a gradient cannot follow, so the
integral runs over each kind's *encoder output* (Captum's ``LayerIntegratedGradients``
over the network's encoders): numbers, booleans and dates pass their encoder unchanged
(the path is in the scaled input itself), a category's embedding, a text's or image's
encoded vector are interpolated from the baseline's. The attributions of a column's
positions are summed into one per raw column. Completeness holds along that path: a
row's attributions sum to f(x) - f(baseline), where f is the explained probability
(or value) of the whole model; the gap is measured and reported.

An ensemble of networks is explained member by member: its probabilities (values) are
the members' weighted mean, so the weighted attributions add up to the ensemble's.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from deepstrata.explain.library import require

EVALUATIONS_PER_PASS = 8192  # rows x steps per forward pass


def output_widths(encoder, names: list[str], preprocessors: dict) -> list[int]:
    """How many of the encoder's output values each of its columns owns (the encoders
    put each column's output side by side)."""
    if hasattr(encoder, "embeddings"):  # categories: one embedding per column
        return [embedding.embedding_dim for embedding in encoder.embeddings]
    if hasattr(encoder, "cardinalities"):  # categories one-hot (a classical member's features)
        return list(encoder.cardinalities)
    widths = [preprocessors[name].width for name in names]
    if sum(widths) == encoder.out_dim:  # dense kinds: the scaled block itself
        return widths
    if encoder.out_dim % len(names):
        raise ValueError(f"cannot split {encoder.out_dim} encoder outputs over {names}")
    return [encoder.out_dim // len(names)] * len(names)


def probabilities(spec, raw: torch.Tensor) -> torch.Tensor:
    """The task's probabilities of calibrated outputs, in torch (``spec.probabilities``
    is NumPy): one logit per row (binary), a softmax over classes, or one sigmoid per
    label. tests/explain/test_gradients.py checks it against the NumPy one."""
    if spec.prediction == "labels":
        return torch.sigmoid(raw)
    if raw.ndim == 1:
        positive = torch.sigmoid(raw)
        return torch.stack([1 - positive, positive], dim=1)
    return torch.softmax(raw, dim=1)


def explained(target, member, raw: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the explained value of one member's raw outputs."""
    spec = target.spec
    if not spec.classifier:
        return spec.decode(target.model.target_encoder, raw).reshape(len(raw))
    chosen = probabilities(spec, raw / member.temperature)
    return chosen.gather(1, classes[:, None])[:, 0]


def _slots(network, kinds: list[str], by_kind: dict, preprocessors: dict) -> list:
    """Where the integral runs, as ``(layer, column names, per-column output widths or
    None)``: an image column's pixels (its encoder's 0..1 image, after the augmentation
    that is the identity in eval) so that its attributions form a heat map; an audio
    column's log-mel spectrogram as its ResNet reads it (``(B, 1, mels, frames)``) so that
    they form a time x frequency map; every other kind's encoder output, split into its
    columns."""
    from deepstrata.nn.augment import ImageAugment

    slots = []
    for kind in kinds:
        encoder, names = network.encoders[kind], by_kind[kind]
        pixels = [m for m in encoder.modules() if isinstance(m, ImageAugment)]
        spectrograms = list(getattr(encoder, "inputs", [])) if kind == "audio" else []
        if pixels and len(pixels) == len(names):  # an image per column: (B, 3, S, S) each
            slots += [(layer, [name], None) for layer, name in zip(pixels, names)]
        elif spectrograms and len(spectrograms) == len(names):  # (B, 1, mels, frames) each
            slots += [(layer, [name], None) for layer, name in zip(spectrograms, names)]
        else:
            slots.append((encoder, names, output_widths(encoder, names, preprocessors)))
    return slots


def member_forward(target, member, kinds: list[str], weight: float):
    """``forward(*blocks, classes)``: the member's weighted explained value, what Captum
    differentiates."""

    def forward(*args):
        raw = member.network(dict(zip(kinds, args[: len(kinds)])))
        return weight * explained(target, member, raw, args[len(kinds)])

    return forward


def target_classes(target) -> torch.Tensor:
    return torch.from_numpy(
        np.zeros(target.rows, np.int64) if target.classes is None else target.classes
    )


def member_weights(target) -> list[float]:
    return target.model.weights or [1 / len(target.inputs)] * len(target.inputs)


REFINE = (2, 4, 8)  # a row that misses completeness is integrated again with this many x steps
ROW_TOLERANCE = 0.005  # of the row's |f(x) - f(baseline)|: half the reported 1 %


def integrated_gradients(
    target, *, steps: int = 50, refine: bool = True, **_
) -> tuple[np.ndarray, dict]:
    """``(rows, columns)`` attributions and the settings they ran with; for image and
    audio columns ``settings["maps"]`` holds ``{column: (rows, H, W)}`` pixel (time x
    frequency) attributions, summed over the colour channels.

    A trained network can turn sharply along the path (a saturated class switches within
    a few % of it), which ``steps`` points miss: with ``refine``, each row whose
    attributions miss f(x) - f(baseline) by more than ROW_TOLERANCE is integrated again
    with 2, 4, then 8 times the steps, and the settings say how many rows needed it."""
    total, maps = _attribute(target, steps, np.arange(target.rows))
    used = np.full(target.rows, steps)
    change = target.predictions - target.base
    floor = 0.1 * float(np.abs(change).mean()) if len(change) else 0.0
    for factor in REFINE if refine else ():
        gap = np.abs(total.sum(axis=1) - change)
        missing = np.flatnonzero(gap > ROW_TOLERANCE * np.maximum(np.abs(change), floor))
        if not len(missing):
            break
        again, again_maps = _attribute(target, steps * factor, missing)
        total[missing] = again[missing]
        for column, heat in maps.items():
            heat[missing] = again_maps[column][missing]
        used[missing] = steps * factor
    settings = {
        "steps": steps,
        "refined_rows": int((used > steps).sum()),
        "max_steps": int(used.max()) if len(used) else steps,
        "path": "straight line from each row's baseline, per encoder output",
        "baseline": target.baseline_summary(),
    }
    if maps:
        settings["maps"] = maps
    return total, settings


def _attribute(target, steps: int, rows: np.ndarray) -> tuple[np.ndarray, dict]:
    """Every network member's weighted attributions of ``rows`` (the others left 0)."""
    total = np.zeros((target.rows, len(target.columns)))
    maps: dict[str, np.ndarray] = {}
    for weight, inputs in zip(member_weights(target), target.inputs):
        member_ig(target, inputs, weight, steps, total, maps, rows=rows)
    return total, maps


def member_ig(
    target, inputs, weight: float, steps: int, total: np.ndarray, maps: dict, rows=None
) -> None:
    """One network member's weighted attributions of ``rows`` (all by default) added into
    ``total`` and ``maps``."""
    attr = require("captum.attr", "captum")
    classes = target_classes(target)
    member = inputs.member
    kinds = list(inputs.blocks)
    slots = _slots(
        member.network, kinds, _columns_by_kind(member.preprocessors), member.preprocessors
    )
    forward = member_forward(target, member, kinds, weight)
    with warnings.catch_warnings():  # Captum warns of layers that feed one another:
        warnings.simplefilter("ignore", UserWarning)  # these never do
        method = attr.LayerIntegratedGradients(forward, [layer for layer, _, _ in slots])
    rows = np.arange(target.rows) if rows is None else np.asarray(rows)
    per_pass = max(1, EVALUATIONS_PER_PASS // steps)
    for start in range(0, len(rows), per_pass):
        part = rows[start : start + per_pass]
        picked = torch.from_numpy(part)
        x = tuple(inputs.blocks[k][picked] for k in kinds)
        baseline = tuple(inputs.baseline[k][picked] for k in kinds)  # each row's own
        layers = method.attribute(
            x, baselines=baseline, additional_forward_args=(classes[picked],), n_steps=steps
        )
        add_slots(
            target, slots, layers if isinstance(layers, list) else [layers], part, total, maps
        )


def add_slots(target, slots: list, layers, part, total: np.ndarray, maps: dict) -> None:
    """Add one pass's attributions at ``slots`` (one tensor each) of rows ``part`` into
    ``total`` (per raw column) and ``maps`` (an image's or spectrogram's, summed over its
    channels, so a column's value is its map's sum)."""
    for (_, names, widths), values in zip(slots, layers):
        values = values.detach().double().numpy()
        if widths is None:  # an image's pixels (n, 3, S, S), a spectrogram (n, 1, M, F)
            column = target.columns.index(names[0])
            total[part, column] += values.reshape(len(values), -1).sum(axis=1)
            heat = maps.setdefault(names[0], np.zeros((target.rows, *values.shape[2:])))
            heat[part] += values.sum(axis=1)
            continue
        offsets = np.cumsum([0, *widths])
        for name, lo, hi in zip(names, offsets[:-1], offsets[1:]):
            total[part, target.columns.index(name)] += values[:, lo:hi].sum(axis=1)


def _columns_by_kind(preprocessors: dict) -> dict[str, list[str]]:
    from deepstrata.kinds import group_by_kind

    return group_by_kind(preprocessors)

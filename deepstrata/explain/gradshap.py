"""Gradient SHAP through Captum (``GradientShap``), on every network member.

Expected gradients (Erion et al., 2021; Lundberg & Lee's GradientExplainer): the
gradient at random points between the baseline and the row, times the row's distance
from the baseline, averaged over ``samples`` draws. It runs where integrated gradients
runs (:func:`deepstrata.explain.gradients._slots`): an image column's pixels and an audio
column's log-mel spectrogram, so that their values form a heat map (a time x frequency
map) whose sum is the column's value; every other kind on its encoder's output, the
combiner's input (Captum's ``GradientShap`` on the network above those points, with the
points' values put in place by forward hooks, since its layer variant interpolates the
inputs themselves, which token ids and category codes cannot be), so category codes and
token ids, which a gradient cannot follow, are explained through their encodings as
integrated gradients explains them; each encoder output's values are summed into the
raw column they came from. The reference is the stated baseline of each kind
(:mod:`deepstrata.explain.baselines`), the one every other method here uses, each row's
own (a blurred image is the row's image blurred). Captum draws a reference from
``baselines`` at random for each point, not the row's, so a row's values at each point
are given as their change from the row's reference (added back in the forward pass,
where it is passed beside the row), and the baseline is no change at all. So the values
sum to f(x) - f(baseline) in expectation (not exactly: it is a Monte-Carlo estimate of
the integral), and each draw adds Gaussian noise of ``stdevs`` to the row as SmoothGrad
does (Captum's default: none).
"""

from __future__ import annotations

import numpy as np
import torch

from deepstrata.explain.gradients import (
    _columns_by_kind,
    _slots,
    add_slots,
    explained,
    member_weights,
    target_classes,
)
from deepstrata.explain.library import require

SAMPLES = 50  # draws per row (the integral's points)
EVALUATIONS_PER_PASS = 8192


def _at_slots(network, slots: list, blocks: dict) -> list[torch.Tensor]:
    """Each slot's value (an encoder's output, an image's pixels, a spectrogram) when the
    network reads ``blocks``."""
    found: list = [None] * len(slots)
    handles = [
        layer.register_forward_hook(lambda _m, _i, out, k=k: found.__setitem__(k, out))
        for k, (layer, _, _) in enumerate(slots)
    ]
    try:
        with torch.no_grad():
            network(blocks)
    finally:
        for handle in handles:
            handle.remove()
    return found


def _forward(target, member, slots: list, mapped: list[str], weight: float):
    """``forward(*changes, classes, *references, *mapped blocks)``: the member's weighted
    explained value with each slot at ``reference + change``. An encoder slot's value is
    the encoder's output itself (the encoder is not run); a pixel or spectrogram slot's
    replaces that layer's output (a forward hook) while its kind's encoder runs on the
    kind's block (the reference's: what comes before the slot is overridden anyway)."""
    network = member.network
    dense = {kind: k for k, (layer, _, _) in enumerate(slots) for kind in network.encoders
             if layer is network.encoders[kind]}  # fmt: skip
    count = len(slots)

    def forward(*args):
        chosen, references = args[count], args[count + 1 : 2 * count + 1]
        values = [reference + change for reference, change in zip(references, args[:count])]
        blocks = dict(zip(mapped, args[2 * count + 1 :]))
        handles = [
            layer.register_forward_hook(lambda _m, _i, _out, value=value: value)
            for k, ((layer, _, _), value) in enumerate(zip(slots, values))
            if k not in dense.values()
        ]
        try:
            encoded = [
                values[dense[kind]] if kind in dense else encoder(blocks[kind])
                for kind, encoder in network.encoders.items()
            ]
            raw = network.head(network.combiner(torch.cat(encoded, dim=1)))
        finally:
            for handle in handles:
                handle.remove()
        return weight * explained(target, member, raw, chosen)

    return forward


def _member(attr, target, inputs, weight: float, draws: int, total, maps: dict) -> None:
    """One network member's weighted values added into ``total`` and ``maps``."""
    member = inputs.member
    network, kinds = member.network, list(inputs.blocks)
    slots = _slots(network, kinds, _columns_by_kind(member.preprocessors), member.preprocessors)
    encoders = [
        layer for layer, _, _ in slots if any(layer is e for e in network.encoders.values())
    ]
    mapped = [kind for kind in kinds if not any(network.encoders[kind] is e for e in encoders)]
    method = attr.GradientShap(_forward(target, member, slots, mapped, weight))
    own = _at_slots(network, slots, inputs.blocks)
    reference = _at_slots(network, slots, inputs.baseline)  # each row's own
    zero = tuple(torch.zeros_like(value[:1]) for value in own)  # a one-row distribution
    classes = target_classes(target)
    per_pass = max(1, EVALUATIONS_PER_PASS // draws)
    for start in range(0, target.rows, per_pass):
        part = slice(start, start + per_pass)
        values = method.attribute(  # the change from the row's own reference
            tuple(mine[part] - theirs[part] for mine, theirs in zip(own, reference)),
            baselines=zero,  # no change
            n_samples=draws,
            additional_forward_args=(
                classes[part],
                *(theirs[part] for theirs in reference),
                *(inputs.baseline[kind][part] for kind in mapped),
            ),
        )
        add_slots(target, slots, list(values), part, total, maps)


def gradient_shap(target, *, samples: int | None = None, seed: int = 0, **_):
    """``(rows, columns)`` gradient SHAP values and the settings they ran with; for image
    and audio columns ``settings["maps"]`` holds ``{column: (rows, H, W)}`` pixel (time x
    frequency) values, summed over the colour channels, as integrated gradients gives."""
    attr = require("captum.attr", "captum")
    draws = samples or SAMPLES
    total, maps = np.zeros((target.rows, len(target.columns))), {}
    generator_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    # Captum draws the points along the path with NumPy's global generator
    # (np.random.uniform) and any noise with torch's: both seeded, then put back
    torch.manual_seed(seed)
    np.random.seed(seed)
    try:
        for weight, inputs in zip(member_weights(target), target.inputs):
            _member(attr, target, inputs, weight, draws, total, maps)
    finally:
        torch.random.set_rng_state(generator_state)
        np.random.set_state(numpy_state)
    settings = {
        "samples": draws,
        "seed": seed,
        "explainer": "captum.attr.GradientShap (on image pixels, audio log-mel "
        "spectrograms, and every other kind's encoding, the combiner's input)",
        "reference": "the stated baseline of each column, each row's own",
        "baseline": target.baseline_summary(),
    }
    if maps:
        settings["maps"] = maps
    return total, settings

"""Gradient SHAP through Captum (``GradientShap``), on every network member.

Expected gradients (Erion et al., 2021; Lundberg & Lee's GradientExplainer): the
gradient at random points between the baseline and the row, times the row's distance
from the baseline, averaged over ``samples`` draws. It runs where the network joins
its kinds, on the combiner's input (every kind's encoder output side by side; Captum's
``GradientShap`` on the network above it, since its layer variant interpolates the
inputs themselves, which token ids and category codes cannot be), so
category codes and token ids, which a gradient cannot follow, are explained through
their encodings as integrated gradients explains them; each encoder output's values are
summed into the raw column they came from. The reference is the stated baseline of
each kind (:mod:`deepstrata.explain.baselines`), the one every other method here uses,
each row's own (a blurred image is the row's image blurred). Captum draws a reference
from ``baselines`` at random for each point, not the row's, so a row's features are
given as their change from the row's reference (added back in the forward pass, where
it is passed beside the row), and the baseline is no change at all. So the values sum
to f(x) - f(baseline) in expectation (not exactly: it is a Monte-Carlo estimate of the
integral), and each draw adds Gaussian noise of ``stdevs`` to the row as SmoothGrad
does (Captum's default: none).
"""

from __future__ import annotations

import numpy as np
import torch

from deepstrata.explain.gradients import (
    _columns_by_kind,
    explained,
    member_weights,
    output_widths,
    target_classes,
)
from deepstrata.explain.library import require

SAMPLES = 50  # draws per row (the integral's points)
EVALUATIONS_PER_PASS = 8192


def _column_offsets(network, preprocessors: dict, columns: list[str]) -> list[tuple[int, int, int]]:
    """``(column index, start, stop)`` of each raw column in the combiner's input."""
    by_kind = _columns_by_kind(preprocessors)
    spans, start = [], 0
    for kind, encoder in network.encoders.items():  # the order the network concatenates them
        names = by_kind[kind]
        for name, width in zip(names, output_widths(encoder, names, preprocessors)):
            spans.append((columns.index(name), start, start + width))
            start += width
    return spans


def _features(network, blocks: dict) -> torch.Tensor:
    """The combiner's input, as ``Network.forward`` makes it."""
    return torch.cat([encoder(blocks[kind]) for kind, encoder in network.encoders.items()], dim=1)


def gradient_shap(target, *, samples: int | None = None, seed: int = 0, **_):
    """``(rows, columns)`` gradient SHAP values and the settings they ran with."""
    attr = require("captum.attr", "captum")
    draws = samples or SAMPLES
    classes = target_classes(target)
    total = np.zeros((target.rows, len(target.columns)))
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # Captum draws the points with torch's global generator
    try:
        for weight, inputs in zip(member_weights(target), target.inputs):
            member = inputs.member
            network = member.network

            def forward(change, chosen, reference, member=member, network=network, weight=weight):
                raw = network.head(network.combiner(reference + change))
                return weight * explained(target, member, raw, chosen)

            method = attr.GradientShap(forward)
            spans = _column_offsets(network, member.preprocessors, target.columns)
            with torch.no_grad():
                own = _features(network, inputs.blocks)  # (N, D)
                reference = _features(network, inputs.baseline)  # (N, D): each row's own
            zero = torch.zeros_like(own[:1])
            per_pass = max(1, EVALUATIONS_PER_PASS // draws)
            for start in range(0, target.rows, per_pass):
                part = slice(start, start + per_pass)
                values = method.attribute(  # the change from the row's own reference
                    own[part] - reference[part],
                    baselines=zero,  # a one-row distribution: no change
                    n_samples=draws,
                    additional_forward_args=(classes[part], reference[part]),
                )
                values = values.detach().double().numpy()  # (n, combiner's input width)
                for column, lo, hi in spans:
                    total[part, column] += values[:, lo:hi].sum(axis=1)
    finally:
        torch.random.set_rng_state(generator_state)
    settings = {
        "samples": draws,
        "seed": seed,
        "explainer": "captum.attr.GradientShap (on the combiner's input)",
        "reference": "the stated baseline of each column, each row's own",
        "baseline": target.baseline_summary(),
    }
    return total, settings

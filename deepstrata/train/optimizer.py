"""The optimizer's parameter groups, and trial steps that leave no trace.

AdamW with weight decay on weight matrices only, and each pretrained backbone at its
fraction of the learning rate (discriminative rates); :func:`preserved_training_state`
lets a probe or a sweep train and then puts everything back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["parameter_groups", "preserved_training_state"]


def parameter_groups(network: nn.Module, weight_decay: float, learning_rate: float) -> list[dict]:
    """AdamW groups: weight decay on weight matrices only, and each module's ``lr_scale``.

    Decaying biases and norm gains shrinks them towards zero for no regularising
    benefit (they do not scale with width). A module with an ``lr_scale`` attribute (a
    pretrained backbone) trains its parameters at that fraction of the learning rate;
    the group keeps the factor as ``lr_scale`` for the range test. Frozen parameters
    are included, so that unfreezing them later needs no new optimizer; AdamW skips a
    parameter without a gradient.
    """
    scales: dict[int, float] = {}
    for module in network.modules():  # parents first, so an inner lr_scale wins
        scale = getattr(module, "lr_scale", None)
        if scale is not None:
            scales.update((id(p), float(scale)) for p in module.parameters())
    buckets: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for parameter in network.parameters():
        key = (scales.get(id(parameter), 1.0), parameter.ndim > 1)
        buckets.setdefault(key, []).append(parameter)
    groups = []
    for (scale, decays), params in sorted(
        buckets.items(), key=lambda item: (-item[0][0], not item[0][1])
    ):
        groups.append(
            {
                "params": params,
                "weight_decay": weight_decay if decays else 0.0,
                "lr": learning_rate * scale,
                "lr_scale": scale,
            }
        )
    return groups


@contextlib.contextmanager
def preserved_training_state(network: nn.Module) -> Iterator[None]:
    """Trial steps inside (a probe, a sweep); weights, mode and torch RNG come back after."""
    weights = {k: v.detach().clone() for k, v in network.state_dict().items()}
    was_training = network.training
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            network.load_state_dict(weights)
            network.train(was_training)

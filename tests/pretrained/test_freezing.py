"""--freeze all and gradual: which pretrained stages train after each epoch."""

from __future__ import annotations

import types

import torch
from torch import nn

from deepstrata.pretrained.freezing import GradualUnfreezing, backbones, freeze


class TinyBackbone(nn.Module):
    """Three stages of one linear layer each, bottom to top."""

    out_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(3))

    def stages(self):
        return [[layer] for layer in self.layers]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def trainable(backbone: TinyBackbone) -> list[bool]:
    return [layer.weight.requires_grad for layer in backbone.layers]


def network() -> tuple[nn.Module, TinyBackbone]:
    backbone = TinyBackbone()
    return nn.Sequential(backbone, nn.Linear(2, 1)), backbone


def test_freeze_all_leaves_only_the_new_layers_trainable():
    net, backbone = network()
    assert backbones(net) == [backbone]
    freeze(net, "all")
    assert trainable(backbone) == [False, False, False]
    assert net[1].weight.requires_grad
    freeze(net, "none")
    assert trainable(backbone) == [True, True, True]


def test_gradual_unfreezing_opens_one_stage_from_the_top_per_epoch():
    net, backbone = network()
    trainer = types.SimpleNamespace(network=net, history=types.SimpleNamespace(epochs=[]))
    callback = GradualUnfreezing()
    callback.on_fit_start(trainer)
    assert trainable(backbone) == [False, False, False]
    seen = []
    for epoch in range(1, 5):
        callback.on_epoch_end(trainer, {"epoch": epoch})
        seen.append(trainable(backbone))
    assert seen == [
        [False, False, True],
        [False, True, True],
        [True, True, True],
        [True, True, True],
    ]


def test_a_resumed_run_starts_with_the_stages_its_epochs_opened():
    net, backbone = network()
    history = types.SimpleNamespace(epochs=[{"epoch": 1}, {"epoch": 2}])
    GradualUnfreezing().on_fit_start(types.SimpleNamespace(network=net, history=history))
    assert trainable(backbone) == [False, True, True]


def test_a_frozen_stage_does_not_move_under_adamw_with_weight_decay():
    from deepstrata.train.optimizer import parameter_groups

    net, backbone = network()
    freeze(net, "all")
    before = backbone.layers[0].weight.clone()
    optimizer = torch.optim.AdamW(parameter_groups(net, 0.5, 0.1), lr=0.1)
    net(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    torch.testing.assert_close(backbone.layers[0].weight, before)

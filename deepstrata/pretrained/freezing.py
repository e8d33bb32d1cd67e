"""Freezing pretrained layers while fine-tuning: all of them, or unfrozen stage by stage.

``--freeze all`` trains only the new layers (the backbone stays as it came);
``--freeze gradual`` starts that way and unfreezes one more stage of every backbone
from the top at the end of each epoch (ULMFiT's gradual unfreezing), so the new head
settles before its gradients reach the pretrained weights. Batch-norm statistics
stay frozen in every case (see the backbones).
"""

from __future__ import annotations

from torch import nn

from deepstrata.train.callbacks import Callback


def backbones(network: nn.Module) -> list[nn.Module]:
    """The pretrained backbones inside ``network`` (modules that list their ``stages``)."""
    return [module for module in network.modules() if callable(getattr(module, "stages", None))]


def set_trainable_stages(backbone: nn.Module, trainable: int) -> None:
    """Freeze every stage of ``backbone`` but the top ``trainable`` ones."""
    stages = backbone.stages()
    for index, stage in enumerate(stages):
        train = index >= len(stages) - trainable
        for module in stage:
            for parameter in module.parameters():
                parameter.requires_grad_(train)


def freeze(network: nn.Module, how: str) -> None:
    """Apply ``--freeze`` (none | all | gradual) before training."""
    for backbone in backbones(network):
        set_trainable_stages(backbone, len(backbone.stages()) if how == "none" else 0)


class GradualUnfreezing(Callback):
    """After epoch e, the top e stages of every backbone train (the rest stay frozen)."""

    def on_fit_start(self, trainer) -> None:  # also on resume: the epochs already done count
        self._apply(trainer.network, len(trainer.history.epochs))

    def on_epoch_end(self, trainer, record: dict) -> None:
        self._apply(trainer.network, int(record["epoch"]))

    @staticmethod
    def _apply(network: nn.Module, epochs_done: int) -> None:
        for backbone in backbones(network):
            set_trainable_stages(backbone, min(epochs_done, len(backbone.stages())))

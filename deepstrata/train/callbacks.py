"""Callbacks: how extras hook into the training loop without living in it.

The trainer calls four named events, in this order::

    on_fit_start(trainer)                       once, before the first batch (also on resume)
    on_batch_end(trainer, epoch, step, loss)    after every optimizer step; ``loss`` is a detached tensor
    on_epoch_end(trainer, record)               after validation; ``record`` is the epoch's line of metrics
    on_fit_end(trainer, history)                once, after the best weights are restored

A callback subclasses :class:`Callback` and overrides the events it needs. It may
read ``trainer.network``, ``trainer.optimizer``, ``trainer.history`` and set
``trainer.stop_training = True`` to end training after the current epoch.

Example: stop once validation accuracy reaches 0.95.

>>> class StopAt(Callback):
...     def __init__(self, accuracy):
...         self.accuracy = accuracy
...     def on_epoch_end(self, trainer, record):
...         if record.get("val_accuracy", 0.0) >= self.accuracy:
...             trainer.stop_training = True

Pass it as ``deepstrata.fit(data, target=..., callbacks=[StopAt(0.95)])`` or
``Trainer(..., callbacks=[StopAt(0.95)])``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from deepstrata.train.history import History

# The trainer calls the events with itself as ``trainer`` (a deepstrata.train.trainer.Trainer;
# typed Any here so that this module, which the trainer imports, imports nothing back).
Trainer = Any

EVENTS = ("on_fit_start", "on_batch_end", "on_epoch_end", "on_fit_end")


class Callback:
    """Base class: every event does nothing."""

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_batch_end(self, trainer: Trainer, epoch: int, step: int, loss: torch.Tensor) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        pass

    def on_fit_end(self, trainer: Trainer, history: History) -> None:
        pass


class MetricsLog(Callback):
    """``metrics.jsonl``: one JSON object per epoch (losses, metrics, learning rate, seconds).

    On resume the file is rewritten from the checkpoint's history, so it never holds
    an epoch twice or an epoch the resumed run will replay.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_fit_start(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", encoding="utf-8") as stream:
            for record in trainer.history.epochs:
                stream.write(json.dumps(record) + "\n")

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
            stream.flush()
            os.fsync(stream.fileno())


class TensorBoardLog(Callback):
    """TensorBoard event files: every number in the epoch record, plotted against the epoch."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_fit_start(self, trainer: Trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:  # tensorboard is an optional extra
            from deepstrata.errors import ConfigError

            raise ConfigError(
                "TensorBoard logging needs the tensorboard package: "
                "pip install 'deepstrata[tensorboard]'",
                option="--tensorboard",
            ) from error
        # purge_step drops events a killed run wrote past the checkpoint it resumes from.
        self.writer = SummaryWriter(
            log_dir=str(self.log_dir), purge_step=len(trainer.history.epochs) + 1
        )

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        for key, value in record.items():
            if key != "epoch" and isinstance(value, int | float):
                self.writer.add_scalar(key, value, global_step=record["epoch"])
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer, history: History) -> None:
        if self.writer is not None:
            self.writer.close()

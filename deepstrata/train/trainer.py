"""The training loop: plain PyTorch, readable top to bottom.

Batches are slices of pre-built tensors through a shuffled index (no DataLoader,
no per-row Python): on small models the input pipeline, not the maths, is what
makes a loop slow. Validation runs once per epoch; early stopping watches the
validation loss and the best weights are restored at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from deepstrata.errors import TrainingError
from deepstrata.seeding import generator
from deepstrata.train.progress import Progress

Inputs = dict[str, torch.Tensor]
EVAL_CHUNK = 8192  # rows per forward pass when evaluating


def auto_batch_size(rows: int) -> int:
    """About 50 steps per epoch on small data, 512 rows per step at most, 16 at least."""
    return int(min(512, max(16, 2 ** round(math.log2(max(rows, 1) / 50)))))


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_validation_loss: float = float("inf")
    stopped: str = ""  # why training ended
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_validation_loss": self.best_validation_loss,
            "stopped": self.stopped,
            "seconds": self.seconds,
        }


def rows_of(inputs: Inputs) -> int:
    return next(iter(inputs.values())).shape[0]


def take(inputs: Inputs, index: torch.Tensor) -> Inputs:
    return {kind: block[index] for kind, block in inputs.items()}


@torch.no_grad()
def forward_in_chunks(network: nn.Module, inputs: Inputs, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """Eval-mode outputs for every row, ``chunk`` rows at a time."""
    # eval() and train() each walk every submodule (together about half as long as
    # a single-row forward): skip them when the network is in eval mode already, as
    # a Model's network always is.
    was_training = network.training
    if was_training:
        network.eval()
    rows = rows_of(inputs)
    outputs = [
        network({k: v[start : start + chunk] for k, v in inputs.items()})
        for start in range(0, rows, chunk)
    ]
    if was_training:
        network.train()
    return torch.cat(outputs) if outputs else torch.empty(0)


class Trainer:
    """Trains ``network`` with AdamW on in-memory tensors.

    ``loss_fn(output, target)`` is the training loss; ``metric_fn(output, target)``
    (optional) returns extra validation figures for the progress line and the
    history. Plain keyword arguments; no config object.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0))
    >>> x, y = torch.randn(64, 3), torch.randn(64)
    >>> history = Trainer(lambda inputs: net(inputs["x"]), parameters=net.parameters(),
    ...                   loss_fn=torch.nn.functional.mse_loss, max_epochs=2, progress=None
    ...                   ).fit({"x": x}, y)
    >>> len(history.epochs)
    2
    """

    def __init__(
        self,
        network: Callable[[Inputs], torch.Tensor],
        *,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        parameters=None,
        metric_fn: Callable[[torch.Tensor, torch.Tensor], dict] | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int | None = None,
        max_epochs: int = 200,
        patience: int = 20,
        min_delta: float = 1e-4,
        time_limit: float | None = None,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> None:
        self.network = network
        self.loss_fn = loss_fn
        self.metric_fn = metric_fn
        params = parameters if parameters is not None else network.parameters()
        self.optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.min_delta = min_delta
        self.time_limit = time_limit
        self.seed = seed
        self.progress = progress

    def fit(
        self,
        inputs: Inputs,
        target: torch.Tensor,
        validation: tuple[Inputs, torch.Tensor] | None = None,
    ) -> History:
        network, optimizer = self.network, self.optimizer
        module = network if isinstance(network, nn.Module) else None
        rows = rows_of(inputs)
        batch_size = self.batch_size or auto_batch_size(rows)
        order_generator = generator(self.seed, stream=1)  # data order, independent of init
        history = History()
        best_state = None
        since_best = 0
        start = time.perf_counter()
        deadline = start + self.time_limit if self.time_limit else math.inf
        if self.progress:
            self.progress.start(self.max_epochs, time_limit=self.time_limit)

        for epoch in range(1, self.max_epochs + 1):
            epoch_start = time.perf_counter()
            if module is not None:
                module.train()
            order = torch.randperm(rows, generator=order_generator)
            loss_sum = torch.zeros(())
            seen = 0
            out_of_time = False
            for begin in range(0, rows, batch_size):
                index = order[begin : begin + batch_size]
                output = network(take(inputs, index))
                loss = self.loss_fn(output, target[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(index)
                seen += len(index)
                if time.perf_counter() > deadline:
                    out_of_time = True
                    break

            record = {"epoch": epoch, "loss": float(loss_sum) / max(seen, 1)}
            if validation is not None:
                val_inputs, val_target = validation
                val_output = self._evaluate_outputs(val_inputs)
                record["val_loss"] = float(self.loss_fn(val_output, val_target))
                if self.metric_fn is not None:
                    record.update(
                        {f"val_{k}": v for k, v in self.metric_fn(val_output, val_target).items()}
                    )
            record["seconds"] = time.perf_counter() - epoch_start
            history.epochs.append(record)

            monitored = record.get("val_loss", record["loss"])
            if not math.isfinite(monitored) or not math.isfinite(record["loss"]):
                if self.progress:
                    self.progress.close()
                if best_state is None:
                    raise TrainingError(
                        f"the loss became non-finite in epoch {epoch} before any epoch finished with "
                        "a finite loss; lower the learning rate (--learning-rate) or check the data"
                    )
                history.stopped = f"non-finite loss in epoch {epoch}; kept the best earlier weights"
                break
            if monitored < history.best_validation_loss - self.min_delta:
                history.best_validation_loss, history.best_epoch, since_best = monitored, epoch, 0
                if module is not None:
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            else:
                since_best += 1
            if self.progress:
                self.progress.update(record)
            if out_of_time:
                history.stopped = f"time limit ({self.time_limit:g}s) reached in epoch {epoch}"
                break
            if since_best >= self.patience:
                history.stopped = f"early stopping: no improvement for {self.patience} epochs"
                break
        else:
            history.stopped = f"reached max epochs ({self.max_epochs})"

        if best_state is not None:
            module.load_state_dict(best_state)
        if module is not None:
            module.eval()
        history.seconds = time.perf_counter() - start
        if self.progress:
            self.progress.close(
                f"{history.stopped}; best epoch {history.best_epoch} "
                f"(loss {history.best_validation_loss:.4g}), {history.seconds:.1f}s"
            )
        return history

    def _evaluate_outputs(self, inputs: Inputs) -> torch.Tensor:
        if isinstance(self.network, nn.Module):
            return forward_in_chunks(self.network, inputs)
        with torch.no_grad():
            return self.network(inputs)

"""The training loop: plain PyTorch, readable top to bottom.

Batches are slices of pre-built tensors through a shuffled index (no DataLoader,
no per-row Python): on small models the input pipeline, not the maths, is what
makes a loop slow. One epoch is::

    shuffle -> for each batch: forward (autocast) -> loss -> backward
            -> every `gradient_accumulation` batches: clip, optimizer step, schedule step
    -> validation -> early stopping -> checkpoint -> callbacks

Before the first epoch a learning-rate range test runs when ``learning_rate="auto"``
and a timing probe when ``precision="auto"``; neither changes the weights or the
random state the real run starts from. With ``checkpoint_dir`` every epoch ends
with an atomic checkpoint (and long epochs checkpoint every
``checkpoint_interval`` seconds), holding everything an exact resume needs:
weights, optimizer, schedule, loss scaler, every random generator, the
early-stopping state and the history. Under torchrun every rank runs this loop
(data-parallel): the lines calling :mod:`deepstrata.train.distributed` say why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepstrata.errors import CheckpointError, TrainingError
from deepstrata.seeding import generator, numpy_rng
from deepstrata.train import checkpoint as ckpt
from deepstrata.train import distributed as dist
from deepstrata.train.batches import (
    Inputs,
    auto_batch_size,
    forward_in_chunks,
    rows_of,
    take,
    to_device,
)
from deepstrata.train.callbacks import Callback
from deepstrata.train.history import History
from deepstrata.train.lr_finder import RangeTest, range_test
from deepstrata.train.optimizer import parameter_groups, preserved_training_state
from deepstrata.train.precision import autocast, choose_precision
from deepstrata.train.schedules import PLATEAU_WARMUP_EPOCHS, build_schedule, schedule_epochs

HIGHER_IS_BETTER = frozenset({"accuracy"})  # monitored metrics to maximise


@dataclass
class Loop:
    """The loop's state: with the modules, all an exact resume needs (see checkpoint.restore)."""

    order: torch.Generator  # data order, independent of init
    mix: torch.Generator  # mixup partners
    mix_rng: np.random.Generator  # mixup weights (Beta draws)
    history: History = field(default_factory=History)
    best_state: dict[str, torch.Tensor] | None = None
    since_best: int = 0
    epoch: int = 1  # where a resumed run goes on: this epoch, at this batch (a step boundary)
    batch: int = 0
    loss_sum: float = 0.0  # the epoch's training loss so far, summed over rows
    seen: int = 0
    seconds: float = 0.0  # spent before this process (a resumed run)


class Trainer:
    """Trains ``network`` (an ``nn.Module`` taking a dict of tensors) with AdamW.

    ``loss_fn(output, target)`` is the training loss (label smoothing lives there);
    ``eval_loss_fn`` the validation loss that early stopping watches (default: the
    same); ``metric_fn(output, target)`` returns extra validation figures. Plain
    keyword arguments; no config object.

    >>> import torch
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.linear = torch.nn.Linear(3, 1)
    ...     def forward(self, inputs):
    ...         return self.linear(inputs["x"]).squeeze(-1)
    >>> x, y = torch.randn(64, 3), torch.randn(64)
    >>> history = Trainer(Net(), loss_fn=torch.nn.functional.mse_loss, max_epochs=2).fit({"x": x}, y)
    >>> len(history.epochs)
    2
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        eval_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        metric_fn: Callable[[torch.Tensor, torch.Tensor], dict] | None = None,
        learning_rate: float | str = 1e-3,
        weight_decay: float = 1e-4,
        schedule: str = "onecycle",
        batch_size: int | None = None,
        max_epochs: int = 200,
        schedule_epochs: int | None = None,
        patience: int = 20,
        min_delta: float = 1e-4,
        monitor: str = "loss",
        gradient_clip: float | None = None,
        gradient_accumulation: int = 1,
        mixup: float = 0.0,
        precision: str = "32",
        device: torch.device | str = "cpu",
        time_limit: float | None = None,
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
        checkpoint_interval: float = 600.0,
        callbacks: Sequence[Callback] = (),
        progress: Callback | None = None,
        perturb: Callable[[nn.Module, Inputs, torch.Tensor], Inputs] | None = None,
    ) -> None:
        self.network = network
        self.loss_fn = loss_fn
        self.eval_loss_fn = eval_loss_fn or loss_fn
        self.metric_fn = metric_fn
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.schedule_name = schedule
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.schedule_epochs = schedule_epochs  # None: from the data (schedules.schedule_epochs)
        self.patience = patience
        self.min_delta = min_delta
        self.monitor = monitor
        self.gradient_clip = gradient_clip
        self.gradient_accumulation = gradient_accumulation
        self.mixup = mixup
        self.precision = precision
        self.device = torch.device(device)
        self.time_limit = time_limit
        self.seed = seed
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_interval = checkpoint_interval
        self.progress = progress
        # Replaces a batch's inputs before the forward pass (adversarial training: the
        # inputs that most raise the loss within a budget); None trains on the data as given.
        self.perturb = perturb
        # (rows,) each training row's weight in the loss, passed to loss_fn as ``weight=``
        # (fairness reweighing); set before fit. None: equal weights.
        self.row_weights: torch.Tensor | None = None
        self.callbacks = [*callbacks, *([progress] if progress is not None else [])]
        # Set by fit(); read by callbacks.
        self.history = History()
        self.optimizer: torch.optim.Optimizer | None = None
        self.schedule = None
        self.range_test: RangeTest | None = None
        self.precision_probe: dict | None = None
        self.stop_training = False

    # -- choices made before the first epoch ---------------------------------------------------
    def _new_optimizer(self, learning_rate: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            parameter_groups(self.network, self.weight_decay, learning_rate), lr=learning_rate
        )

    def _choose_learning_rate(self, inputs: Inputs, target: torch.Tensor, batch_size: int) -> float:
        if self.learning_rate != "auto":
            return float(self.learning_rate)
        self.range_test = range_test(
            self.network,
            self.loss_fn,
            inputs,
            target,
            make_optimizer=self._new_optimizer,
            batch_size=batch_size,
            seed=self.seed,
        )
        return self.range_test.suggestion

    def _choose_precision(
        self, inputs: Inputs, target: torch.Tensor, batch_size: int, learning_rate: float
    ) -> str:
        if self.precision != "auto":
            return self.precision
        index = torch.arange(min(batch_size, rows_of(inputs)), device=self.device)
        batch_inputs, batch_target = take(inputs, index), target[index]
        with preserved_training_state(self.network):
            self.network.train()
            optimizer = self._new_optimizer(learning_rate)

            def step(precision: str) -> None:
                with autocast(self.device, precision):
                    loss = self.loss_fn(self.network(batch_inputs), batch_target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            choice, self.precision_probe = choose_precision(step, self.device)
        return choice

    # -- the loop --------------------------------------------------------------------------------
    def fit(
        self,
        inputs: Inputs,
        target: torch.Tensor,
        validation: tuple[Inputs, torch.Tensor] | None = None,
        *,
        resume: bool = False,
    ) -> History:
        """Train; with ``resume`` continue exactly from the checkpoint in ``checkpoint_dir``."""
        network = self.network.to(self.device)
        inputs, target, validation = self._on_device(inputs, target, validation)
        rows = rows_of(inputs)
        row_values = sum(block[0].numel() for block in inputs.values())
        batch_size = min(self.batch_size or auto_batch_size(rows, row_values), rows)
        steps = math.ceil(math.ceil(rows / batch_size) / self.gradient_accumulation)
        settings = self._settings_now = self._settings(rows, batch_size)
        saved = self._read_checkpoint(settings) if resume else None
        rate, precision = self._choose(saved, inputs, target, batch_size)
        self.optimizer = self._new_optimizer(rate)
        epochs = self.epochs = schedule_epochs(  # known from the start: it runs its course
            self.schedule_name, steps, self.max_epochs, self.schedule_epochs
        )
        self.schedule = build_schedule(
            self.schedule_name,
            self.optimizer,
            total_steps=epochs * steps,
            warmup_steps=PLATEAU_WARMUP_EPOCHS * steps,
        )
        # fp16 needs loss scaling; disabled, the scaler passes everything straight through.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        loop = self.loop = Loop(
            generator(self.seed, stream=1),
            generator(self.seed, stream=3),
            numpy_rng(self.seed, stream=3),
        )
        if saved is not None:
            ckpt.restore(
                saved,
                network=network,
                optimizer=self.optimizer,
                schedule=self.schedule,
                scaler=self.scaler,
                loop=loop,
            )
        self.history, resume_at = loop.history, (loop.epoch, loop.batch)
        self._model = dist.wrap(network, self.device)  # DDP on several processes: grads averaged
        self._start = time.perf_counter() - loop.seconds
        deadline = self._start + self.time_limit if self.time_limit else math.inf
        self._last_checkpoint = time.perf_counter()
        self.stop_training = False
        for callback in self.callbacks:
            callback.on_fit_start(self)
        # Gradients left on the network (a probe's, a caller's backward) must not
        # leak into the first step; a checkpoint is only ever taken with none held.
        self.optimizer.zero_grad(set_to_none=True)
        try:
            for epoch in range(resume_at[0], epochs + 1):
                if loop.history.stopped:  # resumed from the checkpoint of a finished run
                    break
                first = resume_at[1] if epoch == resume_at[0] else 0
                record, out_of_time = self._train_epoch(
                    epoch, first, inputs, target, batch_size, deadline
                )
                self._validate(record, validation, steps)
                self._early_stop(record, out_of_time)
                if self.checkpoint_dir is not None:
                    self._save((epoch + 1, 0), loop.order.get_state())
                if loop.history.stopped:
                    break
        except BaseException:
            if self.progress is not None:
                self.progress.close()
            raise
        if loop.best_state is not None:
            network.load_state_dict(loop.best_state)
        network.eval()
        loop.history.seconds = time.perf_counter() - self._start
        for callback in self.callbacks:
            callback.on_fit_end(self, loop.history)
        return loop.history

    def _on_device(self, inputs: Inputs, target: torch.Tensor, validation) -> tuple:
        """Every tensor on the training device (on CUDA from pinned memory)."""

        def move(block: Inputs) -> Inputs:
            return {k: to_device(v, self.device) for k, v in block.items()}

        if validation is not None:
            validation = (move(validation[0]), to_device(validation[1], self.device))
        if self.row_weights is not None:
            self.row_weights = to_device(self.row_weights, self.device)
        return move(inputs), to_device(target, self.device), validation

    def _choose(self, saved, inputs: Inputs, target: torch.Tensor, batch_size: int) -> tuple:
        """The learning rate and precision: a resumed run's recorded ones, else chosen now."""
        if saved is not None:
            state = saved[1]
            self.range_test = (
                RangeTest.from_dict(state["range_test"]) if state["range_test"] else None
            )
            self.precision_probe = state["precision_probe"]
            rate, precision = state["learning_rate"], state["precision"]
        else:

            def choose() -> tuple:
                rate = self._choose_learning_rate(inputs, target, batch_size)
                precision = self._choose_precision(inputs, target, batch_size, rate)
                return rate, precision, self.range_test, self.precision_probe

            # Decided on rank 0 and broadcast: the sweep and the timing probe measure this
            # process, and every rank must train with one rate and one precision.
            rate, precision, self.range_test, self.precision_probe = dist.from_main(choose)
        self.chosen_learning_rate, self.chosen_precision = rate, precision
        return rate, precision

    def _train_epoch(self, epoch, first, inputs, target, batch_size, deadline) -> tuple[dict, bool]:
        """One pass over the shuffled rows from batch ``first``: per optimizer step, the
        forward and backward passes of its micro-batches (gradient accumulation: their mean
        gradient), then clipping, the step and the schedule. Returns the epoch's record and
        whether the time limit cut it short."""
        loop, network, accumulate = self.loop, self.network, self.gradient_accumulation
        self._epoch_start = time.perf_counter()
        network.train()
        order_state = loop.order.get_state()  # a mid-epoch resume replays this shuffle
        rows = rows_of(inputs)
        order = torch.randperm(rows, generator=loop.order).to(self.device)
        batches = math.ceil(rows / batch_size)
        if first == 0:
            loop.loss_sum, loop.seen = 0.0, 0
        for step in range(first // accumulate, math.ceil(batches / accumulate)):
            micro = range(step * accumulate, min((step + 1) * accumulate, batches))
            for batch in micro:
                index = order[batch * batch_size : (batch + 1) * batch_size]
                with dist.no_sync(self._model, last=batch == micro.stop - 1):
                    loss = self._backward(inputs, target, index, len(micro), epoch, step + 1)
            position = micro.stop if micro.stop < batches else None  # None: the epoch's end
            if self._end_step(epoch, step + 1, loss, deadline, position, order_state):
                return self._record(epoch), True
        return self._record(epoch), False

    def _end_step(self, epoch, step, loss, deadline, position, order_state) -> bool:
        """After a step's micro-batches: the optimizer step, the callbacks, then whether the
        time limit ran out (returned) and, when due, a mid-epoch checkpoint at batch
        ``position`` (None: the epoch's end, which checkpoints anyway)."""
        self._step()
        for callback in self.callbacks:
            callback.on_batch_end(self, epoch, step, loss.detach())
        # Rank 0's clock decides: ranks stopping at different steps would hang.
        if deadline < math.inf and dist.from_main(time.perf_counter() > deadline):
            return True
        due = time.perf_counter() - self._last_checkpoint >= self.checkpoint_interval
        if self.checkpoint_dir is not None and position is not None and due:
            self._save((epoch, position), order_state)
        return False

    def _backward(self, inputs, target, index, group: int, epoch: int, step: int) -> torch.Tensor:
        """Forward and backward of one micro-batch (rows ``index``); the loss is divided by
        the step's ``group`` of micro-batches so that their gradients add up to the mean."""
        # This rank's share of the global batch, and its loss's weight in DDP's average.
        index, share = dist.shard(index)
        batch_inputs, batch_target = take(inputs, index), target[index]
        if self.perturb is not None:
            batch_inputs = self.perturb(self.network, batch_inputs, batch_target)
        loop = self.loop
        weights = self.row_weights
        extra = {} if weights is None else {"weight": weights[index]}
        with autocast(self.device, self.chosen_precision):
            if self.mixup > 0:
                # Manifold mixup: blend encoded features and the two targets' losses.
                weight = float(loop.mix_rng.beta(self.mixup, self.mixup))
                partner = torch.randperm(len(index), generator=loop.mix).to(self.device)
                output = self._model(batch_inputs, mix=(partner, weight))
                loss = weight * self.loss_fn(output, batch_target, **extra) + (
                    1 - weight
                ) * self.loss_fn(output, batch_target[partner], **extra)
            else:
                output = self._model(batch_inputs)
                loss = self.loss_fn(output, batch_target, **extra)
        # One read per step (the finiteness check and the sum), summed over the ranks: all
        # see the global batch's loss, and raise together if it is not finite.
        total, rows = dist.loss_sum(loss.item(), len(index), share)
        if not math.isfinite(total):
            raise self._non_finite(epoch, step, "training loss")
        self.scaler.scale(dist.weighted(loss / group if group > 1 else loss, share)).backward()
        loop.loss_sum += total
        loop.seen += int(rows)
        return loss

    def _step(self) -> None:
        """Clip (the true gradient, unscaled), step, zero the gradients, advance the schedule."""
        if self.gradient_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.network.parameters(), self.gradient_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.after_batch()

    def _record(self, epoch: int) -> dict:
        loop = self.loop
        return {
            "epoch": epoch,
            "loss": loop.loss_sum / max(loop.seen, 1),
            "learning_rate": self.optimizer.param_groups[0]["lr"],
        }

    def _validate(self, record: dict, validation, steps: int) -> None:
        """The validation loss and metrics into the epoch's record; a non-finite one stops."""
        if validation is not None:
            val_inputs, val_target = validation
            # Ranks share the rows and gather the outputs: all agree on the best epoch.
            val_output = dist.forward_sharded(
                lambda rows: forward_in_chunks(self.network, rows), val_inputs
            )
            record["val_loss"] = float(self.eval_loss_fn(val_output, val_target))
            if self.metric_fn is not None:
                metrics = self.metric_fn(val_output, val_target)
                record.update({f"val_{k}": v for k, v in metrics.items()})
        record["seconds"] = time.perf_counter() - self._epoch_start
        if not math.isfinite(record.get("val_loss", record["loss"])):
            raise self._non_finite(record["epoch"], steps, "validation loss")
        self.loop.history.epochs.append(record)

    def _early_stop(self, record: dict, out_of_time: bool) -> None:
        """Keep the best weights so far; decide whether (and why) training ends here.

        Early stopping and the weights kept follow the loss, or a validation metric: on
        small data the loss can bottom out while the model is still near the class prior,
        and keep rising (overconfidence, which calibration removes later) while accuracy
        still improves."""
        loop, history, epoch = self.loop, self.loop.history, record["epoch"]
        monitored = record.get("val_loss", record["loss"])
        score = self._score(record)
        history.monitor = self.monitor
        if score < history.best_score - self.min_delta:
            history.best_score, history.best_epoch, loop.since_best = score, epoch, 0
            history.best_validation_loss = monitored
            loop.best_state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
        elif not self.schedule.warming_up():  # patience counts from the peak rate on
            loop.since_best += 1
        self.schedule.after_epoch(monitored)
        for callback in self.callbacks:
            callback.on_epoch_end(self, record)
        if out_of_time:
            history.stopped = f"time limit ({self.time_limit:g}s) reached in epoch {epoch}"
        elif loop.since_best >= self.patience:
            history.stopped = f"early stopping: no improvement for {self.patience} epochs"
        elif self.stop_training:
            history.stopped = f"stopped by a callback after epoch {epoch}"
        elif epoch == self.epochs:
            end = "max epochs" if epoch == self.max_epochs else "the schedule's end"
            history.stopped = f"reached {end} ({epoch})"
        # Rank 0's verdict for all (a callback's stop): a rank stopping alone would hang.
        history.stopped = dist.from_main(history.stopped)

    def _score(self, record: dict) -> float:
        """The monitored value of an epoch, signed so that lower is better."""
        if self.monitor == "loss" or "val_loss" not in record:
            return record.get("val_loss", record["loss"])
        value = record.get(f"val_{self.monitor}")
        if value is None:
            raise ValueError(
                f"monitor {self.monitor!r}: the metric function gives no such figure "
                "(it gives "
                + ", ".join(k[4:] for k in record if k.startswith("val_") and k != "val_loss")
                + ")"
            )
        return -value if self.monitor in HIGHER_IS_BETTER else value

    # -- checkpoints -------------------------------------------------------------------------------
    def _settings(self, rows: int, batch_size: int) -> dict:
        """What a checkpoint must agree with for a resume to be exact."""
        return ckpt.settings_of(self, rows, batch_size)

    def _read_checkpoint(self, settings: dict) -> tuple[dict, dict]:
        if self.checkpoint_dir is None:
            raise CheckpointError("resume needs a checkpoint directory")
        return ckpt.load_matching(self.checkpoint_dir, settings)

    def _save(self, position: tuple[int, int], order_state: torch.Tensor) -> None:
        """Checkpoint "about to run batch ``position[1]`` of epoch ``position[0]``"."""
        if dist.is_main():  # one writer per directory; every rank holds the same state
            ckpt.save_trainer(self, position, order_state)
        self._last_checkpoint = time.perf_counter()

    def _non_finite(self, epoch: int, step: int, what: str) -> TrainingError:
        kept = (
            f"; the last good checkpoint is kept in {self.checkpoint_dir}"
            if self.checkpoint_dir is not None and ckpt.has_checkpoint(self.checkpoint_dir)
            else ""
        )
        rate = self.optimizer.param_groups[0]["lr"] if self.optimizer else float("nan")
        return TrainingError(
            f"the {what} became non-finite in epoch {epoch}, step {step} (learning rate "
            f"{rate:.3g}){kept}; lower --learning-rate, add --gradient-clip, or check the data"
        )

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
early-stopping state and the history.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepstrata.errors import CheckpointError, TrainingError
from deepstrata.seeding import generator, numpy_rng
from deepstrata.train import checkpoint as ckpt
from deepstrata.train.batches import (
    Inputs,
    auto_batch_size,
    forward_in_chunks,
    rows_of,
    take,
    to_device,
)
from deepstrata.train.callbacks import Callback
from deepstrata.train.lr_finder import RangeTest, range_test
from deepstrata.train.precision import autocast, choose_precision
from deepstrata.train.schedules import build_schedule

HIGHER_IS_BETTER = frozenset({"accuracy"})  # monitored metrics to maximise


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_validation_loss: float = float("inf")  # the loss at the best epoch
    stopped: str = ""  # why training ended
    seconds: float = 0.0
    monitor: str = "loss"  # what picked the best epoch: the loss or a validation metric
    best_score: float = float("inf")  # the monitored value at the best epoch, lower is better

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_validation_loss": self.best_validation_loss,
            "monitor": self.monitor,
            "best_score": self.best_score,
            "stopped": self.stopped,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(**data)


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
        device = self.device
        network = self.network.to(device)
        inputs = {k: to_device(v, device) for k, v in inputs.items()}
        target = to_device(target, device)
        if validation is not None:
            validation = (
                {k: to_device(v, device) for k, v in validation[0].items()},
                to_device(validation[1], device),
            )
        rows = rows_of(inputs)
        row_values = sum(block[0].numel() for block in inputs.values())
        batch_size = min(self.batch_size or auto_batch_size(rows, row_values), rows)
        batches = math.ceil(rows / batch_size)
        accumulate = self.gradient_accumulation
        steps_per_epoch = math.ceil(batches / accumulate)
        settings = self._settings(rows, batch_size)

        saved = self._read_checkpoint(settings) if resume else None
        if saved is not None:
            learning_rate, precision = saved[1]["learning_rate"], saved[1]["precision"]
            sweep, self.precision_probe = saved[1]["range_test"], saved[1]["precision_probe"]
            self.range_test = RangeTest.from_dict(sweep) if sweep is not None else None
        else:
            learning_rate = self._choose_learning_rate(inputs, target, batch_size)
            precision = self._choose_precision(inputs, target, batch_size, learning_rate)
        self.chosen_learning_rate, self.chosen_precision = learning_rate, precision

        optimizer = self.optimizer = self._new_optimizer(learning_rate)
        schedule = self.schedule = build_schedule(
            self.schedule_name, optimizer, total_steps=self.max_epochs * steps_per_epoch
        )
        # fp16 needs loss scaling; disabled, the scaler passes everything straight through.
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        order_generator = generator(self.seed, stream=1)  # data order, independent of init
        mix_generator = generator(self.seed, stream=3)  # mixup partners
        mix_rng = numpy_rng(self.seed, stream=3)  # mixup weights (Beta draws)
        self.history = history = History()
        best_state: dict[str, torch.Tensor] | None = None
        since_best, first_epoch, first_batch = 0, 1, 0
        loss_sum, seen, elapsed_before = 0.0, 0, 0.0
        if saved is not None:
            tensors, state = saved
            network.load_state_dict(_prefixed(tensors, "model."))
            optimizer.load_state_dict(
                ckpt.optimizer_state_from_flat(tensors, state["optimizer"], prefix="optimizer.")
            )
            schedule.load_state_dict(state["schedule"])
            if state["scaler"]:
                scaler.load_state_dict(state["scaler"])
            ckpt.restore_generators(
                {"order": order_generator, "mix": mix_generator}, tensors, prefix="generator."
            )
            ckpt.restore_rng_state(tensors, "rng.")
            mix_rng.bit_generator.state = state["mix_rng"]
            best_state = _prefixed(tensors, "best.") or None
            history = self.history = History.from_dict(state["history"])
            since_best, elapsed_before = state["since_best"], state["seconds"]
            first_epoch, first_batch = state["epoch"], state["batch"]
            loss_sum = float(state["loss_sum"])
            seen = state["seen"]

        start = time.perf_counter() - elapsed_before
        deadline = start + self.time_limit if self.time_limit else math.inf
        last_checkpoint = time.perf_counter()
        self.stop_training = False
        for callback in self.callbacks:
            callback.on_fit_start(self)

        def save(epoch: int, batch: int, order_state: torch.Tensor) -> None:
            """Checkpoint 'about to run batch `batch` of epoch `epoch`'."""
            self._write_checkpoint(
                settings=settings,
                learning_rate=learning_rate,
                precision=precision,
                position=(epoch, batch),
                order_state=order_state,
                generators={"mix": mix_generator},
                mix_rng=mix_rng,
                scaler=scaler,
                best_state=best_state,
                since_best=since_best,
                loss_sum=loss_sum,
                seen=seen,
                seconds=time.perf_counter() - start,
            )

        # Gradients left on the network (a probe's, a caller's backward) must not
        # leak into the first step; a checkpoint is only ever taken with none held.
        optimizer.zero_grad(set_to_none=True)
        try:
            epoch = first_epoch
            for epoch in range(first_epoch, self.max_epochs + 1):
                if history.stopped:  # resumed from the checkpoint of a finished run
                    break
                epoch_start = time.perf_counter()
                network.train()
                order_state = order_generator.get_state()  # a mid-epoch resume replays this shuffle
                order = torch.randperm(rows, generator=order_generator).to(device)
                if epoch != first_epoch or first_batch == 0:
                    loss_sum, seen = 0.0, 0
                out_of_time = False
                for batch in range(first_batch if epoch == first_epoch else 0, batches):
                    index = order[batch * batch_size : (batch + 1) * batch_size]
                    batch_inputs, batch_target = take(inputs, index), target[index]
                    with autocast(device, precision):
                        if self.mixup > 0:
                            # Manifold mixup: blend encoded features and the two targets' losses.
                            weight = float(mix_rng.beta(self.mixup, self.mixup))
                            partner = torch.randperm(len(index), generator=mix_generator).to(device)
                            output = network(batch_inputs, mix=(partner, weight))
                            loss = weight * self.loss_fn(output, batch_target) + (
                                1 - weight
                            ) * self.loss_fn(output, batch_target[partner])
                        else:
                            output = network(batch_inputs)
                            loss = self.loss_fn(output, batch_target)
                    value = loss.item()  # one read per step: the finiteness check and the sum
                    if not math.isfinite(value):
                        raise self._non_finite(epoch, batch // accumulate + 1, "training loss")
                    # The mean over the step's micro-batches; a last group short of
                    # `accumulate` batches averages over the batches it has.
                    group = min(accumulate, batches - batch // accumulate * accumulate)
                    scaler.scale(loss / group if group > 1 else loss).backward()
                    loss_sum += value * len(index)
                    seen += len(index)
                    if (batch + 1) % accumulate and batch + 1 < batches:
                        continue  # accumulate more gradient before stepping
                    if self.gradient_clip is not None:
                        scaler.unscale_(optimizer)  # clip the true gradient, not the scaled one
                        nn.utils.clip_grad_norm_(network.parameters(), self.gradient_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    schedule.after_batch()
                    for callback in self.callbacks:
                        callback.on_batch_end(self, epoch, batch // accumulate + 1, loss.detach())
                    if time.perf_counter() > deadline:
                        out_of_time = True
                        break
                    if (
                        self.checkpoint_dir is not None
                        and batch + 1 < batches
                        and time.perf_counter() - last_checkpoint >= self.checkpoint_interval
                    ):
                        save(epoch, batch + 1, order_state)
                        last_checkpoint = time.perf_counter()

                record = {
                    "epoch": epoch,
                    "loss": loss_sum / max(seen, 1),
                    "learning_rate": optimizer.param_groups[0]["lr"],
                }
                if validation is not None:
                    val_inputs, val_target = validation
                    val_output = forward_in_chunks(network, val_inputs)
                    record["val_loss"] = float(self.eval_loss_fn(val_output, val_target))
                    if self.metric_fn is not None:
                        metrics = self.metric_fn(val_output, val_target)
                        record.update({f"val_{k}": v for k, v in metrics.items()})
                record["seconds"] = time.perf_counter() - epoch_start
                monitored = record.get("val_loss", record["loss"])
                if not math.isfinite(monitored):
                    raise self._non_finite(epoch, steps_per_epoch, "validation loss")
                history.epochs.append(record)

                # Early stopping and the weights kept follow the loss, or a validation
                # metric: on small data the loss can bottom out while the model is still
                # near the class prior, and keep rising (overconfidence, which
                # calibration removes later) while accuracy still improves.
                score = self._score(record)
                history.monitor = self.monitor
                if score < history.best_score - self.min_delta:
                    history.best_score, history.best_epoch, since_best = score, epoch, 0
                    history.best_validation_loss = monitored
                    best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
                else:
                    since_best += 1
                schedule.after_epoch(monitored)
                for callback in self.callbacks:
                    callback.on_epoch_end(self, record)

                if out_of_time:
                    history.stopped = f"time limit ({self.time_limit:g}s) reached in epoch {epoch}"
                elif since_best >= self.patience:
                    history.stopped = f"early stopping: no improvement for {self.patience} epochs"
                elif self.stop_training:
                    history.stopped = f"stopped by a callback after epoch {epoch}"
                elif epoch == self.max_epochs:
                    history.stopped = f"reached max epochs ({self.max_epochs})"
                if self.checkpoint_dir is not None:
                    save(epoch + 1, 0, order_generator.get_state())
                    last_checkpoint = time.perf_counter()
                if history.stopped:
                    break
        except BaseException:
            if self.progress is not None:
                self.progress.close()
            raise

        if best_state is not None:
            network.load_state_dict(best_state)
        network.eval()
        history.seconds = time.perf_counter() - start
        for callback in self.callbacks:
            callback.on_fit_end(self, history)
        return history

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
        return {
            "rows": rows,
            "batch_size": batch_size,
            "gradient_accumulation": self.gradient_accumulation,
            "max_epochs": self.max_epochs,
            "schedule": self.schedule_name,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "precision": self.precision,
            "mixup": self.mixup,
            "gradient_clip": self.gradient_clip,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "monitor": self.monitor,
            "seed": self.seed,
        }

    def _read_checkpoint(self, settings: dict) -> tuple[dict, dict]:
        if self.checkpoint_dir is None:
            raise CheckpointError("resume needs a checkpoint directory")
        tensors, state = ckpt.load_checkpoint(self.checkpoint_dir)
        different = {
            key: (state["settings"].get(key), value)
            for key, value in settings.items()
            if state["settings"].get(key) != value
        }
        if different:
            listed = ", ".join(
                f"{k}: {old!r} then, {new!r} now" for k, (old, new) in different.items()
            )
            raise CheckpointError(
                f"the checkpoint was made with other settings ({listed}); an exact resume "
                "needs the same data and options",
                path=str(self.checkpoint_dir),
            )
        return tensors, state

    def _write_checkpoint(
        self,
        *,
        settings: dict,
        learning_rate: float,
        precision: str,
        position: tuple[int, int],
        order_state: torch.Tensor,
        generators: dict[str, torch.Generator],
        mix_rng: np.random.Generator,
        scaler: torch.amp.GradScaler,
        best_state: dict[str, torch.Tensor] | None,
        since_best: int,
        loss_sum: float,
        seen: int,
        seconds: float,
    ) -> None:
        optimizer_tensors, optimizer_meta = ckpt.optimizer_state_to_flat(
            self.optimizer.state_dict(), prefix="optimizer."
        )
        tensors = {
            **{f"model.{k}": v for k, v in self.network.state_dict().items()},
            **{f"best.{k}": v for k, v in (best_state or {}).items()},
            **optimizer_tensors,
            **ckpt.generator_states(generators, prefix="generator."),
            "generator.order": order_state,
            **ckpt.rng_state_to_tensors("rng."),  # CPU and every CUDA device: dropout masks
        }
        state = {
            "settings": settings,
            "learning_rate": learning_rate,
            "precision": precision,
            # What chose them: a resumed run's bundle shows the same sweep and probe.
            "range_test": self.range_test.to_dict() if self.range_test is not None else None,
            "precision_probe": self.precision_probe,
            "epoch": position[0],
            "batch": position[1],
            "optimizer": optimizer_meta,
            "schedule": self.schedule.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "mix_rng": mix_rng.bit_generator.state,
            "history": self.history.to_dict(),
            "since_best": since_best,
            "loss_sum": loss_sum,
            "seen": seen,
            "seconds": seconds,
        }
        ckpt.save_checkpoint(self.checkpoint_dir, tensors=tensors, state=state)

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


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

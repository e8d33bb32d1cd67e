"""Learning-rate schedules behind one small interface.

The trainer calls the same two hooks whatever the schedule: ``after_batch()``
after every ``optimizer.step()`` and ``after_epoch(validation_loss)`` once per
epoch. The peak rate of each parameter group is its ``lr`` when
:func:`build_schedule` is called, so discriminative rates (groups with different
``lr``) keep their ratios. Build the schedule on a freshly made optimizer, and
load any saved optimizer state afterwards.

- ``onecycle`` (the Trainer's default): Smith's one-cycle policy
  (super-convergence, 2018). The rate climbs from peak/25 to the peak over the
  first ``pct_start`` of the steps, then anneals (cosine) to peak/25/1e4; the
  momentum (Adam's beta1) cycles the other way, 0.95 → 0.85 → 0.95. Use it when
  the number of steps is known up front: fast, and forgiving of a peak rate that
  is somewhat too high. Its length is :func:`schedule_epochs`'s: a budget from the
  data, not the cap on epochs, so that the cycle completes (see there).
- ``cosine``: linear warm-up from ~0 to the peak over ``warmup_fraction`` of the
  steps, then cosine decay to 0 at ``total_steps``. The usual choice for
  fine-tuning pretrained encoders, where a long stay near the peak hurts.
- ``constant``: the peak rate throughout. For debugging, for comparisons with a
  plain PyTorch loop, and for very short runs.
- ``plateau`` (``fit``'s default): a short linear warm-up (``warmup_steps``), then the
  peak rate until the validation loss stops improving for ``plateau_patience`` epochs,
  then multiplied by ``plateau_factor``. Use it when the number of epochs is
  open-ended (early stopping decides). On the tables of ``bench/schedules.py`` it
  was as accurate as a one-cycle over 200 epochs on most, in half the time.

Early stopping waits for the warm-up (:meth:`Schedule.warming_up`): a run is never
ended while its rate is still climbing to the peak.

>>> model = torch.nn.Linear(3, 1)
>>> optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
>>> schedule = build_schedule("cosine", optimizer, total_steps=100, warmup_fraction=0.1)
>>> for _ in range(10):  # the warm-up: 10 optimizer steps
...     optimizer.step()
...     schedule.after_batch()
>>> schedule.learning_rates()
[0.01]
"""

from __future__ import annotations

import json
import math
from typing import Literal

import torch
from torch.optim import lr_scheduler

from deepstrata.config import SCHEDULES
from deepstrata.errors import ConfigError

__all__ = ["SCHEDULES", "Schedule", "build_schedule", "schedule_epochs"]

# The one-cycle budget, in optimizer steps. A cycle spread over the cap on epochs (200)
# was cut by early stopping inside its warm-up: the rate never peaked, nor annealed.
# About 1,500 steps is 30 epochs at the ~50 steps an epoch the automatic batch size
# aims for: on the tables of bench/schedules.py, faster than the 200-epoch cycle and
# about as accurate.
BUDGET_STEPS = 1500
MIN_EPOCHS = 10  # big data: fewer, longer epochs, but never a cycle of a handful
PLATEAU_WARMUP_EPOCHS = 3  # plateau's fixed warm-up


def schedule_epochs(name: str, steps_per_epoch: int, max_epochs: int, requested: int | None) -> int:
    """How many epochs a run of schedule ``name`` spans: the schedule's length, known
    before the first step. ``onecycle`` and ``cosine``: ``requested`` (None: the budget,
    ``BUDGET_STEPS`` optimizer steps, at least ``MIN_EPOCHS`` epochs), never more than
    ``max_epochs``. ``constant`` and ``plateau`` are open-ended: ``max_epochs``.

    >>> schedule_epochs("onecycle", 50, 200, None), schedule_epochs("plateau", 50, 200, None)
    (30, 200)
    """
    if name not in ("onecycle", "cosine"):
        return max_epochs
    if requested is None:
        requested = max(MIN_EPOCHS, math.ceil(BUDGET_STEPS / max(steps_per_epoch, 1)))
    return min(max_epochs, requested)


class Schedule:
    """Wraps a torch LR scheduler (or none) so the trainer calls the same two hooks for all.

    ``step_on`` says which hook advances the scheduler; a per-batch scheduler stops
    advancing at ``last_step``, so stepping past the planned total keeps the final
    rate instead of raising. Made by :func:`build_schedule`.
    """

    def __init__(
        self,
        name: str,
        optimizer: torch.optim.Optimizer,
        scheduler: lr_scheduler.LRScheduler | None = None,
        *,
        step_on: Literal["batch", "epoch", "never"] = "never",
        last_step: int | None = None,
        cycles_momentum: bool = False,
        warmup_steps: int = 0,
    ) -> None:
        self.name = name
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.step_on = step_on
        self.last_step = last_step
        self.cycles_momentum = cycles_momentum
        self.warmup_steps = warmup_steps
        # An epoch-stepped schedule counts its own warm-up steps (a per-batch one: its
        # scheduler's last_epoch); the rates climb linearly to these peaks.
        self.steps = 0
        self.peaks = [float(group["lr"]) for group in optimizer.param_groups]
        if step_on == "epoch" and warmup_steps > 0:
            self._warm_up()

    def after_batch(self) -> None:
        """Call after every ``optimizer.step()``."""
        if self.step_on == "epoch" and self.steps < self.warmup_steps:
            self.steps += 1
            self._warm_up()
        if self.step_on != "batch":
            return
        if self.last_step is None or self.scheduler.last_epoch < self.last_step:
            self.scheduler.step()

    def after_epoch(self, monitored: float) -> None:
        """Call once per epoch with the validation loss (lower is better)."""
        if self.step_on == "epoch" and not self.warming_up():
            self.scheduler.step(float(monitored))

    def warming_up(self) -> bool:
        """Whether the rate is still climbing to its peak: early stopping waits for it."""
        steps = self.scheduler.last_epoch if self.step_on == "batch" else self.steps
        return steps < self.warmup_steps

    def _warm_up(self) -> None:
        # From peak/(warmup+1), so no step runs at rate 0; the peak after the last.
        fraction = min(1.0, (self.steps + 1) / (self.warmup_steps + 1))
        for group, peak in zip(self.optimizer.param_groups, self.peaks):
            group["lr"] = peak * fraction

    def learning_rates(self) -> list[float]:
        """The current learning rate of each parameter group."""
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """JSON-ready state: the scheduler's, plus the rates (and momenta) it set.

        The rates are saved too so that loading restores them even where the
        optimizer's own state is not loaded (``plateau`` keeps its reduced rate
        only in the optimizer).
        """
        if self.scheduler is None:
            return {}
        state = {
            "name": self.name,
            "scheduler": self.scheduler.state_dict(),
            "learning_rates": self.learning_rates(),
            "steps": self.steps,
        }
        if self.cycles_momentum:
            state["momenta"] = [_momentum(group) for group in self.optimizer.param_groups]
        # Through JSON and back: fails here, not when the checkpoint is written, if
        # something is not serialisable, and never aliases the scheduler's lists.
        return json.loads(json.dumps(state))

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (also after a trip through JSON)."""
        saved = state.get("name", "constant")
        if saved != self.name:
            raise ConfigError(
                f"the saved training state used schedule {saved!r}, not {self.name!r}; "
                f"resume with --schedule {saved}",
                option="--schedule",
            )
        if self.scheduler is None:
            return
        self.scheduler.load_state_dict(json.loads(json.dumps(state["scheduler"])))
        self.steps = state.get("steps", 0)  # older checkpoints: plateau had no warm-up
        for index, group in enumerate(self.optimizer.param_groups):
            group["lr"] = state["learning_rates"][index]
            if self.cycles_momentum:
                _set_momentum(group, state["momenta"][index])


def build_schedule(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_fraction: float = 0.05,
    pct_start: float = 0.3,
    plateau_factor: float = 0.5,
    plateau_patience: int = 5,
    warmup_steps: int = 0,
) -> Schedule:
    """Make the schedule ``name`` for ``optimizer``, peaking at each group's current ``lr``.

    ``total_steps`` is :func:`schedule_epochs` × optimizer steps per epoch (used by
    ``onecycle`` and ``cosine``); ``warmup_steps`` is ``plateau``'s warm-up.
    """
    if name not in SCHEDULES:
        raise ConfigError(
            f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}",
            option="--schedule",
        )
    if name in ("onecycle", "cosine") and (total_steps < 1 or int(total_steps) != total_steps):
        raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    total_steps = int(total_steps)
    peaks = [float(group["lr"]) for group in optimizer.param_groups]

    if name == "constant":
        return Schedule(name, optimizer)
    if name == "plateau":
        return _plateau(optimizer, plateau_factor, plateau_patience, warmup_steps)
    if name == "cosine":
        return _cosine(optimizer, total_steps, warmup_fraction)
    return _onecycle(optimizer, total_steps, pct_start, peaks)


def _plateau(optimizer, factor: float, patience: int, warmup_steps: int) -> Schedule:
    """Warm up linearly over ``warmup_steps``, then divide the rate by ``1 / factor`` when
    the validation loss stalls ``patience`` epochs."""
    if not 0.0 < factor < 1.0:
        raise ConfigError(f"expected 0 < factor < 1, got {factor}", option="--plateau-factor")
    if patience < 0:
        raise ConfigError(f"expected >= 0, got {patience}", option="--plateau-patience")
    scheduler = lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=factor, patience=patience
    )
    return Schedule("plateau", optimizer, scheduler, step_on="epoch", warmup_steps=warmup_steps)


def _cosine(optimizer, total_steps: int, warmup_fraction: float) -> Schedule:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to 0."""
    if not 0.0 <= warmup_fraction < 1.0:
        raise ConfigError(
            f"expected 0 <= fraction < 1, got {warmup_fraction}", option="--warmup-fraction"
        )
    warmup_steps = round(warmup_fraction * total_steps)

    # A plain function: LambdaLR saves None for it, so its state stays JSON.
    def factor(step: int) -> float:
        if step < warmup_steps:  # from peak/(warmup+1), so no step runs at lr 0
            return (step + 1) / (warmup_steps + 1)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = lr_scheduler.LambdaLR(optimizer, factor)
    return Schedule("cosine", optimizer, scheduler, step_on="batch", warmup_steps=warmup_steps)


def _onecycle(optimizer, total_steps: int, pct_start: float, peaks: list[float]) -> Schedule:
    """Warm up to each group's peak over ``pct_start`` of the steps, then anneal (cosine),
    with Adam's beta1 cycling the other way."""
    if not 0.0 < pct_start < 1.0:
        raise ConfigError(f"expected 0 < fraction < 1, got {pct_start}", option="--pct-start")
    if pct_start * total_steps == 1.0:
        # torch divides by (pct_start * total_steps - 1) - 0 and would raise ZeroDivisionError.
        pct_start *= 1 + 1e-9
    # Cycling momentum on an SGD without momentum would quietly switch momentum on.
    cycles_momentum = "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0) > 0
    scheduler = lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=peaks,
        total_steps=total_steps,
        pct_start=pct_start,
        anneal_strategy="cos",
        cycle_momentum=cycles_momentum,
    )
    # Step total_steps - 1 is the last planned one (rate = the minimum); later steps would
    # raise "Tried to step X times" or climb back up, so they are skipped.
    return Schedule(
        "onecycle",
        optimizer,
        scheduler,
        step_on="batch",
        last_step=total_steps - 1,
        cycles_momentum=cycles_momentum,
        warmup_steps=round(pct_start * total_steps),
    )


def _momentum(group: dict) -> float:
    return float(group["betas"][0]) if "betas" in group else float(group["momentum"])


def _set_momentum(group: dict, value: float) -> None:
    if "betas" in group:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value

"""Learning-rate schedules behind one small interface.

The trainer calls the same two hooks whatever the schedule: ``after_batch()``
after every ``optimizer.step()`` and ``after_epoch(validation_loss)`` once per
epoch. The peak rate of each parameter group is its ``lr`` when
:func:`build_schedule` is called, so discriminative rates (groups with different
``lr``) keep their ratios. Build the schedule on a freshly made optimizer, and
load any saved optimizer state afterwards.

- ``onecycle`` (the default in deepstrata): Smith's one-cycle policy
  (super-convergence, 2018). The rate climbs from peak/25 to the peak over the
  first ``pct_start`` of the steps, then anneals (cosine) to peak/25/1e4; the
  momentum (Adam's beta1) cycles the other way, 0.95 → 0.85 → 0.95. Use it when
  the number of steps is known up front: fast, and forgiving of a peak rate that
  is somewhat too high.
- ``cosine``: linear warm-up from ~0 to the peak over ``warmup_fraction`` of the
  steps, then cosine decay to 0 at ``total_steps``. The usual choice for
  fine-tuning pretrained encoders, where a long stay near the peak hurts.
- ``constant``: the peak rate throughout. For debugging, for comparisons with a
  plain PyTorch loop, and for very short runs.
- ``plateau``: the peak rate until the validation loss stops improving for
  ``plateau_patience`` epochs, then multiplied by ``plateau_factor``. Use it when
  the number of epochs is open-ended (early stopping decides).

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

__all__ = ["SCHEDULES", "Schedule", "build_schedule"]


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
    ) -> None:
        self.name = name
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.step_on = step_on
        self.last_step = last_step
        self.cycles_momentum = cycles_momentum

    def after_batch(self) -> None:
        """Call after every ``optimizer.step()``."""
        if self.step_on != "batch":
            return
        if self.last_step is None or self.scheduler.last_epoch < self.last_step:
            self.scheduler.step()

    def after_epoch(self, monitored: float) -> None:
        """Call once per epoch with the validation loss (lower is better)."""
        if self.step_on == "epoch":
            self.scheduler.step(float(monitored))

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
) -> Schedule:
    """Make the schedule ``name`` for ``optimizer``, peaking at each group's current ``lr``.

    ``total_steps`` is max_epochs × optimizer steps per epoch (used by
    ``onecycle`` and ``cosine``).
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
        return _plateau(optimizer, plateau_factor, plateau_patience)
    if name == "cosine":
        return _cosine(optimizer, total_steps, warmup_fraction)
    return _onecycle(optimizer, total_steps, pct_start, peaks)


def _plateau(optimizer, factor: float, patience: int) -> Schedule:
    """Divide the rate by ``1 / factor`` when validation loss stalls ``patience`` epochs."""
    if not 0.0 < factor < 1.0:
        raise ConfigError(f"expected 0 < factor < 1, got {factor}", option="--plateau-factor")
    if patience < 0:
        raise ConfigError(f"expected >= 0, got {patience}", option="--plateau-patience")
    scheduler = lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=factor, patience=patience
    )
    return Schedule("plateau", optimizer, scheduler, step_on="epoch")


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
    return Schedule("cosine", optimizer, scheduler, step_on="batch")


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
    )


def _momentum(group: dict) -> float:
    return float(group["betas"][0]) if "betas" in group else float(group["momentum"])


def _set_momentum(group: dict, value: float) -> None:
    if "betas" in group:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value

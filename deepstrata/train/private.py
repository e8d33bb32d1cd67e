"""Differentially private training (DP-SGD, Abadi et al. 2016) through Opacus.

:class:`PrivateTraining` is a callback: at the start of a fit it attaches Opacus's
per-sample gradient hooks to the network's layers (``GradSampleModule``: the network
object, its state dict and its forward stay as they are) and wraps the Trainer's
optimizer in Opacus's ``DPOptimizer``, which clips each row's gradient to
``max_grad_norm`` and adds Gaussian noise of ``noise_multiplier * max_grad_norm`` to
their sum before every step. The noise is chosen by Opacus's accountant so that every
step the fit may take (epochs x steps per epoch) stays within ``target_epsilon`` at
``target_delta``; at the end the same accountant states the (epsilon, delta) the steps
actually taken spent (early stopping takes fewer: less is spent).

It lives in ``train/`` rather than ``attack/`` because the fit recipes build the Trainer
and may not import the layers above them.

What the guarantee rests on, recorded with it (:meth:`PrivateTraining.record`):
- batches are the Trainer's shuffled fixed-size ones; the accountant assumes Poisson
  sampling at rate B/N, the usual practice (Opacus's own accounting of shuffled
  batches), not an exact proof for shuffling;
- it covers the training rows: validation rows (early stopping, calibration) are not
  protected, and the learning rate must not be chosen on the data (no range test).

>>> from torch import nn
>>> check_private_network(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))
Traceback (most recent call last):
...
deepstrata.errors.ConfigError: --private: DP-SGD clips each row's gradient, ...
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
from torch import nn

from deepstrata.errors import ConfigError
from deepstrata.seeding import generator
from deepstrata.train.callbacks import Callback

ACCOUNTANT = "rdp"  # Rényi DP (Mironov 2017), Opacus's most widely used accountant
DEFAULT_MAX_GRAD_NORM = 1.0
DEFAULT_TARGET_EPSILON = 3.0
PRIVATE_LEARNING_RATE = 1e-3  # --learning-rate auto under --private: no range test on the data
NOISE_STREAM = 11  # the seed's stream for the noise (deepstrata.seeding)


def default_delta(rows: int) -> float:
    """δ well below 1/N (a mechanism that leaks one whole row with probability δ must not
    be likely to leak any): 1e-5, or 1/(10 N) for more than 10,000 rows."""
    return min(1e-5, 1.0 / (10 * rows))


def check_private_network(network: nn.Module) -> None:
    """ConfigError naming ``--private`` for layers whose output mixes rows of a batch
    (batch norm) or that Opacus cannot compute per-sample gradients for."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(network, strict=False)
    if errors:
        found = "; ".join(sorted({str(error).splitlines()[0] for error in errors}))
        raise ConfigError(
            "DP-SGD clips each row's gradient, which needs layers whose output for one row "
            f"depends on that row alone and whose per-row gradients Opacus computes: {found}",
            option="--private",
        )


@functools.cache  # the search evaluates the accountant dozens of times: seconds
def noise_for(target_epsilon: float, target_delta: float, sample_rate: float, steps: int) -> float:
    """The smallest noise multiplier keeping ``steps`` steps at ``sample_rate`` within
    (``target_epsilon``, ``target_delta``), by Opacus's accountant."""
    from opacus.accountants.utils import get_noise_multiplier

    # The search tries noise levels whose best Rényi order lies past the accountant's
    # list; it warns for those, not for the level it settles on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=target_delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=ACCOUNTANT,
                epsilon_tolerance=0.01,
            )
        )


def epsilon_spent(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε after ``steps`` steps of DP-SGD, by Opacus's accountant (0 before any step)."""
    if steps == 0:
        return 0.0
    from opacus.accountants import create_accountant

    accountant = create_accountant(ACCOUNTANT)
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    return float(accountant.get_epsilon(delta=delta))


def _noise_generator(seed: int, device: torch.device) -> torch.Generator:
    """The noise's own generator, on the device the gradients are on (one seed, same noise)."""
    if device.type == "cpu":
        return generator(seed, stream=NOISE_STREAM)
    noise = torch.Generator(device=device)
    noise.manual_seed(generator(seed, stream=NOISE_STREAM).initial_seed())
    return noise


class PrivateTraining(Callback):
    """DP-SGD for one Trainer.fit: per-sample clipping, noise, the budget accounted.

    ``target_delta=None``: :func:`default_delta` of the training rows. After the fit,
    :meth:`record` holds what was spent and what it rests on."""

    def __init__(
        self,
        *,
        target_epsilon: float = DEFAULT_TARGET_EPSILON,
        target_delta: float | None = None,
        max_grad_norm: float = DEFAULT_MAX_GRAD_NORM,
        seed: int = 0,
    ) -> None:
        self.target_epsilon = target_epsilon
        self.target_delta = target_delta
        self.max_grad_norm = max_grad_norm
        self.seed = seed
        self.steps = 0
        self.hooks = None

    def on_fit_start(self, trainer) -> None:
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        check_private_network(trainer.network)
        if trainer.gradient_accumulation != 1:
            raise ConfigError(
                "DP-SGD clips each row's gradient within one step; accumulated batches "
                "would be clipped at the wrong scale: leave --gradient-accumulation at 1",
                option="--private",
            )
        settings = trainer._settings_now  # rows and batch size, as the fit chose them
        rows, batch_size = settings["rows"], settings["batch_size"]
        per_epoch = math.ceil(rows / batch_size)
        self.delta = self.target_delta or default_delta(rows)
        self.sample_rate = batch_size / rows
        self.planned_steps = trainer.epochs * per_epoch
        self.noise_multiplier = noise_for(
            self.target_epsilon, self.delta, self.sample_rate, self.planned_steps
        )
        # A resumed fit has already taken the steps before its checkpoint.
        self.steps = (trainer.loop.epoch - 1) * per_epoch + trainer.loop.batch
        # Hooks on the network's own layers: the module, its state dict and its forward are
        # unchanged, so the Trainer's best-weights copy and the bundle see the plain network.
        # The first layer's inputs need no gradient, so torch says its full backward hook
        # sees only the outputs' gradients: all Opacus needs. Quiet for this fit only.
        self.quiet = warnings.catch_warnings()
        self.quiet.__enter__()
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        self.hooks = GradSampleModule(trainer.network, batch_first=True, loss_reduction="mean")
        trainer.optimizer = DPOptimizer(
            trainer.optimizer,  # the schedule keeps stepping its parameter groups (shared)
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            expected_batch_size=batch_size,
            loss_reduction="mean",
            generator=_noise_generator(self.seed, trainer.device),
        )

    def on_batch_end(self, trainer, epoch: int, step: int, loss: torch.Tensor) -> None:
        self.steps += 1

    def on_fit_end(self, trainer, history) -> None:
        self.close()

    def close(self) -> None:
        """Take the hooks off the network (it predicts as a plain module again)."""
        if self.hooks is not None:
            self.hooks.remove_hooks()
            for parameter in self.hooks._module.parameters():
                for name in ("grad_sample", "_forward_counter", "summed_grad"):
                    if hasattr(parameter, name):
                        delattr(parameter, name)
            self.hooks = None
            self.quiet.__exit__(None, None, None)

    def record(self) -> dict:
        """What was spent and what the guarantee rests on (the bundle's ``privacy``)."""
        return {
            "mechanism": "DP-SGD (Opacus)",
            "epsilon": epsilon_spent(
                self.noise_multiplier, self.sample_rate, self.steps, self.delta
            ),
            "delta": self.delta,
            "target_epsilon": self.target_epsilon,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "planned_steps": self.planned_steps,
            "accountant": ACCOUNTANT,
            "sampling": "shuffled fixed-size batches, accounted as Poisson sampling at B/N",
            "covers": "the training rows (validation rows, used to stop and calibrate, are not)",
        }

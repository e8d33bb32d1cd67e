"""Adversarial training: each batch is replaced by the inputs that most raise the loss
within the budget, through the Trainer's ``perturb=`` hook.

- ``pgd`` (Madry et al. 2018): ``steps`` steps of ``2.5 * eps / steps`` from a random
  start in the L-inf ball; the robust standard, ``steps + 1`` forward-backward passes
  per batch.
- ``fgsm`` (Wong, Rice and Kolter 2020, "Fast is better than free"): one step of
  ``1.25 * eps`` from a uniform random start; about twice plain training's cost.

Budgets are in each input's own units (:mod:`deepstrata.attack.evasion`). The time spent
making the adversarial inputs is measured; by default the recipe also trains the
undefended twin (same rows, split, seed and settings, no perturbation), so the bundle
states the clean-accuracy cost, the robust-accuracy gain and the training-time factor
as measured against it (``--no-adversarial-reference``: the factor is estimated from the
seconds spent perturbing, the cost is said not to be measured).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from deepstrata.attack.evasion import Attack, embedding_modules, input_units
from deepstrata.train.callbacks import Callback

METHODS = ("fgsm", "pgd")
FAST_FGSM_STEP = 1.25  # Wong et al.'s step, in units of eps


class AdversarialPerturbation:
    """``perturb(network, inputs, target) -> inputs`` for :class:`~deepstrata.train.trainer.Trainer`.

    ``preprocessors``: the fitted ones whose outputs the network takes (they give each
    kind's units). ``seconds`` adds up the time spent perturbing."""

    def __init__(
        self,
        preprocessors: dict,
        *,
        method: str,
        epsilon: float,
        steps: int = 7,
        seed: int = 0,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        self.preprocessors = preprocessors
        self.method, self.epsilon, self.steps = method, epsilon, steps
        self.generator = torch.Generator().manual_seed(seed)
        self.seconds = 0.0

    def attack_for(self, network: nn.Module, inputs: dict) -> Attack:
        fast = self.method == "fgsm"
        return Attack(
            network,
            network.loss,
            units=input_units(self.preprocessors, inputs),
            embeddings=embedding_modules(network),
            steps=1 if fast else self.steps,
            step_size=FAST_FGSM_STEP if fast else 2.5 / self.steps,
            random_start=True,
            generator=self.generator,
        )

    def __call__(self, network: nn.Module, inputs: dict, target: torch.Tensor) -> dict:
        started = time.perf_counter()
        attack = self.attack_for(network, inputs)
        adversarial = attack(inputs, target, self.epsilon)
        self.seconds += time.perf_counter() - started
        return adversarial

    def record(self, total_seconds: float) -> dict:
        """What the bundle keeps: the method and settings, the seconds spent perturbing and
        the training-time factor against the same loop without it."""
        plain = max(total_seconds - self.seconds, 1e-9)
        return {
            "method": self.method,
            "epsilon": self.epsilon,
            "steps": 1 if self.method == "fgsm" else self.steps,
            "step_size": f"{FAST_FGSM_STEP if self.method == 'fgsm' else 2.5 / self.steps:.4g} x epsilon",
            "random_start": True,
            "seconds_perturbing": self.seconds,
            "seconds_training": total_seconds,
            "time_factor": total_seconds / plain,
        }


def robust_accuracy(
    network: nn.Module,
    preprocessors: dict,
    inputs: dict,
    target: torch.Tensor,
    correct,
    *,
    epsilon: float,
    steps: int = 10,
    seed: int = 0,
    chunk: int = 256,
) -> float:
    """Accuracy under PGD-``steps`` (L-inf, random start) at ``epsilon`` on ``inputs``;
    ``correct(outputs) -> bool array`` says which rows are right."""
    import numpy as np

    network.eval()
    generator = torch.Generator().manual_seed(seed)
    attack = Attack(
        network, network.loss, units=input_units(preprocessors, inputs),
        embeddings=embedding_modules(network), steps=steps, step_size=2.5 / steps,
        generator=generator,
    )  # fmt: skip
    rows = len(target)
    outputs = []
    for start in range(0, rows, chunk):
        part = {kind: tensor[start : start + chunk] for kind, tensor in inputs.items()}
        outputs.append(attack.outputs(part, target[start : start + chunk], epsilon).numpy())
    return float(np.mean(correct(np.concatenate(outputs))))


TWIN = "the undefended twin: same rows, split, seed and settings, no perturbation"


class AdversarialTraining(Callback):
    """Turns ``fit --adversarial`` on: a callback the recipes bind to each split's fitted
    preprocessors and validation rows (``for_split``); at the start of training it sets
    the Trainer's ``perturb``, at the end it measures clean and PGD-10 robust accuracy on
    the validation rows and leaves ``info["adversarial"]`` for the bundle's metrics.

    With ``reference`` (the default; ``--no-adversarial-reference`` turns it off) the
    recipe also trains the undefended twin (:meth:`undefended_twin`: ``method="none"``,
    measured the same way) and hands it to :meth:`add_twin`: the clean-accuracy cost,
    the robust-accuracy gain and the time factor are then measured, not estimated."""

    def __init__(
        self, *, method: str, epsilon: float, steps: int = 7, seed: int = 0, reference: bool = True
    ) -> None:
        self.method, self.epsilon, self.steps, self.seed = method, epsilon, steps, seed
        self.reference = reference
        self.preprocessors: dict | None = None
        self.validation = None
        self.perturbation: AdversarialPerturbation | None = None
        self.info: dict = {}
        self._started = 0.0

    def for_split(self, preprocessors: dict, validation) -> AdversarialTraining:
        bound = AdversarialTraining(
            method=self.method, epsilon=self.epsilon, steps=self.steps, seed=self.seed,
            reference=self.reference,
        )  # fmt: skip
        bound.preprocessors, bound.validation = preprocessors, validation
        return bound

    def undefended_twin(self) -> AdversarialTraining | None:
        """The callback of the twin the recipe trains beside this network (no perturbation,
        the same measurements), or None: no reference asked for, or no validation rows to
        measure on."""
        if not self.reference or self.validation is None or self.method == "none":
            return None
        twin = AdversarialTraining(
            method="none", epsilon=self.epsilon, seed=self.seed, reference=False
        ).for_split(self.preprocessors, self.validation)
        return twin

    def on_fit_start(self, trainer) -> None:
        if self.preprocessors is None:
            raise RuntimeError("AdversarialTraining must be bound to a split (for_split) first")
        if self.method != "none":  # the twin trains plainly
            self.perturbation = AdversarialPerturbation(
                self.preprocessors, method=self.method, epsilon=self.epsilon, steps=self.steps,
                seed=self.seed,
            )  # fmt: skip
            trainer.perturb = self.perturbation
        self._started = time.perf_counter()

    def on_fit_end(self, trainer, history) -> None:
        seconds = time.perf_counter() - self._started
        record = self.perturbation.record(seconds) if self.perturbation else {}
        epochs = [entry["seconds"] for entry in history.epochs if "seconds" in entry]
        record["epochs"] = len(epochs)
        record["epoch_seconds"] = float(statistics.median(epochs)) if epochs else None
        if self.perturbation is not None:
            record["time_factor_basis"] = (
                "estimated: training seconds against the same less the seconds perturbing"
            )
            record["cost_not_measured"] = (
                "--no-adversarial-reference: no undefended twin was trained"
                if not self.reference
                else "no validation rows to measure on (a refit on every row)"
            )
        if self.validation is not None:
            record.update(self._measure(trainer.network))
        self.info = {"adversarial": record}

    def _measure(self, network: nn.Module) -> dict:
        """Clean and PGD-10 robust accuracy on the validation rows, at the training epsilon."""
        inputs, target = self.validation
        was_training = network.training
        network.eval()
        device = next(network.parameters()).device
        inputs = {kind: tensor.to(device) for kind, tensor in inputs.items()}
        target = target.to(device)
        with torch.no_grad():
            clean = network(inputs)
        robust = robust_accuracy(
            network, self.preprocessors, inputs, target,
            lambda outputs: _correct(torch.as_tensor(outputs), target.cpu()).numpy(),
            epsilon=self.epsilon, seed=self.seed,
        )  # fmt: skip
        network.train(was_training)
        return {
            "validation_clean_accuracy": float(_correct(clean, target).float().mean()),
            "validation_robust_accuracy": robust,
            "robust_attack": "pgd-10, L-inf, random start, at the training epsilon",
        }

    def add_twin(self, twin: AdversarialTraining) -> None:
        """The twin's figures beside this network's: the clean-accuracy cost (undefended
        minus defended), the robust-accuracy gain, the time factor as the ratio of median
        epoch times. The twin's weights are not kept, only these figures."""
        record, plain = self.info["adversarial"], twin.info["adversarial"]
        record.pop("cost_not_measured", None)
        record["undefended"] = {"trained": TWIN, **plain}
        record["clean_accuracy_cost"] = (
            plain["validation_clean_accuracy"] - record["validation_clean_accuracy"]
        )
        record["robust_accuracy_gain"] = (
            record["validation_robust_accuracy"] - plain["validation_robust_accuracy"]
        )
        if record["epoch_seconds"] and plain["epoch_seconds"]:
            # The two fits run one after the other: a machine whose load changes between
            # them skews the ratio; the in-run estimate, kept beside it, does not see that.
            record["time_factor_estimated"] = record["time_factor"]
            record["time_factor"] = record["epoch_seconds"] / plain["epoch_seconds"]
            record["time_factor_basis"] = "measured: median epoch seconds against the twin's"


def _correct(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Right or wrong per row: argmax for several classes, the 0 threshold of a logit."""
    outputs = outputs.detach().cpu()
    if outputs.dim() == 2 and outputs.shape[1] > 1:
        return outputs.argmax(1) == target.cpu().long()
    return (outputs.reshape(-1) > 0).long() == target.cpu().reshape(-1).long()


def adversarial_callbacks(cfg) -> list:
    """``[AdversarialTraining]`` when the fit's configuration asks for it, else ``[]``."""
    from deepstrata.attack.budget import parse_epsilon

    if getattr(cfg, "adversarial", "none") in (None, "none"):
        return []
    if cfg.strategy == "features":
        from deepstrata.errors import ConfigError

        raise ConfigError(
            "adversarial training perturbs a network's inputs as it trains; --strategy "
            "features trains a classical head on fixed embeddings: use scratch or finetune",
            option="--adversarial",
        )
    epsilon = parse_epsilon(cfg.epsilon if cfg.epsilon is not None else "8/255")
    return [
        AdversarialTraining(
            method=cfg.adversarial, epsilon=epsilon, steps=cfg.adversarial_steps, seed=cfg.seed,
            reference=cfg.adversarial_reference,
        )
    ]  # fmt: skip

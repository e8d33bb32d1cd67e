"""Adversarial training: each batch is replaced by the inputs that most raise the loss
within the budget, through the Trainer's ``perturb=`` hook.

- ``pgd`` (Madry et al. 2018): ``steps`` steps of ``2.5 * eps / steps`` from a random
  start in the L-inf ball; the robust standard, ``steps + 1`` forward-backward passes
  per batch.
- ``fgsm`` (Wong, Rice and Kolter 2020, "Fast is better than free"): one step of
  ``1.25 * eps`` from a uniform random start; about twice plain training's cost.

Budgets are in each input's own units (:mod:`deepstrata.attack.evasion`). The time spent
making the adversarial inputs is measured, so the bundle can state the training-time
factor against plain training (the same loop without the perturbation).
"""

from __future__ import annotations

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


class AdversarialTraining(Callback):
    """Turns ``fit --adversarial`` on: a callback the recipes bind to each split's fitted
    preprocessors and validation rows (``for_split``); at the start of training it sets
    the Trainer's ``perturb``, at the end it measures clean and PGD-10 robust accuracy on
    the validation rows and leaves ``info["adversarial"]`` for the bundle's metrics."""

    def __init__(self, *, method: str, epsilon: float, steps: int = 7, seed: int = 0) -> None:
        self.method, self.epsilon, self.steps, self.seed = method, epsilon, steps, seed
        self.preprocessors: dict | None = None
        self.validation = None
        self.perturbation: AdversarialPerturbation | None = None
        self.info: dict = {}
        self._started = 0.0

    def for_split(self, preprocessors: dict, validation) -> AdversarialTraining:
        bound = AdversarialTraining(
            method=self.method, epsilon=self.epsilon, steps=self.steps, seed=self.seed
        )
        bound.preprocessors, bound.validation = preprocessors, validation
        return bound

    def on_fit_start(self, trainer) -> None:
        if self.preprocessors is None:
            raise RuntimeError("AdversarialTraining must be bound to a split (for_split) first")
        self.perturbation = AdversarialPerturbation(
            self.preprocessors, method=self.method, epsilon=self.epsilon, steps=self.steps,
            seed=self.seed,
        )  # fmt: skip
        trainer.perturb = self.perturbation
        self._started = time.perf_counter()

    def on_fit_end(self, trainer, history) -> None:
        record = self.perturbation.record(time.perf_counter() - self._started)
        if self.validation is not None:
            inputs, target = self.validation
            network = trainer.network
            was_training = network.training
            network.eval()
            device = next(network.parameters()).device
            inputs = {kind: tensor.to(device) for kind, tensor in inputs.items()}
            target = target.to(device)
            with torch.no_grad():
                clean = network(inputs)
            record["validation_clean_accuracy"] = float(_correct(clean, target).float().mean())
            record["validation_robust_accuracy"] = robust_accuracy(
                network, self.preprocessors, inputs, target,
                lambda outputs: _correct(torch.as_tensor(outputs), target.cpu()).numpy(),
                epsilon=self.epsilon, seed=self.seed,
            )  # fmt: skip
            record["robust_attack"] = "pgd-10, L-inf, random start, at the training epsilon"
            network.train(was_training)
        self.info = {"adversarial": record}


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
            method=cfg.adversarial, epsilon=epsilon, steps=cfg.adversarial_steps, seed=cfg.seed
        )
    ]

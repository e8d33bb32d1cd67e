"""Evasion attacks on a network: FGSM and PGD (L-inf or L2, random start), in each
input's own units.

The network takes preprocessed tensors (``{kind: (B, W)}``); an attacker changes the
raw input. Each kind's budget therefore lives in its own units and is mapped here onto
the tensor the network sees:

- **image**: pixels in [0, 1]. The network's input is the uint8 pixel (0..255); the
  encoder divides by 255 and normalises with the training mean and std *inside* the
  network, so the attack perturbs before the normalisation: ``eps = 8/255`` moves each
  pixel by at most 8 grey levels, and the result is clipped to [0, 255] (not rounded).
- **number**: raw units, ``eps`` a fraction of each column's inter-quartile range
  (the preprocessor scales by ``IQR / 1.349``), clipped to the range of the attacked
  rows (the values seen; a bundle keeps no training range). Missing values and the
  missing-value flags are left alone.
- **audio**: the log-mel spectrogram (``eps`` in log-mel units, each mel bin's
  standardisation undone).
- **category, text**: ids cannot move by small steps; their *embeddings* are
  perturbed, ``eps`` a fraction of the embedding table's root-mean-square entry
  (reported as embedding-space robustness, not a change any user could type).
- **boolean, datetime**: not attacked.

Written by hand rather than through ``captum.robust``: captum's PGD takes one input
tensor's scalar bounds and one radius, while this needs per-column ranges, per-bin
scales, masked flags and deltas on embedding outputs (forward hooks) under one joint
L2 budget. ``tests/attack/test_evasion.py`` checks FGSM against captum's on an image
model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from deepstrata.kinds import group_by_kind
from deepstrata.preprocess.number import IQR_TO_STD

NORMS = ("linf", "l2")
INPUT_KINDS = ("image", "number", "audio")  # attacked on the network's input tensor
EMBEDDED_KINDS = ("category", "text")  # attacked on their embeddings
UNITS = {
    "image": "pixels in [0, 1]",
    "number": "fraction of each column's inter-quartile range (raw units)",
    "audio": "log-mel units",
    "category": "embedding space (fraction of the embeddings' RMS)",
    "text": "embedding space (fraction of the embeddings' RMS)",
}


@dataclass
class Units:
    """How one kind's tensor moves: ``x + scale * delta`` clipped to ``[low, high]``, with
    ``delta`` in the user's units (``|delta| <= eps``). ``scale`` is ``(1, W)`` (0: left
    alone); ``low``/``high`` ``(1, W)`` or None."""

    scale: torch.Tensor
    low: torch.Tensor | None = None
    high: torch.Tensor | None = None


def input_units(preprocessors: dict, inputs: dict[str, torch.Tensor]) -> dict[str, Units]:
    """The :class:`Units` of every attacked input kind present in ``inputs``."""
    units = {}
    for kind, names in group_by_kind(preprocessors).items():
        if kind not in INPUT_KINDS or kind not in inputs:
            continue
        pres = [preprocessors[name] for name in names]
        if kind == "image":
            width = inputs[kind].shape[1]
            full = torch.full((1, width), 255.0)
            units[kind] = Units(full, torch.zeros(1, width), full.clone())
        elif kind == "number":
            units[kind] = _number_units(pres, inputs[kind].float())
        else:
            scale = torch.cat(
                [
                    torch.from_numpy(1.0 / pre.std).float().repeat_interleave(pre.frames)
                    for pre in pres
                ]
            )
            units[kind] = Units(scale[None])
    return units


def _number_units(pres, x: torch.Tensor) -> Units:
    """Values move by ``eps * IQR`` (in scaled units: ``eps * 1.349``); flags stay; each
    column is clipped to its attacked rows' range."""
    scales = []
    for pre in pres:
        scales.append(IQR_TO_STD)
        if pre.width == 2:
            scales.append(0.0)
    scale = torch.tensor(scales)[None]  # (1, W)
    return Units(scale, x.min(dim=0, keepdim=True).values, x.max(dim=0, keepdim=True).values)


def embedding_modules(network: nn.Module) -> list[tuple[nn.Module, float]]:
    """(module, RMS of its table) for every token or category embedding of the network's
    category and text encoders (positions and segment types are not inputs: left out)."""
    found = []
    encoders = getattr(network, "encoders", {})
    for kind in EMBEDDED_KINDS:
        if kind not in encoders:
            continue
        for name, module in encoders[kind].named_modules():
            if isinstance(module, nn.Embedding | nn.EmbeddingBag) and not any(
                word in name for word in ("position", "token_type")
            ):
                found.append((module, float(module.weight.detach().pow(2).mean().sqrt())))
    return found


class Attack:
    """FGSM (``steps=1``, step ``eps``) or PGD (``steps`` steps of ``step_size * eps``).

    ``norm``: ``"linf"`` (each value within ``eps``) or ``"l2"`` (each row's whole change
    within ``eps``, over every attacked kind together). ``random_start``: begin at a
    uniform point of the L-inf ball (Madry et al. 2018) or a random direction in the L2
    ball. ``loss_fn(output, target)``: the loss to raise (the network's own).
    """

    def __init__(
        self,
        network: nn.Module,
        loss_fn,
        *,
        units: dict[str, Units],
        embeddings: list[tuple[nn.Module, float]] = (),
        norm: str = "linf",
        steps: int = 10,
        step_size: float = 2.5 / 10,
        random_start: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.network, self.loss_fn, self.units = network, loss_fn, units
        self.embeddings = list(embeddings)
        self.norm, self.steps, self.step_size = norm, steps, step_size
        self.random_start, self.generator = random_start, generator

    def __call__(self, inputs: dict, target: torch.Tensor, epsilon: float) -> dict:
        """Adversarial inputs (detached) for ``inputs`` within ``epsilon``; the network's
        parameter gradients are left untouched (``torch.autograd.grad`` on the deltas)."""
        deltas = {kind: self._start(inputs[kind], epsilon) for kind in self.units}
        hooked: dict[nn.Module, torch.Tensor] = {}
        for _ in range(self.steps):
            for delta in [*deltas.values(), *hooked.values()]:
                delta.requires_grad_(True)
            with self._hooks(hooked, epsilon):
                loss = self.loss_fn(self.network(self._apply(inputs, deltas)), target)
            leaves = [*deltas.values(), *hooked.values()]
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
            grads = [torch.zeros_like(v) if g is None else g for v, g in zip(leaves, grads)]
            stepped = self._step(leaves, grads, epsilon)
            deltas = dict(zip(deltas, stepped[: len(deltas)]))
            hooked = dict(zip(hooked, stepped[len(deltas) :]))
        adversarial = self._apply(inputs, deltas)
        self.last_embedding_deltas = hooked  # for evaluation with the same embedding changes
        return {kind: tensor.detach() for kind, tensor in adversarial.items()}

    def run(self, inputs: dict, target: torch.Tensor, epsilon: float) -> tuple[dict, torch.Tensor]:
        """(adversarial inputs, the network's outputs on them): with category or text
        inputs the outputs include the same embedding changes."""
        adversarial = self(inputs, target, epsilon)
        with torch.no_grad(), self._hooks(self.last_embedding_deltas, epsilon, fixed=True):
            return adversarial, self.network(adversarial)

    def outputs(self, inputs: dict, target: torch.Tensor, epsilon: float) -> torch.Tensor:
        """The network's outputs on the adversarial version of ``inputs``."""
        return self.run(inputs, target, epsilon)[1]

    # -- pieces ---------------------------------------------------------------------------------
    def _start(self, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        if not self.random_start:
            return torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        noise = torch.rand(x.shape, generator=self.generator).to(x.device) * 2 - 1  # U(-1, 1)
        if self.norm == "l2":  # a random point of the L2 ball: direction times radius
            flat = noise.flatten(1)
            noise = noise / flat.norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
            noise = noise * torch.rand(x.shape[0], generator=self.generator).to(x.device).view(
                -1, *[1] * (x.dim() - 1)
            )
        return (noise * epsilon).float()

    def _apply(self, inputs: dict, deltas: dict) -> dict:
        out = dict(inputs)
        for kind, delta in deltas.items():
            unit = self.units[kind]
            x = inputs[kind].float() + unit.scale.to(delta.device) * delta
            if unit.low is not None:
                x = torch.maximum(torch.minimum(x, unit.high.to(x.device)), unit.low.to(x.device))
            if kind == "number":  # a missing value stays missing (its flag says so)
                x = torch.where(self._missing(inputs[kind]), inputs[kind].float(), x)
            out[kind] = x
        return out

    def _missing(self, x: torch.Tensor) -> torch.Tensor:
        """Per value column, whether its row's flag (the column after it) is set."""
        scale = self.units["number"].scale[0]
        missing = torch.zeros_like(x, dtype=torch.bool)
        flagged = (scale == 0).nonzero().flatten()
        missing[:, flagged - 1] = x[:, flagged] > 0.5
        return missing

    def _step(self, leaves, grads, epsilon: float) -> list[torch.Tensor]:
        alpha = self.step_size * epsilon
        with torch.no_grad():
            if self.norm == "linf":
                return [
                    (v + alpha * g.sign()).clamp(-epsilon, epsilon).detach()
                    for v, g in zip(leaves, grads)
                ]
            # L2: one direction over every attacked tensor of a row, then back into the ball
            total = sum(g.flatten(1).pow(2).sum(1) for g in grads).sqrt().clamp_min(1e-12)
            moved = [v + alpha * g / _rows(total, g) for v, g in zip(leaves, grads)]
            norm = sum(m.flatten(1).pow(2).sum(1) for m in moved).sqrt()
            factor = (epsilon / norm.clamp_min(1e-12)).clamp(max=1.0)
            return [(m * _rows(factor, m)).detach() for m in moved]

    @contextlib.contextmanager
    def _hooks(self, deltas: dict, epsilon: float, fixed: bool = False):
        """Adds ``rms * delta`` to each embedding's output; a delta is made (random start
        or zero) the first time its module runs."""
        handles = []
        for module, rms in self.embeddings:

            def hook(mod, args, output, rms=rms):
                if mod not in deltas:
                    if fixed:
                        return output
                    deltas[mod] = self._start(output, epsilon).requires_grad_(True)
                return output + rms * deltas[mod]

            handles.append(module.register_forward_hook(hook))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def _rows(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *[1] * (like.dim() - 1))


def make_attack(
    network: nn.Module,
    preprocessors: dict,
    inputs: dict,
    *,
    method: str,
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
) -> Attack:
    """FGSM (``method="fgsm"``: one step of size eps, no random start unless asked) or PGD
    for ``network`` and the preprocessors that made ``inputs``."""
    generator = torch.Generator().manual_seed(seed)
    common = {
        "units": input_units(preprocessors, inputs),
        "embeddings": embedding_modules(network),
        "norm": norm,
        "generator": generator,
    }
    if method == "fgsm":
        return Attack(
            network, network.loss, steps=1, step_size=step_size or 1.0,
            random_start=random_start and step_size is not None, **common,
        )  # fmt: skip
    # Madry et al.'s step 2.5 * eps / steps lets a path from the start reach the far side
    return Attack(
        network, network.loss, steps=steps, step_size=step_size or 2.5 / steps,
        random_start=random_start, **common,
    )  # fmt: skip


def attacked_kinds(preprocessors: dict) -> dict[str, str]:
    """Kind -> the units its budget is in, for the kinds this model's inputs have."""
    kinds = group_by_kind(preprocessors)
    return {kind: UNITS[kind] for kind in kinds if kind in UNITS}

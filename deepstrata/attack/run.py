"""``run_attack(model, data, attack=..., epsilons=...)``: clean and robust accuracy per
budget, the attack's success rate, a few adversarial examples.

Everything a user can get wrong is checked before any model runs: an unknown attack or
norm, a budget outside the input's range, a gradient attack on a model without a network
of its own (classical members: use ``hopskipjump``), a model that is not a classifier, a
missing input or target column, more rows than ``max_rows``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from deepstrata import tasks
from deepstrata.attack.budget import parse_epsilons
from deepstrata.attack.evasion import NORMS, attacked_kinds, make_attack
from deepstrata.data.sources import read_table
from deepstrata.data.table import Table
from deepstrata.errors import ConfigError
from deepstrata.preprocess.frame import transform_frame
from deepstrata.train.progress import Progress

GRADIENT_ATTACKS = ("fgsm", "pgd")
ATTACKS = (*GRADIENT_ATTACKS, "hopskipjump")
CHUNK = 256  # rows attacked at once: bounded memory, whatever the data's size
EXAMPLES = 4


def gradient_member(model):
    """The model's one network member; ConfigError when it has classical members (no
    gradients to follow) or several networks."""
    members = model.members
    if len(members) != 1 or not hasattr(members[0], "network"):
        kinds = ", ".join(
            "network" if hasattr(m, "network") else f"{m.head.name} head" for m in members
        )
        raise ConfigError(
            f"fgsm and pgd follow a network's gradients; this model's members are: {kinds} "
            "(classical members have no gradients): use --attack hopskipjump",
            option="--attack",
        )
    return members[0]


def check(model, table: Table, attack: str, epsilons, norm: str, max_rows: int) -> list[float]:
    """Every check before any work; returns the budgets as numbers."""
    if attack not in ATTACKS:
        raise ConfigError(
            f"expected one of {', '.join(ATTACKS)}, got {attack!r}", option="--attack"
        )
    if norm not in NORMS:
        raise ConfigError(f"expected one of {', '.join(NORMS)}, got {norm!r}", option="--norm")
    values = parse_epsilons(epsilons)
    if model.task not in ("binary", "multiclass"):
        raise ConfigError(
            f"attack reports accuracy: it needs a binary or multiclass classifier, this model "
            f"does {model.task}",
            option="--attack",
        )
    if attack in GRADIENT_ATTACKS:
        gradient_member(model)
    names = [f.name for f in model.schema.inputs]
    for name in [*names, model.schema.target]:
        if name not in table.frame.columns:
            raise table.error(f"column {name!r} is missing: the attack needs it", column=name)
    if len(table.frame) > max_rows:
        raise ConfigError(
            f"{len(table.frame)} rows to attack, more than {max_rows}: raise --max-rows or "
            "give fewer rows",
            option="--max-rows",
        )
    return values


def run_attack(
    model,
    data,
    *,
    attack: str = "pgd",
    epsilons="2/255,4/255,8/255",
    norm: str = "linf",
    steps: int = 10,
    max_rows: int = 10_000,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Attack ``model`` on ``data`` (rows with the target) at each budget.

    Returns a dict (attack.json): the settings, ``clean_accuracy``, per budget
    ``robust_accuracy`` and ``success_rate`` (correct rows the attack turns wrong), the
    units each input kind's budget is in, the seconds taken, and ``examples``."""
    table = data if isinstance(data, Table) else read_table(data)
    values = check(model, table, attack, epsilons, norm, max_rows)
    report = Progress(enabled=progress)
    encoded = model.target_encoder.encode(table.frame[model.schema.target], table)
    if attack == "hopskipjump":
        from deepstrata.attack.blackbox import hop_skip_jump

        return hop_skip_jump(model, table, encoded, values, norm=norm, seed=seed, note=report.note)
    member = gradient_member(model)
    network = member.network.eval()
    inputs = transform_frame(member.preprocessors, table.frame, table)
    target = torch.from_numpy(encoded)
    spec = tasks.get(model.task)

    def predicted(outputs: np.ndarray) -> np.ndarray:  # as predict decides (temperature, threshold)
        return model.point_predictions(spec.calibrated(outputs, member.temperature))

    def correct(outputs: np.ndarray) -> np.ndarray:
        return predicted(outputs) == encoded

    rows = len(encoded)
    with torch.no_grad():
        clean = _chunked(lambda part: network(part), inputs)
    clean_right = correct(clean)
    result = {
        "attack": attack,
        "norm": norm,
        "steps": 1 if attack == "fgsm" else steps,
        "step_size": "epsilon" if attack == "fgsm" else f"{2.5 / steps:.4g} x epsilon",
        "random_start": attack == "pgd",
        "rows": rows,
        "units": attacked_kinds(member.preprocessors),
        "clean_accuracy": float(clean_right.mean()),
        "epsilons": [],
    }
    examples_source = None
    for index, epsilon in enumerate(values):
        started = time.perf_counter()
        attacker = make_attack(
            network, member.preprocessors, inputs, method=attack, norm=norm, steps=steps,
            seed=seed,
        )  # fmt: skip
        adversarial_inputs, outputs = _attack_chunks(attacker, inputs, target, epsilon)
        right = correct(outputs)
        seconds = time.perf_counter() - started
        flipped = clean_right & ~right
        entry = {
            "epsilon": epsilon,
            "robust_accuracy": float(right.mean()),
            "success_rate": float(flipped.sum() / max(clean_right.sum(), 1)),
            "seconds": seconds,
            "seconds_per_1000_rows": seconds / rows * 1000,
        }
        result["epsilons"].append(entry)
        report.note(f"{attack} eps {epsilon:.4g} ({index + 1}/{len(values)}): {_line(entry)}")
        examples_source = (epsilon, adversarial_inputs, outputs, flipped)
    result["examples"] = _examples(
        model, member, inputs, predicted(clean), examples_source, encoded, predicted
    )
    return result


def _line(entry: dict) -> str:
    return f"robust accuracy {entry['robust_accuracy']:.3f}, {entry['seconds']:.1f}s"


def _chunked(function, inputs: dict) -> np.ndarray:
    rows = len(next(iter(inputs.values())))
    parts = []
    for start in range(0, rows, CHUNK):
        part = {kind: tensor[start : start + CHUNK] for kind, tensor in inputs.items()}
        parts.append(function(part).detach().cpu().numpy())
    return np.concatenate(parts)


def _attack_chunks(attacker, inputs: dict, target: torch.Tensor, epsilon: float):
    rows = len(target)
    adversarial, outputs = [], []
    for start in range(0, rows, CHUNK):
        part = {kind: tensor[start : start + CHUNK] for kind, tensor in inputs.items()}
        changed, output = attacker.run(part, target[start : start + CHUNK], epsilon)
        outputs.append(output.cpu().numpy())
        adversarial.append(changed)
    joined = {kind: torch.cat([part[kind] for part in adversarial]) for kind in inputs}
    return joined, np.concatenate(outputs)


def _examples(model, member, inputs, clean_pred, source, encoded, predicted) -> list[dict]:
    """A few rows the largest budget turned wrong (else the first rows): the image before
    and after (uint8, channel-major) or the number columns' raw values, with predictions."""
    if source is None:
        return []
    epsilon, adversarial, outputs, flipped = source
    chosen = list(np.flatnonzero(flipped)[:EXAMPLES]) or list(range(min(EXAMPLES, len(encoded))))
    labels = [str(c) for c in model.classes]
    adv_pred = predicted(outputs)
    examples = []
    for row in chosen:
        example = {
            "row": int(row),
            "epsilon": epsilon,
            "label": labels[int(encoded[row])],
            "clean_prediction": labels[int(clean_pred[row])],
            "adversarial_prediction": labels[int(adv_pred[row])],
        }
        if "image" in inputs:
            example["image"] = _first_image(member, inputs["image"][row])
            example["adversarial_image"] = _first_image(member, adversarial["image"][row])
        if "number" in inputs:
            example["numbers"] = _raw_numbers(
                member, inputs["number"][row], adversarial["number"][row]
            )
        examples.append(example)
    return examples


def _first_image(member, pixels: torch.Tensor) -> dict:
    """The first image column of a row: ``{"size", "pixels"}`` (uint8 values, C*H*W)."""
    pre = next(p for p in member.preprocessors.values() if p.kind == "image")
    values = pixels[: 3 * pre.size * pre.size].float().round().clamp(0, 255)
    return {"size": pre.size, "pixels": values.to(torch.uint8).tolist()}


def _raw_numbers(member, before: torch.Tensor, after: torch.Tensor) -> list[dict]:
    """Each number column's raw value before and after (the preprocessor's scaling undone)."""
    rows, position = [], 0
    for name, pre in member.preprocessors.items():
        if pre.kind != "number":
            continue
        rows.append(
            {
                "column": name,
                "before": float(before[position]) * pre.scale + pre.center,
                "after": float(after[position]) * pre.scale + pre.center,
            }
        )
        position += pre.width
    return rows

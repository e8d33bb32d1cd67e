"""Membership inference: can an attacker tell a training row from a row the model never saw?

Two attacks, scored the way Carlini et al. (2022) recommend: the area under the ROC curve
and the true-positive rate at a 1 % false-positive rate (an attack that finds a few
members with certainty is a risk even at an AUC near 0.5), overall and per class.

- **loss threshold** (Yeom et al. 2018): a row the model trained on tends to have a lower
  loss; the score is minus the row's loss. Written here: it is one line over the model's
  outputs.
- **shadow models** (Shokri et al. 2017): the attacker trains shadow models the way the
  target was trained (the bundle's own fit configuration) on rows it owns, half of them
  in each shadow's training set, and learns from the shadows' outputs what a member's
  output looks like, one attack model per class; that attack model then scores the
  target's outputs. The shadows are trained by deepstrata's own fit, so the attack
  copies the target's recipe exactly; the attack model is scikit-learn's gradient
  boosting.

Members are the bundle's training rows found in TRAIN (the rows the fit held out for
validation are recomputed and left out when TRAIN is the table it was fitted on);
non-members are rows of TEST. Half of TEST is the attacker's (the shadows train on it),
the other half is scored, so no row is both.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd

from deepstrata.errors import ConfigError

FPR = 0.01  # the false-positive rate the true-positive rate is read at
ATTACKS = ("loss", "shadow")


def attack_scores(members: np.ndarray, non_members: np.ndarray) -> dict:
    """AUC and TPR at 1 % FPR of scores (higher: more likely a member).

    >>> attack_scores(np.array([3.0, 2.0]), np.array([1.0, 0.0]))["auc"]
    1.0
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    truth = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    scores = np.r_[members, non_members]
    fpr, tpr, _ = roc_curve(truth, scores)
    return {
        "auc": float(roc_auc_score(truth, scores)),
        "tpr_at_1pct_fpr": float(tpr[fpr <= FPR].max()),
        "members": len(members),
        "non_members": len(non_members),
    }


def row_losses(spec, outputs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each row's loss: minus the log probability of its class, or its squared error."""
    if spec.classifier:
        probabilities = spec.probabilities(outputs)
        picked = probabilities[np.arange(len(truth)), truth.astype(int)]
        return -np.log(np.clip(picked, 1e-12, 1.0))
    return (np.asarray(outputs, dtype=float).reshape(len(truth), -1)[:, 0] - truth) ** 2


def attack_features(spec, outputs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """What the shadow attack model reads of one row: its sorted probabilities, its class's
    probability and its loss (regression: the prediction and the error)."""
    losses = row_losses(spec, outputs, truth)[:, None]
    if spec.classifier:
        probabilities = spec.probabilities(outputs)
        ranked = -np.sort(-probabilities, axis=1)
        picked = probabilities[np.arange(len(truth)), truth.astype(int)][:, None]
        return np.hstack([ranked, picked, losses])
    values = np.asarray(outputs, dtype=float).reshape(len(truth), -1)[:, :1]
    return np.hstack([values, losses])


def _by_class(result: dict, per_class: dict) -> dict:
    return {**result, "per_class": per_class} if per_class else result


def scored(spec, classes, member_scores, member_truth, other_scores, other_truth) -> dict:
    """attack_scores overall and, for classifiers, within each class."""
    result = attack_scores(member_scores, other_scores)
    per_class = {}
    if spec.classifier:
        for index, name in enumerate(classes):
            inside, outside = member_truth == index, other_truth == index
            if inside.any() and outside.any():
                per_class[str(name)] = attack_scores(member_scores[inside], other_scores[outside])
    return _by_class(result, per_class)


class Rows:
    """A model's view of some labelled rows: outputs, encoded truth."""

    def __init__(self, model, frame: pd.DataFrame, source: str) -> None:
        from deepstrata.data.table import Table

        table = Table(frame.reset_index(drop=True), source, None)
        self.frame = table.frame
        self.truth = model.target_encoder.encode(table.frame[model.schema.target], table)
        self.outputs = model.outputs_of(table)


def labelled(model, table, role: str) -> pd.DataFrame:
    """The rows of ``table`` with a target, or a DataError naming the file."""
    target = model.schema.target
    if target not in table.frame.columns:
        raise table.error(
            f"the target column {target!r} is needed to score the {role} rows", column=target
        )
    frame = table.frame.loc[~model.spec.missing_targets(table.frame[target])]
    if len(frame) < 4:
        raise table.error(f"need at least 4 labelled {role} rows, found {len(frame)}")
    return frame.reset_index(drop=True)


def training_rows(model, frame: pd.DataFrame, table) -> tuple[np.ndarray, str]:
    """Positions of ``frame`` the model trained on: the fit's split recomputed when
    ``frame`` is the table it was fitted on (its row counts match), else every row."""
    from deepstrata.data.split import train_validation_split

    cfg, counts = model.config, model.metrics.get("rows", {})
    every = np.arange(len(frame))
    if (
        {"train", "validation"} <= set(counts)
        and counts["train"] + counts["validation"] == len(frame)
        and cfg.group is None
        and not cfg.folds
    ):
        encoded = model.target_encoder.encode(frame[model.schema.target], table)
        train, _ = train_validation_split(
            encoded,
            stratify=model.spec.stratify,
            fraction=cfg.validation_fraction,
            seed=cfg.seed,
        )
        if len(train) == counts["train"]:
            return train, "the fit's training rows (its validation rows recomputed, left out)"
    return every, "every TRAIN row (rows the fit held out to validate on dilute the attack)"


def shadow_scores(
    model, attacker: pd.DataFrame, targets: list[Rows], *, shadows: int, seed: int, progress
) -> list[np.ndarray]:
    """Shokri et al.'s attack: train ``shadows`` models as the bundle was trained, each on
    a random half of ``attacker``; an attack model per class learns member from
    non-member on their outputs, then scores each of ``targets`` (the model's outputs)."""
    from deepstrata.recipes.run import run_fit

    spec, rng = model.spec, np.random.default_rng(seed)
    features, membership, labels = [], [], []
    for index in range(shadows):
        inside = np.zeros(len(attacker), dtype=bool)
        inside[rng.permutation(len(attacker))[: len(attacker) // 2]] = True
        cfg = copy.deepcopy(model.config)
        cfg.seed = seed + 1 + index
        if progress is not None:
            progress(f"shadow model {index + 1} of {shadows} on {int(inside.sum())} rows")
        shadow = run_fit(attacker.loc[inside].reset_index(drop=True), cfg, progress=False)
        if [str(c) for c in shadow.classes] != [str(c) for c in model.classes]:
            raise ConfigError(
                f"a shadow model saw the classes {shadow.classes}, the model {model.classes}: "
                "the attacker's half of TEST lacks some; give TEST more rows of every class",
                option="TEST",
            )
        rows = Rows(shadow, attacker, "<attacker's rows>")
        features.append(attack_features(spec, rows.outputs, rows.truth))
        membership.append(inside.astype(int))
        labels.append(rows.truth)
    x, y, label = np.vstack(features), np.concatenate(membership), np.concatenate(labels)
    models = _attack_models(spec, x, y, label, seed)
    scores = []
    for rows in targets:
        x_target = attack_features(spec, rows.outputs, rows.truth)
        score = np.empty(len(x_target))
        for key, fitted in models.items():
            pick = np.ones(len(x_target), bool) if key is None else rows.truth == key
            if pick.any():
                score[pick] = fitted.predict_proba(x_target[pick])[:, 1]
        scores.append(score)
    return scores


def _attack_models(spec, x, y, label, seed) -> dict:
    """One attack model per class with at least 10 member and 10 non-member shadow rows
    (Shokri's per-class models), one for the rest (key None) and regression."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    def fitted(pick):
        return HistGradientBoostingClassifier(
            max_iter=100, max_depth=3, learning_rate=0.05, random_state=seed
        ).fit(x[pick], y[pick])

    models = {None: fitted(np.ones(len(y), bool))}
    if spec.classifier:
        for value in np.unique(label):
            pick = label == value
            if min((y[pick] == 1).sum(), (y[pick] == 0).sum()) >= 10:
                models[int(value)] = fitted(pick)
    return models


def membership_risk(
    bundle: str | Path,
    train,
    test,
    *,
    attacks: tuple[str, ...] = ATTACKS,
    shadows: int = 1,
    seed: int = 0,
    progress=None,
) -> dict:
    """Both attacks against the bundle at ``bundle``: members from ``train`` (the table it
    was fitted on), non-members from ``test``; the dictionary ``deepstrata privacy``
    prints and writes. ``progress``: a callable taking one line, or None."""
    from deepstrata.data.sources import read_table
    from deepstrata.model.model import load

    unknown = sorted(set(attacks) - set(ATTACKS))
    if unknown or not attacks:
        raise ConfigError(
            f"unknown attack {', '.join(unknown) or '(none)'}; expected {', '.join(ATTACKS)}",
            option="--attacks",
        )
    if shadows < 1:
        raise ConfigError(f"must be >= 1, got {shadows}", option="--shadows")
    model = bundle if hasattr(bundle, "members") else load(bundle)  # a Model, or its path
    spec = model.spec
    if spec.classifier and not spec.stratify:
        raise ConfigError(
            f"the attacks score one class per row; this model is {model.task}", option="BUNDLE"
        )
    train_table, test_table = read_table(train), read_table(test)
    train_frame = labelled(model, train_table, "TRAIN")
    test_frame = labelled(model, test_table, "TEST")
    member_rows, which = training_rows(model, train_frame, train_table)
    order = np.random.default_rng(seed).permutation(len(test_frame))
    half = len(order) // 2
    attacker, scored_out = test_frame.iloc[order[:half]], test_frame.iloc[order[half:]]
    members = Rows(model, train_frame.iloc[member_rows], train_table.source)
    others = Rows(model, scored_out, test_table.source)
    classes = model.classes if spec.classifier else []
    result: dict = {
        "bundle": str(bundle) if isinstance(bundle, str | Path) else repr(bundle),
        "task": model.task,
        "members": which,
        "rows": {"members": len(members.truth), "non_members": len(others.truth)},
        "generalisation": {
            "members": model.metrics_of(members.outputs, members.truth),
            "non_members": model.metrics_of(others.outputs, others.truth),
        },
        "privacy": model.metrics.get("privacy"),
        "attacks": {},
    }
    if "loss" in attacks:
        member_loss = row_losses(spec, members.outputs, members.truth)
        other_loss = row_losses(spec, others.outputs, others.truth)
        result["attacks"]["loss"] = scored(
            spec, classes, -member_loss, members.truth, -other_loss, others.truth
        )
    if "shadow" in attacks:
        member_score, other_score = shadow_scores(
            model, attacker.reset_index(drop=True), [members, others],
            shadows=shadows, seed=seed, progress=progress,
        )  # fmt: skip
        result["attacks"]["shadow"] = {
            **scored(spec, classes, member_score, members.truth, other_score, others.truth),
            "shadows": shadows,
            "attacker_rows": len(attacker),
        }
    return result

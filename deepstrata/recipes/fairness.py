"""``fit --sensitive/--fairness``: the sensitive columns checked before any work, and the
group thresholds chosen on held-out rows (the validation split, or every row's
out-of-fold outputs with ``--folds``), with the trade-off over strengths recorded.

The thresholds are :mod:`deepstrata.calibrate.thresholds`'s; the bundle keeps them in
config.json (``fairness``), the trade-off in metrics.json and as fairness_tradeoff.png.
"""

from __future__ import annotations

import numpy as np

from deepstrata.calibrate.thresholds import choose_thresholds, disparity, tradeoff
from deepstrata.data.sensitive import MISSING, check_sensitive, group_labels, parse_sensitive
from deepstrata.errors import ConfigError

TRADEOFF_PNG = "fairness_tradeoff.png"


def check_fairness(prepared) -> None:
    """DataError or ConfigError before any training: a sensitive column missing, constant
    or without two groups big enough; thresholds for other than two classes."""
    cfg = prepared.cfg
    if not cfg.sensitive:
        return
    columns = parse_sensitive(cfg.sensitive)
    check_sensitive(prepared.table, columns, min_group_size=cfg.min_group_size, target=cfg.target)
    classes = len(prepared.target_encoder.labels())
    if cfg.fairness and classes != 2:
        raise ConfigError(
            f"group thresholds decide between two classes; {cfg.target!r} has {classes}",
            option="--fairness",
        )


def sensitive_summary(prepared) -> dict:
    """metrics.json's ``sensitive`` entry: each sensitive column's groups and their rows
    among the labelled rows, and which columns are audit-only (not inputs); {} without."""
    cfg = prepared.cfg
    if not cfg.sensitive:
        return {}
    columns = parse_sensitive(cfg.sensitive)
    hidden = parse_sensitive(cfg.audit_only, option="--audit-only") if cfg.audit_only else []
    counts = {
        c: {
            str(k): int(v)
            for k, v in prepared.frame[c].astype("string").fillna(MISSING).value_counts().items()
        }
        for c in columns
    }
    return {"sensitive": {"columns": columns, "audit_only": hidden, "rows": counts}}


def fairness_thresholds(prepared, rows: np.ndarray, outputs: np.ndarray) -> dict | None:
    """The thresholds for ``--fairness``, chosen on the held-out ``rows`` (positions in
    ``prepared.frame``) whose calibrated outputs are ``outputs``; None without it."""
    cfg, task = prepared.cfg, prepared.task
    if not cfg.fairness:
        return None
    columns = parse_sensitive(cfg.sensitive)
    frame = prepared.frame.iloc[rows]
    groups = group_labels({c: frame[c] for c in columns})
    scores = task.probabilities(outputs)[:, 1]  # the second class is the positive one
    truth = prepared.encoded[rows]
    options = {"constraint": cfg.fairness, "min_group_size": cfg.min_group_size}
    chosen = choose_thresholds(scores, truth, groups, strength=cfg.fairness_strength, **options)
    plain = (scores >= 0.5).astype(int)
    scored = list(chosen["thresholds"])
    before = {
        "accuracy": float((plain == truth).mean()),
        "disparity": disparity(cfg.fairness, truth, plain, groups, scored),
    }
    return {
        "columns": columns,
        **chosen,
        "positive": str(prepared.target_encoder.labels()[1]),
        "plain": before,
        "tradeoff": tradeoff(scores, truth, groups, **options),
    }


def fairness_metrics(fairness: dict | None) -> tuple[dict, dict[str, bytes]]:
    """metrics.json's ``fairness`` entry and the trade-off figure (empty without it)."""
    if fairness is None:
        return {}, {}
    from deepstrata.report.plots import tradeoff_png

    keys = ("method", "columns", "constraint", "strength", "plain", "held_out", "tradeoff")
    entry = {k: fairness[k] for k in keys if k in fairness}
    return {"fairness": entry}, {TRADEOFF_PNG: tradeoff_png(fairness["tradeoff"], fairness)}


REWEIGH_STRENGTHS = (0.0, 0.5, 1.0)  # exponents of the weights; the model uses the last


def reweigh_weights(prepared, rows: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Kamiran & Calders (2012) reweighing: row weight ``P(group) P(label) / P(group,
    label)`` over ``rows`` (positions in ``prepared.frame``), so that label and group are
    independent in the weighted rows; raised to ``strength`` (0: equal weights), mean 1."""
    frame = prepared.frame.iloc[rows]
    groups = group_labels({c: frame[c] for c in parse_sensitive(prepared.cfg.sensitive)})
    labels = prepared.encoded[rows]
    weights = np.ones(len(rows))
    for group in np.unique(groups):
        in_group = groups == group
        for label in np.unique(labels):
            cell = in_group & (labels == label)
            if cell.any():
                weights[cell] = in_group.mean() * (labels == label).mean() / cell.mean()
    weights = weights**strength
    return weights / weights.mean()


def reweighed(prepared, train_rows: np.ndarray, val_rows: np.ndarray, train) -> tuple:
    """``fit --fairness-method reweigh``: ``train(weights)`` (one network, a Trained) for
    each strength in :data:`REWEIGH_STRENGTHS`, each scored on ``val_rows``. Returns the
    last (full reweighing: the model) and the metrics' fairness entry with the trade-off."""
    cfg, task = prepared.cfg, prepared.task
    frame = prepared.frame.iloc[val_rows]
    groups = group_labels({c: frame[c] for c in parse_sensitive(cfg.sensitive)})
    truth = prepared.encoded[val_rows]
    sizes = {g: int((groups == g).sum()) for g in np.unique(groups)}
    scored = [g for g, n in sizes.items() if n >= cfg.min_group_size]
    rows, trained = [], None
    for strength in REWEIGH_STRENGTHS:
        trained = train(reweigh_weights(prepared, train_rows, strength))
        said = task.point_predictions(trained.raw_outputs)
        rows.append(
            {
                "strength": strength,
                "accuracy": float((said == truth).mean()),
                "disparity": disparity(cfg.fairness, truth, said, groups, scored),
                "rows": len(val_rows),
            }
        )
    entry = {
        "method": "reweigh",
        "constraint": cfg.fairness,
        "columns": parse_sensitive(cfg.sensitive),
        "strength": REWEIGH_STRENGTHS[-1],
        "plain": {k: rows[0][k] for k in ("accuracy", "disparity")},
        "held_out": rows[-1],
        "tradeoff": rows,
    }
    return trained, entry

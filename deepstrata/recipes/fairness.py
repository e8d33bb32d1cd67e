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

    entry = {k: fairness[k] for k in ("constraint", "strength", "plain", "held_out", "tradeoff")}
    return {"fairness": entry}, {TRADEOFF_PNG: tradeoff_png(fairness["tradeoff"], fairness)}

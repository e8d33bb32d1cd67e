"""Likely label errors by confident learning (Northcutt et al. 2021), through cleanlab.

Each row's class probabilities come from a network that never saw the row: ``fit
--folds K`` trains K networks, each on the other folds (:func:`out_of_fold`). cleanlab
then estimates the joint distribution of given and true labels from them and flags the
rows whose given label is most likely wrong (:func:`label_issues`): per row, the label
given, the label suggested (the most probable) and a quality score (the probability of
the given label; low is suspicious), worst first.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pandas as pd

from deepstrata.config import FitConfig
from deepstrata.errors import ConfigError

OOF = "oof_predictions.csv"  # what a fit with --folds leaves: every row's held-out outputs


def check_for_labels(table, cfg: FitConfig) -> None:
    """ConfigError before any work: no folds, too few, or a task without one class a row."""
    from deepstrata import tasks
    from deepstrata.recipes.prepare import schema_for

    if not cfg.folds:
        raise ConfigError(
            "label errors are estimated from out-of-fold probabilities: pass --folds K (e.g. 5)",
            option="--folds",
        )
    schema = schema_for(table, cfg)
    if not tasks.get(schema.task).stratify:
        raise ConfigError(
            f"label errors are for classifiers of one class per row; {cfg.target!r} is a "
            f"{schema.task} target",
            option="--target",
        )


def out_of_fold(table, cfg: FitConfig, *, progress=False):
    """``(model, rows, labels, probabilities)``: the K fold networks' model, the 0-based
    positions of the labelled rows in ``table``, their encoded labels ``(N,)`` and
    out-of-fold probabilities ``(N, K)`` in ``model.classes`` order."""
    from deepstrata.recipes.run import run_fit

    settings = copy.deepcopy(cfg)
    settings.cv_model = "ensemble"  # no refit on all rows: only the held-out outputs count
    model = run_fit(table, settings, progress=progress)
    oof = pd.read_csv(io.BytesIO(model.artifacts[OOF]))
    rows = oof["row"].to_numpy() - 1
    labels = model.target_encoder.encode(table.frame[cfg.target].iloc[rows], table)
    probabilities = oof[[f"proba_{c}" for c in model.classes]].to_numpy(dtype=float)
    return model, rows, labels, probabilities


def label_issues(
    labels: np.ndarray,
    probabilities: np.ndarray,
    *,
    classes: list,
    rows: np.ndarray,
    filter_by: str = "prune_by_noise_rate",
) -> pd.DataFrame:
    """The rows cleanlab flags, worst first: ``row`` (1-based), ``given``, ``suggested``,
    ``quality`` (the given label's probability after cleanlab's adjustment for class
    thresholds; low is suspicious).

    ``labels``: ``(N,)`` class indices; ``probabilities``: ``(N, K)`` out-of-fold;
    ``filter_by``: cleanlab's rule. The default takes, per pair of given and likely true
    class, as many rows as the pair's estimated share of errors, by margin;
    ``"low_self_confidence"`` takes as many rows as cleanlab estimates are wrong in all,
    those whose given label is least probable."""
    from deepstrata.audit.requirements import cleanlab_filter

    found = cleanlab_filter().find_label_issues(
        labels,
        probabilities,
        filter_by=filter_by,
        return_indices_ranked_by="self_confidence",
        n_jobs=1,  # no process pool: the rows are few and the machine may be busy
    )
    return issue_rows(labels, probabilities, found, classes=classes, rows=rows)


def issue_rows(
    labels: np.ndarray, probabilities: np.ndarray, found, *, classes: list, rows: np.ndarray
) -> pd.DataFrame:
    """:func:`label_issues`' table for the rows at positions ``found`` (in ``labels``),
    worst first (the given label's probability, lowest first)."""
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(labels, probabilities)
    found = np.asarray(found, dtype=np.int64)
    found = found[np.argsort(quality[found], kind="stable")]
    names = np.asarray([str(c) for c in classes], dtype=object)
    return pd.DataFrame(
        {
            "row": np.asarray(rows)[found] + 1,
            "given": names[labels[found]],
            "suggested": names[probabilities[found].argmax(axis=1)],
            "quality": quality[found],
        }
    )

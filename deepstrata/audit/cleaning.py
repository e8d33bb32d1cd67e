"""``fit --drop-label-issues`` (``--relabel-issues``): find the likely label errors from
out-of-fold probabilities (:mod:`deepstrata.audit.labels`), then train again without
those rows (with the suggested labels instead of the given ones).

Before and after are scored on the same rows: the rows kept, each held out once by the
folds of the first fit (with the given labels, errors among them) and by those of the
second. (The first score flatters: the rows kept are those its folds mostly agreed with;
the fair test of the cleaning is on rows whose labels are known to be right, as
``tests/audit/test_cleaning.py`` does.) metrics.json gains ``label_issues`` (rows found and dropped, both scores) and the
bundle ``label_issues.csv`` (every row dropped, its label and the suggested one).
"""

from __future__ import annotations

import copy

import numpy as np

from deepstrata.config import FitConfig

ISSUES_CSV = "label_issues.csv"


def fit_without_label_issues(data, cfg: FitConfig, *, progress=True, **run):
    """The model trained on ``data`` less its likely label errors (see the module doc);
    ``run``: the rest of :func:`deepstrata.recipes.run.run_fit`'s arguments."""
    from deepstrata.audit.labels import check_for_labels, label_issues, out_of_fold
    from deepstrata.audit.requirements import cleanlab_filter
    from deepstrata.data.folders import default_target
    from deepstrata.data.sources import read_table
    from deepstrata.evaluate.metrics import classification_metrics
    from deepstrata.recipes.run import run_fit

    cleanlab_filter()  # a missing package fails before any work
    table = read_table(data)
    cfg = copy.deepcopy(cfg)
    cfg.target = cfg.target or default_target(table)
    check_for_labels(table, cfg)
    first, rows, labels, probabilities = out_of_fold(table, cfg, progress=progress)
    issues = label_issues(labels, probabilities, classes=first.classes, rows=rows)
    dropped = set(issues["row"] - 1)
    keep = np.array([row not in dropped for row in rows])
    if cfg.relabel_issues:  # every row stays; the flagged ones take the suggested class
        frame = table.frame.copy()
        value = {str(c): c for c in first.classes}
        frame[cfg.target] = frame[cfg.target].astype(object)
        frame.loc[issues["row"] - 1, cfg.target] = [value[s] for s in issues["suggested"]]
    else:
        frame = table.frame.drop(index=sorted(dropped)).reset_index(drop=True)
    model = run_fit(frame, cfg, progress=progress, **run)
    done = "relabelled_rows" if cfg.relabel_issues else "dropped_rows"
    model.metrics["label_issues"] = {
        "found": len(issues),
        "rows_checked": len(rows),
        done: [int(r) for r in issues["row"]],
        "compared_on": f"the {int(keep.sum())} rows kept, out of fold both times",
        "before": classification_metrics(labels[keep], probabilities[keep]),
        "after": model.metrics["validation"],
    }
    model.artifacts[ISSUES_CSV] = issues.to_csv(index=False).encode()
    return model

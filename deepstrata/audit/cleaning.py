"""``fit --drop-label-issues`` (``--relabel-issues``): find the likely label errors from
out-of-fold probabilities (:mod:`deepstrata.audit.labels`), then train again without
those rows (with the suggested labels instead of the given ones).

Before and after are scored on the same rows: the rows kept, each held out once by the
folds of the first fit (with the given labels, errors among them) and by those of the
second. (The first score flatters: the rows kept are those its folds mostly agreed with;
the fair test of the cleaning is on rows whose labels are known to be right, as
``tests/audit/test_cleaning.py`` does.) metrics.json gains ``label_issues`` (rows found
and dropped, both scores) and the bundle ``label_issues.csv`` (every row dropped, its
label and the suggested one; for a folder, the row's file).

The search runs twice (:data:`ROUNDS`): K networks trained without the rows the first
round found score the rows kept, and what they flag joins the list. The first round's
networks learnt the flipped labels in part; the second's are cleaner and find flips the
first agreed with. They also give a second opinion on the first round's rows, none of
which they trained on: a row whose given label they find most probable goes back
(``restored`` in metrics.json): the hard but right rows (an odd hand's 7). On digits (64
pixel columns, 1,347 training rows, 5 folds, 12 runs each) 87 rows were given back at
10 % flipped, all right, and 109 at 20 %, 3 of them flipped: precision 0.87 -> 0.91 and
0.91 -> 0.94 at the same recall (0.93). (``tests/audit/test_cleaning.py`` has the test
accuracies.)
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from deepstrata.config import FitConfig

ISSUES_CSV = "label_issues.csv"
ROUNDS = 2  # searches: the second on the rows the first kept (see the module doc)


def fit_without_label_issues(data, cfg: FitConfig, *, progress=True, **run):
    """The model trained on ``data`` less its likely label errors (see the module doc);
    ``run``: the rest of :func:`deepstrata.recipes.run.run_fit`'s arguments."""
    from deepstrata.audit.dataset import input_columns, name_files
    from deepstrata.audit.labels import check_for_labels
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
    first, rows, labels, probabilities, issues, found = search(table, cfg, progress=progress)
    dropped = set(issues["row"] - 1)
    keep = np.array([row not in dropped for row in rows])
    if cfg.relabel_issues:  # every row stays; the flagged ones take the suggested class
        frame = table.frame.copy()
        value = {str(c): c for c in first.classes}
        frame[cfg.target] = frame[cfg.target].astype(object)
        frame.loc[issues["row"] - 1, cfg.target] = [value[s] for s in issues["suggested"]]
        cleaned = dataclasses.replace(table, frame=frame)
    else:
        cleaned = table.take(rows_kept(table, dropped))
    # a Table, not its frame: a folder's image and audio paths stay relative to the folder
    model = run_fit(cleaned, cfg, progress=progress, **run)
    done = "relabelled_rows" if cfg.relabel_issues else "dropped_rows"
    model.metrics["label_issues"] = {
        "found": len(issues),
        "found_per_round": found["per_round"],
        "restored": found["restored"],
        "rows_checked": len(rows),
        done: [int(r) for r in issues["row"]],
        "compared_on": f"the {int(keep.sum())} rows kept, out of fold both times",
        "before": classification_metrics(labels[keep], probabilities[keep]),
        "after": model.metrics["validation"],
    }
    name_files(issues, table, input_columns(table, cfg)[1])  # which file, for a folder
    model.artifacts[ISSUES_CSV] = issues.to_csv(index=False).encode()
    return model


def search(table, cfg: FitConfig, *, progress=False, rounds: int = ROUNDS):
    """``(first model, rows, labels, probabilities, issues, found)``: the first round's K
    networks and out-of-fold outputs (as :func:`deepstrata.audit.labels.out_of_fold`),
    the issues left after every round, ``row`` numbered in ``table``, and ``found``: the
    rows each round flagged and those the later rounds gave back (see the module doc)."""
    import pandas as pd

    from deepstrata.audit.labels import label_issues, out_of_fold

    first, rows, labels, probabilities = out_of_fold(table, cfg, progress=progress)
    issues = label_issues(labels, probabilities, classes=first.classes, rows=rows)
    found = {"per_round": [len(issues)], "restored": 0}
    for _ in range(rounds - 1):
        kept = rows_kept(table, issues["row"] - 1)
        if not len(kept):
            break
        model, more_rows, more_labels, more = out_of_fold(table.take(kept), cfg, progress=progress)
        agreed = second_opinion(model, table, issues)
        found["restored"] += int(agreed.sum())
        more_issues = label_issues(more_labels, more, classes=model.classes, rows=more_rows)
        more_issues["row"] = kept[more_issues["row"] - 1] + 1  # back to table's rows
        found["per_round"].append(len(more_issues))
        issues = pd.concat([issues[~agreed], more_issues], ignore_index=True)
    return first, rows, labels, probabilities, issues, found


def second_opinion(model, table, issues) -> np.ndarray:
    """Per row of ``issues``: True where ``model`` (K networks that trained on none of those
    rows) finds the given label most probable."""
    if issues.empty:
        return np.zeros(0, dtype=bool)
    names = np.asarray([str(c) for c in model.classes], dtype=object)
    predicted = names[model.predict_proba(table.take(issues["row"] - 1)).argmax(axis=1)]
    return predicted == issues["given"].to_numpy()


def rows_kept(table, dropped) -> np.ndarray:
    """The 0-based positions of ``table``'s rows not in ``dropped``, in order."""
    return np.setdiff1d(np.arange(len(table.frame)), np.fromiter(dropped, dtype=np.int64))

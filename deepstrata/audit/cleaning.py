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

The search runs twice (:data:`ROUNDS`). The first round's K networks learnt the flipped
labels in part, so the rows cleanlab flags from their outputs are suspects. K networks
trained without the suspects then judge every row, none of which they trained on: the
rows kept by their own folds' held-out outputs, the suspects by their average
(:func:`unseen_probabilities`). A suspect stays flagged unless they find its given label
the most probable; the rest are cleared (``cleared`` in metrics.json): hard but right
rows, an odd hand's 7. And of all the rows they flag as many as cleanlab estimates are
wrong from their probabilities, those whose given label is least probable
(``filter_by="low_self_confidence"``): flips the first round's networks had learnt.

On digits (64 pixel columns, 1,347 training rows, 5 folds, 4 outer folds x 3 seeds) the
first round's suspects were 0.868 flips and found 0.870 of them at 10 % flipped; after
the second round 0.909 and 0.968 (0.939 and 0.967 at 20 %). Each right row dropped and
each flip missed cost about a fifth of a test row there, and the test accuracy won back
went from 0.46 of what the noise cost (the second round searching only the rows kept, as
the first) to 0.68 (``tests/audit/test_cleaning.py``).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from deepstrata.config import FitConfig

ISSUES_CSV = "label_issues.csv"
ROUNDS = 2  # searches: the second by networks trained without the first one's suspects


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
        "cleared": found["cleared"],
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
    the rows flagged after the last round, ``row`` numbered in ``table``, and ``found``:
    the rows each round flagged and the first round's suspects cleared (see the module
    doc)."""
    from deepstrata.audit.labels import issue_rows, label_issues, out_of_fold

    first, rows, labels, probabilities = out_of_fold(table, cfg, progress=progress)
    issues = label_issues(labels, probabilities, classes=first.classes, rows=rows)
    found = {"per_round": [len(issues)]}
    suspects = set(issues["row"])
    position = {int(row): i for i, row in enumerate(rows)}
    for _ in range(rounds - 1):
        kept = rows_kept(table, issues["row"] - 1)
        if not len(kept):
            break
        judge, seen, _, held_out = out_of_fold(table.take(kept), cfg, progress=progress)
        judged = unseen_probabilities(judge, table, rows, kept[seen], held_out, first.classes)
        more = label_issues(
            labels, judged, classes=first.classes, rows=rows, filter_by="low_self_confidence"
        )
        found["per_round"].append(len(more))
        at = np.array([position[row - 1] for row in issues["row"]], dtype=np.int64)
        upheld = at[judged[at].argmax(axis=1) != labels[at]]  # the rest go back
        flagged = np.union1d(upheld, [position[row - 1] for row in more["row"]])
        issues = issue_rows(labels, judged, flagged, classes=first.classes, rows=rows)
    found["cleared"] = len(suspects - set(issues["row"]))
    return first, rows, labels, probabilities, issues, found


def unseen_probabilities(model, table, rows, seen, held_out, classes) -> np.ndarray:
    """``(len(rows), len(classes))``: for each of ``table``'s ``rows`` (0-based) the class
    probabilities of ``model``'s K networks, none trained on it: ``held_out[i]`` for the
    row ``seen[i]`` (out of fold), the K networks' average for the rows they never saw.
    ``held_out``'s columns are in ``model.classes`` order; the result's in ``classes``
    order (a class the model never saw has probability 0)."""
    names = [str(c) for c in model.classes]
    columns = [names.index(str(c)) if str(c) in names else -1 for c in classes]
    position = {int(row): i for i, row in enumerate(seen)}
    ordered = np.zeros((len(rows), len(names)))
    where = np.array([position.get(int(row), -1) for row in rows])
    ordered[where >= 0] = held_out[where[where >= 0]]
    unseen = np.asarray(rows)[where < 0]
    if len(unseen):
        ordered[where < 0] = model.predict_proba(table.take(unseen))
    padded = np.concatenate([ordered, np.zeros((len(rows), 1))], axis=1)
    return padded[:, columns]  # column -1: the zeros


def rows_kept(table, dropped) -> np.ndarray:
    """The 0-based positions of ``table``'s rows not in ``dropped``, in order."""
    return np.setdiff1d(np.arange(len(table.frame)), np.fromiter(dropped, dtype=np.int64))

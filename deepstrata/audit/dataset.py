"""``deepstrata audit-data``: a table's likely label errors, duplicates and leakage.

:func:`audit_data` checks its input first (the target, the folds, the test set's
columns), then looks for exact and near duplicates (cheap; a file column by the files' contents), the rows of a given test set
that are also in the training rows (leakage), and, with ``folds``, the likely label
errors (:mod:`deepstrata.audit.labels`: K networks' out-of-fold probabilities).
``audit_data.json`` holds the counts and the first examples; ``label_issues.csv``,
``duplicates.csv`` and ``leakage.csv`` list every row found.
"""

from __future__ import annotations

import io
import json

import pandas as pd

from deepstrata.audit.duplicates import DEFAULT_TOLERANCE, duplicates, leakage
from deepstrata.config import FitConfig
from deepstrata.errors import ConfigError

EXAMPLES = 20  # rows, groups or pairs shown in audit_data.json; the CSV files list all


def input_columns(table, cfg: FitConfig) -> tuple[list[str], list[str]]:
    """The columns a model would read (the schema's inputs), and those of file paths."""
    from deepstrata.recipes.prepare import schema_for

    schema = schema_for(table, cfg)
    from deepstrata.kinds import FILE_KINDS

    inputs = [f.name for f in schema.inputs]
    return inputs, [f.name for f in schema.inputs if f.kind in FILE_KINDS]


def with_contents(table, files: list[str]):
    """The table's frame with each file path replaced by the sha256 of the file's bytes, so
    that two copies of one image under two names are duplicates (unreadable: missing)."""
    import hashlib
    from pathlib import Path

    from deepstrata.data.files import base_folder

    if not files:
        return table.frame
    base, frame = base_folder(table), table.frame.copy()

    def digest(cell):
        if cell is None or (isinstance(cell, float) and cell != cell):
            return None
        path = Path(str(cell))
        path = path if path.is_absolute() else base / path
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None

    for name in files:
        frame[name] = frame[name].map(digest)
    return frame


def check_test(test, columns: list[str]) -> None:
    missing = [c for c in columns if c not in test.frame.columns]
    if missing:
        raise test.error(
            f"the test set lacks input column(s) {', '.join(map(repr, missing))}",
            column=missing[0],
            hint="--test needs the training table's columns",
        )


def audit_data(
    data,
    cfg: FitConfig,
    *,
    test=None,
    labels: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    progress=False,
) -> tuple[dict, dict[str, bytes]]:
    """``(audit_data.json's content, the CSV files by name)`` for the table ``data``
    (``cfg.target`` its target; ``cfg.folds`` for label errors) and a ``test`` table."""
    from deepstrata.audit.labels import check_for_labels, label_issues, out_of_fold
    from deepstrata.data.sources import read_table

    if cfg.target is None:
        raise ConfigError("name the target column", option="--target")
    if tolerance < 0:
        raise ConfigError(f"must be >= 0, got {tolerance}", option="--near-tolerance")
    table = read_table(data)
    columns, file_columns = input_columns(table, cfg)
    if labels:
        from deepstrata.audit.requirements import cleanlab_filter

        cleanlab_filter()  # a missing package fails before any work
        check_for_labels(table, cfg)
    test_table = read_table(test) if test is not None else None
    if test_table is not None:
        check_test(test_table, columns)
    frame = with_contents(table, file_columns)  # files compared by content, not by name
    found = duplicates(frame, columns, target=cfg.target, tolerance=tolerance)
    result = {"data": table.source, "rows": len(table.frame), "target": cfg.target}
    result["inputs"] = columns
    result["duplicates"] = found
    files = {"duplicates.csv": _duplicates_csv(found)}
    if test_table is not None:
        test_frame = with_contents(test_table, file_columns)
        leaked = leakage(frame, test_frame, columns, tolerance=tolerance)
        result["leakage"] = {"test": test_table.source, **leaked}
        files["leakage.csv"] = _leakage_csv(leaked)
    if labels:
        model, rows, given, probabilities = out_of_fold(table, cfg, progress=progress)
        issues = label_issues(given, probabilities, classes=model.classes, rows=rows)
        for name in file_columns:  # a folder's rows are files: say which file each is
            issues.insert(1, name, table.frame[name].iloc[issues["row"] - 1].to_numpy())
        result["label_issues"] = {
            "folds": cfg.folds,
            "rows_checked": len(rows),
            "found": len(issues),
            "share": len(issues) / max(len(rows), 1),
            "out_of_fold": model.metrics["validation"],
            "worst": issues.head(EXAMPLES).to_dict(orient="records"),
        }
        files["label_issues.csv"] = _csv(issues)
    return _shortened(result), files


def _csv(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _duplicates_csv(found: dict) -> bytes:
    lines = [
        {"kind": "exact", "group": number, "row": row}
        for number, group in enumerate(found["exact"]["groups"], start=1)
        for row in group["rows"]
    ]
    lines += [
        {"kind": "near", "group": number, "row": row, "distance": pair["distance"]}
        for number, pair in enumerate(found["near"]["pairs"], start=1)
        for row in pair["rows"]
    ]
    return _csv(pd.DataFrame(lines, columns=["kind", "group", "row", "distance"]))


def _leakage_csv(leaked: dict) -> bytes:
    lines = [{"kind": "exact", "test_row": row} for row in leaked["exact"]["test_rows"]]
    lines += [{"kind": "near", **pair} for pair in leaked["near"]["pairs"]]
    return _csv(pd.DataFrame(lines, columns=["kind", "test_row", "train_row", "distance"]))


def _shortened(result: dict) -> dict:
    """The JSON's lists cut to their first examples (the CSV files hold every row)."""
    result = json.loads(json.dumps(result, default=float))
    result["duplicates"]["exact"]["groups"] = result["duplicates"]["exact"]["groups"][:EXAMPLES]
    result["duplicates"]["near"]["pairs"] = result["duplicates"]["near"]["pairs"][:EXAMPLES]
    if "leakage" in result:
        leak = result["leakage"]
        leak["exact"]["test_rows"] = leak["exact"]["test_rows"][:EXAMPLES]
        leak["near"]["pairs"] = leak["near"]["pairs"][:EXAMPLES]
    return result

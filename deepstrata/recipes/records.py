"""What a fit leaves for its report: the validation rows' predictions and a data summary.

``validation_predictions.csv`` (``report.PREDICTIONS``): one line per held-out row (every
row, out of fold, with ``--folds``): ``_row`` (the row's number as deepstrata's errors
count rows), ``_target``, ``_prediction``, one ``_proba:<class>`` column per class
(calibrated), then the model's input columns as they were read (image and audio paths
made absolute, so the report can show thumbnails while the files exist).

``data_summary.json`` (``report.SUMMARY``): the source, its rows, the split, per column
its kind, role, missing and distinct values, and the target's class counts (or its
mean, spread and range for regression).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from deepstrata.data.files import base_folder
from deepstrata.kinds import KINDS

TEXT_CHARACTERS = 500  # a text cell is cut to this many characters


def prediction_records(prepared, model, rows: np.ndarray, outputs: np.ndarray) -> bytes:
    """The CSV of held-out rows ``rows`` (positions in ``prepared.frame``) and their
    calibrated ``outputs``."""
    frame = prepared.frame.iloc[rows]
    columns: dict[str, np.ndarray] = {
        "_row": frame.index.to_numpy() + 1,
        # As the model names the classes (True -> "true", 1.0 -> 1), so that the
        # report can line the target up with the _proba:<class> columns.
        "_target": _cells(prepared, prepared.target_encoder.decode(prepared.encoded[rows])),
        "_prediction": model.prediction_cells(outputs, model.groups_of(frame)),
    }
    if prepared.task.classifier:
        probabilities = model.probabilities_of(outputs)
        for index, label in enumerate(model.classes):
            columns[f"_proba:{label}"] = probabilities[:, index]
    base = base_folder(prepared.table).resolve()
    for feature in prepared.schema.inputs:
        values = frame[feature.name]
        if KINDS[feature.kind].files:
            values = values.map(lambda cell: _absolute(cell, base))
        elif KINDS[feature.kind].show == "text":
            values = values.map(
                lambda cell: cell[:TEXT_CHARACTERS] if isinstance(cell, str) else cell
            )
        columns[feature.name] = values.to_numpy()
    for name in _audit_only(prepared):  # not inputs, but the report's Groups section reads them
        columns[name] = frame[name].to_numpy()
    # One frame from every column at once: column by column, a table of thousands of
    # columns would be copied as many times (pandas warns that it is "highly fragmented").
    records = pd.DataFrame(columns)
    buffer = io.StringIO()
    records.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _audit_only(prepared) -> list[str]:
    from deepstrata.options.audit import parse_sensitive

    hidden = prepared.cfg.audit_only
    return parse_sensitive(hidden, option="--audit-only") if hidden else []


def _cells(prepared, decoded: np.ndarray) -> np.ndarray:
    """Target values as one cell each: a multilabel row's labels joined by ``|``."""
    if prepared.task.prediction != "labels":
        return decoded
    return np.array(["|".join(map(str, labels)) for labels in decoded], dtype=object)


def _absolute(cell, base: Path) -> object:
    if not isinstance(cell, str) or not cell:
        return cell
    path = Path(cell)
    return str(path if path.is_absolute() else base / path)


def data_summary(prepared, split: dict[str, int]) -> bytes:
    """``data_summary.json``: what the data looked like, for the report."""
    schema, frame, target = prepared.schema, prepared.frame, prepared.cfg.target
    columns = [
        {
            "name": feature.name,
            "kind": feature.kind,
            "role": feature.role,
            "missing": int(feature.missing),
            "distinct": int(feature.unique),
        }
        for feature in schema.features
    ]
    about: dict = {"name": target, "task": schema.task}
    if prepared.task.prediction == "labels":  # rows holding each label
        counts = prepared.encoded.sum(axis=0).astype(int)
        labels = prepared.target_encoder.labels()
        about["classes"] = {str(label): int(n) for label, n in zip(labels, counts)}
        about["counted"] = "rows holding each label"
    elif not prepared.task.classifier:
        values = prepared.target_encoder.decode(prepared.encoded.astype(np.float64))
        about["summary"] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values)),
            "min": float(np.min(values)),
            "max": float(np.max(values)),
        }
    else:
        codes, counts = np.unique(prepared.encoded, return_counts=True)
        labels = prepared.target_encoder.labels()
        about["classes"] = {str(labels[c]): int(n) for c, n in zip(codes, counts)}
    summary = {
        "source": prepared.table.source,
        "rows": len(prepared.table.frame),
        "labelled": len(frame),
        "split": {name: int(count) for name, count in split.items()},
        "columns": columns,
        "target": about,
    }
    return (json.dumps(summary, indent=2) + "\n").encode()

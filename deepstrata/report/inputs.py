"""A bundle's files as the report reads them: parsed, with what is optional left empty.

The report is a view over these files only (config.json, metrics.json,
validation_predictions.csv, data_summary.json, compare.json, explain.json, metrics.jsonl),
so a bundle
on disk can be drawn again without the model, and a bundle from an older release too.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deepstrata.errors import BundleError

REPORT = "report.html"
PREDICTIONS = "validation_predictions.csv"
SUMMARY = "data_summary.json"
COMPARE = "compare.json"
EXPLAIN = "explain.json"  # `deepstrata explain --into-bundle`: global importance, faithfulness
METRIC_NAMES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "f1_macro": "F1 (macro)",
    "f1_micro": "F1 (micro)",
    "hamming_loss": "Hamming loss",
    "subset_accuracy": "subset accuracy",
    "roc_auc": "ROC AUC",
    "log_loss": "log loss",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
    "pr_auc": "PR AUC",
    "recall_at_precision_90": "recall at precision 0.9",
    "threshold": "decision threshold",
    "tp": "true positives",
    "fp": "false positives",
    "fn": "missed positives",
    "tn": "true negatives",
}


@dataclass
class Inputs:
    """The bundle's files, parsed; absent optional files are None or empty."""

    config: dict
    metrics: dict
    files: Mapping[str, bytes]
    summary: dict | None = None
    compare: dict | None = None
    explain: dict | None = None
    predictions: Any = None  # pandas.DataFrame of validation_predictions.csv, all text
    epochs: list[dict] = field(default_factory=list)

    @property
    def task(self) -> str:
        return str(self.config.get("schema", {}).get("task") or "unknown")

    @property
    def target(self) -> str:
        return str(self.config.get("schema", {}).get("target") or "?")

    @property
    def prediction(self) -> str:
        """What one prediction is for the bundle's task (see :mod:`deepstrata.tasks`):
        ``class``, ``labels`` or ``value``; ``unknown`` for a task this release lacks."""
        from deepstrata import tasks

        return tasks.get(self.task).prediction if self.task in tasks.TASKS else "unknown"

    @property
    def classifier(self) -> bool:
        """One class per row (the class sections: confusion matrix, curves, calibration)."""
        return self.prediction == "class"

    def inputs(self) -> list[dict]:
        features = self.config.get("schema", {}).get("features", [])
        return [f for f in features if f.get("role") == "input"]


def _json(files: Mapping[str, bytes], name: str, required: bool = False) -> dict | None:
    if name not in files:
        if required:
            raise BundleError(f"{name} is missing: the report needs it")
        return None
    try:
        value = json.loads(files[name].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise BundleError(f"{name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise BundleError(f"{name} should hold a JSON object, not {type(value).__name__}")
    return value


def parse(files: Mapping[str, bytes]) -> Inputs:
    import pandas as pd

    inputs = Inputs(
        config=_json(files, "config.json", required=True),
        metrics=_json(files, "metrics.json") or {},
        files=files,
        summary=_json(files, SUMMARY),
        compare=_json(files, COMPARE),
        explain=_json(files, EXPLAIN),
    )
    inputs.epochs = list(inputs.metrics.get("history", {}).get("epochs") or [])
    if not inputs.epochs and "metrics.jsonl" in files:  # a K-fold ensemble logs every fold here
        lines = files["metrics.jsonl"].decode("utf-8", "replace").splitlines()
        try:
            inputs.epochs = [json.loads(line) for line in lines if line.strip()]
        except ValueError as error:
            raise BundleError(f"metrics.jsonl has a line that is not JSON: {error}") from None
    if PREDICTIONS in files:
        try:
            frame = pd.read_csv(io.BytesIO(files[PREDICTIONS]), dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError) as error:
            raise BundleError(f"{PREDICTIONS} is not a readable CSV: {error}") from None
        needed = {"_row", "_target", "_prediction"}
        if not needed <= set(frame.columns):
            missing = ", ".join(sorted(needed - set(frame.columns)))
            raise BundleError(f"{PREDICTIONS} lacks the column(s) {missing}")
        inputs.predictions = frame
    return inputs

"""A fitted model and its bundle: :class:`Model`, :func:`load`.

A Model is one or more *members* (:mod:`deepstrata.model.member`: a network, or a
pretrained extractor under a classical head) sharing one schema and one target
encoding. A plain ``fit`` gives one member; ``fit(folds=K, cv_model="ensemble")`` keeps
the K fold networks, ``--ensemble`` a network and a classical model; their calibrated
outputs are mixed by the task (:meth:`deepstrata.tasks.base.Task.combine`), with the
members' weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepstrata import tasks
from deepstrata.bundle import read_bundle, write_bundle
from deepstrata.bundle.format import FORMAT, NotAModel, upgrade, versions
from deepstrata.config import FitConfig
from deepstrata.data.folders import file_column, is_folder
from deepstrata.data.schema import Schema
from deepstrata.data.sources import read_table
from deepstrata.data.table import Table
from deepstrata.errors import BundleError, ConfigError
from deepstrata.model.member import Member, calibrated_values, member_from_bundle_entry
from deepstrata.model.network import Network
from deepstrata.model.reference import REFERENCE
from deepstrata.preprocess.base import Preprocessor
from deepstrata.preprocess.target import TargetEncoder
from deepstrata.report.render import REPORT, compare_beside, render_report

Data = str | Path | pd.DataFrame | Table | list  # a list: records, one dict per row
LABEL_JOIN = "|"  # a multilabel prediction in a table: "drama|comedy"

__all__ = ["Data", "Model", "combine", "load", "versions"]


class Model:
    """A fitted model with everything it needs to turn raw rows into predictions.

    Built by ``deepstrata.fit`` or :func:`load`; not meant to be constructed by hand.
    ``decision``: what turns probabilities into predictions beyond the argmax (the
    multilabel task's per-label thresholds), or None. ``fairness``: a binary classifier's
    thresholds per sensitive group (``fit --fairness``,
    :mod:`deepstrata.calibrate.thresholds`), applied wherever the rows' sensitive values
    are at hand (predict, predictions, serve), or None.
    """

    def __init__(
        self,
        *,
        schema: Schema,
        members: list,
        target_encoder: TargetEncoder,
        config: FitConfig,
        metrics: dict | None = None,
        artifacts: dict[str, bytes] | None = None,
        weights: list[float] | None = None,
        decision: dict | None = None,
        fairness: dict | None = None,
    ) -> None:
        self.schema = schema
        self.members = members
        if weights is not None and (
            len(weights) != len(members) or min(weights) < 0 or not np.isclose(sum(weights), 1)
        ):
            raise ValueError(f"member weights {weights} for {len(members)} members")
        # How the members' probabilities (regression: values) are mixed; None: equally.
        self.weights = None if weights is None else [float(w) for w in weights]
        for member in members:
            member.eval()
        self.target_encoder = target_encoder
        self.config = config
        self.metrics = metrics or {}
        self.artifacts = artifacts or {}  # extra bundle files: metrics.jsonl, lr_range.png, ...
        self.decision = decision
        # Group thresholds (fit --fairness): columns, thresholds by group, trade-off; or None.
        self.fairness = fairness

    @property
    def task(self) -> str:
        return self.schema.task

    @property
    def spec(self):
        """The task's code (:mod:`deepstrata.tasks`)."""
        return tasks.get(self.task)

    @property
    def classes(self) -> list:
        """Class (or label) names in the order of ``predict_proba``'s columns."""
        return self.target_encoder.labels()

    @property
    def network(self) -> Network:
        """The network of a single-network model (an ensemble has ``members``)."""
        member = self._single()
        if not isinstance(member, Member):
            raise TypeError(
                "this model has no network of its own: pretrained features under a "
                f"{member.head.name} head (see .members[0].extractor and .head)"
            )
        return member.network

    @property
    def preprocessors(self) -> dict[str, Preprocessor]:
        return self._single().preprocessors

    def _single(self):
        if len(self.members) != 1:
            raise TypeError(
                f"this model is an ensemble of {len(self.members)} members; see .members"
            )
        return self.members[0]

    # -- predictions -------------------------------------------------------------------------
    def _outputs(self, data: Data) -> tuple[Table | None, np.ndarray]:
        if isinstance(data, list):  # records: the path without pandas (one row is fast)
            return None, self.outputs_of_records(data)
        table = read_table(data)
        return table, self.outputs_of(table)

    def outputs_of_records(self, records: list[dict]) -> np.ndarray:
        """Calibrated outputs of rows given as dicts (``{"age": 31, ...}``; a key absent
        from a record is a missing value there). Same outputs as a table of the same rows."""
        names = [f.name for f in self.schema.inputs]
        if not all(isinstance(record, dict) for record in records):
            raise TypeError("records must be dicts of column -> value, one per row")
        present = {name for record in records for name in record}
        columns = {n: [record.get(n) for record in records] for n in names if n in present}
        return self.outputs_of_values(columns)

    def outputs_of_values(self, columns: dict[str, list]) -> np.ndarray:
        """Calibrated outputs of rows given as ``{column: [values]}``."""
        if len(self.members) == 1:
            return calibrated_values(self.members[0], columns)
        outputs = [calibrated_values(member, columns) for member in self.members]
        return combine(self.task, outputs, self.weights)

    def outputs_of(self, table: Table) -> np.ndarray:
        """Calibrated outputs of the whole model; an ensemble's are its members' mixed."""
        if len(self.members) == 1:
            return self.members[0].outputs(table)
        return combine(self.task, [m.outputs(table) for m in self.members], self.weights)

    def probabilities_of(self, outputs: np.ndarray) -> np.ndarray:
        return self.spec.probabilities(outputs)

    def predict(self, data: Data) -> np.ndarray:
        """One prediction per row of ``data`` (a DataFrame, a file, or a list of records:
        dicts of column -> value): a class label, a list of labels (multilabel) or a value."""
        table, outputs = self._outputs(data)
        return self.decode(outputs, self.groups_of(data if table is None else table.frame))

    def predict_proba(self, data: Data) -> np.ndarray:
        """``(rows, classes)`` calibrated probabilities, columns in the order of
        ``model.classes`` (multilabel: each label's own probability)."""
        if not self.spec.classifier:
            raise TypeError("predict_proba is for classifiers; this model does regression")
        _, outputs = self._outputs(data)
        return self.probabilities_of(outputs)

    def predictions(
        self, data: Data, *, proba: bool = False, keep: list[str] | tuple = ()
    ) -> pd.DataFrame:
        """A table of predictions: ``keep`` columns copied from ``data``, ``prediction``
        (multilabel: the labels joined by ``|``), and with ``proba`` one ``proba_<class>``
        column per class. For a folder of files the file's path comes first."""
        if proba and not self.spec.classifier:
            raise ConfigError("a regression model has no class probabilities", option="--proba")
        table, outputs = self._outputs(_as_table(data))
        if is_folder(table):  # a folder of files: say which file each row is
            named = file_column(table)
            keep = [named, *(name for name in keep if name != named)]
        for name in keep:
            if name not in table.frame.columns:
                raise table.error(f"column {name!r} to keep is not in the data", column=name)
        columns = {name: table.frame[name].to_numpy() for name in keep}
        columns["prediction"] = self.prediction_cells(outputs, self.groups_of(table.frame))
        if proba:
            probabilities = self.probabilities_of(outputs)
            for index, label in enumerate(self.classes):
                columns[f"proba_{label}"] = probabilities[:, index]
        return pd.DataFrame(columns)  # built at once: no fragmented frame for many classes

    def decode(self, outputs: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Calibrated outputs -> predictions as the target was written. With fairness
        thresholds, ``groups`` (:meth:`groups_of`) picks each row's; without them every row
        gets the plain threshold."""
        return self.target_encoder.decode(self.point_predictions(outputs, groups))

    def point_predictions(self, outputs: np.ndarray, groups: np.ndarray | None = None):
        """What :meth:`decode` decodes: class indices (label indicators, standardised
        values), after the fairness thresholds of each row's group when there are any."""
        point = self.spec.point_predictions(outputs, self.decision)
        if self.fairness is not None and groups is not None:
            from deepstrata.calibrate.thresholds import apply_thresholds

            point = apply_thresholds(self.fairness, self.probabilities_of(outputs)[:, 1], groups)
        return point

    _decode = decode  # the name callers used before

    def groups_of(self, rows: pd.DataFrame | list[dict] | dict[str, list]) -> np.ndarray | None:
        """Each row's sensitive group, for the fairness thresholds (None without them); rows
        as a DataFrame, records, or ``{column: values}``. A column absent from ``rows`` is a
        missing value: its group gets the plain threshold."""
        if self.fairness is None:
            return None
        from deepstrata.data.sensitive import group_labels

        if isinstance(rows, dict):
            count = len(next(iter(rows.values()), []))
            values = {c: rows.get(c, [None] * count) for c in self.fairness["columns"]}
        elif isinstance(rows, list):
            values = {c: [r.get(c) for r in rows] for c in self.fairness["columns"]}
        else:
            values = {
                c: rows[c] if c in rows.columns else [None] * len(rows)
                for c in self.fairness["columns"]
            }
        return group_labels(values)

    def prediction_cells(self, outputs: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Predictions as one table cell each (a multilabel row's labels joined by ``|``)."""
        decoded = self.decode(outputs, groups)
        if self.spec.prediction != "labels":
            return decoded
        return np.array([LABEL_JOIN.join(map(str, labels)) for labels in decoded], dtype=object)

    def evaluate(self, data: Data) -> dict[str, float]:
        """Metrics on rows that include the target column. With fairness thresholds the
        decision metrics (accuracy, balanced accuracy, F1) score the thresholded decisions,
        as predict makes them; the probability metrics score the probabilities."""
        table, outputs = self._outputs(_as_table(data))
        target = self.schema.target
        if target not in table.frame.columns:
            raise table.error(f"the target column {target!r} is needed to evaluate", column=target)
        encoded = self.target_encoder.encode(table.frame[target], table)
        result = self.metrics_of(outputs, encoded)
        if self.fairness is not None:  # the decisions the model makes: its group thresholds
            result.update(
                decision_metrics(
                    encoded, self.point_predictions(outputs, self.groups_of(table.frame))
                )
            )
        return result

    def metrics_of(self, outputs: np.ndarray, encoded: np.ndarray) -> dict[str, float]:
        return self.spec.metrics(encoded, outputs, self.target_encoder, self.decision)

    def explain(self, data: Data, *, method: str = "auto", **options):
        """Why each row got its prediction: an :class:`~deepstrata.explain.Explanation`
        (one attribution per row and raw input column, the base value, the method and its
        settings, its measured faithfulness; ``.global_importance()``).

        ``method``: ``auto`` (integrated gradients for networks, TreeSHAP for LightGBM
        members, else KernelSHAP), ``ig``, ``gradshap``, ``shap``, ``tree``, ``exact``,
        ``lime``, ``permutation`` or ``attention`` (rollout over a text column's tokens). ``options``: ``rows=(start,
        stop)``, ``target_class``, ``max_rows`` (1000), ``samples``, ``steps`` (50),
        ``seed``, ``faithfulness`` (True), ``compare`` (other methods to rank against),
        ``words`` (True: text columns' words by KernelSHAP), ``image_baseline``
        (``blurred``: each image's own Gaussian blur, the default; or ``mean``: one flat
        mean-colour image; integrated gradients refines a row's steps until its attributions
        sum to f(x) - f(baseline) within 0.5 %).
        Needs the ``explain`` extra (captum, shap, lime)."""
        from deepstrata.explain import explain

        return explain(self, _as_table(data), method=method, **options)

    # -- persistence ---------------------------------------------------------------------------
    def bundle_parts(self) -> tuple[dict, dict[str, torch.Tensor], dict[str, bytes]]:
        """(config.json, weights, extra files); weights are prefixed ``members.{i}.``."""
        entries, weights, files = [], {}, {}
        for index, member in enumerate(self.members):
            entry, tensors, extra = member.bundle_entry(index)
            entries.append(entry)
            weights.update((f"members.{index}.{name}", t) for name, t in tensors.items())
            files.update(extra)
        config = {
            "format": FORMAT,
            "schema": self.schema.to_dict(),
            "target": self.target_encoder.state(),
            "members": entries,
            **({"member_weights": self.weights} if self.weights is not None else {}),
            **({"decision": self.decision} if self.decision is not None else {}),
            **({"fairness": self.fairness} if self.fairness is not None else {}),
            "training": self.config.to_dict(),
            "versions": versions(),
        }
        return config, weights, files

    def bundle_config(self) -> dict:
        return self.bundle_parts()[0]

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the bundle directory (atomically), with its report.html. Returns its path.

        A ``compare.json`` that ``deepstrata compare`` left beside it (``runs/churn.compare/``
        for ``runs/churn``) goes in too: the report then shows the learning curves."""
        config, weights, files = self.bundle_parts()
        files = {**self.artifacts, **files}
        beside = compare_beside(path, self.schema.target)
        if beside is not None:
            files["compare.json"] = beside
        report = _report(config, self.metrics, files)
        if report is not None:
            files[REPORT] = report
        return write_bundle(
            path,
            config=config,
            weights=weights,
            metrics=self.metrics,
            versions=versions(),
            files=files,
            overwrite=overwrite,
        )

    def __repr__(self) -> str:
        inputs = ", ".join(f"{f.name}:{f.kind}" for f in self.schema.inputs)
        networks = f", members={len(self.members)}" if len(self.members) > 1 else ""
        return (
            f"Model(task={self.task!r}, target={self.schema.target!r}, inputs=[{inputs}]{networks})"
        )


def _report(config: dict, metrics: dict, files: dict[str, bytes]) -> bytes | None:
    """report.html for a bundle of these parts. A report that cannot be drawn does not cost
    the model: the bundle is written without it, with a warning saying how to retry."""
    import warnings

    from deepstrata.errors import DataWarning

    parts = {
        "config.json": json.dumps(config).encode(),
        "metrics.json": json.dumps(metrics, default=str).encode(),
        **files,
    }
    try:
        return render_report(parts).encode("utf-8")
    except Exception as error:  # the report is a view; the model is the point
        warnings.warn(
            f"report.html could not be drawn ({type(error).__name__}: {error}); the bundle "
            "is complete without it; `deepstrata report BUNDLE` tries again",
            DataWarning,
            stacklevel=3,
        )
        return None


def decision_metrics(labels: np.ndarray, said: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro F1 of decisions ``said`` (class indices)."""
    import warnings

    from sklearn import metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "accuracy": float(metrics.accuracy_score(labels, said)),
            "balanced_accuracy": float(metrics.balanced_accuracy_score(labels, said)),
            "f1_macro": float(
                metrics.f1_score(
                    labels, said, average="macro", labels=np.unique(labels), zero_division=0
                )
            ),
        }


def _as_table(data: Data) -> Data:
    """Records as a DataFrame, for the calls that need a table (row locations, columns)."""
    return pd.DataFrame(data) if isinstance(data, list) else data


def combine(task: str, outputs: list[np.ndarray], weights: list[float] | None) -> np.ndarray:
    """Members' calibrated outputs -> the ensemble's, as the task mixes them (regression:
    values averaged; classifiers: the logits of the averaged probabilities). ``weights``
    (summing to 1) or equal shares."""
    return tasks.get(task).combine(outputs, weights)


def load(path: str | Path) -> Model:
    """Load a bundle written by ``Model.save``; verifies every file's hash first.

    A bundle that was changed, is malformed, holds non-finite weights or whose config.json
    does not describe a model is refused with a :class:`BundleError`, one line.
    A member fit on pretrained features names its networks by package, version and
    sha256; installed weights that differ are refused (BundleError)."""
    config, weights, metrics = read_bundle(path)
    try:
        config, weights = upgrade(config, weights)
        members, used = [], 0
        for index, entry in enumerate(config["members"]):
            prefix = f"members.{index}."
            tensors = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
            members.append(member_from_bundle_entry(entry, tensors, Path(path)))
            used += len(tensors)
        model = Model(
            schema=Schema.from_dict(config["schema"]),
            members=members,
            target_encoder=TargetEncoder.from_state(config["target"]),
            config=FitConfig.from_dict(config["training"], source="config.json"),
            metrics=metrics,
            weights=config.get("member_weights"),
            decision=config.get("decision"),
            fairness=config.get("fairness"),
        )
    except NotAModel as error:  # a forecaster or a detector: say what reads it
        raise BundleError(str(error), path=str(path)) from None
    except (  # config.json is data: any shape may come, and each must end in one line
        AttributeError,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
        RuntimeError,
        ConfigError,
    ) as error:
        raise BundleError(
            f"config.json and weights do not describe a model: {error}", path=str(path)
        ) from error
    if used != len(weights):
        raise BundleError("weights.safetensors holds tensors no network uses", path=str(path))
    kept = Path(path) / REFERENCE  # the training rows' distributions (drift), hash verified
    if kept.is_file():
        model.artifacts[REFERENCE] = kept.read_bytes()
    return model

"""A fitted model and its bundle: :class:`Model`, :func:`load`.

A Model is one or more *members* (preprocessors + network + temperature) sharing
one schema and one target encoding. A plain ``fit`` gives one member;
``fit(folds=K, cv_model="ensemble")`` keeps the K fold networks, whose calibrated
probabilities are averaged (regression: outputs averaged).
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepstrata.bundle import read_bundle, write_bundle
from deepstrata.config import FitConfig
from deepstrata.data.folders import file_column, is_folder
from deepstrata.data.schema import Schema
from deepstrata.data.sources import Table, read_table
from deepstrata.errors import BundleError, ConfigError
from deepstrata.evaluate.metrics import classification_metrics, regression_metrics
from deepstrata.evaluate.report import REPORT, compare_beside, render_report
from deepstrata.heads import point_predictions, probabilities
from deepstrata.kinds import REGISTRY, transform_frame
from deepstrata.network import Network, build_network
from deepstrata.preprocess.base import Preprocessor
from deepstrata.preprocess.target import TargetEncoder
from deepstrata.train.batches import forward_in_chunks

Data = str | Path | pd.DataFrame | Table
BUNDLE_FORMAT = 2  # config.json layout; 1 had one network and no "members"


def versions() -> dict:
    import numpy
    import safetensors

    from deepstrata import __version__

    return {
        "deepstrata": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


@dataclass
class Member:
    """One network and the preprocessors fitted on its training rows."""

    preprocessors: dict[str, Preprocessor]
    network: Network
    architecture: dict
    temperature: float = 1.0  # classifiers: logits are divided by it (calibration)
    pretrained: list[dict] = field(default_factory=list)  # finetune: the networks it started from

    def raw_outputs(self, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        """Uncalibrated outputs for preprocessed ``inputs``."""
        return forward_in_chunks(self.network, inputs).numpy()

    def outputs(self, table: Table, task: str) -> np.ndarray:
        """Raw outputs; logits come calibrated."""
        outputs = self.raw_outputs(transform_frame(self.preprocessors, table.frame, table))
        if task != "regression" and self.temperature != 1.0:
            outputs = outputs / self.temperature
        return outputs

    def eval(self) -> Member:
        self.network.eval()
        return self

    def bundle_entry(self, index: int) -> tuple[dict, dict[str, torch.Tensor], dict[str, bytes]]:
        """(config.json entry, weights, extra files) of member ``index``."""
        entry = {
            "preprocessors": preprocessor_states(self.preprocessors),
            "architecture": self.architecture,
            "temperature": self.temperature,
        }
        if self.pretrained:
            entry["pretrained"] = self.pretrained
        return entry, dict(self.network.state_dict()), {}


class Model:
    """A fitted model with everything it needs to turn raw rows into predictions.

    Built by ``deepstrata.fit`` or :func:`load`; not meant to be constructed by hand.
    """

    def __init__(
        self,
        *,
        schema: Schema,
        members: list[Member],
        target_encoder: TargetEncoder,
        config: FitConfig,
        metrics: dict | None = None,
        artifacts: dict[str, bytes] | None = None,
        weights: list[float] | None = None,
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

    @property
    def task(self) -> str:
        return self.schema.task

    @property
    def classes(self) -> list:
        """Class labels in the order of ``predict_proba``'s columns (classification only)."""
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

    def _single(self) -> Member:
        if len(self.members) != 1:
            raise TypeError(
                f"this model is an ensemble of {len(self.members)} members; see .members"
            )
        return self.members[0]

    # -- predictions -------------------------------------------------------------------------
    def _outputs(self, data: Data) -> tuple[Table, np.ndarray]:
        table = read_table(data)
        return table, self.outputs_of(table)

    def outputs_of(self, table: Table) -> np.ndarray:
        """Raw outputs of the whole model; an ensemble's are the logits of its (weighted)
        mean probabilities."""
        if len(self.members) == 1:
            return self.members[0].outputs(table, self.task)
        return combine(self.task, [m.outputs(table, self.task) for m in self.members], self.weights)

    def probabilities_of(self, outputs: np.ndarray) -> np.ndarray:
        return probabilities(self.task, outputs)

    def predict(self, data: Data) -> np.ndarray:
        """Class labels or regression values, one per row of ``data`` (a DataFrame or a file)."""
        _, outputs = self._outputs(data)
        return self._decode(outputs)

    def predict_proba(self, data: Data) -> np.ndarray:
        """``(rows, classes)`` calibrated probabilities, columns in the order of ``model.classes``."""
        if self.task == "regression":
            raise TypeError("predict_proba is for classifiers; this model does regression")
        _, outputs = self._outputs(data)
        return self.probabilities_of(outputs)

    def predictions(
        self, data: Data, *, proba: bool = False, keep: list[str] | tuple = ()
    ) -> pd.DataFrame:
        """A table of predictions: ``keep`` columns copied from ``data``, ``prediction``,
        and with ``proba`` one ``proba_<class>`` column per class. For a folder of files
        the file's path comes first."""
        if proba and self.task == "regression":
            raise ConfigError("a regression model has no class probabilities", option="--proba")
        table, outputs = self._outputs(data)
        if is_folder(table):  # a folder of files: say which file each row is
            named = file_column(table)
            keep = [named, *(name for name in keep if name != named)]
        for name in keep:
            if name not in table.frame.columns:
                raise table.error(f"column {name!r} to keep is not in the data", column=name)
        frame = pd.DataFrame({name: table.frame[name] for name in keep})
        frame["prediction"] = self._decode(outputs)
        if proba:
            probabilities = self.probabilities_of(outputs)
            for index, label in enumerate(self.classes):
                frame[f"proba_{label}"] = probabilities[:, index]
        return frame

    def _decode(self, outputs: np.ndarray) -> np.ndarray:
        return self.target_encoder.decode(point_predictions(self.task, outputs))

    def evaluate(self, data: Data) -> dict[str, float]:
        """Metrics on rows that include the target column."""
        table, outputs = self._outputs(data)
        target = self.schema.target
        if target not in table.frame.columns:
            raise table.error(f"the target column {target!r} is needed to evaluate", column=target)
        encoded = self.target_encoder.encode(table.frame[target], table)
        return self.metrics_of(outputs, encoded)

    def metrics_of(self, outputs: np.ndarray, encoded: np.ndarray) -> dict[str, float]:
        if self.task == "regression":
            return regression_metrics(
                self.target_encoder.decode(encoded.astype(np.float64)), self._decode(outputs)
            )
        return classification_metrics(encoded, self.probabilities_of(outputs))

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
            "format": BUNDLE_FORMAT,
            "schema": self.schema.to_dict(),
            "target": self.target_encoder.state(),
            "members": entries,
            **({"member_weights": self.weights} if self.weights is not None else {}),
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


def combine(task: str, outputs: list[np.ndarray], weights: list[float] | None) -> np.ndarray:
    """Members' raw outputs -> the ensemble's: regression values averaged; otherwise the
    logits of the averaged probabilities. ``weights`` (summing to 1) or equal shares."""
    if task == "regression":
        return np.average(outputs, axis=0, weights=weights)
    mean = np.average([probabilities(task, out) for out in outputs], axis=0, weights=weights)
    mean = np.clip(mean, 1e-12, 1.0)  # (B, K)
    if task == "binary":
        return np.log(mean[:, 1]) - np.log(mean[:, 0])
    return np.log(mean)


def build_member(
    preprocessors: dict[str, Preprocessor], architecture: dict, temperature: float = 1.0
) -> Member:
    """The one place a member's network is built from its architecture (fit and load)."""
    network = build_network(
        preprocessors,
        task=architecture["task"],
        num_classes=architecture["num_classes"],
        hidden_dims=architecture["hidden_dims"],
        dropout=architecture["dropout"],
        options=architecture.get("options", {}),
    )
    return Member(preprocessors, network, architecture, temperature)


def preprocessor_states(preprocessors: dict[str, Preprocessor]) -> dict:
    return {name: {"kind": pre.kind, "state": pre.state()} for name, pre in preprocessors.items()}


def preprocessors_from_states(states: dict) -> dict[str, Preprocessor]:
    return {
        name: REGISTRY[spec["kind"]].preprocessor.from_state(spec["state"])
        for name, spec in states.items()
    }


def load(path: str | Path) -> Model:
    """Load a bundle written by ``Model.save``; verifies every file's hash first.

    A member fit on pretrained features names its networks by package, version and
    sha256; installed weights that differ are refused (BundleError)."""
    config, weights, metrics = read_bundle(path)
    try:
        if "members" not in config:  # format 1: one network, unprefixed weights
            config["members"] = [
                {
                    "preprocessors": config["preprocessors"],
                    "architecture": config["architecture"],
                }
            ]
            weights = {f"members.0.{name}": tensor for name, tensor in weights.items()}
        members, used = [], 0
        for index, entry in enumerate(config["members"]):
            prefix = f"members.{index}."
            tensors = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
            if entry.get("strategy") == "features":
                from deepstrata.features import FeatureMember

                member = FeatureMember.from_bundle_entry(entry, tensors, Path(path))
                used += len(tensors)
            else:
                member = build_member(
                    preprocessors_from_states(entry["preprocessors"]),
                    entry["architecture"],
                    float(entry.get("temperature", 1.0)),
                )
                member.pretrained = entry.get("pretrained", [])
                member.network.load_state_dict(tensors, strict=True)
                used += len(member.network.state_dict())
            members.append(member)
        model = Model(
            schema=Schema.from_dict(config["schema"]),
            members=members,
            target_encoder=TargetEncoder.from_state(config["target"]),
            config=FitConfig.from_dict(config["training"], source="config.json"),
            metrics=metrics,
            weights=config.get("member_weights"),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise BundleError(
            f"config.json and weights do not describe a model: {error}", path=str(path)
        ) from error
    if used != len(weights):
        raise BundleError("weights.safetensors holds tensors no network uses", path=str(path))
    return model

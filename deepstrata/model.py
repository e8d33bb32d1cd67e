"""A fitted model and its bundle: :class:`Model`, :func:`load`.

A Model is one or more *members* (preprocessors + network + temperature) sharing
one schema and one target encoding. A plain ``fit`` gives one member;
``fit(folds=K, cv_model="ensemble")`` keeps the K fold networks, whose calibrated
probabilities are averaged (regression: outputs averaged).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
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
from deepstrata.heads import point_predictions
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

    def outputs(self, table: Table, task: str) -> np.ndarray:
        """Raw outputs; logits come calibrated."""
        inputs = transform_frame(self.preprocessors, table.frame, table)
        outputs = forward_in_chunks(self.network, inputs).numpy()
        if task != "regression" and self.temperature != 1.0:
            outputs = outputs / self.temperature
        return outputs


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
    ) -> None:
        self.schema = schema
        self.members = members
        for member in members:
            member.network.eval()
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
        return self._single().network

    @property
    def preprocessors(self) -> dict[str, Preprocessor]:
        return self._single().preprocessors

    def _single(self) -> Member:
        if len(self.members) != 1:
            raise TypeError(
                f"this model is an ensemble of {len(self.members)} networks; see .members"
            )
        return self.members[0]

    # -- predictions -------------------------------------------------------------------------
    def _outputs(self, data: Data) -> tuple[Table, np.ndarray]:
        table = read_table(data)
        return table, self.outputs_of(table)

    def outputs_of(self, table: Table) -> np.ndarray:
        """Raw outputs of the whole model; an ensemble's are the logits of its mean probabilities."""
        if len(self.members) == 1:
            return self.members[0].outputs(table, self.task)
        each = [member.outputs(table, self.task) for member in self.members]
        if self.task == "regression":
            return np.mean(each, axis=0)
        head = self.members[0].network.head
        mean = np.mean([head.probabilities(out) for out in each], axis=0)  # (B, K)
        mean = np.clip(mean, 1e-12, 1.0)
        if self.task == "binary":
            return np.log(mean[:, 1]) - np.log(mean[:, 0])
        return np.log(mean)

    def probabilities_of(self, outputs: np.ndarray) -> np.ndarray:
        return self.members[0].network.head.probabilities(outputs)

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
    def bundle_config(self) -> dict:
        return {
            "format": BUNDLE_FORMAT,
            "schema": self.schema.to_dict(),
            "target": self.target_encoder.state(),
            "members": [
                {
                    "preprocessors": {
                        name: {"kind": pre.kind, "state": pre.state()}
                        for name, pre in member.preprocessors.items()
                    },
                    "architecture": member.architecture,
                    "temperature": member.temperature,
                }
                for member in self.members
            ],
            "training": self.config.to_dict(),
            "versions": versions(),
        }

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the bundle directory (atomically). Returns its path."""
        weights = {
            f"members.{index}.{name}": tensor
            for index, member in enumerate(self.members)
            for name, tensor in member.network.state_dict().items()
        }
        return write_bundle(
            path,
            config=self.bundle_config(),
            weights=weights,
            metrics=self.metrics,
            versions=versions(),
            files=self.artifacts,
            overwrite=overwrite,
        )

    def __repr__(self) -> str:
        inputs = ", ".join(f"{f.name}:{f.kind}" for f in self.schema.inputs)
        networks = f", networks={len(self.members)}" if len(self.members) > 1 else ""
        return (
            f"Model(task={self.task!r}, target={self.schema.target!r}, inputs=[{inputs}]{networks})"
        )


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


def load(path: str | Path) -> Model:
    """Load a bundle written by ``Model.save``; verifies every file's hash first."""
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
        members = []
        for index, entry in enumerate(config["members"]):
            preprocessors = {
                name: REGISTRY[spec["kind"]].preprocessor.from_state(spec["state"])
                for name, spec in entry["preprocessors"].items()
            }
            member = build_member(
                preprocessors, entry["architecture"], float(entry.get("temperature", 1.0))
            )
            prefix = f"members.{index}."
            member.network.load_state_dict(
                {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)},
                strict=True,
            )
            members.append(member)
        model = Model(
            schema=Schema.from_dict(config["schema"]),
            members=members,
            target_encoder=TargetEncoder.from_state(config["target"]),
            config=FitConfig.from_dict(config["training"], source="config.json"),
            metrics=metrics,
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise BundleError(
            f"config.json and weights do not describe a model: {error}", path=str(path)
        ) from error
    expected = sum(len(m.network.state_dict()) for m in members)
    if expected != len(weights):
        raise BundleError("weights.safetensors holds tensors no network uses", path=str(path))
    return model

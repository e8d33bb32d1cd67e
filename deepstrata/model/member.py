"""A model's members: a network, or a pretrained extractor under a classical head.

Both kinds of member keep the same surface: ``preprocessors`` (fitted on the member's
training rows), ``architecture`` (``task`` and what rebuilds the modules),
``temperature`` (classifiers: calibration), ``raw_outputs(inputs)`` on preprocessed
inputs, ``outputs(table)`` calibrated on a table, and ``bundle_entry(index)`` /
``from_bundle_entry`` for the bundle. How the temperature applies is the task's
(:meth:`deepstrata.tasks.base.Task.calibrated`), in one place: :func:`calibrated_outputs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deepstrata import tasks
from deepstrata.data.table import Table
from deepstrata.errors import BundleError, ConfigError
from deepstrata.kinds import KINDS
from deepstrata.model.extractor import FeatureExtractor, build_extractor
from deepstrata.model.network import Network, build_network
from deepstrata.preprocess.base import Preprocessor
from deepstrata.preprocess.frame import transform_frame, transform_values
from deepstrata.train.batches import forward_in_chunks

LIGHTGBM_KEY = "lightgbm_model"  # the gbm head's model text, kept as a file of its own


def calibrated_outputs(member, table: Table) -> np.ndarray:
    """A member's outputs for every row of ``table``: raw, then the temperature."""
    raw = member.raw_outputs(transform_frame(member.preprocessors, table.frame, table))
    return tasks.get(member.architecture["task"]).calibrated(raw, member.temperature)


def calibrated_values(member, columns: dict[str, list]) -> np.ndarray:
    """The same for a few rows given as ``{column: [values]}`` (records), without pandas
    where the kinds allow: the path single-row predictions and the server take."""
    raw = member.raw_outputs(transform_values(member.preprocessors, columns))
    return tasks.get(member.architecture["task"]).calibrated(raw, member.temperature)


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

    def outputs(self, table: Table, task: str | None = None) -> np.ndarray:
        """Outputs for every row of ``table``; logits come calibrated. (``task``: ignored,
        the member knows its own; accepted for callers of earlier releases.)"""
        return calibrated_outputs(self, table)

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

    @classmethod
    def from_bundle_entry(cls, entry: dict, tensors: dict, directory: Path) -> Member:
        member = build_member(
            preprocessors_from_states(entry["preprocessors"]),
            entry["architecture"],
            float(entry.get("temperature", 1.0)),
        )
        member.pretrained = entry.get("pretrained", [])
        member.network.load_state_dict(tensors, strict=True)
        return member


@dataclass
class FeatureMember:
    """A member under ``--strategy features``: preprocessors, the frozen extractor, a
    classical head (:mod:`deepstrata.classical`)."""

    preprocessors: dict[str, Preprocessor]
    extractor: FeatureExtractor
    head: object  # a deepstrata.classical head
    architecture: dict
    temperature: float = 1.0
    pretrained: list[dict] = field(default_factory=list)  # identities of the networks used

    def raw_outputs(self, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        features, _ = self.extractor.extract(inputs, cache=False)
        return self.head.outputs(features)

    def outputs(self, table: Table, task: str | None = None) -> np.ndarray:
        """Outputs for every row of ``table``; logits come calibrated. (``task``: ignored,
        the member knows its own; accepted for callers of earlier releases.)"""
        return calibrated_outputs(self, table)

    def eval(self) -> FeatureMember:
        self.extractor.eval()
        return self

    def bundle_entry(self, index: int) -> tuple[dict, dict[str, torch.Tensor], dict[str, bytes]]:
        """(config.json entry, weights, extra files). The pretrained weights stay in their
        packages (named, versioned, hashed); LightGBM's model goes in its own text file."""
        meta, arrays = self.head.state()
        files = {}
        if isinstance(meta.get(LIGHTGBM_KEY), str):
            name = f"member_{index}_lightgbm.txt"
            files[name] = meta[LIGHTGBM_KEY].encode("utf-8")
            meta = {**meta, LIGHTGBM_KEY: {"file": name}}
        entry = {
            "strategy": "features",
            "preprocessors": preprocessor_states(self.preprocessors),
            "architecture": self.architecture,
            "temperature": self.temperature,
            "pretrained": self.pretrained,
            "head": meta,
        }
        tensors = {
            f"head.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()
        }
        return entry, tensors, files

    @classmethod
    def from_bundle_entry(
        cls, entry: dict, tensors: dict[str, torch.Tensor], directory: Path
    ) -> FeatureMember:
        """Rebuild a member from its bundle entry; the installed pretrained weights must hash
        to what the bundle recorded (BundleError otherwise)."""
        from deepstrata.classical import head_from_state
        from deepstrata.pretrained.registry import get

        for recorded in entry["pretrained"]:
            try:
                get(recorded["name"]).check(recorded)
            except (ValueError, ConfigError) as error:
                raise BundleError(str(error), path=str(directory)) from None
        preprocessors = preprocessors_from_states(entry["preprocessors"])
        architecture = entry["architecture"]
        extractor = build_extractor(preprocessors, architecture["options"])
        meta = dict(entry["head"])
        if isinstance(meta.get(LIGHTGBM_KEY), dict):  # read from its file (hash verified)
            meta[LIGHTGBM_KEY] = (directory / meta[LIGHTGBM_KEY]["file"]).read_text("utf-8")
        arrays = {k.removeprefix("head."): v.numpy() for k, v in tensors.items()}
        head = head_from_state(meta, arrays)
        return cls(
            preprocessors,
            extractor,
            head,
            architecture,
            float(entry.get("temperature", 1.0)),
            entry["pretrained"],
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


def member_from_bundle_entry(entry: dict, tensors: dict, directory: Path):
    """A bundle's member entry back as a :class:`Member` or :class:`FeatureMember`."""
    kind = FeatureMember if entry.get("strategy") == "features" else Member
    return kind.from_bundle_entry(entry, tensors, directory)


def preprocessor_states(preprocessors: dict[str, Preprocessor]) -> dict:
    return {name: {"kind": pre.kind, "state": pre.state()} for name, pre in preprocessors.items()}


def preprocessors_from_states(states: dict) -> dict[str, Preprocessor]:
    return {
        name: KINDS[spec["kind"]].preprocessor.from_state(spec["state"])
        for name, spec in states.items()
    }

"""ONNX export of a bundle's networks, checked against PyTorch, and the ONNX backend.

``export_onnx(bundle)`` exports each member's network (an ensemble has several; a
classical member, as ``fit --ensemble`` or ``--strategy features`` make, stays in Python) with
``torch.onnx.export`` (the ``torch.export``-based exporter), one input per feature kind
(``number``, ``category``, ... as ``Network.forward`` takes them) and a dynamic batch
axis. Preprocessing stays in Python: the preprocessors are the bundle's own.

Where the files go: a directory **beside** the bundle, ``<bundle>-onnx/`` by default,
holding ``member-0.onnx``, ... and ``export.json``. The bundle itself is left as it
was written: its manifest is the record of the trained model and loading verifies it,
while an export is derived, can be made again, and depends on the exporter's
version. ``export.json`` records the sha256 of the bundle's weights it was made from
and of each ``.onnx`` file, so ``serve --backend onnx`` refuses an export of another
bundle, or a changed file. ``overwrite`` replaces only an earlier export (a folder
holding an ``export.json``), and only once the new one is written and checked.

The check: a few hundred rows synthesised from the preprocessors' own states (numbers
around their median, the training categories plus an unseen one, missing values of
every kind) go through both PyTorch and ONNX Runtime; every raw output (logit or
standardised value) must agree within ``ATOL + RTOL * |PyTorch|``, or the export fails
and nothing is written.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepstrata.bundle.manifest import MANIFEST, sha256_of
from deepstrata.data.sources import read_table
from deepstrata.errors import BundleError, ConfigError, DataWarning, DeepstrataError
from deepstrata.kinds import KINDS
from deepstrata.model.member import Member
from deepstrata.model.model import Model
from deepstrata.preprocess.base import Preprocessor
from deepstrata.preprocess.frame import transform_frame
from deepstrata.pretrained.runtime import onnx_export

ATOL = 1e-4  # on raw outputs: logits or standardised regression values
RTOL = 1e-4
CHECK_ROWS = 256
EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1


class ExportError(DeepstrataError):
    """An export that cannot be made or trusted: the exporter failed, or ONNX Runtime's
    outputs differ from PyTorch's beyond the tolerance."""


def default_export_path(bundle: Path) -> Path:
    """``runs/churn`` -> ``runs/churn-onnx``."""
    bundle = Path(bundle)
    return bundle.with_name(bundle.name + "-onnx")


class _KindInputs(nn.Module):
    """``Network`` with one positional tensor per kind (ONNX graphs take named tensors, not a
    dict)."""

    def __init__(self, network: nn.Module, kinds: list[str]) -> None:
        super().__init__()
        self.network = network
        self.kinds = kinds

    def forward(self, *blocks: torch.Tensor) -> torch.Tensor:
        return self.network(dict(zip(self.kinds, blocks)))


def synthetic_frame(
    preprocessors: dict[str, Preprocessor], rows: int, seed: int = 0
) -> pd.DataFrame:
    """``rows`` rows of raw values spread over what each preprocessor was fitted on, with
    missing values of every kind: each kind's own sample (:attr:`deepstrata.kinds.Kind.sample`)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {name: KINDS[pre.kind].sample(pre, rng, rows) for name, pre in preprocessors.items()}
    )


def _inputs(member: Member, rows: int, seed: int) -> dict[str, torch.Tensor]:
    frame = synthetic_frame(member.preprocessors, rows, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        inputs = transform_frame(member.preprocessors, frame, read_table(frame))
    generator = torch.Generator().manual_seed(seed)
    for kind, block in inputs.items():
        if block.dtype == torch.uint8:  # images: random pixels exercise the convolutions
            inputs[kind] = torch.randint(
                0, 256, block.shape, dtype=torch.uint8, generator=generator
            )
    return inputs


def network_members(model: Model) -> list[int]:
    """Indices of the members that are one network (an ensemble's classical member, or a
    ``--strategy features`` member, stays in Python); ConfigError when there is none."""
    indices = [index for index, member in enumerate(model.members) if isinstance(member, Member)]
    if not indices:
        head = getattr(getattr(model.members[0], "head", None), "name", "classical")
        raise ConfigError(
            "this model has no network to export: it was fit with --strategy features, a "
            f"pretrained extractor under a {head} head, which is not one network (ONNX "
            "exports networks); serve it with --backend torch, or fit with --strategy scratch "
            "or finetune",
            option="--format",
        )
    return indices


def export_onnx(
    bundle: str | Path,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    rows: int = CHECK_ROWS,
    report=lambda line: None,
) -> dict:
    """Export every network of ``bundle`` to ``output`` (default ``<bundle>-onnx``), checked
    against PyTorch on ``rows`` synthetic rows. Returns the ``export.json`` record."""
    import onnxruntime

    from deepstrata.bundle.write import atomic_directory
    from deepstrata.model.model import load

    bundle = Path(bundle)
    target = Path(output) if output is not None else default_export_path(bundle)
    _check_target(bundle, target, overwrite=overwrite)
    model = load(bundle)
    indices = network_members(model)
    with atomic_directory(target) as staging:
        entries = []
        for index in indices:
            member = model.members[index]
            name = f"member-{index}.onnx"
            kinds = _export_member(member, staging / name)
            worst = _check(member, staging / name, kinds, rows, onnxruntime)
            report(
                f"member {index}: ONNX Runtime matches PyTorch on {rows} rows, largest difference "
                f"{worst:.2e} (tolerance {ATOL:g} + {RTOL:g}·|value|)"
            )
            entries.append(
                {
                    "member": index,
                    "file": name,
                    "sha256": sha256_of(staging / name),
                    "inputs": kinds,
                    "max_abs_error": worst,
                }
            )
        record = {
            "format": EXPORT_FORMAT,
            "bundle_weights_sha256": _weights_sha256(bundle),
            "members": entries,
            "python_members": [i for i in range(len(model.members)) if i not in indices],
            "check": {"rows": rows, "atol": ATOL, "rtol": RTOL},
            "versions": {
                "torch": torch.__version__,
                "onnx": _version_of("onnx"),
                "onnxruntime": onnxruntime.__version__,
            },
        }
        (staging / EXPORT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _check_target(bundle, target, overwrite=overwrite)  # again: the export took a while
    return record


def _check_target(bundle: Path, target: Path, *, overwrite: bool) -> None:
    """ConfigError (``--output``) unless ``target`` may be written: never the bundle, inside
    it or a folder holding it, and with ``overwrite`` only an earlier export (a folder with
    an ``export.json``), never any other folder or file."""
    bundle_path, target_path = bundle.resolve(), target.resolve()
    if target_path == bundle_path or bundle_path in target_path.parents:
        raise ConfigError(
            "the export goes beside the bundle, not into it (its manifest lists every file)",
            option="--output",
        )
    if target_path in bundle_path.parents:
        raise ConfigError(
            f"{target} holds the bundle {bundle}; the export goes beside the bundle, in a "
            f"folder of its own (default {default_export_path(bundle)})",
            option="--output",
        )
    if not (target.exists() or target.is_symlink()):
        return
    if not overwrite:
        raise ConfigError(f"{target} already exists; pass --overwrite", option="--output")
    if target.is_symlink() or not target.is_dir() or not (target / EXPORT_FILE).is_file():
        raise ConfigError(
            f"{target} exists and is not an ONNX export (a folder with an {EXPORT_FILE}); "
            "--overwrite replaces only an earlier export: remove it yourself or choose another "
            "--output",
            option="--output",
        )


def _export_member(member: Member, path: Path) -> list[str]:
    inputs = _inputs(member, rows=4, seed=1)  # more than 1 row: the batch axis stays symbolic
    kinds = list(inputs)
    module = _KindInputs(member.network, kinds).eval()
    batch = torch.export.Dim("batch")
    try:
        onnx_export(
            module,
            tuple(inputs[kind] for kind in kinds),
            path,
            input_names=kinds,
            output_names=["output"],
            dynamic_shapes=(tuple({0: batch} for _ in kinds),),
        )
    except Exception as error:
        raise ExportError(
            f"torch.onnx.export could not export this network: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}"
        ) from error
    return kinds


def _check(member: Member, path: Path, kinds: list[str], rows: int, onnxruntime) -> float:
    inputs = _inputs(member, rows=rows, seed=2)
    expected = member.raw_outputs(inputs)  # PyTorch, eval mode
    session = _session(path, onnxruntime)
    actual = session.run(None, {kind: inputs[kind].numpy() for kind in kinds})[0]
    if actual.shape != expected.shape:
        raise ExportError(
            f"ONNX Runtime answered shape {actual.shape}, PyTorch {expected.shape}; nothing written"
        )
    difference = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    allowed = ATOL + RTOL * np.abs(expected.astype(np.float64))
    if not np.all(difference <= allowed):
        row = int(np.unravel_index(np.argmax(difference - allowed), difference.shape)[0])
        raise ExportError(
            f"ONNX Runtime's outputs differ from PyTorch's by up to {difference.max():.3g} "
            f"(row {row} of {rows} synthetic rows), above the tolerance {ATOL:g} + "
            f"{RTOL:g}·|value|; nothing written"
        )
    return float(difference.max()) if difference.size else 0.0


def _session(path: Path, onnxruntime):
    options = onnxruntime.SessionOptions()
    # Busy-waiting threads cost a shared CPU more than they save a single request.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = torch.get_num_threads()
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


class OnnxNetwork(nn.Module):
    """Stands in for a member's ``Network``: the same ``{kind: block} -> outputs`` call,
    answered by an ONNX Runtime session."""

    def __init__(self, session, kinds: list[str]) -> None:
        super().__init__()
        self.session = session
        self.kinds = kinds
        self.eval()

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {kind: inputs[kind].numpy() for kind in self.kinds}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def with_onnx_networks(model: Model, bundle: str | Path, export: str | Path | None = None) -> Model:
    """A copy of ``model`` whose members' networks are ONNX Runtime sessions of the export of
    ``bundle`` (default ``<bundle>-onnx``). Everything else (preprocessing, calibration,
    how members combine) is the model's own."""
    import onnxruntime

    bundle = Path(bundle)
    folder = Path(export) if export is not None else default_export_path(bundle)
    record_path = folder / EXPORT_FILE
    if not record_path.is_file():
        raise ConfigError(
            f"no ONNX export at {folder}; make one with: deepstrata export {bundle} --format onnx",
            option="--onnx",
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        entries = record["members"]
        made_from = record["bundle_weights_sha256"]
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"{EXPORT_FILE} is unreadable: {error}", path=str(folder)) from error
    if made_from != _weights_sha256(bundle):
        raise BundleError(
            f"this ONNX export was made from another bundle's weights; export {bundle} again",
            path=str(folder),
        )
    indices = network_members(model)
    if sorted(entry.get("member") for entry in entries) != indices:
        raise BundleError(
            f"the export has {len(entries)} networks, the bundle {len(indices)}", path=str(folder)
        )
    swapped = list(model.members)
    for entry in entries:
        member = model.members[entry["member"]]
        path = folder / Path(entry["file"]).name
        if not path.is_file() or sha256_of(path) != entry["sha256"]:
            raise BundleError(
                f"{path.name} is missing or has changed since it was exported", path=str(folder)
            )
        network = OnnxNetwork(_session(path, onnxruntime), list(entry["inputs"]))
        swapped[entry["member"]] = dataclasses.replace(member, network=network)
    clone = copy.copy(model)
    clone.members = swapped
    return clone


def _weights_sha256(bundle: Path) -> str:
    """The weights' sha256 as the bundle's manifest records it (verified when loading)."""
    try:
        manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
        return manifest["files"]["weights.safetensors"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BundleError(f"cannot read the manifest: {error}", path=str(bundle)) from error


def _version_of(package: str) -> str:
    from importlib.metadata import version

    return version(package)

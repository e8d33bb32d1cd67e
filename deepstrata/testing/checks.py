"""The checks behind :mod:`deepstrata.testing` (see there). Each raises AssertionError
naming the registry entry and what broke; each is quick (tiny data, a few modules)."""

from __future__ import annotations

import base64
import json
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepstrata.errors import DataWarning

ROWS = 12
# Small settings, so that every kind's encoder is quick to build, run and export.
SMALL = {
    "min_category_count": 1,
    "text_max_length": 6,
    "text_vocabulary": 50,
    "text_width": 16,
    "image_size": 8,
    "image_width": 4,
    "image_depth": 2,
    "audio_seconds": 0.25,
    "audio_mels": 16,
    "audio_width": 4,
    "audio_depth": 2,
    "decode_workers": 0,
}
KIND_FACETS = ("fit", "state", "encoder", "features", "serve", "onnx")


def _fail(where: str, what: str) -> AssertionError:
    return AssertionError(f"{where}: {what}")


def _fitted(kind, folder: Path, rows: int = ROWS):
    """``(preprocessor fitted on the kind's examples, the column, its table)``."""
    from deepstrata.config import with_defaults
    from deepstrata.data.sources import read_table

    values = kind.examples(np.random.default_rng(0), rows, folder)
    frame = pd.DataFrame({"column": pd.Series(values, dtype=object)})
    table = read_table(frame)
    options = with_defaults(SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        pre = kind.new_preprocessor(options).fit(table.frame["column"], table)
    return pre, table.frame["column"], table, options


def check_kind(name: str, facets: Sequence[str] = KIND_FACETS) -> None:
    """Check the registered kind ``name`` on every facet in ``facets`` (see the module doc)."""
    from deepstrata.kinds import get

    kind = get(name)
    with tempfile.TemporaryDirectory() as scratch:
        pre, column, table, options = _fitted(kind, Path(scratch))
        block = _check_transform(name, pre, column, table)
        if "state" in facets:
            _check_state(name, kind, pre, column, table, block)
        if "encoder" in facets:
            _check_encoder(name, kind, pre, column, table, options)
        if "features" in facets:
            _check_features(name, kind, pre, options)
        if "serve" in facets:
            _check_serve(name, kind, pre, column, table)
        if "onnx" in facets:
            _check_onnx(name, pre, options)


def _transform(pre, column, table) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # unseen categories, by design
        return pre.transform(column, table)


def _check_transform(name, pre, column, table) -> np.ndarray:
    block = _transform(pre, column, table)
    where = f"kind {name!r}"
    if pre.kind != name:
        raise _fail(where, f"its preprocessor says kind {pre.kind!r}")
    if block.shape != (len(column), pre.width):
        raise _fail(where, f"transform gave shape {block.shape}, not ({len(column)}, {pre.width})")
    if str(block.dtype) != pre.dtype:
        raise _fail(where, f"transform gave {block.dtype}, the preprocessor declares {pre.dtype}")
    return block


def _check_state(name, kind, pre, column, table, block) -> None:
    state = json.loads(json.dumps(pre.state()))  # plain JSON, no pickle
    rebuilt = kind.preprocessor.from_state(state)
    if not np.array_equal(_transform(rebuilt, column, table), block):
        raise _fail(
            f"kind {name!r}", "the preprocessor rebuilt from its state transforms otherwise"
        )


def _check_encoder(name, kind, pre, column, table, options) -> None:
    block = torch.from_numpy(np.concatenate([_transform(pre, column, table)] * 2, axis=1))
    encoder = kind.build_encoder([pre, pre], options)  # two columns of the kind
    encoder.train()
    output = encoder(block)
    if output.shape != (len(column), encoder.out_dim):
        raise _fail(
            f"kind {name!r}", f"encoder gave {tuple(output.shape)}, out_dim {encoder.out_dim}"
        )
    parameters = [p for p in encoder.parameters() if p.requires_grad]
    if parameters:
        output.float().pow(2).mean().backward()
        if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in parameters):
            raise _fail(f"kind {name!r}", "no gradient reaches the encoder's parameters")


def _check_features(name, kind, pre, options) -> None:
    where = f"kind {name!r}"
    if kind.features_ref is None:
        return  # no fixed features: --strategy features refuses such a column, by name
    if kind.pretrained:
        if not callable(kind.build_features):
            raise _fail(where, "its features block is not a function")
        return  # the pretrained network's block is checked by tests/pretrained
    module = kind.build_features([pre], options)
    if not isinstance(getattr(module, "out_dim", None), int):
        raise _fail(where, "its features block has no out_dim")


def _check_serve(name, kind, pre, column, table) -> None:
    """A JSON value of the kind through the server's request model gives the block the
    same value gives from a table."""
    from deepstrata.serve.records import field_type
    from deepstrata.serve.settings import ServeSettings

    pydantic = __import__("pydantic")
    categories = list(getattr(pre, "vocabulary", []))
    annotated = field_type(name, categories=categories, settings=ServeSettings())
    adapter = pydantic.TypeAdapter(annotated)
    json.dumps(adapter.json_schema())  # a schema the OpenAPI page can hold
    if adapter.validate_python(None) is not None:
        raise _fail(f"kind {name!r}", "null is not read as a missing value over HTTP")
    value = column.dropna().iloc[0]
    sent = value
    if kind.files:
        sent = base64.b64encode(Path(value).read_bytes()).decode("ascii")
    elif isinstance(value, np.generic):
        sent = value.item()
    parsed = adapter.validate_python(sent)
    if kind.files:
        if parsed != Path(value).read_bytes():
            raise _fail(f"kind {name!r}", "a file's bytes do not survive the HTTP field")
        return
    served = pd.Series([parsed], name="column", dtype=np.float64 if kind.http.numeric else object)
    expected = _transform(
        pre, column.iloc[[column.first_valid_index()]].reset_index(drop=True), table
    )
    if not np.allclose(_transform(pre, served, table), expected, equal_nan=True):
        raise _fail(f"kind {name!r}", f"the HTTP value {sent!r} transforms unlike the table's")


def _check_onnx(name, pre, options) -> None:
    """A tiny network on the kind, exported and checked against PyTorch on the kind's
    synthetic sample (what ``deepstrata export`` does)."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return  # the serve extra is not installed: nothing to export with
    import onnxruntime

    from deepstrata.export.onnx import _check, _export_member
    from deepstrata.kinds import encoder_options
    from deepstrata.model.member import build_member

    architecture = {
        "task": "binary",
        "num_classes": 2,
        "hidden_dims": [4],
        "dropout": 0.0,
        "options": encoder_options([name], options),
    }
    member = build_member({"column": pre}, architecture).eval()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "member.onnx"
        kinds = _export_member(member, path)
        _check(member, path, kinds, 16, onnxruntime)  # ExportError when they differ


def check_task(name: str) -> None:
    """Check the registered task ``name`` (see the module doc)."""
    from deepstrata import tasks
    from deepstrata.calibrate.temperature import fit_temperature
    from deepstrata.preprocess.target import TargetEncoder

    task, where = tasks.get(name), f"task {name!r}"
    rng = np.random.default_rng(0)
    column = pd.Series(task.examples(rng, 40), name="target")
    encoder = TargetEncoder(name).fit(column, None)
    encoder = TargetEncoder.from_state(json.loads(json.dumps(encoder.state())))
    labels = encoder.encode(column, None)
    width = task.raw_width(len(encoder.classes))
    outputs = _outputs_for(task, labels, width)
    decoded, expected = (
        encoder.decode(task.point_predictions(outputs)),
        _as_decoded(task, encoder, column),
    )
    same = (
        np.allclose(np.asarray(decoded, dtype=float), expected)
        if not task.classifier
        else [str(v) for v in decoded] == [str(v) for v in expected]
    )
    if not same:
        raise _fail(where, "decoding the labels' own outputs does not give the targets back")
    head = task.head(in_dim=5, num_classes=len(encoder.classes))
    raw = head(torch.randn(len(labels), 5))
    if tuple(raw.shape[1:]) != tuple(outputs.shape[1:]):
        raise _fail(where, f"head gives {tuple(raw.shape)}, outputs are {outputs.shape}")
    loss = head.loss(raw, torch.from_numpy(labels))
    loss.backward()
    if not torch.isfinite(loss):
        raise _fail(where, "the head's loss is not finite")
    _check_outputs(task, where, outputs, labels, encoder)
    if task.classifier:
        temperature = fit_temperature(
            torch.from_numpy(outputs / 3), torch.from_numpy(labels), task=name
        )
        if not temperature > 0:
            raise _fail(where, f"temperature scaling gave {temperature}")


def _outputs_for(task, labels: np.ndarray, width: int) -> np.ndarray:
    """Raw outputs that say each row's label confidently: what decoding must undo."""
    if not task.classifier:
        return labels.astype(np.float64)
    if labels.ndim == 2:  # one logit per label
        return np.where(labels > 0.5, 4.0, -4.0)
    if width == 1:
        return np.where(labels == 1, 4.0, -4.0)
    return np.eye(width)[labels] * 8.0 - 4.0


def _as_decoded(task, encoder, column: pd.Series) -> list:
    """The targets as decoding gives them back (numbers as numbers, label lists sorted)."""
    if task.prediction == "labels":
        order = {label: i for i, label in enumerate(encoder.classes)}
        return [
            sorted({p.strip() for p in str(cell).split("|") if p.strip()}, key=order.get)
            for cell in column
        ]
    if not task.classifier:
        return [float(v) for v in column]
    return list(column)


def _check_outputs(task, where, outputs, labels, encoder) -> None:
    metrics = task.metrics(labels, outputs, encoder)
    if list(metrics) != list(task.metric_names):
        raise _fail(where, f"metrics {list(metrics)}, declared {list(task.metric_names)}")
    mixed = task.combine([outputs, outputs], [0.5, 0.5])
    if not np.array_equal(task.point_predictions(mixed), task.point_predictions(outputs)):
        raise _fail(where, "mixing a member with itself changes its predictions")
    if task.row_losses(outputs, labels).shape != (len(labels),):
        raise _fail(where, "row_losses does not give one loss per row")
    figures = task.epoch_metric(torch.from_numpy(outputs), torch.from_numpy(labels), encoder)
    if not all(isinstance(value, float) for value in figures.values()):
        raise _fail(where, f"epoch figures are not floats: {figures}")
    if task.classifier:
        probabilities = task.probabilities(outputs)
        if probabilities.shape != (len(labels), len(encoder.classes)):
            raise _fail(where, f"probabilities of shape {probabilities.shape}")
        if not ((probabilities >= 0) & (probabilities <= 1)).all():
            raise _fail(where, "probabilities outside [0, 1]")
        if task.stratify and not np.allclose(probabilities.sum(axis=1), 1):
            raise _fail(where, "a single-label task's probabilities do not sum to 1")


def check_head(name: str, task: str) -> None:
    """Check the classical head ``name`` on ``task``: fit, output shape, state round trip."""
    from deepstrata import tasks
    from deepstrata.classical import head_from_state, new_head

    where = f"head {name!r} on {task}"
    spec = tasks.get(task)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4))
    if spec.classifier:
        classes = 2 if spec.raw_width(2) == 1 else 3
        target = (features[:, 0] > 0).astype(np.int64) + (classes == 3) * (features[:, 1] > 1)
    else:
        classes, target = 0, features[:, 0] * 2.0
    head = new_head(name, task=task, num_classes=classes, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # convergence chatter
        head.fit(features, target)
    outputs = head.outputs(features)
    expected = (60,) if spec.raw_width(classes) == 1 else (60, classes)
    if outputs.shape != expected:
        raise _fail(where, f"outputs of shape {outputs.shape}, the task's raw shape is {expected}")
    meta, arrays = head.state()
    restored = head_from_state(
        json.loads(json.dumps(meta)), {k: np.asarray(v) for k, v in arrays.items()}
    )
    if not np.allclose(restored.outputs(features), outputs):
        raise _fail(where, "the head rebuilt from its state answers otherwise")

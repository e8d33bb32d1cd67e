"""Records in, predictions out: the server's one path into a :class:`~deepstrata.model.model.Model`.

The forward pass goes through ``Model.outputs_of``, the path ``Model.predict`` takes, so
an ensemble's members are combined exactly as in Python (the ONNX backend swaps only
each member's network, see :mod:`deepstrata.export.onnx`). Warnings are worked out per
record here rather than caught from the preprocessors, because a micro-batch mixes the
records of several callers and each must see only its own.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepstrata.data.sources import read_table
from deepstrata.errors import DataWarning
from deepstrata.kinds import FILE_KINDS
from deepstrata.model.model import Model
from deepstrata.preprocess.category import CategoryPreprocessor
from deepstrata.serve.batching import join_frames
from deepstrata.serve.records import Rows, category_vocabulary

# A batch of up to INLINE_ROWS rows runs on the event loop when the model's one-row pass
# (timed at warm-up) took at most INLINE_SECONDS: see Predictor.inline.
INLINE_ROWS = 16
INLINE_SECONDS = 0.002


class Predictor:
    """A loaded model and what the server needs to know about it.

    ``backend`` is ``"torch"`` or ``"onnx"`` (the model's networks already swapped, see
    :func:`deepstrata.export.onnx.with_onnx_networks`); it is only reported here.
    """

    def __init__(self, model: Model, *, backend: str = "torch") -> None:
        self.model = _decoding_in_process(model)
        self.backend = backend
        self.schema = model.schema
        self.task = model.task
        self.classes = list(model.classes) if model.spec.classifier else None
        inputs = model.schema.inputs
        self.categories = {
            f.name: category_vocabulary([m.preprocessors[f.name] for m in model.members])
            for f in inputs
            if f.kind == "category"
        }
        # One vocabulary per member: a value is unknown if any member does not know it.
        self._vocabularies = {
            f.name: [
                set(pre.vocabulary) if isinstance(pre, CategoryPreprocessor) else set()
                for pre in (m.preprocessors[f.name] for m in model.members)
            ]
            for f in inputs
            if f.kind == "category"
        }
        self.file_columns = [f.name for f in inputs if f.kind in FILE_KINDS]
        self.row_seconds: float | None = None  # a one-row pass, timed at warm-up (see inline)
        self._decoders = {
            name: _decoders([m.preprocessors[name] for m in self.model.members])
            for name in self.file_columns
        }

    # -- the forward pass (in the server's worker thread) -----------------------------------
    def outputs(self, rows: Rows | pd.DataFrame) -> np.ndarray:
        """Raw model outputs for ``rows`` (calibrated logits or values): :class:`Rows` of a
        model without image or audio inputs, else a DataFrame whose image and audio columns
        hold paths (see :meth:`file_paths`)."""
        with warnings.catch_warnings():
            # Unseen categories are reported per record by warnings_of, not here.
            warnings.simplefilter("ignore", DataWarning)
            if isinstance(rows, Rows):
                return self.model.outputs_of_values(rows.columns)
            return self.model.outputs_of(read_table(rows))

    def inline(self, rows: Rows | pd.DataFrame) -> bool:
        """Whether ``rows`` run on the event loop rather than in the model's worker thread:
        :class:`Rows` of at most ``INLINE_ROWS`` rows, of a model whose one-row pass took
        at most ``INLINE_SECONDS`` at warm-up. Handing a batch to a thread and back costs a
        small model more than its forward pass (two wake-ups, more on a busy machine);
        larger batches and slower models stay in the worker, where the event loop reads
        the next requests meanwhile and a request's timeout can answer."""
        return (
            isinstance(rows, Rows)
            and len(rows) <= INLINE_ROWS
            and self.row_seconds is not None
            and self.row_seconds <= INLINE_SECONDS
        )

    @staticmethod
    def join(parts: list) -> Rows | pd.DataFrame:
        """One batch of several requests' rows (see :meth:`outputs`)."""
        return Rows.join(parts) if isinstance(parts[0], Rows) else join_frames(parts)

    def answers(self, outputs: np.ndarray, sensitive: dict[str, list] | None = None) -> dict:
        """``{"predictions": [...], "classes"?, "probabilities"?}`` of raw ``outputs``
        (``sensitive``: ``{column: values}`` whose groups pick fairness thresholds, if any)."""
        groups = None if sensitive is None else self.model.groups_of(sensitive)
        labels = self.model.decode(outputs, groups)  # labels, label lists or values
        answer: dict = {"predictions": [_plain(v) for v in labels.tolist()]}
        if self.classes is not None:
            probabilities = self.model.probabilities_of(outputs)  # (B, K)
            names = [str(label) for label in self.classes]
            answer["classes"] = [_plain(label) for label in self.classes]
            answer["probabilities"] = [dict(zip(names, row)) for row in probabilities.tolist()]
        return answer

    def warm_up(self, rows: int) -> None:
        """A forward pass of 1 and of ``rows`` rows of missing values (every kind takes them):
        kernels chosen, pages touched, lazy imports done before the first request. Without
        image or audio inputs, a one-row pass is then timed (the quickest of three) to
        decide :meth:`inline`."""
        if not self.file_columns:
            for count in (1, max(rows, 1)):
                blank = Rows({f.name: [None] * count for f in self.schema.inputs}, count)
                self.answers(self.outputs(blank))
            blank_row = Rows({f.name: [None] for f in self.schema.inputs}, 1)
            self.row_seconds = min(_timed(self.outputs, blank_row) for _ in range(3))
            return
        blank = pd.DataFrame({f.name: [None] for f in self.schema.inputs})
        for count in (1, max(rows, 1)):
            frame = blank.loc[[0] * count].reset_index(drop=True)
            for feature in self.schema.inputs:
                if feature.kind == "number":
                    frame[feature.name] = frame[feature.name].astype("float64")
            self.answers(self.outputs(frame))

    # -- per-record checks (before a record joins a batch) -----------------------------------
    def warnings_of(self, values: dict[str, list], extras: dict[str, int]) -> list[dict]:
        """Unseen categories, record by record (``values``: each column's validated values,
        see :func:`~deepstrata.serve.records.values_of`), and fields that are not inputs."""
        found = []
        for name, vocabularies in self._vocabularies.items():
            for row, value in enumerate(values[name]):
                if value is not None and any(value not in known for known in vocabularies):
                    found.append(
                        {
                            "record": row,
                            "column": name,
                            "message": f"{_shown(value)} was not seen in training; "
                            "treated as an unknown category",
                        }
                    )
        for name, count in extras.items():
            found.append(
                {
                    "record": None,
                    "column": name,
                    "message": f"not an input of the model; ignored ({count} record(s))",
                }
            )
        return found

    # -- image and audio fields (in the decode pool, see :mod:`deepstrata.serve.staging`) ------
    def file_fields(self, frame: pd.DataFrame) -> list[tuple[int, str]]:
        """``(record, column)`` of every image and audio field that holds a file."""
        return [
            (row, name)
            for name in self.file_columns
            for row, data in enumerate(frame[name].tolist())
            if isinstance(data, bytes)
        ]

    def file_costs(self, frame: pd.DataFrame, fields: list[tuple[int, str]]) -> list[FileCost]:
        """What decoding each of ``fields`` would take, and what the model takes of it, read
        from the files' headers (nothing is decoded)."""
        costs = []
        for row, name in fields:
            data = frame[name].iat[row]
            decoders = self._decoders[name]
            costs.append(
                FileCost(
                    row,
                    name,
                    cost=sum(pre.decode_cost(io.BytesIO(data)) for pre in decoders),
                    allowance=sum(pre.input_cost for pre in decoders),
                    unit=decoders[0].cost_unit,
                )
            )
        return costs

    def file_paths(self, frame: pd.DataFrame, folder: Path) -> pd.DataFrame:
        """``frame`` with each image and audio field's bytes replaced by the path in ``folder``
        that :meth:`stage_files` writes them to (the preprocessors read files)."""
        frame = frame.copy()
        for index, name in enumerate(self.file_columns):
            paths = [
                str(folder / f"{row}-{index}") if isinstance(data, bytes) else None
                for row, data in enumerate(frame[name].tolist())
            ]
            frame[name] = pd.Series(paths, dtype="object", index=frame.index)
        return frame

    def stage_files(
        self, frame: pd.DataFrame, staged: pd.DataFrame, rows: list[int]
    ) -> list[tuple[int, str, str]]:
        """The image and audio fields of ``rows`` written to their paths in ``staged`` (see
        :meth:`file_paths`) and decoded: ``[(record, column, reason), ...]`` for every field
        that cannot be.

        Decoding here, before the record joins a batch, keeps one caller's bad file from
        failing the others' batch; the arrays land in the decode cache under these paths,
        so the batch's own pass does not decode them again while the files live."""
        for name in self.file_columns:
            for row in rows:
                path = staged[name].iat[row]
                if path is not None:
                    Path(path).write_bytes(frame[name].iat[row])
        table = read_table(staged[self.file_columns].iloc[rows])  # positions: indices into rows
        problems = set()
        for name in self.file_columns:
            for pre in self._decoders[name]:
                for bad in pre.bad_files(table.frame[name], table):
                    problems.add((rows[bad.position], name, bad.reason))
        return sorted(problems)


@dataclass(frozen=True)
class FileCost:
    """One image or audio field: ``cost``, the pixels (audio: samples) decoding it would
    produce; ``allowance``, those the model takes of it."""

    row: int
    column: str
    cost: int
    allowance: int
    unit: str


def _decoders(preprocessors: list) -> list:
    """One preprocessor per kind and input size: members trained alike decode a file alike
    (the decode cache then holds it once), so it is counted once."""
    seen: dict = {}
    for pre in preprocessors:
        seen.setdefault((type(pre), pre.input_cost), pre)
    return list(seen.values())


def _decoding_in_process(model: Model) -> Model:
    """``model``, or where it has image or audio columns a copy whose preprocessors decode
    in this process (``workers=0``; ``model`` is left as it was). A server must not fork
    DataLoader workers per request: forking a threaded process risks deadlocks, and a
    request's timeout cannot stop the processes."""
    files = [f.name for f in model.schema.inputs if f.kind in FILE_KINDS]
    if not files:
        return model
    members = []
    for member in model.members:
        preprocessors = dict(member.preprocessors)
        for name in files:
            preprocessors[name] = copy.copy(preprocessors[name])
            preprocessors[name].workers = 0
        members.append(dataclasses.replace(member, preprocessors=preprocessors))
    clone = copy.copy(model)
    clone.members = members
    return clone


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def _plain(value):
    """A NumPy scalar (or a list of them) as the Python value JSON can hold."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value.item() if isinstance(value, np.generic) else value


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")

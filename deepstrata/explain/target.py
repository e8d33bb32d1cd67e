"""What an explanation explains: the prediction users get, as a function of which raw
input columns a row keeps.

Every method here asks one question of the model: "what would it predict for row ``i``
with these columns kept and the others set to their baseline (or taken from row ``j``)?".
:class:`Target` answers it on the members' preprocessed blocks, so each raw column
(a category's code, a date's cyclic encodings, a number's missing flag, every token of
a text) is kept or replaced as one piece, and the answer goes through the model's own
calibration and mixing of members: the explained function is the one ``predict`` calls.

The explained value is the probability of one class per row (the predicted class, or
``target_class``) for classifiers, the value in the target's units for regression.
"""

from __future__ import annotations

import numpy as np
import torch

from deepstrata import tasks
from deepstrata.errors import ConfigError
from deepstrata.explain.baselines import (
    baseline_values,
    check_image_baseline,
    describe_baseline,
)
from deepstrata.kinds import group_by_kind
from deepstrata.preprocess.frame import transform_frame

CHUNK = 4096  # masked rows per forward pass: bounds memory for image and text blocks


class MemberInputs:
    """One member's preprocessed blocks for the explained rows, its baseline blocks, and
    for every position of every block the raw column it came from."""

    def __init__(self, member, table, columns: list[str], *, image: str = "blurred") -> None:
        self.member = member
        self.blocks = transform_frame(member.preprocessors, table.frame, table)  # {kind: (N, W)}
        index = {name: i for i, name in enumerate(columns)}
        self.positions, self.baseline = {}, {}
        for kind, names in group_by_kind(member.preprocessors).items():
            pres = [member.preprocessors[name] for name in names]
            self.positions[kind] = np.concatenate(
                [np.full(pre.width, index[name]) for name, pre in zip(names, pres)]
            )  # (W,) column index of each position
            block = self.blocks[kind].numpy()
            offsets = np.cumsum([0, *(pre.width for pre in pres)])
            values = np.concatenate(
                [
                    baseline_values(pre, block[:, lo:hi], image=image)
                    for pre, lo, hi in zip(pres, offsets[:-1], offsets[1:])
                ],
                axis=1,
            )  # (N, W): one baseline per row (a blurred image is the row's own)
            self.baseline[kind] = torch.from_numpy(np.ascontiguousarray(values, block.dtype))

    def masked(
        self, rows: np.ndarray, keep: np.ndarray, sources: np.ndarray | None = None
    ) -> dict[str, torch.Tensor]:
        """Blocks of ``rows`` (n,) where column ``j`` is kept if ``keep[:, j]`` (n, M), else
        that row's baseline (or, with ``sources``, the value of row ``sources[k]``)."""
        out = {}
        for kind, block in self.blocks.items():
            mask = torch.from_numpy(keep[:, self.positions[kind]])  # (n, W)
            picked = rows if sources is None else sources
            other = (self.baseline[kind] if sources is None else block)[torch.from_numpy(picked)]
            out[kind] = torch.where(mask, block[torch.from_numpy(rows)], other)
        return out


class Target:
    """The explained function over the rows of ``table``.

    ``classes``: the class explained per row (None for regression); ``predictions``:
    its value with every column kept; ``base``: with every column at its baseline, each
    row's own (f at that row's baseline).
    ``classes`` (indices into ``model.classes``, one per row) fixes the explained class
    per row instead (the randomisation check explains the same classes again).
    ``image_baseline``: ``"blurred"`` (each row's own image blurred) or ``"mean"`` (the
    training mean colour), :mod:`deepstrata.explain.baselines`."""

    def __init__(
        self, model, table, *, target_class=None, classes=None, image_baseline: str = "blurred"
    ) -> None:
        check_image_baseline(image_baseline)
        self.model = model
        self.image_baseline = image_baseline
        self.spec = model.spec
        self.columns = [field.name for field in model.schema.inputs]
        self.table = table
        self.inputs = [
            MemberInputs(member, table, self.columns, image=image_baseline)
            for member in model.members
        ]
        self.rows = len(table.frame)
        everything = np.arange(self.rows)
        outputs = self._outputs(everything, np.ones((self.rows, len(self.columns)), bool))
        self.classes = (
            self._classes(outputs, target_class) if classes is None else np.asarray(classes)
        )
        self.predictions = self._pick(outputs, everything)
        self.base = self.values(everything, np.zeros((self.rows, len(self.columns)), bool))

    @property
    def networks_only(self) -> bool:
        return all(hasattr(member, "network") for member in self.model.members)

    def class_names(self) -> list | None:
        if self.classes is None:
            return None
        return [self.model.classes[c] for c in self.classes]

    def baselines(self) -> dict[str, str]:
        """Each column's baseline in words (the first member's, for an ensemble)."""
        pres = self.model.members[0].preprocessors
        return {
            name: describe_baseline(pres[name], image=self.image_baseline) for name in self.columns
        }

    def baseline_summary(self) -> str:
        """The image columns' baseline in words (``blurred image (...)``), for a method's
        settings; without images, a pointer to the per-column ``baselines``."""
        pres = self.model.members[0].preprocessors
        images = {
            describe_baseline(pres[name], image=self.image_baseline)
            for name in self.columns
            if pres[name].kind == "image"
        }
        return "; ".join(sorted(images)) or "each column's stated baseline (see baselines)"

    def baseline_pixels(self, column: str) -> np.ndarray:
        """``(rows, S, S, 3)`` uint8: an image column's baseline image per row."""
        inputs = self.inputs[0]
        where = inputs.positions["image"] == self.columns.index(column)
        size = inputs.member.preprocessors[column].size
        block = inputs.baseline["image"][:, where].numpy()
        return block.reshape(-1, 3, size, size).transpose(0, 2, 3, 1).astype(np.uint8)

    def pixels(self, column: str) -> np.ndarray:
        """``(rows, S, S, 3)`` uint8: an image column's pixels as the model saw them; for an
        audio column ``(rows, mels, frames, 3)``, its log-mel spectrogram in grey (each
        clip's range stretched to 0..255), mel bin 0 first."""
        inputs = self.inputs[0]
        index = self.columns.index(column)
        for kind, positions in inputs.positions.items():
            if (positions == index).any():
                block = inputs.blocks[kind][:, positions == index].numpy()
                pre = inputs.member.preprocessors[column]
                if kind == "audio":
                    grey = block.reshape(-1, pre.n_mels, pre.frames).astype(np.float64)
                    low = grey.min(axis=(1, 2), keepdims=True)
                    span = np.maximum(grey.max(axis=(1, 2), keepdims=True) - low, 1e-12)
                    grey = np.round(255 * (grey - low) / span).astype(np.uint8)
                    return np.repeat(grey[..., None], 3, axis=3)
                size = pre.size
                return block.reshape(-1, 3, size, size).transpose(0, 2, 3, 1).astype(np.uint8)
        raise KeyError(column)

    def _classes(self, outputs: np.ndarray, target_class) -> np.ndarray | None:
        if not self.spec.classifier:
            if target_class is not None:
                raise ConfigError("a regression model has no classes", option="--target-class")
            return None
        if target_class is not None:
            names = [str(c) for c in self.model.classes]
            if str(target_class) not in names:
                raise ConfigError(
                    f"{target_class!r} is not a class of this model (its classes: "
                    f"{', '.join(names)})",
                    option="--target-class",
                )
            return np.full(self.rows, names.index(str(target_class)))
        if self.spec.prediction == "class":  # the class predict returns
            return np.asarray(self.spec.point_predictions(outputs, self.model.decision), np.int64)
        return self.spec.probabilities(outputs).argmax(axis=1)  # labels: the likeliest one

    def _outputs(self, rows, keep, sources=None) -> np.ndarray:
        """The model's calibrated outputs (members mixed) for masked rows."""
        return self.mixed([inputs.masked(rows, keep, sources) for inputs in self.inputs])

    def mixed(self, blocks: list[dict[str, torch.Tensor]]) -> np.ndarray:
        """The model's calibrated outputs (members mixed) for each member's ``blocks``."""
        outputs = []
        for inputs, member_blocks in zip(self.inputs, blocks):
            member = inputs.member
            raw = member.raw_outputs(member_blocks)
            task = tasks.get(member.architecture["task"])
            outputs.append(task.calibrated(raw, member.temperature))
        if len(outputs) == 1:
            return outputs[0]
        return self.spec.combine(outputs, self.model.weights)

    def _pick(self, outputs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.classes is None:
            return np.asarray(self.model.decode(outputs), dtype=np.float64)
        probabilities = self.spec.probabilities(outputs)
        return probabilities[np.arange(len(rows)), self.classes[rows]].astype(np.float64)

    def values(
        self, rows: np.ndarray, keep: np.ndarray, sources: np.ndarray | None = None
    ) -> np.ndarray:
        """``(n,)`` explained values: row ``rows[k]`` keeping the columns ``keep[k]``, the
        others at the baseline (or from row ``sources[k]``)."""
        rows, keep = np.asarray(rows), np.asarray(keep, dtype=bool)
        out = np.empty(len(rows), dtype=np.float64)
        for start in range(0, len(rows), CHUNK):
            part = slice(start, start + CHUNK)
            chunk_sources = None if sources is None else np.asarray(sources)[part]
            outputs = self._outputs(rows[part], keep[part], chunk_sources)
            out[part] = self._pick(outputs, rows[part])
        return out

    def of_row(self, row: int):
        """``f(masks (n, M)) -> (n,)`` for one row: what shap and lime call."""

        def value(masks: np.ndarray) -> np.ndarray:
            masks = np.asarray(masks) > 0.5
            return self.values(np.full(len(masks), row), masks)

        return value

"""The task interface, and helpers the tasks share (as functions, never as a base class's
implementation: abstract interface, final classes).

Conventions every task keeps:

- **labels** are what ``encode`` gives: int64 class indices ``(N,)``, float32 label
  indicators ``(N, L)`` or float32 standardised values ``(N,)``;
- **raw outputs** are what the network (or a classical head) gives for a row: logits, or
  a standardised value; NumPy arrays outside the training loop;
- **calibrated** outputs are raw outputs after the member's temperature (classifiers);
- a **decision** is what turns probabilities into a prediction beyond the argmax (the
  multilabel task's per-label thresholds), stored in the bundle; ``None`` for none.

The target encoder (:class:`deepstrata.preprocess.target.TargetEncoder`) holds a fit's
state (``classes``, ``mean``, ``std``) and hands itself to the task's ``fit_target``,
``encode`` and ``decode``. ``fail(mask, message)`` raises the DataError naming the file,
row and column of the first value flagged in ``mask``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd

from deepstrata.values import category_strings

Fail = Callable[[np.ndarray, str], None]


class Task(ABC):
    """What a task must say (see the module docstring for the conventions)."""

    name: ClassVar[str]
    prediction: ClassVar[str]  # what one prediction is: "class", "labels" or "value"
    classical: ClassVar[bool] = True  # classical heads (features, --ensemble) can serve it
    loss_metric: ClassVar[str] = "log_loss"  # the per-row loss ensembles are weighed by
    # --imbalance: one class per row, so classes can be weighed or oversampled
    weighs_classes: ClassVar[bool] = False
    thresholded: ClassVar[bool] = False  # --threshold: one probability decides the class
    metric_names: ClassVar[tuple[str, ...]]  # what ``metrics`` returns, in order
    compare_metrics: ClassVar[tuple[str, ...]]  # learning curves' choices, the default first
    higher_is_better: ClassVar[frozenset[str]]

    @property
    def classifier(self) -> bool:
        """Outputs are per-class scores with probabilities (everything but regression)."""
        return self.prediction != "value"

    @property
    def stratify(self) -> bool:
        """Splits keep each class's share (one class per row)."""
        return self.prediction == "class"

    # -- the target ------------------------------------------------------------------------
    def missing_targets(self, column: pd.Series) -> np.ndarray:
        """``(N,)`` bool: rows without a target (left out of training, refused to evaluate)."""
        return column.isna().to_numpy()

    @abstractmethod
    def fit_target(self, encoder, column: pd.Series, fail: Fail) -> None:
        """Learn the encoder's state (classes, or mean and std) from training targets."""

    @abstractmethod
    def encode(self, encoder, column: pd.Series, fail: Fail) -> np.ndarray:
        """Labels for target values (no value is missing here)."""

    @abstractmethod
    def decode(self, encoder, point: np.ndarray) -> np.ndarray:
        """Point predictions (or labels) back to target values as the user wrote them."""

    @abstractmethod
    def examples(self, rng, rows: int) -> list:
        """Raw target values of this task, for checks (:func:`deepstrata.testing.check_task`)."""

    # -- the network -----------------------------------------------------------------------
    @abstractmethod
    def raw_width(self, num_classes: int) -> int:
        """Raw outputs per row: 1 for a value or one logit, else one per class or label."""

    @abstractmethod
    def loss(self, output, target, *, label_smoothing: float = 0.0):
        """The training loss of raw outputs ``output`` (torch) against labels ``target``."""

    def head(self, *, in_dim: int, num_classes: int = 0):
        """The output layer: ``(B, in_dim) -> raw outputs`` (:class:`~deepstrata.tasks.heads.
        TaskHead`: a linear map whose ``loss`` is :meth:`loss`)."""
        from deepstrata.tasks.heads import TaskHead

        return TaskHead(task=self.name, in_dim=in_dim, width=self.raw_width(num_classes))

    @abstractmethod
    def epoch_metric(self, output, target, encoder) -> dict:
        """Cheap validation figures for each epoch's line (torch only, no sklearn)."""

    # -- outputs ---------------------------------------------------------------------------
    @abstractmethod
    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """``(B, K)`` probabilities from raw outputs; a TypeError for regression."""

    @abstractmethod
    def point_predictions(self, outputs: np.ndarray, decision: dict | None = None) -> np.ndarray:
        """Class indices, label indicators or standardised values."""

    @abstractmethod
    def combine(self, outputs: list[np.ndarray], weights: list[float] | None) -> np.ndarray:
        """Members' raw outputs mixed (weights sum to 1; None: equal shares)."""

    @abstractmethod
    def row_losses(self, outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``(N,)`` per-row loss of ``loss_metric`` (ensembles weigh members by it)."""

    @abstractmethod
    def metrics(
        self, labels: np.ndarray, outputs: np.ndarray, encoder, decision: dict | None = None
    ) -> dict[str, float]:
        """The task's metrics of calibrated ``outputs`` against ``labels``."""

    def head_score(self, outputs: np.ndarray, labels: np.ndarray) -> tuple[float, dict]:
        """``(higher is better, metrics)`` of a classical head's raw validation outputs."""
        raise TypeError(f"classical heads do not serve the {self.name} task")

    def classical_outputs(self, scores: np.ndarray) -> np.ndarray:
        """A classical model's ``(N, M)`` scores in this task's raw-output shape."""
        return scores

    # -- calibration -----------------------------------------------------------------------
    def calibration_nll(self, logits, target) -> Callable:
        """``nll(temperature) -> float`` of ``logits / temperature`` (float64 tensors):
        what temperature scaling minimises. A ValueError for shapes it cannot take, and
        for a task with nothing to calibrate."""
        raise ValueError(f"a {self.name} model's outputs are values: there is no temperature")

    def calibrated(self, raw: np.ndarray, temperature: float) -> np.ndarray:
        """Raw outputs after the temperature (classifiers divide their logits by it)."""
        return raw / temperature if self.classifier and temperature != 1.0 else raw

    def calibration_error(self, outputs: np.ndarray, labels: np.ndarray) -> float:
        """Expected calibration error of calibrated ``outputs`` (see calibrate.temperature)."""
        from deepstrata.evaluate.metrics import expected_calibration_error

        return expected_calibration_error(self.probabilities(outputs), labels)

    def decide(
        self, outputs: np.ndarray, labels: np.ndarray, threshold: str = "auto"
    ) -> dict | None:
        """The decision to store, chosen on held-out calibrated outputs; None: argmax.
        ``threshold``: ``--threshold`` (a binary model's; see tasks.imbalance)."""
        return None


# -- helpers the classifiers share ----------------------------------------------------------


def natural_order(value: str) -> tuple:
    """Sort "2" before "10" when every class is a number."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


CLASS_COMPARE_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc")
CLASS_HIGHER_IS_BETTER = frozenset(CLASS_COMPARE_METRICS)


class ClassTarget:
    """The target handling binary and multiclass share (one class per row), as methods a
    task takes by assignment (``fit_target = ClassTarget.fit_target``): composition, not a
    base class."""

    @staticmethod
    def fit_target(task, encoder, column, fail) -> None:
        fit_classes(encoder, column)

    @staticmethod
    def encode(task, encoder, column, fail) -> np.ndarray:
        return encode_classes(encoder, column, fail)

    @staticmethod
    def decode(task, encoder, point: np.ndarray) -> np.ndarray:
        return decode_classes(encoder, point)


def fit_classes(encoder, column: pd.Series) -> None:
    """The sorted distinct target values as the encoder's classes."""
    encoder.classes = sorted(category_strings(column).dropna().unique().tolist(), key=natural_order)


def encode_classes(encoder, column: pd.Series, fail: Fail) -> np.ndarray:
    """int64 indices into the encoder's classes; an unknown class fails naming the row."""
    codes = pd.Index(encoder.classes).get_indexer(category_strings(column))
    if (codes < 0).any():
        fail(
            codes < 0,
            "target value {value} is not one of the classes the model was trained on "
            f"({', '.join(encoder.classes)})",
        )
    return codes.astype(np.int64)


def decode_classes(encoder, indices: np.ndarray) -> np.ndarray:
    """Class indices -> labels (ints stay ints, "yes" stays "yes")."""
    return np.asarray(encoder.labels(), dtype=object)[indices]


def logits_of_mean(probabilities: list[np.ndarray], weights: list[float] | None) -> np.ndarray:
    """The log of the (weighted) mean of members' probabilities, clipped away from 0."""
    mean = np.average(probabilities, axis=0, weights=weights)
    return np.log(np.clip(mean, 1e-12, 1.0))


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values.astype(np.float64)))


def log_loss_rows(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``-log p(true class)`` per row."""
    chance = probabilities[np.arange(len(labels)), labels]
    return -np.log(np.clip(chance, 1e-15, 1.0))


def smoothed(target, label_smoothing: float):
    """0/1 targets -> eps/2 and 1 - eps/2, as cross-entropy smooths two classes."""
    if not label_smoothing:
        return target
    return target * (1 - label_smoothing) + label_smoothing / 2

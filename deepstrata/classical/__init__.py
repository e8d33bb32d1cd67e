"""Classical heads on a feature matrix: logistic/linear regression, RBF SVM, LightGBM, small MLP,
random forest.

They fit on numbers a pretrained network made (text or image embeddings, perhaps
beside standardised numeric columns) for ``--head auto|logreg|svm|gbm|mlp``, and
serve as classical baselines in ``deepstrata compare`` (which adds ``forest``).
Every head keeps one contract:

- ``Head(*, task, num_classes=0, seed=0, **hyperparameters)`` only stores;
- ``fit(features, target, *, validation=None)``: ``features`` (N, D) floats; ``target``
  (N,) class indices 0..K-1 (``"binary"``, ``"multiclass"``) or standardised values
  (``"regression"``); ``validation`` an optional ``(features, target)`` pair that GBM
  and MLP use for early stopping. Returns the head;
- ``outputs(features)``: raw outputs in :mod:`deepstrata.tasks`'s convention, so
  ``probabilities`` and ``point_predictions`` there work on them: binary (N,)
  scores (> 0 means class 1), multiclass (N, K) scores (argmax is the class),
  regression (N,) values in the target's standardised units;
- ``state() -> (meta, arrays)`` and ``from_state(meta, arrays)``.

No pickle. A bundle must be plain files that loading cannot execute, so ``meta``
is JSON and ``arrays`` are numeric arrays for safetensors. Linear and SVM heads
keep only their numbers (standardisation, coefficients; support vectors, dual
coefficients) and compute outputs in NumPy, so loading them needs neither
pickle nor scikit-learn; so does the forest, whose trees are node arrays
(children, split feature, threshold, leaf values). LightGBM keeps its own text
model format in ``meta``; the MLP keeps its ``state_dict`` in ``arrays``.

>>> import numpy as np
>>> from deepstrata.classical import head_from_state, new_head
>>> rng = np.random.default_rng(0)
>>> features = rng.normal(size=(60, 4))                          # (N, D)
>>> target = (features[:, 0] > 0).astype(np.int64)               # (N,)
>>> head = new_head("logreg", task="binary", num_classes=2).fit(features, target)
>>> head.outputs(features).shape                                  # (N,) scores
(60,)
>>> meta, arrays = head.state()
>>> restored = head_from_state(meta, arrays)
>>> bool(np.array_equal(restored.outputs(features), head.outputs(features)))
True
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np

from deepstrata.errors import ConfigError, DataError

__all__ = [
    "HEADS",
    "ForestHead",
    "GBMHead",
    "LinearHead",
    "MLPHead",
    "SVMHead",
    "head_from_state",
    "new_head",
]

HEADS = ("logreg", "svm", "gbm", "mlp", "forest")

# Head name -> (module, class). Imported on first use: LightGBM and scikit-learn
# load only when a head that needs them is made.
_CLASSES = {
    "logreg": ("deepstrata.classical.linear", "LinearHead"),
    "svm": ("deepstrata.classical.svm", "SVMHead"),
    "gbm": ("deepstrata.classical.gbm", "GBMHead"),
    "mlp": ("deepstrata.classical.mlp", "MLPHead"),
    "forest": ("deepstrata.classical.forest", "ForestHead"),
}

# The score of a class that has no training rows (possible in a cross-validation fold
# when a class has fewer rows than folds), for the heads whose models see only the
# classes present. Far below any fitted score, so never predicted, yet finite, so a
# softmax gives it a tiny probability rather than a log-loss of infinity.
ABSENT_CLASS_SCORE = -30.0


def new_head(name: str, *, task: str, num_classes: int = 0, seed: int = 0, **hyperparameters: Any):
    """An unfitted head by its ``--head`` name; ``hyperparameters`` go to its constructor.

    >>> new_head("gbm", task="regression").name
    'gbm'
    """
    return _head_class(name)(task=task, num_classes=num_classes, seed=seed, **hyperparameters)


def head_from_state(meta: dict, arrays: dict[str, np.ndarray]):
    """The fitted head that ``state()`` described, chosen by ``meta["head"]``."""
    name = meta.get("head")
    if name not in _CLASSES:
        raise ValueError(f"unknown classical head {name!r} in the state; expected one of {HEADS}")
    return _head_class(name).from_state(meta, arrays)


def __getattr__(name: str):
    for module, class_name in _CLASSES.values():
        if name == class_name:
            return getattr(importlib.import_module(module), class_name)
    raise AttributeError(f"module 'deepstrata.classical' has no attribute {name!r}")


def _head_class(name: str):
    if name not in _CLASSES:
        raise ConfigError(
            f"unknown head {name!r}; expected one of {', '.join(HEADS)}", option="--head"
        )
    module, class_name = _CLASSES[name]
    return getattr(importlib.import_module(module), class_name)


# ---------------------------------------------------------------------------------------
# Shared by the heads: input checks, standardisation, output shapes.


def is_regression(task: str) -> bool:
    """The task's target is a number: a regressor, not a classifier (see deepstrata.tasks)."""
    from deepstrata import tasks

    return not tasks.get(task).classifier


def single_score(task: str) -> bool:
    """A classifier whose raw output is one score per row (> 0: the second class)."""
    from deepstrata import tasks

    spec = tasks.get(task)
    return spec.classifier and spec.raw_width(2) == 1


def check_task(task: str, num_classes: int) -> int:
    """The number of classes the target can take: 2 for binary, K for multiclass, 0."""
    from deepstrata import tasks

    if task not in tasks.TASKS:
        raise ConfigError(
            f"expected one of {', '.join(tasks.TASKS)}, got {task!r}", option="--task"
        )
    if not tasks.get(task).classical:
        raise ConfigError(
            f"the classical heads predict one class or value per row; the {task} task needs "
            "a network (--strategy scratch or finetune, no --ensemble)",
            option="--head",
        )
    if is_regression(task):
        return 0
    if single_score(task):
        if num_classes not in (0, 2):
            raise ValueError(f"a {task} task has 2 classes, got num_classes={num_classes}")
        return 2
    if num_classes < 2:
        raise ValueError(f"a {task} task needs num_classes >= 2, got {num_classes}")
    return num_classes


def check_features(
    features: np.ndarray, *, num_features: int | None = None, allow_missing: bool = False
) -> np.ndarray:
    """``features`` as a float64 (N, D) array; NaN allowed only with ``allow_missing``."""
    array = np.asarray(features)
    if array.ndim != 2:
        raise DataError(f"expected features of shape (rows, columns), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"expected numeric features, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if num_features is not None and array.shape[1] != num_features:
        raise DataError(
            f"expected {num_features} feature columns (as in training), got {array.shape[1]}"
        )
    bad = np.isinf(array) if allow_missing else ~np.isfinite(array)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        what = "infinity" if allow_missing else "NaN or infinity"
        raise DataError(f"features contain {what}", row=int(row) + 1, column=f"feature {column}")
    return array


def check_target(target: np.ndarray, *, task: str, num_classes: int, rows: int) -> np.ndarray:
    """int64 class indices in 0..K-1, or finite float64 values; one per feature row."""
    array = np.asarray(target)
    if array.shape != (rows,):
        raise DataError(f"expected a target of shape ({rows},), got shape {array.shape}")
    if is_regression(task):
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise DataError("the regression target contains NaN or infinity")
        return values
    # Integral floats (a target that went through a float tensor) are still indices.
    integral = np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0)
    if not (np.issubdtype(array.dtype, np.integer) or integral):
        raise DataError(f"expected integer class indices, got dtype {array.dtype}")
    indices = array.astype(np.int64)
    if rows and (indices.min() < 0 or indices.max() >= num_classes):
        raise DataError(
            f"expected class indices in 0..{num_classes - 1}, "
            f"got values from {indices.min()} to {indices.max()}"
        )
    return indices


def check_fit_inputs(
    head: Any,
    features: np.ndarray,
    target: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray] | None,
    *,
    allow_missing: bool = False,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Checked ``(features, target, validation)`` for ``head.fit``; empty validation -> None.

    Classification needs at least two classes among the training rows.
    """
    num_classes = check_task(head.task, head.num_classes)
    features = check_features(features, allow_missing=allow_missing)
    if len(features) < 2:
        raise DataError(f"a {head.name} head needs at least 2 training rows, got {len(features)}")
    target = check_target(target, task=head.task, num_classes=num_classes, rows=len(features))
    if not is_regression(head.task) and len(np.unique(target)) < 2:
        raise DataError(
            f"the training rows hold one class only ({int(target[0])}); "
            "a classifier needs at least two"
        )
    if validation is not None:
        validation_features, validation_target = validation
        validation_features = check_features(
            validation_features, num_features=features.shape[1], allow_missing=allow_missing
        )
        validation_target = check_target(
            validation_target,
            task=head.task,
            num_classes=num_classes,
            rows=len(validation_features),
        )
        validation = (validation_features, validation_target) if len(validation_target) else None
    return features, target, validation


def check_fitted(head: Any, attribute: str) -> None:
    if not hasattr(head, attribute):
        raise RuntimeError(f"{type(head).__name__} is not fitted; call fit() first")


def standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column ``(mean, scale)`` of (N, D) ``features``, each (D,) float64.

    A (near-)constant column keeps scale 1: dividing by a rounding-error standard
    deviation would blow a tiny difference at prediction time up to a huge input.
    """
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale <= 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
    return mean, scale


def task_outputs(task: str, scores: np.ndarray) -> np.ndarray:
    """(N, M) scores -> the network heads' shapes: (N,) for binary and regression, else (N, K)."""
    from deepstrata import tasks

    return tasks.get(task).classical_outputs(scores)


def hyperparameters(head: Any) -> dict[str, Any]:
    """The head's constructor arguments besides task, num_classes and seed, read back from
    the attributes that store them (as scikit-learn's ``get_params``); tuples as lists."""
    names = inspect.signature(type(head).__init__).parameters
    values = {
        name: getattr(head, name)
        for name in names
        if name not in ("self", "task", "num_classes", "seed")
    }
    return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}


def state_meta(head: Any) -> dict[str, Any]:
    """The ``meta`` entries every head writes: name, task, classes, seed, hyperparameters."""
    return {
        "head": head.name,
        "task": head.task,
        "num_classes": head.num_classes,
        "seed": head.seed,
        "hyperparameters": hyperparameters(head),
    }


def check_state(cls: Any, meta: dict) -> Any:
    """An unfitted ``cls`` made from ``meta``, after checking that ``meta`` is one of its states."""
    if meta.get("head") != cls.name:
        raise ValueError(
            f"{cls.__name__} reads the state of a {cls.name!r} head, not {meta.get('head')!r}"
        )
    return cls(
        task=meta["task"],
        num_classes=meta["num_classes"],
        seed=meta["seed"],
        **meta["hyperparameters"],
    )

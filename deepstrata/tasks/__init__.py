"""Tasks: what the target is, and everything that follows from it.

A task is one file here holding one final class that implements
:class:`~deepstrata.tasks.base.Task`: how target values become training labels and back
(label decoding), the network's head and its loss, probabilities and point predictions
from raw outputs, how members' outputs are mixed, the metrics, the per-epoch validation
figure, and how outputs are calibrated. Adding a task is that file and one line in
:data:`TASKS`; ``deepstrata.testing.check_task`` checks it and ``tests/testing/test_checks.py``
runs the check over every entry.

==========  ===============================  ==================================================
task        target                           outputs (raw, per row)
==========  ===============================  ==================================================
binary      two classes                      one logit (> 0: the second class)
multiclass  three or more classes            one logit per class (softmax)
multilabel  any number of labels per row     one logit per label (a sigmoid each)
regression  a number                         the value, standardised
forecast    a number per series and step     the median forecast, standardised
==========  ===============================  ==================================================

Nothing here imports torch: the command line lists the task names from this module.

>>> get("binary").prediction, get("multilabel").prediction, get("regression").prediction
('class', 'labels', 'value')
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

from deepstrata.errors import ConfigError, DataError

if TYPE_CHECKING:  # imported by the functions that need them: the CLI lists tasks fast
    import numpy as np
    import pandas as pd

__all__ = ["TASKS", "build_head", "get", "infer_task", "point_predictions", "probabilities"]

TASKS = {
    "binary": "deepstrata.tasks.binary:Binary",
    "multiclass": "deepstrata.tasks.multiclass:Multiclass",
    "multilabel": "deepstrata.tasks.multilabel:Multilabel",
    "regression": "deepstrata.tasks.regression:Regression",
    "forecast": "deepstrata.tasks.forecast:Forecast",
}

CLASSIFICATION_MAX_CLASSES = 30  # integer targets with at most this many values are classes
LABEL_SEPARATOR = "|"  # a multilabel cell in a text file: "drama|comedy"


@cache
def get(name: str):
    """The task called ``name`` (one instance each; tasks hold no state)."""
    if name not in TASKS:
        raise ConfigError(f"expected one of {', '.join(TASKS)}, got {name!r}", option="--task")
    module, _, attribute = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)()


def build_head(task: str, *, in_dim: int, num_classes: int = 0):
    """The output layer of ``task``'s networks (an ``nn.Module`` that owns its loss)."""
    return get(task).head(in_dim=in_dim, num_classes=num_classes)


def probabilities(task: str, output: np.ndarray) -> np.ndarray:
    """``(B, K)`` probabilities from raw outputs (a TypeError for regression)."""
    return get(task).probabilities(output)


def point_predictions(task: str, output: np.ndarray) -> np.ndarray:
    """Class indices, label indicators or standardised values from raw outputs."""
    return get(task).point_predictions(output)


def is_label_lists(values: pd.Series) -> bool:
    """Cells that hold several labels: lists (Parquet, JSON Lines) or ``a|b`` text."""
    import numpy as np
    from pandas.api import types as ptypes

    first = values.iloc[0] if len(values) else None
    if isinstance(first, list | tuple | np.ndarray):
        return True
    if not (ptypes.is_string_dtype(values) or ptypes.is_object_dtype(values)):
        return False
    return bool(values.astype(str).str.contains(LABEL_SEPARATOR, regex=False).any())


def infer_task(
    target: pd.Series,
    *,
    task: str | None = None,
    source: str | None = None,
    column: str | None = None,
) -> str:
    """The task from the target's values (``task`` overrides, checked against them).

    Lists of labels, or text with ``|`` in it, are multilabel; two values binary; floats
    with a fraction, and integers with more than 30 values, regression; the rest
    multiclass."""
    import numpy as np
    from pandas.api import types as ptypes

    values = target.dropna()
    if values.empty:
        raise DataError(
            "the target has no values (every row is missing)", file=source, column=column
        )
    if task is not None and task not in TASKS:
        raise ConfigError(
            f"unknown task {task!r}; expected one of {', '.join(TASKS)}", option="--task"
        )
    if task == "multilabel" or (task is None and is_label_lists(values)):
        return "multilabel"
    unique = values.nunique()
    if task == "regression":
        if not ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values):
            raise DataError(
                "regression needs a numeric target",
                file=source,
                column=column,
                hint="use --task binary or --task multiclass",
            )
        return task
    if unique < 2:
        raise DataError(
            f"the target has a single value ({values.iloc[0]!r}); a model needs at least two classes",
            file=source,
            column=column,
        )
    if task is not None:
        if task == "binary" and unique != 2:
            raise DataError(
                f"--task binary needs 2 classes, the target has {unique}",
                file=source,
                column=column,
            )
        return task
    if ptypes.is_bool_dtype(values) or unique == 2:
        return "binary"
    if ptypes.is_float_dtype(values) and not np.all(np.mod(values.to_numpy(), 1) == 0):
        return "regression"
    if ptypes.is_numeric_dtype(values):
        return "multiclass" if unique <= CLASSIFICATION_MAX_CLASSES else "regression"
    return "multiclass"

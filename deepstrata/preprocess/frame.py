"""A whole table through a member's preprocessors: one tensor per kind.

The network (and the features extractor) take ``{kind: (rows, width)}``: every column
of a kind side by side, in the order :func:`deepstrata.kinds.group_by_kind` gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from deepstrata.data.table import Table
from deepstrata.kinds import group_by_kind
from deepstrata.preprocess.base import RECORDS, Preprocessor


def transform_frame(
    preprocessors: dict[str, Preprocessor], frame: pd.DataFrame, table: Table
) -> dict[str, torch.Tensor]:
    """Every input column through its preprocessor; one tensor per kind.

    Returns ``{kind: (rows, total width of that kind's columns)}``: float32 for
    dense kinds, int64 for ids. Raises DataError naming the first missing column.
    """
    missing = [name for name in preprocessors if name not in frame.columns]
    if missing:
        raise table.error(
            f"input column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"missing (the model was trained with: {', '.join(preprocessors)})",
            column=missing[0],
        )
    blocks = {}
    for kind, names in group_by_kind(preprocessors).items():
        arrays = [preprocessors[name].transform(frame[name], table) for name in names]
        blocks[kind] = torch.from_numpy(np.ascontiguousarray(np.concatenate(arrays, axis=1)))
    return blocks


def transform_values(
    preprocessors: dict[str, Preprocessor], columns: dict[str, list]
) -> dict[str, torch.Tensor]:
    """:func:`transform_frame` of a few rows given as ``{column: [values]}`` (a request's
    records): the same blocks, without pandas where the kinds allow (see
    :meth:`~deepstrata.preprocess.base.Preprocessor.transform_values`)."""
    missing = [name for name in preprocessors if name not in columns]
    if missing:
        raise RECORDS.error(
            f"input {', '.join(map(repr, missing))} missing from every record (the model was "
            f"trained with: {', '.join(preprocessors)})",
            column=missing[0],
        )
    blocks = {}
    for kind, names in group_by_kind(preprocessors).items():
        arrays = [preprocessors[n].transform_values(columns[n], column=n) for n in names]
        block = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1)
        blocks[kind] = torch.from_numpy(np.ascontiguousarray(block))
    return blocks

"""How raw cell values are read the same way everywhere: category strings, true/false words.

Schema inference, the preprocessors, the target's encoding and the server's request
fields all read values through these, so that ``3`` and ``3.0`` are one class and ``"Yes"``
is true wherever it appears.

>>> category_strings(pd.Series([3.0, None, 4.0])).tolist()
['3', nan, '4']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})


def category_strings(column: pd.Series) -> pd.Series:
    """Values as strings, stable across file formats (``3`` and ``3.0`` are one value)."""
    if column.dtype == "str":
        # Strings already, NaN where missing (pandas' default for text): strip only.
        return column.str.strip()
    present = column.dropna()
    if pd.api.types.is_float_dtype(present) and np.all(np.mod(present.to_numpy(), 1) == 0):
        text = present.astype("int64").astype(str)
    elif pd.api.types.is_bool_dtype(present):
        text = present.map({True: "true", False: "false"})
    else:
        text = present.astype(str).str.strip()
    return text.reindex(column.index)


def numbers(column: pd.Series, fail, *, what: str = "a number") -> np.ndarray:
    """Float64 values of ``column``; NaN where missing. A value that is present but not a
    number, or infinite (never a measurement; missing is NaN), calls
    ``fail(mask, message, hint)``, which raises naming the first row flagged."""
    name = str(column.name)
    if pd.api.types.is_bool_dtype(column):
        values = column.astype("float64").to_numpy()
    elif pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
    else:
        coerced = pd.to_numeric(column, errors="coerce")
        bad = (coerced.isna() & column.notna()).to_numpy()
        if bad.any():
            fail(
                bad,
                f"expected {what}, got {{value}}",
                f"fix the value, or treat the column as a category with --column {name}=category",
            )
        values = coerced.to_numpy(dtype="float64", na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        fail(
            infinite,
            "expected a finite number, got {value}",
            "replace infinities with a value or leave the cell empty (missing)",
        )
    return values

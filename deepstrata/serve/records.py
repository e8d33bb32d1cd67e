"""Request and response models, built from a bundle's input features.

One pydantic model per bundle: a ``Record`` has one required field per input column
(its name as the column is spelled; ``null`` is a missing value, which every kind
handles as in training), typed by the column's kind. What a kind accepts is the kind's
own (:attr:`deepstrata.kinds.Kind.http`, defined beside its preprocessor); here it
becomes a pydantic validator and the JSON Schema the OpenAPI document shows:

========  ===========================================  ==========================================
kind      JSON                                         refused (422)
========  ===========================================  ==========================================
number    a number                                     strings, booleans, NaN, ±Infinity, overflow
boolean   true/false, or "yes"/"no", "1"/"0", "t"/"f"  anything else
category  a string or an integer                       other types; unseen values are *accepted*
                                                       with a warning (treated as unknown)
datetime  a date or time string pandas can parse        unparsable strings
text      a string of at most ``max_text_chars``        longer strings, other types
image,    the file's bytes, base64                      invalid base64, more than
audio                                                   ``max_file_bytes`` decoded
========  ===========================================  ==========================================

Fields that are not inputs are ignored, with a warning in the response.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from deepstrata.data.schema import Schema
from deepstrata.kinds import get as kind_of
from deepstrata.preprocess.base import ValueRefused, base64_length
from deepstrata.preprocess.category import CategoryPreprocessor
from deepstrata.serve.settings import ServeSettings

__all__ = [
    "Rows",
    "base64_length",
    "build_models",
    "category_vocabulary",
    "field_type",
    "frame_of",
]


def _got(value: Any) -> str:
    """A short description of a refused value for an error message (never the whole value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"a string of {len(value)} characters" if len(value) > 40 else repr(value)
    if isinstance(value, int | float):
        return repr(value) if len(repr(value)) <= 40 else f"a number of {len(repr(value))} digits"
    return {"list": "an array", "dict": "an object"}.get(type(value).__name__, type(value).__name__)


def field_type(kind: str, *, categories: list[str], settings: ServeSettings) -> Any:
    """The annotated type of one input column of ``kind``: validator and JSON Schema."""
    http = kind_of(kind).http

    def validate(value: Any) -> Any:
        try:
            return http.parse(value, settings)
        except ValueRefused as refused:
            raise PydanticCustomError(
                f"{kind}_type",
                "expected {expected}, got {got}",
                {"expected": refused.expected, "got": _got(value)},
            ) from None

    schema = {"anyOf": [http.schema(categories, settings), {"type": "null"}]}
    return Annotated[Any, PlainValidator(validate), WithJsonSchema(schema)]


def describe_field(kind: str, categories: list[str], settings: ServeSettings) -> str:
    return kind_of(kind).http.describe(categories, settings)


def category_vocabulary(preprocessors: list) -> list[str]:
    """Training categories of one column: the first member's order, then any others'."""
    seen: dict[str, None] = {}
    for pre in preprocessors:
        if isinstance(pre, CategoryPreprocessor):
            seen.update(dict.fromkeys(pre.vocabulary))
    return list(seen)


def build_models(
    schema: Schema,
    categories: dict[str, list[str]],
    settings: ServeSettings,
    *,
    classes: list | None,
    several: bool = False,
) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    """``(Record, PredictRequest, PredictResponse)`` for a bundle's inputs.

    Field names are ``input_0``, ``input_1``, ... with the column name as alias, so any
    column name (spaces, leading underscores, Python keywords) is a valid JSON key."""
    fields = {
        f"input_{index}": (
            field_type(
                feature.kind, categories=categories.get(feature.name, []), settings=settings
            ),
            Field(
                alias=feature.name,
                title=feature.name,
                description=describe_field(
                    feature.kind, categories.get(feature.name, []), settings
                ),
            ),
        )
        for index, feature in enumerate(schema.inputs)
    }
    record = create_model(
        "Record",
        __config__=ConfigDict(extra="allow", populate_by_name=False),
        __doc__="One row: every input column of the model (null for a missing value).",
        **fields,
    )
    request = create_model(
        "PredictRequest",
        __doc__="Rows to predict.",
        records=(
            list[record],
            Field(
                min_length=1,
                max_length=settings.max_records,
                description=f"1 to {settings.max_records} rows (more: 413)",
            ),
        ),
    )
    warning = create_model(
        "PredictionWarning",
        record=(int | None, Field(description="0-based index of the record; null: several")),
        column=(str | None, None),
        message=(str, ...),
    )
    label = str | int | float | bool
    prediction = list[label] if several else label
    response_fields: dict = {
        "predictions": (
            list[prediction],
            Field(
                description="One per record: the class label, the labels (multilabel), or "
                "the predicted value."
            ),
        ),
        "warnings": (
            list[warning],
            Field(description="Inputs that were handled but deserve a look."),
        ),
    }
    if classes is not None:
        response_fields["classes"] = (list[label], Field(description="Class labels, in order."))
        response_fields["probabilities"] = (
            list[dict[str, float]],
            Field(description="One per record: each class label's calibrated probability."),
        )
    response = create_model("PredictResponse", **response_fields)
    return record, request, response


def values_of(records: list[BaseModel], schema: Schema) -> dict[str, list]:
    """``{column: [value of each record]}`` of validated records, in the schema's order."""
    return {
        feature.name: [getattr(record, f"input_{index}") for record in records]
        for index, feature in enumerate(schema.inputs)
    }


def frame_of(records: list[BaseModel], schema: Schema) -> pd.DataFrame:
    """Validated records -> a DataFrame of the input columns, as ``Model.outputs_of`` reads it.

    Built from one array per column in one call (a Series per column costs several times
    as much, and this runs once per request). Image and audio columns hold the decoded
    bytes here; the predictor writes them to files before the preprocessors see them."""
    columns = {}
    for feature, values in zip(schema.inputs, values_of(records, schema).values()):
        if kind_of(feature.kind).http.numeric:
            columns[feature.name] = np.array(
                [math.nan if v is None else v for v in values], dtype=np.float64
            )
        else:
            columns[feature.name] = np.array(values, dtype=object)
    return pd.DataFrame(columns, copy=False)


@dataclass(frozen=True)
class Rows:
    """Validated records as ``{column: [value of each record]}``, the way
    :meth:`~deepstrata.model.model.Model.outputs_of_values` takes them: a request without
    image or audio fields never becomes a DataFrame (building one cost a single-row request
    more than its forward pass). ``len()`` is the number of records."""

    columns: dict[str, list]
    count: int

    def __len__(self) -> int:
        return self.count

    @classmethod
    def of(cls, records: list[BaseModel], schema: Schema) -> Rows:
        return cls(values_of(records, schema), len(records))

    @classmethod
    def join(cls, parts: list[Rows]) -> Rows:
        """One batch of several requests' rows, in order."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            {name: [v for part in parts for v in part.columns[name]] for name in parts[0].columns},
            sum(part.count for part in parts),
        )

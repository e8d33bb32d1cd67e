"""Request and response models, built from a bundle's input features.

One pydantic model per bundle: a ``Record`` has one required field per input column
(its name as the column is spelled; ``null`` is a missing value, which every kind
handles as in training), typed by the column's kind:

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

Fields that are not inputs are ignored, with a warning in the response. The models
carry the JSON Schema the OpenAPI document shows: types, the training categories
(``x-categories``, and as ``examples``), size limits.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
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

from deepstrata.data.schema import FALSE_WORDS, TRUE_WORDS, Schema
from deepstrata.preprocess.category import CategoryPreprocessor
from deepstrata.serve.settings import ServeSettings

SHOWN_CATEGORIES = 50  # the OpenAPI examples list at most this many training categories
MAX_CATEGORY_CHARS = 1000
MAX_DATETIME_CHARS = 64
_BASE64 = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
MEDIA_TYPES = {"image": "image/*", "audio": "audio/*"}


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


def _refuse(kind: str, expected: str, value: Any):
    raise PydanticCustomError(
        f"{kind}_type",
        "expected {expected}, got {got}",
        {
            "expected": expected,
            "got": _got(value),
        },
    )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        _refuse("number", "a number", value)
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        _refuse("number", "a finite number", value)
    return number


def _boolean(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) <= 8:
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    _refuse("boolean", "true or false (or yes/no, 1/0)", value)


def _category(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= MAX_CATEGORY_CHARS:
        return value.strip()  # as deepstrata.preprocess.category.category_strings does
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    _refuse("category", f"a string of at most {MAX_CATEGORY_CHARS} characters or an integer", value)


def _datetime(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= MAX_DATETIME_CHARS:
        try:
            parsed = pd.to_datetime(value, format="mixed", utc=True)
        except (ValueError, TypeError, OverflowError):
            parsed = None
        if parsed is not None and not pd.isna(parsed):
            return value
    _refuse("datetime", "a date or time such as '2024-05-31' or '2024-05-31T14:00:00Z'", value)


def _text(limit: int):
    def check(value: Any) -> str | None:
        if value is None or (isinstance(value, str) and len(value) <= limit):
            return value
        _refuse("text", f"a string of at most {limit} characters", value)

    return check


def _file(kind: str, limit: int):
    def check(value: Any) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, str):
            _refuse(kind, f"the {kind} file's bytes as a base64 string", value)
        encoded = value.encode("ascii", errors="replace")
        if len(encoded) > base64_length(limit):
            _refuse(
                kind, f"a {kind} of at most {limit} bytes (base64: {base64_length(limit)})", value
            )
        if not _BASE64.match(encoded) or len(encoded) % 4:
            _refuse(kind, f"the {kind} file's bytes as a base64 string", value)
        try:
            data = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            _refuse(kind, f"the {kind} file's bytes as a base64 string", value)
        if not data or len(data) > limit:
            _refuse(kind, f"a non-empty {kind} of at most {limit} bytes", value)
        return data

    return check


def base64_length(size: int) -> int:
    """Characters of the base64 text of ``size`` bytes."""
    return 4 * math.ceil(size / 3)


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def field_type(kind: str, *, categories: list[str], settings: ServeSettings) -> Any:
    """The annotated type of one input column of ``kind``: validator and JSON Schema."""
    if kind == "number":
        return Annotated[
            Any, PlainValidator(_number), WithJsonSchema(_nullable({"type": "number"}))
        ]
    if kind == "boolean":
        words = sorted(TRUE_WORDS | FALSE_WORDS)
        schema = {
            "anyOf": [{"type": "boolean"}, {"type": "string", "enum": words}, {"type": "null"}]
        }
        return Annotated[Any, PlainValidator(_boolean), WithJsonSchema(schema)]
    if kind == "category":
        schema = _nullable(
            {
                "anyOf": [
                    {"type": "string", "maxLength": MAX_CATEGORY_CHARS},
                    {"type": "integer"},
                ],
                "x-categories": categories,
            }
        )
        if categories:
            schema["examples"] = categories[:SHOWN_CATEGORIES]
        return Annotated[Any, PlainValidator(_category), WithJsonSchema(schema)]
    if kind == "datetime":
        schema = _nullable({"type": "string", "maxLength": MAX_DATETIME_CHARS})
        schema["examples"] = ["2024-05-31", "2024-05-31T14:00:00Z"]
        return Annotated[Any, PlainValidator(_datetime), WithJsonSchema(schema)]
    if kind == "text":
        schema = _nullable({"type": "string", "maxLength": settings.max_text_chars})
        return Annotated[
            Any, PlainValidator(_text(settings.max_text_chars)), WithJsonSchema(schema)
        ]
    if kind in MEDIA_TYPES:
        schema = _nullable(
            {
                "type": "string",
                "contentEncoding": "base64",
                "contentMediaType": MEDIA_TYPES[kind],
                "maxLength": base64_length(settings.max_file_bytes),
            }
        )
        return Annotated[
            Any, PlainValidator(_file(kind, settings.max_file_bytes)), WithJsonSchema(schema)
        ]
    raise ValueError(f"no HTTP representation for the kind {kind!r}")


def describe_field(kind: str, categories: list[str], settings: ServeSettings) -> str:
    if kind == "category" and categories:
        shown = ", ".join(categories[:SHOWN_CATEGORIES])
        more = (
            f" (and {len(categories) - SHOWN_CATEGORIES} more)"
            if len(categories) > SHOWN_CATEGORIES
            else ""
        )
        return (
            f"category seen in training: {shown}{more}. Another value is answered with a "
            "warning and treated as unknown; null is missing."
        )
    if kind in MEDIA_TYPES:
        return (
            f"{kind} file, base64-encoded, at most {settings.max_file_bytes} bytes decoded; "
            "null is missing."
        )
    return f"{kind}; null is missing."


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
    response_fields: dict = {
        "predictions": (
            list[label],
            Field(description="One per record: the class label, or the predicted value."),
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
        if feature.kind == "number":
            columns[feature.name] = np.array(
                [math.nan if v is None else v for v in values], dtype=np.float64
            )
        else:
            columns[feature.name] = np.array(values, dtype=object)
    return pd.DataFrame(columns, copy=False)

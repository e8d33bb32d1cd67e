"""Schema: one :class:`Feature` per column, with a kind and a role.

Inference looks at the training rows only and is deliberately conservative; every
decision carries a human-readable ``reason`` that ``deepstrata inspect`` shows,
and every decision can be overridden (``--column NAME=KIND``, ``--ignore``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from deepstrata import kinds as kind_registry
from deepstrata.errors import ConfigError, DataError, DataWarning
from deepstrata.tasks import TASKS, infer_task
from deepstrata.values import FALSE_WORDS, TRUE_WORDS

__all__ = [
    "FILE_KINDS",
    "KINDS",
    "TASKS",
    "Feature",
    "Schema",
    "group_hints",
    "infer_schema",
    "infer_task",
]

KINDS = tuple(kind_registry.KINDS)
FILE_KINDS = kind_registry.FILE_KINDS  # columns of paths to files
ROLES = ("input", "target", "ignore", "group")  # group: kept on one side of every split

_ID_NAME = re.compile(r"(^id$|_id$|^id_|uuid|guid|^key$|^index$)", re.IGNORECASE)
_DATE_LIKE = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?")

# Thresholds, named so that docs and tests can refer to them.
NUMERIC_SHARE = 0.9  # a text column whose values parse as numbers this often is a number
PATH_SHARE = 0.9  # a text column whose values end in an image (audio) extension this often
TEXT_MIN_MEAN_WORDS = 4.0  # strings averaging this many words are free text
GROUP_MIN_VALUES = 10  # a column that looks like a group (inspect's hint) has this many values
GROUP_MIN_ROWS_EACH = 2.0  # and at least this many rows per value on average


@dataclass
class Feature:
    """One column: its kind (what the values are) and role (what they are for)."""

    name: str
    kind: str
    role: str = "input"
    reason: str = ""
    missing: int = 0
    unique: int = 0
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Feature:
        return cls(**data)


@dataclass
class Schema:
    """Every column of a table, the target and the task."""

    features: list[Feature]
    target: str
    task: str
    rows: int = 0

    @property
    def inputs(self) -> list[Feature]:
        return [f for f in self.features if f.role == "input"]

    @property
    def ignored(self) -> list[Feature]:
        return [f for f in self.features if f.role == "ignore"]

    @property
    def target_feature(self) -> Feature:
        return next(f for f in self.features if f.role == "target")

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "task": self.task,
            "rows": self.rows,
            "features": [f.to_dict() for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Schema:
        return cls(
            features=[Feature.from_dict(f) for f in data["features"]],
            target=data["target"],
            task=data["task"],
            rows=data.get("rows", 0),
        )


def infer_schema(
    frame: pd.DataFrame,
    *,
    target: str | None,
    task: str | None = None,
    columns: dict[str, str] | None = None,
    ignore: list[str] | tuple[str, ...] = (),
    source: str | None = None,
    group: str | None = None,
) -> Schema:
    """Infer kind and role of every column of ``frame``.

    ``columns`` forces kinds (``{"zip": "category"}``); ``ignore`` forces the
    ignore role; ``group`` names the column whose values the splits keep apart (role
    ``group``: no input of the network). ``target=None`` is allowed for ``inspect``
    only (task is then "").

    >>> frame = pd.DataFrame({"age": [30, 41, 52, 23], "plan": ["a", "b", "a", "b"],
    ...                       "churned": ["yes", "no", "no", "yes"]})
    >>> schema = infer_schema(frame, target="churned")
    >>> [(f.name, f.kind, f.role) for f in schema.features]
    [('age', 'number', 'input'), ('plan', 'category', 'input'), ('churned', 'category', 'target')]
    >>> schema.task
    'binary'
    """
    columns = dict(columns or {})
    _check_names(frame, target=target, columns=columns, ignore=ignore, source=source)
    _check_group(frame, group=group, target=target)
    features = []
    for name in frame.columns:
        column = frame[name]
        feature = _describe(name, column)
        if name == target:
            feature.role = "target"
            feature.kind = columns.get(name) or _target_kind(column)
            feature.reason = "the target"
        elif name == group:
            feature.role = "group"
            feature.kind = columns.get(name) or "category"
            feature.reason = f"the group (--group): {feature.unique} values, each on one side"
        elif name in ignore:
            feature.role, feature.reason = "ignore", "ignored by request"
            nested = nested_type(column.dropna())
            feature.kind = columns.get(name) or ("category" if nested else _infer_kind(column)[0])
        elif nested := nested_type(column.dropna()):
            raise DataError(
                f"the column holds {nested} values (a nested Parquet or JSON column), which "
                "no kind of input takes",
                file=source,
                column=name,
                hint=f"leave it out with --ignore {name}, or flatten it into columns of its own",
            )
        elif name in columns:
            feature.kind, feature.reason = columns[name], "set by --column"
            if feature.missing == len(column):
                raise DataError(
                    "every value is missing, so it cannot be used as an input",
                    file=source,
                    column=name,
                )
        else:
            feature.kind, feature.reason, useful = _infer_kind_and_usefulness(name, column)
            if not useful:
                feature.role = "ignore"
        features.append(feature)

    if target is None:
        return Schema(features=features, target="", task="", rows=len(frame))
    resolved_task = infer_task(frame[target], task=task, source=source, column=target)
    schema = Schema(features=features, target=target, task=resolved_task, rows=len(frame))
    if not schema.inputs:
        raise DataError(
            "no usable input columns: every column is the target or was ignored "
            f"({'; '.join(f'{f.name}: {f.reason}' for f in schema.ignored)})",
            file=source,
        )
    return schema


def _check_names(frame, *, target, columns, ignore, source) -> None:
    """ConfigError (DataError for the target) naming a column that is not in ``frame``, or
    an unknown kind, before anything is inferred."""
    for name, kind in columns.items():
        if name not in frame.columns:
            raise ConfigError(_missing_column_message(name, frame.columns), option="--column")
        if kind not in KINDS:
            raise ConfigError(
                f"unknown kind {kind!r} for column {name!r}; expected one of {', '.join(KINDS)}",
                option="--column",
            )
    for name in ignore:
        if name not in frame.columns:
            raise ConfigError(_missing_column_message(name, frame.columns), option="--ignore")
    if target is not None and target not in frame.columns:
        raise DataError(
            f"target column {target!r} not found; columns are: {', '.join(map(str, frame.columns))}",
            file=source,
            column=target,
            hint="pass the right name with --target",
        )


def _check_group(frame, *, group, target) -> None:
    """ConfigError naming --group for a column that is not there, or is the target."""
    if group is None:
        return
    if group not in frame.columns:
        raise ConfigError(_missing_column_message(group, frame.columns), option="--group")
    if group == target:
        raise ConfigError(
            f"{group!r} is the target; the group is another column (a speaker, a patient)",
            option="--group",
        )


def group_hints(frame: pd.DataFrame, schema: Schema) -> list[str]:
    """``inspect``'s lines for the columns that look like groups: a category (or an id)
    whose values repeat, at least :data:`GROUP_MIN_VALUES` of them with
    :data:`GROUP_MIN_ROWS_EACH` rows each on average. Rows of one group are alike (one
    speaker's clips, one patient's visits), so a validation split that mixes them
    promises more than a new group will see.

    >>> frame = pd.DataFrame({"user": [f"u{i % 12}" for i in range(48)], "y": [0, 1] * 24})
    >>> group_hints(frame, infer_schema(frame, target="y"))[0].split(":")[0]
    'column user looks like a group (12 values, 4 rows each on average)'
    """
    hints = []
    for feature in schema.features:
        if feature.role not in ("input", "ignore"):
            continue
        values = frame[feature.name].dropna()
        numbered_id = (
            feature.kind == "number"
            and ptypes.is_integer_dtype(values)
            and _ID_NAME.search(feature.name)
        )
        if feature.kind != "category" and not numbered_id:
            continue
        distinct = feature.unique
        if distinct < GROUP_MIN_VALUES or len(values) < GROUP_MIN_ROWS_EACH * distinct:
            continue
        hints.append(
            f"column {feature.name} looks like a group ({distinct} values, "
            f"{len(values) / distinct:.3g} rows each on average): --group {feature.name} "
            "keeps each on one side of validation"
        )
    return hints


def format_schema(schema: Schema) -> list[list[str]]:
    """Rows for a table: name, kind, role, missing, unique, examples, reason."""
    return [
        [f.name, f.kind, f.role, str(f.missing), str(f.unique), ", ".join(f.examples), f.reason]
        for f in schema.features
    ]


def _describe(name: str, column: pd.Series) -> Feature:
    values = column.dropna()
    if nested_type(values):  # lists and structs: count and show them as text
        values = values.map(str)
    examples = [_short(v) for v in values.drop_duplicates().head(3).tolist()]
    return Feature(
        name=str(name),
        kind="",
        missing=int(column.isna().sum()),
        unique=int(values.nunique()),
        examples=examples,
    )


def nested_type(values: pd.Series) -> str | None:
    """``"list"`` or ``"struct"`` when the cells hold lists or mappings (Parquet's nested
    types, JSON arrays and objects), else None."""
    if not (ptypes.is_object_dtype(values) and len(values)):
        return None
    first = values.iloc[0]
    if isinstance(first, dict):
        return "struct"
    if isinstance(first, list | tuple | np.ndarray):
        return "list"
    return None


def _short(value: object, limit: int = 24) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _target_kind(column: pd.Series) -> str:
    values = column.dropna()
    if ptypes.is_bool_dtype(values):
        return "boolean"
    if ptypes.is_numeric_dtype(values):
        return "number"
    return "category"


def _infer_kind_and_usefulness(name: str, column: pd.Series) -> tuple[str, str, bool]:
    values = column.dropna()
    if values.empty:
        warnings.warn(
            f"column {name!r} is ignored: every value is missing", DataWarning, stacklevel=3
        )
        return _infer_kind(column)[0], "every value is missing", False
    if values.nunique() <= 1 and column.isna().sum() == 0:
        return _infer_kind(column)[0], f"constant (always {_short(values.iloc[0])})", False
    kind, reason = _infer_kind(column)
    if kind not in FILE_KINDS and _looks_like_id(name, column, kind):
        return kind, "an identifier (unique per row)", False
    return kind, reason, True


def _infer_kind(column: pd.Series) -> tuple[str, str]:
    values = column.dropna()
    if ptypes.is_bool_dtype(values):
        return "boolean", "true/false values"
    if ptypes.is_datetime64_any_dtype(values):
        return "datetime", "dates"
    if ptypes.is_numeric_dtype(values):
        if values.nunique() == 2 and set(values.unique().tolist()) <= {0, 1}:
            return "boolean", "only 0 and 1"
        return "number", "numbers"
    if values.empty:
        return "category", "no values"
    text = values.astype(str)
    lowered = set(text.str.strip().str.lower().unique().tolist())
    if (
        len(lowered) <= 2
        and lowered <= (TRUE_WORDS | FALSE_WORDS)
        and lowered & TRUE_WORDS
        and lowered & FALSE_WORDS
    ):
        return "boolean", f"only {' / '.join(sorted(lowered))}"
    for kind in FILE_KINDS:
        extensions = kind_registry.KINDS[kind].extensions
        lowered_paths = text.str.lower().str.strip()
        if float(lowered_paths.str.endswith(extensions).mean()) >= PATH_SHARE:
            found = lowered_paths.str.extract(r"(\.[a-z0-9]+)$")[0].value_counts().index[:3]
            return kind, f"paths to {kind} files ({', '.join(found)})"
    numeric = pd.to_numeric(text, errors="coerce")
    share = float(numeric.notna().mean())
    if share >= NUMERIC_SHARE:
        return (
            "number",
            f"numbers ({share:.0%} parse; the rest will be reported)" if share < 1 else "numbers",
        )
    sample = text.head(500)
    if sample.str.match(_DATE_LIKE).mean() >= 0.95:
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() >= 0.95:
            return "datetime", "dates"
    words = sample.str.split().str.len().mean()
    unique_share = text.nunique() / max(len(text), 1)
    if words >= TEXT_MIN_MEAN_WORDS and unique_share > 0.3:
        return "text", f"free text (about {words:.0f} words per value)"
    return "category", f"{text.nunique()} distinct values"


def _looks_like_id(name: str, column: pd.Series, kind: str) -> bool:
    """Unique-per-row columns that carry no generalisable signal.

    Floats that happen to be unique (measurements) are not ids; strings without
    spaces and integer runs are.
    """
    n = len(column)
    if n < 20 or column.isna().any() or column.nunique() != n:
        return False
    if _ID_NAME.search(str(name)):
        return True
    if kind == "category":
        return True
    if kind == "number" and ptypes.is_integer_dtype(column):
        ordered = np.sort(column.to_numpy())
        return bool(np.all(np.diff(ordered) == 1))
    return False


def _missing_column_message(name: str, available) -> str:
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in available], n=1)
    suggestion = f"; did you mean {close[0]!r}?" if close else ""
    return f"column {name!r} not found{suggestion}"

"""Typed configuration, validated once at the boundary (CLI, YAML, Python call).

Every field is also a CLI flag (``learning_rate`` <-> ``--learning-rate``) and a
YAML key (either spelling). An invalid value raises ConfigError naming the flag.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path

from deepstrata.errors import ConfigError


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass
class FitConfig:
    """Everything ``fit`` needs besides the data.

    >>> FitConfig(learning_rate=-1).validate()
    Traceback (most recent call last):
    ...
    deepstrata.errors.ConfigError: --learning-rate: must be > 0, got -1
    """

    target: str | None = None
    task: str | None = None  # binary | multiclass | regression; inferred when None
    columns: dict[str, str] = field(default_factory=dict)  # NAME -> KIND overrides
    ignore: list[str] = field(default_factory=list)
    hidden_dims: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.1
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int | None = None  # None: chosen from the number of training rows
    max_epochs: int = 200
    patience: int = 20  # epochs without validation-loss improvement before stopping
    min_delta: float = 1e-4  # smallest improvement that counts
    validation_fraction: float = 0.2
    time_limit: float | None = None  # seconds of training; the best weights so far are kept
    min_category_count: int = 2
    text_max_length: int = 64
    seed: int = 0

    def validate(self) -> FitConfig:
        from deepstrata.data.schema import KINDS, TASKS

        if self.task is not None and self.task not in TASKS:
            raise ConfigError(
                f"expected one of {', '.join(TASKS)}, got {self.task!r}", option="--task"
            )
        for name, kind in self.columns.items():
            if kind not in KINDS:
                raise ConfigError(
                    f"unknown kind {kind!r} for column {name!r}; expected one of {', '.join(KINDS)}",
                    option="--column",
                )
        if not self.hidden_dims or any(int(h) < 1 for h in self.hidden_dims):
            raise ConfigError(
                f"expected positive layer widths, got {self.hidden_dims}", option="--hidden-dims"
            )
        _check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)", self.dropout)
        _check(self.learning_rate > 0, "learning_rate", "must be > 0", self.learning_rate)
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0", self.weight_decay)
        _check(
            self.batch_size is None or self.batch_size >= 1,
            "batch_size",
            "must be >= 1",
            self.batch_size,
        )
        _check(self.max_epochs >= 1, "max_epochs", "must be >= 1", self.max_epochs)
        _check(self.patience >= 1, "patience", "must be >= 1", self.patience)
        _check(self.min_delta >= 0, "min_delta", "must be >= 0", self.min_delta)
        _check(
            0 < self.validation_fraction < 1,
            "validation_fraction",
            "must be in (0, 1)",
            self.validation_fraction,
        )
        _check(
            self.time_limit is None or self.time_limit > 0,
            "time_limit",
            "must be > 0 seconds",
            self.time_limit,
        )
        _check(
            self.min_category_count >= 1,
            "min_category_count",
            "must be >= 1",
            self.min_category_count,
        )
        _check(self.text_max_length >= 1, "text_max_length", "must be >= 1", self.text_max_length)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> FitConfig:
        """Build from a mapping whose keys are field names or CLI flags; unknown keys fail."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in data.items():
            name = str(key).lstrip("-").replace("-", "_")
            if name == "column":  # the CLI flag is singular and repeatable
                name = "columns"
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=1)
                suggestion = f"; did you mean {flag(close[0])!r}?" if close else ""
                raise ConfigError(f"unknown key in {source}{suggestion}", option=str(key))
            if name == "columns":
                value = parse_columns(value)
            values[name] = value
        try:
            return cls(**values)
        except TypeError as error:  # pragma: no cover - dataclass signature mismatch
            raise ConfigError(str(error)) from error


def parse_columns(value) -> dict[str, str]:
    """``{"a": "category"}``, ``["a=category"]`` or ``"a=category"`` -> ``{"a": "category"}``."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    items = [value] if isinstance(value, str) else list(value or [])
    columns = {}
    for item in items:
        name, sep, kind = str(item).rpartition("=")
        if not sep or not name:
            raise ConfigError(f"expected NAME=KIND, got {item!r}", option="--column")
        columns[name.strip()] = kind.strip()
    return columns


def load_config_file(path: str | Path) -> dict:
    """Read a YAML config file into a plain mapping (keys as written)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found", option="--config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid YAML: {error}", option="--config") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of option: value", option="--config")
    return data


def _check(ok: bool, name: str, requirement: str, value) -> None:
    if not ok:
        raise ConfigError(f"{requirement}, got {value}", option=flag(name))

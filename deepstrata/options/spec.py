"""Configuration as data: an option declares its default, help and constraint once.

Every setting a user can give ``fit`` is an :class:`Option`. From the list of options
follow the :class:`~deepstrata.config.FitConfig` fields, the command line's flags (a
flag per option, its help and ``[default]`` from here), the YAML keys, the scikit-learn
estimators' parameters and the checks. A kind's options live in its ``Kind`` entry
(:mod:`deepstrata.kinds`); the rest in :mod:`deepstrata.config`.

A constraint is a small object with ``check(value, values) -> requirement | None``:
``None`` when the value is fine, else the sentence the error starts with (the flag is
named by the checker). ``values`` holds every option's value, for the few constraints
that relate two options (``MultipleOf("text_heads")``).

>>> option = Option("patience", 20, "Epochs without improvement before stopping.", AtLeast(1))
>>> option.flag, option.check(0, {})
('--patience', 'must be >= 1, got 0')

Nothing here imports torch or pandas: the command line builds its flags from it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deepstrata.errors import ConfigError

__all__ = [
    "AtLeast",
    "Choice",
    "Each",
    "Interval",
    "Lazy",
    "ListOf",
    "MultipleOf",
    "Option",
    "check_values",
    "flag",
]


def flag(name: str) -> str:
    """``learning_rate`` -> ``--learning-rate``."""
    return "--" + name.replace("_", "-")


# -- constraints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One of ``choices``; ``several``: a comma-separated list of them (or ``none``)."""

    choices: tuple[str, ...]
    several: bool = False

    def __init__(self, *choices: str, several: bool = False) -> None:
        object.__setattr__(self, "choices", tuple(choices))
        object.__setattr__(self, "several", several)

    def check(self, value, values: Mapping) -> str | None:
        if self.several:
            parts = [part.strip() for part in str(value).split(",") if part.strip()]
            if parts in (["none"], []) or set(parts) <= set(self.choices):
                return None
            listed = ", ".join(self.choices)
            return f"expected a comma-separated list of {listed} (or none), got {value!r}"
        if value in self.choices:
            return None
        return f"expected one of {', '.join(self.choices)}, got {value!r}"

    def describe(self) -> str:
        return ",".join(self.choices) if self.several else " | ".join(self.choices)


@dataclass(frozen=True)
class Interval:
    """A number in ``[low, high]``; ``open`` names the ends left out ("low", "high", "both")."""

    low: float = -math.inf
    high: float = math.inf
    open: str = ""
    unit: str = ""
    alternative: str = ""  # another accepted word, said in the requirement ("auto")

    def check(self, value, values: Mapping) -> str | None:
        if isinstance(value, str):  # the alternative word (checked by the option's type)
            return None
        low_ok = value > self.low if self.open in ("low", "both") else value >= self.low
        high_ok = value < self.high if self.open in ("high", "both") else value <= self.high
        if low_ok and high_ok:
            return None
        return f"must be {self.describe()}, got {value}"

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        unit += f" or {self.alternative}" if self.alternative else ""
        if self.high == math.inf:
            sign = ">" if self.open in ("low", "both") else ">="
            return f"{sign} {_number(self.low)}{unit}"
        left = "(" if self.open in ("low", "both") else "["
        right = ")" if self.open in ("high", "both") else "]"
        return f"in {left}{_number(self.low)}, {_number(self.high)}{right}{unit}"


def AtLeast(low: float, unit: str = "") -> Interval:
    """A number >= ``low``."""
    return Interval(low, unit=unit)


@dataclass(frozen=True)
class ListOf:
    """A non-empty list whose every item meets ``item``; with ``length``, as long as the
    list option of that name; with ``single``, one value (not a list) is allowed too."""

    item: Interval
    length: str | None = None
    single: bool = False

    def check(self, value, values: Mapping) -> str | None:
        if self.single and not isinstance(value, list | tuple):
            problem = self.item.check(value, values)
            return None if problem is None else f"each value {self.item.describe()}, got {value}"
        if not value:
            return f"expected at least one value, got {value}"
        for entry in value:
            if self.item.check(entry, values) is not None:
                return f"each value {self.item.describe()}, got {value}"
        if self.length is not None and len(value) != len(values.get(self.length) or []):
            return f"needs one value per {flag(self.length)} entry ({len(values[self.length])})"
        return None


@dataclass(frozen=True)
class MultipleOf:
    """A whole number that the option ``other`` divides."""

    other: str

    def check(self, value, values: Mapping) -> str | None:
        divisor = values.get(self.other)
        if not divisor or value % divisor == 0:
            return None
        return f"must be a multiple of {flag(self.other)} ({divisor}), got {value}"


@dataclass(frozen=True)
class Lazy:
    """A check that needs heavy code (``"module:function"``, imported when it runs):
    ``function(value, values) -> requirement | None``."""

    reference: str

    def check(self, value, values: Mapping) -> str | None:
        import importlib

        module, _, name = self.reference.partition(":")
        return getattr(importlib.import_module(module), name)(value, values)


@dataclass(frozen=True)
class Each:
    """Every constraint in ``parts`` holds (say ``Each(AtLeast(1), MultipleOf(...))``)."""

    parts: tuple

    def __init__(self, *parts) -> None:
        object.__setattr__(self, "parts", parts)

    def check(self, value, values: Mapping) -> str | None:
        for part in self.parts:
            problem = part.check(value, values)
            if problem is not None:
                return problem
        return None


# -- options -------------------------------------------------------------------------------

# The value types an option can hold. "auto" options take a number or the word auto; "list"
# options a list of numbers ("256,128" on the command line); "one-or-list" either.
TYPES = (
    "int",
    "float",
    "str",
    "bool",
    "int-list",
    "float-or-list",
    "float-or-auto",
    "dict",
    "str-list",
)


@dataclass(frozen=True)
class Option:
    """One setting: its name (the flag is ``--`` + the name with dashes), default, help,
    constraint and value type. ``optional``: None is allowed (its meaning: the help's).
    ``encoder``: a kind's encoder reads it, so a bundle stores it with the architecture.
    ``sklearn``: a parameter of the scikit-learn estimators. ``cli``: a flag of ``fit``
    (False for the options the command line spells its own way)."""

    name: str
    default: Any
    help: str
    constraint: Any = None
    type: str = ""
    optional: bool = False
    encoder: bool = False
    sklearn: bool = False
    cli: bool = True
    group: str = "training"
    metavar: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.type:
            object.__setattr__(self, "type", _type_of(self.default))
        if self.type not in TYPES:
            raise ValueError(f"option {self.name}: unknown type {self.type!r}")

    @property
    def flag(self) -> str:
        return flag(self.name)

    def parse(self, value):
        """``value`` as the option's type (the command line gives text); ConfigError if not."""
        if value is None:
            if self.optional:
                return None
            raise ConfigError(f"expected a value, got {value!r}", option=self.flag)
        kind = self.type
        if kind == "int":
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            if not _is_integer(value):
                raise ConfigError(f"expected a whole number, got {value!r}", option=self.flag)
            return int(value)
        if kind == "float":
            return self._float(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"expected true or false, got {value!r}", option=self.flag)
            return value
        if kind == "str":
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ConfigError(f"expected text, got {value!r}", option=self.flag)
            return str(value)
        if kind == "float-or-auto":
            return "auto" if value == "auto" else self._float(value, "a number or auto")
        if kind == "int-list":
            return [self._whole(v) for v in _items(value)]
        if kind == "float-or-list":
            items = [self._float(v) for v in _items(value)]
            return items[0] if not isinstance(value, list | tuple) and len(items) == 1 else items
        if kind == "str-list":
            return [str(v) for v in ([value] if isinstance(value, str) else list(value))]
        return value  # dict: parsed by its owner (--column)

    def check(self, value, values: Mapping) -> str | None:
        """The requirement ``value`` misses (with the value), or None."""
        if value is None or self.constraint is None:
            return None
        return self.constraint.check(value, values)

    def described_default(self) -> str:
        """The default as the help shows it: ``[0.1]``, ``[auto]``, ``[off]``."""
        if "shown" in self.extra:
            return self.extra["shown"]
        if self.default is None:
            return "off"
        if isinstance(self.default, list):
            return ",".join(str(v) for v in self.default)
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return str(self.default)

    def _float(self, value, expected: str = "a number") -> float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"expected {expected}, got {value!r}", option=self.flag) from None
        if not _is_number(value):
            raise ConfigError(f"expected {expected}, got {value!r}", option=self.flag)
        return value

    def _whole(self, value) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if not _is_integer(value):
            raise ConfigError(
                f"expected comma-separated whole numbers, got {value!r}", option=self.flag
            )
        return int(value)


def check_values(values: dict, options: Mapping[str, Option]) -> dict:
    """Each value parsed to its option's type and checked against its constraint, in
    place; the first problem is a ConfigError naming the flag. Returns ``values``."""
    for name, option in options.items():
        values[name] = option.parse(values[name])
    for name, option in options.items():
        problem = option.check(values[name], values)
        if problem is not None:
            raise ConfigError(problem, option=option.flag)
    return values


def _items(value) -> list:
    if isinstance(value, str):
        return [part for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _type_of(default) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, dict):
        return "dict"
    raise ValueError(f"give the type of an option whose default is {default!r}")


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number(value: float) -> str:
    return f"{value:g}"

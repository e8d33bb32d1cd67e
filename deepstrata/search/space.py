"""The search space, derived from the configuration's options (:mod:`deepstrata.config`).

Each searched decision is a :class:`Param` over one option (or one part of it: the
combiner's depth and each layer's width make ``hidden_dims``; a factor around the
range test's suggestion makes ``learning_rate``). Its range is checked against the
option's own constraint (``Choice`` gives the choices, ``Interval``/``AtLeast`` bound
the numbers), so a space can never propose a value ``fit`` would refuse. A decision
has a condition: a kind present in the data (a text width only when there is text),
a classifier (label smoothing) or another decision's value (transformer layers only
for the transformer encoder, a classical head only for ``--strategy features``).

A YAML file's ``search_space:`` narrows or widens it, key by key::

    search_space:
      dropout: {low: 0.0, high: 0.3}
      schedule: [onecycle, plateau]      # choices
      text_encoder: bag                  # fixed: not searched
      max_epochs: {low: 10, high: 60}    # any numeric option can be added
      mixup: false                       # left out (its default)

>>> space = SearchSpace.default()
>>> space["dropout"].low, space["dropout"].high
(0.0, 0.5)
>>> SearchSpace.default().narrowed({"dropout": {"low": 0, "high": 2}})
Traceback (most recent call last):
...
deepstrata.errors.ConfigError: search_space.dropout: high 2: must be in [0, 1), got 2.0
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from deepstrata.config import OPTIONS
from deepstrata.errors import ConfigError
from deepstrata.options import Choice, Interval, ListOf

__all__ = ["LAYERS", "LR_FACTOR", "Context", "Param", "SearchSpace"]

LAYERS = "hidden_layers"  # the combiner's depth: hidden_dims has this many widths
LR_FACTOR = "learning_rate_factor"  # times the range test's suggestion
MAX_LAYERS = 4


@dataclass(frozen=True)
class Context:
    """What the data holds that a condition asks about: its kinds and whether it is
    a classification task."""

    kinds: frozenset[str] = frozenset()
    classifier: bool = True


@dataclass(frozen=True)
class Param:
    """One decision: ``kind`` is ``float``, ``int`` or ``choice``; ``option`` the option
    whose constraint bounds it; ``when`` its condition: ``kind:text``, ``classifier`` or
    ``NAME=a|b`` (another decision's value)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    option: str | None = None
    when: tuple[str, ...] = ()
    step: int | None = None

    def distribution(self):
        import optuna

        if self.kind == "choice":
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return optuna.distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=self.step or 1
            )
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def suggest(self, trial):
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), log=self.log, step=self.step or 1
            )
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def applies(self, context: Context, chosen: Mapping) -> bool:
        for condition in self.when:
            if condition.startswith("kind:"):
                if not set(condition[5:].split("|")) & context.kinds:
                    return False
            elif condition == "classifier":
                if not context.classifier:
                    return False
            else:
                name, _, values = condition.partition("=")
                if str(chosen.get(name)) not in values.split("|"):
                    return False
        return True

    def to_dict(self) -> dict:
        return {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if not (v is None or v is False or (isinstance(v, tuple) and not v))
        }


def _choices(name: str, *, leave_out: tuple = ()) -> tuple:
    constraint = OPTIONS[name].constraint
    return tuple(c for c in constraint.choices if c not in leave_out)


# The default space: the ranges people search (Keras Tuner, Ludwig and the papers' spaces),
# each checked against its option's constraint when the space is made.
_DEFAULTS = (
    Param(LAYERS, "int", 1, 3, option=None),
    *(
        Param(f"hidden_dim_{i}", "int", 16, 512, log=True, option="hidden_dims", when=(f"{LAYERS}={'|'.join(str(n) for n in range(i + 1, MAX_LAYERS + 1))}",))
        for i in range(MAX_LAYERS)
    ),
    Param("dropout", "float", 0.0, 0.5, option="dropout"),
    Param(LR_FACTOR, "float", 0.2, 5.0, log=True),
    Param("weight_decay", "float", 1e-6, 1e-2, log=True, option="weight_decay"),
    Param("batch_size", "choice", choices=(16, 32, 64, 128, 256), option="batch_size"),
    Param("schedule", "choice", choices=_choices("schedule"), option="schedule"),
    Param("mixup", "float", 0.0, 0.4, option="mixup"),
    Param("label_smoothing", "float", 0.0, 0.2, option="label_smoothing", when=("classifier",)),
    Param("strategy", "choice", choices=_choices("strategy", leave_out=("auto",)), option="strategy", when=("kind:text|image",)),
    Param("head", "choice", choices=_choices("head", leave_out=("auto",)), option="head", when=("strategy=features",)),
    Param("text_encoder", "choice", choices=_choices("text_encoder"), option="text_encoder", when=("kind:text", "strategy=scratch")),
    Param("text_width", "int", 32, 256, step=16, option="text_width", when=("kind:text", "strategy=scratch", "text_encoder=transformer|cnn|bag")),
    Param("text_layers", "int", 1, 4, option="text_layers", when=("kind:text", "strategy=scratch", "text_encoder=transformer")),
    Param("image_width", "int", 8, 64, log=True, option="image_width", when=("kind:image", "strategy=scratch")),
    Param("image_depth", "int", 1, 4, option="image_depth", when=("kind:image", "strategy=scratch")),
    Param("freeze", "choice", choices=_choices("freeze"), option="freeze", when=("strategy=finetune",)),
    Param("pretrained_lr_scale", "float", 0.01, 1.0, log=True, option="pretrained_lr_scale", when=("strategy=finetune",)),
    Param("audio_width", "int", 8, 64, log=True, option="audio_width", when=("kind:audio",)),
    Param("audio_depth", "int", 1, 4, option="audio_depth", when=("kind:audio",)),
)  # fmt: skip


@dataclass
class SearchSpace:
    """The decisions, in the order a trial takes them (a condition refers to earlier ones)."""

    params: dict[str, Param] = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)  # search_space entries given one value

    @classmethod
    def default(cls) -> SearchSpace:
        space = cls({p.name: p for p in _DEFAULTS})
        for param in space.params.values():
            _check_param(param, "search space")
        return space

    def __getitem__(self, name: str) -> Param:
        return self.params[name]

    def narrowed(self, entries: Mapping | None, *, source: str = "search_space") -> SearchSpace:
        """A copy with the YAML ``search_space:`` ``entries`` applied (see the module
        docstring); ConfigError naming ``search_space.KEY`` for a key that is not a
        decision or an option, or a range outside the option's constraint."""
        if entries is None:
            return self
        if not isinstance(entries, Mapping):
            raise ConfigError("expected a mapping of option: range", option=source)
        params, fixed = dict(self.params), dict(self.fixed)
        for key, entry in entries.items():
            name = str(key).replace("-", "_")
            where = f"{source}.{key}"
            base = params.get(name)
            if base is None and name not in OPTIONS:
                known = [*params, *OPTIONS]
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"not a searchable option{hint}", option=where)
            if entry is False or entry is None:
                params.pop(name, None)
                continue
            param = _entry_param(name, entry, base, where)
            if param is None:  # one value: fixed
                _check_value(name, entry, where)
                params.pop(name, None)
                fixed[name] = entry
                continue
            _check_param(param, where)
            if name == LAYERS and not 1 <= param.low <= param.high <= MAX_LAYERS:
                raise ConfigError(f"expected a range within [1, {MAX_LAYERS}]", option=where)
            params[name] = param
        return SearchSpace(params, fixed)

    def suggest(self, trial, context: Context) -> dict:
        """The trial's decisions (only those whose condition holds), by name."""
        chosen: dict = {}
        for param in self.params.values():
            if param.applies(context, chosen):
                chosen[param.name] = param.suggest(trial)
        return chosen

    def defaults(self, context: Context) -> dict:
        """The decisions that reproduce the default configuration (the baseline trial)."""
        chosen: dict = {}
        for param in self.params.values():
            if not param.applies(context, chosen):
                continue
            value = _default_of(param, chosen)
            if value is not None:
                chosen[param.name] = value
        return chosen

    def to_dict(self) -> dict:
        return {"params": [p.to_dict() for p in self.params.values()], "fixed": self.fixed}

    @classmethod
    def from_dict(cls, data: Mapping) -> SearchSpace:
        params = {}
        for entry in data.get("params", []):
            entry = dict(entry)
            entry["choices"] = tuple(entry.get("choices", ()))
            entry["when"] = tuple(entry.get("when", ()))
            params[entry["name"]] = Param(**entry)
        return cls(params, dict(data.get("fixed", {})))


def _default_of(param: Param, chosen: Mapping):
    """The option's default as this decision sees it; None when the default is no value
    the decision can take (say ``batch_size``: chosen from the row count)."""
    defaults = OPTIONS["hidden_dims"].default
    if param.name == LAYERS:
        return len(defaults)
    if param.name.startswith("hidden_dim_"):
        index = int(param.name.rsplit("_", 1)[1])
        return defaults[index] if index < len(defaults) else None
    if param.name == LR_FACTOR:
        return 1.0
    if param.option is None or param.option not in OPTIONS:
        return None
    value = OPTIONS[param.option].default
    if param.kind == "choice":
        return value if value in param.choices else None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return min(max(value, param.low), param.high)


def to_options(chosen: Mapping, space: SearchSpace) -> dict:
    """A trial's decisions as ``fit`` options: the widths joined into ``hidden_dims``, the
    learning-rate factor left for the objective (it needs the suggestion)."""
    options = dict(space.fixed)
    layers = chosen.get(LAYERS)
    for name, value in chosen.items():
        if name in (LAYERS, LR_FACTOR) or name.startswith("hidden_dim_"):
            continue
        options[name] = value
    if layers is not None:
        options["hidden_dims"] = [int(chosen[f"hidden_dim_{i}"]) for i in range(layers)]
    return options


def _entry_param(name: str, entry, base: Param | None, where: str) -> Param | None:
    option = base.option if base is not None else name
    if isinstance(entry, list | tuple):
        if not entry:
            raise ConfigError("expected at least one choice", option=where)
        return Param(name, "choice", choices=tuple(entry), option=option, when=_when(base))
    if isinstance(entry, Mapping):
        unknown = set(entry) - {"low", "high", "log", "step"}
        if unknown or not {"low", "high"} <= set(entry):
            raise ConfigError(
                f"expected {{low: ..., high: ...}} (and log, step), got {dict(entry)}",
                option=where,
            )
        low, high = entry["low"], entry["high"]
        for end, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{end} must be a number, got {value!r}", option=where)
        if low > high:
            raise ConfigError(f"low {low} is above high {high}", option=where)
        whole = _integer_option(option) if base is None else base.kind == "int"
        log = bool(entry.get("log", base.log if base is not None else False))
        if log and low <= 0:
            raise ConfigError(f"a log range needs low > 0, got {low}", option=where)
        return Param(
            name,
            "int" if whole else "float",
            int(low) if whole else float(low),
            int(high) if whole else float(high),
            log=log,
            option=option,
            when=_when(base),
            step=entry.get("step", base.step if base is not None else None),
        )
    return None


def _when(base: Param | None) -> tuple:
    return base.when if base is not None else ()


def _integer_option(name: str | None) -> bool:
    return name is not None and name in OPTIONS and OPTIONS[name].type in ("int", "int-list")


def _check_param(param: Param, where: str) -> None:
    """Every value the decision can take meets its option's constraint."""
    if param.kind == "choice":
        for choice in param.choices:
            _check_value(param.option or param.name, choice, where)
        return
    for end, value in (("low", param.low), ("high", param.high)):
        if not math.isfinite(value):
            raise ConfigError(f"{end} must be finite, got {value}", option=where)
        if param.option is not None and param.option in OPTIONS:
            problem = _problem(param.option, value)
            if problem is not None:
                raise ConfigError(f"{end} {value:g}: {problem}", option=where)


def _check_value(name: str, value, where: str) -> None:
    if name not in OPTIONS:
        return
    option = OPTIONS[name]
    try:
        parsed = option.parse(value)
    except ConfigError as error:
        raise ConfigError(error.message, option=where) from None
    problem = _problem(name, parsed)
    if problem is not None:
        raise ConfigError(problem, option=where)


def _problem(name: str, value) -> str | None:
    """The requirement ``value`` misses for one entry of option ``name`` (a list
    option's item constraint for a width), ignoring rules that relate options."""
    constraint = OPTIONS[name].constraint
    if constraint is None:
        return None
    if isinstance(constraint, ListOf):
        constraint = constraint.item
    if isinstance(constraint, Interval | Choice):
        return constraint.check(value, {})
    parts = getattr(constraint, "parts", ())
    for part in parts:
        if isinstance(part, Interval):
            return part.check(value, {})
    return None

"""What ``fit`` can be told besides the data: :class:`FitConfig`, made from option specs.

Each option is declared once, as an :class:`~deepstrata.options.Option` (default, help,
constraint): the general ones below, a kind's in its ``Kind`` entry
(:mod:`deepstrata.kinds`). :class:`FitConfig` has one field per option, and from the same
specs the command line makes its flags (``learning_rate`` <-> ``--learning-rate``),
YAML files their keys (either spelling) and :mod:`deepstrata.sklearn` its parameters.

A FitConfig is checked when it is made, once, at the boundary (a flag, a YAML file, a
Python call): every option against its constraint, then the few rules that relate
options. An invalid value raises ConfigError naming the flag.

>>> FitConfig(learning_rate=-1)
Traceback (most recent call last):
...
deepstrata.errors.ConfigError: --learning-rate: must be > 0 or auto, got -1
>>> FitConfig(max_epochs="30").max_epochs   # flags arrive as text
30
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from deepstrata import kinds
from deepstrata.errors import ConfigError
from deepstrata.options import AtLeast, Choice, Interval, ListOf, Option, flag
from deepstrata.options import audit as audit_options
from deepstrata.options import forecast as forecast_options
from deepstrata.options import imbalance as imbalance_options
from deepstrata.options import private as private_options
from deepstrata.options import stream as stream_options
from deepstrata.tasks import TASKS

__all__ = [
    "OPTIONS",
    "FitConfig",
    "default",
    "flag",
    "load_config_file",
    "parse_columns",
    "with_defaults",
]

TASK_NAMES = tuple(TASKS)
STRATEGIES = ("auto", "scratch", "finetune", "features")  # see deepstrata.pretrained.strategy
HEADS = ("auto", "logreg", "svm", "gbm", "mlp")  # --strategy features' classical heads
SCHEDULES = ("onecycle", "cosine", "constant", "plateau")  # see deepstrata.train.schedules
PRECISIONS = ("32", "bf16", "fp16", "auto")  # see deepstrata.train.precision
DEVICES = ("auto", "cpu", "cuda", "mps")

GENERAL = (
    Option(
        "target",
        None,
        "The column to predict.",
        type="str",
        optional=True,
        group="data",
        extra={"shown": "a folder's class sub-folders"},
    ),
    Option(
        "task",
        None,
        " | ".join(TASK_NAMES) + ".",
        Choice(*TASK_NAMES),
        type="str",
        optional=True,
        group="data",
        extra={"shown": "inferred"},
    ),
    Option(
        "columns", {}, "Force a column's kind: NAME=KIND.", type="dict", cli=False, group="data"
    ),
    Option("ignore", [], "Leave a column out.", type="str-list", cli=False, group="data"),
    Option(
        "hidden_dims",
        [256, 128],
        "Widths of the combiner's layers, e.g. 256,128.",
        ListOf(AtLeast(1)),
        type="int-list",
        sklearn=True,
        group="network",
    ),
    Option(
        "dropout",
        0.1,
        "One rate, or one per block, e.g. 0.3,0.1.",
        ListOf(Interval(0, 1, open="high"), length="hidden_dims", single=True),
        type="float-or-list",
        sklearn=True,
        group="network",
    ),
    Option(
        "learning_rate",
        "auto",
        "A rate, or auto: the range test's suggestion.",
        Interval(0, open="low", alternative="auto"),
        type="float-or-auto",
        sklearn=True,
    ),
    # plateau (with its warm-up) and patience 10: as accurate as the one-cycle over 200
    # epochs on most of the data sets of bench/schedules.py, and about twice as fast.
    Option("schedule", "plateau", " | ".join(SCHEDULES) + ".", Choice(*SCHEDULES)),
    Option(
        "weight_decay",
        1e-4,
        "On weight matrices; never on biases and norms.",
        AtLeast(0),
        sklearn=True,
    ),
    Option(
        "label_smoothing", 0.0, "Classifiers.", Interval(0, 1, open="high"), extra={"shown": "0"}
    ),
    Option(
        "gradient_clip",
        None,
        "Max gradient norm.",
        Interval(0, open="low"),
        type="float",
        optional=True,
    ),
    Option("mixup", 0.0, "Mixup Beta alpha, e.g. 0.2.", AtLeast(0), extra={"shown": "off"}),
    Option(
        "batch_size",
        None,
        "Rows per batch.",
        AtLeast(1),
        type="int",
        optional=True,
        sklearn=True,
        extra={"shown": "chosen from the row count"},
    ),
    Option("gradient_accumulation", 1, "Batches per optimizer step.", AtLeast(1)),
    Option("max_epochs", 200, "Epochs at most.", AtLeast(1), sklearn=True),
    Option(
        "schedule_epochs",
        None,
        "Epochs onecycle and cosine span (and train), at most --max-epochs.",
        AtLeast(1),
        type="int",
        optional=True,
        extra={"shown": "auto: about 1,500 optimizer steps, from the row count"},
    ),
    Option(
        "patience",
        10,
        "Epochs without improvement before stopping (counted once the warm-up is over).",
        AtLeast(1),
        sklearn=True,
    ),
    Option("min_delta", 1e-4, "Smallest improvement that counts.", AtLeast(0)),
    Option(
        "monitor",
        "loss",
        "What picks the best epoch: loss | accuracy (classifiers).",
        Choice("loss", "accuracy"),
    ),
    Option(
        "validation_fraction",
        0.2,
        "Rows held out to stop and calibrate on.",
        Interval(0, 1, open="both"),
        sklearn=True,
        group="validation",
    ),
    Option(
        "folds",
        None,
        "K-fold cross-validation: train K models.",
        AtLeast(2),
        type="int",
        optional=True,
        group="validation",
    ),
    Option(
        "group",
        None,
        "A column whose every value (a speaker, a patient, a user) stays on one side of "
        "the validation split, the folds and compare's test split; not an input.",
        type="str",
        optional=True,
        group="validation",
    ),
    Option(
        "group_pattern",
        None,
        "A folder of files: a column 'group' from the first capture group of this regex "
        "on each file's path in the folder, e.g. '^[^/]+/(\\w+)_' (implies --group group).",
        type="str",
        optional=True,
        group="validation",
    ),
    Option(
        "cv_model",
        "auto",
        "With --folds: refit (on all rows) | ensemble (the K models).",
        Choice("auto", "refit", "ensemble"),
        group="validation",
        extra={"shown": "refit; with --ensemble: ensemble"},
    ),
    Option("calibrate", True, "Temperature scaling.", group="validation"),
    Option("precision", "32", " | ".join(PRECISIONS) + ".", Choice(*PRECISIONS), group="device"),
    Option("device", "auto", " | ".join(DEVICES) + ".", Choice(*DEVICES), group="device"),
    Option(
        "time_limit",
        None,
        "Seconds of training at most.",
        Interval(0, open="low", unit="seconds"),
        type="float",
        optional=True,
        group="run",
    ),
    Option(
        "checkpoint_minutes",
        10.0,
        "Checkpoint long epochs this often.",
        Interval(0, open="low"),
        group="run",
        extra={"shown": "10"},
    ),
    Option("tensorboard", False, "TensorBoard event files in the run directory.", group="run"),
    Option("seed", 0, "Drives every random number.", group="run"),
    Option(
        "strategy",
        "auto",
        "scratch | finetune | features: how image and text columns use pretrained networks.",
        Choice(*STRATEGIES),
        group="pretrained",
        extra={"shown": "auto: features for small data, see the docs"},
    ),
    Option(
        "head",
        "auto",
        "features (and --ensemble's classical side): auto | logreg | svm | gbm | mlp.",
        Choice(*HEADS),
        group="pretrained",
        extra={"shown": "auto: best on validation"},
    ),
    Option(
        "freeze",
        "none",
        "finetune: none | all | gradual (a stage more each epoch).",
        Choice("none", "all", "gradual"),
        group="pretrained",
    ),
    Option(
        "pretrained_lr_scale",
        0.1,
        "finetune: pretrained layers' fraction of the learning rate.",
        Interval(0, 1, open="low"),
        group="pretrained",
    ),
    Option(
        "ensemble",
        None,
        "Also fit the best classical model (logreg, svm, gbm) on the same rows and keep "
        "the better, or the mix when that beats both on validation; --no-ensemble: the "
        "network alone. With --folds K: weighed on every row's out-of-fold outputs (K "
        "networks; steadier on small tables).",
        type="bool",
        optional=True,
        group="pretrained",
        extra={"shown": "auto: on for a table of numbers, categories, booleans, dates"},
    ),
    Option(
        "skip_bad_files",
        False,
        "Leave out rows whose image/audio file cannot be read (listed in the bundle).",
        group="files",
    ),
    Option(
        "decode_workers",
        None,
        "Processes decoding files (0: in this process).",
        AtLeast(0),
        type="int",
        optional=True,
        group="files",
        extra={"shown": "by the file count"},
    ),
)

# the options of one concern each, with the rule relating them to the rest
CONCERNS = (audit_options, imbalance_options, forecast_options, stream_options, private_options)
OPTIONS: dict[str, Option] = (
    {option.name: option for option in GENERAL}
    | {o.name: o for m in CONCERNS for o in m.OPTIONS}
    | kinds.options()
)
DEFAULTS = {name: option.default for name, option in OPTIONS.items()}


def default(name: str):
    """The declared default of the option ``name`` (a kind's or a general one).

    >>> default("text_max_length")
    128
    """
    return DEFAULTS[name]


def with_defaults(options: dict) -> dict:
    """``options`` with every declared option it lacks at its default (an older bundle's
    architecture, or a partial dict from ``embed``)."""
    return {**DEFAULTS, **options}


def _task_rule(config: FitConfig) -> None:
    """Options for classifiers only, when the task is given (else checked once inferred)."""
    if config.task is not None:
        check_for_task(config, config.task)


def check_for_task(config: FitConfig, task: str) -> None:
    """ConfigError for an option the task ``task`` cannot honour."""
    from deepstrata.tasks import get

    imbalance_options.check_for_task(config, get(task))
    if get(task).classifier:
        return
    if config.label_smoothing:
        raise ConfigError(
            f"label smoothing is for classifiers; this task is {task}, got {config.label_smoothing}",
            option="--label-smoothing",
        )
    if config.monitor != "loss":
        raise ConfigError(
            f"{config.monitor} is for classifiers; this task is {task}", option="--monitor"
        )
    if config.fairness:
        raise ConfigError(
            f"{config.fairness} compares decisions of a classifier; this task is {task}",
            option="--fairness",
        )
    for name in ("drop_label_issues", "relabel_issues"):
        if getattr(config, name):
            raise ConfigError(
                f"label errors are for classifiers; this task is {task}", option=flag(name)
            )


def _ensemble_rule(config: FitConfig) -> None:
    if config.ensemble and config.folds and config.cv_model == "refit":
        raise ConfigError(
            "--ensemble --folds keeps the K folds' networks and classical models (their "
            "out-of-fold outputs chose the weight); a refit on all rows does not go with it",
            option="--cv-model",
        )
    if config.ensemble and config.strategy == "features":
        raise ConfigError(
            "--ensemble needs a network; --strategy features has none (it is the "
            "classical side already)",
            option="--ensemble",
        )


def _group_rule(config: FitConfig) -> None:
    """--group-pattern: a regex with a capture group, naming the column --group reads."""
    if config.group_pattern is None:
        return
    import re

    try:
        pattern = re.compile(config.group_pattern)
    except re.error as error:
        raise ConfigError(
            f"not a regular expression ({error}): {config.group_pattern!r}",
            option="--group-pattern",
        ) from None
    if pattern.groups < 1:
        raise ConfigError(
            f"needs a capture group, the part of the path that names the group, e.g. "
            f"'^[^/]+/(\\w+)_'; got {config.group_pattern!r}",
            option="--group-pattern",
        )
    if config.group not in (None, GROUP_COLUMN):
        raise ConfigError(
            f"--group-pattern makes the column {GROUP_COLUMN!r}, got --group {config.group!r}; "
            "leave out one of them",
            option="--group",
        )
    config.group = GROUP_COLUMN


GROUP_COLUMN = "group"  # the column --group-pattern adds to a folder's table


RULES = (_task_rule, _ensemble_rule, _group_rule, *(m.rule for m in CONCERNS))  # relating options


def _check(self) -> None:
    """Every option parsed and checked, then the rules; resolves ``cv_model=auto``."""
    values = dataclasses.asdict(self)
    if values["columns"]:
        values["columns"] = parse_columns(values["columns"])
    from deepstrata.options import check_values

    check_values(values, OPTIONS)
    for name, value in values.items():
        object.__setattr__(self, name, value)
    for rule in RULES:
        rule(self)
    if self.cv_model == "auto":
        self.cv_model = "ensemble" if self.ensemble and self.folds else "refit"


def _validate(self) -> FitConfig:
    """Check again (a config changed by hand after it was made); returns self."""
    _check(self)
    return self


def _to_dict(self) -> dict:
    return dataclasses.asdict(self)


@classmethod
def _from_dict(cls, data: dict, *, source: str = "config") -> FitConfig:
    """Build from a mapping whose keys are field names or CLI flags; unknown keys fail."""
    values = {}
    for key, value in data.items():
        name = str(key).lstrip("-").replace("-", "_")
        if name == "column":  # the CLI flag is singular and repeatable
            name = "columns"
        if name not in OPTIONS:
            close = difflib.get_close_matches(name, list(OPTIONS), n=1)
            suggestion = f"; did you mean {flag(close[0])!r}?" if close else ""
            raise ConfigError(f"unknown key in {source}{suggestion}", option=str(key))
        values[name] = value
    return cls(**values)


def _field(option: Option):
    if isinstance(option.default, list | dict):
        default = option.default
        return dataclasses.field(default_factory=lambda: type(default)(default))
    return dataclasses.field(default=option.default)


FitConfig = dataclasses.make_dataclass(
    "FitConfig",
    [(name, object, _field(option)) for name, option in OPTIONS.items()],
    namespace={
        "__post_init__": _check,
        "validate": _validate,
        "to_dict": _to_dict,
        "from_dict": _from_dict,
        "__doc__": "Everything ``fit`` needs besides the data: one field per option "
        "(:data:`OPTIONS`), checked when made.",
        "__module__": __name__,
    },
)


def parse_columns(value) -> dict[str, str]:
    """``{"a": "category"}``, ``["a=category"]`` or ``"a=category"`` -> ``{"a": "category"}``;
    a kind that is not registered is a ConfigError naming --column.

    >>> parse_columns("zip=category")
    {'zip': 'category'}
    """
    if isinstance(value, dict):
        columns = {str(k): str(v) for k, v in value.items()}
    else:
        items = [value] if isinstance(value, str) else list(value or [])
        columns = {}
        for item in items:
            name, sep, kind = str(item).rpartition("=")
            if not sep or not name:
                raise ConfigError(f"expected NAME=KIND, got {item!r}", option="--column")
            columns[name.strip()] = kind.strip()
    for name, kind in columns.items():
        if kind not in kinds.KINDS:
            raise ConfigError(
                f"unknown kind {kind!r} for column {name!r}; expected one of "
                f"{', '.join(kinds.KINDS)}",
                option="--column",
            )
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

"""Typed configuration, validated once at the boundary (CLI, YAML, Python call).

Every field is also a CLI flag (``learning_rate`` <-> ``--learning-rate``) and a
YAML key (either spelling). An invalid value raises ConfigError naming the flag.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
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
    deepstrata.errors.ConfigError: --learning-rate: must be > 0 or auto, got -1
    """

    target: str | None = None
    task: str | None = None  # binary | multiclass | regression; inferred when None
    columns: dict[str, str] = field(default_factory=dict)  # NAME -> KIND overrides
    ignore: list[str] = field(default_factory=list)
    hidden_dims: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float | list[float] = 0.1  # one rate, or one per combiner block
    learning_rate: float | str = "auto"  # "auto": the range test's suggestion
    schedule: str = "onecycle"  # onecycle | cosine | constant | plateau
    weight_decay: float = 1e-4  # on weight matrices; never on biases and norms
    label_smoothing: float = 0.0  # classifiers only
    gradient_clip: float | None = None  # max global gradient norm
    mixup: float = 0.0  # Beta(alpha, alpha) manifold mixup; 0 turns it off
    batch_size: int | None = None  # None: chosen from the number of training rows
    gradient_accumulation: int = 1  # batches per optimizer step
    max_epochs: int = 200
    patience: int = 20  # epochs without validation-loss improvement before stopping
    min_delta: float = 1e-4  # smallest improvement that counts
    monitor: str = "loss"  # loss | accuracy (classifiers): what picks the best epoch
    validation_fraction: float = 0.2
    folds: int | None = None  # K-fold cross-validation instead of one validation split
    cv_model: str = "auto"  # with folds: refit | ensemble (the K models); auto: refit, or
    # under --ensemble the K folds' models (the ones its out-of-fold outputs measured)
    calibrate: bool = True  # temperature scaling on validation data (classifiers)
    precision: str = "32"  # 32 | bf16 | fp16 | auto
    device: str = "auto"  # auto | cpu | cuda | mps
    time_limit: float | None = None  # seconds of training; the best weights so far are kept
    checkpoint_minutes: float = 10.0  # long epochs also checkpoint this often
    tensorboard: bool = False  # event files in the run directory
    min_category_count: int = 2
    seed: int = 0
    # Pretrained networks (image, text): see deepstrata.pretrained.
    strategy: str = "auto"  # auto | scratch | finetune | features
    head: str = "auto"  # features: auto | logreg | svm | gbm | mlp
    freeze: str = "none"  # finetune: none | all | gradual (unfreeze a stage per epoch)
    pretrained_lr_scale: float = 0.1  # finetune: pretrained layers' share of the learning rate
    # The network beside the best classical model (deepstrata.ensemble).
    ensemble: bool = False  # weighted with it when that beats both on validation
    # Raw files (image and audio columns, folders of files).
    skip_bad_files: bool = False  # leave out rows whose file cannot be read (listed in the run)
    decode_workers: int | None = None  # processes decoding files; None: by the file count
    # Images: decoded once to size x size, augmented per batch on the device.
    image_size: int | None = None  # None: 64 from scratch, 224 for a pretrained network
    image_resize: str = "crop"  # crop | pad | squash
    image_augment: str = "crop,flip,rotate,color"  # any of those, or none
    image_width: int = 32  # channels of the CNN's first stage (doubled per stage)
    image_depth: int = 3  # stages of residual blocks
    max_image_pixels: int = 50_000_000  # larger images are refused (decompression bombs)
    # Free text: a subword tokenizer trained on the training split.
    text_encoder: str = "transformer"  # transformer | cnn | bag
    text_max_length: int = 128  # tokens kept per value
    text_vocabulary: int = 8000
    text_layers: int = 2
    text_heads: int = 4
    text_width: int = 64
    text_token_dropout: float = 0.1  # while training, each token is dropped with this chance
    # Audio: mono, resampled, cut or padded to a fixed length, log-mel spectrogram.
    sample_rate: int = 16000
    audio_seconds: float = 1.0
    audio_mels: int = 64
    spec_augment: bool = True
    audio_width: int = 32
    audio_depth: int = 3

    def validate(self) -> FitConfig:
        from deepstrata.data.schema import KINDS, TASKS

        self._check_types()
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
        from deepstrata.pretrained.strategy import STRATEGIES
        from deepstrata.train.precision import DEVICES, PRECISIONS
        from deepstrata.train.schedules import SCHEDULES

        rates = self.dropout if isinstance(self.dropout, list) else [self.dropout]
        _check(
            all(isinstance(r, int | float) and 0 <= r < 1 for r in rates),
            "dropout",
            "must be in [0, 1) (one rate, or one per --hidden-dims block)",
            self.dropout,
        )
        _check(
            not isinstance(self.dropout, list) or len(self.dropout) == len(self.hidden_dims),
            "dropout",
            f"needs one rate per block ({len(self.hidden_dims)})",
            self.dropout,
        )
        self.learning_rate = _number_or_auto(self.learning_rate, "learning_rate")
        _check(
            self.learning_rate == "auto" or self.learning_rate > 0,
            "learning_rate",
            "must be > 0 or auto",
            self.learning_rate,
        )
        _choice(self.schedule, SCHEDULES, "schedule")
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0", self.weight_decay)
        _check(
            0 <= self.label_smoothing < 1,
            "label_smoothing",
            "must be in [0, 1)",
            self.label_smoothing,
        )
        _check(
            self.label_smoothing == 0 or self.task != "regression",
            "label_smoothing",
            "is for classifiers; this task is regression",
            self.label_smoothing,
        )
        _check(
            self.gradient_clip is None or self.gradient_clip > 0,
            "gradient_clip",
            "must be > 0",
            self.gradient_clip,
        )
        _check(self.mixup >= 0, "mixup", "must be >= 0 (0 turns it off)", self.mixup)
        _check(
            self.gradient_accumulation >= 1,
            "gradient_accumulation",
            "must be >= 1",
            self.gradient_accumulation,
        )
        _check(self.folds is None or self.folds >= 2, "folds", "must be >= 2", self.folds)
        _choice(self.cv_model, ("auto", "refit", "ensemble"), "cv_model")
        if self.ensemble and self.folds and self.cv_model == "refit":
            raise ConfigError(
                "--ensemble --folds keeps the K folds' networks and classical models (their "
                "out-of-fold outputs chose the weight); a refit on all rows does not go with it",
                option="--cv-model",
            )
        if self.cv_model == "auto":
            self.cv_model = "ensemble" if self.ensemble and self.folds else "refit"
        if self.ensemble and self.strategy == "features":
            raise ConfigError(
                "--ensemble needs a network; --strategy features has none (it is the "
                "classical side already)",
                option="--ensemble",
            )
        self.precision = str(self.precision)
        _choice(self.precision, PRECISIONS, "precision")
        _choice(self.device, DEVICES, "device")
        _check(
            self.checkpoint_minutes > 0,
            "checkpoint_minutes",
            "must be > 0",
            self.checkpoint_minutes,
        )
        _check(
            self.batch_size is None or self.batch_size >= 1,
            "batch_size",
            "must be >= 1",
            self.batch_size,
        )
        _check(self.max_epochs >= 1, "max_epochs", "must be >= 1", self.max_epochs)
        _check(self.patience >= 1, "patience", "must be >= 1", self.patience)
        _check(self.min_delta >= 0, "min_delta", "must be >= 0", self.min_delta)
        _choice(self.monitor, ("loss", "accuracy"), "monitor")
        _check(
            self.monitor == "loss" or self.task != "regression",
            "monitor",
            "accuracy is for classifiers; this task is regression",
            self.monitor,
        )
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
        for name in (
            "text_max_length",
            "text_layers",
            "text_heads",
            "text_width",
            "image_width",
            "image_depth",
            "audio_width",
            "audio_depth",
            "audio_mels",
        ):
            _check(getattr(self, name) >= 1, name, "must be >= 1", getattr(self, name))
        _check(self.text_vocabulary >= 10, "text_vocabulary", "must be >= 10", self.text_vocabulary)
        _check(
            self.text_width % self.text_heads == 0,
            "text_width",
            f"must be a multiple of --text-heads ({self.text_heads})",
            self.text_width,
        )
        _choice(self.text_encoder, ("transformer", "cnn", "bag"), "text_encoder")
        _check(
            0 <= self.text_token_dropout < 1,
            "text_token_dropout",
            "must be in [0, 1)",
            self.text_token_dropout,
        )
        _check(
            self.image_size is None or 8 <= self.image_size <= 1024,
            "image_size",
            "must be in [8, 1024]",
            self.image_size,
        )
        _choice(self.strategy, STRATEGIES, "strategy")
        _choice(self.head, ("auto", "logreg", "svm", "gbm", "mlp"), "head")
        _choice(self.freeze, ("none", "all", "gradual"), "freeze")
        _check(
            0 < self.pretrained_lr_scale <= 1,
            "pretrained_lr_scale",
            "must be in (0, 1]",
            self.pretrained_lr_scale,
        )
        _choice(self.image_resize, ("crop", "pad", "squash"), "image_resize")
        augments = [a.strip() for a in str(self.image_augment).split(",") if a.strip()]
        _check(
            augments in (["none"], []) or set(augments) <= {"crop", "flip", "rotate", "color"},
            "image_augment",
            "expected a comma-separated list of crop, flip, rotate, color (or none)",
            self.image_augment,
        )
        _check(
            self.max_image_pixels >= 64, "max_image_pixels", "must be >= 64", self.max_image_pixels
        )
        _check(
            8000 <= self.sample_rate <= 192000,
            "sample_rate",
            "must be in [8000, 192000] Hz",
            self.sample_rate,
        )
        _check(
            0.1 <= self.audio_seconds <= 60,
            "audio_seconds",
            "must be in [0.1, 60] seconds",
            self.audio_seconds,
        )
        from deepstrata.nn.spectrogram import mel_filterbank
        from deepstrata.preprocess.audio import frame_settings

        try:  # narrow mel bands at a low rate can hold no frequency bin at all
            n_fft, _ = frame_settings(self.sample_rate)
            mel_filterbank(n_fft=n_fft, n_mels=self.audio_mels, sample_rate=self.sample_rate)
        except ValueError as error:
            raise ConfigError(str(error), option="--audio-mels") from None
        _check(
            self.decode_workers is None or self.decode_workers >= 0,
            "decode_workers",
            "must be >= 0 (0 decodes in this process)",
            self.decode_workers,
        )
        return self

    def _check_types(self) -> None:
        """Whole numbers, numbers and switches as such: a config file can hold anything."""
        for spec in dataclasses.fields(self):
            value, kind = getattr(self, spec.name), spec.type.removesuffix(" | None")
            if value is None and spec.type.endswith("| None"):
                continue
            if kind == "int" and not _is_integer(value):
                raise ConfigError(f"expected a whole number, got {value!r}", option=flag(spec.name))
            if kind == "float" and not _is_number(value):
                raise ConfigError(f"expected a number, got {value!r}", option=flag(spec.name))
            if kind == "bool" and not isinstance(value, bool):
                raise ConfigError(f"expected true or false, got {value!r}", option=flag(spec.name))

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


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _choice(value, choices, name: str) -> None:
    if value not in choices:
        raise ConfigError(f"expected one of {', '.join(choices)}, got {value!r}", option=flag(name))


def _number_or_auto(value, name: str) -> float | str:
    """``"auto"`` stays; ``"3e-4"`` (a flag's text) becomes a float."""
    if value == "auto" or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected a number or auto, got {value!r}", option=flag(name)) from None


def _check(ok: bool, name: str, requirement: str, value) -> None:
    if not ok:
        raise ConfigError(f"{requirement}, got {value}", option=flag(name))

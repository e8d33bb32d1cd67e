"""The feature-kind registry: the one place where a kind meets its code.

A kind is a preprocessor (``preprocess/<kind>.py``), an encoder (``encoders/<kind>.py``)
and one :class:`Kind` entry below. From the entry follow everything else that differs by
kind: its ``fit`` flags and their defaults (``options``), the file extensions of a folder
of such files, how a value arrives over HTTP, the synthetic values an ONNX export is
checked on, how the report shows a value, and the block it gives a classical model under
``--strategy features``. The schema, configuration, command line, server, exporter,
report and network builder read the entry; none of them lists kinds.

The code is named as ``"module:attribute"`` and imported on first use (as a plugin
registry does), so this module, and with it ``deepstrata --help``, needs neither torch
nor pandas. ``deepstrata.testing.check_kind`` checks an entry end to end (fit, state,
encoder, HTTP field, ONNX sample); ``tests/testing/test_checks.py`` runs it over every kind.

>>> get("text").preprocessor.__name__
'TextPreprocessor'
>>> [option.default for option in get("text").options if option.name == "text_max_length"]
[128]
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from deepstrata.errors import ConfigError
from deepstrata.options import AtLeast, Choice, Each, Interval, Lazy, MultipleOf, Option

__all__ = ["KINDS", "Kind", "encoder_options", "get", "group_by_kind", "options"]

# What an encoder that may be pretrained reads besides its kind's options: the strategy,
# the network per kind ({"image": "efficientnet-lite0"}, set by the fit) and the
# pretrained layers' rate factor.
PRETRAINED_OPTIONS = ("strategy", "pretrained", "pretrained_lr_scale")


@dataclass(frozen=True)
class Kind:
    """One kind of column and where its code is.

    ``preprocessor``, ``encoder``, ``features``, ``http`` and ``sample`` name code as
    ``"module:attribute"``; the properties of the same names import it.

    - ``preprocessor``: a :class:`~deepstrata.preprocess.base.Preprocessor` class with
      ``from_options(options)``;
    - ``encoder``: ``build(fitted preprocessors, options) -> nn.Module`` with ``out_dim``;
    - ``features``: the same for ``--strategy features`` (fixed features for a classical
      model), or ``None`` when the kind has none;
    - ``http``: a :class:`~deepstrata.preprocess.base.HttpField` (a JSON value in, the
      value the preprocessor takes out, its JSON Schema);
    - ``sample``: ``sample(fitted preprocessor, rng, rows) -> list`` of raw values spread
      over what it was fitted on, missing values included (the ONNX export's check);
    - ``show``: how the report shows a value: ``plain``, ``number`` (to 6 digits), ``text``
      (cut short), ``image`` (a thumbnail) or ``file`` (the file's path);
    - ``files``: values are paths to files (decoded once, ``--skip-bad-files``);
    - ``pretrained``: a registered pretrained network can encode it (``--strategy``);
    - ``extensions``: file name endings of such files in a folder of files;
    - ``options``: its ``fit`` options; ``reads``: other options its encoder reads.
    """

    name: str
    preprocessor_ref: str
    encoder_ref: str
    http_ref: str
    sample_ref: str
    examples_ref: str
    features_ref: str | None = None
    show: str = "plain"
    files: bool = False
    pretrained: bool = False
    extensions: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    reads: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def preprocessor(self):
        return _load(self.preprocessor_ref)

    @property
    def build_encoder(self):
        return _load(self.encoder_ref)

    @property
    def build_features(self):
        """The features-mode block builder, or None: no fixed features for this kind."""
        return _load(self.features_ref) if self.features_ref else None

    @property
    def http(self):
        return _load(self.http_ref)

    @property
    def sample(self):
        return _load(self.sample_ref)

    @property
    def examples(self):
        """``examples(rng, rows, folder) -> list``: raw training values (files written into
        ``folder``), what :func:`deepstrata.testing.check_kind` fits on."""
        return _load(self.examples_ref)

    @property
    def encoder_options(self) -> tuple[str, ...]:
        """Option names its encoder reads: stored with a bundle's architecture, so that
        loading builds the same modules."""
        return tuple(o.name for o in self.options if o.encoder) + self.reads

    def new_preprocessor(self, options: dict):
        """An unfitted preprocessor for a fit with ``options`` (this kind's options it
        lacks at their defaults)."""
        own = {option.name: option.default for option in self.options}
        return self.preprocessor.from_options({**own, **options})


def _dense(name: str, **kw) -> Kind:
    """Number, boolean and date columns: one float block each, passed on as it is."""
    return Kind(
        name,
        preprocessor_ref=f"deepstrata.preprocess.{name}:{name.capitalize()}Preprocessor",
        encoder_ref="deepstrata.encoders.dense:build_dense_encoder",
        features_ref="deepstrata.encoders.dense:build_dense_encoder",
        http_ref=f"deepstrata.preprocess.{name}:HTTP",
        sample_ref=f"deepstrata.preprocess.{name}:sample",
        examples_ref=f"deepstrata.preprocess.{name}:examples",
        **kw,
    )


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        _dense("number", show="number"),
        _dense("boolean"),
        _dense("datetime"),
        Kind(
            "category",
            preprocessor_ref="deepstrata.preprocess.category:CategoryPreprocessor",
            encoder_ref="deepstrata.encoders.category:build_category_encoder",
            features_ref="deepstrata.encoders.category:build_one_hot",
            http_ref="deepstrata.preprocess.category:HTTP",
            sample_ref="deepstrata.preprocess.category:sample",
            examples_ref="deepstrata.preprocess.category:examples",
            options=(
                Option(
                    "min_category_count",
                    2,
                    "Categories: values seen fewer times share the unknown bucket.",
                    AtLeast(1),
                    group="data",
                ),
            ),
        ),
        Kind(
            "text",
            preprocessor_ref="deepstrata.preprocess.text:TextPreprocessor",
            encoder_ref="deepstrata.encoders.text:build_text_encoder",
            features_ref="deepstrata.encoders.text:build_text_encoder",
            http_ref="deepstrata.preprocess.text:HTTP",
            sample_ref="deepstrata.preprocess.text:sample",
            examples_ref="deepstrata.preprocess.text:examples",
            show="text",
            pretrained=True,
            extensions=(".txt",),
            reads=PRETRAINED_OPTIONS,
            options=(
                Option(
                    "text_encoder",
                    "transformer",
                    "Text: transformer | bag | cnn.",
                    Choice("transformer", "bag", "cnn"),
                    encoder=True,
                    group="text",
                ),
                Option("text_max_length", 128, "Text: tokens kept.", AtLeast(1), group="text"),
                Option(
                    "text_vocabulary",
                    8000,
                    "Text: subword vocabulary size.",
                    AtLeast(10),
                    group="text",
                ),
                Option(
                    "text_layers",
                    2,
                    "Text: transformer layers.",
                    AtLeast(1),
                    encoder=True,
                    group="text",
                ),
                Option(
                    "text_heads",
                    4,
                    "Text: attention heads.",
                    AtLeast(1),
                    encoder=True,
                    group="text",
                ),
                Option(
                    "text_width",
                    64,
                    "Text: model width (a multiple of --text-heads).",
                    Each(AtLeast(1), MultipleOf("text_heads")),
                    encoder=True,
                    group="text",
                ),
                Option(
                    "text_token_dropout",
                    0.1,
                    "Text: chance of dropping each token in training.",
                    Interval(0, 1, open="high"),
                    encoder=True,
                    group="text",
                ),
            ),
        ),
        Kind(
            "image",
            preprocessor_ref="deepstrata.preprocess.image:ImagePreprocessor",
            encoder_ref="deepstrata.encoders.image:build_image_encoder",
            features_ref="deepstrata.encoders.image:build_image_encoder",
            http_ref="deepstrata.preprocess.image:HTTP",
            sample_ref="deepstrata.preprocess.image:sample",
            examples_ref="deepstrata.preprocess.image:examples",
            show="image",
            files=True,
            pretrained=True,
            extensions=(".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"),
            reads=PRETRAINED_OPTIONS,
            options=(
                Option(
                    "image_size",
                    None,
                    "Images: pixels per side.",
                    Interval(8, 1024),
                    type="int",
                    optional=True,
                    group="image",
                    extra={"shown": "64; 224 pretrained"},
                ),
                Option(
                    "image_resize",
                    "crop",
                    "Images: crop | pad | squash to a square.",
                    Choice("crop", "pad", "squash"),
                    group="image",
                ),
                Option(
                    "image_augment",
                    "crop,flip,rotate,color",
                    "Images: any of crop,flip,rotate,color, or none.",
                    Choice("crop", "flip", "rotate", "color", several=True),
                    encoder=True,
                    group="image",
                    extra={"shown": "all four"},
                ),
                Option(
                    "image_width",
                    32,
                    "Images: CNN channels in its first stage.",
                    AtLeast(1),
                    encoder=True,
                    group="image",
                ),
                Option(
                    "image_depth",
                    3,
                    "Images: CNN stages of residual blocks.",
                    AtLeast(1),
                    encoder=True,
                    group="image",
                ),
                Option(
                    "max_image_pixels",
                    50_000_000,
                    "Images: larger ones are refused.",
                    AtLeast(64),
                    group="image",
                ),
            ),
        ),
        Kind(
            "audio",
            preprocessor_ref="deepstrata.preprocess.audio:AudioPreprocessor",
            encoder_ref="deepstrata.encoders.audio:build_audio_encoder",
            http_ref="deepstrata.preprocess.audio:HTTP",
            sample_ref="deepstrata.preprocess.audio:sample",
            examples_ref="deepstrata.preprocess.audio:examples",
            show="file",
            files=True,
            extensions=(".wav", ".flac", ".ogg"),
            options=(
                Option(
                    "sample_rate",
                    16000,
                    "Audio: resampled to.",
                    Interval(8000, 192000, unit="Hz"),
                    group="audio",
                ),
                Option(
                    "audio_seconds",
                    1.0,
                    "Audio: clips cut or padded to.",
                    Interval(0.1, 60, unit="seconds"),
                    group="audio",
                ),
                Option(
                    "audio_mels",
                    64,
                    "Audio: mel bands.",
                    Each(AtLeast(1), Lazy("deepstrata.preprocess.audio:check_mel_bands")),
                    group="audio",
                ),
                Option("spec_augment", True, "Audio: SpecAugment.", encoder=True, group="audio"),
                Option(
                    "audio_augment",
                    "speed,pitch,noise",
                    "Audio: new voices in training: any of speed,pitch,noise,shift, or none.",
                    Choice("speed", "pitch", "noise", "shift", several=True),
                    encoder=True,
                    group="audio",
                ),
                Option(
                    "audio_normalise",
                    True,
                    "Audio: each clip to mean 0, variance 1 (training and prediction).",
                    group="audio",
                ),
                Option(
                    "audio_width",
                    32,
                    "Audio: CNN channels in its first stage.",
                    AtLeast(1),
                    encoder=True,
                    group="audio",
                ),
                Option(
                    "audio_depth", 3, "Audio: CNN stages.", AtLeast(1), encoder=True, group="audio"
                ),
            ),
        ),
    )
}

REGISTRY = KINDS  # the name earlier releases used
FILE_KINDS = tuple(name for name, kind in KINDS.items() if kind.files)


def get(name: str) -> Kind:
    """The entry of kind ``name``; ConfigError listing the kinds for an unknown one."""
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown kind {name!r}; expected one of {', '.join(KINDS)}", option="--column"
        ) from None


def options() -> dict[str, Option]:
    """Every kind's options by name, in registry order."""
    return {option.name: option for kind in KINDS.values() for option in kind.options}


def encoder_options(kinds, options: dict) -> dict:
    """The options the encoders of ``kinds`` read, picked from ``options`` (for the bundle)."""
    return {
        name: options[name]
        for kind in kinds
        for name in KINDS[kind].encoder_options
        if name in options
    }


def group_by_kind(preprocessors: dict) -> dict[str, list[str]]:
    """Column names per kind, in registry order then column order (a stable layout)."""
    groups: dict[str, list[str]] = {}
    for kind in KINDS:
        names = [name for name, pre in preprocessors.items() if pre.kind == kind]
        if names:
            groups[kind] = names
    return groups


def extension_kinds() -> dict[str, str]:
    """File name ending -> kind, for the kinds whose files a folder can hold."""
    return {ext: name for name, kind in KINDS.items() for ext in kind.extensions}


def _load(reference: str):
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)

"""The feature-kind registry: the one place where a kind meets its code.

A kind is one preprocessor (``preprocess/<kind>.py``) and one encoder
(``encoders/<kind>.py``). Adding a kind means adding those two files and one
entry here; the schema, network builder, trainer and bundle need no change.
A contract test runs over every entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepstrata.data.sources import Table
from deepstrata.encoders.audio import build_audio_encoder
from deepstrata.encoders.category import CategoryEncoder
from deepstrata.encoders.dense import DenseEncoder
from deepstrata.encoders.image import build_image_encoder
from deepstrata.encoders.pretrained import pretrained_name, uses_pretrained
from deepstrata.encoders.text import build_text_encoder
from deepstrata.preprocess.audio import AudioPreprocessor
from deepstrata.preprocess.base import Preprocessor
from deepstrata.preprocess.boolean import BooleanPreprocessor
from deepstrata.preprocess.category import CategoryPreprocessor
from deepstrata.preprocess.datetime import DatetimePreprocessor
from deepstrata.preprocess.image import ImagePreprocessor
from deepstrata.preprocess.number import NumberPreprocessor
from deepstrata.preprocess.text import TextPreprocessor


@dataclass(frozen=True)
class Kind:
    """A kind's code. ``options`` are FitConfig fields as a dict (missing keys: defaults).

    ``encoder_options`` names the fields the encoder reads; they are stored with the
    bundle's architecture so that loading rebuilds the same modules. ``files``: the
    column holds paths to files, whose preprocessor can list the unreadable ones
    (``bad_files``) for ``--skip-bad-files``.
    """

    name: str
    preprocessor: type[Preprocessor]
    new_preprocessor: Callable[[dict], Preprocessor]  # options -> unfitted preprocessor
    build_encoder: Callable[[Sequence[Preprocessor], dict], nn.Module]  # fitted columns, options
    encoder_options: tuple[str, ...] = ()
    files: bool = False


# What an encoder that may be pretrained reads: the strategy, the network per kind
# ({"image": "efficientnet-lite0"}, set by the fit) and the pretrained layers' rate factor.
PRETRAINED_OPTIONS = ("strategy", "pretrained", "pretrained_lr_scale")


def image_size(options: dict) -> int:
    """``image_size`` when set; else 224 for a pretrained network (its training size), 64."""
    if options.get("image_size"):
        return options["image_size"]
    return 224 if uses_pretrained(options) else 64


def _dense(pres: Sequence[Preprocessor], options: dict) -> nn.Module:
    return DenseEncoder(width=sum(p.width for p in pres))


REGISTRY: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("number", NumberPreprocessor, lambda o: NumberPreprocessor(), _dense),
        Kind("boolean", BooleanPreprocessor, lambda o: BooleanPreprocessor(), _dense),
        Kind("datetime", DatetimePreprocessor, lambda o: DatetimePreprocessor(), _dense),
        Kind(
            "category",
            CategoryPreprocessor,
            lambda o: CategoryPreprocessor(min_count=o.get("min_category_count", 2)),
            lambda pres, o: CategoryEncoder(cardinalities=[p.cardinality for p in pres]),
        ),
        Kind(
            "text",
            TextPreprocessor,
            lambda o: TextPreprocessor(
                max_length=o.get("text_max_length", 128),
                vocabulary_size=o.get("text_vocabulary", 8000),
                pretrained=pretrained_name("text", o) if uses_pretrained(o) else None,
            ),
            build_text_encoder,
            encoder_options=(
                "text_encoder",
                "text_layers",
                "text_heads",
                "text_width",
                "text_token_dropout",
                *PRETRAINED_OPTIONS,
            ),
        ),
        Kind(
            "image",
            ImagePreprocessor,
            lambda o: ImagePreprocessor(
                size=image_size(o),
                resize=o.get("image_resize", "crop"),
                max_pixels=o.get("max_image_pixels", 50_000_000),
                workers=o.get("decode_workers"),
            ),
            build_image_encoder,
            encoder_options=("image_width", "image_depth", "image_augment", *PRETRAINED_OPTIONS),
            files=True,
        ),
        Kind(
            "audio",
            AudioPreprocessor,
            lambda o: AudioPreprocessor(
                sample_rate=o.get("sample_rate", 16000),
                seconds=o.get("audio_seconds", 1.0),
                n_mels=o.get("audio_mels", 64),
                workers=o.get("decode_workers"),
            ),
            build_audio_encoder,
            encoder_options=("audio_width", "audio_depth", "spec_augment"),
            files=True,
        ),
    )
}


def encoder_options(kinds: Sequence[str], options: dict) -> dict:
    """The options the encoders of ``kinds`` read, picked from ``options`` (for the bundle)."""
    return {
        name: options[name]
        for kind in kinds
        for name in REGISTRY[kind].encoder_options
        if name in options
    }


def group_by_kind(preprocessors: dict[str, Preprocessor]) -> dict[str, list[str]]:
    """Column names per kind, in registry order then column order (a stable layout)."""
    groups: dict[str, list[str]] = {}
    for kind in REGISTRY:
        names = [name for name, pre in preprocessors.items() if pre.kind == kind]
        if names:
            groups[kind] = names
    return groups


def transform_frame(
    preprocessors: dict[str, Preprocessor], frame: pd.DataFrame, table: Table
) -> dict[str, torch.Tensor]:
    """Every input column through its preprocessor; one tensor per kind.

    Returns ``{kind: (rows, total width of that kind's columns)}``: float32 for
    dense kinds, int64 for ids. Raises DataError naming the first missing column.
    """
    missing = [name for name in preprocessors if name not in frame.columns]
    if missing:
        raise table.error(
            f"input column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"missing (the model was trained with: {', '.join(preprocessors)})",
            column=missing[0],
        )
    blocks = {}
    for kind, names in group_by_kind(preprocessors).items():
        arrays = [preprocessors[name].transform(frame[name], table) for name in names]
        blocks[kind] = torch.from_numpy(np.ascontiguousarray(np.concatenate(arrays, axis=1)))
    return blocks

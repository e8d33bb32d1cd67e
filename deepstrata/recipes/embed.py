"""``deepstrata embed``: a column's pretrained embeddings as a table (written as Parquet).

Any column whose kind has a pretrained network (images: EfficientNet-Lite0, 1280
values; text: all-MiniLM-L6-v2, 384 values) becomes ``{column}_0 ... {column}_{D-1}``
float32 columns, one row per input row, in input order. Embeddings go through the
same on-disk cache as ``--strategy features``, so embedding rows a fit has already
seen is a lookup.

>>> import pandas as pd
>>> reviews = pd.DataFrame({"review": ["a great film", "dull and far too long"]})
>>> frame = embed(reviews, "review", kind="text", progress=False)  # two rows: say "text"
>>> frame.shape, round(float((frame.to_numpy() ** 2).sum(axis=1)[0]), 4)
((2, 384), 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from deepstrata.config import default, with_defaults
from deepstrata.data.folders import LABEL, file_column, is_folder
from deepstrata.data.schema import infer_schema
from deepstrata.data.sources import read_table
from deepstrata.errors import ConfigError
from deepstrata.kinds import KINDS
from deepstrata.model.extractor import build_extractor
from deepstrata.pretrained.registry import default_for
from deepstrata.recipes.prepare import transform
from deepstrata.train.progress import Progress


def embed(
    data,
    column: str | None = None,
    *,
    kind: str | None = None,
    keep: Sequence[str] = (),
    image_size: int | None = None,
    image_resize: str = default("image_resize"),
    text_max_length: int = default("text_max_length"),
    cache: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Embed ``column`` of ``data`` (a DataFrame, a file, or a folder of files) with its kind's
    pretrained network. ``column`` may be omitted for a folder (its files) or a table with
    one image or text column. ``kind`` forces the column's kind. ``keep`` copies columns
    (an id) in front; a folder's file paths (and class, when it has classes) come first."""
    table = read_table(data)
    frame = table.frame
    schema = infer_schema(
        frame, target=None, columns={column: kind} if column and kind else None, source=table.source
    )
    kinds = {f.name: f.kind for f in schema.features}
    usable = [name for name, k in kinds.items() if default_for(k) is not None]
    named = column is not None
    if column is None:
        if is_folder(table):
            column = file_column(table)
        elif len(usable) == 1:
            column = usable[0]
        else:
            raise ConfigError(
                "name the column to embed; columns with a pretrained network: "
                + (", ".join(usable) or "none (kinds with one: image, text)"),
                option="--column",
            )
    if column not in frame.columns:
        raise table.error(f"column {column!r} is not in the data", column=column)
    if named:  # the user asked for this column's embeddings: honour it (see _as_asked)
        kinds[column] = _as_asked(frame[column], column, kinds[column], forced=kind is not None)
    network = default_for(kinds[column])
    if network is None:
        raise ConfigError(
            f"column {column!r} is {kinds[column]}, which has no pretrained network "
            "(kinds with one: image, text)",
            option="--column",
        )
    network.require()
    for name in keep:
        if name not in frame.columns:
            raise table.error(f"column {name!r} to keep is not in the data", column=name)
    options = with_defaults(
        {
            "strategy": "features",
            "pretrained": {network.kind: network.name},
            "image_size": image_size,
            "image_resize": image_resize,
            "text_max_length": text_max_length,
        }
    )
    preprocessor = KINDS[network.kind].new_preprocessor(options).fit(frame[column], table)
    preprocessors = {column: preprocessor}
    extractor = build_extractor(preprocessors, options)
    report = Progress(enabled=progress).note
    inputs = transform(preprocessors, frame, table)
    vectors, _ = extractor.extract(inputs, cache=cache, report=report)
    names = [f"{column}_{i}" for i in range(vectors.shape[1])]
    kept = []
    if is_folder(table):  # which file each row is, and its class sub-folder
        kept = [name for name in (file_column(table), LABEL) if name in frame.columns]
    kept += [name for name in keep if name not in kept]
    front = pd.DataFrame({name: frame[name].to_numpy() for name in kept}, index=range(len(frame)))
    values = pd.DataFrame(vectors.astype(np.float32), columns=names, index=range(len(frame)))
    return pd.concat([front, values], axis=1)


def _as_asked(values: pd.Series, column: str, inferred: str, *, forced: bool) -> str:
    """The kind to embed a column the user named as: the inferred one when it has a
    pretrained network; text, with a note saying so, when inference took a column of
    strings for something else (a category of few distinct sentences, say): the user
    asked for exactly this column's embeddings."""
    import warnings

    from deepstrata.errors import DataWarning

    if forced or default_for(inferred) is not None:
        return inferred
    strings = values.dropna().map(lambda value: isinstance(value, str))
    if len(strings) and strings.all():
        warnings.warn(
            f"column {column!r} was inferred as {inferred}; embedding it as text, as asked "
            f"(--column {column}); --kind image embeds paths to images instead",
            DataWarning,
            stacklevel=3,
        )
        return "text"
    return inferred

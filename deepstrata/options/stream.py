"""fit's options for data bigger than memory: a Parquet file or folder streamed by row group
(:mod:`deepstrata.data.stream`); :mod:`deepstrata.config` joins them to its own."""

from __future__ import annotations

from deepstrata.options.spec import AtLeast, Option

OPTIONS = (
    Option("stream", False, "Stream a Parquet file (a Parquet folder always is).", group="data"),
    Option("sample_rows", 100_000, "Streamed: preprocessors' sample.", AtLeast(2), type="int"),
    Option("shuffle_buffer", 65_536, "Streamed: rows shuffled together.", AtLeast(1), type="int"),
)


def rule(config) -> None:
    """The streamed options relate to no other option (checked where the data is read)."""

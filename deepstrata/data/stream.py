"""Parquet bigger than memory: a file or a folder of files, read one row group at a time.

:class:`ParquetStream` never holds more than one row group plus a bounded buffer:

* :meth:`~ParquetStream.chunks` walks the row groups in file order (``predict``);
* :meth:`~ParquetStream.sample` is a bounded reservoir sample (Vitter's algorithm R,
  seeded) of every row, for fitting preprocessors: every kind is fitted on it (numbers'
  mean, scale and quantiles; categories' and texts' vocabularies; dates' ranges), with
  ``DEFAULT_SAMPLE_ROWS`` rows, which estimates a mean to ~0.3% of a standard deviation
  and keeps every category holding more than a few in 100,000 rows;
* :meth:`~ParquetStream.batches` shuffles in two stages, both from the seed: the row
  groups' order (per epoch), then a bounded shuffle buffer of ``buffer_rows`` rows. The
  same seed and epoch give the same batches; ``skip`` resumes mid-epoch by replaying the
  order without handing out the batches already trained on. With ``world`` ranks each
  takes every ``world``-th row group of the epoch's order.

A folder's files must agree on every column's type: a file that does not is a
:class:`~deepstrata.errors.DataError` naming the file and the column, before any row is
read. pyarrow's datasets find the files; ``pyarrow.parquet`` reads their row groups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from deepstrata.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
DEFAULT_SAMPLE_ROWS = 100_000
DEFAULT_BUFFER_ROWS = 65_536


def is_parquet(path: str | Path) -> bool:
    """A Parquet file, or a folder holding Parquet files (and no class sub-folders)."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in PARQUET_SUFFIXES
    return path.is_dir() and any(
        p.suffix.lower() in PARQUET_SUFFIXES for p in path.rglob("*") if p.is_file()
    )


class ParquetStream:
    """The row groups of a Parquet file or folder (see the module's doc)."""

    def __init__(self, path: str | Path, columns: list[str] | None = None) -> None:
        import pyarrow.dataset as ds

        self.path, self.columns = Path(path), columns
        dataset = ds.dataset(str(self.path), format="parquet", exclude_invalid_files=False)
        self.files = sorted(dataset.files)
        if not self.files:
            raise DataError("no Parquet file here", file=str(path))
        self.schema = self._agreed_schema()
        self.pieces: list[tuple[str, int, int]] = []  # (file, row group, first row's number)
        self.rows = 0
        for file in self.files:
            metadata = _parquet_file(file).metadata
            for group in range(metadata.num_row_groups):
                self.pieces.append((file, group, self.rows))
                self.rows += metadata.row_group(group).num_rows

    def _agreed_schema(self):
        """The first file's schema, after checking every other file against it."""
        import pyarrow.parquet as pq

        first = pq.read_schema(self.files[0])
        for file in self.files[1:]:
            schema = pq.read_schema(file)
            for field in first:
                if field.name not in schema.names:
                    raise DataError(
                        f"column missing here, present in {self.files[0]}",
                        file=file,
                        column=field.name,
                    )
                other = schema.field(field.name).type
                if other != field.type:
                    raise DataError(
                        f"column type {other} here but {field.type} in {self.files[0]}; "
                        "the files of one table must agree",
                        file=file,
                        column=field.name,
                    )
        return first

    def read(self, piece: tuple[str, int, int]) -> pd.DataFrame:
        """One row group, indexed by the rows' numbers in the whole stream."""
        file, group, first = piece
        table = _parquet_file(file).read_row_group(group, columns=self.columns)
        frame = table.to_pandas()  # a copy, writable (Arrow's own buffers are read-only)
        frame.index = pd.RangeIndex(first, first + len(frame))
        return frame

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Every row, one row group at a time, in file order."""
        for piece in self.pieces:
            yield self.read(piece)

    def sample(self, rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
        """A uniform sample of ``rows`` rows (all of them when there are fewer), indexed by
        row number, holding at most ``rows`` rows plus one row group at any time."""
        rng = np.random.default_rng([seed, 11])
        kept: pd.DataFrame | None = None
        seen, numbers = 0, np.zeros(0, dtype=np.int64)
        for chunk in self.chunks():
            numbers = np.concatenate([numbers, chunk.index[: max(0, rows - seen)]])
            chunk = chunk.reset_index(drop=True)
            take = max(0, min(rows - seen, len(chunk)))
            kept = (
                chunk[:take] if kept is None else pd.concat([kept, chunk[:take]], ignore_index=True)
            )
            # Algorithm R: row t (0-based, t >= rows) replaces a random kept row with
            # probability rows / (t + 1).
            positions = np.arange(seen + take, seen + len(chunk))
            slots = (rng.random(len(positions)) * (positions + 1)).astype(np.int64)
            hits = np.flatnonzero(slots < rows)
            # Of several rows of this chunk drawn for one slot, the last one stays.
            slot, last = np.unique(slots[hits][::-1], return_index=True)
            source = take + hits[::-1][last]
            for column in kept.columns:
                kept.loc[slot, column] = chunk[column].to_numpy()[source]
            numbers[slot] = seen + source
            seen += len(chunk)
        if kept is None:
            return pd.DataFrame()
        kept.index = pd.Index(numbers)
        return kept.sort_index()

    def batches(
        self,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        buffer_rows: int = DEFAULT_BUFFER_ROWS,
        rank: int = 0,
        world: int = 1,
        skip: int = 0,
        keep: Callable[[pd.DataFrame], np.ndarray] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """One epoch of shuffled batches of ``batch_size`` rows (the last may be smaller).

        The buffer is shuffled when it holds ``buffer_rows`` rows (at least two batches)
        and hands out batches until half is left, which then mixes with the next row
        groups. ``keep(chunk)`` (a mask) leaves rows out (held-out, unlabelled) first."""
        buffer_rows = max(buffer_rows, 2 * batch_size)
        rng = np.random.default_rng([seed, epoch, 7])
        order = rng.permutation(len(self.pieces))[rank::world]
        buffer: list[pd.DataFrame] = []
        held, done = 0, 0
        for position in order:
            chunk = self.read(self.pieces[position])
            if keep is not None:
                chunk = chunk[keep(chunk)]
            buffer.append(chunk)
            held += len(chunk)
            if held < buffer_rows:
                continue
            mixed = _shuffled(buffer, rng)
            cut = max(batch_size, (len(mixed) - buffer_rows // 2) // batch_size * batch_size)
            for start in range(0, min(cut, len(mixed)), batch_size):
                if done >= skip:
                    yield mixed.iloc[start : start + batch_size]
                done += 1
            # A copy: a view would keep the whole shuffled frame alive.
            buffer, held = [mixed.iloc[cut:].copy()], len(mixed) - min(cut, len(mixed))
        if held:
            mixed = _shuffled(buffer, rng)
            for start in range(0, len(mixed), batch_size):
                if done >= skip:
                    yield mixed.iloc[start : start + batch_size]
                done += 1


def _shuffled(frames: list[pd.DataFrame], rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.concat(frames)
    return frame.iloc[rng.permutation(len(frame))]


def _parquet_file(file: str):
    import pyarrow.parquet as pq

    return pq.ParquetFile(file)

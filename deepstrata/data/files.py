"""Columns of file paths: resolve each path, decode every file once, report every bad one.

Image and audio columns hold paths, relative to the folder of the table they came
from (the folder itself for a folder of class sub-folders; the working directory
for a DataFrame); an absolute path is read as it is, and ``..`` may climb out of the
folder: the table's author chooses the files, as with any program one runs on a table.
A service that runs tables others wrote (a shared batch scorer) should set
``DEEPSTRATA_FILES_INSIDE_TABLE=1``: then a table read from a file may only name files
inside its folder, and an absolute path or a ``..`` (or a link) leading out of it is a
bad file, so a table cannot make it read ``/etc/passwd`` or another user's files. (A
DataFrame built in Python is never confined.) :func:`read_files` decodes a column's
files with a kind's ``decode`` function and

- lists *every* file that cannot be read (missing, empty, corrupt, too large) in
  one :class:`DataError`, with its row, so a user fixes them all in one go, or
  returns them for ``--skip-bad-files`` to leave out;
- decodes in DataLoader worker processes once there are enough files, and large
  enough ones, for the workers' start-up to pay off (:func:`decode_workers`;
  ``--decode-workers`` or ``DEEPSTRATA_DECODE_WORKERS`` overrides the count);
- keeps decoded arrays in a bounded in-memory cache keyed by path, size,
  modification time and decode settings, so fitting a preprocessor and then
  transforming the same rows, or the folds of a cross-validation, decode each
  file once (``DEEPSTRATA_DECODE_CACHE_MB``, default 2048; 0 turns it off).

``decode(path) -> np.ndarray`` raises any exception for a bad file; its message
becomes the reason shown to the user. It must be a module-level function (or a
``functools.partial`` of one) so worker processes can run it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

import numpy as np
import pandas as pd

from deepstrata.data.folders import is_folder
from deepstrata.data.table import Table
from deepstrata.errors import ConfigError

Decode = Callable[[Path], np.ndarray]

WORKER_MIN_FILES = 64  # below this, starting worker processes costs more than it saves
WORKER_MIN_FILE_BYTES = 4096  # smaller files decode faster than a worker can hand them back
SHOWN_BAD_FILES = 20  # an error lists this many bad files, then counts the rest


@dataclass(frozen=True)
class BadFile:
    position: int  # 0-based row of the table
    path: str  # as written in the cell
    reason: str


def base_folder(table: Table) -> Path:
    """The folder that relative paths in ``table`` are relative to."""
    if table.source.startswith("<"):  # a DataFrame: "<DataFrame>"
        return Path.cwd()
    source = Path(table.source)
    return source if source.is_dir() else source.parent


INSIDE_ENV = "DEEPSTRATA_FILES_INSIDE_TABLE"  # "1": a table's paths may not leave its folder


def _confining_folder(table: Table, base: Path) -> Path | None:
    """The folder a table's paths must stay inside, or None (not confined: the default,
    and always for a DataFrame)."""
    if table.source.startswith("<") or os.environ.get(INSIDE_ENV) != "1":
        return None
    return base


def _inside(path: Path, folder: Path) -> bool:
    """``path``, links followed, is ``folder`` or below it."""
    real = Path(os.path.realpath(path))
    return real == folder or folder in real.parents


def read_files(
    column: pd.Series, table: Table, decode: Decode, *, key: str, workers: int | None = None
) -> tuple[list[np.ndarray | None], list[BadFile]]:
    """Decoded arrays, one per row of ``column`` (None where the cell is empty or the file bad),
    and the bad files. ``key`` names the decode settings (size, sample rate) for the cache."""
    base = base_folder(table).resolve()
    confined = _confining_folder(table, base)
    results: list[np.ndarray | None] = [None] * len(column)
    bad: list[BadFile] = []
    pending: list[tuple[int, str, Path, tuple]] = []  # (slot, cell, path, cache key)
    pending_bytes = 0
    positions = column.index.to_numpy()
    for slot, value in enumerate(column.tolist()):
        if isinstance(value, os.PathLike):  # df["image"] = list(folder.glob("*.png"))
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            continue  # a missing value, not a bad file: the preprocessor fills it
        # One stat per file: on a warm cache the checks below are the whole cost of a row.
        path = Path(os.path.normpath(value if os.path.isabs(value) else base / value))
        if confined is not None and not _inside(path, confined):
            reason = f"outside the table's folder {confined} ({INSIDE_ENV}=1 is set)"
            bad.append(BadFile(int(positions[slot]), value, reason))
            continue
        try:
            stat = os.stat(path)
        except OSError:
            bad.append(BadFile(int(positions[slot]), value, "file not found"))
            continue
        if not S_ISREG(stat.st_mode):
            bad.append(BadFile(int(positions[slot]), value, "not a file"))
            continue
        cache_key = (str(path), stat.st_size, stat.st_mtime_ns, key)
        cached = CACHE.get(cache_key)
        if cached is not None:
            results[slot] = cached
        else:
            pending.append((slot, value, path, cache_key))
            pending_bytes += stat.st_size

    for (slot, value, _, cache_key), (array, reason) in zip(
        pending,
        _decode_all(
            [p for _, _, p, _ in pending],
            decode,
            decode_workers(len(pending), workers, mean_bytes=pending_bytes / max(len(pending), 1)),
        ),
    ):
        if array is None:
            bad.append(BadFile(int(positions[slot]), value, reason))
        else:
            results[slot] = array
            CACHE.put(cache_key, array)
    bad.sort(key=lambda b: b.position)
    return results, bad


def decode_column(
    column: pd.Series,
    table: Table,
    decode: Decode,
    *,
    key: str,
    what: str = "file",
    workers: int | None = None,
) -> list[np.ndarray | None]:
    """:func:`read_files`, raising one DataError that lists every bad file."""
    results, bad = read_files(column, table, decode, key=key, workers=workers)
    if bad:
        raise bad_files_error(bad, table, str(column.name), what)
    return results


def bad_files_error(bad: list[BadFile], table: Table, column: str, what: str):
    """The DataError for ``bad`` (non-empty): the first bad row, and a list of them all."""
    # In a folder of files the path is the place; a row number would name nothing.
    folder = is_folder(table)
    lines = [
        f"  {b.path}: {b.reason}"
        if folder
        else f"  {_where(table, b.position)}: {b.path}: {b.reason}"
        for b in bad[:SHOWN_BAD_FILES]
    ]
    if len(bad) > SHOWN_BAD_FILES:
        lines.append(f"  … and {len(bad) - SHOWN_BAD_FILES} more")
    count = f"{len(bad)} {what}{'s' if len(bad) > 1 else ''}"
    return table.error(
        f"{count} could not be read:\n" + "\n".join(lines),
        column=column,
        position=None if folder else bad[0].position,
        hint="fix or remove them, or pass --skip-bad-files to leave those rows out "
        "(the list is kept with the run)",
    )


def _where(table: Table, position: int) -> str:
    place = table.location(position)
    return f"line {place['line']}" if place["line"] is not None else f"row {place['row']}"


# -- decoding, in worker processes when it pays ------------------------------------------------
class _Files:
    """A map-style dataset: index -> (array, "") or (None, reason). Never raises."""

    def __init__(self, paths: list[Path], decode: Decode) -> None:
        self.paths, self.decode = paths, decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, str]:
        try:
            return self.decode(self.paths[index]), ""
        except MemoryError:
            raise
        except Exception as exc:  # a bad file of any sort is reported, not raised
            return None, str(exc) or type(exc).__name__


def decode_workers(count: int, workers: int | None = None, *, mean_bytes: float = 1e9) -> int:
    """Worker processes for ``count`` files of ``mean_bytes`` on average: none for few or
    tiny files, else one per usable core up to 4 (or as told).

    Measured on 2 cores (bench/image_pipeline.py): 2 workers decoded 3,000 JPEG photos
    (20 kB each) 1.6-1.75x faster, and 1,797 tiny PNGs (100 bytes) 0.85-0.98x as fast:
    a worker's start-up and the transfer back cost more than such a file's decode.
    """
    if workers is None:
        configured = os.environ.get("DEEPSTRATA_DECODE_WORKERS")
        if configured is not None:
            if not configured.strip().isdigit():
                raise ConfigError(
                    f"expected a whole number of processes, got {configured!r}",
                    option="DEEPSTRATA_DECODE_WORKERS",
                )
            workers = int(configured)
        else:
            few = count < WORKER_MIN_FILES or mean_bytes < WORKER_MIN_FILE_BYTES
            workers = 0 if few else min(4, _usable_cores())
    return max(0, min(workers, count // 8))


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # a container or taskset may allow fewer
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _decode_all(
    paths: list[Path], decode: Decode, count: int
) -> list[tuple[np.ndarray | None, str]]:
    dataset = _Files(paths, decode)
    if count == 0:
        return [dataset[i] for i in range(len(paths))]
    from torch.utils.data import DataLoader

    # Forking after Hugging Face tokenizers ran (a text column) makes them warn and turn
    # their threads off in the children; the children never tokenize, so say so up front.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    loader = DataLoader(
        dataset,
        batch_size=16,
        num_workers=count,
        collate_fn=_as_list,
        worker_init_fn=_one_thread,
    )
    return [item for batch in loader for item in batch]


def _as_list(batch: list) -> list:
    return batch


def _one_thread(_: int) -> None:
    # Decoding is one file per worker; torch's intra-op threads would only contend.
    import torch

    torch.set_num_threads(1)


class DecodeCache:
    """A least-recently-used map from cache key to array, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            array = self._items.get(key)
            if array is not None:
                self._items.move_to_end(key)
            return array

    def put(self, key: tuple, array: np.ndarray) -> None:
        if array.nbytes > self.max_bytes:
            return
        array.flags.writeable = False  # shared between callers: nobody may change it
        with self._lock:
            if key in self._items:
                return
            self._items[key] = array
            self.bytes += array.nbytes
            while self.bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self.bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0


CACHE = DecodeCache(int(float(os.environ.get("DEEPSTRATA_DECODE_CACHE_MB", "2048")) * 2**20))

"""``predict`` over a Parquet file or folder of any size, in one process or in N.

The rows are read one row group at a time (:class:`~deepstrata.data.stream.ParquetStream`),
predicted, and written in chunks, so a process holds one row group whatever the rows.

With ``nproc`` N > 1, N worker processes (multiprocessing's forkserver: inference needs no
collectives, so no torchrun; the server imports torch and the model code once, and each
worker forks from it) each load the bundle once and take a contiguous share of the row
groups, balanced by rows. Each writes its predictions to a temporary part beside the
output and reports its rows to the parent, which shows the progress and, once every
worker is done, joins the parts into the output in the input's row order. Each worker
runs torch on its share of the threads (``threads``), so N workers do not fight over the
cores.

A row group that fails is an error naming the file, the row group, the row and the
worker's exception (a :class:`~deepstrata.errors.DataError` when the rows were at fault,
a :class:`~deepstrata.errors.DistributedError` when a worker failed otherwise or died);
the other workers are stopped and the parts removed, so nothing is left behind.
"""

from __future__ import annotations

import os
import queue as queues
import shutil
import sys
import tempfile
import time
from bisect import bisect_left
from itertools import pairwise
from pathlib import Path

from deepstrata.data.stream import ParquetStream
from deepstrata.errors import DataError, DeepstrataError, DistributedError

PARQUET, CSV = "parquet", "csv"
FORMATS = {".parquet": PARQUET, ".pq": PARQUET, ".csv": CSV}
POLL_SECONDS = 0.2  # how often the parent looks for a worker that died without a word


def output_format(path: Path) -> str | None:
    """``parquet`` or ``csv`` from the output's suffix; None for another suffix."""
    return FORMATS.get(Path(path).suffix.lower())


def shares(stream: ParquetStream, nproc: int) -> list[tuple[int, int]]:
    """Contiguous ranges of ``stream.pieces`` (start, stop), one per worker, balanced by
    rows; never more ranges than row groups, none empty. Contiguous, so that joining the
    parts in order gives the input's row order."""
    pieces = len(stream.pieces)
    count = max(1, min(nproc, pieces))
    firsts = [first for _, _, first in stream.pieces]
    bounds = [0]
    for share in range(1, count):
        target = stream.rows * share / count
        cut = min(bisect_left(firsts, target), pieces - 1)  # the boundary nearest the target
        if cut > 0 and target - firsts[cut - 1] < firsts[cut] - target:
            cut -= 1
        bounds.append(min(max(cut, bounds[-1] + 1), pieces - (count - share)))
    bounds.append(pieces)
    return list(pairwise(bounds))


class RowProgress:
    """Rows predicted so far, on stderr: a line at most every ``interval`` seconds."""

    def __init__(self, total: int, *, enabled: bool = True, interval: float = 2.0, stream=None):
        self.total, self.enabled, self.interval = total, enabled, interval
        self.stream = stream or sys.stderr
        self.done, self.start = 0, time.perf_counter()
        self.last = self.start

    def add(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if self.enabled and now - self.last >= self.interval:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            print(
                f"predicted {self.done:,}/{self.total:,} rows "
                f"({100 * self.done / max(self.total, 1):.0f}%), {rate:,.0f} rows/s",
                file=self.stream,
                flush=True,
            )


class ChunkWriter:
    """Prediction frames appended to one Parquet or CSV file. A Parquet file keeps the
    first chunk's schema for every chunk; a CSV file has a header only with ``header``."""

    def __init__(self, path: str | Path, fmt: str, *, header: bool = True) -> None:
        self.path, self.fmt, self.header = Path(path), fmt, header
        self.writer = None
        # Open across calls (closed by close()): a chunk at a time is appended to it.
        self.handle = (
            open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            if fmt == CSV
            else None
        )

    def write(self, frame) -> None:
        if self.fmt == CSV:
            frame.to_csv(self.handle, index=False, header=self.header)
            self.header = False
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = self.writer.schema if self.writer else None  # one schema for every chunk
        table = pa.Table.from_pandas(frame, preserve_index=False, schema=schema)
        self.writer = self.writer or pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        if self.writer is not None:
            self.writer.close()


class PieceFailed(Exception):
    """A row group's prediction failed: ``info`` says where and how (plain values, so
    that it crosses from a worker to the parent)."""

    def __init__(self, info: dict) -> None:
        self.info = info
        super().__init__(info["message"])


def predicted(model, stream: ParquetStream, index: int, *, proba: bool, keep: list):
    """Row group ``index`` of the stream, predicted; a failure is :class:`PieceFailed`."""
    file, group, first = stream.pieces[index]
    try:
        chunk = stream.read(stream.pieces[index])
        return model.predictions(chunk, proba=proba, keep=keep)
    except Exception as error:
        file_first = next(start for name, _, start in stream.pieces if name == file)
        stop = stream.pieces[index + 1][2] if index + 1 < len(stream.pieces) else stream.rows
        info = {
            "file": file,
            "group": group,
            "rows": (first - file_first + 1, stop - file_first),  # 1-based, in the file
            "type": type(error).__name__,
            "message": str(error),
            "data": isinstance(error, DataError),
        }
        if isinstance(error, DataError):  # its row counts within the row group
            info["message"], info["hint"] = error.message, error.hint
            info["column"] = error.column
            info["row"] = None if error.row is None else first - file_first + error.row
        raise PieceFailed(info) from error


def failure(info: dict, worker: str = "") -> DeepstrataError:
    """The error a user sees for a failed row group (``worker``: "in process k of N")."""
    low, high = info["rows"]
    where = f"row group {info['group']} (rows {low}-{high} of this file){worker}"
    if info["data"]:
        return DataError(
            f"{where}: {info['message']}",
            file=info["file"],
            column=info["column"],
            row=info["row"],
            hint=info["hint"],
        )
    return DistributedError(f"{info['file']}, {where}: {info['type']}: {info['message']}")


def predict_stream(
    bundle: str | Path,
    data: str | Path,
    path: str | Path,
    *,
    fmt: str,
    nproc: int = 1,
    threads: int | None = None,
    proba: bool = False,
    keep: list[str] | tuple = (),
    progress: RowProgress | bool = True,
) -> tuple[int, int]:
    """Predict every row of the Parquet file or folder ``data`` with ``bundle`` into
    ``path`` (``fmt``: ``parquet`` or ``csv``) in ``nproc`` processes of ``threads`` torch
    threads each (no more processes than row groups); the rows written, and the processes. ``path`` is the caller's temporary file (the CLI
    renames it onto the output): the parts are written beside it and always removed."""
    stream = ParquetStream(data)
    for name in keep:  # before any work: a worker would find out only at its first chunk
        if name not in stream.schema.names:
            raise DataError("column to keep is not in the data", file=str(data), column=name)
    if not isinstance(progress, RowProgress):
        progress = RowProgress(stream.rows, enabled=progress)
    ranges = shares(stream, nproc)
    if len(ranges) == 1:
        _predict_here(bundle, stream, Path(path), fmt, proba=proba, keep=list(keep), on=progress)
    else:
        _predict_in_workers(
            bundle, stream, Path(path), fmt, ranges, threads, proba, list(keep), progress
        )
    return stream.rows, len(ranges)


def _predict_here(bundle, stream, path, fmt, *, proba, keep, on: RowProgress) -> None:
    from deepstrata.model.model import load

    model = load(bundle)
    writer = ChunkWriter(path, fmt)
    try:
        for index in range(len(stream.pieces)):
            try:
                frame = predicted(model, stream, index, proba=proba, keep=keep)
            except PieceFailed as failed:
                raise failure(failed.info) from failed.__cause__
            writer.write(frame)
            on.add(len(frame))
    finally:
        writer.close()


def _work(index, bundle, data, share, part, fmt, threads, proba, keep, messages) -> None:
    """One worker: its share of the row groups into its part; every outcome is a message
    ("rows", "done" or "error") to the parent."""
    try:
        import torch

        torch.set_num_threads(threads)  # its share of the cores, as xdist workers get
        from deepstrata.model.model import load

        model, stream = load(bundle), ParquetStream(data)
        writer = ChunkWriter(part, fmt, header=index == 0)
        try:
            for piece in range(*share):
                frame = predicted(model, stream, piece, proba=proba, keep=keep)
                writer.write(frame)
                messages.put(("rows", index, len(frame)))
        finally:
            writer.close()
        messages.put(("done", index, None))
    except PieceFailed as failed:
        messages.put(("error", index, failed.info))
    except BaseException as error:  # the bundle would not load, a part would not write
        messages.put(("error", index, f"{type(error).__name__}: {error}"))


def _predict_in_workers(bundle, stream, path, fmt, ranges, threads, proba, keep, on) -> None:
    count = len(ranges)
    threads = threads or max(1, (os.cpu_count() or 1) // count)
    parts = []
    try:
        for index in range(count):
            handle, part = tempfile.mkstemp(prefix=f".{path.name}.part{index}.", dir=path.parent)
            os.close(handle)
            parts.append(Path(part))
        args = [
            (i, str(bundle), str(stream.path), ranges[i], str(parts[i]), fmt, threads, proba, keep)
            for i in range(count)
        ]
        _run(args, stream, on)
        _join(parts, path, fmt)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)


def _run(args: list[tuple], stream: ParquetStream, on: RowProgress) -> None:
    """Start the workers, follow their messages, and stop them all at the first failure."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "torch", "deepstrata.model.model"])
    messages = context.Queue()
    workers = [context.Process(target=_work, args=(*a, messages), daemon=True) for a in args]
    count, running = len(workers), set(range(len(workers)))
    try:
        for worker in workers:
            worker.start()
        while running:
            try:
                kind, index, value = messages.get(timeout=POLL_SECONDS)
            except queues.Empty:
                _check_alive(workers, running, args, stream)
                continue
            if kind == "rows":
                on.add(value)
            elif kind == "done":
                running.discard(index)
            else:
                raise _worker_error(value, index, count)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # the others, after one failed
            worker.join()
        messages.close()


def _check_alive(workers, running, args, stream) -> None:
    """A worker that ended with a non-zero status without saying why (killed, out of
    memory) is named with the rows it had to predict."""
    for index in sorted(running):
        code = workers[index].exitcode
        if code not in (None, 0):
            start, stop = args[index][3]
            first, last = stream.pieces[start][0], stream.pieces[stop - 1][0]
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise DistributedError(
                f"prediction process {index + 1} of {len(workers)} {how} while predicting "
                f"row groups {start}-{stop - 1} of the data ({first} to {last})"
            )


def _worker_error(value, index: int, count: int) -> DeepstrataError:
    worker = f", in prediction process {index + 1} of {count}"
    if isinstance(value, dict):
        return failure(value, worker)
    return DistributedError(f"prediction process {index + 1} of {count} failed: {value}")


def _join(parts: list[Path], path: Path, fmt: str) -> None:
    """The parts, in order, into ``path``; each part removed once copied (half the disk)."""
    if fmt == CSV:
        with open(path, "wb") as out:
            for part in parts:
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
                part.unlink()
        return
    import pyarrow.parquet as pq

    writer = None
    try:
        for part in parts:
            source = pq.ParquetFile(part)
            for group in range(source.num_row_groups):
                table = source.read_row_group(group)
                # The first part's schema for every part, as one process keeps its first
                # chunk's (a column of only missing values reads as null elsewhere).
                table = table if writer is None else table.cast(writer.schema)
                writer = writer or pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
            part.unlink()
    finally:
        if writer is not None:
            writer.close()

"""Image and audio fields: a request's decode budget, then its files staged and decoded in a
pool of their own, a bounded job at a time.

A request's files are decoded before its records join a batch (one caller's bad file
then fails only that caller, and the batch's own pass finds the arrays in the decode
cache). Three defences keep one request from taking the server from everyone:

- **a budget**, read from the files' headers before any pixel is decoded: a request's
  fields may decode to at most ``decode_budget`` times what the model takes of them
  (image size x size pixels, seconds x sample rate samples, per field). A one-colour PNG
  compresses a thousandfold: 6 MB of them decode to billions of pixels. Over budget is a
  422 naming the fields above their share;
- **a pool of its own** (:data:`DECODE_THREADS`), not the model's worker thread: other
  requests' forward passes go on while files decode (Pillow, libsndfile and NumPy let go
  of the GIL while they work);
- **bounded jobs** (:data:`JOB_COST`, :data:`JOB_FIELDS`): a request hands the pool one
  job at a time and awaits it, so concurrent requests take turns, and a request that is
  cancelled (its timeout, its client gone, the shutdown) stops at the end of the job
  running rather than decoding on for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from deepstrata.serve.errors import ApiError
from deepstrata.serve.predictor import FileCost, Predictor

DECODE_THREADS = 2  # two requests decode at once; more would only share the same cores
JOB_COST = 1 << 22  # pixels or samples per job: about 40 ms of PNG decoding on one core
JOB_FIELDS = 64  # fields per job: header reads, and many small files
SHOWN_FIELDS = 20  # an error's details name this many fields


class FileStager:
    """``async with stager.staged(frame, after=...) as staged:`` -> ``frame`` with its image
    and audio fields as paths to files written and decoded (see :meth:`staged`)."""

    def __init__(
        self, predictor: Predictor, *, budget: float, threads: int = DECODE_THREADS
    ) -> None:
        self.predictor = predictor
        self.budget = budget
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self.predictor.file_columns:
            self._executor = ThreadPoolExecutor(
                self.threads, thread_name_prefix="deepstrata-decode"
            )

    def stop(self) -> None:
        """Queued jobs dropped (their requests were cancelled), the running ones waited for."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    @contextlib.asynccontextmanager
    async def staged(
        self, frame: pd.DataFrame, *, after: Callable[[Callable[[], None]], None]
    ) -> AsyncIterator[pd.DataFrame]:
        """``frame`` with its image and audio fields staged: 422 for a request over budget or
        for fields that cannot be decoded (each named). The files are removed on leaving, once
        the job running (if the request was cut off) is done, through ``after(remove)``: the
        model's worker, where a batch may still read them."""
        if not self.predictor.file_columns:
            yield frame
            return
        folder = tempfile.TemporaryDirectory(prefix="deepstrata-serve-", ignore_cleanup_errors=True)
        running: list[Future] = []  # the request's job in the pool: one at a time
        try:
            yield await self._stage(frame, Path(folder.name), running)
        finally:
            remove = lambda: after(folder.cleanup)  # noqa: E731
            if running and not running[0].done():
                running[0].add_done_callback(lambda _: remove())
            else:
                remove()

    async def _stage(self, frame: pd.DataFrame, folder: Path, running: list) -> pd.DataFrame:
        predictor = self.predictor
        fields = predictor.file_fields(frame)
        costs: list[FileCost] = []
        for start in range(0, len(fields), JOB_FIELDS):
            chunk = fields[start : start + JOB_FIELDS]
            costs += await self._job(running, predictor.file_costs, frame, chunk)
        refusal = over_budget(costs, self.budget)
        if refusal is not None:
            raise refusal
        staged = predictor.file_paths(frame, folder)
        problems = []
        for rows in job_rows(costs):
            problems += await self._job(running, predictor.stage_files, frame, staged, rows)
        if problems:
            raise ApiError(
                "invalid_input",
                f"{len(problems)} file field(s) cannot be decoded",
                details=[
                    {"field": f"records[{row}].{column}", "message": reason, "type": "file"}
                    for row, column, reason in problems
                ],
            )
        return staged

    async def _job(self, running: list, function: Callable, *args):
        """``function(*args)`` in the pool; on cancellation a job not yet begun never runs."""
        if self._executor is None:
            raise RuntimeError("the file stager is not running")
        future = self._executor.submit(function, *args)
        running[:] = [future]
        return await asyncio.wrap_future(future)


def job_rows(costs: list[FileCost]) -> Iterator[list[int]]:
    """The records holding files, in order, in runs of at most ``JOB_COST`` (a record above
    it alone) and ``JOB_FIELDS`` fields."""
    rows: list[int] = []
    cost = fields = 0
    for row, record_cost, count in costs_by_record(costs):
        if rows and (cost + record_cost > JOB_COST or fields + count > JOB_FIELDS):
            yield rows
            rows, cost, fields = [], 0, 0
        rows.append(row)
        cost += record_cost
        fields += count
    if rows:
        yield rows


def costs_by_record(costs: list[FileCost]) -> list[tuple[int, int, int]]:
    """``(record, its fields' cost, its field count)``, by record."""
    records: dict[int, list[int]] = {}
    for field in costs:
        records.setdefault(field.row, []).append(field.cost)
    return [(row, sum(found), len(found)) for row, found in sorted(records.items())]


def over_budget(costs: list[FileCost], budget: float) -> ApiError | None:
    """A 422 when ``costs`` add up to more than ``budget`` times their allowances, naming
    the fields above their own share (there is one at least), largest first; else None."""
    total = sum(field.cost for field in costs)
    allowed = budget * sum(field.allowance for field in costs)
    if total <= allowed:
        return None
    over = sorted(
        (field for field in costs if field.cost > budget * field.allowance),
        key=lambda field: (-field.cost, field.row, field.column),
    )
    units = sorted({field.unit for field in costs})
    first = over[0]
    more = f" (and {len(over) - 1} more)" if len(over) > 1 else ""
    return ApiError(
        "invalid_input",
        f"records[{first.row}].{first.column}: {_share(first, budget)}{more}; the request's "
        f"files would decode to {total:,} {' and '.join(units)}, more than its budget of "
        f"{allowed:,.0f} (--decode-budget); send smaller files, or fewer in one request",
        details=[
            {
                "field": f"records[{field.row}].{field.column}",
                "message": _share(field, budget),
                "type": "decode_budget",
            }
            for field in over[:SHOWN_FIELDS]
        ],
    )


def _share(field: FileCost, budget: float) -> str:
    return (
        f"decodes to {field.cost:,} {field.unit}, above its share of "
        f"{budget * field.allowance:,.0f} ({budget:g} x the {field.allowance:,} the model takes)"
    )

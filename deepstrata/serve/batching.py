"""Micro-batching: concurrent requests gathered into one forward pass.

Each request puts its rows (a DataFrame, or :class:`~deepstrata.serve.records.Rows`) on a queue and awaits a future. One task
takes the first waiting request, then gathers more until ``max_rows`` rows or until
``max_wait`` seconds have passed, runs the batch in a single worker thread (torch's
and ONNX Runtime's own threads do the arithmetic; the event loop stays free), and
hands each caller the slice of the outputs that is its own rows, in its order.

It waits only for requests that are on their way: ``pending()`` counts the requests
the server is answering, and when every one of them is already in the batch, the
batch runs at once. A lone client therefore never waits ``max_wait``; under load the
batches fill while the previous one runs.

A batch that fails (a value a preprocessor refuses that validation let through) is
run again request by request, so that only the request at fault gets the error. Anything
else that goes wrong while gathering or answering a batch fails that batch's requests
(500) and the task goes on; should the task ever end, ``running`` turns false and the
server's readiness 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepstrata.serve.errors import ApiError

logger = logging.getLogger("deepstrata.serve")
STOPPED = "the model's worker has stopped; the server needs a restart"


@dataclass
class _Waiting:
    frame: Any  # a request's rows: anything ``len`` counts and ``join`` concatenates
    future: asyncio.Future


def join_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


class MicroBatcher:
    """``await batcher.submit(frame)`` -> ``run(frame)``'s rows for ``frame``, batched.

    ``join(frames)`` makes one batch of several requests' rows (default: DataFrames
    concatenated); a batch for which ``inline(batch)`` is true runs on the event loop
    itself, not in the worker thread (a model quicker than the hand-over). ``run(frame) -> (rows, ...) array`` must answer each row independently of the others
    (as an eval-mode network does). ``pending() -> int``: requests in progress in the
    server (those in the batch included)."""

    def __init__(
        self,
        run: Callable[[Any], np.ndarray],
        *,
        max_rows: int,
        max_wait: float,
        pending: Callable[[], int] = lambda: 0,
        on_batch: Callable[[int, int], None] = lambda requests, rows: None,
        join: Callable[[list], Any] = join_frames,
        inline: Callable[[Any], bool] = lambda rows: False,
    ) -> None:
        self.run = run
        self.join = join
        self.inline = inline
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.pending = pending
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._carry: _Waiting | None = None  # a request that did not fit the last batch
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepstrata-model")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="micro-batcher")
        self._task.add_done_callback(self._ended)

    @property
    def running(self) -> bool:
        """Whether the gathering task is alive (false before ``start`` and once it ended)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def in_worker(self, function: Callable, *args):
        """Run ``function(*args)`` in the model's worker thread (the warm-up)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def after_worker(self, function: Callable, *args) -> None:
        """Run ``function(*args)`` in the model's worker thread once the jobs queued so far
        (the batch holding a request's rows) are done; do not wait for it.
        ``function`` must not raise. Runs here, at once, when the worker is gone."""
        try:
            if self._executor is not None:
                self._executor.submit(function, *args)
                return
        except RuntimeError:  # shut down meanwhile
            pass
        function(*args)

    async def submit(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.running:
            raise RuntimeError("the batcher is not running")
        assert self._queue is not None
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Waiting(frame, future))
        return await future

    # -- the gathering task -----------------------------------------------------------------
    def _ended(self, task: asyncio.Task) -> None:
        """The task's done-callback: say why, and answer whoever still waits in the queue."""
        if not task.cancelled() and task.exception() is not None:
            logger.critical(
                "the micro-batcher stopped; readiness is 503 until the server is restarted",
                exc_info=task.exception(),
            )
        waiting = [self._carry] if self._carry is not None else []
        self._carry = None
        while self._queue is not None and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for each in waiting:
            _settle(each.future, error=ApiError("not_ready", STOPPED))

    async def _loop(self) -> None:
        while True:
            batch: list[_Waiting] = []
            try:
                await self._gather(batch)
                if batch:
                    await self._answer(batch)
            except Exception:
                # A bug, not a request's fault: its requests get a 500 (logged here, once),
                # and the requests after it are answered as usual.
                logger.exception("a batch of %d requests failed unexpectedly", len(batch))
                for waiting in batch:
                    _settle(waiting.future, error=ApiError("internal_error", "internal error"))

    async def _next(self, timeout: float | None) -> _Waiting | None:
        if self._carry is not None:
            waiting, self._carry = self._carry, None
            return waiting
        assert self._queue is not None
        if timeout is None:
            return await self._queue.get()
        if not self._queue.empty() or timeout <= 0:
            return None if self._queue.empty() else self._queue.get_nowait()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _gather(self, batch: list[_Waiting]) -> None:
        """Fill ``batch`` (empty) with the next requests (none: all had been cancelled)."""
        loop = asyncio.get_running_loop()
        first = await self._next(None)
        if not first.future.done():  # done: cancelled by a timeout
            batch.append(first)
        rows = len(first.frame) if batch else 0
        deadline = loop.time() + self.max_wait
        while rows < self.max_rows:
            # Wait only while requests the server is answering are not in the batch yet.
            others_coming = self.pending() > len(batch)
            timeout = deadline - loop.time() if others_coming else 0.0
            waiting = await self._next(max(timeout, 0.0))
            if waiting is None:
                break
            if waiting.future.done():
                continue
            if batch and rows + len(waiting.frame) > self.max_rows:
                self._carry = waiting
                break
            batch.append(waiting)
            rows += len(waiting.frame)

    async def _computed(self, rows) -> np.ndarray:
        if self.inline(rows):
            return self.run(rows)
        return await self.in_worker(self.run, rows)

    async def _answer(self, batch: list[_Waiting]) -> None:
        frames = [waiting.frame for waiting in batch]
        frame = self.join(frames)
        self.on_batch(len(batch), len(frame))
        try:
            outputs = await self._computed(frame)
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0].future, error=error)
                return
            logger.warning("a batch of %d requests failed; answering them one by one", len(batch))
            for waiting in batch:
                if waiting.future.done():  # its caller timed out meanwhile: nobody to answer
                    continue
                try:
                    _settle(waiting.future, result=await self._computed(waiting.frame))
                except Exception as single:
                    _settle(waiting.future, error=single)
            return
        start = 0
        for waiting in batch:
            stop = start + len(waiting.frame)
            _settle(waiting.future, result=outputs[start:stop])
            start = stop


def _settle(future: asyncio.Future, *, result=None, error: BaseException | None = None) -> None:
    if future.done():  # its caller timed out meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)

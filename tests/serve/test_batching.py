"""Micro-batching: requests gathered into one forward pass, each caller its own rows."""

from __future__ import annotations

import asyncio
import random
import threading

import numpy as np
import pandas as pd
import pytest

from deepstrata.serve.app import create_app
from deepstrata.serve.batching import MicroBatcher
from deepstrata.serve.errors import ApiError
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.settings import ServeSettings
from tests.serve.conftest import asgi_session, records_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Recorder:
    """``run``: row i's output is its ``x`` times 10; remembers the size of every call."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        self.gate.wait(5)
        self.calls.append(len(frame))
        if self.fail_on is not None and (frame["x"] == self.fail_on).any():
            raise ValueError(f"row with x={self.fail_on}")
        return frame["x"].to_numpy() * 10


def frame(*values: float) -> pd.DataFrame:
    return pd.DataFrame({"x": list(values)})


def test_concurrent_requests_share_one_forward_pass_and_get_their_own_rows():
    run = Recorder()
    waiting = [frame(i, i + 0.5) for i in range(12)]

    async def main():
        batcher = MicroBatcher(run, max_rows=64, max_wait=0.5, pending=lambda: len(waiting))
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(f) for f in waiting))
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    for submitted, got in zip(waiting, results):
        np.testing.assert_array_equal(got, submitted["x"].to_numpy() * 10)
    assert sum(run.calls) == 24 and len(run.calls) < 12


def test_a_batch_never_exceeds_max_rows_and_leftovers_run_next():
    run = Recorder()
    waiting = [frame(*range(i, i + 3)) for i in range(0, 30, 3)]  # 10 requests of 3 rows

    async def main():
        batcher = MicroBatcher(run, max_rows=7, max_wait=0.2, pending=lambda: 10)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(f) for f in waiting))
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert all(0 < rows <= 7 for rows in run.calls) and sum(run.calls) == 30
    for submitted, got in zip(waiting, results):
        np.testing.assert_array_equal(got, submitted["x"].to_numpy() * 10)


def test_a_lone_request_does_not_wait_for_company():
    run = Recorder()

    async def main():
        batcher = MicroBatcher(run, max_rows=64, max_wait=5.0, pending=lambda: 1)
        batcher.start()
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            await batcher.submit(frame(1.0))
            return loop.time() - start
        finally:
            await batcher.stop()

    assert asyncio.run(main()) < 1.0


def test_a_failing_batch_is_answered_request_by_request():
    run = Recorder(fail_on=3.0)
    waiting = [frame(1.0), frame(2.0, 3.0), frame(4.0)]

    async def main():
        batcher = MicroBatcher(run, max_rows=64, max_wait=0.5, pending=lambda: 3)
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.submit(f) for f in waiting), return_exceptions=True
            )
        finally:
            await batcher.stop()

    first, second, third = asyncio.run(main())
    np.testing.assert_array_equal(first, [10.0])
    assert isinstance(second, ValueError)
    np.testing.assert_array_equal(third, [40.0])


def test_a_cancelled_request_is_left_out_of_the_next_batch():
    run = Recorder()
    run.gate.clear()  # the first batch blocks in the worker until released

    async def main():
        batcher = MicroBatcher(run, max_rows=64, max_wait=0.0, pending=lambda: 1)
        batcher.start()
        try:
            blocking = asyncio.create_task(batcher.submit(frame(1.0)))
            await asyncio.sleep(0.05)
            abandoned = asyncio.create_task(batcher.submit(frame(2.0, 2.0)))
            await asyncio.sleep(0.05)
            abandoned.cancel()  # as a timed-out request's handler is
            kept = asyncio.create_task(batcher.submit(frame(3.0)))
            await asyncio.sleep(0.05)
            run.gate.set()
            return await blocking, await kept
        finally:
            await batcher.stop()

    first, kept = asyncio.run(main())
    np.testing.assert_array_equal(first, [10.0])
    np.testing.assert_array_equal(kept, [30.0])
    assert run.calls == [1, 1]  # the cancelled request's two rows never ran


def test_interleaved_concurrent_requests_each_get_the_single_request_answer(
    churn_model, churn_rows
):
    """Many clients at once, each with its own rows (1 to 4, some with an unseen category):
    every answer equals that request's answer when sent alone."""
    rng = random.Random(0)
    records = records_of(churn_rows)
    requests = []
    for index in range(40):
        chosen = rng.sample(records, rng.randint(1, 4))
        if index % 7 == 0:
            chosen = [{**chosen[0], "plan": f"unheard-of-{index}"}, *chosen[1:]]
        requests.append({"records": chosen})
    app = create_app(Predictor(churn_model), ServeSettings(max_batch_rows=32, batch_wait_ms=20))

    async def main():
        async with asgi_session(app) as client:
            alone = [await client.post("/predict", json=body) for body in requests]
            together = await asyncio.gather(*(client.post("/predict", json=b) for b in requests))
            return alone, together

    alone, together = asyncio.run(main())
    for body, single, batched in zip(requests, alone, together):
        assert single.status_code == batched.status_code == 200
        single, batched = single.json(), batched.json()
        assert len(batched["predictions"]) == len(body["records"])
        assert batched["warnings"] == single["warnings"]
        for mine, reference in zip(batched["probabilities"], single["probabilities"]):
            assert mine == pytest.approx(reference, abs=1e-6)
        assert batched["predictions"] == single["predictions"]
    text = app.state.metrics.text().decode()
    batches = _histogram_count(text, "deepstrata_batch_requests")
    # 40 single requests, then 40 concurrent ones that shared forward passes (plus 2 warm-ups).
    assert batches < 40 + 40 + 2
    alone_batches = _bucket(text, "deepstrata_batch_requests", "1.0")
    assert alone_batches < batches  # at least one forward pass answered several requests


def _bucket(text: str, name: str, le: str) -> float:
    line = next(
        line for line in text.splitlines() if line.startswith(f'{name}_bucket{{le="{le}"}}')
    )
    return float(line.split()[-1])


def test_an_unexpected_error_fails_only_its_batch_and_the_batcher_goes_on(caplog):
    """Something outside the forward pass's own try (here the metrics callback) raises."""
    run = Recorder()
    batches = []

    def on_batch(requests, rows):
        batches.append(requests)
        if len(batches) == 1:
            raise RuntimeError("a bug in the batcher")

    async def main():
        batcher = MicroBatcher(run, max_rows=64, max_wait=0.5, pending=lambda: 2, on_batch=on_batch)
        batcher.start()
        try:
            failed = await asyncio.wait_for(
                asyncio.gather(
                    batcher.submit(frame(1.0)), batcher.submit(frame(2.0)), return_exceptions=True
                ),
                5,
            )
            later = await asyncio.wait_for(batcher.submit(frame(3.0)), 5)
            return failed, later, batcher.running
        finally:
            await batcher.stop()

    with caplog.at_level("ERROR", logger="deepstrata.serve"):
        failed, later, running = asyncio.run(main())
    assert [type(error) for error in failed] == [ApiError, ApiError]
    assert {(error.code, error.status) for error in failed} == {("internal_error", 500)}
    np.testing.assert_array_equal(later, [30.0])
    assert running
    assert len([r for r in caplog.records if r.exc_info]) == 1  # logged once, not per request


def test_a_request_cancelled_while_its_batch_fails_is_not_run_again():
    run = Recorder(fail_on=2.0)
    run.gate.clear()  # the batch blocks in the worker until released

    async def main():
        batcher = MicroBatcher(run, max_rows=64, max_wait=0.5, pending=lambda: 3)
        batcher.start()
        try:
            tasks = [
                asyncio.create_task(batcher.submit(f))
                for f in (frame(1.0), frame(2.0), frame(3.0, 3.0, 3.0))
            ]
            await asyncio.sleep(0.1)  # the three are one batch, waiting on the gate
            tasks[2].cancel()  # as a timed-out request's handler is
            run.gate.set()
            answers = await asyncio.gather(*tasks, return_exceptions=True)
            # Answered once the batcher is done with the failed batch, however it did it.
            return (*answers, await batcher.submit(frame(4.0)))
        finally:
            await batcher.stop()

    first, second, third, fourth = asyncio.run(main())
    np.testing.assert_array_equal(first, [10.0])
    assert isinstance(second, ValueError) and isinstance(third, asyncio.CancelledError)
    np.testing.assert_array_equal(fourth, [40.0])
    assert run.calls == [5, 1, 1, 1]  # the batch, the first two alone, the fourth; not the third


def test_readiness_turns_503_when_the_batcher_task_has_died(churn_model, churn_rows):
    app = create_app(Predictor(churn_model), ServeSettings(timeout=5))
    body = {"records": records_of(churn_rows.head(1))}

    async def main():
        async with asgi_session(app) as client:
            assert (await client.get("/readyz")).status_code == 200
            app.state.batcher._task.cancel()  # however it ends, the task is gone
            await asyncio.sleep(0.05)
            loop = asyncio.get_running_loop()
            started = loop.time()
            predicted = await client.post("/predict", json=body)
            return await client.get("/readyz"), predicted, loop.time() - started

    ready, predicted, took = asyncio.run(main())
    assert ready.status_code == 503 and "worker has stopped" in ready.json()["error"]["message"]
    assert predicted.status_code == 503 and took < 1.0  # at once, not after the timeout


def _histogram_count(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(f"{name}_count"))
    return float(line.split()[-1])

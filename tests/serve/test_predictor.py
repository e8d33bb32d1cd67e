"""The predictor: records' values straight to the model, and which batches skip the thread."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pandas as pd
import pytest

from deepstrata.serve.batching import MicroBatcher
from deepstrata.serve.predictor import INLINE_ROWS, INLINE_SECONDS, Predictor
from deepstrata.serve.records import Rows
from tests.serve.conftest import records_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rows_of(records: list[dict]) -> Rows:
    names = list(records[0])
    return Rows({n: [r.get(n) for r in records] for n in names}, len(records))


def test_rows_give_the_outputs_of_the_frame_path(churn_model, churn_rows):
    """The values of validated records reach the model without a DataFrame, with the same
    outputs as the DataFrame a server built before (numbers, categories, yes/no, dates)."""
    predictor = Predictor(churn_model)
    records = records_of(churn_rows)
    joined = Predictor.join([rows_of(records[:3]), rows_of(records[3:])])
    assert isinstance(joined, Rows) and len(joined) == len(records)
    np.testing.assert_allclose(
        predictor.outputs(joined), predictor.outputs(churn_rows.reset_index(drop=True)), atol=1e-6
    )


def test_a_quick_model_answers_small_batches_on_the_event_loop(churn_model, churn_rows):
    predictor = Predictor(churn_model)
    assert not predictor.inline(rows_of(records_of(churn_rows)[:1]))  # not timed yet
    predictor.warm_up(8)
    assert predictor.row_seconds is not None and predictor.row_seconds > 0  # timed
    # How fast this machine ran it is a benchmark's business (bench/serve.py); here, a
    # one-row pass as quick as the churn model's on a quiet machine (~0.5 ms).
    predictor.row_seconds = INLINE_SECONDS / 4
    records = records_of(churn_rows)
    assert predictor.inline(rows_of(records[:1]))
    assert predictor.inline(rows_of(records[:INLINE_ROWS]))
    assert not predictor.inline(rows_of(records[: INLINE_ROWS + 1]))  # a big batch: the thread
    assert not predictor.inline(churn_rows)  # a DataFrame (files): always the worker


def test_a_slow_model_stays_in_the_worker(churn_model, churn_rows):
    class Slow(Predictor):
        def outputs(self, rows):
            time.sleep(0.005)
            return super().outputs(rows)

    predictor = Slow(churn_model)
    predictor.warm_up(4)
    assert predictor.row_seconds >= 0.005
    assert not predictor.inline(rows_of(records_of(churn_rows)[:1]))


def test_the_batcher_runs_inline_batches_in_the_loops_thread_and_others_in_the_worker():
    threads: list[str] = []

    def run(frame: pd.DataFrame) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return frame["x"].to_numpy()

    async def main():
        batcher = MicroBatcher(run, max_rows=8, max_wait=0.0, inline=lambda frame: len(frame) == 1)
        batcher.start()
        try:
            await batcher.submit(pd.DataFrame({"x": [1.0]}))
            await batcher.submit(pd.DataFrame({"x": [1.0, 2.0]}))
        finally:
            await batcher.stop()
        return threading.current_thread().name

    loop_thread = asyncio.run(main())
    assert threads[0] == loop_thread
    assert threads[1].startswith("deepstrata-model")

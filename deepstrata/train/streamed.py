"""The training loop over data streamed from disk (a Parquet folder bigger than memory).

:class:`StreamedTrainer` is the :class:`~deepstrata.train.trainer.Trainer` with one part
replaced: an epoch's batches come from a ``source`` (its ``batches(epoch, batch_size,
skip)`` yields ``(inputs, target)`` tensors, in an order fixed by the seed and the epoch)
instead of from a permutation of tensors in memory. Everything else is the Trainer's:
steps, gradient accumulation, clipping, schedule, validation (held in memory),
early stopping, checkpoints, exact resume (the source replays the epoch up to the
checkpoint's batch) and data parallelism (each rank reads the global batch and trains
on its share: the same answer as one process).

The learning-rate range test and the precision probe run on ``sample``, the bounded
sample the preprocessors were fitted on.
"""

from __future__ import annotations

import math
import time

import torch

from deepstrata.train import distributed as dist
from deepstrata.train.history import History
from deepstrata.train.trainer import Trainer


class StreamedTrainer(Trainer):
    """A Trainer whose epochs stream from ``source`` (see the module's doc)."""

    def fit_stream(self, source, sample, validation=None, *, resume: bool = False) -> History:
        """Train on ``source.rows`` rows streamed by ``source.batches``; ``sample`` is an
        ``(inputs, target)`` pair in memory for the choices made before the first epoch."""
        self._source, self._sample = source, sample
        inputs, target = sample
        # fit() reads the row count and the row widths off its inputs: views of one
        # sample row with stride 0 give it the stream's length, holding no memory.
        stand_in = {k: v[:1].expand(source.rows, *v.shape[1:]) for k, v in inputs.items()}
        return self.fit(
            stand_in, target[:1].expand(source.rows, *target.shape[1:]), validation, resume=resume
        )

    def _on_device(self, inputs, target, validation) -> tuple:
        # The stand-ins stay where they are (a copy would allocate the stream's size);
        # batches move as they come.
        moved = super()._on_device({}, target[:0], validation)
        return inputs, target, moved[2]

    def _choose_learning_rate(self, inputs, target, batch_size: int) -> float:
        sample, sample_target = self._sample_on_device()
        return super()._choose_learning_rate(sample, sample_target, batch_size)

    def _choose_precision(self, inputs, target, batch_size: int, learning_rate: float) -> str:
        sample, sample_target = self._sample_on_device()
        return super()._choose_precision(sample, sample_target, batch_size, learning_rate)

    def _sample_on_device(self) -> tuple:
        inputs, target = self._sample
        return {k: v.to(self.device) for k, v in inputs.items()}, target.to(self.device)

    def _train_epoch(self, epoch, first, inputs, target, batch_size, deadline) -> tuple[dict, bool]:
        """As Trainer._train_epoch, the batches read from the source (from batch ``first``)."""
        loop, accumulate = self.loop, self.gradient_accumulation
        self._epoch_start = time.perf_counter()
        self.network.train()
        order_state = loop.order.get_state()
        batches = math.ceil(self._source.rows / batch_size)
        stream = self._source.batches(epoch, batch_size, skip=first)
        if first == 0:
            loop.loss_sum, loop.seen = 0.0, 0
        for step in range(first // accumulate, math.ceil(batches / accumulate)):
            micro = range(step * accumulate, min((step + 1) * accumulate, batches))
            for batch in micro:
                batch_inputs, batch_target = next(stream)
                batch_inputs = {k: v.to(self.device) for k, v in batch_inputs.items()}
                index = torch.arange(len(batch_target), device=self.device)
                with dist.no_sync(self._model, last=batch == micro.stop - 1):
                    loss = self._backward(
                        batch_inputs,
                        batch_target.to(self.device),
                        index,
                        len(micro),
                        epoch,
                        step + 1,
                    )
            position = micro.stop if micro.stop < batches else None  # None: the epoch's end
            if self._end_step(epoch, step + 1, loss, deadline, position, order_state):
                return self._record(epoch), True
        return self._record(epoch), False

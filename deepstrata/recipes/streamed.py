"""``fit`` on a Parquet folder (or, with ``--stream``, a file) that need not fit in memory.

What is fitted on a bounded reservoir sample of ``--sample-rows`` rows (100,000 by
default; :meth:`deepstrata.data.stream.ParquetStream.sample`): the schema and the task,
the target's encoding (classes, or the regression target's scale), every input kind's
preprocessor (numbers' centre, scale and quantiles, categories' and texts' vocabularies,
dates' ranges: rare values outside the sample become "unknown"), and the validation rows,
held out of the sample (``--validation-fraction`` of it) and kept in memory. What is
streamed: the training rows (every labelled row not held out, counted in one pass over
the target column), one row group at a time through a bounded shuffle buffer of
``--shuffle-buffer`` rows, every epoch in a new order from the seed
(:class:`~deepstrata.train.streamed.StreamedTrainer`). Memory holds the sample, the
validation rows, the buffer and one row group, whatever the size of the data.

One split only: folds and the classical ensemble need every row at hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from deepstrata.data.stream import ParquetStream, is_parquet
from deepstrata.data.table import Table
from deepstrata.errors import ConfigError
from deepstrata.model.model import Model
from deepstrata.recipes.network import _new_member, _trainer, _what_was_chosen
from deepstrata.recipes.prepare import Prepared, assemble, calibrated, transform
from deepstrata.recipes.records import data_summary, prediction_records
from deepstrata.report.render import PREDICTIONS, SUMMARY
from deepstrata.seeding import seed_everything
from deepstrata.train.batches import forward_in_chunks
from deepstrata.train.checkpoint import has_checkpoint
from deepstrata.train.streamed import StreamedTrainer


def open_stream(data, cfg) -> ParquetStream | None:
    """The stream to train from: a folder of Parquet files, or a Parquet file with
    ``--stream``; None for data read into memory."""
    path = Path(data) if isinstance(data, str | os.PathLike) else None
    streamed = path is not None and is_parquet(path) and (path.is_dir() or cfg.stream)
    if cfg.stream and not streamed:
        raise ConfigError("streams a Parquet file or folder only", option="--stream")
    if not streamed:
        return None
    if cfg.folds:
        raise ConfigError(
            "cross-validation needs every row in memory; a streamed fit holds one split out",
            option="--folds",
        )
    if cfg.adversarial != "none":  # the perturbation and its undefended twin are built per split
        raise ConfigError(
            "adversarial training is not built for a streamed fit; fit a table that fits in "
            "memory (a Parquet file without --stream)",
            option="--adversarial",
        )
    return ParquetStream(path)


def sample_table(stream: ParquetStream, cfg) -> Table:
    """The reservoir sample as the Table that ``prepare`` reads (its rows' numbers in the
    stream kept on ``stream.sample_numbers``)."""
    frame = stream.sample(cfg.sample_rows, seed=cfg.seed)
    stream.sample_numbers = frame.index.to_numpy()
    return Table(frame.reset_index(drop=True), str(stream.path), None)


class _Source:
    """The training rows of the stream as tensors, an epoch at a time."""

    def __init__(self, stream: ParquetStream, prepared: Prepared, preprocessors, held_out):
        self.stream, self.prepared, self.preprocessors = stream, prepared, preprocessors
        self.held_out = held_out
        target = prepared.cfg.target
        counter = ParquetStream(stream.path, columns=[target])
        self.rows = sum(int(self.keep(chunk).sum()) for chunk in counter.chunks())

    def keep(self, chunk) -> np.ndarray:
        labelled = ~self.prepared.task.missing_targets(chunk[self.prepared.cfg.target])
        return labelled & ~np.isin(chunk.index.to_numpy(), self.held_out)

    def batches(self, epoch: int, batch_size: int, *, skip: int = 0):
        cfg, encoder = self.prepared.cfg, self.prepared.target_encoder
        for frame in self.stream.batches(
            batch_size,
            seed=cfg.seed,
            epoch=epoch,
            buffer_rows=cfg.shuffle_buffer,
            skip=skip,
            keep=self.keep,
        ):
            table = Table(frame.reset_index(drop=True), str(self.stream.path), None)
            target = torch.from_numpy(encoder.encode(table.frame[cfg.target], table))
            yield transform(self.preprocessors, table.frame, table), target


def streamed_split(
    prepared: Prepared, *, stream: ParquetStream, run, resume, progress, callbacks
) -> Model:
    """Train one network on the stream (validation held out of the sample)."""
    cfg, task, table = prepared.cfg, prepared.task, prepared.table
    train_rows, val_rows = prepared.validation_split()
    held_out = np.sort(stream.sample_numbers[prepared.frame.index[val_rows]])
    preprocessors = prepared.new_preprocessors(train_rows)
    sample = (
        transform(preprocessors, prepared.frame.iloc[train_rows], table),
        torch.from_numpy(prepared.encoded[train_rows]),
    )
    validation = (
        transform(preprocessors, prepared.frame.iloc[val_rows], table),
        torch.from_numpy(prepared.encoded[val_rows]),
    )
    source = _Source(stream, prepared, preprocessors, held_out)
    progress.note(
        f"streaming {source.rows} training rows from {len(stream.files)} file(s), "
        f"{len(stream.pieces)} row groups; preprocessors fitted on a {len(prepared.frame)}-row "
        f"sample, {len(val_rows)} validation rows held out of it"
    )
    seed_everything(cfg.seed)
    member, callbacks = _new_member(prepared, preprocessors, callbacks)
    directory = run.path if run else None
    trainer = _trainer(
        prepared,
        member.network,
        directory,
        val_rows,
        callbacks,
        progress,
        None,
        kind=StreamedTrainer,
    )
    resuming = resume and directory is not None and has_checkpoint(directory / "checkpoint")
    history = trainer.fit_stream(source, sample, validation, resume=resuming)
    member.network.cpu().eval()
    info, artifacts = _what_was_chosen(trainer, cfg, history, directory)
    raw = forward_in_chunks(member.network, validation[0]).numpy()
    labels = prepared.encoded[val_rows]
    if task.classifier and cfg.calibrate:
        from deepstrata.calibrate.temperature import calibrate

        info["calibration"] = calibrate(member, raw, labels)
    outputs = calibrated(raw, member)
    decision = task.decide(outputs, labels)
    model = assemble(prepared, [member], artifacts, decision=decision)
    split = {"train": source.rows, "validation": len(val_rows)}
    model.metrics = {
        "validation": model.metrics_of(outputs, labels),
        "rows": split,
        **info,
        **({"decision": decision} if decision is not None else {}),
        "history": history.to_dict(),
        "streamed": {
            "files": len(stream.files),
            "row_groups": len(stream.pieces),
            "sample_rows": len(prepared.frame),
            "shuffle_buffer": cfg.shuffle_buffer,
        },
    }
    model.artifacts[PREDICTIONS] = prediction_records(prepared, model, val_rows, outputs)
    model.artifacts[SUMMARY] = data_summary(prepared, split)
    return model

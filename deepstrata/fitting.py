"""Training one split: fit preprocessors on its training rows, build a network, train
it (range test, schedule, early stopping, checkpoints), calibrate it on its validation
rows. ``deepstrata.fit`` calls this once (one validation split) or once per fold
(:mod:`deepstrata.crossval`).
"""

from __future__ import annotations

import functools
import json
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepstrata.config import FitConfig
from deepstrata.data.files import BadFile
from deepstrata.data.schema import Schema
from deepstrata.data.sources import Table
from deepstrata.errors import ConfigError, DataWarning
from deepstrata.evaluate.calibration import expected_calibration_error, fit_temperature
from deepstrata.features import train_features
from deepstrata.heads import point_predictions, probabilities
from deepstrata.kinds import REGISTRY, encoder_options, transform_frame
from deepstrata.model import Member, Model, build_member
from deepstrata.preprocess.target import TargetEncoder
from deepstrata.pretrained.freezing import GradualUnfreezing, freeze
from deepstrata.pretrained.registry import get
from deepstrata.seeding import seed_everything
from deepstrata.train.batches import forward_in_chunks
from deepstrata.train.callbacks import Callback, MetricsLog, TensorBoardLog
from deepstrata.train.checkpoint import has_checkpoint
from deepstrata.train.precision import resolve_device
from deepstrata.train.progress import Progress
from deepstrata.train.trainer import Trainer


@dataclass
class Prepared:
    """What every split of one ``fit`` shares."""

    cfg: FitConfig
    table: Table
    frame: pd.DataFrame  # labelled rows only
    schema: Schema
    target_encoder: TargetEncoder
    encoded: np.ndarray  # encoded target, one per row of ``frame``
    skipped: list[BadFile] = field(default_factory=list)  # rows left out: unreadable files
    strategy: dict = field(default_factory=dict)  # used, requested, reason (see pretrained)
    pretrained: dict[str, str] = field(default_factory=dict)  # kind -> pretrained network used

    @property
    def options(self) -> dict:
        """What preprocessors and encoders read: the config plus the pretrained networks."""
        return {**self.cfg.to_dict(), "pretrained": self.pretrained}


@dataclass
class Trained:
    member: Member
    history: dict
    raw_outputs: np.ndarray | None  # validation logits before calibration
    info: dict  # learning rate, precision, calibration: what the run chose and why
    artifacts: dict[str, bytes]


def train_split(
    prepared: Prepared,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None,
    *,
    directory: Path | None,
    resume: bool,
    progress: Progress,
    callbacks: list[Callback],
    max_epochs: int | None = None,
) -> Trained:
    """Fit preprocessors on ``train_rows``, build and train one network, calibrate it.
    Under ``--strategy features``: embeddings and a classical head instead."""
    cfg, schema, table = prepared.cfg, prepared.schema, prepared.table
    if cfg.strategy == "features":
        return train_features(prepared, train_rows, val_rows, progress=progress)
    train_frame = prepared.frame.iloc[train_rows]
    options = prepared.options
    preprocessors = {
        f.name: REGISTRY[f.kind].new_preprocessor(options).fit(train_frame[f.name], table)
        for f in schema.inputs
    }
    train_inputs = transform(preprocessors, train_frame, table)
    train_target = torch.from_numpy(prepared.encoded[train_rows])
    validation = None
    if val_rows is not None:
        val_inputs = transform(preprocessors, prepared.frame.iloc[val_rows], table)
        validation = (val_inputs, torch.from_numpy(prepared.encoded[val_rows]))

    seed_everything(cfg.seed)
    architecture = {
        "task": schema.task,
        "num_classes": len(prepared.target_encoder.classes),
        "hidden_dims": list(cfg.hidden_dims),
        "dropout": cfg.dropout,
        "options": encoder_options(sorted({f.kind for f in schema.inputs}), options),
    }
    member = build_member(preprocessors, architecture)
    network = member.network
    if cfg.strategy == "finetune":
        freeze(network, cfg.freeze)
        if cfg.freeze == "gradual":
            callbacks = [GradualUnfreezing(), *callbacks]
        member.pretrained = [
            get(name).identity() for name in sorted(set(prepared.pretrained.values()))
        ]
    loss_fn = network.loss
    if cfg.label_smoothing:
        loss_fn = functools.partial(network.loss, label_smoothing=cfg.label_smoothing)
    extra: list[Callback] = []
    if directory is not None:
        extra.append(MetricsLog(directory / "metrics.jsonl"))
        if cfg.tensorboard:
            extra.append(TensorBoardLog(directory / "tensorboard"))
    elif cfg.tensorboard:
        raise ConfigError(
            "TensorBoard logs go into the run directory: give one (--run-dir)",
            option="--tensorboard",
        )
    epochs = max_epochs or cfg.max_epochs
    trainer = Trainer(
        network,
        loss_fn=loss_fn,
        eval_loss_fn=network.loss,
        metric_fn=_epoch_metric(schema.task, prepared.target_encoder),
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        schedule=cfg.schedule,
        batch_size=cfg.batch_size,
        max_epochs=epochs,
        patience=cfg.patience if val_rows is not None else epochs + 1,
        min_delta=cfg.min_delta,
        monitor=cfg.monitor,
        gradient_clip=cfg.gradient_clip,
        gradient_accumulation=cfg.gradient_accumulation,
        mixup=cfg.mixup,
        precision=cfg.precision,
        device=resolve_device(cfg.device),
        time_limit=cfg.time_limit,
        seed=cfg.seed,
        checkpoint_dir=directory / "checkpoint" if directory is not None else None,
        checkpoint_interval=cfg.checkpoint_minutes * 60,
        callbacks=[*extra, *callbacks],
        progress=progress,
    )
    resuming = resume and directory is not None and has_checkpoint(directory / "checkpoint")
    history = trainer.fit(train_inputs, train_target, validation=validation, resume=resuming)
    network.cpu().eval()

    info: dict = {
        "learning_rate": {"configured": cfg.learning_rate, "used": trainer.chosen_learning_rate},
        "precision": {"configured": cfg.precision, "used": trainer.chosen_precision},
        "device": str(trainer.device),
    }
    if trainer.precision_probe:
        info["precision"]["probe"] = trainer.precision_probe
    artifacts = {"metrics.jsonl": "".join(json.dumps(r) + "\n" for r in history.epochs).encode()}
    if trainer.range_test is not None:
        sweep = trainer.range_test
        info["learning_rate"].update({"suggestion": sweep.suggestion, "rule": sweep.rule})
        artifacts["lr_range.json"] = json.dumps(sweep.to_dict(), indent=2).encode()
        with tempfile.TemporaryDirectory() as scratch:
            plot = Path(directory or scratch) / "lr_range.png"
            artifacts["lr_range.png"] = sweep.save_plot(plot).read_bytes()

    raw = None
    if validation is not None:
        raw = forward_in_chunks(network, validation[0]).numpy()
        if schema.task != "regression" and cfg.calibrate:
            info["calibration"] = calibrate(member, raw, prepared.encoded[val_rows])
    return Trained(member, history.to_dict(), raw, info, artifacts)


def calibrate(member: Member, raw: np.ndarray, labels: np.ndarray) -> dict:
    """Temperature scaling on the validation logits; ECE before and after.

    With no misclassified validation row the likelihood keeps rising as the
    temperature falls, so the fit would sharpen without limit on no evidence:
    then the temperature may soften (> 1) but not sharpen.
    """
    task = member.architecture["task"]
    temperature, note = _temperature(raw, labels, task)
    member.temperature = temperature
    return {
        "method": "temperature scaling",
        "temperature": temperature,
        "ece_before": expected_calibration_error(probabilities(task, raw), labels),
        "ece_after": expected_calibration_error(probabilities(task, raw / temperature), labels),
        "fitted_on": f"validation ({len(labels)} rows)",
        **({"note": note} if note else {}),
    }


def _temperature(raw: np.ndarray, labels: np.ndarray, task: str) -> tuple[float, str]:
    temperature = fit_temperature(torch.from_numpy(raw), torch.from_numpy(labels), task=task)
    if (point_predictions(task, raw) == labels).all() and temperature < 1.0:
        return 1.0, "every held-out row is right: no evidence to sharpen on"
    return temperature, ""


def calibrated(raw: np.ndarray, member: Member) -> np.ndarray:
    if member.architecture["task"] == "regression":
        return raw
    return raw / member.temperature


def transform(preprocessors, frame: pd.DataFrame, table: Table) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        # Rare training values and validation-only values are expected to be unknown here.
        warnings.simplefilter("ignore", DataWarning)
        return transform_frame(preprocessors, frame, table)


def assemble(
    prepared: Prepared, members: list, artifacts: dict, *, weights: list[float] | None = None
) -> Model:
    if prepared.skipped:
        artifacts = {**artifacts, "skipped_files.csv": _skipped_table(prepared)}
    return Model(
        schema=prepared.schema,
        members=members,
        target_encoder=prepared.target_encoder,
        config=prepared.cfg,
        artifacts=artifacts,
        weights=weights,
    )


def _epoch_metric(task: str, target_encoder: TargetEncoder):
    """A cheap per-epoch validation figure for the progress line (torch only)."""
    if task == "binary":
        return lambda out, y: {"accuracy": float(((out > 0).long() == y).float().mean())}
    if task == "multiclass":
        return lambda out, y: {"accuracy": float((out.argmax(1) == y).float().mean())}
    scale = target_encoder.std
    return lambda out, y: {"rmse": float(torch.sqrt(torch.mean((out - y) ** 2))) * scale}


def _skipped_table(prepared: Prepared) -> bytes:
    """The rows ``--skip-bad-files`` left out: where, which file, why (CSV)."""
    rows = [
        {**prepared.table.location(b.position), "file": b.path, "reason": b.reason}
        for b in prepared.skipped
    ]
    return (
        pd.DataFrame(rows, columns=["row", "line", "file", "reason"]).to_csv(index=False).encode()
    )

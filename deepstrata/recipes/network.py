"""Training one split: fit preprocessors on its training rows, build a network, train
it (range test, schedule, early stopping, checkpoints), calibrate it on its validation
rows. Every recipe (one split, K folds, cross-fitting) calls :func:`train_split` once
per network it needs; under ``--strategy features`` it hands over to
:func:`deepstrata.recipes.features.train_features`.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from deepstrata.calibrate.temperature import calibrate
from deepstrata.errors import ConfigError
from deepstrata.kinds import encoder_options
from deepstrata.model.member import build_member
from deepstrata.pretrained.freezing import GradualUnfreezing, freeze
from deepstrata.pretrained.registry import get
from deepstrata.recipes.features import train_features
from deepstrata.recipes.prepare import Prepared, Trained, transform
from deepstrata.seeding import seed_everything
from deepstrata.tasks import imbalance
from deepstrata.tasks.imbalance import oversample
from deepstrata.train import distributed as dist
from deepstrata.train.batches import forward_in_chunks
from deepstrata.train.callbacks import Callback, MetricsLog, TensorBoardLog
from deepstrata.train.checkpoint import has_checkpoint
from deepstrata.train.precision import resolve_device
from deepstrata.train.private import PRIVATE_LEARNING_RATE
from deepstrata.train.progress import Progress
from deepstrata.train.trainer import Trainer


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
    row_weights: np.ndarray | None = None,
) -> Trained:
    """Fit preprocessors on ``train_rows``, build and train one network, calibrate it on
    ``val_rows`` (None: a refit on every row, stopping at ``max_epochs``)."""
    cfg = prepared.cfg
    if cfg.strategy == "features":
        if cfg.private:  # --strategy auto chose it: the classical head would train without noise
            raise ConfigError(
                "--strategy auto chose pretrained features under a classical head, which "
                "trains without noise: add --strategy scratch or finetune",
                option="--private",
            )
        return train_features(prepared, train_rows, val_rows, progress=progress)
    imbalance = _imbalance(prepared, train_rows, progress)
    if imbalance and imbalance["method"] == "sample":
        train_rows = oversample(train_rows, prepared.encoded[train_rows], cfg.seed)
    preprocessors = prepared.new_preprocessors(train_rows)
    train_inputs = transform(preprocessors, prepared.frame.iloc[train_rows], prepared.table)
    train_target = torch.from_numpy(prepared.encoded[train_rows])
    validation = None
    if val_rows is not None:
        val_inputs = transform(preprocessors, prepared.frame.iloc[val_rows], prepared.table)
        validation = (val_inputs, torch.from_numpy(prepared.encoded[val_rows]))

    seed_everything(cfg.seed)
    member, callbacks = _new_member(prepared, preprocessors, callbacks)
    # Callbacks that need this split's fitted preprocessors and validation rows
    # (adversarial training: each kind's units, robust accuracy at the end).
    callbacks = [
        c.for_split(preprocessors, validation) if hasattr(c, "for_split") else c for c in callbacks
    ]
    private = _private(cfg, member.network)
    callbacks = [*callbacks, private] if private else callbacks
    trainer = _trainer(
        prepared, member.network, directory, val_rows, callbacks, progress, max_epochs, imbalance
    )
    resuming = resume and directory is not None and has_checkpoint(directory / "checkpoint")
    if row_weights is not None:  # fairness reweighing: each row's weight in the loss
        trainer.row_weights = torch.as_tensor(row_weights, dtype=torch.float32)
    try:
        history = trainer.fit(train_inputs, train_target, validation=validation, resume=resuming)
    finally:
        if private is not None:  # a failed fit leaves no hooks on the network either
            private.close()
    member.network.cpu().eval()
    twin_data = (preprocessors, train_inputs, train_target, validation, imbalance, row_weights)
    _train_twins(prepared, callbacks, twin_data, directory, resume, progress, max_epochs)

    info, artifacts = _what_was_chosen(trainer, cfg, history, directory)
    if imbalance:
        info["imbalance"] = imbalance
    if private is not None:
        info["privacy"] = private.record()
    for callback in callbacks:
        info.update(getattr(callback, "info", None) or {})
    raw = None
    if validation is not None:
        raw = forward_in_chunks(member.network, validation[0]).numpy()
        if prepared.task.classifier and cfg.calibrate:
            info["calibration"] = calibrate(member, raw, prepared.encoded[val_rows])
    return Trained(member, history.to_dict(), raw, info, artifacts)


def _train_twins(prepared, callbacks, data, directory, resume, progress, max_epochs) -> None:
    """fit --adversarial: the undefended twin of the network just trained (same rows,
    split, seed, settings and initial weights; no perturbation), handed to the callback
    that asked for it (``undefended_twin``/``add_twin``) to measure the clean-accuracy
    cost and the time factor. Only its figures are kept, not its weights."""
    preprocessors, train_inputs, train_target, validation, rare, row_weights = data
    for callback in callbacks:
        twin = getattr(callback, "undefended_twin", lambda: None)()
        if twin is None:
            continue
        progress.note(
            "adversarial training: now the undefended twin (same rows, split, seed and "
            "settings, no perturbation) to measure the clean-accuracy cost and time factor; "
            "--no-adversarial-reference skips it"
        )
        seed_everything(prepared.cfg.seed)  # the same initial weights as the defended network
        member, extra = _new_member(prepared, preprocessors, [])
        folder = directory / "undefended" if directory is not None else None
        trainer = _trainer(
            prepared, member.network, folder, validation, [*extra, twin], progress,
            max_epochs, rare,
        )  # fmt: skip
        if row_weights is not None:
            trainer.row_weights = torch.as_tensor(row_weights, dtype=torch.float32)
        resuming = resume and folder is not None and has_checkpoint(folder / "checkpoint")
        trainer.fit(train_inputs, train_target, validation=validation, resume=resuming)
        callback.add_twin(twin)


def _new_member(prepared: Prepared, preprocessors: dict, callbacks: list[Callback]):
    """A member with a fresh network; finetune freezes (or unfreezes by epoch) and names
    the pretrained networks it starts from."""
    cfg, schema = prepared.cfg, prepared.schema
    architecture = {
        "task": schema.task,
        "num_classes": len(prepared.target_encoder.classes),
        "hidden_dims": list(cfg.hidden_dims),
        "dropout": cfg.dropout,
        "options": encoder_options(sorted({f.kind for f in schema.inputs}), prepared.options),
    }
    member = build_member(preprocessors, architecture)
    if cfg.strategy == "finetune":
        freeze(member.network, cfg.freeze)
        if cfg.freeze == "gradual":
            if dist.world_size() > 1:  # DDP syncs only what was trainable when it wrapped
                raise ConfigError(
                    "gradual unfreezing under several processes: DDP would never average "
                    "the gradients of layers unfrozen later; use --freeze none or all",
                    option="--freeze",
                )
            callbacks = [GradualUnfreezing(), *callbacks]
        member.pretrained = [
            get(name).identity() for name in sorted(set(prepared.pretrained.values()))
        ]
    return member, callbacks


def _private(cfg, network):
    """fit --private: the DP-SGD callback, once the network is known to allow it."""
    if not cfg.private:
        return None
    from deepstrata.train.private import PrivateTraining, check_private_network

    check_private_network(network)  # before any training
    return PrivateTraining(
        target_epsilon=cfg.target_epsilon,
        target_delta=cfg.target_delta,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
    )


def _imbalance(prepared: Prepared, train_rows: np.ndarray, progress: Progress) -> dict | None:
    """``--imbalance`` resolved on these training rows (binary and multiclass; None for
    other tasks), said once on the progress output when a class is rare or a method named."""
    cfg, task = prepared.cfg, prepared.task
    if not task.weighs_classes:
        return None
    labels = prepared.encoded[train_rows]
    classes = list(getattr(prepared.target_encoder, "classes", []))
    count = len(classes) or int(labels.max()) + 1
    entry = imbalance.resolve(cfg.imbalance, labels, count, classes)
    if entry["rare"] or entry["method"] != "none":
        progress.note(imbalance.describe(entry))
    return entry


def _trainer(
    prepared,
    network,
    directory,
    val_rows,
    callbacks,
    progress,
    max_epochs,
    rare=None,
    kind=Trainer,
) -> Trainer:
    """The Trainer for one network (``kind``: a subclass, the streamed one), every setting
    from the fit's configuration; ``rare``: what --imbalance resolved to."""
    cfg, task, encoder = prepared.cfg, prepared.task, prepared.target_encoder
    loss_fn, eval_loss_fn = network.loss, network.loss
    if cfg.label_smoothing:
        loss_fn = functools.partial(network.loss, label_smoothing=cfg.label_smoothing)
    if rare and "class_weights" in rare:  # --imbalance weight | focal
        loss_fn = imbalance.loss_function(task.name, rare, cfg.label_smoothing)
        eval_loss_fn = imbalance.loss_function(task.name, rare)
    logs: list[Callback] = []
    if directory is None and cfg.tensorboard:
        raise ConfigError(
            "TensorBoard logs go into the run directory: give one (--run-dir)",
            option="--tensorboard",
        )
    if directory is not None and dist.is_main():  # one writer of the logs: rank 0
        logs.append(MetricsLog(directory / "metrics.jsonl"))
        if cfg.tensorboard:
            logs.append(TensorBoardLog(directory / "tensorboard"))
    epochs = max_epochs or cfg.max_epochs
    rate, precision = cfg.learning_rate, cfg.precision
    if cfg.private:  # neither the range test nor the probe may look at the rows unaccounted
        rate = PRIVATE_LEARNING_RATE if rate == "auto" else rate
        precision = "32"
    return kind(
        network,
        loss_fn=loss_fn,
        eval_loss_fn=eval_loss_fn,
        metric_fn=lambda output, target: task.epoch_metric(output, target, encoder),
        learning_rate=rate,
        weight_decay=cfg.weight_decay,
        schedule=cfg.schedule,
        batch_size=cfg.batch_size,
        max_epochs=epochs,
        schedule_epochs=cfg.schedule_epochs,
        patience=cfg.patience if val_rows is not None else epochs + 1,
        min_delta=cfg.min_delta,
        monitor=cfg.monitor,
        gradient_clip=cfg.gradient_clip,
        gradient_accumulation=cfg.gradient_accumulation,
        mixup=cfg.mixup,
        precision=precision,
        device=resolve_device(cfg.device),
        time_limit=cfg.time_limit,
        seed=cfg.seed,
        checkpoint_dir=directory / "checkpoint" if directory is not None else None,
        checkpoint_interval=cfg.checkpoint_minutes * 60,
        callbacks=[*logs, *callbacks],
        progress=progress,
    )


def _what_was_chosen(trainer: Trainer, cfg, history, directory) -> tuple[dict, dict]:
    """``info`` (the rate, the precision, the device) and the logs to keep in the bundle."""
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
    return info, artifacts

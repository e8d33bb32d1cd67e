"""The Python API: ``fit`` a table into a :class:`Model`, ``load`` one back.

>>> import deepstrata, pandas as pd
>>> frame = pd.DataFrame({"x": [i % 10 for i in range(40)], "y": ["a", "b"] * 20})
>>> model = deepstrata.fit(frame, target="y", max_epochs=2, progress=False)
>>> model.predict(frame.head(2)).shape
(2,)

``fit`` is: read -> schema -> split (or K folds) -> per split: fit preprocessors
on the training rows, build the network, train (range test, schedule, early
stopping, checkpoints), calibrate on the validation rows -> Model.
"""

from __future__ import annotations

import functools
import io
import json
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepstrata.config import FitConfig
from deepstrata.data.schema import Schema, infer_schema
from deepstrata.data.sources import Table, read_table
from deepstrata.data.split import kfold_split, train_validation_split
from deepstrata.errors import ConfigError, DataError, DataWarning
from deepstrata.evaluate.calibration import expected_calibration_error, fit_temperature
from deepstrata.heads import point_predictions
from deepstrata.kinds import REGISTRY, transform_frame
from deepstrata.model import Data, Member, Model, build_member, load, versions
from deepstrata.preprocess.target import TargetEncoder
from deepstrata.seeding import preserved_random_state, seed_everything
from deepstrata.train.callbacks import Callback, MetricsLog, TensorBoardLog
from deepstrata.train.checkpoint import has_checkpoint
from deepstrata.train.precision import resolve_device
from deepstrata.train.progress import Progress
from deepstrata.train.run import RunDirectory, fingerprint
from deepstrata.train.trainer import Trainer, forward_in_chunks

__all__ = ["Model", "fit", "load", "versions"]


@dataclass
class Prepared:
    """What every split of one ``fit`` shares."""

    cfg: FitConfig
    table: Table
    frame: pd.DataFrame  # labelled rows only
    schema: Schema
    target_encoder: TargetEncoder
    encoded: np.ndarray  # encoded target, one per row of ``frame``


@dataclass
class Trained:
    member: Member
    history: dict
    raw_outputs: np.ndarray | None  # validation logits before calibration
    info: dict  # learning rate, precision, calibration: what the run chose and why
    artifacts: dict[str, bytes]


def fit(
    data: Data,
    target: str | None = None,
    *,
    config: FitConfig | None = None,
    progress: bool | Progress = True,
    run_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    keep_checkpoints: bool = False,
    run_record: dict | None = None,
    **options,
) -> Model:
    """Infer a schema, fit preprocessors on the training split, train, and return a Model.

    ``data`` is a pandas DataFrame or a path (CSV, TSV, Parquet, JSONL).
    ``options`` are :class:`FitConfig` fields (``max_epochs=50``, ``folds=5``,
    ``columns={"zip": "category"}``); they override ``config``. ``progress=False``
    silences the progress display. ``run_dir`` keeps checkpoints and logs there;
    ``resume=True`` continues the run in ``run_dir`` exactly where it stopped.
    ``callbacks`` hook into the training loop (see ``deepstrata.train.callbacks``).
    Checkpoints are removed when fit returns unless ``keep_checkpoints`` (the CLI keeps
    them until the bundle is written); ``run_record`` adds fields to ``run.json``.
    """
    settings = {**(config.to_dict() if config else {}), **options}
    if target is not None:
        settings["target"] = target
    cfg = FitConfig.from_dict(settings, source="fit()").validate()
    if cfg.target is None:
        raise DataError("no target column given", hint="pass target=NAME (--target NAME)")
    if resume and run_dir is None:
        raise ConfigError("resuming needs the run directory", option="--resume")
    resolve_device(cfg.device)  # an absent device fails before any work

    prepared = _prepare(read_table(data), cfg)
    run = RunDirectory(run_dir) if run_dir is not None else None
    if run is not None:
        digest = fingerprint(prepared.table.frame)
        if resume:
            run.check(config=cfg.to_dict(), data_fingerprint=digest)
        else:
            run.begin(
                config=cfg.to_dict(),
                data_fingerprint=digest,
                source=prepared.table.source,
                **(run_record or {}),
            )
    reporter = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    context = {"run": run, "resume": resume, "progress": reporter, "callbacks": list(callbacks)}

    # fit seeds the global generators (initialisation, dropout); the caller's are restored.
    try:
        with preserved_random_state():
            if cfg.folds:
                model = _cross_validated(prepared, **context)
            else:
                model = _single(prepared, **context)
    except BaseException:
        if run is not None:
            run.abandon()  # bad data found mid-way leaves nothing behind; a checkpoint stays
        raise
    if run is not None and not keep_checkpoints:
        run.finish()
    return model


def _prepare(table: Table, cfg: FitConfig) -> Prepared:
    schema = infer_schema(
        table.frame,
        target=cfg.target,
        task=cfg.task,
        columns=cfg.columns,
        ignore=cfg.ignore,
        source=table.source,
    )
    if cfg.label_smoothing and schema.task == "regression":
        raise ConfigError(
            "label smoothing is for classifiers; this task is regression",
            option="--label-smoothing",
        )
    frame = table.frame
    labelled = frame[cfg.target].notna().to_numpy()
    if not labelled.all():
        warnings.warn(
            f"{int((~labelled).sum())} row(s) without a value in the target {cfg.target!r} were left out",
            DataWarning,
            stacklevel=3,
        )
        frame = frame[labelled]
    if len(frame) < 2:
        raise table.error(f"need at least 2 labelled rows to train, found {len(frame)}")
    target_encoder = TargetEncoder(schema.task).fit(frame[cfg.target], table)
    encoded = target_encoder.encode(frame[cfg.target], table)
    return Prepared(cfg, table, frame, schema, target_encoder, encoded)


def _single(prepared: Prepared, *, run, resume, progress, callbacks) -> Model:
    cfg = prepared.cfg
    train_rows, val_rows = train_validation_split(
        prepared.encoded,
        stratify=prepared.schema.task != "regression",
        fraction=cfg.validation_fraction,
        seed=cfg.seed,
    )
    if len(val_rows) == 0:
        raise prepared.table.error(
            "no row can be held out for validation: every class has a single row",
            column=cfg.target,
            hint="add rows or merge rare classes",
        )
    trained = _train(
        prepared,
        train_rows,
        val_rows,
        directory=run.path if run else None,
        resume=resume,
        progress=progress,
        callbacks=callbacks,
    )
    model = _model(prepared, [trained.member], trained.artifacts)
    outputs = _calibrated(trained.raw_outputs, trained.member)
    model.metrics = {
        "validation": model.metrics_of(outputs, prepared.encoded[val_rows]),
        "rows": {"train": len(train_rows), "validation": len(val_rows)},
        **trained.info,
        "history": trained.history,
    }
    return model


def _cross_validated(prepared: Prepared, *, run, resume, progress, callbacks) -> Model:
    """K models on K folds: mean ± std of every metric, out-of-fold predictions, then
    either a refit on all rows (for the mean best epoch) or the K-fold ensemble."""
    cfg, encoded = prepared.cfg, prepared.encoded
    if cfg.folds > len(encoded):
        raise ConfigError(
            f"{cfg.folds} folds need at least {cfg.folds} labelled rows, found {len(encoded)}",
            option="--folds",
        )
    folds = kfold_split(
        encoded, folds=cfg.folds, stratify=prepared.schema.task != "regression", seed=cfg.seed
    )
    results, fold_metrics = [], []
    raw = [None] * len(encoded)
    for number, (train_rows, val_rows) in enumerate(folds, start=1):
        if progress.enabled:
            print(
                f"fold {number}/{cfg.folds}: {len(train_rows)} rows to train, "
                f"{len(val_rows)} to validate",
                file=progress.stream,
                flush=True,
            )
        directory = run.path / f"fold-{number}" if run else None
        trained = _fold(prepared, train_rows, val_rows, directory, resume, progress, callbacks)
        results.append(trained)
        fold_model = _model(prepared, [trained.member], {})
        fold_metrics.append(
            fold_model.metrics_of(
                _calibrated(trained.raw_outputs, trained.member), encoded[val_rows]
            )
        )
        for row, output in zip(val_rows, trained.raw_outputs):
            raw[row] = (output, number, trained.member.temperature)

    names = list(fold_metrics[0])
    summary = {
        "folds": cfg.folds,
        "model": cfg.cv_model,
        "mean": {n: float(np.mean([m[n] for m in fold_metrics])) for n in names},
        "std": {n: float(np.std([m[n] for m in fold_metrics])) for n in names},
        "per_fold": [
            {
                **m,
                "best_epoch": r.history["best_epoch"],
                "stopped": r.history["stopped"],
                "learning_rate": r.info.get("learning_rate", {}).get("used"),
            }
            for m, r in zip(fold_metrics, results)
        ],
    }
    oof_raw = np.stack([entry[0] for entry in raw])
    oof = np.stack(
        [entry[0] / (entry[2] if prepared.schema.task != "regression" else 1.0) for entry in raw]
    )
    oof_model = _model(prepared, [results[0].member], {})
    artifacts = {"oof_predictions.csv": _oof_table(prepared, oof_model, oof, [e[1] for e in raw])}

    if cfg.cv_model == "ensemble":
        members = [r.member for r in results]
        artifacts.update(_fold_logs(results))
        info = {"training": "K-fold ensemble: every fold's network, probabilities averaged"}
    else:
        epochs = max(1, round(float(np.mean([r.history["best_epoch"] for r in results]))))
        if progress.enabled:
            print(
                f"refit on all {len(encoded)} rows for {epochs} epochs "
                "(the folds' mean best epoch)",
                file=progress.stream,
                flush=True,
            )
        trained = _train(
            prepared,
            np.arange(len(encoded)),
            None,
            directory=run.path / "refit" if run else None,
            resume=resume,
            progress=progress,
            callbacks=callbacks,
            max_epochs=epochs,
        )
        if prepared.schema.task != "regression" and cfg.calibrate:
            # No held-out rows remain: the temperature is fitted on the folds' out-of-fold logits.
            trained.info["calibration"] = _calibrate(trained.member, oof_raw, encoded)
            trained.info["calibration"]["fitted_on"] = f"out-of-fold logits ({len(encoded)} rows)"
        members = [trained.member]
        artifacts.update(trained.artifacts)
        info = {
            "training": f"refit on all rows for {epochs} epochs",
            "history": trained.history,
            **trained.info,
        }
    model = _model(prepared, members, artifacts)
    model.metrics = {
        "validation": oof_model.metrics_of(oof, encoded),  # out-of-fold: every row held out once
        "cross_validation": summary,
        "rows": {"train": len(encoded), "validation": len(encoded)},
        **info,
    }
    return model


FOLD_LOGS = ("metrics.jsonl", "lr_range.json", "lr_range.png")  # kept with a finished fold


def _fold(prepared, train_rows, val_rows, directory, resume, progress, callbacks) -> Trained:
    """Train one fold, or on resume take the fold a killed run had finished."""
    saved = directory / "model" if directory else None
    if resume and saved is not None and saved.is_dir():
        fold = load(saved)
        member = fold.members[0]
        inputs = _transform(member.preprocessors, prepared.frame.iloc[val_rows], prepared.table)
        raw = forward_in_chunks(member.network, inputs).numpy()
        logs = {p.name: p.read_bytes() for p in saved.iterdir() if p.name in FOLD_LOGS}
        return Trained(member, fold.metrics["history"], raw, fold.metrics.get("info", {}), logs)
    trained = _train(
        prepared,
        train_rows,
        val_rows,
        directory=directory,
        resume=resume,
        progress=progress,
        callbacks=callbacks,
    )
    if saved is not None:
        fold = _model(prepared, [trained.member], trained.artifacts)
        fold.metrics = {"history": trained.history, "info": trained.info}
        fold.save(saved, overwrite=True)
    return trained


def _train(
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
    """Fit preprocessors on ``train_rows``, build and train one network, calibrate it."""
    cfg, schema, table = prepared.cfg, prepared.schema, prepared.table
    train_frame = prepared.frame.iloc[train_rows]
    options = {"min_category_count": cfg.min_category_count, "text_max_length": cfg.text_max_length}
    preprocessors = {
        f.name: REGISTRY[f.kind].new_preprocessor(options).fit(train_frame[f.name], table)
        for f in schema.inputs
    }
    train_inputs = _transform(preprocessors, train_frame, table)
    train_target = torch.from_numpy(prepared.encoded[train_rows])
    validation = None
    if val_rows is not None:
        val_inputs = _transform(preprocessors, prepared.frame.iloc[val_rows], table)
        validation = (val_inputs, torch.from_numpy(prepared.encoded[val_rows]))

    seed_everything(cfg.seed)
    architecture = {
        "task": schema.task,
        "num_classes": len(prepared.target_encoder.classes),
        "hidden_dims": list(cfg.hidden_dims),
        "dropout": cfg.dropout,
    }
    member = build_member(preprocessors, architecture)
    network = member.network
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
            info["calibration"] = _calibrate(member, raw, prepared.encoded[val_rows])
    return Trained(member, history.to_dict(), raw, info, artifacts)


def _calibrate(member: Member, raw: np.ndarray, labels: np.ndarray) -> dict:
    """Temperature scaling on the validation logits; ECE before and after.

    With no misclassified validation row the likelihood keeps rising as the
    temperature falls, so the fit would sharpen without limit on no evidence:
    then the temperature may soften (> 1) but not sharpen.
    """
    head = member.network.head
    temperature, note = _temperature(raw, labels, head.task)
    member.temperature = temperature
    return {
        "method": "temperature scaling",
        "temperature": temperature,
        "ece_before": expected_calibration_error(head.probabilities(raw), labels),
        "ece_after": expected_calibration_error(head.probabilities(raw / temperature), labels),
        "fitted_on": f"validation ({len(labels)} rows)",
        **({"note": note} if note else {}),
    }


def _temperature(raw: np.ndarray, labels: np.ndarray, task: str) -> tuple[float, str]:
    temperature = fit_temperature(torch.from_numpy(raw), torch.from_numpy(labels), task=task)
    if (point_predictions(task, raw) == labels).all() and temperature < 1.0:
        return 1.0, "every held-out row is right: no evidence to sharpen on"
    return temperature, ""


def _calibrated(raw: np.ndarray, member: Member) -> np.ndarray:
    if member.network.head.task == "regression":
        return raw
    return raw / member.temperature


def _transform(preprocessors, frame: pd.DataFrame, table: Table) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        # Rare training values and validation-only values are expected to be unknown here.
        warnings.simplefilter("ignore", DataWarning)
        return transform_frame(preprocessors, frame, table)


def _model(prepared: Prepared, members: list[Member], artifacts: dict) -> Model:
    return Model(
        schema=prepared.schema,
        members=members,
        target_encoder=prepared.target_encoder,
        config=prepared.cfg,
        artifacts=artifacts,
    )


def _oof_table(prepared: Prepared, model: Model, outputs: np.ndarray, folds: list[int]) -> bytes:
    """One line per labelled row: its 1-based row number, fold, target, prediction (+ proba_*)."""
    frame = pd.DataFrame(
        {
            "row": prepared.frame.index.to_numpy() + 1,
            "fold": folds,
            "target": prepared.frame[prepared.cfg.target].to_numpy(),
            "prediction": model._decode(outputs),
        }
    )
    if prepared.schema.task != "regression":
        probabilities = model.probabilities_of(outputs)
        for index, label in enumerate(model.classes):
            frame[f"proba_{label}"] = probabilities[:, index]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _fold_logs(results: list[Trained]) -> dict[str, bytes]:
    """One metrics.jsonl with a ``fold`` field; each fold's sweep as lr_range.fold-K.*."""
    lines = [
        json.dumps({"fold": number, **record}) + "\n"
        for number, trained in enumerate(results, start=1)
        for record in trained.history["epochs"]
    ]
    logs = {"metrics.jsonl": "".join(lines).encode()}
    for number, trained in enumerate(results, start=1):
        for suffix in ("json", "png"):
            if f"lr_range.{suffix}" in trained.artifacts:
                logs[f"lr_range.fold-{number}.{suffix}"] = trained.artifacts[f"lr_range.{suffix}"]
    return logs


def _epoch_metric(task: str, target_encoder: TargetEncoder):
    """A cheap per-epoch validation figure for the progress line (torch only)."""
    if task == "binary":
        return lambda out, y: {"accuracy": float(((out > 0).long() == y).float().mean())}
    if task == "multiclass":
        return lambda out, y: {"accuracy": float((out.argmax(1) == y).float().mean())}
    scale = target_encoder.std
    return lambda out, y: {"rmse": float(torch.sqrt(torch.mean((out - y) ** 2))) * scale}

"""K-fold cross-validation for ``fit --folds K``: K networks on stratified folds, mean and
std of every metric, out-of-fold predictions, then a refit on all rows or the K-fold
ensemble. A finished fold is saved in the run directory, so a resumed run skips it.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from deepstrata.data.split import kfold_split
from deepstrata.errors import ConfigError
from deepstrata.evaluate.records import data_summary, prediction_records
from deepstrata.evaluate.report import PREDICTIONS, SUMMARY
from deepstrata.fitting import (
    Prepared,
    Trained,
    assemble,
    calibrate,
    calibrated,
    train_split,
    transform,
)
from deepstrata.model import Model, load


def cross_validated(prepared: Prepared, *, run, resume, progress, callbacks) -> Model:
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
        trained = train_fold(prepared, train_rows, val_rows, directory, resume, progress, callbacks)
        results.append(trained)
        fold_model = assemble(prepared, [trained.member], {})
        fold_metrics.append(
            fold_model.metrics_of(
                calibrated(trained.raw_outputs, trained.member), encoded[val_rows]
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
    oof_model = assemble(prepared, [results[0].member], {})
    artifacts = {"oof_predictions.csv": oof_table(prepared, oof_model, oof, [e[1] for e in raw])}

    if cfg.cv_model == "ensemble":
        members = [r.member for r in results]
        artifacts.update(fold_logs(results))
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
        trained = train_split(
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
            trained.info["calibration"] = calibrate(trained.member, oof_raw, encoded)
            trained.info["calibration"]["fitted_on"] = f"out-of-fold logits ({len(encoded)} rows)"
        members = [trained.member]
        artifacts.update(trained.artifacts)
        info = {
            "training": f"refit on all rows for {epochs} epochs",
            "history": trained.history,
            **trained.info,
        }
    model = assemble(prepared, members, artifacts)
    model.metrics = {
        "validation": oof_model.metrics_of(oof, encoded),  # out-of-fold: every row held out once
        "cross_validation": summary,
        "rows": {"train": len(encoded), "validation": len(encoded)},
        **info,
    }
    model.artifacts[PREDICTIONS] = prediction_records(prepared, oof_model, np.arange(len(oof)), oof)
    model.artifacts[SUMMARY] = data_summary(prepared, {"folds": cfg.folds, "rows": len(encoded)})
    return model


FOLD_LOGS = ("metrics.jsonl", "lr_range.json", "lr_range.png")  # kept with a finished fold


def train_fold(prepared, train_rows, val_rows, directory, resume, progress, callbacks) -> Trained:
    """Train one fold, or on resume take the fold a killed run had finished."""
    saved = directory / "model" if directory else None
    if resume and saved is not None and saved.is_dir():
        fold = load(saved)
        member = fold.members[0]
        inputs = transform(member.preprocessors, prepared.frame.iloc[val_rows], prepared.table)
        raw = member.raw_outputs(inputs)
        logs = {p.name: p.read_bytes() for p in saved.iterdir() if p.name in FOLD_LOGS}
        return Trained(member, fold.metrics["history"], raw, fold.metrics.get("info", {}), logs)
    trained = train_split(
        prepared,
        train_rows,
        val_rows,
        directory=directory,
        resume=resume,
        progress=progress,
        callbacks=callbacks,
    )
    if saved is not None:
        fold = assemble(prepared, [trained.member], trained.artifacts)
        fold.metrics = {"history": trained.history, "info": trained.info}
        fold.save(saved, overwrite=True)
    return trained


def oof_table(prepared: Prepared, model: Model, outputs: np.ndarray, folds: list[int]) -> bytes:
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


def fold_logs(results: list[Trained]) -> dict[str, bytes]:
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

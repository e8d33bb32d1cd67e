"""K-fold cross-validation for ``fit --folds K``: K networks on stratified folds, mean and
std of every metric, out-of-fold predictions, then a refit on all rows or the K-fold
ensemble. A finished fold is saved in the run directory, so a resumed run skips it.
With ``--group``, each group is held out in one fold (:func:`deepstrata.data.split.kfold_split`).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from deepstrata.calibrate.temperature import calibrate
from deepstrata.data.split import kfold_split
from deepstrata.errors import ConfigError
from deepstrata.model.model import Model, load
from deepstrata.recipes.fairness import fairness_metrics, fairness_thresholds
from deepstrata.recipes.network import train_split
from deepstrata.recipes.prepare import (
    Prepared,
    Trained,
    assemble,
    calibrated,
    group_counts,
    transform,
)
from deepstrata.recipes.records import data_summary, prediction_records
from deepstrata.report.render import PREDICTIONS, SUMMARY


def check_folds(prepared: Prepared) -> None:
    """ConfigError when there are fewer labelled rows than folds."""
    folds, rows = prepared.cfg.folds, len(prepared.encoded)
    if folds > rows:
        raise ConfigError(
            f"{folds} folds need at least {folds} labelled rows, found {rows}", option="--folds"
        )


def say(progress, line: str) -> None:
    """A plain line on the progress stream (fold boundaries, the refit)."""
    if progress.enabled:
        print(line, file=progress.stream, flush=True)


def cross_validated(prepared: Prepared, *, run, resume, progress, callbacks) -> Model:
    """K models on K folds: mean ± std of every metric, out-of-fold predictions, then
    either a refit on all rows (for the mean best epoch) or the K-fold ensemble."""
    cfg, encoded, task = prepared.cfg, prepared.encoded, prepared.task
    check_folds(prepared)
    folds = kfold_split(
        encoded, folds=cfg.folds, stratify=task.stratify, seed=cfg.seed, groups=prepared.groups
    )
    results, oof_raw, oof, fold_of = _train_folds(prepared, folds, run, resume, progress, callbacks)
    fold_metrics = [
        task.metrics(encoded[rows], oof[rows], prepared.target_encoder) for _, rows in folds
    ]
    if cfg.cv_model == "ensemble":
        members, artifacts = [r.member for r in results], fold_logs(results)
        info = {"training": "K-fold ensemble: every fold's network, probabilities averaged"}
    else:
        members, artifacts, info = _refit(
            prepared, results, oof_raw, run, resume, progress, callbacks
        )
    info.update(over_folds(results, "adversarial"))
    decision = task.decide(oof, encoded, threshold=cfg.threshold)
    model = assemble(prepared, members, artifacts, decision=decision)
    model.fairness = fairness_thresholds(prepared, np.arange(len(oof)), oof)
    entry, figure = fairness_metrics(model.fairness)
    model.artifacts.update(figure)
    model.artifacts["oof_predictions.csv"] = oof_table(prepared, model, oof, fold_of)
    model.metrics = {
        "validation": model.metrics_of(oof, encoded),  # out-of-fold: every row held out once
        "cross_validation": _summary(cfg, fold_metrics, results),
        "rows": {"train": len(encoded), "validation": len(encoded)},
        **group_counts(prepared, [{"train": a, "validation": b} for a, b in folds]),
        **info,
        **({"decision": decision} if decision is not None else {}),
        **entry,
    }
    model.artifacts[PREDICTIONS] = prediction_records(prepared, model, np.arange(len(oof)), oof)
    model.artifacts[SUMMARY] = data_summary(prepared, {"folds": cfg.folds, "rows": len(encoded)})
    return model


def _train_folds(prepared, folds, run, resume, progress, callbacks):
    """Each fold's network, and every row's out-of-fold outputs (raw and calibrated) and
    fold number."""
    results, raw, out, fold_of = (
        [],
        [None] * len(prepared.encoded),
        [None] * len(prepared.encoded),
        [0] * len(prepared.encoded),
    )
    for number, (train_rows, val_rows) in enumerate(folds, start=1):
        say(
            progress,
            f"fold {number}/{prepared.cfg.folds}: {len(train_rows)} rows to train, "
            f"{len(val_rows)} to validate",
        )
        directory = run.path / f"fold-{number}" if run else None
        trained = train_fold(prepared, train_rows, val_rows, directory, resume, progress, callbacks)
        results.append(trained)
        scaled = calibrated(trained.raw_outputs, trained.member)
        for index, row in enumerate(val_rows):
            raw[row], out[row], fold_of[row] = trained.raw_outputs[index], scaled[index], number
    return results, np.stack(raw), np.stack(out), fold_of


def _summary(cfg, fold_metrics: list[dict], results: list[Trained]) -> dict:
    names = list(fold_metrics[0])
    return {
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


def over_folds(results: list[Trained], key: str) -> dict:
    """``{key: record}`` with every fold's ``info[key]`` averaged (numbers that differ
    take the folds' mean; the rest is the first fold's), or ``{}`` when a fold has none.
    fit --adversarial --folds K: each fold's network was measured beside its undefended
    twin on the fold's validation rows; the refit has no rows left to measure on."""
    records = [r.info.get(key) for r in results]
    if not records or any(record is None for record in records):
        return {}
    return {
        key: {
            **_mean(records),
            "measured_on": f"each fold's validation rows, mean of {len(records)}",
        }
    }


def _mean(records: list[dict]) -> dict:
    merged = {}
    for name, value in records[0].items():
        values = [record.get(name) for record in records]
        if all(isinstance(v, dict) for v in values):
            merged[name] = _mean(values)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            merged[name] = value if len(set(values)) == 1 else float(np.mean(values))
        else:
            merged[name] = value
    return merged


def _refit(prepared, results, oof_raw, run, resume, progress, callbacks):
    """One network on every row for the folds' mean best epoch, calibrated on the folds'
    out-of-fold logits (no held-out row remains)."""
    encoded = prepared.encoded
    epochs = max(1, round(float(np.mean([r.history["best_epoch"] for r in results]))))
    say(
        progress,
        f"refit on all {len(encoded)} rows for {epochs} epochs (the folds' mean best epoch)",
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
    if prepared.task.classifier and prepared.cfg.calibrate:
        trained.info["calibration"] = calibrate(trained.member, oof_raw, encoded)
        trained.info["calibration"]["fitted_on"] = f"out-of-fold logits ({len(encoded)} rows)"
    info = {
        "training": f"refit on all rows for {epochs} epochs",
        "history": trained.history,
        **trained.info,
    }
    return [trained.member], dict(trained.artifacts), info


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
            "prediction": model.prediction_cells(outputs, model.groups_of(prepared.frame)),
        }
    )
    if prepared.task.classifier:
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

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

import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from deepstrata.config import FitConfig
from deepstrata.crossfit import cross_fitted_ensemble
from deepstrata.crossval import cross_validated
from deepstrata.data.files import BadFile, bad_files_error
from deepstrata.data.folders import default_target
from deepstrata.data.schema import infer_schema
from deepstrata.data.sources import Table, read_table
from deepstrata.data.split import train_validation_split
from deepstrata.ensemble import classical_heads, classical_side, weigh
from deepstrata.errors import ConfigError, DataError, DataWarning
from deepstrata.evaluate.records import data_summary, prediction_records
from deepstrata.evaluate.report import PREDICTIONS, SUMMARY
from deepstrata.features import train_features
from deepstrata.fitting import Prepared, assemble, calibrated, train_split
from deepstrata.kinds import REGISTRY
from deepstrata.model import Data, Model, combine, load, versions
from deepstrata.preprocess.target import TargetEncoder
from deepstrata.pretrained.strategy import choose_strategy, pretrained_kinds
from deepstrata.seeding import preserved_random_state
from deepstrata.train.callbacks import Callback
from deepstrata.train.precision import resolve_device
from deepstrata.train.progress import Progress
from deepstrata.train.run import RunDirectory, fingerprint

__all__ = ["Model", "fit", "load", "versions"]


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
    if resume and run_dir is None:
        raise ConfigError("resuming needs the run directory", option="--resume")
    resolve_device(cfg.device)  # an absent device fails before any work
    table = read_table(data)
    cfg.target = cfg.target or default_target(table)  # a folder: its class sub-folders
    if cfg.target is None:
        raise DataError("no target column given", hint="pass target=NAME (--target NAME)")

    prepared = _prepare(table, cfg)
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
    reporter.note(f"strategy {cfg.strategy}: {prepared.strategy['reason']}")
    context = {"run": run, "resume": resume, "progress": reporter, "callbacks": list(callbacks)}

    # fit seeds the global generators (initialisation, dropout); the caller's are restored.
    try:
        with preserved_random_state():
            if cfg.folds and cfg.ensemble:
                model = cross_fitted_ensemble(prepared, **context)
            elif cfg.folds:
                model = cross_validated(prepared, **context)
            else:
                model = _single(prepared, **context)
    except BaseException:
        if run is not None:
            run.abandon()  # bad data found mid-way leaves nothing behind; a checkpoint stays
        raise
    if run is not None and not keep_checkpoints:
        run.finish()
    model.metrics["strategy"] = prepared.strategy
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
    if cfg.monitor != "loss" and schema.task == "regression":
        raise ConfigError(
            f"{cfg.monitor} is for classifiers; this task is regression", option="--monitor"
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
    frame, skipped = _check_files(table, frame, schema, cfg)
    if len(frame) < 2:
        raise table.error(f"need at least 2 labelled rows to train, found {len(frame)}")
    target_encoder = TargetEncoder(schema.task).fit(frame[cfg.target], table)
    encoded = target_encoder.encode(frame[cfg.target], table)
    requested = cfg.strategy
    used, reason = choose_strategy(schema, len(frame), requested, resolve_device(cfg.device).type)
    if cfg.ensemble and used == "features":
        raise ConfigError(
            f"--ensemble needs a network, and --strategy {requested} chose features ({reason}); "
            "pass --strategy scratch or finetune",
            option="--ensemble",
        )
    cfg.strategy = used  # the bundle and run.json record what was used
    pretrained = pretrained_kinds(schema) if used != "scratch" else {}
    strategy = {"used": used, "requested": requested, "reason": reason}
    return Prepared(
        cfg, table, frame, schema, target_encoder, encoded, skipped, strategy, pretrained
    )


def _check_files(
    table: Table, frame: pd.DataFrame, schema, cfg: FitConfig
) -> tuple[pd.DataFrame, list[BadFile]]:
    """Decode every file of every file column once, before any training (the decode cache
    keeps the arrays for the preprocessors). Bad files: one error listing them all, or
    with ``skip_bad_files`` their rows left out and returned."""
    options = cfg.to_dict()
    bad: list[BadFile] = []
    for feature in schema.inputs:
        kind = REGISTRY[feature.kind]
        if kind.files:
            found = kind.new_preprocessor(options).bad_files(frame[feature.name], table)
            if found and not cfg.skip_bad_files:
                raise bad_files_error(found, table, feature.name, f"{feature.kind} file")
            bad += [
                BadFile(b.position, b.path, f"column {feature.name!r}: {b.reason}") for b in found
            ]
    if not bad:
        return frame, []
    warnings.warn(
        f"{len(bad)} row(s) left out because a file could not be read (--skip-bad-files); "
        "the list is in skipped_files.csv",
        DataWarning,
        stacklevel=4,
    )
    return frame.drop(index=sorted({b.position for b in bad})), bad


FEW_VALIDATION_ROWS = 200  # below this, fit --ensemble suggests --folds (one row tips it)


def _ensemble(side: Prepared, trained, network_outputs, train_rows, val_rows, progress):
    """Train the classical side and weigh it against the network (see deepstrata.ensemble).
    Returns the members, their weights, the validation outputs and info to keep."""
    prepared = side
    progress.note("ensemble: the best classical model on the same rows")
    classical = train_features(
        side, train_rows, val_rows, progress=progress, heads=classical_heads(prepared.cfg.head)
    )
    classical_outputs = calibrated(classical.raw_outputs, classical.member)
    verdict = weigh(
        prepared.schema.task, network_outputs, classical_outputs, prepared.encoded[val_rows]
    )
    verdict["classical"] = classical.member.head.name
    verdict["classical_heads"] = classical.info["head"]["candidates"]
    progress.note(f"ensemble with {verdict['classical']}: {verdict['reason']}")
    if len(val_rows) < FEW_VALIDATION_ROWS:
        progress.note(
            f"ensemble: weighed on {len(val_rows)} validation rows; --folds 5 weighs it on "
            "every row's out-of-fold outputs (five networks; see deepstrata.crossfit)"
        )
    info = {**trained.info, "ensemble": verdict}
    if "calibration" in classical.info:
        info["ensemble"]["classical_calibration"] = classical.info["calibration"]
    if verdict["returned"] == "network":
        return [trained.member], None, network_outputs, info
    if verdict["returned"] == "classical":
        return [classical.member], None, classical_outputs, {**info, **classical.info}
    weight = verdict["weight_network"]
    mixed = combine(
        prepared.schema.task, [network_outputs, classical_outputs], [weight, 1 - weight]
    )
    return [trained.member, classical.member], [weight, round(1 - weight, 2)], mixed, info


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
    side = classical_side(prepared) if cfg.ensemble else None  # fails before any training
    trained = train_split(
        prepared,
        train_rows,
        val_rows,
        directory=run.path if run else None,
        resume=resume,
        progress=progress,
        callbacks=callbacks,
    )
    members, weights = [trained.member], None
    outputs = calibrated(trained.raw_outputs, trained.member)
    info = trained.info
    if side is not None:
        members, weights, outputs, info = _ensemble(
            side, trained, outputs, train_rows, val_rows, progress
        )
    model = assemble(prepared, members, trained.artifacts, weights=weights)
    split = {"train": len(train_rows), "validation": len(val_rows)}
    model.metrics = {
        "validation": model.metrics_of(outputs, prepared.encoded[val_rows]),
        "rows": split,
        **info,
        "history": trained.history,
    }
    model.artifacts[PREDICTIONS] = prediction_records(prepared, model, val_rows, outputs)
    model.artifacts[SUMMARY] = data_summary(prepared, split)
    return model

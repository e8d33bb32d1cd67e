"""``fit`` from end to end: read, prepare, pick the recipe, keep the run directory.

The recipes: one validation split (:mod:`~deepstrata.recipes.single`), K folds
(:mod:`~deepstrata.recipes.crossval`), or K folds cross-fitted with a classical model
(:mod:`~deepstrata.recipes.crossfit`, ``--ensemble --folds K``). Each trains its networks
through :func:`deepstrata.recipes.network.train_split`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from pathlib import Path

from deepstrata.config import FitConfig
from deepstrata.data.folders import default_target
from deepstrata.data.sources import read_table
from deepstrata.errors import ConfigError, DataError
from deepstrata.model.model import Data, Model
from deepstrata.model.reference import REFERENCE, reference_bytes
from deepstrata.recipes.crossfit import cross_fitted_ensemble
from deepstrata.recipes.crossval import cross_validated
from deepstrata.recipes.ensemble import auto_ensemble
from deepstrata.recipes.fairness import check_fairness, sensitive_summary
from deepstrata.recipes.prepare import Prepared, prepare
from deepstrata.recipes.single import single_split
from deepstrata.recipes.streamed import open_stream, sample_table, streamed_split
from deepstrata.seeding import preserved_random_state
from deepstrata.train import distributed as dist
from deepstrata.train.callbacks import Callback
from deepstrata.train.precision import resolve_device
from deepstrata.train.progress import Progress
from deepstrata.train.run import RunDirectory, fingerprint


def run_fit(
    data: Data,
    cfg: FitConfig,
    *,
    progress: bool | Progress = True,
    run_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    keep_checkpoints: bool = False,
    run_record: dict | None = None,
) -> Model:
    """Train on ``data`` as ``cfg`` says (see :func:`deepstrata.api.fit` for the arguments)."""
    if resume and run_dir is None:
        raise ConfigError("resuming needs the run directory", option="--resume")
    device = resolve_device(cfg.device)  # an absent device fails before any work
    run = RunDirectory(run_dir) if run_dir is not None else None
    # Under torchrun this is one rank of several: join the group (a no-op otherwise, or
    # when the CLI joined it). One fit per run directory: a second one is refused now, not
    # when it has trained; under torchrun rank 0 holds it (the others only read checkpoints).
    with (
        dist.process_group(device),
        run.locked() if run is not None and dist.is_main() else contextlib.nullcontext(),
    ):
        model, prepared = _trained(
            data,
            cfg,
            run=run,
            resume=resume,
            run_record=run_record,
            progress=progress,
            callbacks=callbacks,
        )
        if run is not None and not keep_checkpoints and dist.is_main():
            run.finish()
    model.metrics["strategy"] = prepared.strategy
    # What the training rows looked like, for `deepstrata drift` and serve's /drift.
    model.artifacts[REFERENCE] = reference_bytes(prepared, model)
    model.metrics.update(sensitive_summary(prepared))
    return model


def _trained(
    data: Data,
    cfg: FitConfig,
    *,
    run: RunDirectory | None,
    resume: bool,
    run_record: dict | None,
    progress: bool | Progress,
    callbacks: Sequence[Callback],
) -> tuple[Model, Prepared]:
    """Read, prepare and train (the run directory, if any, locked by the caller)."""
    # A Parquet folder (or file, with --stream) is streamed: prepare sees a bounded sample.
    stream = open_stream(data, cfg)
    table = sample_table(stream, cfg) if stream is not None else read_table(data)
    cfg.target = cfg.target or default_target(table)  # a folder: its class sub-folders
    if cfg.target is None:
        raise DataError("no target column given", hint="pass target=NAME (--target NAME)")

    prepared = prepare(table, cfg)
    check_fairness(prepared)
    why = None
    if cfg.ensemble is None and cfg.fairness and cfg.folds:
        cfg.ensemble, why = False, "group thresholds are chosen for a network's folds"
    if stream is not None and cfg.ensemble:
        raise ConfigError("a classical model needs every row in memory", option="--ensemble")
    if stream is not None and cfg.ensemble is None:
        cfg.ensemble, why = False, "streamed: a classical model needs every row in memory"
    if cfg.ensemble is None:  # auto: decided by the columns and the task, recorded as done
        cfg.ensemble, why = auto_ensemble(prepared)
    if run is not None and dist.is_main():
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
    reporter = (  # one progress display: rank 0's
        progress
        if isinstance(progress, Progress)
        else Progress(enabled=bool(progress) and dist.is_main())
    )
    reporter.note(f"strategy {cfg.strategy}: {prepared.strategy['reason']}")
    if why:
        reporter.note(f"ensemble {'on' if cfg.ensemble else 'off'} (auto): {why}")
    context = {"run": run, "resume": resume, "progress": reporter, "callbacks": list(callbacks)}
    recipe = (
        functools.partial(streamed_split, stream=stream)
        if stream is not None
        else cross_fitted_ensemble
        if cfg.folds and cfg.ensemble
        else cross_validated
        if cfg.folds
        else single_split
    )
    # fit seeds the global generators (initialisation, dropout); the caller's are restored.
    try:
        with preserved_random_state():
            return recipe(prepared, **context), prepared
    except BaseException:
        if run is not None and dist.is_main():
            run.abandon()  # bad data found mid-way leaves nothing behind; a checkpoint stays
        raise

"""A search from end to end: check everything, create the study, run the workers,
summarise, write the outputs and refit the best configuration into a bundle.

The search directory (``-o``) holds ``study.db`` (the default storage), ``search.json``
(what was searched and found), ``search.html``, ``best.yaml`` (a file ``fit --config``
takes) and ``bundle/`` (the refit). Workers are processes running
:func:`run_worker` against the same study; each reads the search's description from the
study itself, so ``deepstrata search --worker --storage URL --study NAME`` on another
machine joins with nothing else.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from deepstrata.errors import ConfigError, DataError, DeepstrataError
from deepstrata.search import study as studies
from deepstrata.search.objective import Objective, check_objectives, direction
from deepstrata.search.objective import sample_row as first_row
from deepstrata.search.pruning import make_pruner
from deepstrata.search.ranks import STORAGE_ENV, retry_failed_ranks
from deepstrata.search.samplers import make_sampler, pick_auto
from deepstrata.search.space import Context, SearchSpace

__all__ = ["Search", "prepare_search", "run_worker", "spawn_workers"]

DESCRIPTION = "deepstrata"  # the study's user attribute that describes the search


@dataclass
class Search:
    """What a search is: checked, before any trial. ``description`` goes into the study."""

    data: str
    settings: dict
    space: SearchSpace
    context: Context
    objectives: list[str]
    sampler: str
    sampler_reason: str
    pruner: str
    trials: int
    seed: int = 0
    directions: list[str] = field(default_factory=list)

    def description(self) -> dict:
        return {
            "data": self.data,
            "settings": self.settings,
            "space": self.space.to_dict(),
            "kinds": sorted(self.context.kinds),
            "classifier": self.context.classifier,
            "objectives": self.objectives,
            "sampler": self.sampler,
            "sampler_reason": self.sampler_reason,
            "pruner": self.pruner,
            "trials": self.trials,
            "seed": self.seed,
        }

    @classmethod
    def from_description(cls, data: dict) -> Search:
        return cls(
            data=data["data"],
            settings=dict(data["settings"]),
            space=SearchSpace.from_dict(data["space"]),
            context=Context(frozenset(data["kinds"]), bool(data["classifier"])),
            objectives=list(data["objectives"]),
            sampler=data["sampler"],
            sampler_reason=data.get("sampler_reason", ""),
            pruner=data["pruner"],
            trials=int(data["trials"]),
            seed=int(data.get("seed", 0)),
            directions=[direction(o) for o in data["objectives"]],
        )


def prepare_search(
    data,
    settings: dict,
    *,
    search_space: dict | None = None,
    trials: int = 30,
    sampler: str = "auto",
    objectives: str | list = "val_loss",
    pruner: str = "hyperband",
    source: str = "search_space",
) -> Search:
    """Check every argument and the data (schema, target, options) before any trial:
    ConfigError/DataError naming the flag, key, file or column."""
    from deepstrata.config import FitConfig
    from deepstrata.data.folders import default_target
    from deepstrata.data.sources import read_table
    from deepstrata.recipes.prepare import schema_for
    from deepstrata.search.pruning import PRUNERS
    from deepstrata.tasks import get

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"must be >= 1, got {trials}", option="--trials")
    names = check_objectives(objectives)
    if pruner not in PRUNERS:
        make_pruner(pruner, 1)  # the named error
    space = SearchSpace.default().narrowed(search_space, source=source)
    settings = {str(k).replace("-", "_"): v for k, v in settings.items()}
    cfg = FitConfig.from_dict(settings, source="search")
    table = read_table(data)
    cfg.target = cfg.target or default_target(table)
    if cfg.target is None:
        raise DataError("no target column given", hint="pass target=NAME (--target NAME)")
    settings["target"] = cfg.target
    schema = schema_for(table, cfg)
    task = get(schema.task)
    names = check_objectives(names, tuple(task_metrics(task)))
    context = Context(frozenset(f.kind for f in schema.inputs), bool(task.classifier))
    settings.setdefault("ensemble", False)  # trials compare networks; the refit decides
    chosen = sampler
    reason = "named by --sampler"
    if sampler == "auto":
        chosen, reason = pick_auto(len(names), trials)
    make_sampler(chosen, objectives=len(names))  # an unknown name fails here
    return Search(
        data=str(Path(data).resolve()) if not hasattr(data, "columns") else data,
        settings=settings,
        space=space,
        context=context,
        objectives=names,
        sampler=chosen,
        sampler_reason=reason,
        pruner=pruner,
        trials=trials,
        seed=int(cfg.seed),
        directions=[direction(n) for n in names],
    )


def task_metrics(task) -> list[str]:
    """The validation metrics a fit of ``task`` reports."""
    return list(task.metric_names)


def run_worker(
    storage,
    name: str,
    *,
    deadline: float | None = None,
    index: int = 0,
    say=None,
    sample_row=None,
    leader: bool = False,
    objective=None,
    processes: int = 1,
    url: str | None = None,
) -> int:
    """Run trials of the study ``name`` until its queue is empty or ``deadline`` (a
    ``time.time()``) passes; returns how many this worker ran. The ``leader`` (the
    process that writes the outputs) then waits for the other workers' trials, and
    reclaims those whose worker died. ``objective``: another trial function than the
    fit (tests). ``processes`` > 1: each trial's fit runs on that many data-parallel ranks
    (:mod:`deepstrata.search.ranks`), which reach the study at ``url``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = studies.load_study(storage, name)
    search = Search.from_description(study.user_attrs[DESCRIPTION])
    study.sampler = make_sampler(
        search.sampler, seed=search.seed + index, objectives=len(search.objectives),
        trials=search.trials,
    )  # fmt: skip
    max_epochs = int(search.settings.get("max_epochs") or 200)
    study.pruner = make_pruner(search.pruner, max_epochs)
    if sample_row is None and "latency_ms" in search.objectives:
        sample_row = first_row(search.data, search.settings.get("target"))
    objective = objective or Objective(
        search.data, search.settings, search.space, search.context, search.objectives,
        sample_row=sample_row, processes=processes, url=url,
        pruner=(search.pruner, max_epochs),
    )  # fmt: skip
    ran = 0
    while deadline is None or time.time() < deadline:
        studies.reclaim(study)
        if studies.waiting(study) == 0:
            if leader and studies.running(study):
                time.sleep(1.0)
                continue
            break
        numbers: list[int] = []
        study.optimize(
            _guarded(objective, numbers),
            n_trials=1,
            catch=(DeepstrataError, _Surplus),
            callbacks=[retry_failed_ranks],
            gc_after_trial=True,
        )
        ran += 1
        if say is not None and numbers:
            say(_line(study, numbers[0]))
    return ran


class _Surplus(Exception):
    """A trial asked for once the queue had run dry (another worker took the last)."""


def _guarded(objective, numbers: list):
    def run(trial):
        numbers.append(trial.number)
        if not trial.user_attrs.get(studies.QUEUED):
            trial.set_user_attr(studies.SURPLUS, True)
            raise _Surplus("the budget of trials was handed out")
        _beat(trial)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        return objective(trial)

    return run


def _beat(trial) -> None:
    """Record the trial's first heartbeat before its work starts. Optuna's heartbeat thread
    records it asynchronously: a worker killed before that left a RUNNING trial without any
    heartbeat, which no reclaim ever finds stale, and the leader waited for it forever."""
    storage = trial.study._storage  # Optuna's storage of the study (no public accessor)
    if getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
        storage.record_heartbeat(trial._trial_id)


def _line(study, number: int) -> str:
    tally = studies.counts(study)
    trial = study.get_trials(deepcopy=False)[number]
    value = trial.values[0] if trial.values else None
    shown = f"{value:.4f}" if value is not None else trial.state.name.lower()
    return (
        f"trial {trial.number}: {shown} ({tally['complete']} complete, {tally['pruned']} pruned, "
        f"{tally['fail']} failed, {tally['waiting']} to go)"
    )


def spawn_workers(url: str, name: str, count: int, *, deadline: float | None, quiet: bool,
                  processes: int = 1):  # fmt: skip
    """``count`` worker processes on this machine (the URL passed in the environment,
    so that a password never shows in the process list), each fitting its trials on
    ``processes`` ranks."""
    command = [sys.executable, "-m", "deepstrata", "search", "--worker", "--study", name]
    if processes > 1:  # the cores were checked for all workers' ranks together
        command += ["--trial-nproc", str(processes), "--oversubscribe"]
    if deadline is not None:
        command += ["--time-limit", f"{max(deadline - time.time(), 1):.0f}"]
    if quiet:
        command.append("--quiet")
    processes = []
    for index in range(1, count + 1):
        env = {**os.environ, STORAGE_ENV: url, "DEEPSTRATA_SEARCH_WORKER": str(index)}
        env.setdefault("OMP_NUM_THREADS", "1")
        processes.append(subprocess.Popen(command, env=env))
    return processes


def check_workers(workers: int) -> None:
    cores = os.cpu_count() or 1
    if workers < 1 or workers > cores:
        raise ConfigError(
            f"must be in [1, {cores}] (this machine's cores), got {workers}", option="--workers"
        )

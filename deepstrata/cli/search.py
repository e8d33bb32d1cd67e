"""``deepstrata search``: the command over :mod:`deepstrata.search`.

A few fit options are flags here too (made from their specs, as ``compare``'s are); any
other goes in ``--config``, a YAML file of fit options with a ``search_space:`` entry
that narrows or widens the space. Heavy imports stay inside the function.
"""

from __future__ import annotations

import inspect
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli.common import ColumnOpt, IgnoreOpt, QuietOpt
from deepstrata.cli.flags import given, option_parameters
from deepstrata.config import OPTIONS

FIT_OPTIONS = (
    "task",
    "max_epochs",
    "patience",
    "validation_fraction",
    "strategy",
    "device",
    "seed",
)

TrialNprocOpt = Annotated[
    int,
    typer.Option(
        help="Fit each trial data-parallel on N processes (torchrun, as fit --nproc); "
        "--workers x N processes in all."
    ),
]
OversubscribeOpt = Annotated[
    bool, typer.Option(help="Allow --workers x --trial-nproc above this machine's cores.")
]
RunTrialOpt = Annotated[  # torchrun starts it once per rank: deepstrata/search/ranks.py
    Path | None, typer.Option(hidden=True, help="Internal: one rank of a trial's fit.")
]


def search(
    data: Annotated[
        Path | None,
        typer.Argument(help="The data, as fit takes it (omit with --worker or --resume)."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    trials: Annotated[int, typer.Option(help="Trials in all (over every worker).")] = 30,
    time_limit: Annotated[
        str | None, typer.Option(help="Stop starting trials after this long: 90s, 30m, 2h.")
    ] = None,
    sampler: Annotated[
        str, typer.Option(help="auto | tpe | gp | cmaes | nsga2 | evolution | rl | random.")
    ] = "auto",
    objectives: Annotated[
        str,
        typer.Option(
            help="Comma-separated, the first pruned on: val_loss, val_METRIC, latency_ms, params, train_seconds."
        ),
    ] = "val_loss",
    pruner: Annotated[str, typer.Option(help="hyperband | halving | median | none.")] = "hyperband",
    pick: Annotated[
        str | None, typer.Option(help="From the Pareto front: best | 'fastest-within 0.01'.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///FILE, journal, or postgresql://USER:PASSWORD@HOST/DB [study.db in --out]."
        ),
    ] = None,
    study: Annotated[str | None, typer.Option(help="The study's name [the data's name].")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine.")] = 1,
    worker: Annotated[
        bool, typer.Option("--worker", help="Join the study --study in --storage.")
    ] = False,
    trial_nproc: TrialNprocOpt = 1,
    oversubscribe: OversubscribeOpt = False,
    run_trial: RunTrialOpt = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the search in this directory.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML: fit options and search_space:.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Search directory [runs/<data name>.search].")
    ] = None,
    refit: Annotated[
        bool, typer.Option(help="Fit the picked configuration into out/bundle.")
    ] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing search directory.")] = False,
    column: ColumnOpt = None,
    ignore: IgnoreOpt = None,
    quiet: QuietOpt = False,
    **fit_options,
) -> None:
    """Search hyperparameters and architectures; write search.json, search.html, best.yaml, bundle/."""
    from deepstrata.search.result import parse_pick
    from deepstrata.search.run import check_workers

    if run_trial is not None:  # started by torchrun, once per rank (search/ranks.py)
        from deepstrata.search.objective import run_ticket

        return run_ticket(run_trial)
    deadline = time.time() + parse_duration(time_limit) if time_limit else None
    rule = parse_pick(pick)
    say = (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr))
    if worker:
        return _join(storage, study, deadline, say, trial_nproc, oversubscribe)
    check_workers(workers)
    check_processes(workers, trial_nproc, oversubscribe, storage)
    processes = (workers, trial_nproc)  # search workers, and each one's ranks per trial
    if resume is not None:
        return _resume(resume, storage, deadline, processes, rule, refit, quiet, say)
    if data is None:
        raise typer.BadParameter("the data to search on (or --worker, or --resume DIR)")
    flags = given({**fit_options, "column": column or None, "ignore": ignore or None}, OPTIONS)
    _start(data, target, flags, config, trials, sampler, objectives, pruner, storage, study,
           processes, out, overwrite, deadline, rule, refit, quiet, say)  # fmt: skip


def check_processes(workers: int, trial_nproc: int, oversubscribe: bool, storage) -> None:
    """Refuse, before any trial, trials on ranks that cannot run here: fewer than one rank,
    more processes in all than cores (fit --nproc's own check, naming --trial-nproc),
    a storage the ranks and workers cannot share."""
    from deepstrata.cli import launch as launcher
    from deepstrata.errors import ConfigError
    from deepstrata.search.ranks import shared

    if trial_nproc < 1:
        raise ConfigError(f"expected at least 1 process, got {trial_nproc}", option="--trial-nproc")
    if trial_nproc > 1:
        launch = {"nproc": workers * trial_nproc, "max_restarts": 0, "backend": None,
                  "oversubscribe": oversubscribe}  # fmt: skip
        launcher.check(launch, option="--trial-nproc")
    if storage is not None and (trial_nproc > 1 or workers > 1):
        shared(str(storage))


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"2h"`` or seconds -> seconds; ConfigError naming --time-limit."""
    from deepstrata.errors import ConfigError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(
            f"expected a duration such as 90s, 30m or 2h, got {text!r}", option="--time-limit"
        )
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _start(data, target, flags, config, trials, sampler, objectives, pruner, storage, name,
           processes, out, overwrite, deadline, rule, refit, quiet, say) -> None:  # fmt: skip
    from deepstrata.config import FitConfig, load_config_file
    from deepstrata.errors import ConfigError
    from deepstrata.search import study as studies
    from deepstrata.search.run import DESCRIPTION, prepare_search

    settings = load_config_file(config) if config else {}
    space = settings.pop("search_space", None)
    if settings:
        FitConfig.from_dict(settings, source=str(config))  # unknown keys, named as written
    settings = {str(k).replace("-", "_"): v for k, v in settings.items()}
    settings.update(flags)
    if target is not None:
        settings["target"] = target
    given_names = sorted(settings)
    source = f"{config}: search_space" if config else "search_space"
    search = prepare_search(data, settings, search_space=space, trials=trials, sampler=sampler,
                            objectives=objectives, pruner=pruner, source=source)  # fmt: skip
    directory = out or Path("runs") / f"{Path(data).stem}.search"
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        raise ConfigError(
            f"{directory} already exists; pass --overwrite or another --out", option="--out"
        )
    url = studies.storage_url(storage, directory)
    if overwrite and storage is None and directory.exists():
        import shutil

        shutil.rmtree(directory)
    backend = studies.open_storage(url)
    name = name or Path(data).stem
    first = search.space.defaults(search.context)
    study = studies.create_study(backend, name, search.directions,
                                 {DESCRIPTION: search.description()}, trials, first)  # fmt: skip
    say(f"search: study {name!r} in {studies.mask(url)}; sampler {search.sampler} "
        f"({search.sampler_reason}); {trials} trials; {processes[0]} worker(s) x "
        f"{processes[1]} process(es) per trial")  # fmt: skip
    record = {"storage": studies.mask(url), "study": name, "given": given_names,
              "data": search.data, "workers": processes[0],
              "trial_processes": processes[1]}  # fmt: skip
    _write_started(directory, record, url)
    _work_and_finish(backend, url, study, search, directory, record, processes, deadline, rule,
                     refit, quiet, say)  # fmt: skip


def _write_started(directory: Path, record: dict, url: str) -> None:
    """``search.json`` at the start: what --resume needs (the URL only without a password)."""
    import json

    from deepstrata.search import study as studies
    from deepstrata.search.outputs import RECORD, write_atomically

    directory.mkdir(parents=True, exist_ok=True)
    if studies.mask(url) == url:  # a password stays out of the file: --resume asks for it
        record["url"] = url
    stored = {**record, "status": "running"}
    write_atomically(directory / RECORD, json.dumps({"run": stored}, indent=1))


def _work_and_finish(backend, url, study, search, directory, record, processes, deadline, rule,
                     refit, quiet, say) -> None:  # fmt: skip
    from deepstrata.search import outputs
    from deepstrata.search.run import run_worker, spawn_workers

    workers, ranks = processes  # search workers, and each one's ranks per trial
    spawned = spawn_workers(url, study.study_name, workers - 1, deadline=deadline, quiet=quiet,
                            processes=ranks)  # fmt: skip
    try:
        ran = run_worker(backend, study.study_name, deadline=deadline, say=say, leader=True,
                         processes=ranks, url=url)  # fmt: skip
    finally:
        for process in spawned:
            process.wait()
    say(f"this process ran {ran} trial(s)")
    summary = outputs.write_outputs(
        directory, study, search, rule, record={**record, "status": "finished"}
    )
    best = summary.get("best")
    if best is None:
        print(f"no trial completed; search.json and search.html written to {directory}")
        return
    print(f"best trial {best['number']}: " + ", ".join(
        f"{o} {v:.4f}" for o, v in zip(search.objectives, best["values"])))  # fmt: skip
    baseline = summary.get("baseline")
    if baseline:
        print(
            f"default configuration (trial {baseline['number']}): {search.objectives[0]} {baseline['values'][0]:.4f}"
        )
    pruning = summary["pruning"]
    print(
        f"{pruning['pruned']} trial(s) pruned, saving about {pruning['seconds_saved']:.0f} s of training"
    )
    print(f"search.json, search.html and {outputs.BEST} written to {directory}")
    if refit:
        path, _ = outputs.refit(directory, summary, search.data, progress=not quiet)
        print(f"bundle written to {path}")


def _join(url, name, deadline, say, processes: int, oversubscribe: bool) -> None:
    import os

    from deepstrata.errors import ConfigError
    from deepstrata.search import study as studies
    from deepstrata.search.run import STORAGE_ENV, run_worker

    url = url or os.environ.get(STORAGE_ENV)
    check_processes(1, processes, oversubscribe, url)
    if url is None or name is None:
        raise ConfigError("a worker needs the study's --storage and --study", option="--worker")
    url = studies.storage_url(url, Path("."))
    backend = studies.open_storage(url)
    index = int(os.environ.get("DEEPSTRATA_SEARCH_WORKER", os.getpid() % 1000 + 100))
    ran = run_worker(backend, name, deadline=deadline, say=say, index=index,
                     processes=processes, url=url)  # fmt: skip
    say(f"worker ran {ran} trial(s)")


def _resume(directory, storage, deadline, processes, rule, refit, quiet, say) -> None:
    import json

    from deepstrata.errors import ConfigError
    from deepstrata.search import study as studies
    from deepstrata.search.outputs import RECORD
    from deepstrata.search.run import DESCRIPTION, Search

    path = Path(directory) / RECORD
    if not path.is_file():
        raise ConfigError(
            f"{directory} holds no {RECORD}: not a search directory", option="--resume"
        )
    record = json.loads(path.read_text(encoding="utf-8"))["run"]
    url = storage or record.get("url")
    if url is None:
        raise ConfigError(
            f"the study's storage has a password ({record.get('storage')}); give it with --storage",
            option="--storage",
        )
    backend = studies.open_storage(studies.storage_url(url, Path(directory)))
    study = studies.load_study(backend, record["study"])
    search = Search.from_description(study.user_attrs[DESCRIPTION])
    tally = studies.counts(study)
    say(f"resuming study {record['study']!r}: {tally['complete']} complete, {tally['pruned']} pruned, "
        f"{tally['waiting']} queued, {tally['running']} running")  # fmt: skip
    _work_and_finish(backend, url, study, search, Path(directory), record, processes, deadline,
                     rule, refit, quiet, say)  # fmt: skip


_own = [
    p
    for p in inspect.signature(search, eval_str=True).parameters.values()
    if p.kind is not inspect.Parameter.VAR_KEYWORD
]
search.__signature__ = inspect.Signature(
    [
        *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.name != "data" else p for p in _own),
        *option_parameters(OPTIONS[name] for name in FIT_OPTIONS),
    ]
)

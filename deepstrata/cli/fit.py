"""``deepstrata fit``: its flags are the configuration's options (:mod:`deepstrata.config`).

One flag per option, made from the option's spec (name, help, default); the command
adds only what is about files and runs: ``--out``, ``--config``, ``--column``,
``--ignore``, ``--run-dir``, ``--resume``, ``--overwrite``, ``--quiet``, and the
processes (:mod:`~deepstrata.cli.launch`: ``--nproc``, ``--max-restarts``, ...).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.cli import launch as launcher
from deepstrata.cli.common import ColumnOpt, IgnoreOpt, QuietOpt, print_metrics
from deepstrata.cli.flags import given, option_parameters
from deepstrata.config import OPTIONS

DataOpt = Annotated[
    Path | None,
    typer.Argument(
        help="A CSV, TSV, Parquet or JSONL file, or a folder of class sub-folders "
        "(omit with --resume)."
    ),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Bundle directory [runs/<data name>].")
]
ConfigOpt = Annotated[Path | None, typer.Option(help="YAML file whose keys are these flags.")]
RunDirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Checkpoints and logs [<out>.run]. The default one is removed once the "
        "bundle is written (kept with --tensorboard); a named one keeps its logs."
    ),
]
ResumeOpt = Annotated[
    Path | None,
    typer.Option(help="Continue the run in this run directory exactly where it stopped."),
]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace an existing bundle and run directory.")]


def fit(ctx: typer.Context, data: Path | None = None, **values) -> None:
    """Train a network on DATA and write a bundle (checkpoints and logs go to the run directory)."""
    files = {name: values.pop(name) for name in _FILE_FLAGS}
    launch = {name: values.pop(name) for name in launcher.LAUNCH_FLAGS}
    flags = given(values, OPTIONS)
    flags.update(given({"column": files["column"] or None, "ignore": files["ignore"] or None}))
    if files["resume"] is None and data is None:
        ctx.fail("Missing argument 'DATA': the data to train on (or --resume RUN_DIR)")
    from deepstrata.train import distributed as dist

    if launch["nproc"] > 1 and not dist.launched():  # this process only starts the ranks
        launcher.check(launch)
        run = _resumed(files, flags, None) if files["resume"] else _fresh(data, files, flags, None)
        launcher.run_workers(launch, _argv(), run["run_path"])
        return
    if launch["backend"]:
        os.environ[dist.BACKEND_ENV] = launch["backend"]
    if dist.restart_count() and files["resume"] is None:
        files, flags = _restarted(data, files, flags)
    # The bundle path and the run directory are this process's until it ends: a second
    # fit to either is refused at once, not when it has trained to the end. Under
    # torchrun, rank 0 holds them and writes; the other ranks only train.
    main = dist.is_main()
    with contextlib.ExitStack() as held:
        if files["resume"] is not None:
            run = _resumed(files, flags, held if main else None)
        else:
            run = _fresh(data, files, flags, held if main else None)
        with dist.process_group(run["config"].device):
            _train_and_save(data, run, files, main)


def _argv() -> list[str]:
    from deepstrata.cli import ARGV

    return ARGV or sys.argv[1:]


def _restarted(data: Path | None, files: dict, flags: dict) -> tuple[dict, dict]:
    """After torchrun's elastic agent restarted the ranks, the same command line resumes
    the run it began, from its last checkpoint (when it got as far as one)."""
    from deepstrata.train.run import RunDirectory

    run_path = _paths(data, files)[1]
    if not RunDirectory(run_path).checkpoints():
        return files, flags  # failed before its first checkpoint: starts over
    return {**files, "resume": run_path, "config": None, "out": None, "run_dir": None}, {}


def _train_and_save(data: Path | None, run: dict, files: dict, main: bool = True) -> None:
    from deepstrata import api
    from deepstrata.train.run import RunDirectory

    quiet = files["quiet"] or not main
    if run["config"].time is not None:  # a forecaster: backtests, not a validation split
        from deepstrata.forecast.cli import fit_and_save

        fit_and_save(data, run, quiet=quiet)
        return
    if not quiet:
        print(
            f"run directory {run['run_path']} (resume with: deepstrata fit --resume "
            f"{run['run_path']})",
            file=sys.stderr,
        )
    model = api.fit(
        data or Path(run["data_path"]),
        config=run["config"],
        progress=not quiet,
        run_dir=run["run_path"],
        resume=files["resume"] is not None,
        keep_checkpoints=True,
        run_record={
            "out": str(run["destination"].resolve()),
            "data_path": str(Path(data or run["data_path"]).resolve()),
            "keep": run["keep"],
        },
    )
    if not main:  # rank 0 writes the bundle
        return
    path = model.save(run["destination"], overwrite=run["overwrite"])
    RunDirectory(run["run_path"]).finish(keep=run["keep"])
    print_fit_summary(model)
    print(f"bundle written to {path}")
    if run["keep"]:
        print(f"logs kept in {run['run_path']}")


_FILE_FLAGS = ("out", "config", "column", "ignore", "run_dir", "resume", "overwrite", "quiet")
fit.__signature__ = inspect.Signature(
    [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter(
            "data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=DataOpt
        ),
        *(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name, kind, default in (
                ("out", OutOpt, None),
                ("config", ConfigOpt, None),
                ("column", ColumnOpt, None),
                ("ignore", IgnoreOpt, None),
            )
        ),
        *option_parameters(o for o in OPTIONS.values() if o.cli),
        *(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name, kind, default in (
                ("run_dir", RunDirOpt, None),
                ("resume", ResumeOpt, None),
                ("overwrite", OverwriteOpt, False),
                ("quiet", QuietOpt, False),
            )
        ),
        *(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name, (kind, default) in launcher.LAUNCH_FLAGS.items()
        ),
    ]
)


def _hold(held, destination: Path, run_path: Path, run_flag: str) -> None:
    """Lock the bundle path and the run directory for this process (ConfigError naming the
    process that has either), then sweep what killed writes left beside the bundle path.
    ``held`` None: only check (a launcher, a rank other than 0)."""
    if held is None:
        return
    from deepstrata.bundle.lock import locked
    from deepstrata.bundle.write import sweep_stale

    held.enter_context(locked(destination, option="--out"))
    held.enter_context(locked(run_path, option=run_flag))
    sweep_stale(destination)


def _resumed(files: dict, flags: dict, held: contextlib.ExitStack) -> dict:
    """The run a ``--resume RUN_DIR`` continues: its options, data and bundle path."""
    from deepstrata.config import FitConfig
    from deepstrata.errors import ConfigError
    from deepstrata.train.run import RunDirectory

    resume = files["resume"]
    if flags or any(files[name] is not None for name in ("config", "out", "run_dir")):
        named = ", ".join(f"--{k.replace('_', '-')}" for k in flags) or "--config/--out/--run-dir"
        raise ConfigError(
            f"a resumed run keeps the options it started with; leave out {named}",
            option="--resume",
        )
    recorded = RunDirectory(resume).read()
    if recorded.get("finished"):
        raise ConfigError(
            f"{resume} is a finished run; its bundle is at {recorded.get('out', '?')}",
            option="--resume",
        )
    if "out" not in recorded or "data_path" not in recorded:
        raise ConfigError(
            f"{resume} was started from Python (deepstrata.fit(..., run_dir=...)); "
            "resume it there with resume=True",
            option="--resume",
        )
    _hold(held, Path(recorded["out"]), Path(resume), "--resume")
    return {
        "config": FitConfig.from_dict(recorded["config"], source=str(resume)),
        "data_path": recorded["data_path"],
        "destination": Path(recorded["out"]),
        "run_path": resume,
        "keep": recorded.get("keep", True),
        "overwrite": True,  # the run owns its bundle path
    }


def _fresh(data: Path, files: dict, flags: dict, held: contextlib.ExitStack) -> dict:
    """A new run: the YAML file's options under the flags, the bundle and run paths checked."""
    import shutil

    from deepstrata.config import FitConfig, load_config_file
    from deepstrata.errors import ConfigError

    config = files["config"]
    settings = load_config_file(config) if config else {}
    if settings:  # unknown keys fail here, named as the file spells them
        FitConfig.from_dict(settings, source=str(config))
    settings = {str(k).replace("-", "_"): v for k, v in settings.items()}
    settings.update(flags)
    cfg = FitConfig.from_dict(settings, source=str(config or "flags"))
    destination, run_path = _paths(data, files)
    # The default run directory exists for resuming; a finished run leaves only the
    # bundle, unless the user named the directory or asked for TensorBoard logs there.
    keep = files["run_dir"] is not None or bool(cfg.tensorboard)
    here, bundle = run_path.resolve(), destination.resolve()
    if here == bundle or bundle in here.parents or here in bundle.parents:
        raise ConfigError(
            f"the run directory {run_path} and the bundle {destination} must not overlap",
            option="--run-dir",
        )
    _hold(held, destination, run_path, "--run-dir")
    if destination.exists() and not files["overwrite"]:
        raise ConfigError(
            f"{destination} already exists; pass --overwrite or choose another --out",
            option="--out",
        )
    if files["overwrite"] and held is not None and (run_path / "run.json").is_file():
        shutil.rmtree(run_path)  # only ever a run directory, never a folder of the user's
    return {
        "config": cfg,
        "data_path": str(data),
        "destination": destination,
        "run_path": run_path,
        "keep": keep,
        "overwrite": files["overwrite"],
    }


def _paths(data: Path, files: dict) -> tuple[Path, Path]:
    """The bundle path and the run directory of a new run."""
    destination = files["out"] or Path("runs") / Path(data).stem
    return destination, files["run_dir"] or destination.with_name(destination.name + ".run")


def print_fit_summary(model) -> None:
    """The validation (or out-of-fold) metrics and what the run chose."""
    metrics = model.metrics
    cv = metrics.get("cross_validation")
    if cv:
        from deepstrata.cli.display import print_table

        print_table(
            f"{cv['folds']}-fold cross-validation (mean ± std over folds)",
            ["metric", "mean", "std"],
            [[n, f"{cv['mean'][n]:.4f}", f"{cv['std'][n]:.4f}"] for n in cv["mean"]],
        )
        title = f"out-of-fold metrics ({metrics['rows']['validation']} rows)"
    else:
        title = f"validation metrics ({metrics['rows']['validation']} rows)"
    print_metrics(title, metrics["validation"])
    strategy = metrics.get("strategy", {}).get("used")
    if strategy and strategy != "scratch":
        head = metrics.get("head", {}).get("chosen")
        print(
            f"strategy {strategy}" + (f": pretrained features under a {head} head" if head else "")
        )
    if "ensemble" in metrics:
        print(f"ensemble with {metrics['ensemble']['classical']}: {metrics['ensemble']['reason']}")
    calibration = metrics.get("calibration")
    if calibration:
        print(
            f"calibration: temperature {calibration['temperature']:.3g}, expected calibration "
            f"error {calibration['ece_before']:.4f} -> {calibration['ece_after']:.4f}"
        )

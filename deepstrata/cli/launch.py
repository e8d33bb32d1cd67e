"""``fit --nproc N``: the same fit as N data-parallel processes under torchrun.

The command re-runs itself through ``python -m torch.distributed.run`` (PyTorch's elastic
agent: it starts the ranks, sets their environment, watches them and, with
``--max-restarts K``, restarts them all after a failure; the restarted fit resumes from
the last checkpoint). ``torchrun ... -m deepstrata fit ...`` written by hand reaches the
same code: each rank finds torchrun's variables (:mod:`deepstrata.train.distributed`).

These flags are about processes, not about the model, so they are not configuration
options: a run resumed on another number of processes is the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.train import torchrun
from deepstrata.train.torchrun import root_cause

NprocOpt = Annotated[
    int,
    typer.Option(
        help="Train data-parallel in N processes on this machine (torchrun; gloo on CPU, "
        "NCCL on CUDA). The global batch is --batch-size on any number of processes."
    ),
]
MaxRestartsOpt = Annotated[
    int,
    typer.Option(
        help="With --nproc: after a process fails, restart them all up to K times "
        "(torchrun's elastic agent); each restart resumes from the last checkpoint."
    ),
]
OversubscribeOpt = Annotated[
    bool, typer.Option(help="Allow --nproc above this machine's CPU cores.")
]
BackendOpt = Annotated[
    str | None,
    typer.Option(help="gloo or nccl [gloo on CPU, nccl with --device cuda]."),
]
LAUNCH_FLAGS = {  # name -> (annotation, default)
    "nproc": (NprocOpt, 1),
    "max_restarts": (MaxRestartsOpt, 0),
    "oversubscribe": (OversubscribeOpt, False),
    "backend": (BackendOpt, None),
}
_VALUED = ("--nproc", "--max-restarts", "--backend")
_SWITCHES = ("--oversubscribe", "--no-oversubscribe")


def cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def check(launch: dict, option: str = "--nproc") -> None:
    """Refuse, before anything starts, what cannot run here (ConfigError naming the flag;
    ``option``: the flag that asked for the processes, ``search`` names its own)."""
    from deepstrata.errors import ConfigError, DistributedError

    nproc, backend = launch["nproc"], launch["backend"]
    if nproc < 1:
        raise ConfigError(f"expected at least 1 process, got {nproc}", option=option)
    if launch["max_restarts"] < 0:
        raise ConfigError("expected 0 or more restarts", option="--max-restarts")
    if nproc > cores() and not launch["oversubscribe"]:
        raise ConfigError(
            f"{nproc} processes on {cores()} cores would slow each other down (they share the "
            "cores, and training ranks wait for the slowest at every all-reduce); pass "
            "--oversubscribe to run anyway",
            option=option,
        )
    if backend is not None and backend not in ("gloo", "nccl"):
        raise ConfigError(f"expected gloo or nccl, got {backend!r}", option="--backend")
    if backend == "nccl":
        import torch

        if not torch.cuda.is_available():
            raise DistributedError(
                "the NCCL backend needs CUDA, and torch sees no CUDA device here; "
                "use --backend gloo to train on CPUs"
            )


def worker_argv(argv: list[str]) -> list[str]:
    """The command line each rank runs: this one without the launcher's own flags."""
    result, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word in _VALUED:
            skip = True
        elif word in _SWITCHES or word.startswith(tuple(f"{flag}=" for flag in _VALUED)):
            continue
        else:
            result.append(word)
    return result


def run_workers(launch: dict, argv: list[str], run_path: Path) -> None:
    """Run the fit as ``launch['nproc']`` ranks under torchrun on this machine; a failure is
    a DistributedError naming the rank, how it ended, and the checkpoint left to resume."""
    from deepstrata.errors import DistributedError
    from deepstrata.train.run import RunDirectory

    command = torchrun.command(
        launch["nproc"], worker_argv(argv), max_restarts=launch["max_restarts"]
    )
    env = dict(os.environ)
    if launch["backend"]:
        env["DEEPSTRATA_BACKEND"] = launch["backend"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:  # shown as it comes; torchrun's failure summary is parsed
        sys.stderr.write(line)
        lines.append(line)
    if process.wait() == 0:
        return
    kept = RunDirectory(run_path).checkpoints() if Path(run_path).is_dir() else []
    then = (
        f"the last checkpoint is kept in {run_path}: resume with "
        f"deepstrata fit --resume {run_path} (on any number of processes)"
        if kept
        else "no checkpoint was written"
    )
    raise DistributedError(f"{root_cause(lines)}; {then}")

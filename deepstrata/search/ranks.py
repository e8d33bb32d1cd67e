"""A trial fitted data-parallel: ``search --trial-nproc N`` trains each trial on N ranks.

How the two compose. A search worker (:func:`deepstrata.search.run.run_worker`) stays the
trial's one owner: it asks the study for the trial, samples its decisions once (the
sampler's state lives in that process), and beats the trial's heartbeat. It then writes
the fit configuration into a *ticket* (a JSON file) and starts
``python -m torch.distributed.run --standalone --nproc-per-node N -m deepstrata search
--run-trial TICKET`` (a hidden entry of the command). Every rank trains the same
configuration through the data-parallel trainer (same seed, same global batch). Rank 0
opens the study itself (the storage URL comes in the environment, never in ``ps``),
reports the per-epoch validation loss to the trial and asks the pruner; the trainer
broadcasts rank 0's stop to every rank (``train/distributed.py``'s ``from_main`` on the
epoch's verdict), so all ranks stop together. Rank 0 writes what it measured (the
objective values, or the epoch it was pruned at) into a result file that the worker
reads and tells the study.

Why the worker launches the ranks rather than the ranks picking the trial up by number:
the trial's state changes (running, complete, pruned, failed) stay in a process that
outlives the ranks, so a rank that dies is seen (torchrun's non-zero exit) and the trial
is marked failed at once and retried under the same rule as a worker that died
(:data:`deepstrata.search.study.RETRIES`), instead of waiting for a heartbeat to go
stale; the sampler runs once per trial, in one process; and a study's storage is opened
by rank 0 only, so N ranks add one database connection, not N.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from deepstrata.errors import ConfigError, DistributedError, TrainingError

__all__ = ["RANK_FAILURE", "fit_on_ranks", "rank_trial", "shared", "write_result"]

STORAGE_ENV = "DEEPSTRATA_SEARCH_STORAGE"  # the study's URL, in the environment
RANK_FAILURE = "rank_failure"  # user attribute of a trial whose ranks failed


def shared(url: str, option: str = "--storage") -> None:
    """Refuse a storage other processes cannot reach (an in-memory SQLite database): the
    ranks and the other workers would each see an empty study of their own."""
    if ":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite:///"):
        raise ConfigError(
            f"{url!r} lives in one process's memory; ranks and workers share a study through "
            "a file (sqlite:///FILE, journal) or a server (postgresql://...)",
            option=option,
        )


def fit_on_ranks(ticket: dict, nproc: int, url: str) -> dict:
    """Run ``ticket``'s fit on ``nproc`` ranks under torchrun; rank 0's outcome.

    A rank that fails without a named error (killed, crashed) is a DistributedError naming
    the rank and how it ended; a named error on rank 0 (bad data, an objective the task
    lacks) comes back as a TrainingError with its message."""
    from deepstrata.train import torchrun

    shared(url)
    with tempfile.TemporaryDirectory(prefix="deepstrata-trial-") as folder:
        path, result = Path(folder) / "ticket.json", Path(folder) / "result.json"
        path.write_text(json.dumps({**ticket, "result": str(result)}), encoding="utf-8")
        env = {**os.environ, STORAGE_ENV: url}
        env.setdefault("OMP_NUM_THREADS", "1")  # N ranks share the cores
        command = torchrun.command(nproc, ["search", "--run-trial", str(path), "--quiet"])
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        lines = []
        for line in process.stderr:  # shown as it comes; torchrun's summary is parsed
            sys.stderr.write(line)
            lines.append(line)
        code = process.wait()
        outcome = json.loads(result.read_text(encoding="utf-8")) if result.is_file() else None
    if outcome is not None and "error" in outcome:
        raise TrainingError(f"trial {ticket['number']}: {outcome['error']}")
    if code != 0 or outcome is None:
        raise DistributedError(f"trial {ticket['number']}: {torchrun.root_cause(lines)}")
    return outcome


def rank_trial(ticket: dict):
    """On rank 0: the worker's trial, opened again from the study's storage, with the
    study's pruner, so that ``report`` and ``should_prune`` act on the same trial."""
    import optuna

    from deepstrata.search import study as studies
    from deepstrata.search.pruning import make_pruner

    url = os.environ.get(STORAGE_ENV)
    if not url:
        raise ConfigError(f"a trial's ranks need {STORAGE_ENV}", option="--run-trial")
    study = studies.load_study(studies.open_storage(url), ticket["study"])
    study.pruner = make_pruner(ticket["pruner"], int(ticket["max_epochs"]))
    study.sampler = optuna.samplers.RandomSampler()  # never asked: the worker sampled
    # Optuna keeps a trial's id private; the worker passed its own (``Trial._trial_id``).
    return optuna.trial.Trial(study, int(ticket["trial_id"]))


def write_result(ticket: dict, outcome: dict) -> None:
    """Rank 0's outcome for the worker (written whole, then renamed: never read half)."""
    path = Path(ticket["result"])
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(outcome), encoding="utf-8")
    temporary.replace(path)


def read_ticket(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def retry_failed_ranks(study, trial) -> None:
    """An ``optimize`` callback: a trial whose ranks failed is queued again with the same
    decisions, at most :data:`~deepstrata.search.study.RETRIES` times, by Optuna's own
    retry (the one that retries a trial whose worker stopped beating)."""
    import copy
    import warnings

    import optuna

    from deepstrata.search.study import RETRIES

    if trial.state != optuna.trial.TrialState.FAIL or RANK_FAILURE not in trial.user_attrs:
        return
    again = copy.deepcopy(trial)
    again.user_attrs = {k: v for k, v in trial.user_attrs.items() if k != RANK_FAILURE}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRIES)(study, again)

"""``search --trial-nproc N``: each trial fitted on N data-parallel ranks under torchrun.

Default suite: the refusals before any trial, rank 0's trial opened from the storage
(reports and the pruner), how a rank failure becomes the trial's failure and its retry
(torchrun stood in for by a one-line script). Marker ``distributed``: real searches whose
trials run on 2 gloo ranks — the same values as on 1 process, the per-epoch reports,
a pruned trial on every rank at once, and a rank killed mid-trial."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from deepstrata.cli import launch
from deepstrata.errors import DistributedError, TrainingError
from deepstrata.search import ranks
from deepstrata.search import study as studies
from deepstrata.search.run import DESCRIPTION
from tests.search.conftest import ROOT, description, run_search, tiny_frame


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--trial-nproc", "0"], "--trial-nproc: expected at least 1 process, got 0"),
        (
            ["--workers", "2", "--trial-nproc", str(launch.cores() // 2 + 1)],
            f"--trial-nproc: {2 * (launch.cores() // 2 + 1)} processes on {launch.cores()} cores",
        ),
        (
            ["--storage", "sqlite:///:memory:", "--trial-nproc", "2", "--oversubscribe"],
            "--storage: 'sqlite:///:memory:' lives in one process's memory",
        ),
        (["--worker", "--study", "s", "--trial-nproc", "0"], "--trial-nproc: expected at least"),
    ],
)
def test_trials_on_ranks_that_cannot_run_are_refused_before_any_trial(tmp_path, flags, message):
    code, output = run_search(tmp_path, *flags, "-o", str(tmp_path / "out"))
    assert code == 1 and message in output, output
    assert "--oversubscribe" in output or "processes on" not in message
    assert not (tmp_path / "out").exists()


def _study(tmp_path, trials=2):
    url = studies.storage_url("journal", tmp_path)  # (cheaper to create than SQLite's tables)
    storage = studies.open_storage(url)
    study = studies.create_study(storage, "s", ["minimize"], {DESCRIPTION: description(trials)},
                                 trials)  # fmt: skip
    return url, study


def test_rank_zero_reports_to_the_workers_trial_and_asks_the_studys_pruner(tmp_path, monkeypatch):
    url, study = _study(tmp_path)
    study.pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    done = study.ask()
    for epoch, value in enumerate([0.5, 0.4, 0.3], start=1):
        done.report(value, epoch)
        assert not done.should_prune()  # (the halving pruner records its rungs here)
    study.tell(done, 0.3)
    trial = study.ask()  # the worker's trial; rank 0 opens it again by id
    monkeypatch.setenv(ranks.STORAGE_ENV, url)
    ticket = {"study": "s", "trial_id": trial._trial_id, "pruner": "halving", "max_epochs": 3}
    opened = ranks.rank_trial(ticket)
    opened.report(0.9, 1)
    assert opened.number == trial.number and opened.should_prune()  # 0.9 trails 0.5
    assert study.trials[trial.number].intermediate_values == {1: 0.9}


def test_retry_failed_ranks_queues_the_same_decisions_up_to_the_retries(tmp_path):
    _, study = _study(tmp_path, trials=1)
    trial = study.ask()
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.set_user_attr(ranks.RANK_FAILURE, "trial 0: training rank 1 was killed by SIGKILL")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    for _ in range(studies.RETRIES + 1):
        failed = study.trials[-1]
        if failed.state == optuna.trial.TrialState.WAITING:  # run the retry, and fail it too
            again = study.ask()
            again.suggest_float("dropout", 0.0, 0.5)
            again.set_user_attr(ranks.RANK_FAILURE, "again")
            study.tell(again, state=optuna.trial.TrialState.FAIL)
            failed = study.trials[again.number]
        ranks.retry_failed_ranks(study, failed)
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL"] * (studies.RETRIES + 1)  # the first failure + RETRIES retries
    assert len({t.params["dropout"] for t in study.trials}) == 1
    assert all(t.user_attrs.get(studies.QUEUED) for t in study.trials)  # still the budget's
    # A trial failed by a named error (not a rank's fault) is not retried.
    other = study.ask()
    study.tell(other, state=optuna.trial.TrialState.FAIL)
    ranks.retry_failed_ranks(study, study.trials[other.number])
    assert len(study.trials) == other.number + 1


def test_a_ticket_run_as_rank_zero_reports_each_epoch_and_writes_the_measures(
    tmp_path, monkeypatch
):
    """``search --run-trial TICKET`` on one process (rank 0 of a world of one): it reopens
    the trial, reports every epoch, and writes the objective values for the worker."""
    from deepstrata.search.objective import run_ticket

    url, study = _study(tmp_path, trials=1)
    trial = study.ask()
    tiny_frame().to_csv(tmp_path / "tiny.csv", index=False)
    config = {"target": "y", "max_epochs": 2, "ensemble": False, "batch_size": 16,
              "learning_rate": 0.003, "dropout": 0.0}  # fmt: skip
    ticket = {"study": "s", "trial_id": trial._trial_id, "number": trial.number,
              "data": str(tmp_path / "tiny.csv"), "config": config,
              "objectives": ["val_loss"], "prune": True, "pruner": "none",
              "max_epochs": 2, "latency": False, "result": str(tmp_path / "result.json")}  # fmt: skip
    (tmp_path / "ticket.json").write_text(json.dumps(ticket))
    monkeypatch.setenv(ranks.STORAGE_ENV, url)
    run_ticket(tmp_path / "ticket.json")
    outcome = json.loads((tmp_path / "result.json").read_text())
    assert outcome["pruned"] is None and outcome["epochs"] == 2
    assert outcome["measures"]["params"] > 0
    reports = study.trials[trial.number].intermediate_values  # the best epoch's is the value
    assert sorted(reports) == [1, 2]
    assert any(v == pytest.approx(outcome["measures"]["val_loss"]) for v in reports.values())


STAND_IN = {
    "error": "import json, sys; t = json.load(open(sys.argv[-2])); "
    "open(t['result'], 'w').write(json.dumps({'error': 'no column z'})); sys.exit(1)",
    "killed": "import sys; sys.stderr.write('Root Cause (first observed failure):\\n[0]:\\n"
    "  rank      : 1 (local_rank: 1)\\n  exitcode  : -9 (pid: 1)  (SIGKILL)\\n'); sys.exit(1)",
    "ok": "import json, sys; t = json.load(open(sys.argv[-2])); "
    "open(t['result'], 'w').write(json.dumps({'epochs': 2}))",
}


@pytest.mark.parametrize("case", ["error", "killed", "ok"])
def test_how_the_ranks_ended_becomes_the_trials_outcome(monkeypatch, tmp_path, case):
    from deepstrata.train import torchrun

    monkeypatch.setattr(
        torchrun, "command", lambda n, args: [sys.executable, "-c", STAND_IN[case], *args]
    )
    ticket = {"number": 3}
    url = f"sqlite:///{tmp_path}/study.db"
    if case == "error":
        with pytest.raises(TrainingError, match="trial 3: no column z"):
            ranks.fit_on_ranks(ticket, 2, url)
    elif case == "killed":
        with pytest.raises(
            DistributedError, match="trial 3: training rank 1 was killed by SIGKILL"
        ):
            ranks.fit_on_ranks(ticket, 2, url)
    else:
        assert ranks.fit_on_ranks(ticket, 2, url) == {"epochs": 2}


# -- real ranks (torchrun) --------------------------------------------------------------

SPACE = (
    "ensemble: false\nmax_epochs: 3\nlearning_rate: 0.003\nbatch_size: 16\n"
    "search_space:\n  hidden_layers: {low: 1, high: 2}\n  dropout: 0.0\n  batch_size: false\n"
    "  mixup: false\n"
)


def _search(folder: Path, out: str, *extra: str, **popen):
    """``deepstrata search`` in a process of its own on the tiny table (a fixed global batch
    and rate, no dropout: the same arithmetic on any number of ranks)."""
    if not (folder / "tiny.csv").exists():
        tiny_frame().to_csv(folder / "tiny.csv", index=False)
        (folder / "space.yaml").write_text(SPACE)
    command = [sys.executable, "-m", "deepstrata", "search", str(folder / "tiny.csv"),
               "--target", "y", "--config", str(folder / "space.yaml"), "--sampler", "random",
               "--no-refit", "-o", str(folder / out), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return command, {"env": env, "text": True, **popen}


def _trials(folder: Path):
    storage = f"sqlite:///{folder / 'study.db'}"
    return optuna.load_study(study_name="tiny", storage=storage).get_trials()


@pytest.mark.distributed
def test_trials_on_two_ranks_end_where_they_end_on_one_process(tmp_path):
    runs = {}
    for nproc in (1, 2):
        command, options = _search(tmp_path, f"out{nproc}", "--trials", "3", "--pruner", "halving",
                                   "--trial-nproc", str(nproc), "--oversubscribe")  # fmt: skip
        done = subprocess.run(command, capture_output=True, **options)
        assert done.returncode == 0, done.stderr[-3000:]
        print(f"--trial-nproc {nproc}:\n{done.stdout}{done.stderr[-600:]}")
        runs[nproc] = _trials(tmp_path / f"out{nproc}")
        assert (tmp_path / f"out{nproc}" / "best.yaml").is_file()
    for one, two in zip(runs[1], runs[2], strict=True):
        print(f"trial {one.number}: {one.state.name} {one.values} / {two.state.name} {two.values};"
              f" reports {one.intermediate_values} / {two.intermediate_values}")  # fmt: skip
        assert one.state == two.state and one.params == two.params
        assert two.values == pytest.approx(one.values, rel=1e-5)
        assert sorted(two.intermediate_values) == sorted(one.intermediate_values)
        for step, value in one.intermediate_values.items():
            assert two.intermediate_values[step] == pytest.approx(value, rel=1e-5)
    states = [t.state.name for t in runs[2]]
    assert "COMPLETE" in states and "PRUNED" in states, states
    pruned = [t for t in runs[2] if t.state.name == "PRUNED"]
    # Every rank stopped at the epoch rank 0's pruner named (the ranks exited 0: none hung).
    assert all(len(t.intermediate_values) == t.user_attrs["pruned_at"] for t in pruned)
    assert any(t.user_attrs["pruned_at"] < 3 for t in pruned)  # before max_epochs
    record = json.loads((tmp_path / "out2" / "search.json").read_text())
    assert record["run"]["trial_processes"] == 2


def _rank_one_of_a_trial(timeout: float = 300) -> int:
    """The pid of rank 1 of a trial (``search --run-trial``) started by torchrun."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--run-trial" in cmdline and b"RANK=1" in environ and b"LOCAL_RANK=1" in environ:
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError("no rank 1 of a trial appeared")


@pytest.mark.distributed
def test_a_rank_killed_mid_trial_fails_that_trial_and_the_search_goes_on(tmp_path):
    """Two search workers, each fitting its trials on 2 ranks; one rank of one trial killed."""
    command, options = _search(tmp_path, "out", "--trials", "2", "--pruner", "none",
                               "--workers", "2", "--trial-nproc", "2", "--oversubscribe")  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)
    os.kill(_rank_one_of_a_trial(), signal.SIGKILL)
    out, err = process.communicate(timeout=600)
    print(out + "\n".join(line for line in err.splitlines() if "trial" in line))
    assert process.returncode == 0, err[-3000:]
    trials = _trials(tmp_path / "out")
    states = [t.state.name for t in trials]
    assert states.count("FAIL") == 1 and states.count("COMPLETE") == 2, states
    failed = next(t for t in trials if t.state.name == "FAIL")
    assert "training rank 1 was killed by SIGKILL" in failed.user_attrs[ranks.RANK_FAILURE]
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == failed.number)
    assert retry.state.name == "COMPLETE" and retry.params == failed.params
    workers = {t.user_attrs["worker"] for t in trials}
    print(f"trials by state {states}; {len(workers)} search workers: {sorted(workers)}")
    assert len(workers) == 2  # both workers fitted trials on their ranks
    assert (tmp_path / "out" / "best.yaml").is_file()

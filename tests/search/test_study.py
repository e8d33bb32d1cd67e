"""Studies: storage URLs (passwords masked), the queued budget, a killed worker."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from deepstrata.errors import ConfigError, StorageError
from deepstrata.search import study as studies
from deepstrata.search.run import DESCRIPTION, run_worker
from tests.search.conftest import ROOT, description


def test_urls_and_their_masks(tmp_path):
    assert studies.storage_url(None, tmp_path).endswith(f"{tmp_path}/study.db")
    assert studies.storage_url("postgresql://u:p@h/d", tmp_path) == "postgresql+psycopg://u:p@h/d"
    with pytest.raises(ConfigError, match="--storage: expected sqlite"):
        studies.storage_url("redis://u:hunter2@h", tmp_path)
    try:
        studies.storage_url("redis://u:hunter2@h", tmp_path)
    except ConfigError as error:
        assert "hunter2" not in str(error)


def test_an_unreachable_database_is_named_with_its_password_masked(tmp_path):
    url = studies.storage_url("postgresql://search:hunter2@127.0.0.1:1/studies", tmp_path)
    with pytest.raises(StorageError) as caught:
        studies.open_storage(url)
    text = str(caught.value)
    assert "hunter2" not in text and "search:***@127.0.0.1:1/studies" in text
    assert "cannot open the study database" in text
    assert list(tmp_path.iterdir()) == []  # nothing written


def _new_study(url, name, trials):
    storage = studies.open_storage(url, heartbeat=1, grace=2)
    return studies.create_study(
        storage, name, ["minimize"], {DESCRIPTION: description(trials)}, trials
    )


WORKER = """
import sys, time
from deepstrata.search import study as studies
from deepstrata.search.run import run_worker
def objective(trial):
    x = trial.suggest_float("dropout", 0.0, 0.5)
    if trial.number == 1:
        print("started", flush=True)
        time.sleep(60)   # killed here
    return x
storage = studies.open_storage(sys.argv[1], heartbeat=1, grace=2)
run_worker(storage, "killed", objective=objective)
"""


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_the_study_consistent_and_the_search_completes(tmp_path):
    url = studies.storage_url(None, tmp_path)
    study = _new_study(url, "killed", 3)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, url], env=env, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert worker.stdout.readline().strip() == "started"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        worker.kill()
    assert studies.running(study) == 1  # left running by the dead worker, for now
    storage = studies.open_storage(url, heartbeat=1, grace=2)
    time.sleep(2.5)  # past the grace period: its heartbeat has stopped
    ran = run_worker(
        storage, "killed", leader=True, objective=lambda t: t.suggest_float("dropout", 0.0, 0.5)
    )
    tally = studies.counts(study)
    assert tally["complete"] == 3 and tally["running"] == 0 and tally["waiting"] == 0
    assert tally["fail"] == 1 and ran == 2
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") is not None]
    assert len(retried) == 1 and retried[0].params == study.trials[1].params


def test_a_trial_whose_worker_stopped_beating_is_failed_retried_and_the_search_completes(tmp_path):
    """The fast version of the test above: a trial left running with a stale heartbeat."""
    url = studies.storage_url(None, tmp_path)
    study = _new_study(url, "stale", 2)
    storage = studies.open_storage(url, heartbeat=1, grace=1)
    orphan = study.ask()  # as a worker would, then it "dies": one heartbeat, no more
    storage.record_heartbeat(orphan._trial_id)
    time.sleep(1.5)
    ran = run_worker(
        storage, "stale", leader=True, objective=lambda t: t.suggest_float("dropout", 0, 0.5)
    )
    tally = studies.counts(study)
    assert (tally["complete"], tally["fail"], tally["running"], tally["waiting"], ran) == (
        2,
        1,
        0,
        0,
        2,
    )


def test_a_trial_has_its_first_heartbeat_before_its_objective_runs(tmp_path, monkeypatch):
    """Optuna's heartbeat thread beats asynchronously; a worker killed before its first beat
    left a trial that never went stale (the killed-worker test above hung now and then).
    Here the thread never beats at all: the trial must be found stale all the same."""
    import contextlib

    import optuna.study._optimize as optimize

    monkeypatch.setattr(optimize, "get_heartbeat_thread", lambda *a: contextlib.nullcontext())
    url = studies.storage_url(None, tmp_path)
    study = _new_study(url, "beat", 1)
    storage = studies.open_storage(url, heartbeat=1, grace=1)
    seen = []

    def objective(trial):
        time.sleep(2.5)  # past the 1 s grace, with no other beat (SQLite's times are whole seconds)
        seen.append(trial._trial_id in storage._get_stale_trial_ids(study._study_id))
        return 0.0

    run_worker(storage, "beat", objective=objective)
    assert seen == [True]


def test_two_workers_complete_exactly_the_budget_and_none_twice():
    import threading

    storage = optuna.storages.InMemoryStorage()
    study = studies.create_study(storage, "budget", ["minimize"], {DESCRIPTION: description(6)}, 6)
    seen, ran = [], []

    def objective(trial):
        seen.append(trial.number)
        time.sleep(0.01)
        return trial.suggest_float("dropout", 0, 0.5)

    threads = [
        threading.Thread(
            target=lambda: ran.append(run_worker(storage, "budget", objective=objective))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally = studies.counts(study)
    assert tally["complete"] == 6 and tally["waiting"] == 0 and tally["running"] == 0
    assert sorted(seen) == list(range(6))  # each queued trial ran once
    assert sum(ran) == 6 + tally["surplus"]  # a surplus trial is closed, never run


def test_a_study_name_taken_is_refused(tmp_path):
    url = studies.storage_url(None, tmp_path)
    _new_study(url, "taken", 1)
    with pytest.raises(ConfigError, match="--study: a study named 'taken' exists"):
        _new_study(url, "taken", 1)
    with pytest.raises(ConfigError, match="no study named 'other'"):
        studies.load_study(studies.open_storage(url), "other")
    assert optuna.__version__


def test_a_journal_file_holds_a_study_and_a_deadline_stops_the_worker(tmp_path):
    url = studies.storage_url("journal", tmp_path)
    storage = studies.open_storage(url)
    studies.create_study(storage, "journal", ["minimize"], {DESCRIPTION: description(2)}, 2)
    assert run_worker(storage, "journal", deadline=time.time() - 1, objective=lambda t: 0.0) == 0
    assert (
        run_worker(storage, "journal", objective=lambda t: t.suggest_float("dropout", 0, 0.5)) == 2
    )
    assert (tmp_path / "study.journal").is_file()

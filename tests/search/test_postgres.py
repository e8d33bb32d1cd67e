"""Two workers of ``deepstrata search`` against a real PostgreSQL server complete exactly
N trials, none twice (the server from ``.ci/postgres.sh``; skipped, saying why, where it
cannot start)."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from deepstrata.search import study as studies
from tests.search.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_two_workers_complete_exactly_n_trials_on_postgresql(postgres_url, tmp_path):
    frame = pd.DataFrame({"x": [i % 7 for i in range(60)], "z": [i % 3 for i in range(60)],
                          "y": ["a", "b", "c"] * 20})  # fmt: skip
    frame.to_csv(tmp_path / "tiny.csv", index=False)
    trials = 8
    command = [sys.executable, "-m", "deepstrata", "search", str(tmp_path / "tiny.csv"), "--target",
               "y", "--trials", str(trials), "--workers", "2", "--storage", postgres_url, "--study",
               "tiny", "--max-epochs", "2", "--no-refit", "-o", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    print(done.stdout, done.stderr[-2000:])
    assert done.returncode == 0, done.stderr
    assert "search-test" not in done.stdout + done.stderr  # the password never shows
    storage = studies.open_storage(studies.storage_url(postgres_url, tmp_path))
    study = studies.load_study(storage, "tiny")
    tally = studies.counts(study)
    print("trials by state:", tally)
    ran = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(ran) == trials and tally["running"] == 0 and tally["waiting"] == 0
    assert len({t.number for t in ran}) == trials
    assert len({t._trial_id for t in ran}) == trials
    workers = {t.user_attrs.get("worker") for t in ran}
    print(
        "trials per worker:",
        {w: sum(t.user_attrs.get("worker") == w for t in ran) for w in workers},
    )
    assert len(workers) == 2  # both workers ran trials

"""Shared fixtures: a small churn-like table with every kind of column, and a bundle fitted on it.

The table has 200 rows, so a fit with ``max_epochs=5`` takes a fraction of a second
once torch is warm. Its columns, and the schema deepstrata should infer for them:

=============  ==========================================  ================
column         values                                      kind, role
=============  ==========================================  ================
customer_id    C0000, C0001, … (unique per row)            category, ignore
tenure         months, a missing value every 23rd row      number, input
monthly        dollars                                     number, input
plan           basic / pro / max                           category, input
paperless      yes / no                                    boolean, input
signup         a date (YYYY-MM-DD)                         datetime, input
churned        yes / no, a learnable rule of the inputs    category, target
=============  ==========================================  ================
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CHURN_ROWS = 200


def pytest_configure(config) -> None:
    """Under pytest-xdist (``make test`` runs ``-n auto``), the cores are shared by the
    workers: each worker's torch gets its share of threads, so two workers on two cores do
    not oversubscribe them (they would run slower than one)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


FAST_FIT = {"max_epochs": 5, "progress": False}  # Python API options for a quick fit


def make_churn_frame(rows: int = CHURN_ROWS, seed: int = 0) -> pd.DataFrame:
    """The churn-like table (see the module docstring); the same rows for the same seed."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows).astype(float)
    tenure[::23] = np.nan
    monthly = rng.normal(70, 20, rows).round(2)
    plan = rng.choice(["basic", "pro", "max"], rows)
    paperless = rng.choice(["yes", "no"], rows)
    signup = pd.date_range("2022-01-01", periods=rows, freq="41h").strftime("%Y-%m-%d")
    score = (np.nan_to_num(tenure, nan=36) - 36) / 12 - (plan == "basic") * 1.5
    score = score + (paperless == "yes") * 1.0 + rng.normal(0, 0.5, rows)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(rows)],
            "tenure": tenure,
            "monthly": monthly,
            "plan": plan,
            "paperless": paperless,
            "signup": signup,
            "churned": np.where(score > 0, "no", "yes"),
        }
    )


@pytest.fixture(autouse=True, scope="session")
def embedding_cache() -> Iterator[Path]:
    """Pretrained embeddings are cached in a folder of the test session, not the user's.

    A plain temporary folder rather than pytest's numbered ones: those are pruned by
    other pytest sessions of the same user that start meanwhile (shared CI machines).
    """
    folder = Path(tempfile.mkdtemp(prefix="deepstrata-test-cache-"))
    before = os.environ.get("DEEPSTRATA_CACHE_DIR")
    os.environ["DEEPSTRATA_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("DEEPSTRATA_CACHE_DIR", None)
    else:
        os.environ["DEEPSTRATA_CACHE_DIR"] = before
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def churn_frame() -> pd.DataFrame:
    """A fresh copy of the churn-like table, free to change."""
    return make_churn_frame()


@pytest.fixture
def churn_csv(tmp_path, churn_frame) -> Path:
    """The churn-like table written to ``tmp_path/churn.csv``."""
    path = tmp_path / "churn.csv"
    churn_frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def fitted_churn_bundle(tmp_path_factory) -> Path:
    """A bundle fitted once per session on the churn table. Read-only: copy it to change it."""
    import deepstrata

    with torch_threads(1):
        # The network alone: serving, exporting and the report are tested on its bundle.
        model = deepstrata.fit(make_churn_frame(), target="churned", ensemble=False, **FAST_FIT)
    return model.save(tmp_path_factory.mktemp("fitted") / "churn-bundle")


@pytest.fixture
def churn_bundle(tmp_path, fitted_churn_bundle) -> Path:
    """A private copy of the session's churn bundle at ``tmp_path/bundle``, free to tamper with."""
    return Path(shutil.copytree(fitted_churn_bundle, tmp_path / "bundle"))


@dataclass(frozen=True)
class CliResult:
    """What one in-process ``deepstrata`` command did: exit status, stdout, stderr."""

    code: int
    out: str
    err: str

    def error_line(self) -> str:
        """The one ``error: …`` line of a refused command (asserting there is exactly one)."""
        assert self.code == 1, f"expected exit status 1, got {self.code}\n{self.err}"
        assert "Traceback" not in self.err, self.err
        errors = [line for line in self.err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, f"expected one 'error: …' line on stderr, got:\n{self.err}"
        return errors[0]

    def warning_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("warning: ")]


@pytest.fixture
def cli(capsys) -> Callable[..., CliResult]:
    """Run ``deepstrata ARGS…`` in this process (fast: torch stays imported).

    >>> result = cli("inspect", path, "--json")   # doctest: +SKIP
    """
    from deepstrata.cli import main

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            main([str(arg) for arg in args])
            code = 0
        except SystemExit as exit_:
            code = 0 if exit_.code is None else int(exit_.code)
        out, err = capsys.readouterr()
        return CliResult(code=code, out=out, err=err)

    return run


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch on ``count`` threads inside the block, then restore the previous number."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Train on one thread for the tests of a module (``pytest.mark.usefixtures``).

    The fits in CLI and integration tests are tiny: on one thread a 200-row fit
    takes about 0.1 s, while on a 2-core machine busy with anything else torch's
    two threads wait on each other and the same fit takes seconds.
    """
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def panel_csv(tmp_path_factory):
    """tests/forecast/conftest.py's two-store monthly panel, as a CSV file."""
    from tests.forecast.conftest import tiny_panel

    path = tmp_path_factory.mktemp("forecast") / "sales.csv"
    tiny_panel().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def forecaster(panel_csv):
    """A tiny forecaster fit once on ``panel_csv`` (forecast, serve and browser tests)."""
    from deepstrata.config import FitConfig
    from deepstrata.forecast.fit import fit_forecaster
    from tests.forecast.conftest import TINY

    cfg = FitConfig(target="units", time="date", series="store", horizon=6, backtests=2, **TINY)
    return fit_forecaster(panel_csv, cfg, progress=False)

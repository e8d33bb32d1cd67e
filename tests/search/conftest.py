"""What the search tests share: a study description without data, and a throwaway
PostgreSQL server (``.ci/postgres.sh``; the test skips, saying why, where it cannot start)."""

import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def description(trials: int) -> dict:
    """A search's description over a one-decision space (for workers given an objective)."""
    from deepstrata.search.run import Search
    from deepstrata.search.space import Context, SearchSpace

    space = SearchSpace.default().narrowed({"dropout": {"low": 0.0, "high": 0.5}})
    space.params = {"dropout": space.params["dropout"]}
    return Search(
        data="unused.csv", settings={"target": "y"}, space=space, context=Context(),
        objectives=["val_loss"], sampler="random", sampler_reason="test", pruner="none",
        trials=trials,
    ).description()  # fmt: skip


@pytest.fixture(scope="session")
def postgres_url():
    parent = Path(tempfile.mkdtemp(prefix="pg-"))
    parent.chmod(0o755)  # the server runs as the user postgres, who must reach the folder
    folder = parent / "cluster"
    script = ROOT / ".ci" / "postgres.sh"
    try:
        done = subprocess.run([str(script), "start", str(folder)], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"PostgreSQL could not start: {error}")
    if done.returncode != 0:
        pytest.skip(f"PostgreSQL could not start: {done.stderr.strip()[-300:]}")
    yield done.stdout.strip()
    subprocess.run([str(script), "stop", str(folder)], check=False)


def tiny_frame():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=80)
    return pd.DataFrame({"x": x, "z": rng.normal(size=80), "y": np.where(x > 0, "yes", "no")})


def run_search(folder: Path, *extra: str):
    """``deepstrata search`` in this process, on a tiny table; returns (exit code, output)."""
    import contextlib
    import io

    from deepstrata.cli import main

    data = folder / "tiny.csv"
    if not data.exists():
        tiny_frame().to_csv(data, index=False)
        (folder / "search.yaml").write_text(
            "ensemble: false\nmax_epochs: 2\nsearch_space:\n  hidden_layers: {low: 1, high: 2}\n"
            "  batch_size: [16, 32]\n  mixup: false\n"
        )
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["search", str(data), "--target", "y", "--config", str(folder / "search.yaml"),
                  "--quiet", *extra])  # fmt: skip
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue() + err.getvalue()


@pytest.fixture(scope="session")
def searched(tmp_path_factory):
    """A finished two-objective search of 3 trials with its refit bundle."""
    folder = tmp_path_factory.mktemp("searched")
    code, output = run_search(folder, "--trials", "3", "--objectives", "val_loss,params",
                              "--pick", "fastest-within 0.05", "-o", str(folder / "out"))  # fmt: skip
    assert code == 0, output
    return folder / "out", output

"""``fit --nproc N`` and ``torchrun -m deepstrata fit``: the launcher's checks (default
suite, no process started) and real multi-process runs (marker ``distributed``): the
same answer as one process, a killed rank, an elastic restart, two "nodes" on loopback."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepstrata.cli import launch, main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    return exit_.value.code, capsys.readouterr().err


def table(path: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4))
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame["y"] = x @ [1.0, 2.0, 3.0, 4.0] + 0.1 * rng.normal(size=rows)
    frame.to_csv(path, index=False)
    return path


def test_more_processes_than_cores_is_refused_before_anything_is_written(tmp_path, capsys):
    data = table(tmp_path / "d.csv", 20)
    code, err = run_cli(
        ["fit", str(data), "--target", "y", "--nproc", "512", "-o", str(tmp_path / "b")], capsys
    )
    assert code == 1 and "--nproc" in err and "--oversubscribe" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


NCCL = ["--backend", "nccl"]


def test_nccl_without_cuda_is_refused(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    data = table(tmp_path / "d.csv", 20)
    code, err = run_cli(
        ["fit", str(data), "--target", "y", "--nproc", "2", "--oversubscribe", *NCCL],
        capsys,
    )
    assert code == 1 and "NCCL backend needs CUDA" in err


TWO = ["--nproc", "2", "--oversubscribe"]


def test_resuming_with_another_global_batch_is_refused(tmp_path, capsys):
    code, err = run_cli(
        ["fit", "--resume", str(tmp_path / "r.run"), "--batch-size", "64", *TWO],
        capsys,
    )
    assert code == 1 and "leave out --batch-size" in err


def test_worker_command_line_and_failure_summary():
    argv = ["fit", "d.csv", "--nproc", "2", "--max-restarts=1", "--oversubscribe", "-o", "b"]
    assert launch.worker_argv(argv) == ["fit", "d.csv", "-o", "b"]
    summary = """Root Cause (first observed failure):
[0]:
  time      : 2026-12-07_03:58:44
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 28529)  (SIGKILL)
"""
    assert launch.root_cause(summary.splitlines(True)) == "training rank 1 was killed by SIGKILL"


# -- real processes (torchrun) -----------------------------------------------------------


def deepstrata(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return [sys.executable, "-m", "deepstrata", *args], {"env": env, "text": True, **kwargs}


def fit_command(data, out, *extra):
    common = ["--target", "y", "--no-ensemble", "--dropout", "0", "--learning-rate", "0.003"]
    return ["fit", str(data), *common, "--batch-size", "64", "--seed", "1", "-o", str(out), *extra]


def predictions(bundle, data):
    from deepstrata import api

    return api.load(bundle).predictions(data)["prediction"].to_numpy(dtype=float)


@pytest.mark.distributed
def test_two_processes_give_the_bundle_one_process_gives(tmp_path):
    data = table(tmp_path / "d.csv", 1000)
    bundles = {}
    for nproc in (1, 2):
        out = tmp_path / f"b{nproc}"
        command, options = deepstrata(*fit_command(data, out, "--max-epochs", "3", "--quiet"))
        done = subprocess.run([*command, "--nproc", str(nproc)], capture_output=True, **options)
        assert done.returncode == 0, done.stderr[-3000:]
        bundles[nproc] = out
    one, two = (predictions(bundles[n], data) for n in (1, 2))
    print(f"largest prediction difference, 2 processes vs 1: {np.abs(one - two).max():.2e}")
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-4)


def _worker_pid(data: Path, rank: int, timeout: float = 300) -> int:
    """The pid of the torchrun worker of ``rank`` training on ``data``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            mine = str(data).encode() in cmdline and f"RANK={rank}".encode() in environ
            if mine and b"TORCHELASTIC_RUN_ID" in b" ".join(environ):
                return int(entry.name)
        time.sleep(0.2)
    raise AssertionError("no worker found")


def _kill_rank_after_first_checkpoint(process, data, run_dir):
    deadline = time.time() + 300
    while not (run_dir / "checkpoint" / "checkpoint.json").is_file():
        assert process.poll() is None and time.time() < deadline, "no checkpoint came"
        time.sleep(0.1)
    os.kill(_worker_pid(data, 1), signal.SIGKILL)


@pytest.mark.distributed
def test_a_killed_rank_fails_clearly_and_leaves_a_checkpoint_to_resume(tmp_path):
    data, out = table(tmp_path / "d.csv", 20000), tmp_path / "b"
    command, options = deepstrata(*fit_command(data, out, "--max-epochs", "8", "--quiet"))
    process = subprocess.Popen([*command, "--nproc", "2"], stderr=subprocess.PIPE, **options)
    _kill_rank_after_first_checkpoint(process, data, tmp_path / "b.run")
    err = process.communicate(timeout=300)[1]
    last = err.strip().splitlines()[-1]
    print(last)
    assert process.returncode == 1
    assert "training rank 1 was killed by SIGKILL" in last
    assert f"resume with deepstrata fit --resume {tmp_path / 'b.run'}" in last
    assert not out.exists()
    command, options = deepstrata("fit", "--resume", str(tmp_path / "b.run"), "--quiet")
    done = subprocess.run(command, capture_output=True, **options)  # one process now
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(predictions(out, data)) == 20000


@pytest.mark.distributed
def test_with_max_restarts_the_elastic_agent_resumes_the_run(tmp_path):
    data, out = table(tmp_path / "d.csv", 20000), tmp_path / "b"
    command, options = deepstrata(*fit_command(data, out, "--max-epochs", "4", "--quiet"))
    process = subprocess.Popen(
        [*command, "--nproc", "2", "--max-restarts", "1"], stderr=subprocess.PIPE, **options
    )
    _kill_rank_after_first_checkpoint(process, data, tmp_path / "b.run")
    err = process.communicate(timeout=600)[1]
    assert process.returncode == 0, err[-3000:]
    print([line for line in err.splitlines() if "estart" in line][:2])
    from deepstrata import api

    history = api.load(out).metrics["history"]["epochs"]
    assert [record["epoch"] for record in history] == [1, 2, 3, 4]


@pytest.mark.distributed
def test_two_nodes_on_loopback_with_a_c10d_rendezvous(tmp_path):
    data, out = table(tmp_path / "d.csv", 1000), tmp_path / "b"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"]
    torchrun += ["--nproc-per-node", "1", "--rdzv-backend", "c10d"]
    torchrun += ["--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "loopback"]
    fit = fit_command(data, out, "--max-epochs", "2", "--quiet")
    _, options = deepstrata()
    nodes = [
        subprocess.Popen([*torchrun, "-m", "deepstrata", *fit], stderr=subprocess.PIPE, **options)
        for _ in range(2)
    ]
    errors = [node.communicate(timeout=600)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    assert len(predictions(out, data)) == 1000

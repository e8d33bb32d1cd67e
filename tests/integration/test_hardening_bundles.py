"""Issue 24, points 3 to 8: what an outside attack on ``fit`` and bundles found, end to end.

A full disk, a malformed or hostile bundle, non-finite weights: each ends in one
``error: …`` line and exit status 1, through ``deepstrata.load`` and the CLI alike, the
old bundle untouched. What a killed writer leaves beside ``--out`` is swept at the next
write, with a warning. Two fits to the same ``--out`` are two real processes here: the
second is refused at once.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import deepstrata
import deepstrata.bundle.write as bundle_write
from deepstrata.bundle import write_manifest
from deepstrata.bundle.lock import lock_path
from deepstrata.bundle.manifest import sha256_of
from deepstrata.errors import BundleError, ConfigError
from tests.integration.test_hostile_inputs import CLI_FAST, leftovers_beside, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]

NO_SPACE = "Error while serializing: I/O error: No space left on device (os error 28)"


def rehash(bundle: Path) -> None:
    """Re-sign a changed bundle, as whoever crafts one can: its manifest then agrees."""
    versions = json.loads((bundle / "manifest.json").read_text())["versions"]
    write_manifest(bundle, versions=versions)


def refused(cli, bundle: Path, data: Path, tmp_path: Path, message: str) -> str:
    """``deepstrata.load`` raises a BundleError matching ``message``; ``predict`` prints it as
    one error line, exits 1 and writes nothing."""
    with pytest.raises(BundleError, match=message) as caught:
        deepstrata.load(bundle)
    assert caught.value.path == str(bundle)
    output = tmp_path / "predictions.csv"
    line = cli("predict", bundle, data, "-o", output).error_line()
    assert str(bundle) in line, line
    assert not output.exists() and leftovers_beside(output) == []
    return line


# -- 3: a full disk ------------------------------------------------------------------------------


def _full_disk(*args, **kwargs):
    raise SafetensorError(NO_SPACE)


def test_a_full_disk_while_writing_the_bundle_is_one_line_and_the_old_bundle_stays(
    churn_csv, churn_bundle, cli, monkeypatch
):
    before = snapshot(churn_bundle)
    monkeypatch.setattr("deepstrata.bundle.write.save_file", _full_disk)
    result = cli(
        "fit", churn_csv, "--target", "churned", "--out", churn_bundle, "--overwrite", *CLI_FAST
    )
    line = result.error_line()
    assert str(churn_bundle) in line and "No space left on device" in line, line
    assert "it needs about" in line and "free there" in line, line
    assert snapshot(churn_bundle) == before
    assert leftovers_beside(churn_bundle) == []
    deepstrata.load(churn_bundle)


def test_a_full_disk_while_checkpointing_is_one_line_and_nothing_is_left(
    tmp_path, churn_csv, cli, monkeypatch
):
    before = snapshot(tmp_path)
    monkeypatch.setattr("deepstrata.train.checkpoint.save_file", _full_disk)
    out = tmp_path / "runs" / "churn"
    line = cli("fit", churn_csv, "--target", "churned", "--out", out, *CLI_FAST).error_line()
    assert "could not write the checkpoint" in line and "it needs about" in line, line
    assert snapshot(tmp_path) == before  # no run directory, no lock, no runs/ folder


def test_a_disk_too_full_for_run_json_is_one_line_and_nothing_is_left(
    tmp_path, churn_csv, cli, monkeypatch
):
    before = snapshot(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("deepstrata.train.run.tempfile.mkstemp", full)
    out = tmp_path / "runs" / "churn"
    line = cli("fit", churn_csv, "--target", "churned", "--out", out, *CLI_FAST).error_line()
    assert "could not write run.json" in line and "it needs about" in line, line
    assert snapshot(tmp_path) == before


# -- 4: malformed bundles -----------------------------------------------------------------------


def _weights_header(bundle: Path, header: bytes, length: int | None = None) -> None:
    size = len(header) if length is None else length
    (bundle / "weights.safetensors").write_bytes(struct.pack("<Q", size) + header)


MALFORMED = {
    "weights-claims-100GB": (
        lambda b: _weights_header(
            b,
            json.dumps(
                {"w": {"dtype": "F32", "shape": [25 * 10**9], "data_offsets": [0, 10**11]}}
            ).encode(),
        ),
        "weights.safetensors is not a valid safetensors file",
    ),
    "weights-header-2**63": (
        lambda b: _weights_header(b, b"{}", length=2**63),
        "weights.safetensors is not a valid safetensors file",
    ),
    "config-nested-100000": (
        lambda b: (b / "config.json").write_text("[" * 100_000 + "]" * 100_000),
        "config.json is nested more than 100 levels",
    ),
    "metrics-nested-100000": (
        lambda b: (b / "metrics.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000),
        "metrics.json is nested more than 100 levels",
    ),
    "config-member-a-string": (
        lambda b: (b / "config.json").write_text(
            json.dumps({**json.loads((b / "config.json").read_text()), "members": ["network"]})
        ),
        "config.json and weights do not describe a model",
    ),
}


@pytest.mark.parametrize("case", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_bundle_is_one_bundle_error(tmp_path, churn_csv, churn_bundle, cli, case):
    spoil, message = case
    spoil(churn_bundle)
    rehash(churn_bundle)
    line = refused(cli, churn_bundle, churn_csv, tmp_path, message)
    assert message in line, line


MANIFESTS = {
    "nested-100000": (
        lambda m: "[" * 100_000 + "]" * 100_000,
        "manifest.json is nested more than 100 levels",
    ),
    "files-a-list": (
        lambda m: json.dumps({**m, "files": sorted(m["files"])}),
        "'files' must map names to entries, found a list",
    ),
    "entry-a-string": (
        lambda m: json.dumps({**m, "files": dict.fromkeys(m["files"], "sha256")}),
        "must be an object with 'sha256'",
    ),
}


@pytest.mark.parametrize("case", MANIFESTS.values(), ids=MANIFESTS.keys())
def test_a_malformed_manifest_is_one_bundle_error(tmp_path, churn_csv, churn_bundle, cli, case):
    edit, message = case
    manifest = json.loads((churn_bundle / "manifest.json").read_text())
    (churn_bundle / "manifest.json").write_text(edit(manifest))
    line = refused(cli, churn_bundle, churn_csv, tmp_path, message)
    assert message in line, line


# -- 5: manifest names outside the bundle -------------------------------------------------------


@pytest.mark.parametrize("how", ["dot-dot", "absolute"])
def test_a_manifest_naming_a_file_outside_the_bundle_is_refused(
    tmp_path, churn_csv, churn_bundle, cli, how
):
    outside = tmp_path / "secret.txt"
    outside.write_text("a file of the user's, outside the bundle\n")
    if how == "dot-dot":
        name = "../" * len(churn_bundle.resolve().parts) + outside.resolve().as_posix()[1:]
    else:
        name = str(outside.resolve())
    manifest = json.loads((churn_bundle / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_of(outside), "bytes": outside.stat().st_size}
    (churn_bundle / "manifest.json").write_text(json.dumps(manifest))
    line = refused(cli, churn_bundle, churn_csv, tmp_path, "not a plain name inside the bundle")
    assert name in line, line


def test_a_listed_symlink_is_reported_as_one(tmp_path, churn_csv, churn_bundle, cli):
    moved = tmp_path / "elsewhere.json"
    (churn_bundle / "metrics.json").rename(moved)
    (churn_bundle / "metrics.json").symlink_to(moved)
    refused(cli, churn_bundle, churn_csv, tmp_path, "'metrics.json' .* is a symlink")


# -- 6: non-finite weights ----------------------------------------------------------------------


def test_all_nan_weights_are_refused_naming_a_tensor(tmp_path, churn_csv, churn_bundle, cli):
    weights = load_file(churn_bundle / "weights.safetensors")
    spoiled = {
        name: torch.full_like(t, float("nan")) if t.is_floating_point() else t
        for name, t in weights.items()
    }
    save_file(spoiled, churn_bundle / "weights.safetensors", metadata={"format": "pt"})
    rehash(churn_bundle)
    line = refused(cli, churn_bundle, churn_csv, tmp_path, r"tensor 'members\.0\..*' .* NaN")
    assert "weights.safetensors" in line, line


# -- 7: what a killed writer left beside --out ---------------------------------------------------

# Writes the bundle at argv[1] again, over itself, and SIGKILLs itself mid-way: while the
# new version is being staged ("staging") or while the old one is being deleted ("deleting").
KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import deepstrata.bundle.write as write
    from deepstrata.bundle import read_bundle

    bundle = Path(sys.argv[1])
    config, weights, metrics = read_bundle(bundle)
    standard = {"config.json", "weights.safetensors", "metrics.json", "manifest.json"}
    files = {p.name: p.read_bytes() for p in bundle.iterdir() if p.name not in standard}

    def kill(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def delete_one_then_kill(path, **kwargs):
        os.remove(next(path.iterdir()))  # half deleted
        kill()

    if sys.argv[2] == "staging":
        write.save_file = kill
    else:
        write.shutil.rmtree = delete_one_then_kill
    write.write_bundle(bundle, config=config, weights=weights, metrics=metrics, versions={},
                       files=files, overwrite=True)
    """
)


@pytest.mark.parametrize(
    ("when", "left", "next_write"),
    [
        ("staging", ".partial", ("fit", "--overwrite", "--max-epochs", "2", "--quiet")),
        ("deleting", ".deleting", ("report",)),  # any write to the path sweeps: one writer
    ],
)
def test_what_a_killed_writer_left_is_swept_at_the_next_write(
    tmp_path, churn_csv, churn_bundle, cli, when, left, next_write
):
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(churn_bundle), when],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (stale,) = leftovers_beside(churn_bundle)
    assert stale.endswith(left), stale
    if next_write[0] == "fit":
        result = cli(
            "fit", churn_csv, "--target", "churned", "--out", churn_bundle, *next_write[1:]
        )
    else:
        result = cli(*next_write, churn_bundle)
    assert result.code == 0, result.err
    warned = [line for line in result.warning_lines() if stale in line and "interrupted" in line]
    assert warned, result.err
    assert leftovers_beside(churn_bundle) == []
    deepstrata.load(churn_bundle)


def test_a_live_writers_staging_is_left_alone(tmp_path, churn_csv, churn_bundle, cli):
    live = bundle_write._sibling(churn_bundle, "partial", create=True)  # this very process
    args = ("--overwrite", "--max-epochs", "2", "--quiet")
    result = cli("fit", churn_csv, "--target", "churned", "--out", churn_bundle, *args)
    assert result.code == 0, result.err
    assert not [line for line in result.warning_lines() if "interrupted" in line], result.err
    assert leftovers_beside(churn_bundle) == [live.name]


# -- 8: two fits to the same --out or run directory --------------------------------------------------------------


# Holds the lock file argv[1] as deepstrata does (flock, its PID inside) until stdin closes.
HOLD_LOCK = textwrap.dedent(
    """
    import fcntl, os, sys
    descriptor = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    os.write(descriptor, str(os.getpid()).encode())
    print("held", flush=True)
    sys.stdin.read()
    """
)


def test_a_second_fit_to_the_same_out_is_refused_at_once(tmp_path, churn_csv):
    out = tmp_path / "runs" / "churn"
    fit = [sys.executable, "-m", "deepstrata", "fit", churn_csv, "--target", "churned"]
    endless = ("--max-epochs", "100000", "--patience", "100000", "--quiet")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [*fit, "--out", out, *endless], env=environment, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        # The first holds the lock (or, before locks, has begun its run): start the second.
        while not (lock_path(out).exists() or (out.parent / "churn.run" / "run.json").exists()):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first fit did not start training"
            time.sleep(0.2)
        started = time.monotonic()
        second = subprocess.run(
            [*fit, "--out", out, "--max-epochs", "2", "--quiet"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        took = time.monotonic() - started
        assert first.poll() is None  # still training: the second did not wait for it
    finally:
        first.kill()
        first.wait(timeout=60)
    assert second.returncode == 1, second.stderr
    errors = [line for line in second.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in second.stderr, second.stderr
    assert f"being written by process {first.pid}" in errors[0], errors[0]
    assert "--out" in errors[0] and str(out) in errors[0], errors[0]
    assert took < 60  # refused before any work, not after training
    assert lock_path(out).exists()  # the first one's, left by its SIGKILL: taken over later


def test_a_fit_in_a_run_directory_another_process_holds_is_refused_before_reading(
    tmp_path, churn_csv, monkeypatch
):
    run_dir = tmp_path / "runs" / "churn.run"
    run_dir.parent.mkdir()
    holder = subprocess.Popen(  # holds the run directory's lock as another deepstrata would
        [sys.executable, "-c", HOLD_LOCK, str(lock_path(run_dir))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"

        def no_reading(*args, **kwargs):
            raise AssertionError("the data was read although the run directory is taken")

        monkeypatch.setattr("deepstrata.recipes.run.read_table", no_reading)
        with pytest.raises(ConfigError, match=rf"being written by process {holder.pid}") as caught:
            deepstrata.fit(
                tmp_path / "churn.csv", target="churned", run_dir=run_dir, progress=False
            )
        assert caught.value.option == "--run-dir"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not run_dir.exists()

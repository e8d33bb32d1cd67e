"""One writer per path: a second process is refused at once, naming the holder; the lock of
a process that died is taken over; nothing is left behind once it is released."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from deepstrata.bundle.lock import lock_path, locked
from deepstrata.errors import ConfigError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock is POSIX")

# Another process holding the lock on the file argv[1] as deepstrata does (flock, its PID
# inside) until its stdin closes; it says "held" first. Plain Python: it starts in a blink.
HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys
    descriptor = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    os.write(descriptor, f"{os.getpid()}\\n".encode())
    print("held", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def holder(tmp_path):
    """Start a process holding the lock on a path; yields (path, process)."""
    path = tmp_path / "bundle"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path(path))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "held"
        yield path, process
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def test_a_second_process_is_refused_at_once_naming_the_holder(holder):
    path, process = holder
    with (
        pytest.raises(ConfigError, match=rf"being written by process {process.pid}") as caught,
        locked(path, option="--out"),
    ):
        pass
    assert caught.value.option == "--out" and str(path) in str(caught.value)


def test_the_lock_of_a_process_that_ended_is_taken_over(holder):
    path, process = holder
    process.kill()  # SIGKILL: no release ran, the lock file stays behind
    process.wait(timeout=30)
    assert lock_path(path).exists()
    with locked(path, option="--out"):
        assert lock_path(path).read_text().strip() == str(os.getpid())
    assert not lock_path(path).exists()


def test_a_stale_lock_file_naming_a_dead_process_is_taken_over(tmp_path):
    path = tmp_path / "bundle"
    lock_path(path).write_text("999999999\n")  # no flock on it: whoever wrote it has gone
    with locked(path, option="--out"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_holder_may_take_it_again_and_release_leaves_nothing(tmp_path):
    path = tmp_path / "new" / "folders" / "bundle"
    with locked(path, option="--out"):
        assert lock_path(path).is_file()
        with locked(path, option="--run-dir"):  # the same process: a no-op, kept by the outer
            pass
        assert lock_path(path).is_file()
    assert list(tmp_path.iterdir()) == []  # the folders made for the lock file went too


def test_a_full_disk_does_not_stop_the_holder_taking_it_again(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("deepstrata.bundle.lock.os.write", full)  # no PID in the file
    path = tmp_path / "bundle"
    with locked(path, option="--out"), locked(path, option="--run-dir"):
        assert lock_path(path).read_text() == ""
    assert list(tmp_path.iterdir()) == []

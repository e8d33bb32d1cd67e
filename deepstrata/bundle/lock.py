"""One writer per path: an exclusive lock beside a bundle or a run directory.

``fit`` takes :func:`locked` on its ``--out`` and its run directory before it trains,
so a second ``fit`` to the same place is refused at once (a ConfigError naming the
process that holds it), not after training to the end. The lock is ``flock`` on
``.<name>.lock`` beside the path: the system releases it when its process ends, however
it ends, so the lock of a killed process is simply taken over. The file holds the
holder's PID, for the message, and is removed when the lock is released.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from deepstrata.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock is not taken there
    fcntl = None

# The lock files this process holds, by (device, inode), with the PID that took each: a
# forked child inherits the dict but not the right to the lock.
_HELD: dict[tuple[int, int], int] = {}


def lock_path(path: Path) -> Path:
    """The lock file of ``path``: ``.<name>.lock`` beside it."""
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def locked(path: str | Path, *, option: str) -> Iterator[None]:
    """Hold the lock on ``path`` for the block. Taken again by the process that holds it,
    it is a no-op (the outer block keeps it). ``option`` names the flag that chose
    ``path``, for the error another process gets."""
    held = _acquire(Path(path), option=option)
    try:
        yield
    finally:
        if held is not None:
            held.release()


class _Held:
    """A lock taken: its descriptor, its file, the folders made to hold the file."""

    def __init__(self, descriptor: int, file: Path, created: list[Path]) -> None:
        self.descriptor, self.file, self.created = descriptor, file, created
        self.key = _identity(descriptor)
        _HELD[self.key] = os.getpid()

    def release(self) -> None:
        _HELD.pop(self.key, None)
        # Unlinked while still locked, so that no one takes a lock on a file about to go.
        with contextlib.suppress(OSError):
            self.file.unlink()
        os.close(self.descriptor)
        for folder in self.created:  # deepest first; nothing is written when nothing ran
            try:
                folder.rmdir()
            except OSError:
                break


def _acquire(path: Path, *, option: str) -> _Held | None:
    if fcntl is None:
        return None
    file = lock_path(path)
    for _ in range(20):  # a holder may unlink the file between our open and our flock
        created = [p for p in (file.parent, *file.parent.parents) if not p.exists()]
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a folder removed meanwhile by another lock's release
            continue
        except OSError as error:
            raise ConfigError(
                f"cannot create the lock file {file}: {error.strerror}", option=option
            ) from None
        if _HELD.get(_identity(descriptor)) == os.getpid():
            os.close(descriptor)
            return None  # this process holds it already (flock would refuse a second hold)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _holder(descriptor)
            os.close(descriptor)
            if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                return None  # a file system without locks: go on as before locks existed
            who = f"process {holder}" if holder else "another process"
            raise ConfigError(
                f"{path} is being written by {who} (it holds {file}); wait for it to finish, "
                f"stop it, or choose another {option}",
                option=option,
            ) from None
        if _same_file(descriptor, file):
            with contextlib.suppress(OSError):  # a full disk: locked all the same, PID unsaid
                os.ftruncate(descriptor, 0)
                os.write(descriptor, f"{os.getpid()}\n".encode())
            return _Held(descriptor, file, created)
        os.close(descriptor)
    raise ConfigError(f"could not take the lock {file}; try again", option=option)


def clear_stale(path: Path) -> bool:
    """Remove the lock file of ``path`` if no process holds it (its holder was killed):
    whether it did. A live holder's lock, this process's included, is left alone."""
    if fcntl is None:
        return False
    file = lock_path(Path(path))
    try:
        descriptor = os.open(file, os.O_RDWR)
    except OSError:  # none there
        return False
    try:
        if _HELD.get(_identity(descriptor)) == os.getpid():
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its process runs
            return False
        if not _same_file(descriptor, file):
            return False
        file.unlink()  # while locked, as a release does: no one can be taking it now
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)


def _identity(descriptor: int) -> tuple[int, int]:
    status = os.fstat(descriptor)
    return status.st_dev, status.st_ino


def _holder(descriptor: int) -> int | None:
    """The PID the lock's holder wrote in the file, if it has yet."""
    try:
        return int(os.pread(descriptor, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


def _same_file(descriptor: int, file: Path) -> bool:
    """Whether ``file`` is still the file locked through ``descriptor`` (not unlinked and
    made anew by someone else meanwhile)."""
    try:
        mine, now = os.fstat(descriptor), os.stat(file)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)

"""Write a bundle atomically: temporary sibling directory, then rename.

:func:`atomic_directory` is the one way a finished directory is put in place: bundles,
re-rendered reports, compare outputs and ONNX exports are all built in a private
sibling and renamed over the target only when complete, so a crash leaves the old
directory whole and never half of a new one.

The siblings carry their writer in their names (``.churn.<host>-<pid>-<random>.partial``
beside ``churn``), so that what a killed writer left behind (SIGKILL, a power cut) is
recognised at the next write to the same target and swept away, with a warning; a
sibling whose writer is still running is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from deepstrata.bundle.lock import clear_stale, lock_path
from deepstrata.bundle.manifest import write_manifest
from deepstrata.errors import BundleError

CONFIG, WEIGHTS, METRICS = "config.json", "weights.safetensors", "metrics.json"
# What a sibling is: a new version being built, the old one set aside while the new
# one is renamed in, or the old one being deleted once the new one is in place.
_PARTIAL, _OLD, _DELETING = "partial", "old", "deleting"
_BLOCK = 4096  # what a file takes on disk is rounded up to whole blocks (4 kB on most)
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _dump(path: Path, data: dict) -> None:
    path.write_text(
        json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n", encoding="utf-8"
    )


def write_bundle(
    path: str | Path,
    *,
    config: dict,
    weights: dict[str, torch.Tensor],
    metrics: dict,
    versions: dict,
    files: dict[str, bytes] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write config.json, weights.safetensors, metrics.json, ``files`` (name -> bytes:
    logs, plots, out-of-fold predictions) and manifest.json to ``path``.

    An existing ``path`` is refused unless ``overwrite``; with ``overwrite`` the old
    bundle is replaced only after the new one is complete. A full disk is a BundleError
    saying how much space the bundle needs and how much is free; the old bundle stays.
    """
    target = Path(path)
    sweep_stale(target)  # a version a killed write set aside comes back first
    if target.exists() and not overwrite:
        raise BundleError(
            "already exists; choose another path or pass overwrite=True (--overwrite)",
            path=str(target),
        )
    if target.exists() and not target.is_dir():
        raise BundleError("exists and is not a directory", path=str(target))
    for name in files or {}:
        if (
            name in (CONFIG, WEIGHTS, METRICS, "manifest.json")
            or "/" in name
            or name.startswith(".")
        ):
            raise ValueError(f"{name!r} cannot be an extra bundle file")
    tensors = {name: t.detach().cpu().contiguous() for name, t in weights.items()}
    try:
        with atomic_directory(target) as staging:
            _dump(staging / CONFIG, config)
            save_file(tensors, str(staging / WEIGHTS), metadata={"format": "pt"})
            _dump(staging / METRICS, metrics)
            for name, content in (files or {}).items():
                (staging / name).write_bytes(content)
            write_manifest(staging, versions=versions)
    except (OSError, SafetensorError) as error:  # a full disk, a permission: the user's to fix
        # (safetensors reports its own I/O errors as SafetensorError, not OSError)
        sizes = [sum(t.nbytes for t in tensors.values()), *map(len, (files or {}).values())]
        sizes += [len(json.dumps(part, default=str)) for part in (config, metrics, versions)]
        needed = sum(-(-size // _BLOCK) * _BLOCK for size in sizes)  # whole blocks on disk
        message = write_failure(error, place=target.parent, needed=needed, what="the bundle")
        raise BundleError(message, path=str(target)) from error
    return target


def write_failure(error: BaseException, *, place: Path, needed: int, what: str) -> str:
    """One line on a failed write of ``what`` (about ``needed`` bytes) under ``place``: for a
    full disk, the space needed and the space free there; otherwise the system's words."""
    said = f"could not write {what}: {error}"
    if not _out_of_space(error):
        return said
    existing = next((p for p in (place, *place.parents) if p.exists()), Path("."))
    try:
        free = f"{_size(shutil.disk_usage(existing).free)} free there"
    except OSError:
        free = "free space there unknown"
    return f"{said}; it needs about {_size(needed)}, {free}: free some space or write elsewhere"


def _out_of_space(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(error)  # SafetensorError: "I/O error: No space left on device (os error 28)"
    return any(f"(os error {number})" in text for number in (errno.ENOSPC, errno.EDQUOT)) or (
        "No space left on device" in text
    )


def _size(count: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """A private directory beside ``target`` to build its next version in; when the block
    ends without an error it becomes ``target`` (see :func:`publish`), otherwise it is
    removed and ``target`` is left as it was. What killed writers of ``target`` left
    beside it is swept away first (:func:`sweep_stale`)."""
    sweep_stale(Path(target))
    staging = staging_directory(Path(target))
    try:
        yield staging
        publish(staging, Path(target))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def staging_directory(target: Path) -> Path:
    """A new private directory beside ``target`` to build its next version in, named after
    this process (so that a later writer can tell whether its writer still runs)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return _sibling(target, _PARTIAL, create=True)


def publish(staging: Path, target: Path) -> None:
    """Make the complete ``staging`` directory ``target``: readable, synced, then renamed
    into place. An existing ``target`` is set aside first (put back if the second rename
    fails), renamed once more to mark it garbage, and only then deleted: a kill at any
    point leaves ``target`` whole, or its old version set aside where the next write puts
    it back. Bundles, compare outputs and ONNX exports are all replaced this way."""
    _make_readable(staging)
    for file in staging.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    if not target.exists():
        os.replace(staging, target)
        return
    aside = _sibling(target, _OLD)
    os.replace(target, aside)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(aside, target)
        raise
    garbage = _sibling(target, _DELETING)
    with contextlib.suppress(OSError):  # the new version is in place; a leftover is swept later
        os.replace(aside, garbage)
        aside = garbage
    shutil.rmtree(aside, ignore_errors=True)


def sweep_stale(target: Path) -> list[str]:
    """Remove what writers of ``target`` that no longer run left beside it (staging
    directories, old versions half deleted, a lock file), with a warning; returns their
    names.

    A killed :func:`publish` may have set the old version aside without putting the new
    one in its place: when ``target`` is missing, that old version is renamed back.
    Siblings of a live writer (this host, its PID running) or of another host are kept.
    """
    target = Path(target)
    stale = [path for path, kind in _siblings(target) if kind]
    restored = None
    old = [path for path in stale if path.name.endswith(f".{_OLD}")]
    if old and not target.exists() and not target.is_symlink():
        restored = max(old, key=lambda path: path.stat().st_mtime)
        os.replace(restored, target)
        stale.remove(restored)
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    removed = stale + ([lock_path(target)] if clear_stale(target) else [])  # a killed fit's
    if restored is None and not removed:
        return []
    said = []
    if restored is not None:
        said.append(f"put back {target}, which an interrupted write had set aside")
    if removed:
        names = ", ".join(path.name for path in removed)
        said.append(f"removed {names}, left beside {target} by an interrupted write")
    warnings.warn("; ".join(said), UserWarning, stacklevel=2)
    return [path.name for path in removed]


def _siblings(target: Path) -> Iterator[tuple[Path, str | None]]:
    """``(path, kind)`` for every sibling a writer of ``target`` made; ``kind`` is None for
    one whose writer may still be running."""
    pattern = re.compile(
        rf"\.{re.escape(target.name)}\.(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[a-z0-9_]+"
        rf"\.(?P<kind>{_PARTIAL}|{_OLD}|{_DELETING})"
    )
    try:
        entries = list(target.parent.iterdir())
    except OSError:  # no parent yet: nothing was left there
        return
    for path in entries:
        match = pattern.fullmatch(path.name)
        if match:
            dead = match["host"] == _HOST and not process_alive(int(match["pid"]))
            yield path, match["kind"] if dead else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (signal 0 checks, sends nothing)."""
    if os.name != "posix":  # Windows' os.kill would end the process: never sweep there
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):  # another user's process (EPERM), or no way to tell
        return True
    return True


def _sibling(target: Path, kind: str, *, create: bool = False, pid: int | None = None) -> Path:
    """A free name beside ``target`` for a ``kind`` sibling of process ``pid`` (this one by
    default), a new private directory with ``create``."""
    owner = f"{_HOST}-{os.getpid() if pid is None else pid}"
    made = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.{owner}-", suffix=f".{kind}", dir=target.parent)
    )
    if not create:
        made.rmdir()  # only a free name is wanted: os.replace moves a directory onto it
    return made


def _make_readable(directory: Path) -> None:
    """mkdtemp makes a private (0700) directory; a bundle gets the usual umask modes,
    so that another account (a server's, say) can read it."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for file in directory.iterdir():
        file.chmod(0o666 & ~umask)

"""Write a bundle atomically: temporary sibling directory, then rename.

:func:`atomic_directory` is the one way a finished directory is put in place: bundles,
re-rendered reports, compare outputs and ONNX exports are all built in a private
sibling and renamed over the target only when complete, so a crash leaves the old
directory whole and never half of a new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from deepstrata.bundle.manifest import write_manifest
from deepstrata.errors import BundleError

CONFIG, WEIGHTS, METRICS = "config.json", "weights.safetensors", "metrics.json"


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
    bundle is replaced only after the new one is complete.
    """
    target = Path(path)
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
    try:
        with atomic_directory(target) as staging:
            _dump(staging / CONFIG, config)
            tensors = {name: t.detach().cpu().contiguous() for name, t in weights.items()}
            save_file(tensors, str(staging / WEIGHTS), metadata={"format": "pt"})
            _dump(staging / METRICS, metrics)
            for name, content in (files or {}).items():
                (staging / name).write_bytes(content)
            write_manifest(staging, versions=versions)
    except OSError as error:  # a full disk, a permission: the user's to fix, not a bug
        raise BundleError(f"could not write the bundle: {error}", path=str(target)) from error
    return target


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """A private directory beside ``target`` to build its next version in; when the block
    ends without an error it becomes ``target`` (see :func:`publish`), otherwise it is
    removed and ``target`` is left as it was."""
    staging = staging_directory(Path(target))
    try:
        yield staging
        publish(staging, Path(target))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def staging_directory(target: Path) -> Path:
    """A new private directory beside ``target`` to build its next version in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))


def publish(staging: Path, target: Path) -> None:
    """Make the complete ``staging`` directory ``target``: readable, synced, then renamed
    into place. An existing ``target`` is set aside first and deleted only once the new
    one is in place (put back if that move fails). Bundles, compare outputs and ONNX
    exports are all replaced this way."""
    _make_readable(staging)
    for file in staging.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    if not target.exists():
        os.replace(staging, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    aside.rmdir()  # only a free name beside the target is wanted
    os.replace(target, aside)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _make_readable(directory: Path) -> None:
    """mkdtemp makes a private (0700) directory; a bundle gets the usual umask modes,
    so that another account (a server's, say) can read it."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for file in directory.iterdir():
        file.chmod(0o666 & ~umask)

"""manifest.json: the sha256 and size of every other file in the bundle."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from deepstrata.errors import BundleError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, *, versions: dict) -> dict:
    files = {
        path.relative_to(directory).as_posix(): {
            "sha256": sha256_of(path),
            "bytes": path.stat().st_size,
        }
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    manifest = {"format_version": FORMAT_VERSION, "versions": versions, "files": files}
    (directory / MANIFEST).write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return manifest


def verify_manifest(directory: Path) -> dict:
    """Check that the files present are exactly the files listed, byte for byte."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(
            "not a bundle directory (it does not exist or is a file)", path=str(directory)
        )
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(
            f"{MANIFEST} is missing: this is not a deepstrata bundle", path=str(directory)
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed = manifest["files"]
        version = manifest["format_version"]
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"{MANIFEST} is unreadable: {error}", path=str(directory)) from error
    if version != FORMAT_VERSION:
        raise BundleError(
            f"bundle format {version} is not supported (this deepstrata reads format {FORMAT_VERSION})",
            path=str(directory),
        )
    present = {
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.name != MANIFEST and (path.is_file() or path.is_symlink())
    }
    extra = sorted(present - set(listed))
    if extra:
        raise BundleError(
            f"unexpected file {extra[0]!r} is not in the manifest; refusing to load a bundle "
            "that has been added to",
            path=str(directory),
        )
    for name, entry in sorted(listed.items()):
        path = directory / name
        if not path.is_file() or path.is_symlink():
            raise BundleError(
                f"file {name!r} listed in the manifest is missing", path=str(directory)
            )
        if path.stat().st_size != entry["bytes"] or sha256_of(path) != entry["sha256"]:
            raise BundleError(
                f"file {name!r} has changed since the bundle was written (sha256 mismatch)",
                path=str(directory),
            )
    return manifest

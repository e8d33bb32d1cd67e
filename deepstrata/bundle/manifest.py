"""manifest.json: the sha256 and size of every other file in the bundle.

Loading trusts nothing a bundle says before checking it: the manifest's shape, every
name it lists (a plain file inside the bundle: no absolute path, no ``..``, no symlink)
and every file's bytes. A malformed bundle fails with one :class:`BundleError` line,
never a traceback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

from deepstrata.errors import BundleError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Far deeper than any file deepstrata writes (config.json is about 7 levels), far
# shallower than Python's recursion limit: deeper JSON would crash what walks it later.
MAX_JSON_DEPTH = 100


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


def read_json(path: Path, *, bundle: Path) -> dict:
    """The JSON object in the bundle file ``path``: a BundleError naming the file when it
    is not valid UTF-8 JSON, not an object, or nested deeper than :data:`MAX_JSON_DEPTH`."""
    name = path.relative_to(bundle).as_posix() if path.is_relative_to(bundle) else path.name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:  # the parser itself gives up on very deep nesting
        data = None
        deep = True
    except ValueError as error:  # UnicodeDecodeError is a ValueError too
        raise BundleError(f"{name} is not valid JSON: {error}", path=str(bundle)) from None
    else:
        deep = _depth_exceeds(data, MAX_JSON_DEPTH)
    if deep:
        raise BundleError(
            f"{name} is nested more than {MAX_JSON_DEPTH} levels deep; deepstrata never "
            "writes such a file: the bundle was changed",
            path=str(bundle),
        )
    if not isinstance(data, dict):
        raise BundleError(
            f"{name} must hold a JSON object, found {_json_type(data)}", path=str(bundle)
        )
    return data


def verify_manifest(directory: Path) -> dict:
    """Check that the files present are exactly the files listed, byte for byte."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(
            "not a bundle directory (it does not exist or is a file)", path=str(directory)
        )
    manifest_path = directory / MANIFEST
    if manifest_path.is_symlink():
        raise BundleError(
            f"{MANIFEST} is a symlink; a bundle holds plain files", path=str(directory)
        )
    if not manifest_path.is_file():
        raise BundleError(
            f"{MANIFEST} is missing: this is not a deepstrata bundle", path=str(directory)
        )
    manifest = read_json(manifest_path, bundle=directory)
    listed = _listed_files(manifest, directory)
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
        path = _inside(directory, name)
        if path.stat().st_size != entry["bytes"] or sha256_of(path) != entry["sha256"]:
            raise BundleError(
                f"file {name!r} has changed since the bundle was written (sha256 mismatch)",
                path=str(directory),
            )
    return manifest


def _listed_files(manifest: dict, directory: Path) -> dict[str, dict]:
    """The manifest's ``files``, each entry checked for shape; its format version checked."""
    version = manifest.get("format_version")
    if "files" not in manifest or "format_version" not in manifest:
        missing = sorted({"files", "format_version"} - set(manifest))
        raise BundleError(f"{MANIFEST} is unreadable: {missing} missing", path=str(directory))
    if version != FORMAT_VERSION:
        raise BundleError(
            f"bundle format {version!r} is not supported (this deepstrata reads format "
            f"{FORMAT_VERSION})",
            path=str(directory),
        )
    listed = manifest["files"]
    if not isinstance(listed, dict):
        raise BundleError(
            f"{MANIFEST}: 'files' must map names to entries, found {_json_type(listed)}",
            path=str(directory),
        )
    for name, entry in listed.items():
        good = (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("bytes"), int)
            and not isinstance(entry.get("bytes"), bool)
        )
        if not good:
            raise BundleError(
                f"{MANIFEST}: the entry of {name!r} must be an object with 'sha256' (a string) "
                f"and 'bytes' (an integer), found {json.dumps(entry)[:80]}",
                path=str(directory),
            )
    return listed


def _inside(directory: Path, name: str) -> Path:
    """``directory / name`` for a name the manifest lists, after checking that it is a
    plain file inside the bundle: a manifest is data, and may have been written to make
    a loader read (and trust) a file elsewhere."""
    parts = PurePosixPath(name).parts
    if (
        not name
        or PurePosixPath(name).is_absolute()
        or "\\" in name
        or any(part in ("", ".", "..") for part in parts)
        or name != "/".join(parts)
    ):
        raise BundleError(
            f"the manifest lists {name!r}, which is not a plain name inside the bundle "
            "(absolute, or with '..'); refusing to read outside the bundle",
            path=str(directory),
        )
    path = directory / name
    if path.is_symlink():
        raise BundleError(
            f"file {name!r} listed in the manifest is a symlink; a bundle holds plain files",
            path=str(directory),
        )
    try:
        outside = not path.resolve().is_relative_to(directory.resolve())
    except (OSError, RuntimeError):  # a symlink loop on the way
        outside = True
    if outside:
        raise BundleError(
            f"file {name!r} listed in the manifest resolves outside the bundle (through a "
            "symlinked folder); refusing to read it",
            path=str(directory),
        )
    if not path.is_file():
        raise BundleError(f"file {name!r} listed in the manifest is missing", path=str(directory))
    return path


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether JSON ``data`` nests deeper than ``limit`` (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "null")

"""A bundle: a directory of plain files (JSON + safetensors), hashed in a manifest.

``write_bundle`` builds it in a temporary sibling directory and renames it into
place, so a crash never leaves half a bundle (what a killed writer left beside it is
swept at the next write). ``read_bundle`` checks the manifest (no missing, extra or
changed file, no name outside the bundle, no symlink) before parsing anything, and
refuses malformed files and non-finite weights, each with one ``BundleError``. No file
in a bundle is ever unpickled; there is no code path that could. :mod:`.lock` keeps
one writer per bundle path and run directory.
"""

from deepstrata.bundle.manifest import FORMAT_VERSION, verify_manifest, write_manifest
from deepstrata.bundle.read import read_bundle
from deepstrata.bundle.write import write_bundle

__all__ = ["FORMAT_VERSION", "read_bundle", "verify_manifest", "write_bundle", "write_manifest"]

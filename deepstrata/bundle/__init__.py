"""A bundle: a directory of plain files (JSON + safetensors), hashed in a manifest.

``write_bundle`` builds it in a temporary sibling directory and renames it into
place, so a crash never leaves half a bundle. ``read_bundle`` checks the
manifest (no missing, extra or changed file) before parsing anything. No file
in a bundle is ever unpickled; there is no code path that could.
"""

from deepstrata.bundle.manifest import FORMAT_VERSION, verify_manifest, write_manifest
from deepstrata.bundle.read import read_bundle
from deepstrata.bundle.write import write_bundle

__all__ = ["FORMAT_VERSION", "read_bundle", "verify_manifest", "write_bundle", "write_manifest"]

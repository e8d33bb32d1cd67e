"""Read a bundle: verify the manifest first, then parse JSON and safetensors only."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from deepstrata.bundle.manifest import verify_manifest
from deepstrata.bundle.write import CONFIG, METRICS, WEIGHTS
from deepstrata.errors import BundleError


def read_bundle(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, weights, metrics) of a verified bundle."""
    directory = Path(path)
    verify_manifest(directory)
    try:
        config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
        metrics = json.loads((directory / METRICS).read_text(encoding="utf-8"))
        weights = load_file(str(directory / WEIGHTS))
    except FileNotFoundError as error:
        raise BundleError(
            f"required file {Path(error.filename).name!r} is missing", path=str(directory)
        ) from error
    except (ValueError, OSError) as error:
        raise BundleError(f"unreadable bundle file: {error}", path=str(directory)) from error
    return config, weights, metrics

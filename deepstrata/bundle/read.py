"""Read a bundle: verify the manifest first, then parse JSON and safetensors only."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from deepstrata.bundle.manifest import read_json, verify_manifest
from deepstrata.bundle.write import CONFIG, METRICS, WEIGHTS
from deepstrata.errors import BundleError


def read_bundle(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, weights, metrics) of a verified bundle; every floating-point weight finite."""
    directory = Path(path)
    verify_manifest(directory)
    for name in (CONFIG, METRICS, WEIGHTS):  # listed by the manifest, or it would be extra
        if not (directory / name).is_file():
            raise BundleError(f"required file {name!r} is missing", path=str(directory))
    config = read_json(directory / CONFIG, bundle=directory)
    metrics = read_json(directory / METRICS, bundle=directory)
    try:
        weights = load_file(str(directory / WEIGHTS))
    except (SafetensorError, ValueError, OSError) as error:
        # safetensors checks the header before it allocates: a header claiming a 100 GB
        # tensor or 2**63 header bytes is refused here, cheaply
        raise BundleError(
            f"{WEIGHTS} is not a valid safetensors file: {error}", path=str(directory)
        ) from None
    check_finite(weights, path=directory)
    return config, weights, metrics


def check_finite(weights: dict[str, torch.Tensor], *, path: Path) -> None:
    """A BundleError naming the first floating-point tensor that holds NaN or infinity:
    such weights predict one class for every row, silently (a diverged run, or a changed
    bundle re-hashed)."""
    for name, tensor in weights.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
            torch.isfinite(tensor).all()
        ):
            raise BundleError(
                f"tensor {name!r} in {WEIGHTS} holds NaN or infinite values; a model's "
                "weights are finite: refit, or use the bundle as it was written",
                path=str(path),
            )


def bundle_kind(path: str | Path) -> str | None:
    """The ``kind`` a bundle's config.json names (``forecast``, ``anomaly``; None for a
    model): a quick look that picks the loader, which then verifies everything. A file that
    cannot be read as a bundle's JSON (missing, malformed, nested beyond reason) is None,
    so the model loader is the one to say what is wrong."""
    directory = Path(path)
    try:
        config = read_json(directory / CONFIG, bundle=directory)
    except (BundleError, OSError):
        return None
    kind = config.get("kind")
    return kind if isinstance(kind, str) else None

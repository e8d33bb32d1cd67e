"""An anomaly detector's bundle: written by the one atomic writer, read after its manifest.

config.json says ``"kind": "anomaly"`` (what ``predict`` dispatches on) and holds the
preprocessors' states, the extractor's options, the pretrained networks' identities, the
autoencoder's sizes and the threshold; weights.safetensors holds the autoencoder's
weights and the feature scaling (``scale.mean``, ``scale.std``); metrics.json the score
distribution, the training history and, with a label, both detectors' PR-AUC;
scores.csv the training rows' scores. JSON and safetensors only: no pickle.

A series detector (``anomalies --time``) says ``"detector": "series"`` beside the kind and
keeps instead the forecasters' spec and architecture, each series' fold times and
calibration, and the two fold networks' weights (``early.*``, ``late.*``); see
:meth:`deepstrata.anomaly.series.SeriesDetector.bundle_parts`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deepstrata.anomaly.detector import Autoencoder, Detector
from deepstrata.anomaly.series import SeriesDetector
from deepstrata.bundle import read_bundle, write_bundle
from deepstrata.errors import BundleError

KIND = "anomaly"
FORMAT = 1
SCORES = "scores.csv"


def save_detector(
    path: str | Path,
    detector: Detector,
    *,
    metrics: dict,
    files: dict[str, bytes] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``detector`` as a bundle at ``path`` (atomically; an existing path is refused
    unless ``overwrite``)."""
    from deepstrata.bundle.format import versions
    from deepstrata.model.member import preprocessor_states

    if isinstance(detector, SeriesDetector):
        parts, weights = detector.bundle_parts()
    else:
        parts = {
            "preprocessors": preprocessor_states(detector.preprocessors),
            "options": detector.options,
            "pretrained": detector.pretrained,
            "autoencoder": detector.network.sizes(),
            "threshold": detector.threshold,
        }
        weights = {f"autoencoder.{k}": v for k, v in detector.network.state_dict().items()}
        weights["scale.mean"] = torch.from_numpy(detector.mean)
        weights["scale.std"] = torch.from_numpy(detector.std)
    config = {"kind": KIND, "anomaly_format": FORMAT, **parts, "versions": versions()}
    return write_bundle(
        path,
        config=config,
        weights=weights,
        metrics=metrics,
        versions=versions(),
        files=files,
        overwrite=overwrite,
    )


def is_anomaly_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a bundle directory whose config.json says ``kind: anomaly``
    (a quick look; loading verifies the manifest before trusting anything)."""
    from deepstrata.bundle.read import bundle_kind

    return bundle_kind(path) == KIND


def load_detector(path: str | Path) -> tuple[Detector | SeriesDetector, dict]:
    """(detector, metrics) of a verified anomaly bundle; a BundleError, one line, when it
    was changed, is malformed, or names pretrained weights other than the installed ones."""
    from deepstrata.model.member import preprocessors_from_states
    from deepstrata.pretrained.registry import get

    config, weights, metrics = read_bundle(path)
    try:
        if config.get("kind") != KIND:
            raise ValueError(f"kind is {config.get('kind')!r}, not {KIND!r}")
        if config.get("detector") == "series":
            return SeriesDetector.from_bundle(config, weights), metrics
        for recorded in config["pretrained"]:
            get(recorded["name"]).check(recorded)
        network = Autoencoder(**config["autoencoder"])
        prefix = "autoencoder."
        network.load_state_dict(
            {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)},
            strict=True,
        )
        if len(weights) != len(network.state_dict()) + 2:
            raise ValueError("weights.safetensors holds tensors the detector does not use")
        detector = Detector(
            preprocessors=preprocessors_from_states(config["preprocessors"]),
            options=config["options"],
            pretrained=config["pretrained"],
        ).fitted(
            mean=weights["scale.mean"].numpy(),
            std=weights["scale.std"].numpy(),
            network=network,
            threshold=float(config["threshold"]),
        )
        if detector.extractor.out_dim != network.in_dim or len(detector.mean) != network.in_dim:
            raise ValueError(
                f"the features are {detector.extractor.out_dim} wide, the autoencoder takes "
                f"{network.in_dim}"
            )
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise BundleError(
            f"config.json and weights do not describe an anomaly detector: {error}",
            path=str(path),
        ) from error
    return detector, metrics


def score_rows(path: str | Path, data, *, keep: list[str] | tuple = ()):
    """What ``deepstrata predict`` writes for an anomaly bundle: ``keep`` columns, then
    row (1-based), (a series detector: the series columns and the time,) score and
    flagged for every row of ``data``."""
    from deepstrata.data.sources import read_table

    detector, _ = load_detector(path)
    return detector.score_frame(read_table(data), keep=keep)

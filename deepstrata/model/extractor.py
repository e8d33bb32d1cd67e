"""Fixed features for a classical model (``--strategy features``, ``--ensemble``'s other side).

A row becomes one vector: each kind's block side by side, as the kind's entry says
(:attr:`deepstrata.kinds.Kind.build_features`): numbers, booleans and dates as their
preprocessors scaled them, categories one-hot, image and text columns through their
pretrained networks (EfficientNet-Lite0, all-MiniLM-L6-v2). The pretrained networks run
once per distinct input and their embeddings are cached on disk
(:mod:`deepstrata.pretrained.cache`), so another head, a refit or another fold reads
instead of computing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepstrata.encoders.pretrained import PretrainedEncoder
from deepstrata.kinds import KINDS, group_by_kind
from deepstrata.preprocess.base import Preprocessor


class FeatureExtractor(nn.Module):
    """``{kind: block} -> (B, D)``: every kind's vector, side by side (no trainable weights)."""

    def __init__(self, encoders: dict[str, nn.Module]) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.out_dim = sum(encoder.out_dim for encoder in encoders.values())
        self.requires_grad_(False)
        self.eval()

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([enc(inputs[kind]).float() for kind, enc in self.encoders.items()], dim=1)

    def extract(
        self, inputs: dict[str, torch.Tensor], *, cache: bool, report=lambda line: None
    ) -> tuple[np.ndarray, dict]:
        """``(N, D)`` float32 features; pretrained kinds go through the embedding cache when
        ``cache``, and their backbones through ONNX Runtime where it is installed and matches
        torch (:mod:`deepstrata.pretrained.runtime`). Returns the features and, per pretrained
        kind, what was cached/computed and by which engine (``engines``: per input shape)."""
        from deepstrata.pretrained.cache import embed, encoder_key
        from deepstrata.pretrained.runtime import BackboneRuntime

        blocks, counts = [], {}
        with torch.inference_mode():
            for kind, encoder in self.encoders.items():
                block = inputs[kind]
                if not isinstance(encoder, PretrainedEncoder):
                    blocks.append(encoder(block).float().numpy())
                    continue
                description = describe(encoder)
                key = encoder_key(description) if cache else None
                runtime = BackboneRuntime(
                    encoder.backbone,
                    network=encoder.network,
                    sha256=description["sha256"],
                    report=report,
                )
                lengths = encoder.lengths(block)
                encoder.runtime = runtime
                try:
                    vectors, counts[kind] = embed(
                        encoder,
                        block,
                        key=key,
                        report=report,
                        what=f"{kind} rows",
                        expect=runtime.expect,
                        lengths=lengths.numpy() if lengths is not None else None,
                    )
                finally:
                    encoder.runtime = None
                if runtime.engines:
                    counts[kind]["engines"] = runtime.engines
                blocks.append(vectors)
        return np.concatenate(blocks, axis=1), counts


def describe(encoder: PretrainedEncoder) -> dict:
    """What decides a pretrained encoder's output for given input bytes: the cache's key."""
    from deepstrata.pretrained.registry import get

    return {
        "name": encoder.network,
        "sha256": get(encoder.network).identity()["sha256"],
        "widths": encoder.widths,
        "prepare": [repr(module) for module in encoder.prepare],
    }


def build_extractor(preprocessors: dict[str, Preprocessor], options: dict) -> FeatureExtractor:
    """Each kind's features block (see the module docstring); ``options`` say which
    pretrained network a kind uses. A kind without one is a ValueError: callers check
    first (:func:`deepstrata.recipes.features.fixed_feature_networks`)."""
    encoders: dict[str, nn.Module] = {}
    for kind, names in group_by_kind(preprocessors).items():
        build = KINDS[kind].build_features
        if build is None:
            raise ValueError(f"the {kind} kind has no fixed features")
        encoders[kind] = build([preprocessors[name] for name in names], options)
    return FeatureExtractor(encoders)

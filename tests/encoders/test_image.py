"""The image encoder: per-column split, normalisation, a ResNet per column, options."""

import pandas as pd
import pytest
import torch
from PIL import Image

from deepstrata.data.sources import read_table
from deepstrata.encoders.image import ImageEncoder, build_image_encoder, parse_augment
from deepstrata.preprocess.image import ImagePreprocessor

SMALL = {"width": 8, "depth": 2}  # out_dim 16 per column
SMALL_OPTIONS = {"image_width": 8, "image_depth": 2}


def pixels(batch, size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3 * size * size), generator=generator, dtype=torch.uint8)


def two_columns(**options):
    encoder = ImageEncoder(
        sizes=[8, 12], means=[[0.4, 0.5, 0.6]] * 2, stds=[[0.2, 0.25, 0.3]] * 2, **SMALL, **options
    )
    return encoder, torch.cat([pixels(5, 8), pixels(5, 12, seed=1)], dim=1)


def test_output_shape_and_gradients_reach_every_resnet():
    torch.manual_seed(0)
    encoder, block = two_columns()
    out = encoder.train()(block)
    assert encoder.out_dim == 2 * 16 and out.shape == (5, 32)
    out.square().sum().backward()
    for column in encoder.columns:
        grads = [p.grad for p in column.resnet.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_each_column_is_its_resnet_on_normalised_pixels():
    encoder, block = two_columns()
    encoder.eval()
    second = block[:, 3 * 8 * 8 :].reshape(5, 3, 12, 12).double() / 255  # plain-PyTorch reference
    mean = torch.tensor([0.4, 0.5, 0.6], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3], dtype=torch.float64).view(1, 3, 1, 1)
    expected = encoder.columns[1].resnet(((second - mean) / std).float())
    torch.testing.assert_close(encoder(block)[:, 16:], expected, atol=1e-5, rtol=1e-5)


def test_augmentation_only_in_training():
    encoder, block = two_columns()
    torch.manual_seed(1)
    assert torch.equal(encoder.eval()(block), encoder(block))
    assert not torch.equal(encoder.train()(block), encoder.eval()(block))
    quiet, _ = two_columns(augment=())
    quiet.load_state_dict(encoder.state_dict())
    assert torch.equal(quiet.train()(block), encoder.eval()(block))


def test_statistics_are_buffers_not_weights():
    encoder, _ = two_columns()
    names = dict(encoder.named_buffers())
    assert "columns.0.mean" in names and "columns.1.std" in names
    assert not any(key.endswith((".mean", ".std")) for key in encoder.state_dict())
    assert encoder.to(torch.float64).columns[0].mean.dtype == torch.float64  # they move with .to


def test_builder_reads_the_options():
    pre = ImagePreprocessor(size=8)
    encoder = build_image_encoder([pre, pre], {"image_width": 4, "image_depth": 3})
    assert encoder.out_dim == 2 * 16
    assert encoder.columns[0].augment.transforms == ("crop", "flip", "rotate", "color")
    off = build_image_encoder([pre], {"image_augment": "none"})
    assert off.out_dim == 128 and off.columns[0].augment.transforms == ()
    assert parse_augment("") == () and parse_augment(" Flip , crop") == ("flip", "crop")
    with pytest.raises(ValueError, match="unknown image augmentation 'blur'"):
        parse_augment("crop,blur")


def test_a_missing_image_gives_a_finite_output(tmp_path):
    Image.new("RGB", (10, 10), (200, 30, 60)).save(tmp_path / "a.png")
    Image.new("RGB", (10, 10), (20, 90, 160)).save(tmp_path / "b.png")
    pd.DataFrame({"photo": ["a.png", "b.png", None]}).to_csv(tmp_path / "t.csv", index=False)
    table = read_table(tmp_path / "t.csv")
    column = table.frame["photo"]
    pre = ImagePreprocessor(size=8).fit(column, table)
    encoder = build_image_encoder([pre], SMALL_OPTIONS)
    out = encoder.eval()(torch.from_numpy(pre.transform(column, table)))
    assert out.shape == (3, encoder.out_dim) and torch.isfinite(out).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_and_predicts_on_cuda_like_on_the_cpu():
    torch.manual_seed(2)
    encoder, block = two_columns()
    expected = encoder.eval()(block)
    encoder.cuda()
    torch.testing.assert_close(encoder(block.cuda()).cpu(), expected, atol=1e-4, rtol=1e-4)
    out = encoder.train()(block.cuda())
    out.square().sum().backward()
    assert out.device.type == "cuda" and encoder.columns[0].resnet.stem[0].weight.grad is not None

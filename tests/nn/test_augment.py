"""Batched image augmentation: identity in eval, random per sample in training, reproducible."""

import math

import pytest
import torch

from deepstrata.nn.augment import TRANSFORMS, ImageAugment


def images(batch=8, height=12, width=12, seed=0):
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def test_identity_in_eval_mode():
    augment = ImageAugment().eval()
    x = images()
    assert torch.equal(augment(x), x)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_each_transform_changes_every_image_in_training_keeping_the_shape(transform):
    torch.manual_seed(0)
    augment = ImageAugment(transforms=(transform,), flip_probability=1.0).train()
    x = images(height=10, width=14)
    y = augment(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert ((y - x).abs().amax(dim=(1, 2, 3)) > 1e-3).all()
    assert y.min() >= 0 and y.max() <= 1


def test_flip_only_is_torch_flip_exactly_for_the_flipped_samples():
    torch.manual_seed(1)
    x = images(batch=16)
    y = ImageAugment(transforms=("flip",)).train()(x)
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(16)]
    kept = [torch.equal(y[i], x[i]) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)


def test_the_affine_path_agrees_with_plain_flips_when_the_crop_is_the_whole_image():
    # Crop of the full image, flip always: the one-resample path must be an exact mirror.
    torch.manual_seed(2)
    augment = ImageAugment(
        transforms=("crop", "flip"), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_probability=1.0
    )
    x = images(height=9, width=13)
    torch.testing.assert_close(augment.train()(x), x.flip(-1), atol=1e-5, rtol=0)


def test_rotation_matrices_rotate_in_pixels_and_crop_boxes_stay_inside():
    torch.manual_seed(3)
    height, width = 8, 16
    rotate = ImageAugment(transforms=("rotate",), degrees=30.0)
    matrix = rotate.sample_matrices(64, height=height, width=width, like=torch.zeros(1))
    pixels = torch.diag(torch.tensor([width / 2, height / 2]))  # [-1, 1] -> pixel units
    in_pixels = pixels @ matrix[:, :, :2] @ pixels.inverse()  # (B, 2, 2)
    eye = torch.eye(2).expand(64, 2, 2)
    torch.testing.assert_close(in_pixels @ in_pixels.transpose(1, 2), eye)  # orthonormal
    angles = torch.atan2(in_pixels[:, 1, 0], in_pixels[:, 0, 0])
    assert angles.abs().max() <= math.radians(30) + 1e-6

    crop = ImageAugment(transforms=("crop",), scale=(0.3, 1.0))
    matrix = crop.sample_matrices(256, height=height, width=width, like=torch.zeros(1))
    reach = matrix[:, :, :2].abs().sum(-1) + matrix[:, :, 2].abs()  # farthest corner, per axis
    assert (reach <= 1 + 1e-6).all()
    area = matrix[:, 0, 0] * matrix[:, 1, 1]
    assert area.min() >= 0.3 - 1e-6 and area.max() <= 1 + 1e-6


def test_colour_jitter_keeps_grey_grey_under_saturation():
    torch.manual_seed(4)
    grey = images(batch=4)[:, :1].expand(4, 3, 12, 12)
    out = ImageAugment(transforms=("color",), brightness=0.0, contrast=0.0).train()(grey)
    torch.testing.assert_close(out, grey)


def test_deterministic_under_manual_seed():
    augment = ImageAugment().train()
    x = images()
    torch.manual_seed(5)
    first = augment(x)
    torch.manual_seed(5)
    assert torch.equal(augment(x), first)
    assert not torch.equal(augment(x), first)  # the next call draws new randomness


def test_unknown_transform_is_refused():
    with pytest.raises(ValueError, match="unknown transforms"):
        ImageAugment(transforms=("crop", "blur"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_with_the_cuda_generator():
    torch.manual_seed(6)
    x = images().cuda()
    y = ImageAugment().train()(x)
    assert y.device == x.device and y.shape == x.shape
    torch.manual_seed(6)
    assert torch.equal(ImageAugment().train()(x), y)

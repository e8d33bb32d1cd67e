"""Image augmentation on the batch, on the batch's device: new views every epoch, no DataLoader.

The trainer slices pre-built tensors into batches, so augmentation happens in the
encoder's forward pass. The geometric transforms (random resized crop, horizontal
flip, small rotation) are composed into one affine matrix per sample and applied
with one ``grid_sample``: one resample blurs once, where four in a row would blur
four times. Colour jitter (brightness, contrast, saturation) follows, per sample.

Randomness comes only from torch's global generator on the input's device, so a
checkpoint that saves the RNG state resumes the same augmentations.

>>> augment = ImageAugment(transforms=("flip",)).eval()
>>> x = torch.rand(2, 3, 8, 8)
>>> bool(torch.equal(augment(x), x))  # identity outside training
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

TRANSFORMS = ("crop", "flip", "rotate", "color")
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grey, as Pillow's convert("L")


class ImageAugment(nn.Module):
    """``(B, 3, H, W)`` float in 0..1 -> the same shape, random per sample; identity in eval.

    ``transforms``: any of ``"crop"`` (a random crop covering ``scale`` of the area
    with aspect ratio in ``ratio``, stretched back to H x W), ``"flip"``
    (horizontal, with ``flip_probability``), ``"rotate"`` (uniform in
    ``±degrees``), ``"color"`` (brightness, contrast and saturation factors
    uniform in ``1 ± magnitude``). Pixels that a crop or rotation brings in from
    outside the image are reflected from the inside, not black.
    """

    def __init__(
        self,
        *,
        transforms: Sequence[str] = TRANSFORMS,
        scale: tuple[float, float] = (0.6, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        degrees: float = 10.0,
        flip_probability: float = 0.5,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
    ) -> None:
        super().__init__()
        unknown = set(transforms) - set(TRANSFORMS)
        if unknown:
            raise ValueError(f"unknown transforms {sorted(unknown)}; expected some of {TRANSFORMS}")
        if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"need 0 < scale <= 1 and 0 < ratio, got scale={scale}, ratio={ratio}")
        self.transforms = tuple(t for t in TRANSFORMS if t in transforms)
        self.scale, self.ratio, self.degrees = scale, ratio, degrees
        self.flip_probability = flip_probability
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        geometric = [t for t in self.transforms if t != "color"]
        if geometric == ["flip"]:
            x = self._flip_only(x)  # exact, and no resampling blur for nothing
        elif geometric:
            x = self._warp(x)
        if "color" in self.transforms:
            x = self._jitter(x)
        return x

    def extra_repr(self) -> str:
        return f"transforms={self.transforms}"

    def _flip_only(self, x: torch.Tensor) -> torch.Tensor:
        flipped = torch.rand(x.shape[0], device=x.device) < self.flip_probability  # (B,)
        return torch.where(flipped[:, None, None, None], x.flip(-1), x)

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.sample_matrices(x.shape[0], height=x.shape[2], width=x.shape[3], like=x)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )

    def sample_matrices(
        self, batch: int, *, height: int, width: int, like: torch.Tensor
    ) -> torch.Tensor:
        """``(B, 2, 3)``: for each sample, output -> input position in [-1, 1] coordinates.

        The composition crop @ rotate @ flip: an output pixel is flipped, rotated
        about the centre, then placed in the crop box.
        """
        device, dtype = like.device, like.dtype
        matrix = torch.eye(3, device=device, dtype=dtype).repeat(batch, 1, 1)  # (B, 3, 3)
        if "flip" in self.transforms:
            flipped = torch.rand(batch, device=device) < self.flip_probability
            matrix[:, 0, 0] = 1 - 2 * flipped.to(dtype)  # x -> -x
        if "rotate" in self.transforms:
            angle = (torch.rand(batch, device=device, dtype=dtype) * 2 - 1) * math.radians(
                self.degrees
            )
            cos, sin = angle.cos(), angle.sin()
            rotation = torch.zeros_like(matrix)
            # A rotation in pixels, written in [-1, 1] coordinates (which stretch
            # width and height differently when H != W).
            rotation[:, 0, 0], rotation[:, 0, 1] = cos, -sin * height / width
            rotation[:, 1, 0], rotation[:, 1, 1] = sin * width / height, cos
            rotation[:, 2, 2] = 1
            matrix = rotation @ matrix
        if "crop" in self.transforms:
            matrix = self._crop_boxes(batch, device=device, dtype=dtype) @ matrix
        return matrix[:, :2]

    def _crop_boxes(self, batch: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        low, high = self.scale
        area = low + (high - low) * torch.rand(batch, device=device, dtype=dtype)
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        ratio = torch.exp(
            log_low + (log_high - log_low) * torch.rand(batch, device=device, dtype=dtype)
        )
        box_width = torch.sqrt(area * ratio).clamp(max=1)  # fractions of the image
        box_height = torch.sqrt(area / ratio).clamp(max=1)
        # The box's centre anywhere that keeps the box inside the image.
        centre_x = (1 - box_width) * (torch.rand(batch, device=device, dtype=dtype) * 2 - 1)
        centre_y = (1 - box_height) * (torch.rand(batch, device=device, dtype=dtype) * 2 - 1)
        box = torch.zeros(batch, 3, 3, device=device, dtype=dtype)
        box[:, 0, 0], box[:, 0, 2] = box_width, centre_x
        box[:, 1, 1], box[:, 1, 2] = box_height, centre_y
        box[:, 2, 2] = 1
        return box

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]

        def factor(magnitude: float) -> torch.Tensor:  # (B, 1, 1, 1), uniform in 1 ± magnitude
            uniform = torch.rand(batch, 1, 1, 1, device=x.device, dtype=x.dtype)
            return 1 + magnitude * (uniform * 2 - 1)

        luma = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        x = (x * factor(self.brightness)).clamp(0, 1)
        grey_mean = (x * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)  # (B, 1, 1, 1)
        x = (grey_mean + (x - grey_mean) * factor(self.contrast)).clamp(0, 1)
        grey = (x * luma).sum(1, keepdim=True)  # (B, 1, H, W)
        return (grey + (x - grey) * factor(self.saturation)).clamp(0, 1)

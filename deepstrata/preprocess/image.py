"""Images: a column of file paths -> fixed-size RGB pixels, uint8, channel-major.

Each file is opened with Pillow, refused before its pixels are decoded if the
header announces more than ``max_pixels`` pixels (a decompression bomb), turned
upright by its EXIF orientation, converted to RGB (transparency composited on
white, 16-bit grey scaled to 8 bits), fully loaded (so a truncated file is an
error, never a half-grey image) and resized to ``size x size`` by one of three
policies:

- ``"crop"``: scale the shorter side to ``size``, cut the centre square;
- ``"pad"``: scale the longer side to ``size``, fill the rest with mid grey
  (128: close to the mean of most photos, so after normalisation the border is
  near zero, like the network's own zero padding);
- ``"squash"``: resize to the square, ignoring the aspect ratio.

Pixels stay uint8 until the encoder (4x less memory than float32 for the whole
table); the encoder divides by 255 and normalises with the per-channel mean and
standard deviation fitted here on the training images.
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from deepstrata.config import default
from deepstrata.data.files import BadFile, decode_column, read_files
from deepstrata.data.table import Table
from deepstrata.preprocess.base import Preprocessor, file_field

SCRATCH_SIZE = 64  # pixels per side from scratch (--image-size unset)
PRETRAINED_SIZE = 224  # and for a pretrained network: the size it was trained at
SIDE_SAMPLE = 1000  # files whose headers give the median source side

RESIZE_POLICIES = ("crop", "pad", "squash")
PAD_GREY = 128
MIN_STD = 1 / 255  # a column of one flat colour must not divide by zero
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class ImageDecodeError(ValueError):
    """A file that is not a usable image; the message is the reason shown to the user."""


def decode_image(path: Path, *, size: int, resize: str, max_pixels: int) -> np.ndarray:
    """One image file -> uint8 ``(3 * size * size,)``, channel-major (C, H, W flattened).

    Module-level so that decoding worker processes can run it (bind the settings
    with ``functools.partial``). Raises :class:`ImageDecodeError` for a bad file.
    """
    if path.stat().st_size == 0:
        raise ImageDecodeError("empty file")
    try:
        pixels = _decode_pixels(path, size=size, resize=resize, max_pixels=max_pixels)
    except Image.DecompressionBombError as exc:  # above twice Pillow's own limit
        found = _BOMB_PIXELS.search(str(exc))
        count = int(found.group(1)) if found else max_pixels + 1
        if count > max_pixels:
            raise ImageDecodeError(_bomb_message(str(count), max_pixels)) from None
        raise ImageDecodeError(
            f"decompression bomb: {count} pixels is above Pillow's own limit "
            "(2 x PIL.Image.MAX_IMAGE_PIXELS), which --max-image-pixels does not raise"
        ) from None
    except UnidentifiedImageError:
        suffix = path.suffix or "none"
        raise ImageDecodeError(f"not an image Pillow can read (suffix {suffix!r})") from None
    except (ImageDecodeError, MemoryError):
        raise
    except Exception as exc:  # a truncated or corrupt file: Pillow's reason, whatever its type
        raise ImageDecodeError(f"cannot decode the image: {exc or type(exc).__name__}") from None
    array = np.asarray(pixels, dtype=np.uint8)  # (size, size, 3)
    return np.ascontiguousarray(array.transpose(2, 0, 1)).reshape(-1)


def _decode_pixels(path: Path, *, size: int, resize: str, max_pixels: int) -> Image.Image:
    # Pillow's own bomb check (Image.MAX_IMAGE_PIXELS, a process-wide setting left
    # alone here) only warns below twice its limit: the cap here decides, from the
    # header, before any pixel is decoded.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(_bomb_message(f"{width} x {height}", max_pixels))
            _draft(image, size)
            image.load()  # everything now, so a truncated file fails here
            upright = ImageOps.exif_transpose(image)
            return _resize(_to_rgb(upright), size, resize)


def _draft(image: Image.Image, size: int) -> None:
    """JPEG only: let the decoder shrink by up to 8x while decoding (``image.size`` follows)."""
    image.draft(None, (2 * size, 2 * size))


def _bomb_message(pixels: str, max_pixels: int) -> str:
    return (
        f"decompression bomb: {pixels} pixels is above the cap of {max_pixels} (--max-image-pixels)"
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparent pixels become white."""
    if image.mode.startswith("I"):  # 16- or 32-bit grey: the top 8 bits of 16
        grey = np.clip(np.asarray(image, dtype=np.float64), 0, 65535) / 257
        image = Image.fromarray(np.round(grey).astype(np.uint8))
    has_alpha = image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _resize(image: Image.Image, size: int, policy: str) -> Image.Image:
    width, height = image.size
    resample = Image.Resampling.BILINEAR  # antialiased when shrinking
    if policy == "squash":
        return image.resize((size, size), resample, reducing_gap=2.0)
    if policy == "crop":
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        box = (left, top, left + side, top + side)
        return image.resize((size, size), resample, box=box, reducing_gap=2.0)
    scale = size / max(width, height)  # "pad"
    inner = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = Image.new("RGB", (size, size), (PAD_GREY,) * 3)
    offset = ((size - inner[0]) // 2, (size - inner[1]) // 2)
    canvas.paste(image.resize(inner, resample, reducing_gap=2.0), offset)
    return canvas


class ImagePreprocessor(Preprocessor):
    """Paths to image files -> uint8 ``(rows, 3 * size * size)``.

    ``fit`` decodes the training rows and keeps the per-channel mean and standard
    deviation of their pixels (on the 0..1 scale) for the encoder. A missing cell
    (None, NaN, empty string) becomes an image of the mean colour, which the
    encoder's normalisation turns into zeros (to within half a grey level). A
    path that cannot be read is a :class:`~deepstrata.errors.DataError` listing
    every bad file with its row; :meth:`bad_files` lists them instead, for
    ``--skip-bad-files``. ``workers``: decoding processes (None: automatic).
    ``size`` None: chosen when fitting, from the median shorter side of the files (a
    pretrained network's features: :func:`deepstrata.pretrained.inputs.image_side`).
    """

    kind = "image"
    dtype = "uint8"

    def __init__(
        self,
        *,
        size: int | None = SCRATCH_SIZE,
        resize: str = default("image_resize"),
        max_pixels: int = default("max_image_pixels"),
        workers: int | None = None,
    ) -> None:
        self.size = size
        self.resize = resize
        self.max_pixels = max_pixels
        self.workers = workers
        self.mean: list[float] = [0.5, 0.5, 0.5]
        self.std: list[float] = [0.25, 0.25, 0.25]
        self.source_side: float | None = None  # the median the size was chosen by (not saved)

    def fit(self, column: pd.Series, table: Table) -> ImagePreprocessor:
        self._choose_size(column, table)
        arrays = self._decode(column, table)
        total = np.zeros(3, dtype=np.float64)
        squares = np.zeros(3, dtype=np.float64)
        count = 0
        for pixels in arrays:  # one image at a time: no float copy of the whole column
            if pixels is None:
                continue
            channels = pixels.reshape(3, -1)
            total += channels.sum(axis=1, dtype=np.float64)
            squares += np.einsum("ij,ij->i", channels, channels, dtype=np.float64)
            count += channels.shape[1]
        if count:
            mean = total / count / 255
            variance = np.maximum(squares / count / 255**2 - mean**2, 0.0)
            self.mean = [float(m) for m in mean]
            self.std = [float(max(s, MIN_STD)) for s in np.sqrt(variance)]
        return self

    def transform(self, column: pd.Series, table: Table) -> np.ndarray:
        arrays = self._decode(column, table)
        out = np.empty((len(arrays), self.width), dtype=np.uint8)
        mean_colour = np.round(np.asarray(self.mean) * 255).astype(np.uint8)
        missing = np.repeat(mean_colour, self.size * self.size)  # (3 * S * S,)
        for row, pixels in enumerate(arrays):
            out[row] = missing if pixels is None else pixels
        return out

    def bad_files(self, column: pd.Series, table: Table) -> list[BadFile]:
        """Every file of ``column`` that cannot be decoded, with its row (never raises)."""
        self._choose_size(column, table)
        _, bad = read_files(column, table, self._decoder(), key=self._key(), workers=self.workers)
        return bad

    @property
    def width(self) -> int:
        return 3 * self.size * self.size

    cost_unit = "pixels"

    @property
    def input_cost(self) -> int:
        """Pixels of one image the network takes (``size * size``)."""
        return self.size * self.size

    def decode_cost(self, file) -> int:
        """Pixels decoding ``file`` (a path or a binary file object) would produce, read from
        its header alone: width x height, after the shrinking JPEG allows while decoding; 0
        where decoding refuses the file before any pixel (not an image, above ``max_pixels``).
        A server budgets a request's decoding with it (:mod:`deepstrata.serve.staging`)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(file) as image:
                    if image.size[0] * image.size[1] > self.max_pixels:
                        return 0
                    _draft(image, self.size)
                    return image.size[0] * image.size[1]
        except Exception:  # not an image Pillow reads: decoding fails at once too
            return 0

    def state(self) -> dict:
        return {
            "size": self.size,
            "resize": self.resize,
            "max_pixels": self.max_pixels,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_options(cls, options: dict) -> ImagePreprocessor:
        return cls(
            size=image_size(options),
            resize=options["image_resize"],
            max_pixels=options["max_image_pixels"],
            workers=options.get("decode_workers"),  # a general option
        )

    @classmethod
    def from_state(cls, state: dict) -> ImagePreprocessor:
        pre = cls(size=state["size"], resize=state["resize"], max_pixels=state["max_pixels"])
        pre.mean = [float(m) for m in state["mean"]]
        pre.std = [float(s) for s in state["std"]]
        return pre

    def _choose_size(self, column: pd.Series, table: Table) -> None:
        """``size`` None (a pretrained network's features, --image-size unset): chosen from the
        median shorter side of (up to SIDE_SAMPLE of) the files, read from their headers."""
        if self.size is not None:
            return
        from deepstrata.pretrained.inputs import image_side

        step = max(1, len(column) // SIDE_SAMPLE)
        sides, _ = read_files(column.iloc[::step], table, _shorter_side, key="side", workers=0)
        found = [int(side[0]) for side in sides if side is not None]
        self.source_side = float(np.median(found)) if found else None
        self.size = image_side(self.source_side)

    # -- decoding ------------------------------------------------------------------------------
    def _decoder(self) -> functools.partial:
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {self.resize!r}")
        if self.size < 1 or self.max_pixels < 1:
            raise ValueError(
                f"size and max_pixels must be >= 1, got {self.size}, {self.max_pixels}"
            )
        return functools.partial(
            decode_image, size=self.size, resize=self.resize, max_pixels=self.max_pixels
        )

    def _key(self) -> str:
        return f"image:{self.size}:{self.resize}:{self.max_pixels}"

    def _decode(self, column: pd.Series, table: Table) -> list[np.ndarray | None]:
        return decode_column(
            column, table, self._decoder(), key=self._key(), what="image", workers=self.workers
        )


def image_size(options: dict) -> int | None:
    """``image_size`` when set; else for a pretrained network's features None (chosen at fit
    from the source images: :mod:`deepstrata.pretrained.inputs`), for fine-tuning 224 (its
    training size); from scratch 64."""
    from deepstrata.pretrained.registry import uses_pretrained

    if options.get("image_size"):
        return options["image_size"]
    if not uses_pretrained(options):
        return SCRATCH_SIZE
    return None if options.get("strategy") == "features" else PRETRAINED_SIZE


def _shorter_side(path: Path) -> np.ndarray:
    """An image file's shorter side, from its header (nothing decoded); a bad file raises and
    is left to the decoding that follows to report."""
    with Image.open(path) as image:
        return np.array([min(image.size)])


HTTP = file_field("image")


def sample(pre: ImagePreprocessor, rng, rows: int) -> list:
    """Missing: the preprocessor's fill value (the export's check adds random pixels)."""
    return [None] * rows


def examples(rng, rows: int, folder) -> list:
    """Raw training values for checks (:func:`deepstrata.testing.check_kind`): paths to
    small PNG files written into ``folder``, one missing."""
    values: list = []
    for row in range(rows):
        path = Path(folder) / f"image-{row}.png"
        Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(path)
        values.append(str(path))
    values[1] = None
    return values

"""Image files -> uint8 pixels: orientation, modes, resize policies, bombs, bad files, stats."""

import json
import pickle
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepstrata.data.sources import read_table
from deepstrata.errors import DataError
from deepstrata.preprocess.image import PAD_GREY, ImagePreprocessor, decode_image

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def decode(path, size=8, resize="squash", max_pixels=10**6):
    """(3, size, size) uint8."""
    return decode_image(path, size=size, resize=resize, max_pixels=max_pixels).reshape(
        3, size, size
    )


def table_of(tmp_path, cells, name="photo"):
    """A CSV in ``tmp_path`` whose ``name`` column holds ``cells`` (paths relative to it)."""
    path = tmp_path / "table.csv"
    pd.DataFrame({name: cells, "y": range(len(cells))}).to_csv(path, index=False)
    table = read_table(path)
    return table.frame[name], table


def flat(tmp_path, name, colour, size=(6, 6)):
    Image.new("RGB", size, colour).save(tmp_path / name)
    return name


def png_claiming(tmp_path, width, height):
    """A tiny PNG whose header says ``width x height``: a bomb, written in microseconds."""
    path = tmp_path / f"bomb-{width}x{height}.png"
    Image.new("1", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # its CRC
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    upright = Image.new("RGB", (16, 32), RED)
    upright.paste(BLUE, (0, 16, 16, 32))  # red on top, blue below
    # Stored turned so that a viewer obeying the tag shows it upright.
    turn = Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    stored = upright.transpose(turn)  # red on one side, blue on the other
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "turned.jpg", "JPEG", exif=exif.tobytes(), quality=95)

    pixels = decode(tmp_path / "turned.jpg").astype(int)  # (3, 8, 8)
    assert (pixels[0, :3] > 200).all() and (pixels[2, :3] < 60).all()  # top rows red
    assert (pixels[2, -3:] > 200).all() and (pixels[0, -3:] < 60).all()  # bottom rows blue


def test_every_mode_becomes_rgb(tmp_path):
    grey16 = Image.fromarray(np.full((4, 4), 257 * 100, dtype=np.uint16))
    assert grey16.mode == "I;16"
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30])
    images = {
        "l.png": (Image.new("L", (4, 4), 77), (77, 77, 77)),
        "la.png": (Image.new("LA", (4, 4), (0, 0)), (255, 255, 255)),  # transparent: white
        "p.png": (palette, (10, 20, 30)),
        "rgba.png": (Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (255, 255, 255)),
        "half.png": (Image.new("RGBA", (4, 4), (0, 0, 0, 128)), (127, 127, 127)),
        "cmyk.tif": (Image.new("CMYK", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
        "i16.png": (grey16, (100, 100, 100)),
        "one.png": (Image.new("1", (4, 4), 1), (255, 255, 255)),
    }
    for name, (image, _) in images.items():
        image.save(tmp_path / name, **({"transparency": 1} if name == "p.png" else {}))
    images["p.png"] = (palette, (255, 255, 255))  # index 1 saved as transparent
    for name, (_, colour) in images.items():
        pixels = decode(tmp_path / name, size=4)
        assert pixels.shape == (3, 4, 4), name
        np.testing.assert_allclose(pixels[:, 2, 2], colour, atol=1, err_msg=name)


def test_resize_policies(tmp_path):
    # 40 x 20, bands of 10: green, red, blue, green.
    wide = Image.new("RGB", (40, 20), GREEN)
    wide.paste(RED, (10, 0, 20, 20))
    wide.paste(BLUE, (20, 0, 30, 20))
    wide.save(tmp_path / "wide.png")

    crop = decode(tmp_path / "wide.png", resize="crop")  # the centre 20 x 20: red | blue
    assert crop.shape == (3, 8, 8)
    # Column 0 and 7 see a little of the cut-off sides through the antialiasing filter.
    assert (crop[0, :, 1:3] == 255).all() and (crop[2, :, 5:7] == 255).all()
    assert (crop[1, :, 1:7] == 0).all() and (crop[1] < 64).all()  # the green sides were cut

    pad = decode(tmp_path / "wide.png", resize="pad")  # 8 x 4, grey above and below
    assert (pad[:, :2] == PAD_GREY).all() and (pad[:, -2:] == PAD_GREY).all()
    assert (pad[1, 2:6, 0] == 255).all() and (pad[1, 2:6, 7] == 255).all()  # green sides kept
    assert (pad[0, 2:6, 2] > 200).all() and (pad[2, 2:6, 5] > 200).all()

    squash = decode(tmp_path / "wide.png", resize="squash")  # all of it, squeezed
    assert (squash[1, :, 0] == 255).all() and (squash[1, :, 7] == 255).all()
    assert (squash[0, :, 2] > 200).all() and (squash[2, :, 5] > 200).all()


@pytest.mark.parametrize(
    ("width", "height", "max_pixels", "expected"),
    [
        (40, 30, 1000, "40 x 30 pixels is above the cap of 1000"),
        (10000, 10000, 50_000_000, "10000 x 10000 pixels is above the cap of 50000000"),
        # Past twice Pillow's own limit, Pillow refuses first; the same refusal.
        (20000, 20000, 50_000_000, "400000000 pixels is above the cap of 50000000"),
    ],
)
def test_decompression_bomb_is_refused_from_the_header(
    tmp_path, width, height, max_pixels, expected
):
    path = png_claiming(tmp_path, width, height) if width > 40 else tmp_path / "small.png"
    if width == 40:
        Image.new("RGB", (40, 30)).save(path)
    column, table = table_of(tmp_path, [path.name])
    with pytest.raises(DataError) as caught:
        ImagePreprocessor(size=8, max_pixels=max_pixels).fit(column, table)
    message = str(caught.value)
    assert path.name in message
    assert f"decompression bomb: {expected} (--max-image-pixels)" in message


def test_every_bad_file_is_listed_in_one_error(tmp_path):
    rng = np.random.default_rng(0)
    flat(tmp_path, "good.png", RED)
    (tmp_path / "corrupt.png").write_bytes(rng.integers(0, 256, 200, dtype=np.uint8).tobytes())
    noise = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    for name in ("truncated.png", "truncated.jpg"):
        noise.save(tmp_path / name)
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    cells = [
        "good.png",
        "corrupt.png",
        None,
        "truncated.png",
        "truncated.jpg",
        "empty.png",
        "missing.png",
    ]
    column, table = table_of(tmp_path, cells)
    pre = ImagePreprocessor(size=8)
    with pytest.raises(DataError) as caught:
        pre.fit(column, table)
    error = caught.value
    assert error.column == "photo" and error.row == 2  # the first bad one
    message = str(error)
    assert "5 images could not be read" in message
    for line, name, reason in [
        (3, "corrupt.png", "not an image"),
        (5, "truncated.png", "truncated"),
        (6, "truncated.jpg", "truncated"),
        (7, "empty.png", "empty file"),
        (8, "missing.png", "file not found"),
    ]:
        assert f"line {line}: {name}: " in message and reason in message, name
    bad = pre.bad_files(column, table)
    assert [(b.position, b.path) for b in bad] == [
        (1, "corrupt.png"),
        (3, "truncated.png"),
        (4, "truncated.jpg"),
        (5, "empty.png"),
        (6, "missing.png"),
    ]


def test_statistics_come_from_the_training_rows_only(tmp_path):
    cells = [flat(tmp_path, "a.png", (10, 20, 30)), flat(tmp_path, "b.png", (50, 90, 30))]
    cells += [flat(tmp_path, "c.png", (250, 250, 250)), flat(tmp_path, "d.png", (0, 0, 0))]
    column, table = table_of(tmp_path, cells)
    pre = ImagePreprocessor(size=4).fit(column.iloc[:2], table)

    pixels = pre.transform(column.iloc[:2], table).reshape(2, 3, -1) / 255  # the reference
    channels = pixels.transpose(1, 0, 2).reshape(3, -1)
    np.testing.assert_allclose(pre.mean, channels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(pre.std[:2], channels.std(axis=1)[:2], rtol=1e-9)
    assert pre.std[2] == pytest.approx(1 / 255)  # a flat channel: the floor, not zero


def test_missing_cells_become_the_mean_colour(tmp_path):
    cells = [flat(tmp_path, "a.png", (10, 200, 30)), flat(tmp_path, "b.png", (50, 90, 130))]
    column, table = table_of(tmp_path, [*cells, None, ""])
    pre = ImagePreprocessor(size=4).fit(column, table)
    out = pre.transform(column, table)
    assert out.shape == (4, 3 * 4 * 4) and out.dtype == np.uint8
    normalised = (out[2:].reshape(2, 3, -1) / 255 - np.array(pre.mean)[:, None]) / np.array(
        pre.std
    )[:, None]
    assert np.abs(normalised).max() <= 0.5 / 255 / min(pre.std)  # zero to within a grey level


def test_state_round_trip_transforms_identically(tmp_path):
    column, table = table_of(tmp_path, [flat(tmp_path, "a.png", (1, 2, 3), (9, 5)), None])
    pre = ImagePreprocessor(size=6, resize="pad").fit(column, table)
    state = json.loads(json.dumps(pre.state()))
    rebuilt = ImagePreprocessor.from_state(state)
    assert rebuilt.width == pre.width == 3 * 6 * 6
    np.testing.assert_array_equal(rebuilt.transform(column, table), pre.transform(column, table))
    assert rebuilt.state() == pre.state()


def test_decoder_is_picklable_for_worker_processes():
    decoder = ImagePreprocessor(size=8)._decoder()
    assert pickle.loads(pickle.dumps(decoder)).keywords == decoder.keywords


def test_unknown_resize_policy_is_refused(tmp_path):
    column, table = table_of(tmp_path, [flat(tmp_path, "a.png", RED)])
    with pytest.raises(ValueError, match="resize must be one of"):
        ImagePreprocessor(resize="stretch").fit(column, table)

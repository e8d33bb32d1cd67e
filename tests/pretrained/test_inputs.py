"""The image side for a pretrained network: its training side, less for small source images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepstrata.config import with_defaults
from deepstrata.data.sources import read_table
from deepstrata.preprocess.image import ImagePreprocessor
from deepstrata.pretrained.inputs import SMALLEST, image_side, rule


@pytest.mark.parametrize(
    ("source", "side"), [(3, SMALLEST), (8, 128), (6.5, 104), (14, 224), (1000, 224), (None, 224)]
)
def test_the_side_is_sixteen_times_the_source_within_its_bounds(source, side):
    assert image_side(source) == side


def write_images(folder, sides: list[tuple[int, int]]) -> pd.DataFrame:
    paths = []
    for index, (width, height) in enumerate(sides):
        path = folder / f"{index}.png"
        Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return pd.DataFrame({"image": [*paths, None]})  # a missing cell: no side to read


def options(**given) -> dict:
    return with_defaults({"pretrained": {"image": "efficientnet-lite0"}, **given})


def test_features_choose_the_side_from_the_median_shorter_side_of_the_files(tmp_path):
    frame = write_images(tmp_path, [(5, 6), (6, 5), (7, 5), (300, 200)])
    table = read_table(frame)
    pre = ImagePreprocessor.from_options(options(strategy="features"))
    assert pre.size is None  # chosen when fitting
    pixels = pre.fit(frame["image"], table).transform(frame["image"], table)
    assert pre.source_side == 5.0 and pre.size == 80  # shorter sides 5, 5, 5, 200
    assert pixels.shape == (5, 3 * 80 * 80)
    assert ImagePreprocessor.from_state(pre.state()).size == 80  # the bundle keeps the side
    assert "16x the median source side" in rule()


def test_an_explicit_size_finetuning_or_no_readable_file_keep_their_side(tmp_path):
    frame = write_images(tmp_path, [(10, 10)])
    table = read_table(frame)
    explicit = ImagePreprocessor.from_options(options(strategy="features", image_size=32))
    assert explicit.fit(frame["image"], table).size == 32
    finetune = ImagePreprocessor.from_options(options(strategy="finetune"))
    assert finetune.fit(frame["image"], table).size == 224
    empty = pd.DataFrame({"image": [None, None]})
    none = ImagePreprocessor.from_options(options(strategy="features"))
    assert none.fit(empty["image"], read_table(empty)).size == 224

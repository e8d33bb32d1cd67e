"""Images explained pixel by pixel: heat maps that add up to the column's attribution,
and, on images whose class is where a bright patch sits, most of the saliency on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import deepstrata
from deepstrata.explain import explain
from deepstrata.explain.output import write_folder
from tests.conftest import torch_threads

pytest.importorskip("captum", reason="the explain extra (captum) is not installed")
SIDE, PATCH = 16, 5


def patch_images(folder: Path, count: int, seed: int) -> tuple[pd.DataFrame, list]:
    """Dark noisy images with one bright square: in the left half (class "left") or the
    right half ("right"). Returns the table and each square's top-left corner."""
    rng = np.random.default_rng(seed)
    rows, corners = [], []
    for index in range(count):
        pixels = rng.integers(0, 40, (SIDE, SIDE, 3)).astype(np.uint8)
        right = index % 2
        y, x = rng.integers(0, SIDE - PATCH + 1), rng.integers(0, 3) + (9 if right else 0)
        pixels[y : y + PATCH, x : x + PATCH] = 230
        path = folder / f"{seed}-{index}.png"
        Image.fromarray(pixels).save(path)
        rows.append({"photo": str(path), "where": "right" if right else "left"})
        corners.append((y, x))
    return pd.DataFrame(rows), corners


def test_heat_maps_add_up_to_the_image_columns_attribution(tmp_path):
    """An untrained network on an image and a number: completeness holds pixel by pixel."""
    train, _ = patch_images(tmp_path, 12, seed=0)
    train["size"] = np.arange(12.0)
    with torch_threads(1):
        model = deepstrata.fit(
            train, target="where", ensemble=False, max_epochs=1, progress=False,
            image_size=SIDE, image_augment="none", strategy="scratch", seed=0,
        )  # fmt: skip
        # an untrained network is jagged along the path: 50 steps leave an 11 % gap here
        explanation = explain(model, train.drop(columns="where").head(3), method="ig", steps=200)
    maps = explanation.maps["photo"]
    assert maps.shape == (3, SIDE, SIDE)
    column = explanation.columns.index("photo")
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), explanation.values[:, column], rtol=1e-5)
    assert explanation.faithfulness["completeness_gap"] < 0.01
    # one image column: the randomisation check compares the heat maps' pixels
    assert np.isfinite(explanation.faithfulness["randomisation_rank_correlation"])
    assert explanation.pixels["photo"].shape == (3, SIDE, SIDE, 3)
    folder = write_folder(explanation, tmp_path / "out", title="Where?")
    assert len(list((folder / "maps" / "photo").glob("*.png"))) == 3
    assert "Where in photo" in (folder / "explain.html").read_text()
    # LIME over superpixels draws its own maps (deepstrata/explain/superpixels.py)
    pytest.importorskip("skimage", reason="the explain extra (scikit-image) is not installed")
    with torch_threads(1):
        lime = explain(
            model,
            train.drop(columns="where").head(2),
            method="lime",
            samples=60,
            faithfulness=False,
        )
    assert lime.maps["photo"].shape == (2, SIDE, SIDE)
    assert len(np.unique(lime.maps["photo"][0])) > 2  # several superpixels, their own weights
    assert lime.settings["superpixels"].startswith("lime.lime_image")
    folder = write_folder(lime, tmp_path / "lime", title="Where?")
    assert "LIME over superpixels" in (folder / "explain.html").read_text()


@pytest.mark.slow  # trains a CNN: ~15 s on one core
def test_saliency_falls_on_the_bright_patch_that_sets_the_class(tmp_path):
    train, _ = patch_images(tmp_path, 120, seed=0)
    test, corners = patch_images(tmp_path, 20, seed=1)
    with torch_threads(1):
        model = deepstrata.fit(
            train, target="where", ensemble=False, max_epochs=15, progress=False, seed=0,
            image_size=SIDE, image_augment="none", strategy="scratch", learning_rate=3e-3,
        )  # fmt: skip
        assert model.evaluate(test)["accuracy"] >= 0.95
        explanation = explain(model, test.drop(columns="where"), method="ig", faithfulness=False)
    saliency = np.abs(explanation.maps["photo"])  # (rows, S, S)
    shares = [
        saliency[i, y : y + PATCH, x : x + PATCH].sum() / saliency[i].sum()
        for i, (y, x) in enumerate(corners)
    ]
    assert np.mean(shares) >= 0.6, shares  # 25 of 256 pixels hold most of it (0.80 measured)

"""Images explained pixel by pixel from each row's blurred image: heat maps that add up
to the column's attribution, completeness within 1 % on a trained CNN, and, on images
whose class is where a bright patch sits, most of the saliency on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import deepstrata
from deepstrata.data.sources import read_table
from deepstrata.errors import ConfigError
from deepstrata.explain import baselines, explain
from deepstrata.explain.faithfulness import completeness
from deepstrata.explain.output import write_folder
from deepstrata.explain.target import Target
from tests.conftest import torch_threads

pytest.importorskip("captum", reason="the explain extra (captum) is not installed")
SIDE, PATCH, TEXTURE = 16, 5, 6


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


def texture_images(folder: Path, count: int, seed: int) -> tuple[pd.DataFrame, list]:
    """Dark noisy images with one square of the same mean brightness: a fine checkerboard
    (class "fine") or flat grey ("flat"). A blur erases what sets the class, so the
    blurred baseline is far from the prediction. Returns the table and the corners."""
    rng = np.random.default_rng(seed)
    checker = (np.indices((TEXTURE, TEXTURE)).sum(axis=0) % 2 * 230)[..., None]
    rows, corners = [], []
    for index in range(count):
        pixels = rng.integers(0, 40, (SIDE, SIDE, 3)).astype(np.uint8)
        fine = index % 2
        y, x = rng.integers(0, SIDE - TEXTURE + 1, 2)
        pixels[y : y + TEXTURE, x : x + TEXTURE] = checker if fine else 115
        path = folder / f"texture-{seed}-{index}.png"
        Image.fromarray(pixels).save(path)
        rows.append({"photo": str(path), "what": "fine" if fine else "flat"})
        corners.append((y, x))
    return pd.DataFrame(rows), corners


def image_gaps(model, rows: pd.DataFrame, baseline: str, steps: int = 50) -> dict:
    """Integrated gradients' completeness on ``rows`` from one image baseline."""
    explanation = explain(
        model, rows, method="ig", steps=steps, image_baseline=baseline, faithfulness=False
    )
    target = Target(model, read_table(rows), image_baseline=baseline)
    return {
        "gap": completeness(target, explanation.values)["completeness_gap"],
        "change": float(np.abs(explanation.predictions - explanation.base_values).mean()),
        "refined_rows": explanation.settings["refined_rows"],
        "max_steps": explanation.settings["max_steps"],
        "explanation": explanation,
    }


@pytest.fixture(scope="module")
def texture_model(tmp_path_factory):
    """A CNN trained 3 epochs on texture_images and a noise number, and 6 new rows."""
    folder = tmp_path_factory.mktemp("textures")
    train, _ = texture_images(folder, 48, seed=0)
    rows = texture_images(folder, 6, seed=1)[0].drop(columns="what")
    rng = np.random.default_rng(0)
    train["size"], rows["size"] = rng.normal(0, 1, len(train)), rng.normal(0, 1, len(rows))
    with torch_threads(1):
        model = deepstrata.fit(
            train, target="what", ensemble=False, max_epochs=3, progress=False, seed=0,
            image_size=SIDE, image_augment="none", strategy="scratch", learning_rate=3e-3,
        )  # fmt: skip
    return model, rows


def test_the_blurred_baseline_is_each_rows_own_and_completeness_holds(texture_model):
    """The default image baseline: each row's own image blurred (so rows differ), stated
    in the settings; integrated gradients from it add up to f(x) - f(baseline) within
    1 % on a trained CNN whose class the blur erases; gradient SHAP pairs each row with
    its own reference. The mean colour stays selectable."""
    model, rows = texture_model
    with torch_threads(1):
        target = Target(model, read_table(rows))
        blurred = target.inputs[0].baseline["image"].numpy()
        assert len({row.tobytes() for row in blurred}) == len(rows)  # one per row
        pixels = target.inputs[0].blocks["image"].numpy()
        np.testing.assert_array_equal(blurred, baselines.blurred(pixels, SIDE))
        assert target.baseline_pixels("photo").shape == (len(rows), SIDE, SIDE, 3)
        gaps = image_gaps(model, rows, "blurred")
        mean = Target(model, read_table(rows), image_baseline="mean")
        assert len({row.tobytes() for row in mean.inputs[0].baseline["image"].numpy()}) == 1
        shap = explain(model, rows, method="gradshap", samples=200)
    assert gaps["change"] > 0.05, gaps  # the blur moves the prediction: not a trivial pass
    assert gaps["gap"] < 0.01, gaps
    settings = gaps["explanation"].settings
    assert settings["baseline"] == "blurred image (the row's own, Gaussian sigma=4 px)"
    assert settings["baselines"]["photo"] == settings["baseline"]
    assert np.isfinite(shap.values).all() and shap.faithfulness["deletion_area"] >= 0
    # each row against its own reference: the sums follow each row's change (at the
    # pixels, where the blur's path turns sharply, the estimate converges slowly: 0.65 off
    # with 20 draws, 0.32 with 200, 0.09 with 500; a reference from another row would
    # miss by ~1)
    change = shap.predictions - shap.base_values
    assert np.abs(shap.values.sum(axis=1) - change).sum() / np.abs(change).sum() < 0.5
    assert shap.maps["photo"].shape == (len(rows), SIDE, SIDE)
    # expected gradients are integrated gradients in expectation: the same map per row
    for ig_map, shap_map in zip(gaps["explanation"].maps["photo"], shap.maps["photo"]):
        assert np.corrcoef(ig_map.ravel(), shap_map.ravel())[0, 1] > 0.9
    assert shap.settings["baseline"] == settings["baseline"]
    with pytest.raises(ConfigError, match="image baseline"):
        explain(model, rows, method="ig", image_baseline="noise")


def test_heat_maps_add_up_to_the_image_columns_attribution(texture_model, tmp_path):
    """A CNN on an image and a number: completeness holds pixel by pixel."""
    model, rows = texture_model
    with torch_threads(1):
        explanation = explain(model, rows.head(3), method="ig")
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
            rows.iloc[1:3],  # SLIC cuts the first (flat square) image in only 2 pieces
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
    # 25 of 256 pixels hold most of it: 0.645 measured from the blurred image (the default),
    # 0.80 from the mean colour. A blur keeps where the patch is, so here the blurred
    # image predicts the class as the image does and the attributions are small.
    assert np.mean(shares) >= 0.6, shares


@pytest.mark.slow  # trains two CNNs 15 epochs and integrates up to 400 steps: ~3 min
@pytest.mark.parametrize("images", ["texture", "patch"])
def test_completeness_gap_from_each_image_baseline_on_a_trained_cnn(tmp_path, images):
    """The figure of issue 17's point 5 on trained CNNs: the gap from the mean colour
    (GroupNorm's jump near a flat image, which no step count follows) and from the
    blurred image (within 1 %). Run with -s to see both; on the bright patch the blur
    keeps the class (change ~0), on the texture it erases it (change ~0.5)."""
    make, label = (texture_images, "what") if images == "texture" else (patch_images, "where")
    train, _ = make(tmp_path, 120, seed=0)
    rows = make(tmp_path, 20, seed=1)[0].drop(columns=label)
    with torch_threads(1):
        model = deepstrata.fit(
            train, target=label, ensemble=False, max_epochs=15, progress=False, seed=0,
            image_size=SIDE, image_augment="none", strategy="scratch", learning_rate=3e-3,
        )  # fmt: skip
        figures = {baseline: image_gaps(model, rows, baseline) for baseline in ("mean", "blurred")}
    for baseline, found in figures.items():
        print(
            f"\n{images} {baseline}: completeness gap {found['gap']:.4f}, mean |f(x) - f(b)| "
            f"{found['change']:.3f}, rows refined {found['refined_rows']} of {len(rows)} "
            f"(up to {found['max_steps']} steps)"
        )
    assert figures["blurred"]["gap"] < 0.01
    if images == "texture":
        assert figures["blurred"]["change"] > 0.3  # the blur erases the class
        assert figures["mean"]["gap"] > 0.1  # kept as evidence: the jump defeats the steps

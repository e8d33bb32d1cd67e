"""Gradient SHAP (Captum) on networks: the values add up to f(x) - f(baseline) in
expectation, and it is refused (named) for a model with a classical member."""

from __future__ import annotations

import numpy as np
import pytest

import deepstrata
from deepstrata.errors import ConfigError
from deepstrata.explain import explain
from tests.conftest import torch_threads
from tests.explain.conftest import away_from_baseline, two_column_frame

pytest.importorskip("captum", reason="the explain extra (captum) is not installed")


def test_gradient_shap_adds_up_in_expectation(regression_model):
    rows = away_from_baseline(two_column_frame(seed=4), rows=20)
    with torch_threads(1):
        explanation = explain(regression_model, rows, method="gradshap", samples=200)
    change = explanation.predictions - explanation.base_values
    gap = np.abs(explanation.values.sum(axis=1) - change).sum() / np.abs(change).sum()
    assert gap < 0.1
    assert explanation.settings["samples"] == 200
    np.random.uniform()  # Captum draws the path's points from NumPy's global generator:
    with torch_threads(1):  # the seed fixes them whatever state it was left in
        again = explain(regression_model, rows, method="gradshap", samples=200)
    np.testing.assert_array_equal(again.values, explanation.values)
    assert "completeness_gap" not in explanation.faithfulness  # a Monte-Carlo estimate


def test_gradient_shap_needs_networks_only(ensemble_model):
    if all(hasattr(m, "network") for m in ensemble_model.members):
        pytest.skip("the ensemble kept the network alone")
    with pytest.raises(ConfigError, match="gradient SHAP needs every member"):
        explain(ensemble_model, two_column_frame(seed=1).head(3), method="gradshap")


def test_gradient_shap_maps_images_pixel_by_pixel(tmp_path):
    """An image column is explained at its pixels, each row from its own reference: a
    heat map per row whose sum is the column's value, its PNG on explain.html, and the
    region deletion curves measured on it; the number column stays one value."""
    from deepstrata.explain.output import write_folder
    from tests.explain.test_images import SIDE, patch_images

    train, _ = patch_images(tmp_path, 16, seed=0)
    rows = patch_images(tmp_path, 3, seed=1)[0].drop(columns="where")
    train["size"], rows["size"] = np.arange(16.0), np.arange(3.0)
    with torch_threads(1):
        model = deepstrata.fit(
            train, target="where", ensemble=False, max_epochs=1, progress=False, seed=0,
            image_size=SIDE, image_augment="none", strategy="scratch",
        )  # fmt: skip
        explanation = explain(model, rows, method="gradshap", samples=8, image_baseline="mean")
    maps = explanation.maps["photo"]
    assert maps.shape == (3, SIDE, SIDE) and np.abs(maps).sum() > 0
    column = explanation.columns.index("photo")
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), explanation.values[:, column], rtol=1e-5)
    assert np.isfinite(explanation.values[:, explanation.columns.index("size")]).all()
    assert explanation.settings["map_kinds"] == {"photo": "image"}
    faithfulness = explanation.faithfulness
    for key in ("regions_deletion_area:photo", "regions_deletion_area_random:photo"):
        assert np.isfinite(faithfulness[key]), key
    folder = write_folder(explanation, tmp_path / "out", title="Where?")
    assert len(list((folder / "maps" / "photo").glob("*.png"))) == 3
    page = (folder / "explain.html").read_text()
    assert "Gradient SHAP per pixel of photo" in page and "data:image/png;base64," in page


def test_gradient_shap_maps_audio_time_by_frequency(tones):
    """An audio column is explained at its log-mel spectrogram: a time x frequency map
    per row whose sum is the column's value, from silence."""
    model, frame = tones
    with torch_threads(1):
        explanation = explain(
            model, frame.drop(columns="y").head(2), method="gradshap", samples=8,
            faithfulness=False,
        )  # fmt: skip
    pre = model.members[0].preprocessors["clip"]
    maps = explanation.maps["clip"]
    assert maps.shape == (2, pre.n_mels, pre.frames) and np.abs(maps).sum() > 0
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), explanation.values[:, 0], rtol=1e-5)
    assert explanation.settings["map_kinds"] == {"clip": "audio"}
    assert "Gradient SHAP per time" in explanation.settings["map_notes"]["clip"]

"""The detector's parts: the autoencoder against a plain-PyTorch reference, the column
scaling, training with early stopping on held-out rows, and scoring raw rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from deepstrata.anomaly.detector import (
    STD_FLOOR,
    Autoencoder,
    default_sizes,
    fit_autoencoder,
    reconstruction_errors,
    scaling,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def correlated(rows: int, seed: int = 0) -> np.ndarray:
    """``(rows, 4)``: two independent columns and two copies of them with a little noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(rows, 2))
    return np.hstack([base, base + 0.05 * rng.normal(size=(rows, 2))]).astype(np.float32)


def test_the_autoencoder_rebuilds_its_input_shape_through_a_bottleneck():
    sizes = default_sizes(40)
    assert sizes["bottleneck_dim"] == 10 and sizes["hidden_dim"] == 40
    assert default_sizes(3)["bottleneck_dim"] == 2  # never a bottleneck of 0 or 1
    assert default_sizes(5000)["bottleneck_dim"] == 32
    network = Autoencoder(**sizes)
    x = torch.randn(7, 40)
    assert network({"x": x}).shape == (7, 40)


def test_reconstruction_errors_are_each_rows_mean_squared_error():
    torch.manual_seed(0)
    network = Autoencoder(6, 8, 2)
    features = np.random.default_rng(1).normal(size=(9, 6)).astype(np.float32)
    x = torch.from_numpy(features)
    with torch.no_grad():
        expected = ((network.decoder(network.encoder(x)) - x) ** 2).mean(dim=1).numpy()
    np.testing.assert_allclose(reconstruction_errors(network, features), expected, rtol=1e-6)


def test_scaling_floors_the_spread_of_near_constant_columns():
    raw = np.array([[0.0, 5.0], [0.0, 7.0], [1.0, 9.0]] + [[0.0, 7.0]] * 97, dtype=np.float32)
    mean, std = scaling(raw)
    assert mean[0] == pytest.approx(0.01)
    assert std[0] == STD_FLOOR  # a one-hot column of a 1 % category: 0.0995 -> the floor
    assert std[1] == pytest.approx(raw[:, 1].std())


def test_training_stops_on_held_out_rows_and_finds_rows_that_break_the_pattern():
    features = correlated(300)
    odd = [3, 50, 120, 200]
    features[odd, 0], features[odd, 2] = 2.0, -2.0  # each value ordinary, the pair never seen
    network, history = fit_autoencoder(features, seed=0, max_epochs=60)
    assert history["held_out_rows"] == 60 and history["training_rows"] == 240
    assert 1 <= history["best_epoch"] <= history["epochs"] <= 60
    scores = reconstruction_errors(network, features)
    assert set(np.argsort(scores)[-8:]) >= set(odd)  # all four among the 3 % most unusual


def test_training_is_seeded():
    features = correlated(50)
    first = reconstruction_errors(fit_autoencoder(features, seed=3, max_epochs=2)[0], features)
    again = reconstruction_errors(fit_autoencoder(features, seed=3, max_epochs=2)[0], features)
    np.testing.assert_array_equal(first, again)


def test_a_detector_scores_raw_rows_and_refuses_missing_columns():
    from deepstrata.anomaly.run import check_request, find_anomalies
    from deepstrata.data.sources import read_table
    from deepstrata.errors import DataError

    frame = pd.DataFrame({"a": correlated(60)[:, 0], "b": correlated(60)[:, 2]})
    found = find_anomalies(check_request(frame), max_epochs=2)
    scored = found.detector.score_frame(read_table(frame), keep=["a"])
    assert list(scored.columns) == ["a", "row", "score", "flagged"]
    np.testing.assert_allclose(scored["score"], found.scores, rtol=1e-6)
    assert scored["row"].tolist() == list(range(1, 61))
    with pytest.raises(DataError, match="'b'"):
        found.detector.score_frame(read_table(frame[["a"]]))

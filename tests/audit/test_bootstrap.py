"""Bootstrap statistics computed on index matrices match the same statistic computed row
by row on each resample."""

from __future__ import annotations

import numpy as np

from deepstrata.audit import bootstrap
from deepstrata.evaluate.metrics import expected_calibration_error


def test_statistics_match_a_loop_over_resamples():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 300).astype(float)
    said = rng.integers(0, 2, 300).astype(float)
    positive = rng.random(300)
    probabilities = np.column_stack([1 - positive, positive])
    index = rng.integers(0, 300, size=(20, 300))
    tpr = bootstrap.ratio(said * truth, truth)(index)
    ece = bootstrap.calibration_error(probabilities, truth.astype(int))(index)
    for b in range(20):
        rows = index[b]
        assert np.isclose(tpr[b], (said[rows] * truth[rows]).sum() / truth[rows].sum())
        expected = expected_calibration_error(probabilities[rows], truth[rows].astype(int))
        assert np.isclose(ece[b], expected)


def test_resample_is_seeded_chunked_and_nan_safe(monkeypatch):
    values = np.arange(50, dtype=float)
    statistic = {"mean": bootstrap.mean(values), "none": bootstrap.ratio(values, 0 * values)}
    first = bootstrap.resample(50, statistic, resamples=101, seed=3)
    monkeypatch.setattr(bootstrap, "CHUNK_CELLS", 500)  # 10 resamples per block
    second = bootstrap.resample(50, statistic, resamples=101, seed=3)
    assert first["mean"].shape == (101,)
    assert np.isnan(first["none"]).all()
    assert bootstrap.interval(first["none"], level=0.9) != bootstrap.interval(
        first["mean"], level=0.9
    )
    low, high = bootstrap.interval(second["mean"], level=0.9)
    assert low < values.mean() < high


def test_spread_pairs_groups_resample_by_resample():
    a, b = np.array([0.5, 0.2, np.nan]), np.array([0.4, 0.4, 0.3])
    assert np.allclose(bootstrap.spread([a, b], "difference"), [0.1, 0.2, 0.0])
    assert np.allclose(bootstrap.spread([a, b], "ratio"), [0.8, 0.5, 1.0])

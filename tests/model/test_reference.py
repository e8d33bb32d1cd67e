"""The drift reference a bundle keeps from its training rows (deepstrata.model.reference);
the checks that read it are tested in tests/attack/test_drift.py."""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.model.reference import (
    BINS,
    SAMPLE,
    categorical_reference,
    category_values,
    numeric_reference,
    numeric_values,
    statistic_of,
)


def test_a_numeric_reference_keeps_decile_shares_the_missing_share_and_a_sample():
    values = np.concatenate([np.arange(2000, dtype=float), [np.nan] * 500])
    reference = numeric_reference(values, np.random.default_rng(0))
    assert len(reference["edges"]) == BINS - 1
    assert sum(reference["shares"]) == pytest.approx(0.8)  # of every row, missing included
    assert reference["missing"] == pytest.approx(0.2)
    assert len(reference["sample"]) == SAMPLE and reference["rows"] == 2500
    assert numeric_reference(np.array([np.nan]), np.random.default_rng(0))["missing"] == 1.0


def test_one_spelling_per_value_so_serving_and_training_rows_compare():
    assert category_values([1, 1.0, "1", None]).tolist() == ["1", "1", "1", "<missing>"]
    assert category_values(["yes", True, "no", "maybe"], "boolean").tolist() == [
        "true",
        "true",
        "false",
        "maybe",
    ]
    counts = categorical_reference(category_values(["a", "b", "a"]))["counts"]
    assert counts == {"a": 2, "b": 1}


def test_dates_are_seconds_and_kinds_pick_their_statistic():
    seconds = numeric_values(["1970-01-02", "not a date"], "datetime")
    assert seconds[0] == 86400.0 and np.isnan(seconds[1])
    assert statistic_of("number") == "numeric" and statistic_of("category") == "categorical"
    assert statistic_of("text") == "embedding" and statistic_of("image") == "embedding"

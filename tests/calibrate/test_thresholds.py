"""Group thresholds: the disparities equal Fairlearn's, the chosen thresholds shrink the
one asked for on the rows they were chosen on, and stronger means fairer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepstrata.calibrate.thresholds import (
    CONSTRAINTS,
    apply_thresholds,
    choose_thresholds,
    disparity,
    tradeoff,
)

fair = pytest.importorskip("fairlearn.metrics", reason="the audit extra")


def scored_rows(rows: int = 1200, seed: int = 0):
    """Two groups whose scores are shifted: group a is selected more, at every truth."""
    rng = np.random.default_rng(seed)
    groups = np.where(rng.random(rows) < 0.6, "a", "b")
    truth = (rng.random(rows) < np.where(groups == "a", 0.5, 0.35)).astype(int)
    scores = 1 / (
        1 + np.exp(-(2.5 * (truth - 0.5) + 0.8 * (groups == "a") + rng.normal(0, 1, rows)))
    )
    return scores, truth, groups


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_disparities_equal_fairlearns(constraint):
    scores, truth, groups = scored_rows()
    said = (scores >= 0.5).astype(int)
    reference = {
        "demographic_parity": fair.demographic_parity_difference,
        "equalized_odds": fair.equalized_odds_difference,
        "equal_opportunity": fair.equal_opportunity_difference,
    }[constraint]
    expected = reference(truth, said, sensitive_features=groups)
    assert disparity(constraint, truth, said, groups) == pytest.approx(expected)


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_thresholds_shrink_the_disparity_asked_for(constraint):
    scores, truth, groups = scored_rows()
    plain = disparity(constraint, truth, scores >= 0.5, groups)
    chosen = choose_thresholds(scores, truth, groups, constraint=constraint, strength=10)
    said = apply_thresholds(chosen, scores, groups)
    assert disparity(constraint, truth, said, groups) <= plain / 2
    assert chosen["held_out"]["disparity"] == pytest.approx(
        disparity(constraint, truth, said, groups)
    )
    assert chosen["thresholds"]["a"] > chosen["thresholds"]["b"]  # a's scores run higher
    assert chosen["held_out"]["accuracy"] == pytest.approx((said == truth).mean())


def test_small_and_unseen_groups_keep_the_plain_threshold():
    scores, truth, groups = scored_rows()
    groups = groups.copy()
    groups[:10] = "tiny"
    chosen = choose_thresholds(
        scores, truth, groups, constraint="demographic_parity", strength=5, min_group_size=30
    )
    assert "tiny" not in chosen["thresholds"]
    said = apply_thresholds(chosen, scores[:12], np.array(["tiny"] * 10 + ["never seen"] * 2))
    assert (said == (scores[:12] >= 0.5)).all()


def test_tradeoff_goes_from_accurate_to_fair():
    scores, truth, groups = scored_rows()
    rows = tradeoff(scores, truth, groups, constraint="equalized_odds")
    assert rows[0]["strength"] == 0 and rows[-1]["strength"] == max(r["strength"] for r in rows)
    assert rows[-1]["disparity"] < rows[0]["disparity"]
    assert rows[0]["accuracy"] >= rows[-1]["accuracy"]
    disparities = [r["disparity"] for r in rows]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(disparities))

import numpy as np

from deepstrata.evaluate.selection import within_one_standard_error


def test_candidates_within_one_standard_error_of_the_best_are_kept():
    rng = np.random.default_rng(0)
    best = rng.normal(1.0, 0.5, 400)
    error = best.std(ddof=1) / np.sqrt(len(best))
    losses = np.stack([best, best + 0.5 * error, best + 3 * error])
    assert within_one_standard_error(losses).tolist() == [True, True, False]


def test_one_row_leaves_only_the_lowest():
    assert within_one_standard_error(np.array([[1.0], [0.5], [0.5 + 1e-9]])).tolist() == [
        False,
        True,
        False,
    ]

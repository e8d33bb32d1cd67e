import numpy as np
import pytest
import torch
from torch.nn import functional as F

from deepstrata.calibrate.temperature import expected_calibration_error, fit_temperature


def probabilities_of(logits, task):
    """(B, K) probabilities; binary logits (B,) become (B, 2)."""
    if task == "binary":
        positive = torch.sigmoid(logits)
        return torch.stack([1 - positive, positive], dim=1).numpy()
    return torch.softmax(logits, dim=1).numpy()


def sample(task, *, rows=2000, scale=1.0, seed=0):
    """True logits, labels drawn from them, and the logits of a model that scales them."""
    gen = torch.Generator().manual_seed(seed)
    if task == "binary":
        true_logits = 1.5 * torch.randn(rows, generator=gen, dtype=torch.float64)
        labels = torch.bernoulli(torch.sigmoid(true_logits), generator=gen).to(torch.int64)
    else:
        true_logits = 1.5 * torch.randn(rows, 4, generator=gen, dtype=torch.float64)
        labels = torch.multinomial(torch.softmax(true_logits, dim=1), 1, generator=gen)[:, 0]
    return scale * true_logits, labels


def reference_ece(probabilities, labels, bins):
    """The textbook loop (Guo et al., eq. 3), one bin at a time."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = (confidence > low) & (confidence <= high) if b else (confidence <= high)
        if inside.any():
            total += abs(correct[inside].mean() - confidence[inside].mean()) * inside.sum()
    return total / len(labels)


def test_ece_by_hand():
    probabilities = np.array(
        [
            [0.90, 0.10, 0.00],  # confidence 0.90, right  -> bin (0.8, 1.0]
            [0.70, 0.20, 0.10],  # confidence 0.70, wrong  -> bin (0.6, 0.8]
            [0.15, 0.65, 0.20],  # confidence 0.65, right  -> bin (0.6, 0.8]
            [0.55, 0.05, 0.40],  # confidence 0.55, right  -> bin (0.4, 0.6]
        ]
    )
    labels = np.array([0, 2, 1, 0])
    high = abs(1.0 - 0.90) * 1
    middle = abs(0.5 - (0.70 + 0.65) / 2) * 2
    low = abs(1.0 - 0.55) * 1
    expected = (high + middle + low) / 4  # = 0.225
    assert expected_calibration_error(probabilities, labels, bins=5) == pytest.approx(expected)
    assert expected == pytest.approx(0.225)


def test_ece_matches_the_textbook_loop():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(5) * 0.5, size=500)
    labels = rng.integers(0, 5, size=500)
    for bins in (1, 7, 15):
        assert expected_calibration_error(probabilities, labels, bins=bins) == pytest.approx(
            reference_ece(probabilities, labels, bins)
        )


def test_ece_of_a_perfectly_calibrated_sample_is_small():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=50_000)
    draws = rng.random((50_000, 1))
    labels = (draws > probabilities.cumsum(axis=1)).sum(axis=1)  # class k with probability p_k
    assert expected_calibration_error(probabilities, labels) < 0.01


def test_ece_of_a_confidently_wrong_model_is_large():
    probabilities = np.tile([0.99, 0.01], (100, 1))
    assert expected_calibration_error(probabilities, np.ones(100, dtype=int)) == pytest.approx(0.99)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_over_confident_model_gets_t_above_1_and_a_lower_ece(task):
    logits, labels = sample(task, scale=4.0)
    temperature = fit_temperature(logits, labels, task=task)
    assert temperature == pytest.approx(4.0, rel=0.15)
    before = expected_calibration_error(probabilities_of(logits, task), labels.numpy())
    after = expected_calibration_error(probabilities_of(logits / temperature, task), labels.numpy())
    assert before > 0.05
    assert after < before / 3


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_under_confident_model_gets_t_below_1(task):
    logits, labels = sample(task, scale=1 / 3)
    temperature = fit_temperature(logits, labels, task=task)
    assert temperature == pytest.approx(1 / 3, rel=0.15)
    before = expected_calibration_error(probabilities_of(logits, task), labels.numpy())
    after = expected_calibration_error(probabilities_of(logits / temperature, task), labels.numpy())
    assert before > 0.05
    assert after < before / 3


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_fitted_t_minimises_the_nll_like_a_fine_grid(task):
    logits, labels = sample(task, rows=1000, scale=2.5, seed=1)
    grid = torch.from_numpy(np.geomspace(0.05, 20, 1001))  # (G,), steps of 0.6%

    def nll(temperatures):  # (G,) -> (G,), plain PyTorch
        if task == "binary":
            scaled = logits[None, :] / temperatures[:, None]  # (G, B)
            target = labels.double().expand_as(scaled)
            return F.binary_cross_entropy_with_logits(scaled, target, reduction="none").mean(1)
        scaled = logits[None] / temperatures[:, None, None]  # (G, B, K)
        return (
            -scaled.log_softmax(-1)
            .gather(-1, labels.expand(len(temperatures), -1)[..., None])
            .mean((1, 2))
        )

    on_grid = nll(grid)
    best = grid[on_grid.argmin()].item()
    temperature = fit_temperature(logits, labels, task=task)
    assert temperature == pytest.approx(best, rel=7e-3)  # within one grid step
    assert (
        nll(torch.tensor([temperature], dtype=torch.float64)).item() <= on_grid.min().item() + 1e-12
    )


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_temperature_never_changes_the_predicted_class(task):
    logits, labels = sample(task, scale=4.0, seed=2)
    temperature = fit_temperature(logits.float(), labels, task=task)
    before = probabilities_of(logits, task).argmax(axis=1)
    after = probabilities_of(logits / temperature, task).argmax(axis=1)
    np.testing.assert_array_equal(before, after)


def test_fit_is_deterministic_and_accepts_float32_and_grad_tensors():
    logits, labels = sample("multiclass", rows=500, scale=3.0)
    logits = logits.float().requires_grad_()
    first = fit_temperature(logits, labels, task="multiclass")
    assert fit_temperature(logits, labels, task="multiclass") == first


def test_temperature_is_clamped():
    separable = torch.tensor([[5.0, -5.0], [-5.0, 5.0]] * 10)  # always right: NLL falls as T -> 0
    labels = torch.tensor([0, 1] * 10)
    assert fit_temperature(separable, labels, task="multiclass") == pytest.approx(0.05, rel=1e-6)
    coin = torch.tensor([[5.0, -5.0]] * 20)  # labels independent of the logits: T -> infinity
    assert fit_temperature(coin, labels, task="multiclass") == pytest.approx(20.0, rel=1e-6)


def test_degenerate_inputs():
    assert fit_temperature(torch.zeros(0), torch.zeros(0), task="binary") == 1.0
    assert (
        fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64), task="multiclass")
        == 1.0
    )
    assert fit_temperature(torch.randn(8), torch.ones(8), task="binary") == 1.0
    one_class = torch.full((8,), 2, dtype=torch.int64)
    assert fit_temperature(torch.randn(8, 3), one_class, task="multiclass") == 1.0
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 0.0


def test_shape_and_task_errors_say_what_was_expected():
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        fit_temperature(torch.randn(4), torch.zeros(4, dtype=torch.int64), task="multiclass")
    with pytest.raises(ValueError, match=r"\(B,\)"):
        fit_temperature(torch.randn(4, 2), torch.zeros(4), task="binary")
    with pytest.raises(ValueError, match="regression"):
        fit_temperature(torch.randn(4), torch.zeros(4), task="regression")
    with pytest.raises(ValueError, match="1 are NaN"):
        fit_temperature(torch.tensor([1.0, float("nan")]), torch.tensor([0, 1]), task="binary")
    with pytest.raises(ValueError, match="column_stack"):
        expected_calibration_error(np.full(4, 0.5), np.zeros(4, dtype=int))

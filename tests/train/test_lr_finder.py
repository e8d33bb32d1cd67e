import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from deepstrata.errors import TrainingError
from deepstrata.train.lr_finder import RangeTest, range_test, suggest
from tests.train import tiny
from tests.train.tiny import regression_data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def network(hidden=(32,), dropout=0.0):
    return tiny.network(hidden=hidden, dropout=dropout)


def adamw(net):
    return lambda learning_rate: torch.optim.AdamW(net.parameters(), lr=learning_rate)


def sweep(net, inputs, y, **options):
    options = {"batch_size": 32, "num_steps": 60, **options}
    return range_test(net, F.mse_loss, inputs, y, make_optimizer=adamw(net), **options)


BATCH_SIZE = 64
STEPS = 120


def final_loss(learning_rate, inputs, y):
    """Full-data training loss after a fixed AdamW budget at a constant learning rate."""
    net = network()
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate)
    order_generator = torch.Generator().manual_seed(1)
    rows, step = len(y), 0
    while step < STEPS:
        order = torch.randperm(rows, generator=order_generator)
        for begin in range(0, rows, BATCH_SIZE):
            index = order[begin : begin + BATCH_SIZE]
            loss = F.mse_loss(net({"number": inputs["number"][index]}), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    with torch.no_grad():
        return float(F.mse_loss(net(inputs), y))


def test_the_suggestion_trains_better_than_ten_times_more_or_a_hundred_times_less():
    inputs, y = regression_data()
    result = sweep(network(), inputs, y, batch_size=BATCH_SIZE, num_steps=100)
    assert result.rule.startswith("valley"), result.rule
    suggested = final_loss(result.suggestion, inputs, y)
    assert suggested < final_loss(10 * result.suggestion, inputs, y)
    assert suggested < final_loss(0.01 * result.suggestion, inputs, y)


def test_the_sweep_restores_weights_gradients_random_state_and_modes():
    inputs, y = regression_data(rows=64)
    net = network(dropout=0.3)  # dropout draws from the global generator during the sweep
    net.eval()
    net.combiner.train()  # mixed modes must come back exactly
    modes = [module.training for module in net.modules()]
    F.mse_loss(net(inputs), y).backward()
    grads = [p.grad.clone() for p in net.parameters()]
    weights = {name: value.clone() for name, value in net.state_dict().items()}
    rng = torch.get_rng_state()

    sweep(net, inputs, y)

    assert all(torch.equal(value, weights[name]) for name, value in net.state_dict().items())
    assert all(torch.equal(p.grad, grad) for p, grad in zip(net.parameters(), grads))
    assert torch.equal(torch.get_rng_state(), rng)
    assert [module.training for module in net.modules()] == modes


def test_the_sweep_restores_everything_when_the_loss_function_raises():
    inputs, y = regression_data(rows=64)
    net = network(dropout=0.3).eval()
    weights = {name: value.clone() for name, value in net.state_dict().items()}
    rng = torch.get_rng_state()
    calls = 0

    def failing_loss(output, target):
        nonlocal calls
        calls += 1
        if calls == 10:
            raise RuntimeError("boom")
        return F.mse_loss(output, target)

    with pytest.raises(RuntimeError, match="boom"):
        range_test(net, failing_loss, inputs, y, make_optimizer=adamw(net), batch_size=16)
    assert all(torch.equal(value, weights[name]) for name, value in net.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert not net.training


def test_learning_rates_grow_exponentially_from_start_to_end():
    inputs, y = regression_data(rows=64)
    result = sweep(network(), inputs, y, start_lr=1e-6, end_lr=1e-2, num_steps=30)
    assert len(result.learning_rates) == len(result.losses) == len(result.smoothed) == 30
    ratios = np.diff(np.log(result.learning_rates))
    assert np.all(ratios > 0)
    np.testing.assert_allclose(ratios, math.log(1e4) / 29, rtol=1e-9)
    assert result.learning_rates[0] == pytest.approx(1e-6)
    assert result.learning_rates[-1] == pytest.approx(1e-2)


def test_the_sweep_stops_early_when_the_loss_diverges():
    inputs, y = regression_data(rows=64)
    net = network()
    result = range_test(
        net,
        F.mse_loss,
        inputs,
        y,
        make_optimizer=lambda lr: torch.optim.SGD(net.parameters(), lr=lr),  # plain SGD blows up
        batch_size=16,
        start_lr=1e-4,
        end_lr=1e3,
        num_steps=100,
    )
    assert len(result.learning_rates) < 100
    assert all(math.isfinite(v) for v in result.losses + result.smoothed)
    assert result.smoothed[-1] > 4.0 * min(result.smoothed)  # stopped by the divergence rule


def test_lr_scale_scales_a_param_groups_learning_rate():
    inputs, y = regression_data(rows=64)
    net = network()
    seen = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            seen.append([group["lr"] for group in self.param_groups])
            return super().step(closure)

    def make_optimizer(learning_rate):
        head, rest = list(net.head.parameters()), list(net.combiner.parameters())
        return Recording([{"params": rest}, {"params": head, "lr_scale": 0.5}], lr=learning_rate)

    range_test(
        net, F.mse_loss, inputs, y, make_optimizer=make_optimizer, batch_size=16, num_steps=10
    )
    assert all(scaled == pytest.approx(0.5 * base) for base, scaled in seen)


def test_fallback_when_the_loss_never_falls():
    inputs, y = regression_data(rows=64)
    net = network()
    calls = 0

    def rising_loss(output, target):
        nonlocal calls
        calls += 1
        return F.mse_loss(output, target) * 0 + calls  # 1, 2, 3, ...: never falls

    result = range_test(
        net, rising_loss, inputs, y, make_optimizer=adamw(net), batch_size=16, num_steps=20
    )
    assert result.rule.startswith("flat: the smoothed loss fell by 0.0% at most")
    assert result.suggestion == 1e-3


def test_a_flat_sweep_is_no_evidence_for_its_wiggles():
    """Seen on a text CNN: the loss wobbled by 0.3% until it diverged; the longest
    wobble down was a 'valley' at 6e-5, where nothing is ever learnt."""
    rates = list(np.geomspace(1e-7, 10, 12))
    wobbly = [0.690, 0.699, 0.698, 0.697, 0.696, 0.695, 0.699, 0.698, 0.700, 0.71, 0.9, 3.0]
    value, rule = suggest(rates, wobbly)
    assert value == 1e-3 and rule.startswith("flat")


def test_fallback_when_the_loss_falls_once_but_never_keeps_falling():
    rates = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    value, rule = suggest(rates, [1.0, 0.5, 0.8, 0.9, 2.0])
    assert rule.startswith("fallback") and value == pytest.approx(1e-4 / 10)


def test_round_trip_through_json_and_a_png_plot(tmp_path):
    inputs, y = regression_data(rows=64)
    result = sweep(network(), inputs, y)
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert RangeTest.from_dict(json.loads(text)) == result

    written = result.save_plot(tmp_path / "lr_finder.png")
    assert written == tmp_path / "lr_finder.png"
    assert written.read_bytes()[:8] == PNG_SIGNATURE
    assert [p.name for p in tmp_path.iterdir()] == ["lr_finder.png"]  # no temporary left


def test_too_few_finite_losses_is_a_training_error():
    inputs, y = regression_data(rows=64)
    net = network()
    with pytest.raises(TrainingError, match=r"only [0-4] finite losses.*lower"):
        range_test(
            net,
            F.mse_loss,
            inputs,
            y,
            make_optimizer=lambda lr: torch.optim.SGD(net.parameters(), lr=lr),
            batch_size=16,
            start_lr=1e6,
            end_lr=1e8,
            num_steps=20,
        )

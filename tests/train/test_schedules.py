import json
import math

import numpy as np
import pytest
import torch

from deepstrata.errors import ConfigError
from deepstrata.train.schedules import (
    BUDGET_STEPS,
    MIN_EPOCHS,
    SCHEDULES,
    build_schedule,
    schedule_epochs,
)

PEAK = 1e-2


def optimizer_with_groups(peaks=(PEAK,), kind="adamw"):
    torch.manual_seed(0)
    groups = [{"params": [torch.nn.Parameter(torch.randn(3))], "lr": lr} for lr in peaks]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=peaks[0], momentum=0.9)
    return torch.optim.AdamW(groups, lr=peaks[0])


def run(schedule, optimizer, steps, monitored=None):
    """The rates each optimizer step used, per group: (steps, groups)."""
    used = []
    for step in range(steps):
        used.append(schedule.learning_rates())
        optimizer.step()
        schedule.after_batch()
        if monitored is not None:
            schedule.after_epoch(monitored[step])
    return np.array(used)


def test_onecycle_starts_at_peak_over_25_peaks_at_pct_start_and_ends_far_below():
    optimizer = optimizer_with_groups()
    schedule = build_schedule("onecycle", optimizer, total_steps=100, pct_start=0.3)
    lrs = run(schedule, optimizer, 100)[:, 0]
    assert lrs[0] == pytest.approx(PEAK / 25)
    assert 28 <= lrs.argmax() <= 30
    assert lrs.max() == pytest.approx(PEAK)
    assert np.all(np.diff(lrs[: lrs.argmax() + 1]) > 0)
    assert np.all(np.diff(lrs[lrs.argmax() :]) < 0)
    assert lrs[-1] < PEAK / 1e4


def test_onecycle_cycles_adamw_beta1_inversely_and_keeps_beta2():
    optimizer = optimizer_with_groups()
    optimizer.param_groups[0]["betas"] = (0.9, 0.98)
    schedule = build_schedule("onecycle", optimizer, total_steps=20, pct_start=0.5)
    betas = [optimizer.param_groups[0]["betas"]]
    for _ in range(20):
        optimizer.step()
        schedule.after_batch()
        betas.append(optimizer.param_groups[0]["betas"])
    assert betas[0][0] == pytest.approx(0.95)  # the user's 0.9 is replaced by the cycle's top
    assert min(beta1 for beta1, _ in betas) == pytest.approx(0.85)
    assert betas[-1][0] == pytest.approx(0.95)
    assert all(beta2 == 0.98 for _, beta2 in betas)


def test_onecycle_stepped_exactly_total_steps_and_beyond_does_not_raise():
    optimizer = optimizer_with_groups()
    schedule = build_schedule("onecycle", optimizer, total_steps=10)
    lrs = run(schedule, optimizer, 10)[:, 0]
    final = schedule.learning_rates()
    assert final[0] == pytest.approx(lrs[-1])  # stays at the last planned rate
    run(schedule, optimizer, 5)
    assert schedule.learning_rates() == final


@pytest.mark.parametrize(("total_steps", "pct_start"), [(4, 0.25), (10, 0.1), (1, 0.3), (2, 0.3)])
def test_onecycle_survives_tiny_and_edge_step_counts(total_steps, pct_start):
    optimizer = optimizer_with_groups()
    schedule = build_schedule("onecycle", optimizer, total_steps=total_steps, pct_start=pct_start)
    lrs = run(schedule, optimizer, total_steps + 2)
    assert np.all(np.isfinite(lrs)) and np.all(lrs > 0)


def test_onecycle_leaves_momentum_off_for_sgd_without_momentum():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=PEAK)
    schedule = build_schedule("onecycle", optimizer, total_steps=10)
    run(schedule, optimizer, 10)
    assert optimizer.param_groups[0]["momentum"] == 0


def test_cosine_warms_up_linearly_then_decays_monotonically_to_zero():
    optimizer = optimizer_with_groups()
    schedule = build_schedule("cosine", optimizer, total_steps=100, warmup_fraction=0.1)
    lrs = run(schedule, optimizer, 100)[:, 0]
    warmup = lrs[:11]
    np.testing.assert_allclose(np.diff(warmup), PEAK / 11, rtol=1e-9)
    assert lrs[0] <= PEAK / 10
    assert lrs[10] == pytest.approx(PEAK)
    assert np.all(np.diff(lrs[10:]) < 0)
    assert lrs[-1] < PEAK * 1e-3
    assert schedule.learning_rates()[0] == pytest.approx(0.0, abs=1e-12)  # 0 at total_steps
    run(schedule, optimizer, 3)
    assert schedule.learning_rates()[0] == pytest.approx(0.0, abs=1e-12)


def test_constant_is_flat():
    optimizer = optimizer_with_groups()
    schedule = build_schedule("constant", optimizer, total_steps=10)
    lrs = run(schedule, optimizer, 10, monitored=[1.0] * 10)
    assert np.all(lrs == PEAK)
    assert schedule.state_dict() == {}


def test_plateau_drops_after_patience_plus_one_bad_epochs_and_not_before():
    optimizer = optimizer_with_groups()
    schedule = build_schedule(
        "plateau", optimizer, total_steps=1, plateau_factor=0.5, plateau_patience=2
    )
    schedule.after_batch()  # per-batch hook does nothing for plateau
    schedule.after_epoch(1.0)  # best so far
    for _ in range(2):  # patience bad epochs: no change yet
        schedule.after_epoch(1.0)
        assert schedule.learning_rates() == [PEAK]
    schedule.after_epoch(1.5)  # patience + 1
    assert schedule.learning_rates() == [pytest.approx(PEAK * 0.5)]
    schedule.after_epoch(0.5)  # an improvement resets the count
    schedule.after_epoch(0.6)
    assert schedule.learning_rates() == [pytest.approx(PEAK * 0.5)]


@pytest.mark.parametrize("name", ["onecycle", "cosine"])
def test_param_groups_keep_their_ratio(name):
    optimizer = optimizer_with_groups(peaks=(1e-2, 1e-4))
    schedule = build_schedule(name, optimizer, total_steps=50)
    lrs = run(schedule, optimizer, 50)
    np.testing.assert_allclose(lrs[:, 1] / lrs[:, 0], 1e-2, rtol=1e-9)
    assert lrs[:, 0].max() == pytest.approx(1e-2)
    assert lrs[:, 1].max() == pytest.approx(1e-4)


def test_plateau_keeps_group_ratio():
    optimizer = optimizer_with_groups(peaks=(1e-2, 1e-4))
    schedule = build_schedule("plateau", optimizer, total_steps=1, plateau_patience=0)
    schedule.after_epoch(1.0)
    schedule.after_epoch(1.0)
    assert schedule.learning_rates() == [pytest.approx(5e-3), pytest.approx(5e-5)]


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_state_survives_json_and_reproduces_the_remaining_rates_exactly(name, kind):
    total, cut = 40, 17
    losses = [1.0 / (1 + step) if step < 5 else 1.0 for step in range(total)]  # then a plateau
    options = {"total_steps": total, "plateau_patience": 2}

    optimizer = optimizer_with_groups(peaks=(1e-2, 3e-3), kind=kind)
    schedule = build_schedule(name, optimizer, **options)
    run(schedule, optimizer, cut, monitored=losses[:cut])
    state = json.loads(json.dumps(schedule.state_dict()))
    expected = run(schedule, optimizer, total - cut, monitored=losses[cut:])
    expected_momenta = [
        group.get("betas", group.get("momentum")) for group in optimizer.param_groups
    ]

    # Fresh optimizer and schedule; only the schedule's state is loaded.
    fresh_optimizer = optimizer_with_groups(peaks=(1e-2, 3e-3), kind=kind)
    fresh = build_schedule(name, fresh_optimizer, **options)
    fresh.load_state_dict(state)
    resumed = run(fresh, fresh_optimizer, total - cut, monitored=losses[cut:])
    np.testing.assert_array_equal(resumed, expected)
    momenta = [group.get("betas", group.get("momentum")) for group in fresh_optimizer.param_groups]
    assert momenta == expected_momenta
    if name != "constant":
        assert not np.all(expected == expected[0])  # the rates did move after the cut


def test_cosine_state_stores_no_lambda():
    optimizer = optimizer_with_groups()
    state = build_schedule("cosine", optimizer, total_steps=10).state_dict()
    assert state["scheduler"]["lr_lambdas"] == [None]


def test_plateau_state_keeps_infinity_through_json():
    optimizer = optimizer_with_groups()
    state = build_schedule("plateau", optimizer, total_steps=1).state_dict()
    assert "Infinity" in json.dumps(state)
    assert json.loads(json.dumps(state))["scheduler"]["best"] == math.inf


def test_loading_another_schedules_state_names_the_flag():
    saved = build_schedule("cosine", optimizer_with_groups(), total_steps=10).state_dict()
    schedule = build_schedule("onecycle", optimizer_with_groups(), total_steps=10)
    with pytest.raises(ConfigError, match="cosine") as error:
        schedule.load_state_dict(saved)
    assert error.value.option == "--schedule"
    with pytest.raises(ConfigError, match="constant"):
        schedule.load_state_dict({})


def test_unknown_name_lists_the_choices():
    with pytest.raises(ConfigError, match="onecycle, cosine, constant, plateau") as error:
        build_schedule("linear", optimizer_with_groups(), total_steps=10)
    assert error.value.option == "--schedule"


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        ({"name": "onecycle", "pct_start": 1.0}, "--pct-start"),
        ({"name": "cosine", "warmup_fraction": 1.0}, "--warmup-fraction"),
        ({"name": "plateau", "plateau_factor": 1.5}, "--plateau-factor"),
        ({"name": "plateau", "plateau_patience": -1}, "--plateau-patience"),
    ],
)
def test_invalid_options_name_their_flag(options, flag):
    with pytest.raises(ConfigError) as error:
        build_schedule(optimizer=optimizer_with_groups(), total_steps=10, **options)
    assert error.value.option == flag


# -- the schedule's length, and its warm-up --------------------------------------------------------
def test_onecycle_and_cosine_span_a_budget_of_steps_that_max_epochs_caps():
    assert schedule_epochs("onecycle", 50, 200, None) == BUDGET_STEPS // 50  # 30
    assert schedule_epochs("cosine", 9, 200, None) == math.ceil(BUDGET_STEPS / 9)  # 167
    assert schedule_epochs("onecycle", 10_000, 200, None) == MIN_EPOCHS  # few long epochs
    assert schedule_epochs("onecycle", 2, 200, None) == 200  # tiny data: the cap
    assert schedule_epochs("onecycle", 50, 5, None) == 5
    assert schedule_epochs("onecycle", 50, 200, 80) == 80  # asked for
    assert schedule_epochs("onecycle", 50, 60, 80) == 60


@pytest.mark.parametrize("name", ["plateau", "constant"])
def test_open_ended_schedules_run_to_max_epochs(name):
    assert schedule_epochs(name, 50, 200, None) == 200
    assert schedule_epochs(name, 50, 200, 30) == 200


def test_onecycle_warms_up_for_pct_start_of_its_steps():
    optimizer = optimizer_with_groups()
    schedule = build_schedule("onecycle", optimizer, total_steps=100, pct_start=0.3)
    warming = []
    for _ in range(100):
        warming.append(schedule.warming_up())
        optimizer.step()
        schedule.after_batch()
    assert warming == [True] * 30 + [False] * 70
    assert not build_schedule("constant", optimizer_with_groups(), total_steps=1).warming_up()


def test_plateau_warms_up_linearly_and_only_then_watches_the_loss():
    optimizer = optimizer_with_groups()
    schedule = build_schedule(
        "plateau", optimizer, total_steps=1, plateau_patience=0, warmup_steps=4
    )
    rates = []
    for step in range(4):
        rates.append(schedule.learning_rates()[0])
        assert schedule.warming_up()
        optimizer.step()
        schedule.after_batch()
        schedule.after_epoch(1.0 + step)  # worse every time, yet no drop while warming up
    np.testing.assert_allclose(rates, [PEAK * k / 5 for k in (1, 2, 3, 4)], rtol=1e-12)
    assert not schedule.warming_up()
    assert schedule.learning_rates() == [pytest.approx(PEAK)]
    schedule.after_epoch(1.0)  # the plateau's first epoch: its best so far
    schedule.after_epoch(2.0)
    assert schedule.learning_rates() == [pytest.approx(PEAK / 2)]


def test_plateau_resumed_inside_its_warm_up_gives_the_same_rates():
    losses = [1.0] * 12
    options = {"total_steps": 1, "plateau_patience": 1, "warmup_steps": 8}
    optimizer = optimizer_with_groups(peaks=(1e-2, 3e-3))
    schedule = build_schedule("plateau", optimizer, **options)
    run(schedule, optimizer, 5, monitored=losses[:5])
    state = json.loads(json.dumps(schedule.state_dict()))
    expected = run(schedule, optimizer, 7, monitored=losses[5:])

    fresh_optimizer = optimizer_with_groups(peaks=(1e-2, 3e-3))
    fresh = build_schedule("plateau", fresh_optimizer, **options)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(run(fresh, fresh_optimizer, 7, monitored=losses[5:]), expected)
    assert expected[:, 0].max() == pytest.approx(1e-2) and expected[-1, 0] < 1e-2

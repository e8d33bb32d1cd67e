"""The training engine's options, each against a plain-PyTorch reference or an exact script.

Covers ``deepstrata/train/trainer.py`` (parameter groups, accumulation, clipping, mixup,
non-finite losses, early stopping, ``learning_rate="auto"``), ``callbacks.py``,
``precision.py``, and the per-block dropout and label smoothing the trainer relies on.
The reference loops draw the data order exactly as the Trainer documents it: one
``torch.randperm`` per epoch from ``generator(seed, stream=1)``.
"""

import json
import types

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import deepstrata
from deepstrata.config import FitConfig
from deepstrata.encoders.dense import DenseEncoder
from deepstrata.errors import ConfigError, TrainingError
from deepstrata.model.network import Network
from deepstrata.nn.mlp import MLP
from deepstrata.seeding import generator, numpy_rng
from deepstrata.tasks import build_head
from deepstrata.train import precision as precision_module
from deepstrata.train.callbacks import Callback, MetricsLog, TensorBoardLog
from deepstrata.train.checkpoint import has_checkpoint, load_checkpoint
from deepstrata.train.optimizer import parameter_groups
from deepstrata.train.precision import MIN_SPEEDUP, choose_precision, resolve_device
from deepstrata.train.trainer import Trainer
from tests.train import tiny
from tests.train.tiny import network

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny fits: one thread is fastest


def regression_data(rows=64, **options):
    return tiny.regression_data(rows, **options)


def flat(net):
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def train(net, inputs, y, validation=None, **options):
    """Fit with test defaults: constant rate, no early stopping, small batches."""
    options = {
        "loss_fn": net.loss,
        "batch_size": 16,
        "max_epochs": 2,
        "learning_rate": 1e-2,
        "schedule": "constant",
        "patience": 1_000,
        **options,
    }
    trainer = Trainer(net, **options)
    trainer.fit(inputs, y, validation=validation)
    return trainer


def reference_training(
    net,
    inputs,
    y,
    *,
    batch_size,
    epochs,
    learning_rate=1e-2,
    weight_decay=1e-4,
    accumulate=1,
    clip=None,
    seed=0,
    gradients=None,
):
    """Plain AdamW over the Trainer's data order. Each step averages the gradients of the
    (up to) ``accumulate`` micro-batches in its group, as one batch that many times larger
    would; ``clip`` clips the averaged gradient's global norm before the step. Appends the
    gradient each step uses to ``gradients`` when given."""
    matrices = [p for p in net.parameters() if p.ndim > 1]
    vectors = [p for p in net.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [
            {"params": matrices, "weight_decay": weight_decay},
            {"params": vectors, "weight_decay": 0},
        ],
        lr=learning_rate,
    )
    order_generator = generator(seed, stream=1)
    for _ in range(epochs):
        micro_batches = torch.randperm(len(y), generator=order_generator).split(batch_size)
        for first in range(0, len(micro_batches), accumulate):
            group = micro_batches[first : first + accumulate]
            optimizer.zero_grad()
            for index in group:
                loss = F.mse_loss(net({"number": inputs["number"][index]}), y[index])
                (loss / len(group)).backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            if gradients is not None:
                gradients.append(flat_gradient(net))
            optimizer.step()
    return net


def flat_gradient(net):
    return torch.cat([p.grad.flatten() for p in net.parameters()])


class StepGradients(Callback):
    """Records the gradient every optimizer step uses (after any clipping) and the
    ``(epoch, step)`` of every ``on_batch_end``."""

    def __init__(self):
        self.gradients, self.steps = [], []

    def on_fit_start(self, trainer):
        trainer.optimizer.register_step_pre_hook(
            lambda optimizer, args, kwargs: self.gradients.append(flat_gradient(trainer.network))
        )

    def on_batch_end(self, trainer, epoch, step, loss):
        self.steps.append((epoch, step))


def assert_same_weights(ours, reference):
    for (name, a), b in zip(ours.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


# -- parameter groups ----------------------------------------------------------------------------


def test_parameter_groups_decay_matrices_only_and_keep_frozen_parameters_for_unfreezing():
    net = network(hidden=(8, 8))
    net.combiner.layers[0].weight.requires_grad_(False)  # a frozen matrix: unfrozen later
    names = {id(p): name for name, p in net.named_parameters()}

    groups = parameter_groups(net, weight_decay=0.3, learning_rate=0.01)

    assert [group["weight_decay"] for group in groups] == [0.3, 0.0]
    assert [group["lr"] for group in groups] == [0.01, 0.01]
    decayed = [names[id(p)] for p in groups[0]["params"]]
    not_decayed = [names[id(p)] for p in groups[1]["params"]]
    assert sorted(decayed) == [
        "combiner.layers.0.weight",
        "combiner.layers.3.weight",
        "head.linear.weight",
    ]
    assert sorted(not_decayed) == [
        "combiner.layers.0.bias",
        "combiner.layers.1.bias",
        "combiner.layers.1.weight",  # LayerNorm gain
        "combiner.layers.3.bias",
        "combiner.layers.4.bias",
        "combiner.layers.4.weight",
        "head.linear.bias",
    ]


def test_parameter_groups_give_a_module_with_lr_scale_that_share_of_the_rate():
    net = network(hidden=(8,))
    net.combiner.lr_scale = 0.1  # as a pretrained backbone carries it
    names = {id(p): name for name, p in net.named_parameters()}

    groups = parameter_groups(net, weight_decay=0.3, learning_rate=0.02)

    summary = [
        (g["lr"], g["lr_scale"], g["weight_decay"], sorted(names[id(p)] for p in g["params"]))
        for g in groups
    ]
    assert summary == [
        (0.02, 1.0, 0.3, ["head.linear.weight"]),
        (0.02, 1.0, 0.0, ["head.linear.bias"]),
        (pytest.approx(0.002), 0.1, 0.3, ["combiner.layers.0.weight"]),
        (
            pytest.approx(0.002),
            0.1,
            0.0,
            ["combiner.layers.0.bias", "combiner.layers.1.bias", "combiner.layers.1.weight"],
        ),
    ]


def test_parameter_groups_without_vectors_is_one_decayed_group():
    layer = nn.Linear(3, 2, bias=False)
    groups = parameter_groups(layer, weight_decay=0.1, learning_rate=1e-3)
    assert len(groups) == 1
    assert groups[0]["weight_decay"] == 0.1
    assert groups[0]["params"] == [layer.weight]


def test_a_frozen_parameter_is_not_touched_by_training_even_with_weight_decay():
    inputs, y = regression_data()
    net = network()
    frozen = net.combiner.layers[0].weight
    frozen.requires_grad_(False)
    before, other_before = frozen.clone(), net.head.linear.weight.clone()
    train(net, inputs, y, weight_decay=0.5)
    assert torch.equal(frozen, before)
    assert not torch.equal(net.head.linear.weight, other_before)  # training did happen


# -- gradient accumulation and clipping ------------------------------------------------------------


@pytest.mark.parametrize(("rows", "accumulate"), [(128, 2), (128, 4), (64, 1)])
def test_gradient_accumulation_matches_averaged_micro_batch_gradients(rows, accumulate):
    """Whole accumulation groups (the batch count is a multiple of ``accumulate``): every
    step uses the mean of its micro-batches' gradients (AdamW alone would hide a wrong
    scale, so the gradients are compared as well as the weights)."""
    inputs, y = regression_data(rows=rows)
    ours, recorder = network(), StepGradients()
    train(ours, inputs, y, max_epochs=3, gradient_accumulation=accumulate, callbacks=[recorder])
    gradients = []
    reference = reference_training(
        network(), inputs, y, batch_size=16, epochs=3, accumulate=accumulate, gradients=gradients
    )
    assert_same_weights(ours, reference)
    per_epoch = rows // 16 // accumulate
    assert recorder.steps == [(e, s) for e in (1, 2, 3) for s in range(1, per_epoch + 1)]
    assert len(recorder.gradients) == len(gradients) == 3 * per_epoch
    for step, (a, b) in enumerate(zip(recorder.gradients, gradients)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"step {step + 1}")


def test_gradient_accumulation_steps_on_a_last_partial_group():
    """80 rows, batches of 16, accumulate 3: 5 batches -> groups of 3 and 2 -> 2 steps,
    the first on the mean gradient of its 3 micro-batches."""
    inputs, y = regression_data(rows=80)
    net, recorder = network(), StepGradients()
    train(net, inputs, y, max_epochs=2, gradient_accumulation=3, callbacks=[recorder])
    assert recorder.steps == [(1, 1), (1, 2), (2, 1), (2, 2)]
    gradients = []
    reference_training(
        network(), inputs, y, batch_size=16, epochs=1, accumulate=3, gradients=gradients
    )
    torch.testing.assert_close(recorder.gradients[0], gradients[0], rtol=1e-5, atol=1e-6)


def test_a_last_partial_accumulation_group_averages_its_own_micro_batches():
    """The last group of 2 micro-batches (accumulate 3) should step on the mean of its two
    gradients, as one batch of 32 rows would (not on 2/3 of it)."""
    inputs, y = regression_data(rows=80)
    ours, recorder = network(), StepGradients()
    train(ours, inputs, y, max_epochs=3, gradient_accumulation=3, callbacks=[recorder])
    gradients = []
    reference = reference_training(
        network(), inputs, y, batch_size=16, epochs=3, accumulate=3, gradients=gradients
    )
    for step, (a, b) in enumerate(zip(recorder.gradients, gradients)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"step {step + 1}")
    assert_same_weights(ours, reference)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_gradient_clipping_matches_clip_grad_norm_before_each_step(accumulate):
    inputs, y = regression_data(rows=64)
    clip = 0.05  # far below the gradient norms of this problem (~10)
    ours, recorder = network(), StepGradients()
    train(
        ours,
        inputs,
        y,
        max_epochs=3,
        gradient_clip=clip,
        gradient_accumulation=accumulate,
        callbacks=[recorder],
    )
    gradients = []
    reference = reference_training(
        network(),
        inputs,
        y,
        batch_size=16,
        epochs=3,
        accumulate=accumulate,
        clip=clip,
        gradients=gradients,
    )
    assert_same_weights(ours, reference)
    for a, b in zip(recorder.gradients, gradients, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(a.norm(), torch.tensor(clip), rtol=1e-5, atol=0)

    unclipped = network()
    train(unclipped, inputs, y, max_epochs=3, gradient_accumulation=accumulate)
    assert (flat(unclipped) - flat(ours)).abs().max() > 1e-3


def test_a_large_gradient_clip_changes_nothing():
    inputs, y = regression_data()
    clipped, unclipped = network(), network()
    train(clipped, inputs, y, gradient_clip=1e9)
    train(unclipped, inputs, y)
    assert torch.equal(flat(clipped), flat(unclipped))


# -- label smoothing -------------------------------------------------------------------------------


def smoothed_cross_entropy(logits, target, epsilon):
    """By hand: (1 - eps) * NLL of the true class + eps * mean over classes of -log p."""
    log_p = torch.log_softmax(logits, dim=1)  # (B, K)
    true = -log_p.gather(1, target[:, None]).squeeze(1)
    uniform = -log_p.mean(dim=1)
    return ((1 - epsilon) * true + epsilon * uniform).mean()


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_multiclass_label_smoothing_matches_the_smoothed_cross_entropy(epsilon):
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(32, 5, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 5, (32,), generator=gen)
    head = build_head("multiclass", in_dim=4, num_classes=5)
    loss = head.loss(logits, target, label_smoothing=epsilon)
    torch.testing.assert_close(loss, smoothed_cross_entropy(logits, target, epsilon))
    torch.testing.assert_close(
        loss, F.cross_entropy(logits, target, label_smoothing=epsilon), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_binary_label_smoothing_is_the_two_class_smoothed_cross_entropy_of_0_and_z(epsilon):
    gen = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(32, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 2, (32,), generator=gen)
    two_class = torch.stack([torch.zeros_like(z), z], dim=1)  # (B, 2): p(1) = sigmoid(z)
    loss = build_head("binary", in_dim=4).loss(z, target, label_smoothing=epsilon)
    torch.testing.assert_close(loss, smoothed_cross_entropy(two_class, target, epsilon))
    torch.testing.assert_close(
        loss, F.cross_entropy(two_class, target, label_smoothing=epsilon), rtol=1e-10, atol=0
    )


def test_network_loss_passes_label_smoothing_to_the_head():
    torch.manual_seed(0)
    net = Network(
        encoders={"number": DenseEncoder(width=4)},
        hidden_dims=[8],
        dropout=0.0,
        task="multiclass",
        num_classes=3,
    )
    x, target = torch.randn(16, 4), torch.randint(0, 3, (16,))
    output = net({"number": x})
    torch.testing.assert_close(
        net.loss(output, target, label_smoothing=0.2), smoothed_cross_entropy(output, target, 0.2)
    )


def test_label_smoothing_for_regression_is_refused():
    head = build_head("regression", in_dim=4)
    with pytest.raises(ValueError, match="label smoothing"):
        head.loss(torch.zeros(4), torch.zeros(4), label_smoothing=0.1)
    with pytest.raises(ConfigError) as caught:
        FitConfig(task="regression", label_smoothing=0.1).validate()
    assert caught.value.option == "--label-smoothing"
    assert "--label-smoothing" in str(caught.value)
    FitConfig(task="binary", label_smoothing=0.1).validate()  # classifiers may smooth


# -- mixup -----------------------------------------------------------------------------------------


def test_mixup_matches_a_reference_manifold_mixup_loop():
    """Per batch: w ~ Beta(a, a) from numpy_rng(seed, 3), partners from generator(seed, 3);
    features (the identity encoder's output) are blended and so are the two losses."""
    alpha, seed = 0.4, 3
    inputs, y = regression_data()
    ours = network()
    train(ours, inputs, y, mixup=alpha, seed=seed, weight_decay=0.0)

    net = network()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.0)
    order_generator, partners = generator(seed, stream=1), generator(seed, stream=3)
    weights = numpy_rng(seed, stream=3)
    for _ in range(2):
        for index in torch.randperm(len(y), generator=order_generator).split(16):
            weight = float(weights.beta(alpha, alpha))
            partner = torch.randperm(len(index), generator=partners)
            x, target = inputs["number"][index], y[index]
            output = net.head(net.combiner(weight * x + (1 - weight) * x[partner]))
            loss = weight * F.mse_loss(output, target) + (1 - weight) * F.mse_loss(
                output, target[partner]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert_same_weights(ours, net)


def test_mixup_is_deterministic_for_a_seed_and_zero_is_off():
    inputs, y = regression_data()

    def weights_after(**options):
        net = network()
        train(net, inputs, y, **options)
        return flat(net)

    mixed = weights_after(mixup=0.4, seed=5)
    assert torch.equal(mixed, weights_after(mixup=0.4, seed=5))
    plain = weights_after(seed=5)
    assert torch.equal(weights_after(mixup=0.0, seed=5), plain)
    assert not torch.allclose(mixed, plain, atol=1e-4)
    assert not torch.equal(mixed, weights_after(mixup=0.4, seed=6))


# -- per-block dropout -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rates", "layout"),
    [
        ([0.0, 0.5], ["Linear", "LayerNorm", "GELU", "Linear", "LayerNorm", "GELU", 0.5]),
        ([0.3, 0.0], ["Linear", "LayerNorm", "GELU", 0.3, "Linear", "LayerNorm", "GELU"]),
        (0.2, ["Linear", "LayerNorm", "GELU", 0.2, "Linear", "LayerNorm", "GELU", 0.2]),
    ],
)
def test_per_block_dropout_puts_each_rate_in_its_block(rates, layout):
    net = Network(encoders={"number": DenseEncoder(width=4)}, hidden_dims=[8, 8], dropout=rates)
    seen = [
        layer.p if isinstance(layer, nn.Dropout) else type(layer).__name__
        for layer in net.combiner.layers
    ]
    assert seen == layout


def test_per_block_dropout_drops_that_fraction_of_each_blocks_output():
    torch.manual_seed(0)
    mlp = MLP(in_dim=4, hidden_dims=[32, 32], dropout=[0.25, 0.0]).train()
    zeros = []
    mlp.layers[4].register_forward_pre_hook(  # the second Linear sees block 1's output
        lambda module, args: zeros.append(float((args[0] == 0).float().mean()))
    )
    output = mlp(torch.randn(256, 4))
    assert abs(zeros[0] - 0.25) < 0.03
    assert float((output == 0).float().mean()) == 0.0  # block 2 drops nothing


@pytest.mark.parametrize("rates", [[0.1], [0.1, 0.2, 0.3]])
def test_a_dropout_list_of_the_wrong_length_is_refused(rates):
    with pytest.raises(ValueError, match=f"2 blocks but {len(rates)} dropout rates"):
        MLP(in_dim=4, hidden_dims=[8, 8], dropout=rates)
    with pytest.raises(ConfigError) as caught:
        FitConfig(hidden_dims=[8, 8], dropout=rates).validate()
    assert caught.value.option == "--dropout"
    FitConfig(hidden_dims=[8, 8], dropout=[0.0, 0.5]).validate()


# -- precision and devices -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_reduced_precision_trains_on_cpu_under_autocast(precision, dtype):
    """The training forward runs under CPU autocast in ``dtype``; weights stay float32."""
    inputs, y = regression_data()
    net = network()
    seen = []
    net.combiner.layers[0].register_forward_hook(
        lambda module, args, output: seen.append(
            (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), output.dtype)
        )
    )
    before = flat(net)
    trainer = train(net, inputs, y, precision=precision)
    assert trainer.chosen_precision == precision
    assert len(seen) == 8  # 2 epochs x 4 batches, no validation
    assert set(seen) == {(True, dtype, dtype)}
    assert all(np.isfinite(record["loss"]) for record in trainer.history.epochs)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert not torch.equal(flat(net), before)
    assert not torch.is_autocast_enabled("cpu")  # the context was left


def test_float32_training_runs_without_autocast():
    inputs, y = regression_data()
    net = network()
    seen = []
    net.combiner.layers[0].register_forward_hook(
        lambda module, args, output: seen.append((torch.is_autocast_enabled("cpu"), output.dtype))
    )
    train(net, inputs, y, precision="32")
    assert set(seen) == {(False, torch.float32)}


class FakeClock:
    """``perf_counter`` stand-in: time moves only when a fake step says so."""

    def __init__(self):
        self.now = 0

    def __call__(self):
        return float(self.now)


def timed_steps(clock, cost):
    """A step function taking ``cost[precision]`` fake seconds; it records its calls."""
    calls = []

    def step(precision):
        calls.append(precision)
        clock.now += cost[precision]

    return step, calls


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        ({"32": 20, "bf16": 10}, "bf16"),  # 2x faster
        ({"32": 11, "bf16": 10}, "bf16"),  # exactly MIN_SPEEDUP (1.10) faster
        ({"32": 21, "bf16": 20}, "32"),  # 1.05x: not worth it
        ({"32": 10, "bf16": 20}, "32"),  # slower
    ],
)
def test_choose_precision_keeps_bf16_only_when_it_measurably_wins(monkeypatch, cost, expected):
    clock = FakeClock()
    monkeypatch.setattr(precision_module, "time", types.SimpleNamespace(perf_counter=clock))
    step, calls = timed_steps(clock, cost)

    choice, probe = choose_precision(step, torch.device("cpu"), warmup=2, repeats=5)

    assert choice == expected == probe["choice"]
    assert calls == ["32"] * 7 + ["bf16"] * 7
    assert probe["seconds_per_step"] == {"32": cost["32"], "bf16": cost["bf16"]}
    assert probe["speedup"] == pytest.approx(cost["32"] / cost["bf16"], rel=1e-12)
    assert f"{MIN_SPEEDUP:.2f}" in probe["rule"]


def rigged_probe(monkeypatch, cost):
    """Make the Trainer's precision probe see ``cost[precision]`` fake seconds per step
    (its steps still run for real); returns the list of probed precisions."""
    clock = FakeClock()
    monkeypatch.setattr(precision_module, "time", types.SimpleNamespace(perf_counter=clock))
    real_choose = precision_module.choose_precision
    probe_steps = []

    def rigged(step, device, **options):
        def timed(precision):
            probe_steps.append(precision)
            step(precision)
            clock.now += cost[precision]

        return real_choose(timed, device, **options)

    monkeypatch.setattr("deepstrata.train.trainer.choose_precision", rigged)
    return probe_steps


def fit_with_dropout(inputs, y, **options):
    net = network(dropout=0.2)
    torch.manual_seed(7)  # dropout draws from the global generator
    return net, train(net, inputs, y, **options)


@pytest.mark.parametrize(
    ("cost", "expected"), [({"32": 20, "bf16": 10}, "bf16"), ({"32": 10, "bf16": 20}, "32")]
)
def test_precision_auto_trains_in_the_probes_choice_and_records_the_probe(
    monkeypatch, cost, expected
):
    probe_steps = rigged_probe(monkeypatch, cost)
    inputs, y = regression_data()
    _, trainer = fit_with_dropout(inputs, y, precision="auto")
    assert trainer.chosen_precision == expected
    assert trainer.precision_probe["choice"] == expected
    assert trainer.precision_probe["seconds_per_step"] == cost
    assert trainer.precision_probe["speedup"] == pytest.approx(cost["32"] / cost["bf16"])
    assert probe_steps == ["32"] * 11 + ["bf16"] * 11  # 3 warm-up + 8 timed steps each
    assert all(np.isfinite(record["loss"]) for record in trainer.history.epochs)


def test_precision_auto_does_not_disturb_the_run_it_chooses_for(monkeypatch):
    """Probe weights, modes and RNG come back; the run must equal one told "32" outright."""
    rigged_probe(monkeypatch, {"32": 10, "bf16": 20})
    inputs, y = regression_data()
    auto_net, trainer = fit_with_dropout(inputs, y, precision="auto")
    assert trainer.chosen_precision == "32"
    explicit_net, _ = fit_with_dropout(inputs, y, precision="32")
    assert torch.equal(flat(auto_net), flat(explicit_net))


def test_gradients_left_on_the_network_do_not_leak_into_the_first_step():
    inputs, y = regression_data()
    stale, clean = network(), network()
    F.mse_loss(stale(inputs), 100 * y).backward()  # e.g. a user's own diagnostic pass
    train(stale, inputs, y, max_epochs=1)
    train(clean, inputs, y, max_epochs=1)
    assert torch.equal(flat(stale), flat(clean))


def test_resolve_device_cpu_and_auto_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "mps", "tpu", "CPU", ""])
def test_resolve_device_refuses_an_absent_or_unknown_device_naming_the_flag(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError) as caught:
        resolve_device(name)
    assert caught.value.option == "--device"
    assert str(caught.value).startswith("--device: ")


# -- non-finite losses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch_size", "accumulate", "bad_call"),
    [
        (16, 1, 4 + 3),  # 4 batches per epoch: call 7 is epoch 2, step 3
        (8, 2, 8 + 5),  # 8 micro-batches, 4 steps per epoch: call 13 is in epoch 2, step 3
    ],
)
def test_a_nan_loss_names_epoch_and_step_and_keeps_the_last_good_checkpoint(
    tmp_path, batch_size, accumulate, bad_call
):
    inputs, y = regression_data(rows=64)
    net = network()
    calls = 0

    def loss_fn(output, target):
        nonlocal calls
        calls += 1
        loss = F.mse_loss(output, target)
        return loss * float("nan") if calls == bad_call else loss

    with pytest.raises(TrainingError) as caught:
        train(
            net,
            inputs,
            y,
            loss_fn=loss_fn,
            max_epochs=4,
            batch_size=batch_size,
            gradient_accumulation=accumulate,
            checkpoint_dir=tmp_path / "run",
        )
    message = str(caught.value)
    assert "epoch 2, step 3" in message
    assert str(tmp_path / "run") in message  # where the good checkpoint is

    assert has_checkpoint(tmp_path / "run")
    tensors, state = load_checkpoint(tmp_path / "run")
    assert (state["epoch"], state["batch"]) == (2, 0)  # 'about to start epoch 2'
    assert len(state["history"]["epochs"]) == 1
    reference = reference_training(
        network(), inputs, y, batch_size=batch_size, epochs=1, accumulate=accumulate
    )
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(tensors[f"model.{name}"], value, rtol=1e-5, atol=1e-6)
    assert not torch.equal(tensors["model.head.linear.weight"], net.head.linear.weight)


# -- callbacks -------------------------------------------------------------------------------------


class Recorder(Callback):
    def __init__(self, stop_after=None):
        self.events = []
        self.stop_after = stop_after

    def on_fit_start(self, trainer):
        self.events.append(("fit_start", len(trainer.history.epochs)))

    def on_batch_end(self, trainer, epoch, step, loss):
        assert isinstance(loss, torch.Tensor) and not loss.requires_grad
        self.events.append(("batch_end", epoch, step))

    def on_epoch_end(self, trainer, record):
        self.events.append(("epoch_end", record["epoch"]))
        if record["epoch"] == self.stop_after:
            trainer.stop_training = True

    def on_fit_end(self, trainer, history):
        self.events.append(("fit_end", len(history.epochs), trainer.network.training))


def test_callback_events_come_in_order():
    inputs, y = regression_data(rows=64)
    recorder = Recorder()
    train(network(), inputs, y, max_epochs=3, callbacks=[recorder])
    expected = [("fit_start", 0)]
    for epoch in (1, 2, 3):
        expected += [("batch_end", epoch, step) for step in (1, 2, 3, 4)]
        expected += [("epoch_end", epoch)]
    expected += [("fit_end", 3, False)]  # once, after the model is put in eval mode
    assert recorder.events == expected


def test_a_callback_stops_training_after_the_epoch_it_asks_in():
    inputs, y = regression_data(rows=64)
    recorder = Recorder(stop_after=2)
    trainer = train(network(), inputs, y, max_epochs=10, callbacks=[recorder])
    history = trainer.history
    assert [record["epoch"] for record in history.epochs] == [1, 2]
    assert history.stopped == "stopped by a callback after epoch 2"
    assert recorder.events[-2:] == [("epoch_end", 2), ("fit_end", 2, False)]
    assert [event[0] for event in recorder.events].count("fit_end") == 1


def mean_absolute_error(output, target):
    return {"mae": float((output - target).abs().mean())}


def test_metrics_log_writes_one_line_per_epoch_equal_to_the_history(tmp_path):
    inputs, y = regression_data(rows=64)
    validation = regression_data(rows=32, seed=1)
    path = tmp_path / "logs" / "metrics.jsonl"
    net = network()
    trainer = train(
        net,
        inputs,
        y,
        validation=validation,
        max_epochs=3,
        metric_fn=mean_absolute_error,
        callbacks=[MetricsLog(path)],
    )
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == trainer.history.epochs
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    for line in lines:
        assert set(line) == {"epoch", "loss", "learning_rate", "val_loss", "val_mae", "seconds"}
        assert line["learning_rate"] == 1e-2
    # The last epoch is the best here, so the network holds its weights: recompute.
    assert trainer.history.best_epoch == 3
    with torch.no_grad():
        output = net(validation[0])
    assert lines[-1]["val_loss"] == pytest.approx(float(F.mse_loss(output, validation[1])))
    assert lines[-1]["val_mae"] == pytest.approx(mean_absolute_error(output, validation[1])["mae"])


def test_tensorboard_log_writes_the_history_as_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    inputs, y = regression_data(rows=64)
    validation = regression_data(rows=32, seed=1)
    trainer = train(
        network(),
        inputs,
        y,
        validation=validation,
        max_epochs=3,
        metric_fn=mean_absolute_error,
        callbacks=[TensorBoardLog(tmp_path / "tb")],
    )
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(tmp_path / "tb")).Reload()
    tags = {"loss", "learning_rate", "val_loss", "val_mae", "seconds"}
    assert set(accumulator.Tags()["scalars"]) == tags
    for tag in tags:
        events = accumulator.Scalars(tag)
        assert [event.step for event in events] == [1, 2, 3]
        logged = torch.tensor([event.value for event in events], dtype=torch.float32)
        expected = torch.tensor([r[tag] for r in trainer.history.epochs], dtype=torch.float32)
        assert torch.equal(logged, expected), tag


# -- early stopping --------------------------------------------------------------------------------


def scripted_validation_loss(values):
    """An ``eval_loss_fn`` returning ``values`` in turn, one per epoch."""
    remaining = iter(values)
    return lambda output, target: torch.tensor(next(remaining))


@pytest.mark.parametrize(
    ("values", "patience", "min_delta", "best_epoch", "epochs"),
    [
        # 0.895 is within min_delta of 0.9; 0.85 improves on 0.9 by more: the best is epoch 4,
        # then three epochs of gains smaller than 0.01 -> stop after epoch 7.
        ([1.0, 0.9, 0.895, 0.85, 0.845, 0.842, 0.841, 0.1, 0.1], 3, 0.01, 4, 7),
        # With no min_delta every strict decrease counts.
        ([1.0, 0.9, 0.895, 0.85, 0.845, 0.842, 0.841, 0.9, 0.9, 0.9], 3, 0.0, 7, 10),
        # Slow drift: each step < min_delta, but 0.985 is 0.015 below the best (1.0).
        ([1.0, 0.995, 0.99, 0.985, 0.99, 0.99, 0.99, 0.5], 3, 0.01, 4, 7),
        # Never better than the first epoch.
        ([1.0, 1.0, 1.2, 1.1, 0.1], 3, 0.0, 1, 4),
    ],
)
def test_early_stopping_stops_patience_epochs_after_the_last_real_improvement(
    values, patience, min_delta, best_epoch, epochs
):
    inputs, y = regression_data(rows=32)
    validation = regression_data(rows=16, seed=1)
    net = network()
    snapshots = {}

    class Snapshots(Callback):
        def on_epoch_end(self, trainer, record):
            snapshots[record["epoch"]] = flat(trainer.network).clone()

    trainer = train(
        net,
        inputs,
        y,
        validation=validation,
        eval_loss_fn=scripted_validation_loss(values),
        max_epochs=len(values),
        patience=patience,
        min_delta=min_delta,
        callbacks=[Snapshots()],
    )
    history = trainer.history
    assert len(history.epochs) == epochs
    assert history.stopped == f"early stopping: no improvement for {patience} epochs"
    assert history.best_epoch == best_epoch
    assert history.best_validation_loss == pytest.approx(values[best_epoch - 1])
    assert [r["val_loss"] for r in history.epochs] == pytest.approx(values[:epochs])
    assert torch.equal(flat(net), snapshots[best_epoch])  # the best weights are restored
    assert not torch.equal(flat(net), snapshots[epochs])


def test_monitoring_accuracy_keeps_the_most_accurate_epoch_not_the_lowest_loss():
    """The loss bottoms out at epoch 2 while accuracy peaks at epoch 4: with
    monitor="accuracy" epoch 4's weights are kept and patience counts from there."""
    losses = [0.70, 0.60, 0.65, 0.80, 0.90, 1.00, 1.10, 1.20]
    inputs, y = regression_data(rows=32)
    validation = regression_data(rows=16, seed=1)
    snapshots = {}

    class Snapshots(Callback):
        def on_epoch_end(self, trainer, record):
            snapshots[record["epoch"]] = flat(trainer.network).clone()

    for monitor, best_epoch, epochs in (("loss", 2, 5), ("accuracy", 4, 7)):
        accuracies = iter([0.70, 0.70, 0.74, 0.78, 0.77, 0.78, 0.76, 0.75])
        net = network()
        trainer = train(
            net,
            inputs,
            y,
            validation=validation,
            eval_loss_fn=scripted_validation_loss(losses),
            metric_fn=lambda output, target, values=accuracies: {"accuracy": next(values)},
            monitor=monitor,
            max_epochs=len(losses),
            patience=3,
            min_delta=0.0,
            callbacks=[Snapshots()],
        )
        history = trainer.history
        assert (history.best_epoch, len(history.epochs)) == (best_epoch, epochs), monitor
        assert history.monitor == monitor
        assert history.best_validation_loss == pytest.approx(losses[best_epoch - 1])
        assert torch.equal(flat(net), snapshots[best_epoch])


def test_monitoring_a_metric_the_metric_function_lacks_is_an_error():
    inputs, y = regression_data(rows=32)
    with pytest.raises(ValueError, match=r"monitor .accuracy.*gives rmse\)"):
        train(
            network(),
            inputs,
            y,
            validation=regression_data(rows=16, seed=1),
            metric_fn=lambda output, target: {"rmse": 1.0},
            monitor="accuracy",
        )


def test_monitor_accuracy_is_refused_for_regression():
    frame = pd.DataFrame({"x": np.arange(40.0), "y": np.arange(40.0) * 2})
    with pytest.raises(ConfigError, match="--monitor: accuracy is for classifiers"):
        deepstrata.fit(frame, target="y", monitor="accuracy", max_epochs=1, progress=False)


# -- learning_rate="auto" --------------------------------------------------------------------------


def test_auto_learning_rate_is_the_sweeps_suggestion_and_leaves_the_run_undisturbed():
    inputs, y = regression_data(rows=128)

    def fit(learning_rate):
        net = network(dropout=0.2)
        torch.manual_seed(11)  # dropout draws from the global generator
        return net, train(net, inputs, y, learning_rate=learning_rate, batch_size=32)

    auto_net, trainer = fit("auto")
    suggestion = trainer.range_test.suggestion
    assert trainer.chosen_learning_rate == suggestion
    sweep = trainer.range_test.learning_rates
    assert min(sweep) <= suggestion <= max(sweep)
    assert [group["lr"] for group in trainer.optimizer.param_groups] == [suggestion] * 2

    explicit_net, explicit = fit(suggestion)
    assert explicit.range_test is None
    assert torch.equal(flat(auto_net), flat(explicit_net))

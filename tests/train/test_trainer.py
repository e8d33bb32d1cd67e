import io

import pytest
import torch
from torch.nn import functional as F

from deepstrata.errors import TrainingError
from deepstrata.train.batches import auto_batch_size
from deepstrata.train.progress import Progress
from deepstrata.train.trainer import Trainer
from tests.train.tiny import network, regression_data


def test_full_batch_epoch_matches_a_plain_pytorch_adamw_step():
    """A constant rate, whole-data batches: three epochs are three plain AdamW steps,
    with weight decay on weight matrices only (0.1, large enough to see on a bias)."""
    inputs, y = regression_data()
    ours, reference = network(), network()
    Trainer(
        ours,
        loss_fn=ours.loss,
        batch_size=len(y),
        max_epochs=3,
        learning_rate=1e-2,
        schedule="constant",
        weight_decay=0.1,
        patience=100,
    ).fit(inputs, y)

    matrices = [p for p in reference.parameters() if p.ndim > 1]
    vectors = [p for p in reference.parameters() if p.ndim <= 1]
    groups = [{"params": matrices, "weight_decay": 0.1}, {"params": vectors, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=1e-2)
    for _ in range(3):
        loss = F.mse_loss(reference(inputs), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for (name, a), b in zip(ours.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_same_seed_same_weights_other_seed_other_weights():
    inputs, y = regression_data()

    def train(seed):
        net = network(seed=seed, dropout=0.2)
        Trainer(net, loss_fn=net.loss, batch_size=32, max_epochs=3, seed=seed).fit(inputs, y)
        return torch.cat([p.flatten() for p in net.parameters()])

    assert torch.equal(train(1), train(1))
    assert not torch.equal(train(1), train(2))


def test_early_stopping_waits_for_the_warm_up():
    """Nothing improves (a rate of 1e-9), patience 1: without the wait the run would end
    in epoch 2, inside the one-cycle's warm-up (3 epochs of 10)."""
    inputs, y = regression_data(rows=64)
    net = network()
    trainer = Trainer(
        net,
        loss_fn=net.loss,
        batch_size=16,
        max_epochs=10,
        learning_rate=1e-9,
        patience=1,
        min_delta=1.0,
    )
    history = trainer.fit(inputs, y, validation=(inputs, y))
    assert len(history.epochs) == 3 and history.stopped.startswith("early stopping")
    assert not trainer.schedule.warming_up()


def test_onecycle_runs_its_schedule_epochs_to_the_end():
    inputs, y = regression_data(rows=64)
    net = network()
    trainer = Trainer(
        net, loss_fn=net.loss, batch_size=16, max_epochs=50, schedule_epochs=4, learning_rate=1e-2
    )
    history = trainer.fit(inputs, y, validation=(inputs, y))
    assert len(history.epochs) == 4 and history.stopped == "reached the schedule's end (4)"
    rates = [record["learning_rate"] for record in history.epochs]
    assert max(rates) == pytest.approx(1e-2, rel=0.2) and rates[-1] < 1e-2 / 1e4


def test_early_stopping_restores_the_best_weights():
    inputs, y = regression_data(rows=64)
    gen = torch.Generator().manual_seed(1)
    val_inputs, val_y = (
        {"number": torch.randn(64, 4, generator=gen)},
        torch.randn(64, generator=gen),
    )
    net = network(hidden=(64, 64))  # noisy validation target: it overfits quickly
    history = Trainer(
        net, loss_fn=net.loss, batch_size=16, max_epochs=60, patience=5, learning_rate=1e-2
    ).fit(inputs, y, validation=(val_inputs, val_y))
    assert history.stopped.startswith("early stopping")
    assert history.best_epoch < len(history.epochs)
    with torch.no_grad():
        restored = float(net.loss(net(val_inputs), val_y))
    assert restored == pytest.approx(history.best_validation_loss, rel=1e-5)
    assert history.epochs[-1]["val_loss"] > history.best_validation_loss


def test_time_limit_stops_training_and_says_so():
    inputs, y = regression_data(rows=2048)
    net = network()
    history = Trainer(
        net, loss_fn=net.loss, batch_size=8, max_epochs=10_000, time_limit=0.3, patience=10_000
    ).fit(inputs, y)
    assert "time limit" in history.stopped
    assert history.seconds < 3


def test_plain_progress_lines_when_not_a_terminal():
    inputs, y = regression_data()
    stream = io.StringIO()
    net = network()
    Trainer(
        net, loss_fn=net.loss, max_epochs=3, progress=Progress(stream=stream, line_interval=0)
    ).fit(inputs, y, validation=(inputs, y))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("epoch 1/3") and "val_loss" in lines[0] and "eta" in lines[0]
    assert lines[-1].startswith("reached max epochs (3)")


def test_progress_says_what_auto_chose_before_the_first_epoch(monkeypatch):
    from deepstrata.train import trainer as trainer_module

    monkeypatch.setattr(  # a rigged probe: bf16 twice as fast
        trainer_module,
        "choose_precision",
        lambda step, device: ("bf16", {"choice": "bf16", "speedup": 2.0, "rule": "a rule"}),
    )
    inputs, y = regression_data()
    stream = io.StringIO()
    net = network()
    trainer = Trainer(
        net,
        loss_fn=net.loss,
        max_epochs=2,
        learning_rate="auto",
        precision="auto",
        progress=Progress(stream=stream, line_interval=0),
    )
    trainer.fit(inputs, y)
    lines = stream.getvalue().splitlines()
    assert lines[0] == (
        f"learning rate {trainer.chosen_learning_rate:.3g} from the range test "
        f"({trainer.range_test.rule})"
    )
    assert lines[1] == "precision bf16: reduced precision 2.00x float32's speed (a rule)"
    assert lines[2].startswith("epoch 1/2")


@pytest.mark.parametrize(
    ("rows", "expected"), [(10, 16), (455, 16), (5_000, 128), (1_000_000, 512)]
)
def test_auto_batch_size(rows, expected):
    assert auto_batch_size(rows) == expected


@pytest.mark.parametrize(
    ("row_values", "expected"), [(50, 512), (3 * 64 * 64, 128), (3 * 224 * 224, 16), (10**9, 16)]
)
def test_wide_rows_lower_the_auto_batch_size(row_values, expected):
    assert auto_batch_size(1_000_000, row_values) == expected


def test_a_loss_that_diverges_from_the_start_is_an_error():
    inputs, y = regression_data()
    net = network()
    with pytest.raises(TrainingError, match="non-finite in epoch 1"):
        Trainer(
            net, loss_fn=lambda out, target: net.loss(out, target) * float("inf"), max_epochs=3
        ).fit(inputs, y)


def test_perturb_replaces_the_batch_inputs_before_the_forward_pass():
    """The adversarial-training hook: the network trains on what ``perturb`` returns
    (here, inputs shifted by one), so the step equals a plain step on the shifted inputs."""
    inputs, y = regression_data()
    seen = []

    def shift(net, batch, target):
        seen.append((net, len(target)))
        return {name: value + 1.0 for name, value in batch.items()}

    ours, reference = network(), network()
    Trainer(
        ours,
        loss_fn=ours.loss,
        batch_size=len(y),
        max_epochs=1,
        learning_rate=1e-2,
        schedule="constant",
        weight_decay=0.0,
        perturb=shift,
    ).fit(inputs, y)
    assert seen and seen[0] == (ours, len(y))
    optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.0)
    loss = F.mse_loss(reference({k: v + 1.0 for k, v in inputs.items()}), y)
    loss.backward()
    optimizer.step()
    for (name, a), b in zip(ours.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)

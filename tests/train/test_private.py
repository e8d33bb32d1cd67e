"""fit --private: DP-SGD through Opacus. The noise and the epsilon spent agree with
Opacus's own PrivacyEngine for the same settings; the noise really reaches the weights;
the options it cannot honour are refused before any work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import deepstrata
from deepstrata.config import FitConfig
from deepstrata.errors import ConfigError
from deepstrata.train.private import PrivateTraining, check_private_network
from deepstrata.train.trainer import Trainer
from tests.conftest import torch_threads


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 1))

    def forward(self, inputs, mix=None):
        return self.layers(inputs["x"]).squeeze(-1)


def rows(count=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 4, generator=generator)
    return {"x": x}, (x[:, 0] > 0).float()


def trained(private: PrivateTraining | None, epochs=2, seed=0):
    torch.manual_seed(seed)
    net = Net()
    trainer = Trainer(
        net, loss_fn=nn.functional.binary_cross_entropy_with_logits, learning_rate=1e-2,
        schedule="constant", batch_size=32, max_epochs=epochs, patience=99, seed=seed,
        callbacks=[private] if private else [],
    )  # fmt: skip
    inputs, target = rows()
    with torch_threads(1):
        trainer.fit(inputs, target)
    return net, trainer


@pytest.mark.filterwarnings("ignore:Secure RNG turned off", "ignore:Optimal order")
def test_noise_and_epsilon_agree_with_opacus_privacy_engine():
    from opacus import PrivacyEngine

    private = PrivateTraining(target_epsilon=2.0, target_delta=1e-5, max_grad_norm=1.0)
    _, trainer = trained(private, epochs=2)
    record = private.record()
    assert record["steps"] == record["planned_steps"] == 2 * 8
    assert record["sample_rate"] == 32 / 256

    # Opacus's own route for the same settings: 256 rows, batches of 32, 2 epochs.
    torch.manual_seed(0)
    module = nn.Linear(4, 1)
    inputs, target = rows()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(inputs["x"], target), batch_size=32
    )
    engine = PrivacyEngine(accountant="rdp")
    _, optimizer, loader = engine.make_private_with_epsilon(
        module=module, optimizer=torch.optim.SGD(module.parameters(), lr=0.1),
        data_loader=loader, target_epsilon=2.0, target_delta=1e-5, epochs=2, max_grad_norm=1.0,
    )  # fmt: skip
    assert record["noise_multiplier"] == pytest.approx(optimizer.noise_multiplier, rel=1e-6)
    for _ in range(record["steps"]):
        engine.accountant.step(noise_multiplier=optimizer.noise_multiplier, sample_rate=32 / 256)
    assert record["epsilon"] == pytest.approx(engine.get_epsilon(1e-5), rel=1e-6)
    assert 1.9 < record["epsilon"] <= 2.0 + 1e-6
    assert type(trainer.optimizer).__name__ == "DPOptimizer"


def test_noise_reaches_the_weights_and_leaves_no_hooks():
    plain, _ = trained(None)
    private_net, _ = trained(PrivateTraining(target_epsilon=1.0, seed=0))
    again, _ = trained(PrivateTraining(target_epsilon=1.0, seed=0))
    other, _ = trained(PrivateTraining(target_epsilon=1.0, seed=1))
    weights = [dict(n.state_dict()) for n in (plain, private_net, again, other)]
    key = "layers.0.weight"
    assert torch.equal(weights[1][key], weights[2][key])  # one seed, the same noise
    assert not torch.equal(weights[1][key], weights[3][key])
    assert not torch.allclose(weights[0][key], weights[1][key], atol=1e-3)
    for module in private_net.modules():  # predicts as a plain module again
        assert not module._forward_hooks and not module._backward_hooks
    assert not any(hasattr(p, "grad_sample") for p in private_net.parameters())


def test_batch_norm_and_accumulation_are_refused():
    with pytest.raises(ConfigError, match=r"--private.*BatchNorm"):
        check_private_network(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))
    torch.manual_seed(0)
    trainer = Trainer(
        Net(), loss_fn=nn.functional.binary_cross_entropy_with_logits, learning_rate=1e-2,
        max_epochs=1, gradient_accumulation=2, callbacks=[PrivateTraining()],
    )  # fmt: skip
    with pytest.raises(ConfigError, match="gradient-accumulation"):
        trainer.fit(*rows())


@pytest.mark.parametrize(
    "options, flag",
    [
        ({"folds": 3}, "--folds"),
        ({"ensemble": True}, "--ensemble"),
        ({"gradient_accumulation": 2}, "--gradient-accumulation"),
        ({"gradient_clip": 1.0}, "--gradient-clip"),
        ({"mixup": 0.2}, "--mixup"),
        ({"precision": "bf16"}, "--precision"),
        ({"strategy": "features"}, "--strategy"),
        ({"freeze": "gradual"}, "--freeze"),
        ({"imbalance": "sample"}, "--imbalance"),
        ({"time": "date", "horizon": 3}, "--time"),
    ],
)
def test_options_private_cannot_honour_name_their_flag(options, flag):
    with pytest.raises(ConfigError, match=flag):
        FitConfig(private=True, **options)


def test_private_options_need_private_and_default_under_it():
    with pytest.raises(ConfigError, match=r"--target-epsilon.*--private"):
        FitConfig(target_epsilon=3)
    cfg = FitConfig(private=True)
    assert (cfg.target_epsilon, cfg.max_grad_norm, cfg.ensemble) == (3.0, 1.0, False)


def test_fit_private_records_the_budget():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["y"] = np.where(frame.a > 0, "yes", "no")
    with torch_threads(1):
        model = deepstrata.fit(
            frame, target="y", private=True, target_epsilon=5, max_epochs=3, progress=False
        )
    spent = model.metrics["privacy"]  # metrics.json in the bundle, the report's Privacy section
    assert 0 < spent["epsilon"] <= 5.0 + 1e-6 and spent["steps"] > 0
    assert model.metrics["learning_rate"]["used"] == 1e-3  # no range test on the rows
    assert len(model.members) == 1  # no classical model beside it
    assert model.config.private and model.config.target_epsilon == 5


def test_the_report_shows_what_was_spent():
    from deepstrata.report.inputs import Inputs
    from deepstrata.report.privacy import privacy_section

    spent = {"epsilon": 2.5, "delta": 1e-5, "steps": 10, "planned_steps": 20, "accountant": "rdp"}
    section = privacy_section(Inputs(config={}, metrics={"privacy": spent}, files={}))
    assert section.title == "Privacy" and "epsilon spent" in section.body and "2.5" in section.body
    assert privacy_section(Inputs(config={}, metrics={}, files={})) is None

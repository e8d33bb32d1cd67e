"""Adversarial training through the Trainer's perturb hook, on a tiny pixel network; the
fit options and their refusals. The real-image gain is in test_robustness_digits.py."""

from __future__ import annotations

import pytest
import torch

from deepstrata.attack.adversarial import (
    AdversarialPerturbation,
    AdversarialTraining,
    adversarial_callbacks,
)
from deepstrata.config import FitConfig
from deepstrata.errors import ConfigError
from deepstrata.train.trainer import Trainer
from tests.attack.test_evasion import PixelNet, _image_pre, _pixels


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_perturbation_stays_in_budget_and_is_timed(method):
    network, inputs = PixelNet().train(), _pixels()
    target = torch.arange(8) % 3
    perturb = AdversarialPerturbation(_image_pre(), method=method, epsilon=4 / 255, steps=3)
    changed = perturb(network, inputs, target)["image"]
    assert (changed - inputs["image"].float()).abs().max() <= 4 + 1e-4  # grey levels
    assert not torch.equal(changed, inputs["image"].float())
    assert perturb.seconds > 0
    record = perturb.record(total_seconds=perturb.seconds * 3)
    assert record["time_factor"] == pytest.approx(1.5)


def test_the_callback_trains_on_adversarial_batches_and_records_robustness():
    network, inputs = PixelNet(), _pixels(32)
    target = torch.arange(32) % 3
    validation = (_pixels(16), torch.arange(16) % 3)
    seen = []

    class Spy(AdversarialPerturbation):
        def __call__(self, network, inputs, target):
            changed = super().__call__(network, inputs, target)
            seen.append(not torch.equal(changed["image"], inputs["image"].float()))
            return changed

    callback = AdversarialTraining(method="pgd", epsilon=8 / 255, steps=2).for_split(
        _image_pre(), validation
    )
    trainer = Trainer(
        network, loss_fn=network.loss, max_epochs=1, batch_size=16, callbacks=[callback]
    )
    original = callback.on_fit_start

    def start(trainer):
        original(trainer)
        spy = Spy(_image_pre(), method="pgd", epsilon=8 / 255, steps=2)
        callback.perturbation = trainer.perturb = spy

    callback.on_fit_start = start
    trainer.fit(inputs, target, validation=validation)
    assert seen and all(seen)  # every training batch was replaced
    record = callback.info["adversarial"]
    assert record["method"] == "pgd" and record["steps"] == 2 and record["time_factor"] > 1
    assert 0 <= record["validation_robust_accuracy"] <= 1
    assert 0 <= record["validation_clean_accuracy"] <= 1


def test_fit_options_make_the_callback():
    cfg = FitConfig(adversarial="fgsm", epsilon="2/255", seed=3)
    (callback,) = adversarial_callbacks(cfg)
    assert (callback.method, callback.epsilon, callback.seed) == ("fgsm", 2 / 255, 3)
    assert adversarial_callbacks(FitConfig()) == []
    (default,) = adversarial_callbacks(FitConfig(adversarial="pgd"))
    assert default.epsilon == 8 / 255 and default.steps == 7


def test_features_strategy_is_refused():
    with pytest.raises(ConfigError, match="scratch or finetune") as raised:
        adversarial_callbacks(FitConfig(adversarial="pgd", strategy="features"))
    assert raised.value.option == "--adversarial"

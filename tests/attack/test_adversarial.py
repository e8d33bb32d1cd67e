"""Adversarial training through the Trainer's perturb hook, on a tiny pixel network; the
fit options and their refusals. The real-image gain is in test_robustness_digits.py."""

from __future__ import annotations

import json

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
from tests.attack.conftest import noisy_frame
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


def _fit_adversarial(frame, bundle, **options):
    """fit --adversarial fgsm on a tiny table, 2 epochs; (bundle metrics, report, progress)."""
    import io

    import deepstrata
    from deepstrata.train.progress import Progress
    from tests.conftest import torch_threads

    lines = io.StringIO()
    settings = dict(
        adversarial="fgsm", epsilon="0.5", max_epochs=2, patience=5, batch_size=32,
        learning_rate=3e-3, ensemble=False, calibrate=False, seed=4,
    )  # fmt: skip
    with torch_threads(1):
        model = deepstrata.fit(
            frame, target="y", **{**settings, **options}, progress=Progress(stream=lines),
        )  # fmt: skip
    path = model.save(bundle)
    metrics = json.loads((path / "metrics.json").read_text())
    return metrics, (path / "report.html").read_text(), lines.getvalue()


def test_fit_records_the_undefended_twin_and_the_cost(tmp_path):
    """The twin trains beside the defended network (said on the progress output); the
    bundle's metrics and report carry the cost, the twin's figures and the measured time
    factor; its weights are not in the bundle."""
    frame = noisy_frame(120, seed=5, columns=4)
    metrics, report, progress = _fit_adversarial(frame, tmp_path / "defended")
    record = metrics["adversarial"]
    twin = record["undefended"]
    assert "undefended twin" in progress and "no perturbation" in progress
    assert twin["epochs"] == record["epochs"] == 2 and "method" not in twin
    assert record["clean_accuracy_cost"] == pytest.approx(
        twin["validation_clean_accuracy"] - record["validation_clean_accuracy"]
    )
    assert record["robust_accuracy_gain"] == pytest.approx(
        record["validation_robust_accuracy"] - twin["validation_robust_accuracy"]
    )
    assert record["time_factor"] == pytest.approx(record["epoch_seconds"] / twin["epoch_seconds"])
    assert record["time_factor_basis"].startswith("measured") and "cost_not_measured" not in record
    assert record["time_factor_estimated"] == pytest.approx(
        record["seconds_training"] / (record["seconds_training"] - record["seconds_perturbing"])
    )
    # Same rows, split, seed and settings: the twin is the plain fit of the same data.
    assert "undefended" in report and "Clean-accuracy cost" in report
    assert f"{record['clean_accuracy_cost']:.4f}" in report
    manifest = json.loads((tmp_path / "defended" / "manifest.json").read_text())
    assert not [name for name in manifest["files"] if "undefended" in name]


def test_no_reference_leaves_the_twin_out_and_says_so(tmp_path):
    frame = noisy_frame(120, seed=5, columns=4)
    metrics, report, progress = _fit_adversarial(
        frame, tmp_path / "alone", adversarial_reference=False
    )
    record = metrics["adversarial"]
    assert "undefended" not in record and "clean_accuracy_cost" not in record
    assert "--no-adversarial-reference" in record["cost_not_measured"]
    assert record["time_factor_basis"].startswith("estimated")
    assert "undefended twin" not in progress
    assert "cost was not measured" in report and "--no-adversarial-reference" in report


@pytest.mark.parametrize("ensemble", [False, True])
def test_folds_keep_the_mean_of_each_folds_twin(tmp_path, ensemble):
    """--folds K (refit, or cross-fitted with a classical model): each fold is measured
    beside its own twin; the bundle keeps the means (the refit on every row has no
    validation rows to measure on)."""
    frame = noisy_frame(80, seed=6, columns=3)
    metrics, report, _ = _fit_adversarial(
        frame, tmp_path / "folds", folds=2, max_epochs=1, ensemble=ensemble
    )
    record = metrics["adversarial"]
    assert record["measured_on"] == "each fold's validation rows, mean of 2"
    assert "cost_not_measured" not in record and record["time_factor_basis"].startswith("measured")
    assert 0 <= record["undefended"]["validation_clean_accuracy"] <= 1
    assert "Clean-accuracy cost" in report

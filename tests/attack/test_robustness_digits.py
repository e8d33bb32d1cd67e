"""Real images (scikit-learn's digits, 1797 handwritten scans at 8 px): the attack works
on an undefended network (PGD-10 at 8/255 leaves at most 10 % accuracy) and adversarial
training raises PGD robust accuracy by a stated margin. Slow: two fits of ~1,400 images."""

from __future__ import annotations

import json

import pytest

import deepstrata
from deepstrata.attack.run import run_attack
from tests.attack.images import write_digits
from tests.conftest import torch_threads

pytestmark = pytest.mark.slow

EPSILONS = "2/255,4/255,8/255"
SETTINGS = dict(
    strategy="scratch", max_epochs=20, batch_size=32, learning_rate=3e-3, image_width=16,
    image_depth=2, image_augment="none", ensemble=False, progress=False, seed=0,
)  # fmt: skip
MARGIN = 0.20  # adversarial training's gain in PGD robust accuracy at 4/255, at least


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    write_digits(root / "train", size=8, rows=slice(0, 1400))
    write_digits(root / "test", size=8, rows=slice(1400, None))
    return root


@pytest.fixture(scope="module")
def results(digits):
    table = {}
    with torch_threads(2):
        for name, extra in (
            ("undefended", {}),
            ("fgsm-trained", {"adversarial": "fgsm", "epsilon": "8/255"}),
        ):
            model = deepstrata.fit(digits / "train", **SETTINGS, **extra)
            result = run_attack(
                model, digits / "test", attack="pgd", epsilons=EPSILONS, progress=False
            )
            table[name] = {
                "clean": result["clean_accuracy"],
                **{
                    f"{e['epsilon'] * 255:.0f}/255": e["robust_accuracy"]
                    for e in result["epsilons"]
                },
                "training": model.metrics.get("adversarial"),
            }
            print(name, json.dumps(table[name]), flush=True)
    print(json.dumps(table, indent=2))
    return table


def test_pgd_breaks_an_undefended_image_model(results):
    undefended = results["undefended"]
    assert undefended["clean"] >= 0.8, undefended  # a model worth attacking
    assert undefended["8/255"] <= 0.10, undefended  # else the attack is broken


def test_adversarial_training_raises_robust_accuracy(results):
    plain, trained = results["undefended"], results["fgsm-trained"]
    assert trained["4/255"] >= plain["4/255"] + MARGIN, results
    assert trained["8/255"] > plain["8/255"], results
    record = trained["training"]
    assert record["method"] == "fgsm" and record["time_factor"] > 1.0
    assert 0 <= record["validation_robust_accuracy"] <= record["validation_clean_accuracy"]

"""Real images (scikit-learn's digits, 1797 handwritten scans at 8 px): the attack works
on an undefended network (PGD-10 at 8/255 leaves at most 10 % accuracy) and adversarial
training raises PGD robust accuracy by a stated margin. Slow: one ``fit --adversarial``
of ~1,400 images, which trains the undefended twin beside the defended network; the
clean-accuracy cost, both networks' figures and the time factor are read from the bundle.
"""

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
MARGIN = 0.20  # adversarial training's gain in PGD-10 robust accuracy at 8/255, at least


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    write_digits(root / "train", size=8, rows=slice(0, 1400))
    write_digits(root / "test", size=8, rows=slice(1400, None))
    return root


@pytest.fixture(scope="module")
def results(digits, tmp_path_factory):
    with torch_threads(2):
        model = deepstrata.fit(digits / "train", **SETTINGS, adversarial="fgsm", epsilon="8/255")
        bundle = model.save(tmp_path_factory.mktemp("bundle") / "fgsm-trained")
        result = run_attack(model, digits / "test", attack="pgd", epsilons=EPSILONS, progress=False)
    record = json.loads((bundle / "metrics.json").read_text())["adversarial"]
    table = {
        "training": record,
        "test": {
            "clean": result["clean_accuracy"],
            **{f"{e['epsilon'] * 255:.0f}/255": e["robust_accuracy"] for e in result["epsilons"]},
        },
        "report": (bundle / "report.html").read_text(),
    }
    print(json.dumps({k: v for k, v in table.items() if k != "report"}, indent=2), flush=True)
    return table


def test_pgd_breaks_an_undefended_image_model(results):
    undefended = results["training"]["undefended"]  # the twin, on the validation rows
    assert undefended["validation_clean_accuracy"] >= 0.8, undefended  # worth attacking
    assert undefended["validation_robust_accuracy"] <= 0.10, undefended  # else attack broken


def test_adversarial_training_raises_robust_accuracy_at_a_measured_cost(results):
    record, test = results["training"], results["test"]
    plain = record["undefended"]
    assert record["method"] == "fgsm" and record["time_factor"] > 1.0, record
    assert record["time_factor_basis"].startswith("measured"), record
    assert record["robust_accuracy_gain"] >= MARGIN, record
    assert record["clean_accuracy_cost"] == pytest.approx(
        plain["validation_clean_accuracy"] - record["validation_clean_accuracy"]
    )
    assert 0 <= record["validation_robust_accuracy"] <= record["validation_clean_accuracy"]
    # The attack command on held-out digits agrees with the bundle's validation figure.
    assert test["8/255"] >= plain["validation_robust_accuracy"] + MARGIN, results
    assert test["2/255"] >= test["4/255"] >= test["8/255"], test
    assert "Clean-accuracy cost" in results["report"]

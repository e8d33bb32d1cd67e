"""run_attack on the session's churn bundle (numbers with missing values, categories,
dates): every refusal before any work, then clean and robust accuracy per budget."""

from __future__ import annotations

import re

import pytest

import deepstrata
from deepstrata.attack.run import run_attack
from deepstrata.errors import ConfigError, DataError
from tests.conftest import make_churn_frame, torch_threads


@pytest.fixture(scope="module")
def model(fitted_churn_bundle):
    return deepstrata.load(fitted_churn_bundle)


@pytest.fixture(scope="module")
def frame():
    return make_churn_frame(rows=60, seed=5)


def test_pgd_lowers_accuracy_and_reports_each_budget(model, frame):
    with torch_threads(1):
        result = run_attack(
            model, frame, attack="pgd", epsilons="0.05,0.5", steps=5, progress=False
        )
    assert result["units"]["number"].startswith("fraction of each column's inter-quartile")
    assert result["units"]["category"].startswith("embedding space")
    clean = result["clean_accuracy"]
    small, large = (entry["robust_accuracy"] for entry in result["epsilons"])
    assert clean >= small >= large and large < clean
    assert 0 < result["epsilons"][1]["success_rate"] <= 1
    example = result["examples"][0]
    assert example["clean_prediction"] != example["adversarial_prediction"]
    moved = [n for n in example["numbers"] if n["before"] != n["after"]]
    assert moved, example  # raw units, the scaling undone


def test_fgsm_is_one_step(model, frame):
    with torch_threads(1):
        result = run_attack(model, frame, attack="fgsm", epsilons=[0.3], progress=False)
    assert result["steps"] == 1 and not result["random_start"]


@pytest.mark.parametrize(
    ("options", "flag", "words"),
    [
        ({"epsilons": "8"}, "--epsilon", "did you mean 8/255"),
        ({"epsilons": "-0.1"}, "--epsilon", "in (0, 1]"),
        ({"epsilons": "1/0"}, "--epsilon", "fraction such as 8/255"),
        ({"attack": "carlini"}, "--attack", "expected one of fgsm, pgd, hopskipjump"),
        ({"norm": "l1"}, "--norm", "linf, l2"),
        ({"max_rows": 10}, "--max-rows", "60 rows"),
    ],
)
def test_bad_options_fail_before_any_work(model, frame, options, flag, words):
    with pytest.raises(ConfigError, match=re.escape(words)) as raised:
        run_attack(model, frame, progress=False, **options)
    assert raised.value.option == flag


def test_a_missing_target_column_is_named(model, frame):
    with pytest.raises(DataError, match="churned"):
        run_attack(model, frame.drop(columns="churned"), progress=False)


def test_gradient_attacks_refuse_classical_members(model, frame):
    class Head:
        name = "gbm"

    class Classical:  # a member without a network, as --strategy features or an ensemble gives
        head = Head()

    ensemble = type(model).__new__(type(model))
    ensemble.__dict__.update(model.__dict__, members=[model.members[0], Classical()])
    with pytest.raises(ConfigError, match="use --attack hopskipjump") as raised:
        run_attack(ensemble, frame, attack="pgd", progress=False)
    assert raised.value.option == "--attack"

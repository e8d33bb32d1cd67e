"""The contract every classical head keeps, checked over every head x task on real data."""

from __future__ import annotations

import functools
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from deepstrata.classical import HEADS, head_from_state, new_head
from deepstrata.errors import ConfigError, DataError
from tests.classical.conftest import TASKS, Split, load_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The heads score 0.956-0.982 on breast cancer, 0.917-1.0 on wine and R^2 0.22 (SVR)
# to 0.31 on diabetes (a hard split: ridge gets 0.31). A head that predicts the
# majority class scores about 0.63 and 0.4; one that predicts the mean, R^2 <= 0.
FLOORS = {"binary": 0.9, "multiclass": 0.8, "regression": 0.15}


@functools.cache
def fitted(name: str, task: str):
    """The head fitted on the task's training rows, with validation (cached: fits are shared)."""
    split = load_split(task)
    head = new_head(name, task=task, num_classes=split.num_classes, seed=0)
    assert head.fit(*split.train, validation=split.validation) is head
    return head


def quality(task: str, outputs: np.ndarray, target: np.ndarray) -> float:
    """Accuracy (classification) or R^2 (regression)."""
    if task == "binary":
        return float(((outputs > 0) == target).mean())
    if task == "multiclass":
        return float((outputs.argmax(axis=1) == target).mean())
    return 1.0 - float(((target - outputs) ** 2).sum() / ((target - target.mean()) ** 2).sum())


@pytest.mark.parametrize("name", HEADS)
def test_quality_on_held_out_rows_clears_the_floor(name, split: Split):
    features, target = split.test
    score = quality(split.task, fitted(name, split.task).outputs(features), target)
    assert score >= FLOORS[split.task], f"{name} on {split.task}: {score:.3f}"


@pytest.mark.parametrize("name", HEADS)
def test_outputs_follow_the_network_heads_shapes(name, split: Split):
    head = fitted(name, split.task)
    features = split.test[0]
    outputs = head.outputs(features)
    expected = (len(features), 3) if split.task == "multiclass" else (len(features),)
    assert outputs.shape == expected and outputs.dtype == np.float64
    assert np.isfinite(outputs).all()
    # A row's output does not depend on the rows beside it (single-row serving); the MLP
    # computes in float32, where a batch's matrix product may sum in another order.
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if name == "mlp" else {"rtol": 1e-9, "atol": 1e-12}
    np.testing.assert_allclose(head.outputs(features[:1]), outputs[:1], **tolerance)
    np.testing.assert_allclose(head.outputs(features[5:9]), outputs[5:9], **tolerance)
    assert head.outputs(features.astype(np.float32)).shape == expected


@pytest.mark.parametrize("name", HEADS)
def test_state_round_trips_through_json_and_safetensors(name, split: Split, tmp_path):
    head = fitted(name, split.task)
    meta, arrays = head.state()
    assert meta["head"] == name and meta["task"] == split.task
    for key, array in arrays.items():
        assert array.dtype in (np.float32, np.float64, np.int64), key
        assert array.flags.c_contiguous, key
    save_file(arrays, str(tmp_path / "head.safetensors"))
    restored = head_from_state(
        json.loads(json.dumps(meta)), load_file(str(tmp_path / "head.safetensors"))
    )
    assert type(restored) is type(head)
    features = split.test[0]
    np.testing.assert_array_equal(restored.outputs(features), head.outputs(features))


@pytest.mark.parametrize("name", HEADS)
def test_same_seed_same_outputs_and_the_callers_generators_untouched(name):
    split = load_split("multiclass")
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    before = (random.random(), np.random.random(), torch.rand(1).item())
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    head = new_head(name, task="multiclass", num_classes=3, seed=0)
    head.fit(*split.train, validation=split.validation)
    assert (random.random(), np.random.random(), torch.rand(1).item()) == before
    features = split.test[0]
    np.testing.assert_array_equal(
        head.outputs(features), fitted(name, "multiclass").outputs(features)
    )


@pytest.mark.parametrize("name", HEADS)
def test_fit_leaves_the_hyperparameters_as_given(name):
    split = load_split("binary")
    head = new_head(name, task="binary", num_classes=2)
    settings = dict(vars(head))
    head.fit(*split.train)
    assert {key: value for key, value in vars(head).items() if not key.endswith("_")} == settings


@pytest.mark.parametrize("name", HEADS)
def test_a_class_without_training_rows_is_never_predicted(name):
    # In a cross-validation fold a rare class can be missing from the training rows.
    split = load_split("multiclass")
    features, target = split.train
    head = new_head(name, task="multiclass", num_classes=4, seed=0).fit(features, target)
    outputs = head.outputs(split.test[0])
    assert outputs.shape == (len(split.test[0]), 4) and np.isfinite(outputs).all()
    assert (outputs.argmax(axis=1) != 3).all()
    assert quality("multiclass", outputs, split.test[1]) >= FLOORS["multiclass"]


@pytest.mark.parametrize("name", HEADS)
def test_bad_inputs_are_data_errors(name):
    split = load_split("binary")
    features, target = split.train
    head = new_head(name, task="binary", num_classes=2)
    with pytest.raises(RuntimeError, match="not fitted"):
        head.outputs(features)
    with pytest.raises(DataError, match="one class only"):
        head.fit(features, np.zeros(len(features), dtype=np.int64))
    with pytest.raises(DataError, match=r"class indices in 0\.\.1"):
        head.fit(features, target + 1)
    with pytest.raises(DataError, match="shape"):
        head.fit(features, target[:-1])
    with_infinity = features.copy()
    with_infinity[3, 2] = np.inf
    with pytest.raises(DataError, match="infinity") as error:
        head.fit(with_infinity, target)
    assert error.value.row == 4 and error.value.column == "feature 2"
    head = fitted(name, "binary")
    with pytest.raises(DataError, match="expected 30 feature columns"):
        head.outputs(features[:, :10])


def test_gbm_takes_missing_values_the_others_refuse():
    split = load_split("binary")
    features, target = split.train
    with_missing = features.copy()
    with_missing[::7, 0] = np.nan
    outputs = new_head("gbm", task="binary").fit(with_missing, target).outputs(with_missing)
    assert np.isfinite(outputs).all()
    for name in ("logreg", "svm", "mlp"):
        with pytest.raises(DataError, match="NaN"):
            new_head(name, task="binary").fit(with_missing, target)


def test_an_unknown_head_names_the_flag_and_the_choices():
    with pytest.raises(ConfigError, match="logreg, svm, gbm, mlp, forest") as error:
        new_head("ferns", task="binary", num_classes=2)
    assert error.value.option == "--head" and "'ferns'" in str(error.value)
    with pytest.raises(ValueError, match="'ferns'"):
        head_from_state({"head": "ferns", "task": "binary"}, {})


def test_an_unknown_task_names_the_flag():
    split = load_split("binary")
    with pytest.raises(ConfigError) as error:
        new_head("logreg", task="ranking").fit(*split.train)
    assert error.value.option == "--task"


def test_new_head_passes_hyperparameters_and_the_state_keeps_them():
    split = load_split("binary")
    head = new_head("logreg", task="binary", num_classes=2, seed=3, C=0.1).fit(*split.train)
    meta, _ = head.state()
    assert meta["hyperparameters"]["C"] == 0.1 and meta["seed"] == 3
    from deepstrata.classical import SVMHead

    with pytest.raises(ValueError, match="reads the state of a 'svm' head, not 'logreg'"):
        SVMHead.from_state(meta, {})


@pytest.mark.parametrize("name", HEADS)
def test_the_state_keeps_every_constructor_argument(name):
    import inspect

    from deepstrata.classical import check_state, state_meta

    head = new_head(name, task="binary", num_classes=2, seed=4)
    meta = state_meta(head)
    arguments = set(inspect.signature(type(head).__init__).parameters) - {
        "self", "task", "num_classes", "seed",
    }  # fmt: skip
    assert set(meta["hyperparameters"]) == arguments
    again = check_state(type(head), meta)
    assert state_meta(again) == meta


def test_every_head_is_registered_under_its_name():
    from deepstrata import classical

    for name in HEADS:
        head = new_head(name, task="regression")
        assert head.name == name
        assert getattr(classical, type(head).__name__) is type(head)


@pytest.mark.parametrize("task", TASKS)
def test_heads_agree_with_each_other_on_most_test_rows(task):
    # A head that learnt the wrong sign or class order would disagree with the rest.
    split = load_split(task)
    if task == "regression":
        outputs = [fitted(name, task).outputs(split.test[0]) for name in HEADS]
        assert min(np.corrcoef(outputs)[np.triu_indices(len(HEADS), 1)]) > 0.6
        return
    decide = (lambda o: o > 0) if task == "binary" else (lambda o: o.argmax(axis=1))
    predictions = [decide(fitted(name, task).outputs(split.test[0])) for name in HEADS]
    for other in predictions[1:]:
        assert (other == predictions[0]).mean() >= 0.85


def test_loading_a_linear_svm_or_forest_head_needs_neither_scikit_learn_nor_lightgbm(tmp_path):
    split = load_split("binary")
    for name in ("logreg", "svm", "forest"):
        meta, arrays = fitted(name, "binary").state()
        (tmp_path / f"{name}.json").write_text(json.dumps(meta))
        save_file(arrays, str(tmp_path / f"{name}.safetensors"))
    np.save(tmp_path / "features.npy", split.test[0][:5])
    script = f"""
import json, sys
import numpy as np
from safetensors.numpy import load_file
from deepstrata.classical import head_from_state
for name in ("logreg", "svm", "forest"):
    meta = json.loads(open(r"{tmp_path}/" + name + ".json").read())
    head = head_from_state(meta, load_file(r"{tmp_path}/" + name + ".safetensors"))
    head.outputs(np.load(r"{tmp_path}/features.npy"))
print(sorted(m for m in ("sklearn", "lightgbm", "torch") if m in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr

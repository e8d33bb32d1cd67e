"""``fit --ensemble --folds K``: both sides cross-fitted, the weight chosen out of fold."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import deepstrata
import deepstrata.recipes.crossfit as crossfit
from deepstrata.config import FitConfig
from deepstrata.data.sources import read_table
from deepstrata.recipes.crossfit import cross_fit, nested_splits
from deepstrata.recipes.prepare import assemble
from deepstrata.recipes.prepare import prepare as _prepare
from deepstrata.seeding import preserved_random_state
from deepstrata.train.progress import Progress
from tests.conftest import FAST_FIT, make_churn_frame

FOLDS = 3


def test_nested_splits_never_stop_on_the_held_out_fold():
    labels = np.array([0] * 30 + [1] * 12 + [2] * 6)
    splits = nested_splits(labels, folds=FOLDS, stratify=True, fraction=0.2, seed=0)
    held = np.concatenate([held_out for _, _, held_out in splits])
    assert sorted(held) == list(range(len(labels)))  # every row held out exactly once
    for fit, stop, held_out in splits:
        assert not set(fit) & set(stop) and not (set(fit) | set(stop)) & set(held_out)
        assert sorted([*fit, *stop, *held_out]) == list(range(len(labels)))
        assert set(labels[stop]) == {0, 1, 2}  # stratified: every class stops the training


@pytest.fixture(scope="module")
def churn():
    frame = make_churn_frame(rows=240, seed=5)
    return frame.iloc[:180].reset_index(drop=True), frame.iloc[180:]


@pytest.fixture(scope="module")
def cross_fitted(churn):
    train, _ = churn
    return deepstrata.fit(train, target="churned", ensemble=True, folds=FOLDS, seed=0, **FAST_FIT)


def test_the_verdict_is_taken_on_every_rows_out_of_fold_outputs(cross_fitted, churn):
    model, (train, test) = cross_fitted, churn
    verdict = model.metrics["ensemble"]
    assert verdict["cross_fitted"]["folds"] == FOLDS
    assert verdict["cross_fitted"]["rows"] == len(train)
    assert "out-of-fold log_loss" in verdict["reason"]
    assert verdict["reason"].endswith(f"({FOLDS} folds, {len(train)} rows)")
    assert {row["head"] for row in verdict["classical_heads"]} == {"logreg", "svm", "gbm"}
    best = min(verdict["classical_heads"], key=lambda row: row["log_loss"])
    assert verdict["classical"] == best["head"]  # the lowest out-of-fold loss
    assert model.metrics["rows"] == {"train": len(train), "validation": len(train)}
    assert len(model.metrics["cross_validation"]["per_fold"]) == FOLDS
    # The validation metrics are those of the model kept, over every row out of fold.
    kept = verdict["validation"]["ensemble" if verdict["kept"] else verdict["returned"]]
    assert model.metrics["validation"]["log_loss"] == pytest.approx(kept, rel=1e-6)
    members = {"ensemble": 2 * FOLDS}.get(verdict["returned"], FOLDS)
    assert len(model.members) == members
    if verdict["kept"]:
        w = verdict["weight_network"]
        assert model.weights == pytest.approx([w / FOLDS] * FOLDS + [(1 - w) / FOLDS] * FOLDS)
    assert model.evaluate(test)["accuracy"] > 0.7


def test_fit_keeps_exactly_the_cross_fit_the_benchmark_scores(cross_fitted, churn):
    train, test = churn
    cfg = FitConfig(target="churned", ensemble=True, folds=FOLDS, seed=0, max_epochs=5)
    with preserved_random_state():
        prepared = _prepare(read_table(train), cfg.validate())
        fit = cross_fit(
            prepared, run=None, resume=False, progress=Progress(enabled=False), callbacks=[]
        )
    members, weights = fit.members(fit.verdict["weight_network"])
    again = assemble(prepared, members, {}, weights=weights)
    np.testing.assert_allclose(
        again.predict_proba(test), cross_fitted.predict_proba(test), atol=1e-6
    )
    network_only, _ = fit.members(1.0)
    classical_only, _ = fit.members(0.0)
    assert [type(m).__name__ for m in network_only] == ["Member"] * FOLDS
    assert [type(m).__name__ for m in classical_only] == ["FeatureMember"] * FOLDS


def test_no_fold_model_sees_the_rows_it_predicts(churn, monkeypatch):
    train, _ = churn
    seen = []
    real_network, real_classical = crossfit.train_fold, crossfit.train_features

    def network(prepared, fit_rows, stop_rows, *args):
        seen.append(("network", set(fit_rows) | set(stop_rows)))
        return real_network(prepared, fit_rows, stop_rows, *args)

    def classical(prepared, fit_rows, stop_rows, **kwargs):
        seen.append(("classical", set(fit_rows) | set(stop_rows)))
        return real_classical(prepared, fit_rows, stop_rows, **kwargs)

    predicted = []
    real_outputs = crossfit.held_out_outputs

    def outputs(prepared, member, rows):
        predicted.append(set(rows))
        return real_outputs(prepared, member, rows)

    monkeypatch.setattr(crossfit, "train_fold", network)
    monkeypatch.setattr(crossfit, "train_features", classical)
    monkeypatch.setattr(crossfit, "held_out_outputs", outputs)
    deepstrata.fit(
        train, target="churned", ensemble=True, folds=FOLDS, head="logreg", seed=1, **FAST_FIT
    )
    assert [side for side, _ in seen] == ["network", "classical"] * FOLDS
    assert len(predicted) == 2 * FOLDS
    for (side, trained_on), rows in zip(seen, predicted):
        assert not trained_on & rows, f"a {side} fold model trained or stopped on its held-out rows"
    assert set().union(*predicted) == set(range(len(train)))


def test_a_cross_fitted_bundle_round_trips_without_pickle(cross_fitted, churn, tmp_path):
    _, test = churn
    path = cross_fitted.save(tmp_path / "bundle")
    config = json.loads((path / "config.json").read_text())
    assert len(config["members"]) == len(cross_fitted.members)
    assert config.get("member_weights") == cross_fitted.weights
    assert {file.suffix for file in path.iterdir()} <= {
        ".json", ".jsonl", ".csv", ".png", ".txt", ".html", ".safetensors",
    }  # fmt: skip
    oof = pd.read_csv(path / "oof_predictions.csv")
    assert sorted(oof["fold"].unique()) == list(range(1, FOLDS + 1))
    loaded = deepstrata.load(path)
    np.testing.assert_allclose(
        loaded.predict_proba(test), cross_fitted.predict_proba(test), atol=1e-6
    )
    report = (path / "report.html").read_text()
    assert "Cross-validation" in report and "out-of-fold log_loss" in report


def test_regression_is_cross_fitted_on_squared_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["y"] = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.3, 120)
    model = deepstrata.fit(frame, target="y", ensemble=True, folds=FOLDS, **FAST_FIT)
    verdict = model.metrics["ensemble"]
    assert verdict["metric"] == "mse" and verdict["classical"] in ("logreg", "svm", "gbm")
    # A linear target: the linear model alone is far better than 5 epochs of network.
    assert verdict["validation"]["classical"] < verdict["validation"]["network"]
    assert model.evaluate(frame)["r2"] > 0.8


def test_cv_model_auto_keeps_the_folds_under_ensemble_and_refits_otherwise():
    assert FitConfig(ensemble=True, folds=3).validate().cv_model == "ensemble"
    assert FitConfig(folds=3).validate().cv_model == "refit"
    assert FitConfig(folds=3, cv_model="ensemble").validate().cv_model == "ensemble"


def test_a_class_too_small_to_stop_on_in_a_fold_is_named():
    # Two folds of two rows a class: each fold trains on one row a class, none to stop on.
    frame = pd.DataFrame({"x": range(6), "y": ["a", "a", "b", "b", "c", "c"]})
    with pytest.raises(deepstrata.errors.DataError, match=r"column 'y'.*fewer folds"):
        deepstrata.fit(frame, target="y", ensemble=True, folds=2, **FAST_FIT)


def test_cli_fit_ensemble_folds_prints_folds_and_the_verdict(cli, churn_csv, tmp_path):
    result = cli(
        "fit", churn_csv, "--target", "churned", "--ensemble", "--folds", "3",
        "--max-epochs", "2", "-o", tmp_path / "bundle",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "fold 1/3:" in result.err and "to stop on" in result.err
    verdict = json.loads((tmp_path / "bundle" / "metrics.json").read_text())["ensemble"]
    assert f"ensemble with {verdict['classical']}: {verdict['reason']}" in result.out
    assert "3-fold cross-validation" in result.out


def test_the_svm_is_skipped_above_its_size_and_said_so(monkeypatch):
    monkeypatch.setattr("deepstrata.classical.svm.MAX_ROWS", 20)
    frame = make_churn_frame(rows=60, seed=2)
    model = deepstrata.fit(frame, target="churned", ensemble=True, folds=FOLDS, **FAST_FIT)
    heads = {row["head"]: row for row in model.metrics["ensemble"]["classical_heads"]}
    assert heads["svm"] == {"head": "svm", "skipped": "more than 20 training rows"}
    assert model.metrics["ensemble"]["classical"] in ("logreg", "gbm")

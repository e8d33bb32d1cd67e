"""``deepstrata audit-data`` end to end: duplicates and leakage planted in a real table
(wine) all listed, label errors from out-of-fold probabilities written with every row,
and bad input refused before any work with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_churn_frame

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def wine_files(tmp_path):
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.sample(frac=1.0, random_state=0)
    train, test = frame.iloc[:140].reset_index(drop=True), frame.iloc[140:]
    train = pd.concat([train, train.iloc[[3, 5, 7]]], ignore_index=True)  # rows 141-143
    test = pd.concat([test, train.iloc[[10, 11]]], ignore_index=True)  # leaked: 39, 40
    near = train.iloc[[20]].assign(alcohol=lambda f: f["alcohol"] + 1e-4)
    test = pd.concat([test, near], ignore_index=True)  # nearly leaked: 41
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return tmp_path / "train.csv", tmp_path / "test.csv"


def test_duplicates_and_leakage_through_the_command(cli, wine_files, tmp_path):
    train, test = wine_files
    out = tmp_path / "wine.audit-data"
    result = cli(
        "audit-data", train, "--target", "target", "--test", test, "--no-labels", "-o", out
    )
    assert result.code == 0, result.err
    assert "3 rows in 3 groups" in result.out and "2 exact, 1 near, of 41" in result.out
    report = json.loads((out / "audit_data.json").read_text())
    assert [g["rows"] for g in report["duplicates"]["exact"]["groups"]] == [
        [4, 141],
        [6, 142],
        [8, 143],
    ]
    leak = report["leakage"]
    assert leak["exact"]["test_rows"] == [39, 40]
    assert (
        leak["near"]["pairs"][0]["test_row"] == 41 and leak["near"]["pairs"][0]["train_row"] == 21
    )
    listed = pd.read_csv(out / "leakage.csv")
    assert listed["test_row"].tolist() == [39, 40, 41]
    assert sorted(pd.read_csv(out / "duplicates.csv")["row"]) == [4, 6, 8, 141, 142, 143]
    assert "label_issues" not in report and not (out / "label_issues.csv").exists()


def test_label_issues_through_the_command(cli, tmp_path):
    frame = make_churn_frame()
    flipped = np.arange(0, 200, 20)
    frame.loc[flipped, "churned"] = np.where(frame.loc[flipped, "churned"] == "yes", "no", "yes")
    frame.to_csv(tmp_path / "churn.csv", index=False)
    out = tmp_path / "audit"
    result = cli(
        "audit-data",
        tmp_path / "churn.csv",
        "--target",
        "churned",
        "--folds",
        "3",
        "--max-epochs",
        "8",
        "--no-ensemble",
        "-q",
        "-o",
        out,
        "--json",
    )
    assert result.code == 0, result.err
    report = json.loads(result.out)
    issues = pd.read_csv(out / "label_issues.csv")
    found = report["label_issues"]
    assert found["rows_checked"] == 200 and found["found"] == len(issues) > 0
    worst = pd.DataFrame(found["worst"])
    assert worst[["row", "given", "suggested"]].equals(
        issues.head(20)[["row", "given", "suggested"]]
    )
    assert np.allclose(worst["quality"], issues.head(20)["quality"])
    assert set(issues["given"]) <= {"yes", "no"}
    assert (issues["given"] != issues["suggested"]).all()
    assert len(set(issues["row"] - 1) & set(flipped)) >= 5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--target", "nope"], "nope"),
        (["--target", "alcohol"], "--target: label errors are for classifiers"),
        (["--target", "target", "--folds", "1"], "--folds: must be >= 2"),
        (["--target", "target", "--test", "{wrong}", "--no-labels"], "lacks input column(s) 'hue'"),
        (["--target", "target", "--near-tolerance", "-1", "--no-labels"], "--near-tolerance"),
        (["--target", "target", "--strategy", "cnn"], "--strategy"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(cli, wine_files, tmp_path, flags, message):
    wrong = tmp_path / "wrong.csv"
    pd.read_csv(wine_files[1]).drop(columns=["hue"]).to_csv(wrong, index=False)
    out = tmp_path / "out"
    flags = [f.replace("{wrong}", str(wrong)) for f in flags]
    result = cli("audit-data", wine_files[0], *flags, "-o", out)
    assert message in result.error_line()
    assert not out.exists()


def test_image_files_are_compared_by_content(cli, tmp_path):
    """Digits as PNG folders (scikit-learn's images): a copy of a training image under
    another name and class is a duplicate with two labels; copies in the test folder leak."""
    import shutil

    from deepstrata.datasets.raw import digit_images

    root = digit_images(tmp_path / "digits", test_fraction=0.1)
    train, test = root / "train", root / "test"
    first = sorted((train / "3").iterdir())[0]
    shutil.copy(first, train / "8" / "copy-of-a-three.png")
    for number, image in enumerate(sorted((train / "5").iterdir())[:4]):
        shutil.copy(image, test / "5" / f"leaked-{number}.png")
    out = tmp_path / "audit"
    result = cli(
        "audit-data",
        train,
        "--target",
        "label",
        "--test",
        test,
        "--no-labels",
        "--no-embeddings",
        "--no-backdoor",
        "-o",
        out,
    )
    assert result.code == 0, result.err
    report = json.loads((out / "audit_data.json").read_text())
    exact = report["duplicates"]["exact"]
    conflicting = [g for g in exact["groups"] if len(g["labels"]) > 1]
    assert ["3", "8"] in [g["labels"] for g in conflicting]
    assert report["leakage"]["exact"]["rows"] >= 4


@pytest.mark.slow  # a network on images, twice: over a minute on 2 cores
def test_label_issues_of_a_folder_name_the_files(cli, tmp_path):
    from deepstrata.datasets.raw import digit_images

    train = digit_images(tmp_path / "digits", test_fraction=0.85) / "train"
    out = tmp_path / "audit"
    result = cli(
        "audit-data",
        train,
        "--target",
        "label",
        "--folds",
        "2",
        "--max-epochs",
        "2",
        "--learning-rate",
        "0.003",
        "-q",
        "-o",
        out,
    )
    assert result.code == 0, result.err
    issues = pd.read_csv(out / "label_issues.csv")
    assert list(issues.columns[:2]) == ["row", "image"]  # a folder's column of files
    assert len(issues) > 0 and all((train / path).is_file() for path in issues["image"])


def test_strategy_scratch_takes_label_errors_from_the_networks_not_the_embeddings():
    """With embeddings at hand, label errors come from a logistic regression on them,
    unless --strategy scratch (or finetune) asks for the K networks' outputs."""
    pytest.importorskip("cleanlab", reason="the audit extra")
    from deepstrata.audit.dataset import _label_issues
    from deepstrata.config import FitConfig
    from deepstrata.data.sources import read_table

    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    table = read_table(pd.DataFrame({"x": x, "y": np.where(x > 0, "up", "down")}))
    vectors = np.c_[x, rng.normal(size=60)]
    fast = {"target": "y", "folds": 2, "max_epochs": 1, "learning_rate": 3e-3, "ensemble": False}
    embedded, _ = _label_issues(table, FitConfig(**fast), vectors, progress=False)
    assert embedded["model"].startswith("a logistic regression on pretrained embeddings")
    networks, issues = _label_issues(
        table, FitConfig(**fast, strategy="scratch"), vectors, progress=False
    )
    assert networks["model"] == "2 networks (scratch)" and networks["rows_checked"] == 60
    assert set(issues.columns) >= {"row", "given", "suggested", "quality"}

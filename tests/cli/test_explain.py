"""``deepstrata explain`` end to end on a real table from an installed package
(scikit-learn's diabetes data: 442 patients, 10 measurements, a disease progression
score), and its refusals: named, before any work, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepstrata

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.integration]
pytest.importorskip("shap", reason="the explain extra (shap, captum, lime) is not installed")
pytest.importorskip("captum")


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory) -> tuple[Path, Path]:
    """(a bundle fitted as `deepstrata fit` would, with its defaults, the data's CSV)."""
    from sklearn.datasets import load_diabetes

    from tests.conftest import torch_threads

    data = load_diabetes(as_frame=True).frame
    folder = tmp_path_factory.mktemp("diabetes")
    csv = folder / "diabetes.csv"
    data.to_csv(csv, index=False)
    with torch_threads(1):
        model = deepstrata.fit(data, target="target", max_epochs=10, progress=False, seed=0)
    return model.save(folder / "bundle"), csv


def test_explain_writes_attributions_json_and_html(diabetes, cli, tmp_path):
    bundle, csv = diabetes
    out = tmp_path / "out"
    result = cli("explain", bundle, csv, "-o", out, "--method", "exact", "--rows", "0:25")
    assert result.code == 0, result.err
    assert "global importance" in result.out and "deletion_area" in result.out
    attributions = pd.read_csv(out / "attributions.csv")
    columns = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert attributions.columns.tolist() == ["row", "prediction", "base_value", *columns]
    assert attributions.row.tolist() == list(range(25))
    sums = attributions[columns].sum(axis=1)
    np.testing.assert_allclose(sums, attributions.prediction - attributions.base_value, atol=1e-3)
    document = json.loads((out / "explain.json").read_text())
    assert document["method"] == "exact"
    assert document["faithfulness"]["completeness_gap"] < 1e-6
    first = document["global_importance"][0]
    assert first["low"] <= first["importance"] <= first["high"]
    html = (out / "explain.html").read_text()
    assert "What drives the predictions" in html and "Content-Security-Policy" in html
    # bmi and s5 (blood serum triglycerides) lead, as every model of this data finds
    assert {"bmi", "s5"} & {entry["column"] for entry in document["global_importance"][:3]}


def test_json_on_stdout_and_parquet(diabetes, cli, tmp_path):
    bundle, csv = diabetes
    out = tmp_path / "out"
    result = cli(
        "explain", bundle, csv, "-o", out, "--method", "permutation", "--rows", "400:",
        "--json", "--format", "parquet", "--no-faithfulness",
    )  # fmt: skip
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert [row["row"] for row in document["rows"]] == list(range(400, 442))
    assert document["faithfulness"] == {}
    assert len(pd.read_parquet(out / "attributions.parquet")) == 42


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--rows", "430:450"], "--rows: rows 430:450 are outside the data (442 rows"),
        (["--rows", "five"], "--rows: expected START:STOP"),
        ([], "--max-rows: 442 rows to explain, more than 100"),
        (["--rows", "0:5", "--method", "attention"], "--method: attention needs a text column"),
        (["--rows", "0:5", "--method", "deeplift"], "--method: unknown method 'deeplift'"),
        (["--rows", "0:5", "--target-class", "high"], "--target-class: a regression model"),
        (["--rows", "0:5", "--format", "xlsx"], "--format: expected csv or parquet"),
        (["--rows", "0:5", "--image-baseline", "noise"], "--image-baseline: unknown image"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(diabetes, cli, tmp_path, args, words):
    bundle, csv = diabetes
    out = tmp_path / "out"
    result = cli("explain", bundle, csv, "-o", out, "--max-rows", "100", *args)
    assert words in result.error_line()
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_missing_column_and_an_existing_folder(diabetes, cli, tmp_path):
    bundle, csv = diabetes
    lacking = tmp_path / "lacking.csv"
    pd.read_csv(csv).drop(columns="bmi").to_csv(lacking, index=False)
    out = tmp_path / "out"
    line = cli("explain", bundle, lacking, "-o", out, "--rows", "0:5").error_line()
    assert "column 'bmi'" in line and "missing" in line
    assert not out.exists()
    out.mkdir()
    line = cli("explain", bundle, csv, "-o", out, "--rows", "0:5").error_line()
    assert "--output" in line and "--overwrite" in line
    done = cli("explain", bundle, csv, "-o", out, "--rows", "0:5", "--overwrite")
    assert done.code == 0, done.err
    assert (out / "explain.html").exists()


def test_into_bundle_adds_the_importance_to_the_report_and_nothing_else(diabetes, cli, tmp_path):
    import shutil

    bundle = Path(shutil.copytree(diabetes[0], tmp_path / "bundle"))
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    result = cli("explain", bundle, diabetes[1], "--rows", "0:20", "--method", "exact",
                 "--into-bundle")  # fmt: skip
    assert result.code == 0, result.err
    after = {p.name: p.read_bytes() for p in bundle.iterdir()}
    assert set(after) - set(before) == {"explain.json"}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"report.html", "manifest.json"}
    report = after["report.html"].decode()
    assert "What drives the predictions" in report and "bmi" in report
    assert "rows" not in json.loads(after["explain.json"])  # the summary, not every row
    deepstrata.load(bundle)  # the manifest lists the new file: the bundle still loads
    assert (tmp_path / "bundle.explain" / "explain.html").is_file()


@pytest.mark.slow  # a fit through the CLI: ~19 s on one busy core
def test_fit_explain_saves_the_global_importance_in_the_bundle(cli, tmp_path):
    from tests.explain.conftest import two_column_frame

    csv = tmp_path / "two.csv"
    two_column_frame(rows=80).to_csv(csv, index=False)
    out = tmp_path / "two.bundle"
    done = cli("fit", csv, "--target", "y", "--out", out, "--max-epochs", "1", "--no-ensemble",
               "--explain", "--quiet")  # fmt: skip
    assert done.code == 0, done.err
    summary = json.loads((out / "explain.json").read_text())
    assert summary["method"] == "ig" and "rows" not in summary
    assert {row["column"] for row in summary["global_importance"]} == {"x1", "x2", "n1", "n2", "c1"}
    assert "What drives the predictions" in (out / "report.html").read_text()
    deepstrata.load(out)  # the manifest lists explain.json

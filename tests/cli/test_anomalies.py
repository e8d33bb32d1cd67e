"""``deepstrata anomalies``: the summary, the bundle with scores.csv, ``predict`` scoring new
rows with it, and the refusals (a one-class label, contamination outside (0, 0.5], --series without --time,
missing columns at predict time), each before any work with nothing written."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import make_churn_frame

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "rows.csv"
    frame = make_churn_frame(rows=60).drop(columns=["churned"])
    frame["odd"] = (frame.index % 20 == 0).astype(int)
    frame.to_csv(path, index=False)
    return path


def test_anomalies_writes_a_bundle_and_predict_scores_new_rows(cli, table, tmp_path):
    out = tmp_path / "detector"
    result = cli(
        "anomalies", table, "-o", out, "--label", "odd", "--ignore", "customer_id",
        "--max-epochs", "2", "--contamination", "0.05", "-q",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "60 rows as" in result.out and "3 row(s) flagged" in result.out
    assert "PR-AUC" in result.out and "isolation forest" in result.out
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["row", "score", "flagged", "isolation_forest_score"]
    assert scores["flagged"].sum() == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["label"]["anomalies"] == 3

    new, written = tmp_path / "new.csv", tmp_path / "scores.csv"
    pd.read_csv(table).head(10).to_csv(new, index=False)
    result = cli("predict", out, new, "-o", written, "--keep", "customer_id")
    assert result.code == 0, result.err
    predicted = pd.read_csv(written)
    assert list(predicted.columns) == ["customer_id", "row", "score", "flagged"]
    pd.testing.assert_series_equal(predicted["score"], scores["score"].head(10), rtol=1e-5)

    again = cli("anomalies", table, "-o", out, "--max-epochs", "1")  # no --overwrite
    assert "--output" in again.error_line()


def test_bad_input_is_refused_before_any_work_and_nothing_is_written(cli, table, tmp_path):
    out = tmp_path / "detector"
    one_class = tmp_path / "one.csv"
    pd.read_csv(table).assign(odd=0).to_csv(one_class, index=False)
    line = cli("anomalies", one_class, "--label", "odd", "-o", out).error_line()
    assert "one.csv" in line and "'odd'" in line and "two classes" in line
    for value in ("0", "0.7", "-0.1"):
        line = cli("anomalies", table, "--contamination", value, "-o", out).error_line()
        assert "--contamination" in line
    line = cli("anomalies", table, "--series", "plan", "-o", out).error_line()
    assert "--series" in line and "--time" in line  # series flags only with --time
    assert not out.exists()


def test_predict_names_a_column_missing_from_new_rows(cli, table, tmp_path):
    out, new, written = tmp_path / "detector", tmp_path / "new.csv", tmp_path / "scores.csv"
    assert cli("anomalies", table, "-o", out, "--max-epochs", "1", "-q").code == 0
    pd.read_csv(table).drop(columns=["monthly"]).to_csv(new, index=False)
    line = cli("predict", out, new, "-o", written).error_line()
    assert "new.csv" in line and "'monthly'" in line and "missing" in line
    assert "--proba" in cli("predict", out, table, "--proba").error_line()
    assert not written.exists()


def test_series_anomalies_write_a_bundle_and_name_a_bad_time_by_its_line(cli, tmp_path):
    from tests.anomaly.conftest import tiny_series

    data, out = tmp_path / "sensors.csv", tmp_path / "detector"
    frame = tiny_series(steps=48)
    frame.to_csv(data, index=False)
    result = cli(
        "anomalies", data, "--time", "day", "--series", "sensor", "--label", "odd",
        "--max-epochs", "2", "-o", out, "-q",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "96 rows in 2 series" in result.out and "forecast residuals" in result.out
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns)[:3] == ["row", "sensor", "day"]
    bad = tmp_path / "bad.csv"
    frame.assign(day=frame["day"].where(frame.index != 6, "not a day")).to_csv(bad, index=False)
    line = cli("anomalies", bad, "--time", "day", "--series", "sensor", "-o", tmp_path / "x")
    assert "bad.csv, line 8" in line.error_line() and "'not a day'" in line.error_line()
    twice = tmp_path / "twice.csv"
    pd.concat([frame, frame.iloc[[3]]]).to_csv(twice, index=False)
    line = cli("anomalies", twice, "--time", "day", "--series", "sensor").error_line()
    assert "line 98" in line and "appears twice" in line
    assert not (tmp_path / "x").exists()

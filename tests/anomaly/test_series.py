"""The series detector's bundle: JSON and safetensors under the manifest, read back to the
run's very scores (``predict`` on the fitted history gives the scores.csv figures), new
rows after the history and a series never seen scored too, and a bundle changed or
missing a column refused by name."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from deepstrata.anomaly.bundle import SCORES, load_detector, save_detector, score_rows
from deepstrata.anomaly.run import scores_table
from deepstrata.anomaly.series import SeriesDetector
from deepstrata.errors import BundleError, ConfigError, DataError
from tests.anomaly.conftest import tiny_series

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def saved(series_found, tmp_path_factory):
    _, _, found = series_found
    path = tmp_path_factory.mktemp("series") / "detector"
    table = scores_table(found).to_csv(index=False).encode()
    save_detector(path, found.detector, metrics=found.metrics, files={SCORES: table})
    return path


def test_the_bundle_is_json_and_safetensors_and_loads_a_series_detector(saved, series_found):
    _, _, found = series_found
    config = json.loads((saved / "config.json").read_text())
    assert config["kind"] == "anomaly" and config["detector"] == "series"
    assert config["spec"]["time"] == "day" and config["spec"]["series"] == ["sensor"]
    assert {"center", "spread", "width", "split", "end"} <= set(config["series"][0])
    assert {p.suffix for p in saved.iterdir()} == {".json", ".safetensors", ".csv"}
    detector, metrics = load_detector(saved)
    assert isinstance(detector, SeriesDetector) and detector.threshold == found.detector.threshold
    assert metrics["detector"] == "series"


def test_predict_on_the_fitted_history_gives_the_runs_scores(saved, series_found, cli, tmp_path):
    frame, _, found = series_found
    data, written = tmp_path / "history.csv", tmp_path / "scored.csv"
    frame.to_csv(data, index=False)
    result = cli("predict", saved, data, "-o", written, "--keep", "odd")
    assert result.code == 0, result.err
    scored = pd.read_csv(written)
    assert list(scored.columns) == ["odd", "row", "sensor", "day", "score", "flagged"]
    np.testing.assert_allclose(scored["score"], found.scores, rtol=1e-5, equal_nan=True)
    assert (scored["flagged"].to_numpy() == found.flagged).all()
    # the rows in another order are the same rows: the same scores
    shuffled = score_rows(saved, frame.sample(frac=1.0, random_state=0))
    again = shuffled.sort_values(["sensor", "day"])["score"].to_numpy()
    np.testing.assert_allclose(again, found.scores, rtol=1e-5, equal_nan=True)


def test_new_steps_and_an_unseen_series_are_scored(saved):
    longer = tiny_series(steps=150, seed=1)
    longer.loc[(longer.sensor == "a") & (longer.index == 140), "reading"] += 6.0
    unseen = longer[longer.sensor == "b"].assign(sensor="c", reading=lambda f: f.reading * 2)
    scored = score_rows(saved, pd.concat([longer, unseen], ignore_index=True))
    assert scored["score"].notna().sum() > 250
    new = scored[(scored.sensor == "a") & (scored.row > 120)]
    assert new.loc[new.score.idxmax(), "row"] == 141  # the spike past the history, first


def test_bad_new_rows_and_a_changed_bundle_are_refused(saved, tmp_path):
    frame = tiny_series()
    with pytest.raises(ConfigError, match="'reading'"):
        score_rows(saved, frame.drop(columns=["reading"]))
    with pytest.raises(DataError, match="appears twice"):
        score_rows(saved, pd.concat([frame, frame.iloc[[5]]]))
    broken = tmp_path / "broken"
    broken.mkdir()
    for part in saved.iterdir():
        (broken / part.name).write_bytes(part.read_bytes())
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "threshold": 0.0}))
    with pytest.raises(BundleError):
        load_detector(broken)


class LastValue(torch.nn.Module):
    """A stand-in forecaster: the window's last value, the interval half a window sd wide."""

    def forward(self, inputs):
        last = inputs["history"][:, -1:]  # (B, 1)
        return torch.stack([last - 0.5, last, last + 0.5], dim=-1)  # (B, 1, 3)


def test_the_history_is_cleaned_of_a_spike_and_moved_to_a_new_level(monkeypatch):
    from deepstrata.anomaly import series
    from deepstrata.anomaly.series_run import calibrate
    from deepstrata.data.sources import read_table
    from deepstrata.forecast import windows as win

    values = np.cumsum(np.random.default_rng(0).normal(0, 1, 150))
    values[60] += 15.0  # a spike
    values[100:] += 15.0  # a new level
    frame = pd.DataFrame({"day": pd.date_range("2000-01-01", periods=150, freq="MS"), "y": values})
    spec = win.Spec(target="y", time="day", series=[], frequency="MS", horizon=1, lookback=8)
    panel = win.read_panel(read_table(frame), spec)

    def scores():
        fold = {"key": [], "split": None, "end": None}
        detector = SeriesDetector(
            spec, {}, {"early": LastValue(), "late": LastValue()}, 1.0, [fold]
        )
        return calibrate(detector, panel)[0]

    cleaned = scores()
    top = np.argsort(-np.nan_to_num(cleaned, nan=-1.0))[:3]
    assert set(top) == {60, 100, 101}  # the spike, and the shift's first two steps
    assert cleaned[61] < 3 and (cleaned[102:110] < 3).all()  # after a spike, a new level
    monkeypatch.setattr(series, "CLEAN", np.inf)  # no cleaning: the spike's next step too
    assert scores()[61] > 4

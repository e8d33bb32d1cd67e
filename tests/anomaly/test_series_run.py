"""``anomalies --time``: every step scored out of sample, the spikes of a tiny pair of
series ranked first, the forest beside it; each refusal before any work; and a slow test
on real series (statsmodels' co2, monthly and weekly, and sunspots) with injected anomalies, PR-AUC of the
forecast residuals against the isolation forest's over 3 seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepstrata.anomaly.run import scores_table
from deepstrata.anomaly.series_run import check_series_request, find_series_anomalies
from deepstrata.errors import ConfigError, DataError
from tests.anomaly.conftest import tiny_series


def test_the_spikes_are_ranked_first_and_the_first_steps_go_unscored(series_found):
    frame, request, found = series_found
    lookback = request.spec.lookback
    assert np.isnan(found.scores).sum() == 2 * lookback  # each series' first lookback steps
    order = np.argsort(-np.nan_to_num(found.scores, nan=-1.0))
    spikes = set(np.flatnonzero(frame["odd"].to_numpy()))
    assert set(order[: len(spikes)]) == spikes
    label = found.metrics["label"]
    assert label["forecaster"]["pr_auc"] == 1.0 and label["anomalies"] == 5
    assert 0 < label["isolation_forest"]["pr_auc"] <= 1
    assert found.metrics["flagged"] == int(found.flagged.sum()) >= 1
    assert not found.flagged[np.isnan(found.scores)].any()
    table = scores_table(found)
    assert list(table.columns) == [
        "row", "sensor", "day", "score", "flagged", "isolation_forest_score",
    ]  # fmt: skip
    assert table["day"].iloc[0] == "2010-01-01"


def test_each_half_is_scored_by_the_network_fitted_on_the_other(series_found):
    _, request, found = series_found
    folds = found.detector.folds
    assert [f["key"] for f in folds] == [["a"], ["b"]]
    assert folds[0]["split"].startswith("2015-01-01")  # step 60 of 120
    training = found.metrics["training"]
    assert training["early"]["windows"] + training["early"]["validation_windows"] == 2 * (
        60 - request.spec.lookback
    )


def test_a_given_threshold_and_one_series_without_a_label():
    frame = tiny_series(steps=40).query("sensor == 'a'")[["day", "reading"]]
    request = check_series_request(frame, time="day", contamination=None, threshold=3.0)
    found = find_series_anomalies(request, max_epochs=1)
    assert found.metrics["threshold"]["value"] == 3.0 and "label" not in found.metrics
    assert found.flagged.sum() == int((np.nan_to_num(found.scores) >= 3.0).sum())


@pytest.mark.parametrize(
    ("change", "kwargs", "error", "words"),
    [
        (lambda f: f.assign(day=f["day"].where(f.index != 7, "not a day")), {}, DataError,
         ["row 8", "'day'", "not a date"]),
        (lambda f: pd.concat([f, f.iloc[[3]]]), {}, DataError, ["appears twice", "'day'"]),
        (lambda f: f.assign(other=1.0), {}, ConfigError, ["--target", "2 numeric"]),
        (lambda f: f, {"target": "nope"}, ConfigError, ["--target", "'nope'"]),
        (lambda f: f, {"series": ["nope"]}, ConfigError, ["--series", "'nope'"]),
        (lambda f: f.assign(odd=0), {"label": "odd"}, DataError, ["two classes"]),
        (lambda f: f.head(12), {}, DataError, ["at least 16"]),
        (lambda f: f, {"contamination": 0.9}, ConfigError, ["--contamination"]),
        (lambda f: f, {"frequency": "fortnightly"}, ConfigError, ["--frequency"]),
    ],
)  # fmt: skip
def test_bad_input_is_named_before_any_work(change, kwargs, error, words):
    frame = change(tiny_series(steps=40).query("sensor == 'a'").drop(columns=["sensor", "odd"]))
    arguments = {"time": "day", **kwargs}
    with pytest.raises(error) as raised:
        check_series_request(frame.reset_index(drop=True), **arguments)
    for word in words:
        assert word in str(raised.value), str(raised.value)


@pytest.mark.slow
def test_injected_anomalies_in_real_series_are_found_better_than_by_a_forest():
    """Prints the PR-AUC table of the report: per series and seed, forecast residuals
    against the isolation forest."""
    pytest.importorskip("statsmodels")
    from tests.anomaly.real_series import co2, co2_weekly, inject, sunspots

    ours, forest = [], []
    for load in (co2, co2_weekly, sunspots):
        for seed in range(3):
            frame = inject(load(), seed)
            request = check_series_request(frame, time="date", label="odd")
            label = find_series_anomalies(request, seed=seed).metrics["label"]
            ours.append(label["forecaster"]["pr_auc"])
            forest.append(label["isolation_forest"]["pr_auc"])
            print(load.__name__, seed, label["anomalies"], ours[-1], forest[-1])
    assert np.mean(ours) > np.mean(forest)
    assert min(ours) > 10 * max(label["base_rate"], 0.01)

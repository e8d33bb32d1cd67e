"""Drift: the statistics against plain scipy, the false-alarm and detection rates over many
resamples, and ``check_drift`` on a fitted bundle (named errors before any work)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp

import deepstrata
from deepstrata.attack.drift import (
    ALPHA,
    PSI_THRESHOLD,
    categorical_drift,
    check_drift,
    mmd_test,
    numeric_drift,
    psi,
)
from deepstrata.errors import BundleError, ConfigError, DataError
from deepstrata.model.reference import (
    REFERENCE,
    categorical_reference,
    category_values,
    numeric_reference,
    numeric_values,
)
from tests.conftest import make_churn_frame

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy"


def _columns(rng: np.random.Generator, rows: int, shift: float = 0.0) -> dict:
    """Three number columns (one skewed, one with missing values) and a category column;
    ``shift`` moves the first number column by that many standard deviations."""
    income = rng.lognormal(10, 0.5, rows)
    age = rng.normal(40, 12, rows) + shift * 12
    age[rng.random(rows) < 0.05] = np.nan
    return {
        "age": age,
        "income": income,
        "score": rng.uniform(0, 1, rows),
        "plan": rng.choice(["basic", "pro", "max"], rows, p=[0.5, 0.3, 0.2]),
    }


def _references(rng) -> dict:
    training = _columns(rng, 5000)
    references = {
        name: numeric_reference(numeric_values(values), rng)
        for name, values in training.items()
        if name != "plan"
    }
    references["plan"] = categorical_reference(category_values(training["plan"]))
    return references


def _flags(references: dict, columns: dict) -> dict[str, bool]:
    flags = {}
    for name, reference in references.items():
        if name == "plan":
            result = categorical_drift(
                reference, category_values(columns[name]), alpha=ALPHA, threshold=PSI_THRESHOLD
            )
        else:
            result = numeric_drift(
                reference, numeric_values(columns[name]), alpha=ALPHA, threshold=PSI_THRESHOLD
            )
        flags[name] = result["drifted"]
    return flags


def test_statistics_match_scipy_and_the_psi_formula():
    rng = np.random.default_rng(0)
    reference = numeric_reference(rng.normal(0, 1, 3000), rng)
    new = rng.normal(0.3, 1, 800)
    result = numeric_drift(reference, new, alpha=ALPHA, threshold=PSI_THRESHOLD)
    plain = ks_2samp(reference["sample"], new, method="asymp")
    assert result["statistic"] == pytest.approx(plain.statistic)
    assert result["p_value"] == pytest.approx(plain.pvalue)
    # PSI by hand: the training deciles' shares against the new rows' shares.
    counts = np.bincount(np.searchsorted(reference["edges"], new, side="right"), minlength=10)
    expected, actual = np.array(reference["shares"]), counts / len(new)
    assert result["psi"] == pytest.approx(np.sum((actual - expected) * np.log(actual / expected)))
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    kept = categorical_reference(category_values(["a"] * 60 + ["b"] * 40))
    values = category_values(["a"] * 30 + ["b"] * 60 + ["c"] * 10)  # "c" was never seen
    result = categorical_drift(kept, values, alpha=ALPHA, threshold=PSI_THRESHOLD)
    table = np.array([[60, 40, 0], [30, 60, 10]])
    assert result["p_value"] == pytest.approx(chi2_contingency(table, correction=False).pvalue)
    assert result["unseen"] == pytest.approx(0.1) and result["drifted"]


def test_one_spelling_per_value():
    assert list(category_values([1, 1.0, "1", True, None, np.nan])) == [
        "1", "1", "1", "true", "<missing>", "<missing>",
    ]  # fmt: skip
    seconds = numeric_values(["1970-01-02", None, "bad"], "datetime")
    assert seconds[0] == 86400 and np.isnan(seconds[1:]).all()


def _rates(resamples: int, rows: int, seed: int) -> tuple[float, float, float]:
    """(false-alarm rate per column over unshifted resamples, the share of resamples in
    which a 0.5-standard-deviation shift of one column is flagged, the false-alarm rate of
    the other columns in those resamples)."""
    rng = np.random.default_rng(seed)
    references = _references(rng)
    alarms = sum(sum(_flags(references, _columns(rng, rows)).values()) for _ in range(resamples))
    rate = alarms / (resamples * len(references))
    shifted = [_flags(references, _columns(rng, rows, shift=0.5)) for _ in range(resamples)]
    detected = float(np.mean([flags["age"] for flags in shifted]))
    others = float(np.mean([flags[n] for flags in shifted for n in ("income", "score", "plan")]))
    print(f"{resamples} resamples of {rows} rows: false alarms {rate:.2%} per column, ")
    print(f"shift of 0.5 sd detected in {detected:.1%}, other columns flagged {others:.2%}")
    return rate, detected, others


def test_false_alarms_are_rare_and_a_shift_is_found():
    """100 resamples of 500 rows from the training distribution: a column is flagged in at
    most 1 % of them; a 0.5-standard-deviation shift of one column is flagged in at least
    95 % of the resamples, and the other columns stay unflagged as often as without it."""
    rate, detected, others = _rates(100, 500, seed=1)
    assert rate <= 0.01
    assert detected >= 0.95
    assert others <= 0.01


@pytest.mark.slow
@pytest.mark.parametrize("rows", [100, 500, 5000])
def test_false_alarm_rate_over_many_resamples(rows):
    """The figures the README states: 1000 resamples at each size. With 100 rows PSI is
    noisy enough to pass its threshold by chance, and the rate comes to the tests' alpha
    (1 %; 0.5 % more allowed for the sampling error of 4000 draws)."""
    rate, detected, others = _rates(1000, rows, seed=rows)
    assert rate <= 0.015 and others <= 0.015
    if rows >= 500:
        assert detected >= 0.95


def test_mmd_tells_a_moved_embedding_from_a_resample():
    rng = np.random.default_rng(2)
    reference = rng.normal(0, 1, (150, 16))
    _, same = mmd_test(reference, rng.normal(0, 1, (150, 16)), bandwidth=5.6, rng=rng)
    _, moved = mmd_test(reference, rng.normal(0.5, 1, (150, 16)), bandwidth=5.6, rng=rng)
    assert same > ALPHA and moved < ALPHA


def test_a_bundle_keeps_its_reference_and_drift_flags_the_moved_column(fitted_churn_bundle):
    reference = json.loads((fitted_churn_bundle / REFERENCE).read_text())
    assert reference["columns"]["monthly"]["statistic"] == "numeric"
    assert reference["columns"]["plan"]["statistic"] == "categorical"
    assert sum(reference["prediction"]["counts"].values()) > 0  # the held-out predictions
    model = deepstrata.load(fitted_churn_bundle)
    new = make_churn_frame(seed=5)  # as many rows: the same sign-up dates (later ones drift)
    report = check_drift(fitted_churn_bundle, new, model=model)
    assert not report.drift, report.to_dict()
    new["monthly"] += 20  # one standard deviation
    new["plan"], new["tenure"] = "basic", 2.0  # new customers on the basic plan: they churn
    report = check_drift(fitted_churn_bundle, new, model=model)
    assert report.drifted == ["tenure", "monthly", "plan"]
    assert report.prediction["drifted"], report.prediction


def test_bad_input_is_named_before_any_work(fitted_churn_bundle, churn_bundle):
    new = make_churn_frame(rows=50, seed=5).drop(columns=["plan"])
    with pytest.raises(DataError, match="'plan' missing") as caught:
        check_drift(fitted_churn_bundle, new)
    assert caught.value.column == "plan"
    with pytest.raises(DataError, match="no rows"):
        check_drift(fitted_churn_bundle, make_churn_frame(rows=50).iloc[:0])
    with pytest.raises(ConfigError, match="--alpha"):
        check_drift(fitted_churn_bundle, new, alpha=1.5)
    with pytest.raises(ConfigError, match="--psi-threshold"):
        check_drift(fitted_churn_bundle, new, psi_threshold=-1)
    legacy = LEGACY / "bundles" / "binary"
    frame = pd.read_csv(LEGACY / "inputs" / "binary.csv")
    with pytest.raises(BundleError, match="refit it with this version"):
        check_drift(legacy, frame)
    # The reference is a bundle file like any other: changed, the bundle is refused.
    (churn_bundle / REFERENCE).write_text("{}")
    with pytest.raises(BundleError):
        check_drift(churn_bundle, make_churn_frame(rows=50))
    shutil.rmtree(churn_bundle)


def _reviews(rng, rows: int, words: list[str]) -> pd.DataFrame:
    texts = [" ".join(rng.choice(words, 6)) for _ in range(rows)]
    return pd.DataFrame({"review": texts, "stars": rng.integers(1, 6, rows).astype(float)})


def test_text_columns_are_compared_by_the_models_own_vectors():
    """A text column's reference is its encoder's vectors; reviews in other words move
    them (MMD flags the column), a resample of the same words does not."""
    rng = np.random.default_rng(0)
    usual = ["good", "great", "fine", "nice", "happy", "fast", "cheap", "solid"]
    training = _reviews(rng, 120, usual)
    training["liked"] = np.where(training["stars"] > 3, "yes", "no")
    model = deepstrata.fit(
        training,
        target="liked",
        strategy="scratch",
        ensemble=False,
        max_epochs=1,
        learning_rate=3e-3,
        progress=False,
    )  # fmt: skip (a fixed rate: no range test)
    kept = json.loads(model.artifacts[REFERENCE])["columns"]["review"]
    assert kept["statistic"] == "embedding" and len(kept["sample"]) == 120
    same = check_drift(model, _reviews(rng, 150, usual))  # a fitted Model serves as well
    moved = check_drift(model, _reviews(rng, 150, ["broken", "late", "awful", "refund"]))
    review = {r["column"]: r for r in moved.columns}["review"]
    assert "review" not in same.drifted and "review" in moved.drifted
    assert review["test"] == "mmd" and review["mean_shift"] > 0.5

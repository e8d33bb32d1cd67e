"""Rows as records take the path without pandas, and give exactly the blocks a table gives."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.data.sources import read_table
from deepstrata.errors import DataError, DataWarning
from deepstrata.preprocess.frame import transform_frame, transform_values


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame.loc[::9, "a"] = np.nan
    frame["plan"] = rng.choice(["basic", "pro", "max"], n)
    frame["member"] = rng.random(n) < 0.5
    frame["when"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D")
    frame["y"] = np.where(frame["b"] > 0, "yes", "no")
    return deepstrata.fit(frame, target="y", max_epochs=2, progress=False)


ROWS = [
    {"a": 0.5, "b": -1.0, "plan": "pro", "member": True, "when": "2024-03-01"},
    {"a": None, "b": 2.0, "plan": None, "member": None, "when": None},
    {"a": 1e9, "b": 0.0, "plan": " basic ", "member": False, "when": "2024-12-31"},
    {"a": 3, "b": 1, "plan": "unseen", "member": "yes", "when": "2024-06-01"},  # words, ints
]


def test_records_give_the_blocks_a_table_gives(model):
    member = model.members[0]
    frame = pd.DataFrame(ROWS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        expected = transform_frame(member.preprocessors, frame, read_table(frame))
        got = transform_values(member.preprocessors, {k: [r[k] for r in ROWS] for k in ROWS[0]})
    assert set(got) == set(expected)
    for kind in expected:
        assert got[kind].dtype == expected[kind].dtype
        np.testing.assert_array_equal(got[kind].numpy(), expected[kind].numpy())


def test_predict_takes_records_and_answers_as_for_a_table(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        np.testing.assert_array_equal(
            model.predict_proba(ROWS), model.predict_proba(pd.DataFrame(ROWS))
        )
        assert list(model.predict(ROWS[:1])) == list(model.predict(pd.DataFrame(ROWS[:1])))


def test_an_unseen_category_in_a_record_warns_as_in_a_table(model):
    with pytest.warns(
        DataWarning,
        match=r"column 'plan': 1 row\(s\) have values not in the training vocabulary \('unseen'\)",
    ):
        model.predict(ROWS[3:])


def test_a_bad_value_in_a_record_is_named_with_its_row_and_column(model):
    bad = [dict(ROWS[0]), dict(ROWS[0], a="abc")]
    with pytest.raises(
        DataError, match=r"<records>, row 2, column 'a': expected a number, got 'abc'"
    ):
        model.predict(bad)
    assert math.isnan(float("nan"))


def test_a_column_missing_from_every_record_is_named(model):
    rows = [{k: v for k, v in ROWS[0].items() if k != "plan"}]
    with pytest.raises(DataError, match="'plan' missing from every record"):
        model.predict(rows)

"""Sensitive columns: checked before any work, split into groups and intersections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepstrata.audit.groups import MISSING, check_sensitive, groupings, parse_sensitive
from deepstrata.data.sources import read_table
from deepstrata.errors import ConfigError, DataError


def table(**columns):
    return read_table(pd.DataFrame(columns))


def test_parse_sensitive_splits_and_deduplicates():
    assert parse_sensitive(" sex, race ,sex") == ["sex", "race"]
    with pytest.raises(ConfigError, match="--sensitive"):
        parse_sensitive(" , ")


@pytest.mark.parametrize(
    ("columns", "sensitive", "message"),
    [
        ({"sex": ["F", "M"] * 40}, ["race"], "'race' is not in the data"),
        ({"sex": ["F"] * 80}, ["sex"], "has one value \\('F'\\)"),
        ({"sex": ["F"] * 70 + ["M"] * 10}, ["sex"], "fewer than two groups have"),
        ({"y": ["F", "M"] * 40}, ["y"], "the target cannot be"),
    ],
)
def test_bad_sensitive_columns_are_named(columns, sensitive, message):
    with pytest.raises(DataError, match=message) as caught:
        check_sensitive(table(**columns), sensitive, min_group_size=30, target="y")
    assert caught.value.column == sensitive[0]


def test_intersections_and_small_groups():
    rng = np.random.default_rng(0)
    sex = rng.choice(["F", "M"], 400)
    race = np.where(np.arange(400) < 20, "c", rng.choice(["a", "b"], 400))
    race = race.astype(object)
    race[5] = None  # a missing value is a group of its own
    split = groupings(table(sex=sex, race=race), ["sex", "race"], min_group_size=30)
    assert [g.name for g in split] == ["sex", "race", "sex × race"]
    by_race = split[1]
    assert set(by_race.scored) == {"a", "b"}
    assert by_race.too_small == {"c": 19, MISSING: 1}
    assert by_race.mask.sum() == 380
    crossed = split[2]
    assert {"F × a", "M × b"} <= set(crossed.scored)
    assert all(" × " in name for name in crossed.too_small)
    counts = pd.Series(crossed.labels).value_counts()
    assert counts[crossed.scored].tolist() == sorted(counts[crossed.scored], reverse=True)

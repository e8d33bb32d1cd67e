"""Budgets as people write them, and the refusals of those outside the input's range."""

from __future__ import annotations

import pytest

from deepstrata.attack.budget import check_epsilon, parse_epsilon, parse_epsilons
from deepstrata.errors import ConfigError


def test_fractions_numbers_and_lists():
    assert parse_epsilons("2/255, 4/255,0.5") == [2 / 255, 4 / 255, 0.5]
    assert parse_epsilons([0.1, "1/10"]) == [0.1, 0.1]
    assert parse_epsilon(1) == 1.0


@pytest.mark.parametrize(
    ("text", "words"),
    [("8", "did you mean 8/255"), ("0", "(0, 1]"), ("a/b", "such as 8/255"), ("", "at least one")],
)
def test_outside_the_range_or_unreadable(text, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("]", r"\]")) as raised:
        parse_epsilons(text, option="--epsilon")
    assert raised.value.option == "--epsilon"


def test_the_fit_constraint_says_why_without_the_flag():
    assert check_epsilon("4/255", {}) is None and check_epsilon(None, {}) is None
    assert check_epsilon("3", {}).startswith("epsilon must be in (0, 1]")

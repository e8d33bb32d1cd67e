"""The Pareto front, --pick, and best.yaml's options."""

import pytest

from deepstrata.errors import ConfigError
from deepstrata.search.result import _front, best_options, parse_pick, pick

TRIALS = [
    {"number": 0, "values": [0.30, 900.0]},
    {"number": 1, "values": [0.25, 5000.0]},
    {"number": 2, "values": [0.26, 1200.0]},
    {"number": 3, "values": [0.31, 1000.0]},  # dominated by 0
]


def test_the_front_and_the_picks():
    front = _front(TRIALS, ["minimize", "minimize"])
    assert [t["number"] for t in front] == [1, 2, 0]
    assert pick(front, ["minimize", "minimize"], ("best", 0))["number"] == 1
    assert pick(front, ["minimize", "minimize"], parse_pick("fastest-within 0.01"))["number"] == 2
    assert pick(front, ["minimize", "minimize"], parse_pick("fastest-within 0.1"))["number"] == 0
    maximised = _front(TRIALS, ["maximize", "minimize"])
    assert {t["number"] for t in maximised} == {0, 3}


@pytest.mark.parametrize("text", ["slowest-within 1", "fastest-within x", "fastest-within -1"])
def test_a_bad_pick_is_named(text):
    with pytest.raises(ConfigError, match="--pick"):
        parse_pick(text)


def test_best_options_keep_what_differs_from_the_defaults_and_what_was_given():
    summary = {"best": {"config": {"dropout": 0.3, "patience": 10, "max_epochs": 5, "seed": 0}}}
    defaults = {"dropout": 0.1, "patience": 10, "max_epochs": 200, "seed": 0}
    assert best_options(summary, {"seed": 0}, defaults) == {
        "dropout": 0.3,
        "max_epochs": 5,
        "seed": 0,
    }

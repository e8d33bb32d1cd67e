"""The output policy serve --output applies and steal measures."""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.attack.output import POLICIES, release
from deepstrata.errors import ConfigError


def test_each_policy_keeps_the_decision_and_gives_less_away():
    probabilities = np.array([[0.13, 0.87], [0.64, 0.36], [0.2, 0.8]])
    assert np.array_equal(release(probabilities, "probabilities"), probabilities)
    rounded = release(probabilities, "rounded")
    assert np.allclose(rounded, [[0.1, 0.9], [0.6, 0.4], [0.2, 0.8]])
    labels = release(probabilities, "labels")
    assert np.array_equal(labels, [[0, 1], [1, 0], [0, 1]])
    for policy in POLICIES:  # the decided class survives every policy
        assert np.array_equal(release(probabilities, policy).argmax(1), [1, 0, 1])
    # the model's own decisions (a threshold other than the argmax) are what labels says
    assert np.array_equal(
        release(probabilities, "labels", np.array([0, 0, 1])).argmax(1), [0, 0, 1]
    )


def test_unknown_policy_names_the_flag():
    with pytest.raises(ConfigError, match="--output"):
        release(np.ones((1, 2)) / 2, "logits")

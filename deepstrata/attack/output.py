"""What a classifier's answers give away: the output policy ``serve --output`` applies and
``deepstrata steal`` measures.

- ``probabilities``: every class's probability, as computed;
- ``rounded``: each probability rounded to one decimal, the classic defence of
  Tramèr et al. (2016): the decision survives, the fine detail a copy learns from does not;
- ``labels``: the decided class alone (its probability 1, the others 0).

One function serves both, so that the fidelity ``steal`` reports is the fidelity the
server leaves an attacker.

>>> release(np.array([[0.13, 0.87]]), "rounded")
array([[0.1, 0.9]])
>>> release(np.array([[0.13, 0.87]]), "labels")
array([[0., 1.]])
"""

from __future__ import annotations

import numpy as np

from deepstrata.errors import ConfigError

POLICIES = ("probabilities", "rounded", "labels")
DECIMALS = 1  # rounded: probabilities to one decimal


def check_policy(policy: str, option: str = "--output") -> str:
    if policy not in POLICIES:
        raise ConfigError(f"expected one of {', '.join(POLICIES)}, got {policy!r}", option=option)
    return policy


def release(
    probabilities: np.ndarray, policy: str, decided: np.ndarray | None = None
) -> np.ndarray:
    """``(rows, classes)`` probabilities as ``policy`` lets them out; ``decided``: the
    classes the model decided (its thresholds may differ from the argmax)."""
    check_policy(policy)
    probabilities = np.asarray(probabilities, dtype=float)
    if policy == "probabilities":
        return probabilities
    if policy == "rounded":
        return np.round(probabilities, DECIMALS)
    picked = probabilities.argmax(axis=1) if decided is None else np.asarray(decided, int)
    return np.eye(probabilities.shape[1])[picked]

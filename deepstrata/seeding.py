"""One seed -> every random number generator deepstrata touches.

Same seed, same machine, same thread count -> same weights. Data order uses its
own ``torch.Generator`` so that it does not depend on how many random numbers a
model's initialisation happened to draw.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator(seed: int, stream: int = 0) -> torch.Generator:
    """A private torch generator for one purpose (``stream``) derived from ``seed``."""
    gen = torch.Generator()
    gen.manual_seed(seed * 1_000_003 + stream)
    return gen


def numpy_rng(seed: int, stream: int = 0) -> np.random.Generator:
    """A private NumPy generator for one purpose (``stream``) derived from ``seed``."""
    return np.random.default_rng([seed, stream])


@contextmanager
def preserved_random_state() -> Iterator[None]:
    """Seed freely inside; the caller's Python, NumPy and torch generators are restored after.

    ``fit`` seeds the global generators (dropout and initialisation draw from them);
    a user's own random stream must not change because they trained a model.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)

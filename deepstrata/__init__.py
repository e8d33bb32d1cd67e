"""deepstrata: a table in, a trained, evaluated neural network out.

>>> import deepstrata
>>> model = deepstrata.fit("churn.csv", target="churned")   # doctest: +SKIP
>>> model.save("runs/churn")                                # doctest: +SKIP
>>> deepstrata.load("runs/churn").predict("new.csv")        # doctest: +SKIP

The heavy modules (torch, pandas) load on first use, so ``import deepstrata``
and the command line start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepstrata.version import __version__

__all__ = ["Model", "__version__", "fit", "load"]

if TYPE_CHECKING:
    from deepstrata.api import Model, fit, load


def __getattr__(name: str):
    if name in ("fit", "load", "Model"):
        from deepstrata import api

        return getattr(api, name)
    raise AttributeError(f"module 'deepstrata' has no attribute {name!r}")

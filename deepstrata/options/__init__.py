"""Configuration as data: every setting ``fit`` takes is an :class:`Option` declaring its
default, help and constraint once (:mod:`~deepstrata.options.spec`). The general options
and :class:`~deepstrata.config.FitConfig` are in :mod:`deepstrata.config`, a kind's in its
``Kind`` entry; the options of one concern live here, each module with its ``OPTIONS`` and
the ``rule`` relating them to the rest:

- :mod:`~deepstrata.options.audit`: sensitive columns, fairness, label errors;
- :mod:`~deepstrata.options.attack`: adversarial training;
- :mod:`~deepstrata.options.explain`: explanations saved with the bundle;
- :mod:`~deepstrata.options.imbalance`: rare classes and the decision threshold;
- :mod:`~deepstrata.options.forecast`: time, series, horizon, quantiles;
- :mod:`~deepstrata.options.stream`: Parquet streamed by row group;
- :mod:`~deepstrata.options.private`: differentially private training (DP-SGD).

Nothing here imports torch or pandas: the command line builds its flags from it.
"""

from deepstrata.options.spec import *  # noqa: F403 (spec's __all__ is the one list)
from deepstrata.options.spec import __all__  # noqa: F401

"""The samplers a search can use, by name: one file each and one line in :data:`SAMPLERS`.

``tpe`` and ``gp`` (Bayesian optimisation), ``cmaes``, ``nsga2`` and ``random`` are
Optuna's (:mod:`~deepstrata.search.samplers.library`); ``evolution`` (regularised
evolution, Real et al. 2019) and ``rl`` (a REINFORCE controller, Zoph & Le 2017) are
written here as Optuna samplers that rebuild their state from the study's trials, so
every worker is stateless. ``auto`` picks one by the objectives and the trial budget.

>>> sorted(SAMPLERS)
['cmaes', 'evolution', 'gp', 'nsga2', 'random', 'rl', 'tpe']
>>> pick_auto(1, 40)[0], pick_auto(2, 200)[0]
('tpe', 'nsga2')
"""

from __future__ import annotations

import importlib

from deepstrata.errors import ConfigError

__all__ = ["SAMPLERS", "make_sampler", "pick_auto"]

# name -> "module:factory"; factory(seed=..., objectives=...) -> optuna.samplers.BaseSampler
SAMPLERS = {
    "tpe": "deepstrata.search.samplers.library:tpe",
    "gp": "deepstrata.search.samplers.library:gp",
    "cmaes": "deepstrata.search.samplers.library:cmaes",
    "nsga2": "deepstrata.search.samplers.library:nsga2",
    "random": "deepstrata.search.samplers.library:random",
    "evolution": "deepstrata.search.samplers.evolution:RegularizedEvolutionSampler",
    "rl": "deepstrata.search.samplers.rl:ReinforceSampler",
}
MULTI_OBJECTIVE = ("tpe", "nsga2", "random", "evolution", "gp")  # others optimise the first


def pick_auto(objectives: int, trials: int | None) -> tuple[str, str]:
    """``(sampler, why)``: NSGA-II for several objectives once there are trials for a few
    generations, else multivariate TPE (sound from a dozen trials, conditional spaces,
    one or several objectives)."""
    if objectives > 1 and (trials or 0) >= 100:
        return "nsga2", f"{objectives} objectives and {trials} trials: a few NSGA-II generations"
    if objectives > 1:
        return (
            "tpe",
            f"{objectives} objectives but {trials} trials: too few for NSGA-II's generations",
        )
    return "tpe", "one objective: multivariate TPE handles conditional choices from a dozen trials"


def make_sampler(name: str, *, seed: int = 0, objectives: int = 1, trials: int | None = None):
    """The sampler ``name`` (``auto`` resolved); ConfigError naming --sampler otherwise."""
    if name == "auto":
        name, _ = pick_auto(objectives, trials)
    if name not in SAMPLERS:
        raise ConfigError(
            f"unknown sampler {name!r}; expected one of auto, {', '.join(SAMPLERS)}",
            option="--sampler",
        )
    module, _, attribute = SAMPLERS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)(seed=seed, objectives=objectives)

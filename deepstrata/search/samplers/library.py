"""Optuna's samplers, as the search uses them (imported when one is picked)."""

from __future__ import annotations


def tpe(*, seed: int = 0, objectives: int = 1):
    """Tree-structured Parzen estimator: multivariate and grouped (conditional choices are
    modelled jointly), a constant liar so that parallel workers spread out."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # multivariate and group are "experimental" since 2.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=8
        )


def gp(*, seed: int = 0, objectives: int = 1):
    """Gaussian-process Bayesian optimisation (conditional choices sampled at random)."""
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)


def cmaes(*, seed: int = 0, objectives: int = 1):
    """CMA-ES over the numeric decisions; categorical ones at random (Optuna's fallback)."""
    import optuna

    return optuna.samplers.CmaEsSampler(
        seed=seed, n_startup_trials=4, warn_independent_sampling=False
    )


def nsga2(*, seed: int = 0, objectives: int = 1):
    """NSGA-II: non-dominated sorting and crowding; populations of 16 for small budgets."""
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)


def random(*, seed: int = 0, objectives: int = 1):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)

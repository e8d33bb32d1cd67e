"""Regularised evolution (Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search") as an Optuna sampler.

The population is the ``population`` most recent finished trials, so the oldest
model leaves it whatever its score (the "ageing" that regularises). A new trial takes a
tournament of ``tournament`` members drawn from the population, copies the best one's
decisions and changes exactly one of them at random; decisions the parent never took
(a condition that now holds) are drawn at random. Before the population is full, trials
are random. With several objectives the tournament's winner is one that no other
member dominates.

Nothing is kept between trials but the study: every ask rebuilds the population from
``study.get_trials()``, so any number of workers on any machines share one evolution.
Written by hand because Optuna has no regularised-evolution sampler (optunahub's is
downloaded at run time, which deepstrata never does).
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import TrialState

__all__ = ["RegularizedEvolutionSampler"]


class RegularizedEvolutionSampler(BaseSampler):
    """Tournament selection, one mutation, the oldest removed (see the module docstring)."""

    def __init__(
        self, *, population: int = 12, tournament: int = 4, seed: int = 0, objectives: int = 1
    ) -> None:
        self.population = population
        self.tournament = tournament
        self.seed = seed
        self._random = RandomSampler(seed=seed)
        self._plans: dict[int, tuple[dict, str | None, np.random.RandomState]] = {}

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        parent, mutated, rng = self._plan(study, trial)
        if param_name == mutated or param_name not in parent:
            return _draw(param_distribution, rng, avoid=parent.get(param_name))
        value = parent[param_name]
        if param_distribution._contains(param_distribution.to_internal_repr(value)):
            return value
        return _draw(param_distribution, rng)

    def after_trial(self, study, trial, state, values) -> None:
        self._plans.pop(trial._trial_id, None)

    def _plan(self, study, trial):
        if trial._trial_id in self._plans:
            return self._plans[trial._trial_id]
        rng = np.random.RandomState((self.seed * 1_000_003 + trial.number) % 2**32)
        finished = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values is not None
        ]
        finished.sort(key=lambda t: t.number)
        members = finished[-self.population :]
        if len(members) < self.population:
            plan = ({}, None, rng)  # random until the first population is in
        else:
            picked = [members[i] for i in rng.choice(len(members), self.tournament, replace=False)]
            parent = _winner(picked, study.directions, rng)
            names = sorted(parent.params)
            plan = (dict(parent.params), names[rng.randint(len(names))] if names else None, rng)
        self._plans[trial._trial_id] = plan
        return plan


def _signed(values, directions) -> np.ndarray:
    """Objective values turned so that lower is better for each."""
    signs = [1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in directions]
    return np.asarray(values, dtype=float) * np.asarray(signs)


def _winner(trials, directions, rng):
    """The best of ``trials``; with several objectives, one that none of them dominates."""
    scores = np.stack([_signed(t.values, directions) for t in trials])
    if scores.shape[1] == 1:
        return trials[int(np.argmin(scores[:, 0]))]
    front = [
        i
        for i in range(len(trials))
        if not any(
            np.all(scores[j] <= scores[i]) and np.any(scores[j] < scores[i])
            for j in range(len(trials))
        )
    ]
    return trials[front[rng.randint(len(front))]]


def _draw(distribution, rng, avoid=None):
    """A value from ``distribution`` (another than ``avoid`` where one exists)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    for _ in range(8):
        if isinstance(distribution, CategoricalDistribution):
            value = distribution.choices[rng.randint(len(distribution.choices))]
        elif isinstance(distribution, FloatDistribution):
            low, high = distribution.low, distribution.high
            if distribution.log:
                value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
            else:
                value = float(rng.uniform(low, high))
            if distribution.step:
                value = low + round((value - low) / distribution.step) * distribution.step
        else:  # IntDistribution
            low, high, step = distribution.low, distribution.high, distribution.step
            if distribution.log:
                value = int(np.floor(np.exp(rng.uniform(np.log(low), np.log(high + 1)))))
                value = int(min(max(value, low), high))
            else:
                value = low + step * rng.randint((high - low) // step + 1)
        if value != avoid:
            return value
    return value

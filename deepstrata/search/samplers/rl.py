"""A reinforcement-learning controller (after Zoph & Le 2017, "Neural Architecture Search
with Reinforcement Learning") as an Optuna sampler.

The controller is a policy over the trial's sequence of decisions: each decision's
choice is drawn from a softmax whose logits are the decision's own plus those that
follow the choice made just before it (a first-order, tabular stand-in for the paper's
LSTM, small enough to learn from tens of trials: the shared part learns from every
trial, the part after the previous choice from the trials that made it). Numbers are split into ``bins`` bins (on a log scale
where the range is) and a value is drawn inside the chosen bin. The policy is trained
with REINFORCE: after each finished trial, ``logits += lr * (reward - baseline) *
grad log p(choices)``, the reward being the trial's standardised first objective (lower
is better: its negative) and the baseline an exponential moving average of the rewards.

Stateless: every trial replays the updates over ``study.get_trials()`` in trial order,
so workers on many machines share one controller. Written by hand: no maintained
package has an RL controller for Optuna (NNI, which had one, is unmaintained).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.samplers import BaseSampler
from optuna.trial import TrialState

__all__ = ["ReinforceSampler"]

START = "<start>"


class ReinforceSampler(BaseSampler):
    """REINFORCE with a moving-average baseline over the sequence of decisions."""

    def __init__(
        self,
        *,
        learning_rate: float = 0.3,
        baseline_decay: float = 0.8,
        bins: int = 8,
        seed: int = 0,
        objectives: int = 1,
    ) -> None:
        self.learning_rate = learning_rate
        self.baseline_decay = baseline_decay
        self.bins = bins
        self.seed = seed
        self._policies: dict[int, dict] = {}

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        logits = self._policy(study, trial)
        previous = _previous(trial.params, trial.distributions, None, self.bins)
        actions = _actions(param_distribution, self.bins)
        row = _row(logits, param_name, previous, len(actions))
        rng = np.random.RandomState(
            (self.seed * 1_000_003 + trial.number * 7919 + len(trial.params)) % 2**32
        )
        action = rng.choice(len(actions), p=_softmax(row))
        return _value(param_distribution, actions[action], rng)

    def after_trial(self, study, trial, state, values) -> None:
        self._policies.pop(trial._trial_id, None)

    def probabilities(self, study, name: str, distribution, previous: str = START) -> np.ndarray:
        """The controller's current probabilities of ``name``'s choices after ``previous``
        (the decision before it as ``name=index``, or the start)."""
        logits = self._replay(study)
        return _softmax(_row(logits, name, previous, len(_actions(distribution, self.bins))))

    def _policy(self, study, trial) -> dict:
        if trial._trial_id not in self._policies:
            self._policies[trial._trial_id] = self._replay(study)
        return self._policies[trial._trial_id]

    def _replay(self, study) -> dict:
        """The logits after REINFORCE updates over every finished trial, in trial order."""
        finished = sorted(
            (
                t
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.values is not None
            ),
            key=lambda t: t.number,
        )
        logits: dict = defaultdict(lambda: None)
        if not finished:
            return logits
        sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1.0
        rewards = np.array([-sign * t.values[0] for t in finished])
        rewards = (rewards - rewards.mean()) / (rewards.std() + 1e-12)
        baseline = 0.0
        for trial, reward in zip(finished, rewards):
            advantage = reward - baseline
            baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * reward
            names = list(trial.params)
            for position, name in enumerate(names):
                distribution = trial.distributions[name]
                actions = _actions(distribution, self.bins)
                previous = _previous(
                    {n: trial.params[n] for n in names[:position]},
                    trial.distributions,
                    None,
                    self.bins,
                )
                chosen = _action_of(distribution, trial.params[name], actions)
                gradient = -_softmax(_row(logits, name, previous, len(actions)))
                gradient[chosen] += 1.0  # d log p(chosen) / d logits, for both tables
                for key in ((name, None), (name, previous)):
                    if logits[key] is None or len(logits[key]) != len(actions):
                        logits[key] = np.zeros(len(actions))
                    logits[key] = logits[key] + self.learning_rate * advantage * gradient
        return logits


def _row(logits, name: str, previous: str, size: int) -> np.ndarray:
    """A decision's logits: its own (``(name, None)``, what every context shares) plus
    those after the previous choice; zeros where the controller has not learnt yet."""
    row = np.zeros(size)
    for key in ((name, None), (name, previous)):
        if logits[key] is not None and len(logits[key]) == size:
            row = row + logits[key]
    return row


def _softmax(row: np.ndarray) -> np.ndarray:
    shifted = np.exp(row - row.max())
    return shifted / shifted.sum()


def _actions(distribution, bins: int) -> list:
    """The choices of a decision: a category's values, or ``(low, high)`` bins of a range."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    low, high = float(distribution.low), float(distribution.high)
    if not isinstance(distribution, FloatDistribution):
        count = (int(high) - int(low)) // distribution.step + 1
        if count <= bins:
            return [(v, v) for v in range(int(low), int(high) + 1, distribution.step)]
    if distribution.log:
        edges = np.exp(np.linspace(np.log(low), np.log(high), bins + 1))
    else:
        edges = np.linspace(low, high, bins + 1)
    return [(float(edges[i]), float(edges[i + 1])) for i in range(bins)]


def _action_of(distribution, value, actions: list) -> int:
    if isinstance(distribution, CategoricalDistribution):
        return actions.index(value)
    for index, (_low, high) in enumerate(actions):
        if value <= high:
            return index
    return len(actions) - 1


def _previous(params: dict, distributions: dict, _unused, bins: int) -> str:
    """The decision just taken, as ``name=action index`` (the start for the first)."""
    if not params:
        return START
    name = list(params)[-1]
    distribution = distributions[name]
    return f"{name}={_action_of(distribution, params[name], _actions(distribution, bins))}"


def _value(distribution, action, rng):
    if isinstance(distribution, CategoricalDistribution):
        return action
    low, high = action
    if isinstance(distribution, FloatDistribution):
        if distribution.log:
            return float(np.exp(rng.uniform(np.log(low), np.log(high))))
        return float(rng.uniform(low, high))
    lowest, highest = int(np.ceil(low)), int(np.floor(high))
    step = distribution.step
    lowest = distribution.low + -(-(lowest - distribution.low) // step) * step
    if lowest > highest:
        return int(min(max(round(low), distribution.low), distribution.high))
    return int(lowest + step * rng.randint((highest - lowest) // step + 1))

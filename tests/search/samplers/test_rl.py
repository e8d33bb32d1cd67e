"""The REINFORCE controller learns: the probability of the better choice rises."""

import optuna

from deepstrata.search.samplers.rl import ReinforceSampler


def test_the_probability_of_the_better_choice_rises_with_trials():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    distribution = optuna.distributions.CategoricalDistribution(["small", "good", "bad"])

    def objective(trial):
        choice = trial.suggest_categorical("block", ["small", "good", "bad"])
        depth = trial.suggest_int("depth", 1, 4)
        return {"small": 1.0, "good": 0.0, "bad": 2.0}[choice] + 0.1 * depth

    before = sampler.probabilities(study, "block", distribution)[1]
    seen = []
    for _ in range(4):
        study.optimize(objective, n_trials=10)
        seen.append(sampler.probabilities(study, "block", distribution)[1])
    assert before == 1 / 3
    assert seen[-1] > 0.8 and seen[-1] > seen[0] > before
    late = [t.params["block"] for t in study.trials[-10:]]
    assert late.count("good") >= 7  # the controller now mostly proposes it


def test_a_worker_rebuilds_the_same_controller_from_the_study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=ReinforceSampler(seed=1))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=12)
    distribution = optuna.distributions.FloatDistribution(0, 1)
    first = ReinforceSampler(seed=5).probabilities(study, "x", distribution)
    second = ReinforceSampler(seed=9).probabilities(study, "x", distribution)
    assert (first == second).all() and first[0] > first[-1]  # low x is better

"""Regularised evolution: random until the population is in, then one mutation of a
tournament's winner; the population is the most recent trials (the oldest leave)."""

import optuna

from deepstrata.search.samplers.evolution import RegularizedEvolutionSampler


def _study(population=6):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = RegularizedEvolutionSampler(population=population, tournament=3, seed=0)
    study = optuna.create_study(sampler=sampler)

    def objective(trial):
        a = trial.suggest_categorical("a", ["x", "y", "z"])
        b = trial.suggest_int("b", 0, 9)
        c = trial.suggest_float("c", 0.0, 1.0)
        return {"x": 0, "y": 1, "z": 2}[a] + abs(b - 4) + c

    study.optimize(objective, n_trials=30)
    return study


def test_each_child_changes_exactly_one_decision_of_a_recent_parent():
    study = _study()
    trials = study.trials
    for child in trials[6:]:
        recent = [t for t in trials[: child.number] if t.state.name == "COMPLETE"][-6:]
        differences = [
            sum(child.params[k] != parent.params[k] for k in child.params) for parent in recent
        ]
        assert 1 in differences, (child.number, differences)


def test_evolution_improves_on_its_random_start():
    study = _study()
    first = min(t.value for t in study.trials[:6])
    assert study.best_value < first

"""Pruning: val loss reported per epoch, bad trials stopped, the savings counted."""

import optuna
import pytest

from deepstrata.errors import ConfigError
from deepstrata.search.pruning import PRUNERS, PruningCallback, make_pruner, savings


class FakeTrainer:
    stop_training = False


def test_a_trial_trailing_the_others_is_stopped_and_the_saving_counted():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=make_pruner("median", 10))
    for number in range(6):
        trial = study.ask()
        callback, trainer = PruningCallback(trial), FakeTrainer()
        level = 5.0 if number == 5 else 1.0 - 0.01 * number  # the last trial is much worse
        for epoch in range(1, 11):
            callback.on_epoch_end(trainer, {"epoch": epoch, "loss": level, "val_loss": level})
            if trainer.stop_training:
                break
        trial.set_user_attr("epochs", callback.epochs)
        trial.set_user_attr("train_seconds", float(callback.epochs))  # a second per epoch
        if callback.pruned is not None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, level)
    assert [t.state.name for t in study.trials][-1] == "PRUNED"
    assert study.trials[-1].user_attrs["epochs"] == 2  # once the warm-up epochs were over
    saved = savings(study.trials)  # 8 epochs short of the complete trials' 10, a second each
    assert saved["pruned"] == 1 and saved["epochs_saved"] == 8 and saved["seconds_saved"] == 8.0
    assert saved["fraction_saved"] == pytest.approx(8 / (8 + 52), abs=1e-4)


def test_every_pruner_is_made_and_an_unknown_one_is_named():
    for name in PRUNERS:
        assert make_pruner(name, 20) is not None
    with pytest.raises(ConfigError, match="--pruner: expected one of"):
        make_pruner("early", 20)

"""Stopping bad trials early: each trial reports its validation loss after every epoch,
and a pruner (Hyperband, successive halving or the median rule) stops the trials that
trail the others at the same epoch. Pruned trials and the compute they saved are counted.

Optuna prunes single-objective studies only; with several objectives every trial runs
to its end (the search says so).
"""

from __future__ import annotations

from deepstrata.errors import ConfigError

__all__ = ["PRUNERS", "PruningCallback", "make_pruner", "savings"]

PRUNERS = ("hyperband", "halving", "median", "none")


def make_pruner(name: str, max_epochs: int):
    """The pruner ``name`` over trials of at most ``max_epochs`` epochs."""
    import optuna

    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(max_epochs, 3), reduction_factor=3
        )
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"expected one of {', '.join(PRUNERS)}, got {name!r}", option="--pruner")


class PruningCallback:
    """Reports ``val_loss`` after each epoch to ``trial``; ends training when the pruner
    says so (``pruned`` then holds the epoch). A trainer callback
    (:mod:`deepstrata.train.callbacks`' four events) that does not subclass its ``Callback``,
    so that a worker waiting for trials has not imported torch."""

    def __init__(self, trial, enabled: bool = True) -> None:
        self.trial = trial
        self.enabled = enabled
        self.pruned: int | None = None
        self.epochs = 0

    def on_fit_start(self, trainer) -> None:
        pass

    def on_batch_end(self, trainer, epoch, step, loss) -> None:
        pass

    def on_fit_end(self, trainer, history) -> None:
        pass

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.epochs = record["epoch"]
        if not self.enabled:
            return
        value = record.get("val_loss", record["loss"])
        self.trial.report(float(value), step=int(record["epoch"]))
        if self.trial.should_prune():
            self.pruned = int(record["epoch"])
            trainer.stop_training = True


def savings(trials) -> dict:
    """Pruned trials, and the epochs and seconds they saved: each pruned trial would have
    trained as long as the median completed trial, at its own seconds per epoch."""
    import statistics

    complete = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("epochs")]
    pruned = [t for t in trials if t.state.name == "PRUNED" and t.user_attrs.get("epochs")]
    full = statistics.median(t.user_attrs["epochs"] for t in complete) if complete else 0
    epochs = seconds = 0.0
    for trial in pruned:
        ran = trial.user_attrs["epochs"]
        per_epoch = trial.user_attrs.get("train_seconds", 0.0) / max(ran, 1)
        epochs += max(full - ran, 0)
        seconds += max(full - ran, 0) * per_epoch
    spent = sum(t.user_attrs.get("train_seconds", 0.0) for t in complete + pruned)
    return {
        "pruned": len(pruned),
        "complete": len(complete),
        "median_epochs_complete": full,
        "epochs_saved": epochs,
        "seconds_saved": round(seconds, 2),
        "seconds_spent": round(spent, 2),
        "fraction_saved": round(seconds / (seconds + spent), 4) if seconds + spent else 0.0,
    }

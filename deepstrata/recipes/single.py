"""One validation split: train on the rest, stop and calibrate on it (``fit``'s default).

With ``--ensemble`` (on a table by default: :func:`deepstrata.recipes.ensemble.auto_ensemble`)
the best classical model trains on the same rows and the two are weighed on the validation
rows (:func:`deepstrata.recipes.ensemble.with_classical`).
"""

from __future__ import annotations

from deepstrata.model.model import Model
from deepstrata.recipes.ensemble import classical_side, with_classical
from deepstrata.recipes.fairness import fairness_metrics, fairness_thresholds, reweighed
from deepstrata.recipes.network import train_split
from deepstrata.recipes.prepare import Prepared, assemble, calibrated, group_counts
from deepstrata.recipes.records import data_summary, prediction_records
from deepstrata.report.render import PREDICTIONS, SUMMARY


def single_split(prepared: Prepared, *, run, resume, progress, callbacks) -> Model:
    """Train on one split; the model and its validation metrics."""
    cfg, task = prepared.cfg, prepared.task
    train_rows, val_rows = prepared.validation_split()
    if len(val_rows) == 0:
        raise prepared.table.error(
            "no row can be held out for validation: every class has a single row",
            column=cfg.target,
            hint="add rows or merge rare classes",
        )
    side = classical_side(prepared) if cfg.ensemble else None  # fails before any training

    def train(row_weights=None):
        return train_split(
            prepared,
            train_rows,
            val_rows,
            directory=run.path if run else None,
            resume=resume,
            progress=progress,
            callbacks=callbacks,
            row_weights=row_weights,
        )

    reweighing = None
    if cfg.fairness and cfg.fairness_method == "reweigh":  # one network per strength
        trained, reweighing = reweighed(prepared, train_rows, val_rows, train)
    else:
        trained = train()
    members, weights = [trained.member], None
    outputs = calibrated(trained.raw_outputs, trained.member)
    info = trained.info
    if side is not None:
        members, weights, outputs, info = with_classical(
            side, trained, outputs, train_rows, val_rows, progress
        )
    labels = prepared.encoded[val_rows]
    decision = task.decide(outputs, labels, threshold=prepared.cfg.threshold)  # None: argmax
    fairness = None if reweighing else fairness_thresholds(prepared, val_rows, outputs)
    model = assemble(prepared, members, trained.artifacts, weights=weights, decision=decision)
    model.fairness = fairness  # thresholds applied when predicting; reweighing needs none
    entry, figure = fairness_metrics(fairness or reweighing)
    model.artifacts.update(figure)
    split = {"train": len(train_rows), "validation": len(val_rows)}
    model.metrics = {
        "validation": model.metrics_of(outputs, labels),
        "rows": split,
        **group_counts(prepared, {"train": train_rows, "validation": val_rows}),
        **info,
        **({"decision": decision} if decision is not None else {}),
        "history": trained.history,
        **entry,
    }
    model.artifacts[PREDICTIONS] = prediction_records(prepared, model, val_rows, outputs)
    model.artifacts[SUMMARY] = data_summary(prepared, split)
    return model

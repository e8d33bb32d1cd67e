"""The Python API: ``fit`` a table into a :class:`Model`, ``load`` one back.

>>> import deepstrata, pandas as pd
>>> frame = pd.DataFrame({"x": [i % 10 for i in range(40)], "y": ["a", "b"] * 20})
>>> model = deepstrata.fit(frame, target="y", max_epochs=2, progress=False)
>>> model.predict(frame.head(2)).shape
(2,)

``fit`` is: read -> schema -> split (or K folds) -> per split: fit preprocessors
on the training rows, build the network, train (range test, schedule, early
stopping, checkpoints), calibrate on the validation rows -> Model
(:mod:`deepstrata.recipes`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

from deepstrata.config import FitConfig
from deepstrata.model.model import Data, Model, load, versions
from deepstrata.recipes.run import run_fit
from deepstrata.train.callbacks import Callback
from deepstrata.train.progress import Progress

__all__ = ["Model", "fit", "load", "versions"]


def fit(
    data: Data,
    target: str | None = None,
    *,
    config: FitConfig | None = None,
    progress: bool | Progress = True,
    run_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    keep_checkpoints: bool = False,
    run_record: dict | None = None,
    **options,
) -> Model:
    """Infer a schema, fit preprocessors on the training split, train, and return a Model.

    ``data`` is a pandas DataFrame or a path (CSV, TSV, Parquet, JSONL).
    ``options`` are :class:`FitConfig` fields (``max_epochs=50``, ``folds=5``,
    ``columns={"zip": "category"}``); they override ``config``. ``progress=False``
    silences the progress display. ``run_dir`` keeps checkpoints and logs there;
    ``resume=True`` continues the run in ``run_dir`` exactly where it stopped.
    ``callbacks`` hook into the training loop (see ``deepstrata.train.callbacks``).
    Checkpoints are removed when fit returns unless ``keep_checkpoints`` (the CLI keeps
    them until the bundle is written); ``run_record`` adds fields to ``run.json``.
    """
    if config is not None and not options and target is None:
        cfg = copy.deepcopy(config)  # checked when it was made; the fit fills in what it chose
    else:
        settings = {**(config.to_dict() if config else {}), **options}
        if target is not None:
            settings["target"] = target
        cfg = FitConfig.from_dict(settings, source="fit()")
    recipe = run_fit
    if cfg.adversarial != "none":  # fit --adversarial: a callback sets the Trainer's perturb
        from deepstrata.attack.adversarial import adversarial_callbacks

        callbacks = [*callbacks, *adversarial_callbacks(cfg)]
    if cfg.drop_label_issues or cfg.relabel_issues:  # a first fit with folds finds them
        from deepstrata.audit.cleaning import fit_without_label_issues as recipe
    return recipe(
        data,
        cfg,
        progress=progress,
        run_dir=run_dir,
        resume=resume,
        callbacks=callbacks,
        keep_checkpoints=keep_checkpoints,
        run_record=run_record,
    )

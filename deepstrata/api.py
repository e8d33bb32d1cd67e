"""The Python API: ``fit`` a table into a :class:`Model`, ``load`` one back.

>>> import deepstrata, pandas as pd
>>> frame = pd.DataFrame({"x": range(40), "y": ["a", "b"] * 20})
>>> model = deepstrata.fit(frame, target="y", max_epochs=2, progress=False)
>>> model.predict(frame.head(2)).shape
(2,)
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepstrata.bundle import read_bundle, write_bundle
from deepstrata.config import FitConfig
from deepstrata.data.schema import Schema, infer_schema
from deepstrata.data.sources import Table, read_table
from deepstrata.data.split import train_validation_split
from deepstrata.errors import BundleError, ConfigError, DataError, DataWarning
from deepstrata.evaluate.metrics import classification_metrics, regression_metrics
from deepstrata.heads import point_predictions
from deepstrata.kinds import REGISTRY, transform_frame
from deepstrata.network import Network, build_network
from deepstrata.preprocess.base import Preprocessor
from deepstrata.preprocess.target import TargetEncoder
from deepstrata.seeding import preserved_random_state, seed_everything
from deepstrata.train.progress import Progress
from deepstrata.train.trainer import Trainer, forward_in_chunks

Data = str | Path | pd.DataFrame | Table


def versions() -> dict:
    import numpy
    import safetensors

    from deepstrata import __version__

    return {
        "deepstrata": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


class Model:
    """A fitted network with everything it needs to turn raw rows into predictions.

    Built by :func:`fit` or :func:`load`; not meant to be constructed by hand.
    """

    def __init__(
        self,
        *,
        schema: Schema,
        preprocessors: dict[str, Preprocessor],
        target_encoder: TargetEncoder,
        network: Network,
        config: FitConfig,
        metrics: dict | None = None,
    ) -> None:
        self.schema = schema
        self.preprocessors = preprocessors
        self.target_encoder = target_encoder
        self.network = network.eval()
        self.config = config
        self.metrics = metrics or {}

    @property
    def task(self) -> str:
        return self.schema.task

    @property
    def classes(self) -> list:
        """Class labels in the order of ``predict_proba``'s columns (classification only)."""
        return self.target_encoder.labels()

    # -- predictions -------------------------------------------------------------------------
    def _outputs(self, data: Data) -> tuple[Table, np.ndarray]:
        table = read_table(data)
        inputs = transform_frame(self.preprocessors, table.frame, table)
        return table, forward_in_chunks(self.network, inputs).numpy()

    def predict(self, data: Data) -> np.ndarray:
        """Class labels or regression values, one per row of ``data`` (a DataFrame or a file)."""
        _, outputs = self._outputs(data)
        return self._decode(outputs)

    def predict_proba(self, data: Data) -> np.ndarray:
        """``(rows, classes)`` probabilities, columns in the order of ``model.classes``."""
        if self.task == "regression":
            raise TypeError("predict_proba is for classifiers; this model does regression")
        _, outputs = self._outputs(data)
        return self.network.head.probabilities(outputs)

    def predictions(
        self, data: Data, *, proba: bool = False, keep: list[str] | tuple = ()
    ) -> pd.DataFrame:
        """A table of predictions: ``keep`` columns copied from ``data``, ``prediction``,
        and with ``proba`` one ``proba_<class>`` column per class."""
        if proba and self.task == "regression":
            raise ConfigError("a regression model has no class probabilities", option="--proba")
        table, outputs = self._outputs(data)
        for name in keep:
            if name not in table.frame.columns:
                raise table.error(f"column {name!r} to keep is not in the data", column=name)
        frame = pd.DataFrame({name: table.frame[name] for name in keep})
        frame["prediction"] = self._decode(outputs)
        if proba:
            probabilities = self.network.head.probabilities(outputs)
            for index, label in enumerate(self.classes):
                frame[f"proba_{label}"] = probabilities[:, index]
        return frame

    def _decode(self, outputs: np.ndarray) -> np.ndarray:
        return self.target_encoder.decode(point_predictions(self.task, outputs))

    def evaluate(self, data: Data) -> dict[str, float]:
        """Metrics on rows that include the target column."""
        table, outputs = self._outputs(data)
        target = self.schema.target
        if target not in table.frame.columns:
            raise table.error(f"the target column {target!r} is needed to evaluate", column=target)
        encoded = self.target_encoder.encode(table.frame[target], table)
        return self._metrics(outputs, encoded)

    def _metrics(self, outputs: np.ndarray, encoded: np.ndarray) -> dict[str, float]:
        if self.task == "regression":
            return regression_metrics(
                self.target_encoder.decode(encoded.astype(np.float64)), self._decode(outputs)
            )
        return classification_metrics(encoded, self.network.head.probabilities(outputs))

    # -- persistence ---------------------------------------------------------------------------
    def bundle_config(self) -> dict:
        return {
            "schema": self.schema.to_dict(),
            "preprocessors": {
                name: {"kind": pre.kind, "state": pre.state()}
                for name, pre in self.preprocessors.items()
            },
            "target": self.target_encoder.state(),
            "architecture": {
                "task": self.task,
                "num_classes": len(self.target_encoder.classes),
                "hidden_dims": list(self.config.hidden_dims),
                "dropout": self.config.dropout,
            },
            "training": self.config.to_dict(),
            "versions": versions(),
        }

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the bundle directory (atomically). Returns its path."""
        return write_bundle(
            path,
            config=self.bundle_config(),
            weights=self.network.state_dict(),
            metrics=self.metrics,
            versions=versions(),
            overwrite=overwrite,
        )

    def __repr__(self) -> str:
        inputs = ", ".join(f"{f.name}:{f.kind}" for f in self.schema.inputs)
        return f"Model(task={self.task!r}, target={self.schema.target!r}, inputs=[{inputs}])"


def fit(
    data: Data,
    target: str | None = None,
    *,
    config: FitConfig | None = None,
    progress: bool | Progress = True,
    **options,
) -> Model:
    """Infer a schema, fit preprocessors on the training split, train, and return a Model.

    ``data`` is a pandas DataFrame or a path (CSV, TSV, Parquet, JSONL).
    ``options`` are :class:`FitConfig` fields (``max_epochs=50``, ``columns={"zip": "category"}``);
    they override ``config``. ``progress=False`` silences the progress display.
    """
    settings = {**(config.to_dict() if config else {}), **options}
    if target is not None:
        settings["target"] = target
    cfg = FitConfig.from_dict(settings, source="fit()").validate()
    if cfg.target is None:
        raise DataError("no target column given", hint="pass target=NAME (--target NAME)")

    table = read_table(data)
    schema = infer_schema(
        table.frame,
        target=cfg.target,
        task=cfg.task,
        columns=cfg.columns,
        ignore=cfg.ignore,
        source=table.source,
    )
    frame = table.frame
    labelled = frame[cfg.target].notna().to_numpy()
    if not labelled.all():
        warnings.warn(
            f"{int((~labelled).sum())} row(s) without a value in the target {cfg.target!r} were left out",
            DataWarning,
            stacklevel=2,
        )
        frame = frame[labelled]

    target_encoder = TargetEncoder(schema.task).fit(frame[cfg.target], table)
    encoded = target_encoder.encode(frame[cfg.target], table)
    if len(frame) < 2:
        raise table.error(f"need at least 2 labelled rows to train, found {len(frame)}")
    train_rows, val_rows = train_validation_split(
        encoded,
        stratify=schema.task != "regression",
        fraction=cfg.validation_fraction,
        seed=cfg.seed,
    )
    if len(val_rows) == 0:
        raise table.error(
            "no row can be held out for validation: every class has a single row",
            column=cfg.target,
            hint="add rows or merge rare classes",
        )
    train_frame, val_frame = frame.iloc[train_rows], frame.iloc[val_rows]

    options_for_kinds = {
        "min_category_count": cfg.min_category_count,
        "text_max_length": cfg.text_max_length,
    }
    preprocessors = {
        f.name: REGISTRY[f.kind].new_preprocessor(options_for_kinds).fit(train_frame[f.name], table)
        for f in schema.inputs
    }
    with warnings.catch_warnings():
        # Rare training values and validation-only values are expected to be unknown here.
        warnings.simplefilter("ignore", DataWarning)
        train_inputs = transform_frame(preprocessors, train_frame, table)
        val_inputs = transform_frame(preprocessors, val_frame, table)
    train_target, val_target = (
        torch.from_numpy(encoded[train_rows]),
        torch.from_numpy(encoded[val_rows]),
    )

    # fit seeds the global generators (initialisation, dropout); the caller's are restored.
    with preserved_random_state():
        seed_everything(cfg.seed)
        network = build_network(
            preprocessors,
            task=schema.task,
            num_classes=len(target_encoder.classes),
            hidden_dims=cfg.hidden_dims,
            dropout=cfg.dropout,
        )
        reporter = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
        trainer = Trainer(
            network,
            loss_fn=network.loss,
            metric_fn=_epoch_metric(schema.task, target_encoder),
            learning_rate=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            batch_size=cfg.batch_size,
            max_epochs=cfg.max_epochs,
            patience=cfg.patience,
            min_delta=cfg.min_delta,
            time_limit=cfg.time_limit,
            seed=cfg.seed,
            progress=reporter,
        )
        history = trainer.fit(train_inputs, train_target, validation=(val_inputs, val_target))
        model = Model(
            schema=schema,
            preprocessors=preprocessors,
            target_encoder=target_encoder,
            network=network,
            config=cfg,
        )
        val_outputs = forward_in_chunks(network, val_inputs).numpy()
        model.metrics = {
            "validation": model._metrics(val_outputs, encoded[val_rows]),
            "rows": {"train": len(train_rows), "validation": len(val_rows)},
            "history": history.to_dict(),
        }
        return model


def _epoch_metric(task: str, target_encoder: TargetEncoder):
    """A cheap per-epoch validation figure for the progress line (torch only)."""
    if task == "binary":
        return lambda out, y: {"accuracy": float(((out > 0).long() == y).float().mean())}
    if task == "multiclass":
        return lambda out, y: {"accuracy": float((out.argmax(1) == y).float().mean())}
    scale = target_encoder.std
    return lambda out, y: {"rmse": float(torch.sqrt(torch.mean((out - y) ** 2))) * scale}


def load(path: str | Path) -> Model:
    """Load a bundle written by ``Model.save``; verifies every file's hash first."""
    config, weights, metrics = read_bundle(path)
    try:
        schema = Schema.from_dict(config["schema"])
        preprocessors = {
            name: REGISTRY[entry["kind"]].preprocessor.from_state(entry["state"])
            for name, entry in config["preprocessors"].items()
        }
        target_encoder = TargetEncoder.from_state(config["target"])
        architecture = config["architecture"]
        training = FitConfig.from_dict(config["training"], source="config.json")
        network = build_network(
            preprocessors,
            task=architecture["task"],
            num_classes=architecture["num_classes"],
            hidden_dims=architecture["hidden_dims"],
            dropout=architecture["dropout"],
        )
        network.load_state_dict(weights, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise BundleError(
            f"config.json and weights do not describe a model: {error}", path=str(path)
        ) from error
    return Model(
        schema=schema,
        preprocessors=preprocessors,
        target_encoder=target_encoder,
        network=network,
        config=training,
        metrics=metrics,
    )

"""The anomaly detector: rows -> one feature vector each -> an autoencoder's reconstruction error.

A row becomes one vector through the fixed-features extractor
(:mod:`deepstrata.model.extractor`): numbers, booleans and dates as their preprocessors
scaled them, categories one-hot, image and text columns through their pretrained
networks' embeddings. Each feature column is then standardised on the training rows
(so a 384-wide text embedding of small values and a one-hot block weigh alike), and a
small MLP autoencoder with a bottleneck learns to rebuild the rows; a row it rebuilds
badly is unlike the rows it learnt from. The score of a row is its mean squared
reconstruction error over the feature columns; the flag threshold is a quantile of the
training rows' scores (``contamination``) or given.

The isolation forest (scikit-learn) is the classical baseline scored beside it; it is
reported, never stored (it would need pickle).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepstrata.data.table import Table
from deepstrata.model.extractor import FeatureExtractor, build_extractor
from deepstrata.preprocess.frame import transform_frame

# A one-hot column of a category seen in 1 % of rows has std 0.1; a floor there keeps a
# category seen once or twice from standing 30 standard deviations out on its own.
STD_FLOOR = 0.1
HELD_OUT_SHARE = 0.2  # training rows kept aside for early stopping
# Measured on 240 rows of 2-dimensional data in 4 columns: at 1e-3 in Trainer's automatic
# batches of 16 the autoencoder was still far from the data after 150 epochs (median error
# 0.2); at 3e-3 in batches of 64 it was there after 100 (0.01), in a fifth of the time.
LEARNING_RATE = 3e-3
BATCH_ROWS = (32, 256)  # a batch is an eighth of the rows, within these bounds


class Autoencoder(nn.Module):
    """``{"x": (B, D)} -> (B, D)``: D -> hidden -> bottleneck -> hidden -> D, ReLU after
    each hidden layer."""

    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int) -> None:
        super().__init__()
        self.in_dim, self.hidden_dim, self.bottleneck_dim = in_dim, hidden_dim, bottleneck_dim
        self.encoder = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, bottleneck_dim)
        )
        # The code stays linear: a ReLU on a 2-wide bottleneck would fold half its plane away.
        self.decoder = nn.Sequential(
            nn.Linear(bottleneck_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, in_dim)
        )

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.decoder(self.encoder(inputs["x"]))  # (B, D)

    def sizes(self) -> dict:
        return {
            "in_dim": self.in_dim,
            "hidden_dim": self.hidden_dim,
            "bottleneck_dim": self.bottleneck_dim,
        }


def default_sizes(in_dim: int) -> dict:
    """Hidden and bottleneck widths for ``in_dim`` features: the bottleneck about a quarter
    of the width (at least 2, at most 32), so that the network cannot copy every column."""
    bottleneck = max(2, min(32, in_dim // 4))
    hidden = max(2 * bottleneck, min(128, in_dim))
    return {"in_dim": in_dim, "hidden_dim": hidden, "bottleneck_dim": bottleneck}


def reconstruction_errors(network: Autoencoder, features: np.ndarray) -> np.ndarray:
    """``(N,)`` mean squared error of each row's reconstruction (standardised features)."""
    network.eval()
    errors = []
    with torch.inference_mode():
        for start in range(0, len(features), 4096):
            x = torch.from_numpy(features[start : start + 4096])
            errors.append(((network({"x": x}) - x) ** 2).mean(dim=1).numpy())
    return np.concatenate(errors) if errors else np.zeros(0, dtype=np.float32)


class Detector:
    """Preprocessors, extractor, column scaling and autoencoder: raw rows -> scores.

    Built by :func:`deepstrata.anomaly.run.find_anomalies` or
    :func:`deepstrata.anomaly.bundle.load_detector`.
    """

    def __init__(
        self,
        *,
        preprocessors: dict,
        options: dict,
        pretrained: list[dict] | None = None,
    ) -> None:
        self.preprocessors = preprocessors
        self.options = options  # what the extractor's encoders read (bundle: rebuilt from it)
        self.extractor: FeatureExtractor = build_extractor(preprocessors, options)
        self.pretrained = pretrained or []
        # Set when fitted (deepstrata.anomaly.run) or loaded (deepstrata.anomaly.bundle):
        self.mean: np.ndarray | None = None  # (D,) the training features' column means
        self.std: np.ndarray | None = None  # (D,) and standard deviations (floored)
        self.network: Autoencoder | None = None
        self.threshold: float | None = None

    def fitted(self, *, mean, std, network: Autoencoder, threshold: float) -> Detector:
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.network, self.threshold = network.eval(), float(threshold)
        return self

    @property
    def columns(self) -> list[str]:
        return list(self.preprocessors)

    def features(self, frame: pd.DataFrame, table: Table, *, cache: bool = False) -> np.ndarray:
        """``(N, D)`` standardised features of ``frame``'s rows (a missing input column is a
        DataError naming it, before any work)."""
        return standardise(self.raw_features(frame, table, cache=cache), self.mean, self.std)

    def raw_features(
        self, frame: pd.DataFrame, table: Table, *, cache: bool = False, report=None
    ) -> np.ndarray:
        """``(N, D)`` features before the column scaling (the extractor's output)."""
        import warnings

        from deepstrata.errors import DataWarning

        with warnings.catch_warnings():  # values unseen in training are expected here
            warnings.simplefilter("ignore", DataWarning)
            inputs = transform_frame(self.preprocessors, frame, table)
        raw, _ = self.extractor.extract(inputs, cache=cache, report=report or (lambda line: None))
        return raw

    def scores(self, table: Table) -> np.ndarray:
        """The anomaly score of every row of ``table``: higher is more unusual."""
        return reconstruction_errors(self.network, self.features(table.frame, table))

    def score_frame(self, table: Table, *, keep: list[str] | tuple = ()) -> pd.DataFrame:
        """``keep`` columns, then row (1-based, as in the file), score and flagged."""
        for name in keep:
            if name not in table.frame.columns:
                raise table.error(f"column {name!r} to keep is not in the data", column=name)
        scores = self.scores(table)
        columns = {name: table.frame[name].to_numpy() for name in keep}
        columns["row"] = np.arange(1, len(scores) + 1)
        columns["score"] = scores
        columns["flagged"] = scores >= self.threshold
        return pd.DataFrame(columns)


def standardise(raw: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((raw - mean) / std).astype(np.float32)


def scaling(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation of the training features (see STD_FLOOR)."""
    return raw.mean(axis=0), np.maximum(raw.std(axis=0), STD_FLOOR)


def fit_autoencoder(
    features: np.ndarray,
    *,
    seed: int,
    max_epochs: int,
    patience: int = 10,
    progress=None,
) -> tuple[Autoencoder, dict]:
    """An autoencoder trained on ``features`` (standardised) with deepstrata's Trainer,
    early stopping on a held-out fifth of the rows (all rows train when there are fewer
    than 10). Returns the network (best epoch's weights) and its history as a dict."""
    from deepstrata.seeding import numpy_rng, seed_everything
    from deepstrata.train.trainer import Trainer

    seed_everything(seed)
    network = Autoencoder(**default_sizes(features.shape[1]))
    order = numpy_rng(seed, stream=7).permutation(len(features))
    held = order[: math.floor(len(features) * HELD_OUT_SHARE)] if len(features) >= 10 else []
    fit_rows = order[len(held) :]
    x = torch.from_numpy(np.ascontiguousarray(features[fit_rows]))
    validation = None
    if len(held):
        held_x = torch.from_numpy(np.ascontiguousarray(features[held]))
        validation = ({"x": held_x}, held_x)
    trainer = Trainer(
        network,
        loss_fn=nn.functional.mse_loss,
        learning_rate=LEARNING_RATE,
        batch_size=int(np.clip(len(fit_rows) // 8, *BATCH_ROWS)),
        schedule="plateau",
        max_epochs=max_epochs,
        patience=patience,
        seed=seed,
        progress=progress,
    )
    history = trainer.fit({"x": x}, x, validation)
    record = {
        "epochs": len(history.epochs),
        "best_epoch": history.best_epoch,
        "stopped": history.stopped,
        "seconds": round(history.seconds, 3),
        "training_rows": len(fit_rows),
        "held_out_rows": len(held),
    }
    return network.eval(), record

"""``mlp``: a small PyTorch MLP on standardised features, stored as its ``state_dict``.

The network is the project's :class:`~deepstrata.nn.mlp.MLP` block under the
network heads' output layer and loss (:func:`deepstrata.tasks.build_head`), so its
outputs and losses are exactly those of a deepstrata network's head.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Self

import numpy as np
import torch
from torch import nn

from deepstrata.classical import (
    check_features,
    check_fit_inputs,
    check_fitted,
    check_state,
    is_regression,
    standardisation,
    state_meta,
    task_outputs,
)
from deepstrata.errors import ConfigError
from deepstrata.nn.mlp import MLP
from deepstrata.seeding import generator, preserved_random_state
from deepstrata.tasks import build_head

# Rows per forward pass in ``outputs``: bounds memory on large inputs.
_OUTPUT_ROWS = 8192


class MLPNetwork(nn.Module):
    """``(B, in_dim) -> `` the task head's raw outputs: (B,) or (B, num_classes)."""

    def __init__(
        self,
        *,
        in_dim: int,
        hidden_dims: Sequence[int],
        dropout: float,
        task: str,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.body = MLP(in_dim=in_dim, hidden_dims=hidden_dims, dropout=dropout)
        self.head = build_head(task, in_dim=self.body.out_dim, num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class MLPHead:
    """An MLP (``hidden_dims`` blocks, then the task's linear output) trained with AdamW.

    Minibatches of ``batch_size`` rows, shuffled each epoch. With ``validation`` it
    trains up to ``max_epochs`` and stops once the validation loss has not improved
    for ``patience`` epochs, keeping the best epoch's weights; without, it trains
    ``fixed_epochs``. Losses: binary cross-entropy on logits, cross-entropy, or mean
    squared error. The same seed gives the same weights on the same machine and thread
    count, and the caller's random generators are left as they were.

    Fitted attributes: ``mean_``, ``scale_`` (D,); ``network_`` (an :class:`MLPNetwork`
    in eval mode); ``epochs_`` (epochs trained); ``best_epoch_`` (the epoch kept).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> features = rng.normal(size=(100, 4)).astype(np.float32)  # (N, D)
    >>> target = (features.sum(axis=1) > 0).astype(np.int64)      # (N,)
    >>> head = MLPHead(task="binary", hidden_dims=(16,), fixed_epochs=5).fit(features, target)
    >>> head.outputs(features).shape                              # (N,) logits
    (100,)
    """

    name = "mlp"

    def __init__(
        self,
        *,
        task: str,
        num_classes: int = 0,
        seed: int = 0,
        hidden_dims: Sequence[int] = (256,),
        dropout: float = 0.2,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-2,
        batch_size: int = 64,
        max_epochs: int = 200,
        patience: int = 20,
        fixed_epochs: int = 100,
    ) -> None:
        self.task = task
        self.num_classes = num_classes
        self.seed = seed
        self.hidden_dims = hidden_dims
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.fixed_epochs = fixed_epochs

    def fit(
        self,
        features: np.ndarray,
        target: np.ndarray,
        *,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Self:
        """Fit on (N, D) ``features`` and (N,) ``target``; early stopping on ``validation``."""
        features, target, validation = check_fit_inputs(self, features, target, validation)
        self._check_hyperparameters()
        mean, scale = standardisation(features)
        x, y = self._tensors(features, target, mean, scale)
        if validation is not None:
            validation_x, validation_y = self._tensors(*validation, mean, scale)
        epochs = self.fixed_epochs if validation is None else self.max_epochs

        with preserved_random_state():  # initialisation and dropout draw from torch's global RNG
            torch.manual_seed(self.seed)
            network = self._network(features.shape[1])
            optimizer = torch.optim.AdamW(
                network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
            )
            order = generator(self.seed, stream=1)
            best_loss, best_epoch, best_weights = float("inf"), 0, None
            for epoch in range(1, epochs + 1):
                network.train()
                for batch in torch.randperm(len(x), generator=order).split(self.batch_size):
                    loss = network.head.loss(network(x[batch]), y[batch])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                if validation is None:
                    best_epoch = epoch
                    continue
                network.eval()
                with torch.no_grad():
                    loss = network.head.loss(network(validation_x), validation_y).item()
                if loss < best_loss:
                    best_loss, best_epoch = loss, epoch
                    best_weights = copy.deepcopy(network.state_dict())
                elif epoch - best_epoch >= self.patience:
                    break
        if best_weights is not None:
            network.load_state_dict(best_weights)
        self.mean_, self.scale_ = mean, scale
        self.network_ = network.eval()
        self.epochs_, self.best_epoch_ = epoch, best_epoch
        return self

    def _check_hyperparameters(self) -> None:
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"expected a rate in [0, 1), got {self.dropout!r}", option="dropout")
        for option in ("learning_rate", "batch_size", "max_epochs", "patience", "fixed_epochs"):
            if not getattr(self, option) > 0:
                raise ConfigError(
                    f"expected a positive number, got {getattr(self, option)!r}", option=option
                )
        if not self.weight_decay >= 0:
            raise ConfigError(
                f"expected a number >= 0, got {self.weight_decay!r}", option="weight_decay"
            )

    def _network(self, in_dim: int) -> MLPNetwork:
        return MLPNetwork(
            in_dim=in_dim,
            hidden_dims=list(self.hidden_dims),
            dropout=self.dropout,
            task=self.task,
            num_classes=self.num_classes,
        )

    def _tensors(
        self, features: np.ndarray, target: np.ndarray, mean: np.ndarray, scale: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(((features - mean) / scale).astype(np.float32))  # (N, D)
        if is_regression(self.task):
            return x, torch.from_numpy(target.astype(np.float32))  # (N,)
        return x, torch.from_numpy(target)  # (N,) int64; the binary loss casts to float

    def outputs(self, features: np.ndarray) -> np.ndarray:
        """Binary (N,) logits, multiclass (N, K) logits, regression (N,) standardised values."""
        check_fitted(self, "network_")
        features = check_features(features, num_features=len(self.mean_))
        x = torch.from_numpy(((features - self.mean_) / self.scale_).astype(np.float32))
        with torch.no_grad():
            raw = torch.cat([self.network_(chunk) for chunk in x.split(_OUTPUT_ROWS)])
        return task_outputs(self.task, raw.double().numpy().reshape(len(x), -1))

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(meta, arrays)``: settings and epochs; mean, scale and ``network.*`` weights."""
        check_fitted(self, "network_")
        meta = state_meta(self) | {
            "in_dim": len(self.mean_),
            "epochs": self.epochs_,
            "best_epoch": self.best_epoch_,
        }
        arrays = {"mean": self.mean_, "scale": self.scale_}
        for key, tensor in self.network_.state_dict().items():
            arrays[f"network.{key}"] = np.ascontiguousarray(tensor.detach().cpu().numpy())
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Self:
        """The fitted head ``state()`` described."""
        head = check_state(cls, meta)
        network = head._network(meta["in_dim"])
        weights = {
            key.removeprefix("network."): torch.from_numpy(np.array(value))
            for key, value in arrays.items()
            if key.startswith("network.")
        }
        network.load_state_dict(weights)
        head.mean_, head.scale_ = arrays["mean"], arrays["scale"]
        head.network_ = network.eval()
        head.epochs_, head.best_epoch_ = meta["epochs"], meta["best_epoch"]
        return head

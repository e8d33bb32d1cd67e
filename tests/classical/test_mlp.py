import numpy as np
import pytest
import torch

from deepstrata.classical.mlp import MLPHead
from tests.classical.conftest import load_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_early_stopping_keeps_the_best_epochs_weights():
    split = load_split("regression")
    head = MLPHead(task="regression", patience=5).fit(*split.train, validation=split.validation)
    assert head.epochs_ == head.best_epoch_ + 5 < 200
    # The kept weights are the best epoch's: no other epoch had a lower validation loss.
    features, target = split.validation
    kept = float(((head.outputs(features) - target) ** 2).mean())
    longer = MLPHead(task="regression", fixed_epochs=head.epochs_).fit(*split.train)
    assert kept <= float(((longer.outputs(features) - target) ** 2).mean())


def test_outputs_are_the_network_in_eval_mode_on_standardised_inputs():
    split = load_split("binary")
    head = MLPHead(task="binary", hidden_dims=(8, 8), fixed_epochs=3).fit(*split.train)
    assert not head.network_.training  # dropout off: the same row, the same output
    features = split.test[0]
    x = torch.tensor((features - head.mean_) / head.scale_, dtype=torch.float32)  # (N, D)
    with torch.no_grad():
        expected = head.network_.head.linear(head.network_.body(x)).squeeze(-1)  # (N,)
    np.testing.assert_allclose(head.outputs(features), expected.double().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(head.outputs(features), head.outputs(features))


def test_the_state_holds_the_weights_by_name():
    split = load_split("multiclass")
    head = MLPHead(task="multiclass", num_classes=3, fixed_epochs=2).fit(*split.train)
    meta, arrays = head.state()
    assert arrays["network.head.linear.weight"].shape == (3, 256)
    assert arrays["network.body.layers.0.weight"].shape == (256, 13)
    assert arrays["network.body.layers.0.weight"].dtype == np.float32
    assert meta["in_dim"] == 13 and meta["hyperparameters"]["hidden_dims"] == [256]

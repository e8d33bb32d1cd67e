"""The CUDA paths of the engine: run by ``make test-all`` (or ``pytest -m gpu``) on a
machine with a CUDA device, skipped elsewhere with the reason said.

What CPU tests cannot show: tensors and modules really move to the device and
back, autocast runs in each precision (fp16 with its loss scaler), the precision
probe synchronises, a checkpoint written from the device resumes there, and a
bundle trained on the GPU predicts on the CPU.
"""

import numpy as np
import pytest
import torch

import deepstrata
from deepstrata.train.callbacks import Callback
from deepstrata.train.trainer import Trainer
from tests.train import tiny
from tests.train.tiny import regression_data

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def network(dropout=0.0):
    return tiny.network(hidden=(32,), dropout=dropout)


@pytest.mark.parametrize("precision", ["32", "bf16", "fp16"])
def test_training_on_cuda_in_each_precision_lowers_the_loss(precision):
    inputs, y = regression_data()
    net = network()
    history = Trainer(
        net,
        loss_fn=net.loss,
        batch_size=32,
        max_epochs=5,
        learning_rate=1e-2,
        precision=precision,
        device="cuda",
    ).fit(inputs, y)
    losses = [record["loss"] for record in history.epochs]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] / 2, losses
    assert next(net.parameters()).device.type == "cuda"
    assert next(net.parameters()).dtype == torch.float32  # autocast leaves weights in float32


def test_auto_precision_on_cuda_records_its_probe():
    inputs, y = regression_data()
    net = network()
    trainer = Trainer(
        net,
        loss_fn=net.loss,
        batch_size=32,
        max_epochs=1,
        learning_rate=1e-2,
        precision="auto",
        device="cuda",
    )
    trainer.fit(inputs, y)
    probe = trainer.precision_probe
    assert trainer.chosen_precision == probe["choice"] in ("32", "bf16", "fp16")
    assert len(probe["seconds_per_step"]) == 2 and "32" in probe["seconds_per_step"]
    assert all(seconds > 0 for seconds in probe["seconds_per_step"].values())


def test_a_cuda_checkpoint_resumes_on_cuda(tmp_path):
    """Not bit-identical (CUDA kernels need not be deterministic), but close: with dropout,
    only a restored CUDA generator gives the same masks after the resume."""
    inputs, y = regression_data()

    def trainer(net, epochs):
        return Trainer(
            net,
            loss_fn=net.loss,
            batch_size=32,
            max_epochs=epochs,
            learning_rate=1e-2,
            device="cuda",
            checkpoint_dir=tmp_path / "checkpoint",
        )

    reference = network(dropout=0.3)
    Trainer(
        reference,
        loss_fn=reference.loss,
        batch_size=32,
        max_epochs=4,
        learning_rate=1e-2,
        device="cuda",
    ).fit(inputs, y)

    class StopAfterTwo(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt  # killed before epoch 2 is saved: resumes from epoch 1

    interrupted = trainer(network(dropout=0.3), 4)
    interrupted.callbacks.append(StopAfterTwo())
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(inputs, y)
    resumed = network(dropout=0.3)
    history = trainer(resumed, 4).fit(inputs, y, resume=True)
    assert [record["epoch"] for record in history.epochs] == [1, 2, 3, 4]
    for a, b in zip(resumed.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_bundle_trained_on_cuda_predicts_on_the_cpu(tmp_path, churn_frame):
    model = deepstrata.fit(
        churn_frame,
        target="churned",
        device="cuda",
        precision="bf16",
        max_epochs=3,
        progress=False,
        ensemble=False,  # the network is what moves between devices
    )
    assert model.metrics["device"].startswith("cuda")
    loaded = deepstrata.load(model.save(tmp_path / "bundle"))
    assert next(loaded.members[0].network.parameters()).device.type == "cpu"
    np.testing.assert_allclose(
        loaded.predict_proba(churn_frame), model.predict_proba(churn_frame), rtol=1e-5, atol=1e-6
    )

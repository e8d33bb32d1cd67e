"""StreamedTrainer: epochs from a batch source, resumed exactly mid-epoch (the source
replays the epoch's order up to the checkpoint's batch)."""

import pytest
import torch

from deepstrata.train.callbacks import Callback
from deepstrata.train.streamed import StreamedTrainer
from tests.train.tiny import network, regression_data


class Source:
    """Rows in memory, handed out as a stream would: an order per (seed, epoch)."""

    def __init__(self, rows=96):
        self.inputs, self.target = regression_data(rows=rows)
        self.rows = rows

    def batches(self, epoch, batch_size, *, skip=0):
        order = torch.randperm(self.rows, generator=torch.Generator().manual_seed(epoch))
        for number, first in enumerate(range(0, self.rows, batch_size)):
            if number >= skip:
                index = order[first : first + batch_size]
                yield {"number": self.inputs["number"][index]}, self.target[index]


class Interrupt(Callback):
    def on_batch_end(self, trainer, epoch, step, loss):
        if (epoch, step) == (2, 3):
            raise KeyboardInterrupt


def fit(directory, callbacks=(), resume=False):
    source = Source()
    net = network(hidden=(8,))
    trainer = StreamedTrainer(
        net,
        loss_fn=net.loss,
        learning_rate=3e-3,
        batch_size=16,
        max_epochs=3,
        seed=2,
        checkpoint_dir=directory,
        checkpoint_interval=0.0,  # a checkpoint after every step
        callbacks=callbacks,
    )
    sample = ({"number": source.inputs["number"][:48]}, source.target[:48])
    validation = regression_data(rows=20, seed=1)
    history = trainer.fit_stream(source, sample, validation, resume=resume)
    return net, history


def test_a_streamed_fit_learns_and_resumes_exactly_mid_epoch(tmp_path):
    whole, history = fit(tmp_path / "whole")
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    assert len(history.epochs) == 3
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "cut", [Interrupt()])
    resumed, again = fit(tmp_path / "cut", resume=True)
    for name, value in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    assert [e["loss"] for e in again.epochs] == [e["loss"] for e in history.epochs]

"""Data-parallel training: the sharding and all-reduce logic of train/distributed.py.

The default-suite tests fork two ranks of a gloo group on loopback (no torchrun: a
fork is far cheaper than starting Python twice) and train the tiny regression net;
the torchrun tests (marker ``distributed``) live in tests/cli/test_fit_distributed.py.
"""

import json
import multiprocessing
import os
import socket

import pytest
import torch
import torch.distributed as torch_dist

from deepstrata.errors import DistributedError
from deepstrata.train import distributed as dist
from deepstrata.train.trainer import Trainer
from tests.train.tiny import network, regression_data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train(directory, stop_after=None):
    """The same run on any number of ranks: seed, global batch 32 over 100 rows (the last
    batch of 4 splits unevenly), validation, a fixed rate; returns the final weights."""
    inputs, target = regression_data(rows=100)
    val_inputs, val_target = regression_data(rows=30, seed=1)
    net = network(hidden=(8,))
    trainer = Trainer(
        net,
        loss_fn=net.loss,
        learning_rate=3e-3,
        batch_size=32,
        max_epochs=3,
        seed=5,
        gradient_accumulation=2,
        checkpoint_dir=directory,
    )
    history = trainer.fit(inputs, target, validation=(val_inputs, val_target))
    return {k: v.clone() for k, v in net.state_dict().items()}, history


def _rank(rank, world, port, directory, out):
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        weights, history = _train(directory)
        torch.save(weights, os.path.join(out, f"rank{rank}.pt"))
        with open(os.path.join(out, f"history{rank}.json"), "w") as handle:
            json.dump(history.to_dict(), handle)
    finally:
        torch_dist.destroy_process_group()


def test_two_ranks_end_where_one_process_ends(tmp_path):
    """2 gloo ranks (forked) vs 1 process: same seed, global batch, steps -> the same
    weights within float tolerance, the same history; only rank 0 wrote a checkpoint."""
    torch.set_num_threads(1)
    single, single_history = _train(tmp_path / "one")
    port, context = free_port(), multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_rank, args=(r, 2, port, str(tmp_path / "two"), str(tmp_path)))
        for r in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    for rank in range(2):
        weights = torch.load(tmp_path / f"rank{rank}.pt")
        for name, value in single.items():
            torch.testing.assert_close(weights[name], value, rtol=1e-5, atol=1e-6)
        history = json.loads((tmp_path / f"history{rank}.json").read_text())["epochs"]
        for mine, theirs in zip(history, single_history.to_dict()["epochs"], strict=True):
            assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
            assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)
    assert (tmp_path / "two" / "checkpoint.json").is_file()
    assert len(list((tmp_path / "two").glob("checkpoint-*.safetensors"))) == 1


def test_one_process_is_left_alone():
    """Without a group every helper is the identity: the single-process loop is unchanged."""
    index = torch.arange(10)
    assert dist.shard(index)[0] is index and dist.shard(index)[1] == 1.0
    assert dist.loss_sum(0.5, 4, 1.0) == (2.0, 4)
    assert dist.from_main(lambda: 7) == 7
    assert dist.world_size() == 1 and dist.is_main()
    net = torch.nn.Linear(2, 1)
    assert dist.wrap(net, torch.device("cpu")) is net


def test_nccl_without_cuda_is_a_named_error(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv(dist.BACKEND_ENV, "nccl")
    with pytest.raises(DistributedError, match="NCCL backend needs CUDA"):
        dist.backend_for(torch.device("cpu"))


def test_unreachable_rendezvous_names_the_endpoint_within_the_timeout(monkeypatch):
    """Rank 1 of 2 whose store never answers: an error naming the address, not a hang."""
    port = free_port()  # nothing listens there
    for name, value in {
        "WORLD_SIZE": "2",
        "RANK": "1",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        dist.TIMEOUT_ENV: "1",
    }.items():
        monkeypatch.setenv(name, value)
    with (
        pytest.raises(DistributedError, match=f"127.0.0.1:{port} within 1s"),
        dist.process_group("cpu"),
    ):
        pass

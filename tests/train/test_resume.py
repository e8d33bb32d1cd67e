"""Exact resume: a run killed with SIGKILL mid-epoch, resumed from its checkpoint,
ends bit-identical to a run that was never interrupted (weights, optimizer, schedule).

The killed run is a real separate process; the kill comes from a callback at a
chosen (epoch, step), so the test does not depend on timing.
"""

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from deepstrata.errors import CheckpointError
from deepstrata.train import checkpoint as ckpt

# One script builds the same data, network and trainer for every run. Everything
# that draws random numbers is switched on: dropout, mixup, shuffling, the range
# test (learning_rate="auto") and the one-cycle schedule.
SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch
    from deepstrata.encoders.dense import DenseEncoder
    from deepstrata.model.network import Network
    from deepstrata.train.callbacks import Callback
    from deepstrata.train.trainer import Trainer

    torch.set_num_threads(1)
    directory, kill_at, interval, resume = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "resume"

    class Kill(Callback):
        def on_batch_end(self, trainer, epoch, step, loss):
            if [epoch, step] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=gen)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).long()
    torch.manual_seed(0)
    net = Network(encoders={"number": DenseEncoder(width=6)}, hidden_dims=[32, 16], dropout=[0.2, 0.1],
                  task="binary")
    trainer = Trainer(net, loss_fn=net.loss, learning_rate="auto", schedule="onecycle", batch_size=32,
                      max_epochs=6, patience=100, mixup=0.4, gradient_clip=1.0, seed=3,
                      checkpoint_dir=directory, checkpoint_interval=interval, callbacks=[Kill()])
    val = (x[:40] * 0.9,), y[:40]
    trainer.fit({"number": x}, y, validation=({"number": x[:40] * 0.9}, y[:40]), resume=resume)
    from safetensors.torch import save_file
    from deepstrata.train.checkpoint import optimizer_state_to_flat
    tensors, meta = optimizer_state_to_flat(trainer.optimizer.state_dict())
    tensors.update({"model." + k: v for k, v in net.state_dict().items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(directory, "final.safetensors"))
    with open(os.path.join(directory, "final.json"), "w") as f:
        json.dump({"optimizer": meta, "schedule": trainer.schedule.state_dict(),
                   "history": trainer.history.to_dict()["epochs"]}, f)
    """
)


def run(tmp_path: Path, directory: Path, kill_at=(0, 0), interval=1e9, resume=False):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    return subprocess.run(
        [
            sys.executable,
            str(script),
            str(directory),
            json.dumps(list(kill_at)),
            str(interval),
            "resume" if resume else "fresh",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def final_state(directory: Path):
    from safetensors.torch import load_file

    tensors = load_file(str(directory / "final.safetensors"))
    meta = json.loads((directory / "final.json").read_text())
    for record in meta["history"]:
        record.pop("seconds")
    return tensors, meta


def assert_identical(a: Path, b: Path) -> None:
    tensors_a, meta_a = final_state(a)
    tensors_b, meta_b = final_state(b)
    assert tensors_a.keys() == tensors_b.keys()
    for name in tensors_a:
        assert torch.equal(tensors_a[name], tensors_b[name]), name
    assert meta_a == meta_b


@pytest.mark.parametrize(
    "interval, what",
    [(1e9, "epoch-end checkpoints: epoch 3 is replayed"), (0.0, "a checkpoint after every step")],
)
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, interval, what):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    done = run(tmp_path, reference, interval=interval)
    assert done.returncode == 0, done.stderr

    killed = run(tmp_path, interrupted, kill_at=(3, 2), interval=interval)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (interrupted / "final.safetensors").exists()
    _, state = ckpt.load_checkpoint(interrupted)
    # (epoch, next batch): the kill comes in step 2's callback, before its checkpoint.
    expected_position = [3, 0] if interval > 1 else [3, 1]
    assert [state["epoch"], state["batch"]] == expected_position, what

    resumed = run(tmp_path, interrupted, resume=True, interval=interval)
    assert resumed.returncode == 0, resumed.stderr
    assert_identical(reference, interrupted)


def test_resume_refuses_a_torn_checkpoint(tmp_path):
    directory = tmp_path / "run"
    killed = run(tmp_path, directory, kill_at=(2, 1))
    assert killed.returncode == -signal.SIGKILL
    meta = json.loads((directory / ckpt.CHECKPOINT_FILE).read_text())
    tensors_file = directory / meta["tensors"]
    content = tensors_file.read_bytes()
    tensors_file.write_bytes(content[: len(content) // 2])  # cut off while being written
    resumed = run(tmp_path, directory, resume=True)
    assert resumed.returncode != 0
    assert "CheckpointError" in resumed.stderr and meta["tensors"] in resumed.stderr
    with pytest.raises(CheckpointError):
        ckpt.load_checkpoint(directory)

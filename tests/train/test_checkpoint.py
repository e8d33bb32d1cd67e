"""Checkpoints: exact round trips, torn and changed files refused, a killed save harmless."""

from __future__ import annotations

import inspect
import io
import json
import os
import re
import tokenize

import pytest
import torch
from safetensors import SafetensorError

from deepstrata.errors import CheckpointError
from deepstrata.train import checkpoint
from deepstrata.train.checkpoint import (
    CHECKPOINT_FILE,
    generator_states,
    has_checkpoint,
    load_checkpoint,
    optimizer_state_from_flat,
    optimizer_state_to_flat,
    restore_generators,
    restore_rng_state,
    rng_state_to_tensors,
    save_checkpoint,
)

STATE = {"epoch": 3, "history": [{"loss": 0.5, "metric": None}], "best": {"value": 1e-3}}


def _tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=generator)
    return {
        "weight": base,
        "transposed": base.t(),  # non-contiguous view of the same storage
        "row": base[1],  # contiguous view at an offset
        "counts": torch.arange(5, dtype=torch.int64),
        "mask": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "half": torch.randn(3, generator=generator).to(torch.bfloat16),
        "step": torch.tensor(7.0),  # 0-dim, as an optimizer's step
        "empty": torch.zeros(0),
    }


def _tensors_file(directory):
    (path,) = directory.glob("checkpoint-*.safetensors")
    return path


def test_round_trip_keeps_tensors_and_state(tmp_path):
    tensors = _tensors()
    assert not has_checkpoint(tmp_path / "run")
    path = save_checkpoint(tmp_path / "run", tensors=tensors, state=STATE)
    assert path == tmp_path / "run" / CHECKPOINT_FILE and has_checkpoint(tmp_path / "run")
    loaded, state = load_checkpoint(tmp_path / "run")
    assert state == STATE
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and loaded[name].is_contiguous()
        assert torch.equal(loaded[name], tensor), name
    # saving must not have changed the caller's tensors
    assert not tensors["transposed"].is_contiguous()
    assert tensors["transposed"].data_ptr() == tensors["weight"].data_ptr()


def test_save_twice_keeps_only_the_second(tmp_path):
    save_checkpoint(tmp_path, tensors={"a": torch.zeros(3)}, state={"epoch": 1})
    save_checkpoint(tmp_path, tensors={"a": torch.ones(3)}, state={"epoch": 2})
    assert {p.name for p in tmp_path.iterdir()} == {
        CHECKPOINT_FILE,
        "checkpoint-00000002.safetensors",
    }
    tensors, state = load_checkpoint(tmp_path)
    assert state == {"epoch": 2} and torch.equal(tensors["a"], torch.ones(3))


def test_truncated_tensors_file_is_refused(tmp_path):
    save_checkpoint(tmp_path, tensors=_tensors(), state=STATE)
    path = _tensors_file(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut off while being written") as caught:
        load_checkpoint(tmp_path)
    assert path.name in str(caught.value) and caught.value.path == str(path)


def test_flipped_byte_is_refused(tmp_path):
    save_checkpoint(tmp_path, tensors=_tensors(), state=STATE)
    path = _tensors_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256") as caught:
        load_checkpoint(tmp_path)
    assert path.name in str(caught.value)


def test_unparseable_tensors_file_is_refused(tmp_path):
    save_checkpoint(tmp_path, tensors=_tensors(), state=STATE)
    path = _tensors_file(tmp_path)
    path.write_bytes(b"\xff" * 64)  # garbage, with the record's size and hash updated to match
    record = json.loads((tmp_path / CHECKPOINT_FILE).read_text())
    record.update(size=64, sha256=checkpoint.sha256_of(path))
    (tmp_path / CHECKPOINT_FILE).write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="not a valid safetensors") as caught:
        load_checkpoint(tmp_path)
    assert path.name in str(caught.value)


def test_missing_tensors_file_is_refused(tmp_path):
    save_checkpoint(tmp_path, tensors=_tensors(), state=STATE)
    path = _tensors_file(tmp_path)
    path.unlink()
    with pytest.raises(CheckpointError, match="missing") as caught:
        load_checkpoint(tmp_path)
    assert path.name in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        '{"format": 1}',
        '{"format": 2, "tensors": "checkpoint-1.safetensors", "sha256": "", "size": 0, "state": {}}',
        '{"format": 1, "tensors": "../x.safetensors", "sha256": "", "size": 0, "state": {}}',
    ],
)
def test_bad_record_is_refused(tmp_path, text):
    save_checkpoint(tmp_path, tensors=_tensors(), state=STATE)
    (tmp_path / CHECKPOINT_FILE).write_text(text)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(tmp_path)
    assert CHECKPOINT_FILE in str(caught.value)


@pytest.mark.parametrize("exists", [True, False])
def test_no_checkpoint_is_refused(tmp_path, exists):
    directory = tmp_path / "run"
    if exists:
        directory.mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint") as caught:
        load_checkpoint(directory)
    assert str(directory) in str(caught.value)


def test_save_killed_before_commit_leaves_the_old_checkpoint(tmp_path):
    old = _tensors()
    save_checkpoint(tmp_path, tensors=old, state=STATE)
    committed = _tensors_file(tmp_path)
    # What a kill between step 1 and step 2 leaves: a complete new tensors file that
    # checkpoint.json does not name, a half-written one, and a half-written record.
    (tmp_path / "checkpoint-00000002.safetensors").write_bytes(committed.read_bytes())
    (tmp_path / ".checkpoint-0123abcd.tmp").write_bytes(b"half a tensors file")
    (tmp_path / ".checkpoint-4567ef01.tmp").write_text('{"format": 1, "tens')
    tensors, state = load_checkpoint(tmp_path)
    assert state == STATE and all(torch.equal(tensors[k], v) for k, v in old.items())

    save_checkpoint(tmp_path, tensors={"a": torch.ones(2)}, state={"epoch": 9})
    assert {p.name for p in tmp_path.iterdir()} == {
        CHECKPOINT_FILE,
        "checkpoint-00000003.safetensors",
    }
    assert load_checkpoint(tmp_path)[1] == {"epoch": 9}


def test_failed_save_leaves_the_old_checkpoint(tmp_path):
    save_checkpoint(tmp_path, tensors={"a": torch.zeros(2)}, state={"epoch": 1})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, tensors={"a": torch.ones(2)}, state={"bad": object()})
    assert len(list(tmp_path.iterdir())) == 2
    assert load_checkpoint(tmp_path)[1] == {"epoch": 1}


@pytest.mark.parametrize(
    "failing_call", ["replace-1", "replace-2", "fsync-1", "fsync-2", "fsync-3"]
)
def test_disk_error_at_each_step_leaves_the_old_checkpoint(tmp_path, monkeypatch, failing_call):
    save_checkpoint(tmp_path, tensors={"a": torch.zeros(2)}, state={"epoch": 1})
    before = {p.name for p in tmp_path.iterdir()}
    name, number = failing_call.split("-")
    real, calls = getattr(os, name), []

    def failing(*args):
        calls.append(args)
        if len(calls) == int(number):
            raise OSError(28, "No space left on device")
        return real(*args)

    monkeypatch.setattr(os, name, failing)
    with pytest.raises(CheckpointError, match="No space left") as caught:
        save_checkpoint(tmp_path, tensors={"a": torch.ones(2)}, state={"epoch": 2})
    monkeypatch.undo()
    assert str(tmp_path) in str(caught.value)
    assert {p.name for p in tmp_path.iterdir()} == before  # no strays either
    tensors, state = load_checkpoint(tmp_path)
    assert state == {"epoch": 1} and torch.equal(tensors["a"], torch.zeros(2))


def test_a_full_disk_in_safetensors_is_a_checkpoint_error_saying_the_space(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, tensors={"a": torch.zeros(2)}, state={"epoch": 1})
    before = {p.name for p in tmp_path.iterdir()}

    def full(tensors, filename, metadata=None):  # safetensors' own words for a full disk
        with open(filename, "wb") as handle:
            handle.write(b"partly")
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(CheckpointError, match="No space left on device") as caught:
        save_checkpoint(tmp_path, tensors={"a": torch.ones(1000)}, state={"epoch": 2})
    assert str(tmp_path) in str(caught.value)
    assert re.search(r"it needs about 4\.0 kB, [\d.]+ (bytes|[kMG]B) free there", str(caught.value))
    monkeypatch.undo()
    assert {p.name for p in tmp_path.iterdir()} == before
    assert load_checkpoint(tmp_path)[1] == {"epoch": 1}


def test_disk_error_after_the_commit_keeps_the_new_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, tensors={"a": torch.zeros(2)}, state={"epoch": 1})
    real, calls = os.fsync, []

    def failing(descriptor):
        calls.append(descriptor)
        if len(calls) == 4:  # the directory, after checkpoint.json was renamed into place
            raise OSError(5, "Input/output error")
        return real(descriptor)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(CheckpointError, match="Input/output error"):
        save_checkpoint(tmp_path, tensors={"a": torch.ones(2)}, state={"epoch": 2})
    monkeypatch.undo()
    tensors, state = load_checkpoint(tmp_path)  # committed, so not deleted by the cleanup
    assert state == {"epoch": 2} and torch.equal(tensors["a"], torch.ones(2))


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


def _train(model, optimizer, steps: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        inputs, targets = (
            torch.randn(16, 4, generator=generator),
            torch.randn(16, 1, generator=generator),
        )
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()


def _adamw(model):
    return torch.optim.AdamW(
        [
            {"params": model[0].parameters(), "lr": 1e-2},
            {"params": model[2].parameters(), "lr": 3e-3, "betas": (0.8, 0.95)},
        ],
        weight_decay=0.1,
    )


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)


@pytest.mark.parametrize("make_optimizer", [_adamw, _sgd])
def test_optimizer_round_trip_is_bit_identical(tmp_path, make_optimizer):
    model = _model(0)
    optimizer = make_optimizer(model)
    _train(model, optimizer, steps=3, seed=1)

    tensors, meta = optimizer_state_to_flat(optimizer.state_dict())
    assert all(name.startswith("optimizer.state.") for name in tensors)
    save_checkpoint(tmp_path, tensors={**tensors, **model.state_dict()}, state={"opt": meta})
    loaded, state = load_checkpoint(tmp_path)
    restored_model = _model(99)  # different weights, to be overwritten
    restored_model.load_state_dict({k: v for k, v in loaded.items() if "optimizer" not in k})
    restored = make_optimizer(restored_model)
    restored.load_state_dict(
        optimizer_state_from_flat(loaded, json.loads(json.dumps(state["opt"])))
    )

    original = optimizer.state_dict()
    again = restored.state_dict()
    assert again["param_groups"] == original["param_groups"]  # betas still tuples
    for key, values in original["state"].items():
        for name, value in values.items():
            assert torch.equal(again["state"][key][name], value), (key, name)

    _train(model, optimizer, steps=3, seed=2)
    _train(restored_model, restored, steps=3, seed=2)
    for (name, expected), actual in zip(model.named_parameters(), restored_model.parameters()):
        assert torch.equal(actual, expected), name


def test_flat_keeps_tuples_int_keys_and_none():
    state = {"state": {3: {"step": torch.tensor(2.0), "note": "x"}}, "groups": [(0.9, None)]}
    tensors, meta = optimizer_state_to_flat(state, prefix="sched.")
    assert list(tensors) == ["sched.state.3.step"]
    back = optimizer_state_from_flat(tensors, json.loads(json.dumps(meta)), prefix="sched.")
    assert back["groups"] == [(0.9, None)] and list(back["state"]) == [3]
    assert back["state"][3]["note"] == "x" and torch.equal(
        back["state"][3]["step"], torch.tensor(2.0)
    )
    with pytest.raises(CheckpointError, match=r"sched\.state\.3\.step"):
        optimizer_state_from_flat({}, meta, prefix="sched.")


def test_generator_and_global_rng_round_trip(tmp_path):
    generators = {"data_order": torch.Generator().manual_seed(5)}
    torch.randperm(10, generator=generators["data_order"])
    torch.manual_seed(11)
    torch.rand(3)
    saved = {**generator_states(generators), **rng_state_to_tensors()}
    save_checkpoint(tmp_path, tensors=saved, state={})
    expected_order = torch.randperm(10, generator=generators["data_order"])
    expected_global = torch.rand(3)

    fresh = {"data_order": torch.Generator().manual_seed(0)}
    torch.manual_seed(0)
    loaded, _ = load_checkpoint(tmp_path)
    restore_generators(fresh, loaded)
    restore_rng_state(loaded)
    assert torch.equal(torch.randperm(10, generator=fresh["data_order"]), expected_order)
    assert torch.equal(torch.rand(3), expected_global)


def test_module_uses_no_pickle():
    # The code, not the docstring, which states the rule and so names it.
    tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(checkpoint)).readline)
    code = "".join(t.string for t in tokens if t.type in (tokenize.NAME, tokenize.OP))
    for word in ("pickle", "joblib", "dill", "torch.load", "torch.save"):
        assert word not in code
    assert "safetensors" in code and "json" in code  # the tokens are really there

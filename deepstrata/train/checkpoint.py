"""Training checkpoints: tensors in safetensors, everything else in JSON, replaced atomically.

A checkpoint directory holds ``checkpoint.json`` and the one ``checkpoint-<n>.safetensors``
it names, with that file's size and sha256. ``save_checkpoint`` writes in this order:

1. the tensors go to a temporary file in the same directory, which is fsync'ed and then
   renamed to a new name, never the one ``checkpoint.json`` points at; the directory is
   fsync'ed so that the new name is on disk;
2. ``checkpoint.json`` goes to a temporary file, is fsync'ed, and is renamed over the old
   one. This rename is the commit point: ``os.replace`` is atomic, so a reader sees the
   old json (naming the old, untouched tensors file) or the new one (naming a tensors
   file that is complete on disk), never a mix;
3. the directory is fsync'ed, so the commit survives a power cut; only then are older
   tensors files and temporary files left by a killed save deleted.

A kill at any moment therefore leaves the old checkpoint or the new one, whole. The size
and hash catch what the protocol cannot: a file changed or cut off by something else.
One writer per directory.

No pickle: loading a pickle runs code, and a checkpoint is a file a user may be handed.
Tensors go to safetensors, the rest (numbers, strings, lists, dicts) to JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from deepstrata.bundle.manifest import sha256_of
from deepstrata.bundle.write import write_failure
from deepstrata.errors import CheckpointError
from deepstrata.train.history import History

CHECKPOINT_FILE = "checkpoint.json"
FORMAT_VERSION = 1
_TENSORS_NAME = re.compile(r"checkpoint-(\d+)\.safetensors")
_TEMP_PREFIX, _TEMP_SUFFIX = ".checkpoint-", ".tmp"
_CUT_OFF = "cut off while being written or changed since"


def save_checkpoint(
    directory: str | Path, *, tensors: dict[str, torch.Tensor], state: dict
) -> Path:
    """Atomically replace the checkpoint in ``directory`` (created if missing).

    ``tensors`` may be on any device, views, non-contiguous or share storage; they are
    written contiguous, from CPU. ``state`` must be JSON-serialisable. Returns the path
    of ``checkpoint.json``.

    >>> import tempfile
    >>> directory = tempfile.mkdtemp()
    >>> save_checkpoint(directory, tensors={"w": torch.ones(2)}, state={"epoch": 3}).name
    'checkpoint.json'
    >>> load_checkpoint(directory)[1]["epoch"]
    3
    """
    directory = Path(directory)
    json.dumps(state)  # a state JSON cannot hold fails here, before anything is written
    tensors = _standalone(tensors)
    names = [path.name for path in directory.iterdir()] if directory.is_dir() else []
    number = 1 + max((int(m[1]) for m in map(_TENSORS_NAME.fullmatch, names) if m), default=0)
    tensors_path = directory / f"checkpoint-{number:08d}.safetensors"
    tensors_temp, record_temp = (
        directory / f"{_TEMP_PREFIX}{uuid.uuid4().hex}{_TEMP_SUFFIX}" for _ in range(2)
    )
    committed = False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        save_file(tensors, tensors_temp, metadata={"format": "pt"})
        with open(tensors_temp, "rb") as handle:
            os.fsync(handle.fileno())
        record = {
            "format": FORMAT_VERSION,
            "tensors": tensors_path.name,
            "sha256": sha256_of(tensors_temp),
            "size": tensors_temp.stat().st_size,
            "state": state,
        }
        os.replace(tensors_temp, tensors_path)
        _fsync_directory(directory)
        with open(record_temp, "x", encoding="utf-8") as handle:
            handle.write(json.dumps(record, indent=1) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(record_temp, directory / CHECKPOINT_FILE)  # the commit point
        committed = True
        _fsync_directory(directory)
    except BaseException as error:
        for path in [tensors_temp, record_temp] + ([] if committed else [tensors_path]):
            with suppress(OSError):
                path.unlink(missing_ok=True)
        # A full disk, a permission: the user's to fix. safetensors reports its own I/O
        # errors (a full disk among them) as SafetensorError, not OSError.
        if isinstance(error, OSError | SafetensorError):
            needed = sum(tensor.nbytes for tensor in tensors.values())
            message = write_failure(error, place=directory, needed=needed, what="the checkpoint")
            raise CheckpointError(message, path=str(directory)) from error
        raise
    for path in directory.iterdir():
        stray = path.name.startswith(_TEMP_PREFIX) and path.name.endswith(_TEMP_SUFFIX)
        if stray or (_TENSORS_NAME.fullmatch(path.name) and path != tensors_path):
            with suppress(OSError):  # the new checkpoint is committed; a leftover is harmless
                path.unlink()
    return directory / CHECKPOINT_FILE


def load_checkpoint(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(tensors, state)`` from the checkpoint in ``directory``, on CPU.

    The tensors file's size and sha256 are checked before it is parsed. Raises
    :class:`CheckpointError` naming the file when anything is missing, cut off or changed.
    """
    record_path = Path(directory) / CHECKPOINT_FILE
    if not record_path.is_file():
        raise CheckpointError(
            f"no checkpoint here ({CHECKPOINT_FILE} is missing)", path=str(directory)
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"unreadable: {error}", path=str(record_path)) from error
    expected = {"format": int, "tensors": str, "sha256": str, "size": int, "state": dict}
    fields = record if isinstance(record, dict) else {}
    wrong = [key for key, kind in expected.items() if not isinstance(fields.get(key), kind)]
    if not wrong and record["format"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {record['format']} is not supported (this deepstrata reads "
            f"format {FORMAT_VERSION})",
            path=str(record_path),
        )
    if wrong or not _TENSORS_NAME.fullmatch(record["tensors"]):
        raise CheckpointError(
            f"not a checkpoint record: expected a JSON object with {sorted(expected)} naming a "
            f"checkpoint-<n>.safetensors file; wrong or missing: {wrong or ['tensors']}",
            path=str(record_path),
        )
    tensors_path = record_path.parent / record["tensors"]
    if not tensors_path.is_file():
        raise CheckpointError(
            f"the tensors file named in {CHECKPOINT_FILE} is missing", path=str(tensors_path)
        )
    size = tensors_path.stat().st_size
    if size != record["size"]:
        raise CheckpointError(
            f"is {size} bytes, {CHECKPOINT_FILE} says {record['size']}: {_CUT_OFF}",
            path=str(tensors_path),
        )
    data = tensors_path.read_bytes()  # hash the very bytes that are parsed
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise CheckpointError(
            f"sha256 does not match {CHECKPOINT_FILE}: {_CUT_OFF}", path=str(tensors_path)
        )
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"not a valid safetensors file: {error}", path=str(tensors_path)
        ) from error
    return tensors, record["state"]


def has_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds a committed checkpoint (not verified; load does that)."""
    return (Path(directory) / CHECKPOINT_FILE).is_file()


def optimizer_state_to_flat(
    state_dict: dict, prefix: str = "optimizer."
) -> tuple[dict[str, torch.Tensor], dict]:
    """Split a nested state_dict (an optimizer's, a scheduler's) into tensors and JSON meta.

    Tensors are named by their path (``optimizer.state.3.exp_avg``); in the meta they are
    ``{"__tensor__": path}``, tuples ``{"__tuple__": [...]}`` and dicts with non-string keys
    (parameter ids) ``{"__items__": [[key, value], ...]}``, so the round trip is exact.
    """
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[prefix + path] = value
            return {"__tensor__": path}
        join = f"{path}." if path else ""
        if isinstance(value, tuple):
            return {"__tuple__": [encode(item, f"{join}{i}") for i, item in enumerate(value)]}
        if isinstance(value, list):
            return [encode(item, f"{join}{i}") for i, item in enumerate(value)]
        if isinstance(value, dict) and all(isinstance(key, str) for key in value):
            if any(key.startswith("__") and key.endswith("__") for key in value):
                raise ValueError(f"key {sorted(value)!r} at {path!r} clashes with the markers")
            return {key: encode(item, f"{join}{key}") for key, item in value.items()}
        if isinstance(value, dict):
            return {"__items__": [[k, encode(v, f"{join}{k}")] for k, v in value.items()]}
        return value

    return tensors, encode(state_dict, "")


def optimizer_state_from_flat(
    tensors: dict[str, torch.Tensor], meta: dict, prefix: str = "optimizer."
) -> dict:
    """Inverse of :func:`optimizer_state_to_flat`; feed the result to ``load_state_dict``."""

    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "__tensor__" in value:
            name = prefix + value["__tensor__"]
            if name not in tensors:
                raise CheckpointError(
                    f"tensor {name!r} named in the state is not in the checkpoint"
                )
            return tensors[name]
        if "__tuple__" in value:
            return tuple(decode(item) for item in value["__tuple__"])
        if "__items__" in value:
            return {key: decode(item) for key, item in value["__items__"]}
        return {key: decode(item) for key, item in value.items()}

    return decode(meta)


def rng_state_to_tensors(prefix: str = "rng.") -> dict[str, torch.Tensor]:
    """The global torch CPU generator's state and, when CUDA is available, each device's."""
    states = {f"{prefix}cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"{prefix}cuda.{index}"] = state
    return states


def restore_rng_state(tensors: dict[str, torch.Tensor], prefix: str = "rng.") -> None:
    """Inverse of :func:`rng_state_to_tensors`; CUDA devices absent now are skipped."""
    torch.set_rng_state(tensors[f"{prefix}cpu"])
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            if f"{prefix}cuda.{index}" in tensors:
                torch.cuda.set_rng_state(tensors[f"{prefix}cuda.{index}"], index)


def generator_states(
    generators: dict[str, torch.Generator], prefix: str = "generator."
) -> dict[str, torch.Tensor]:
    """The states of named private generators (data order, say), as uint8 tensors."""
    return {prefix + name: generator.get_state() for name, generator in generators.items()}


def restore_generators(
    generators: dict[str, torch.Generator],
    tensors: dict[str, torch.Tensor],
    prefix: str = "generator.",
) -> None:
    """Set each named generator back to the state :func:`generator_states` saved."""
    for name, generator in generators.items():
        if prefix + name not in tensors:
            raise CheckpointError(f"no state for generator {name!r} in the checkpoint")
        generator.set_state(tensors[prefix + name])


def _standalone(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, each owning its whole storage: safetensors refuses shared memory.
    Copies only what needs it, so a large model is not held twice."""
    result, seen = {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu()
        storage = tensor.untyped_storage()
        owns = (
            tensor.is_contiguous()
            and tensor.storage_offset() == 0
            and storage.nbytes() == tensor.nbytes
            and storage.data_ptr() not in seen
        )
        if not owns:
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        seen.add(tensor.untyped_storage().data_ptr())
        result[name] = tensor
    return result


def _fsync_directory(directory: Path) -> None:
    """Make renames in ``directory`` durable; POSIX only (Windows cannot open a directory)."""
    if os.name == "posix":
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix``, without it."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def restore(saved: tuple[dict, dict], *, network, optimizer, schedule, scaler, loop) -> None:
    """Put a trainer back exactly where the checkpoint ``saved`` (from
    :func:`load_checkpoint`) was taken: the weights, the optimizer, schedule and loss
    scaler, every random generator, and the loop's state (``loop``: the trainer's
    :class:`~deepstrata.train.trainer.Loop`, its position, best weights, counters and
    history)."""
    tensors, state = saved
    network.load_state_dict(prefixed(tensors, "model."))
    optimizer.load_state_dict(
        optimizer_state_from_flat(tensors, state["optimizer"], prefix="optimizer.")
    )
    schedule.load_state_dict(state["schedule"])
    if state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    restore_generators({"order": loop.order, "mix": loop.mix}, tensors, prefix="generator.")
    restore_rng_state(tensors, "rng.")
    loop.mix_rng.bit_generator.state = state["mix_rng"]
    loop.best_state = prefixed(tensors, "best.") or None
    loop.history = History.from_dict(state["history"])
    loop.since_best, loop.seconds = state["since_best"], state["seconds"]
    loop.epoch, loop.batch = state["epoch"], state["batch"]
    loop.loss_sum, loop.seen = float(state["loss_sum"]), state["seen"]


def load_matching(directory: Path, settings: dict) -> tuple[dict, dict]:
    """The checkpoint in ``directory``, which must have been made with ``settings`` (what an
    exact resume needs to agree on): a CheckpointError listing every difference otherwise."""
    tensors, state = load_checkpoint(directory)
    different = {
        key: (state["settings"].get(key), value)
        for key, value in settings.items()
        if state["settings"].get(key) != value
    }
    if different:
        listed = ", ".join(f"{k}: {old!r} then, {new!r} now" for k, (old, new) in different.items())
        raise CheckpointError(
            f"the checkpoint was made with other settings ({listed}); an exact resume "
            "needs the same data and options",
            path=str(directory),
        )
    return tensors, state


def save_trainer(trainer, position: tuple[int, int], order_state: torch.Tensor) -> None:
    """Checkpoint a :class:`~deepstrata.train.trainer.Trainer` "about to run batch
    ``position[1]`` of epoch ``position[0]``": everything an exact resume needs."""
    loop = trainer.loop
    optimizer_tensors, optimizer_meta = optimizer_state_to_flat(
        trainer.optimizer.state_dict(), prefix="optimizer."
    )
    tensors = {
        **{f"model.{k}": v for k, v in trainer.network.state_dict().items()},
        **{f"best.{k}": v for k, v in (loop.best_state or {}).items()},
        **optimizer_tensors,
        **generator_states({"mix": loop.mix}, prefix="generator."),
        "generator.order": order_state,
        **rng_state_to_tensors("rng."),  # CPU and every CUDA device: dropout masks
    }
    state = {
        "settings": trainer._settings_now,
        "learning_rate": trainer.chosen_learning_rate,
        "precision": trainer.chosen_precision,
        # What chose them: a resumed run's bundle shows the same sweep and probe.
        "range_test": trainer.range_test.to_dict() if trainer.range_test is not None else None,
        "precision_probe": trainer.precision_probe,
        "epoch": position[0],
        "batch": position[1],
        "optimizer": optimizer_meta,
        "schedule": trainer.schedule.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler.is_enabled() else {},
        "mix_rng": loop.mix_rng.bit_generator.state,
        "history": loop.history.to_dict(),
        "since_best": loop.since_best,
        "loss_sum": loop.loss_sum,
        "seen": loop.seen,
        "seconds": time.perf_counter() - trainer._start,
    }
    save_checkpoint(trainer.checkpoint_dir, tensors=tensors, state=state)


def settings_of(trainer, rows: int, batch_size: int) -> dict:
    """What a checkpoint of ``trainer`` must agree with for a resume to be exact: the data's
    size, the batch, and every setting that shapes the run."""
    names = (
        "gradient_accumulation",
        "max_epochs",
        "schedule_epochs",
        "learning_rate",
        "weight_decay",
        "precision",
        "mixup",
        "gradient_clip",
        "patience",
        "min_delta",
        "monitor",
        "seed",
    )
    settings = {"rows": rows, "batch_size": batch_size, "schedule": trainer.schedule_name}
    return {**settings, **{name: getattr(trainer, name) for name in names}}

"""The run directory: where a training run keeps what outlives a crash.

``run.json`` records the configuration and a fingerprint of the data, so that
``fit --resume RUN_DIR`` can refuse other data or other options; next to it live
the checkpoints (``checkpoint/``, or ``fold-K/checkpoint/`` with cross-validation),
``metrics.jsonl``, the learning-rate sweep and TensorBoard event files. When the
run finishes and its bundle is written, the checkpoints are removed and the logs
stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from deepstrata.bundle.lock import locked
from deepstrata.bundle.write import write_failure
from deepstrata.errors import CheckpointError, ConfigError

RUN_FILE = "run.json"


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over column names, dtypes and every cell (order-sensitive)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    try:
        hashed = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # cells pandas cannot hash (lists, dicts of a nested column): as text
        hashed = pd.util.hash_pandas_object(frame.astype(str), index=False)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def write_json_atomically(path: Path, data: dict) -> None:
    """``data`` as ``path``, whole or not at all; a full disk is a CheckpointError, one line."""
    text = json.dumps(data, indent=2)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        message = write_failure(error, place=path.parent, needed=len(text), what=path.name)
        raise CheckpointError(message, path=str(path.parent)) from error
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):  # a full disk, a permission: the user's to fix
            message = write_failure(error, place=path.parent, needed=len(text), what=path.name)
            raise CheckpointError(message, path=str(path.parent)) from error
        raise


class RunDirectory:
    """``begin`` a new run or ``check`` a resumed one; ``finish`` tidies up."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.created: Path | None = None  # the outermost directory begin() made
        self.was_empty = False  # begin() found the directory there and empty

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold this run directory for the block: another process's fit or resume of it is
        refused at once (a ConfigError naming this process); see :mod:`deepstrata.bundle.lock`."""
        return locked(self.path, option="--run-dir")

    def checkpoints(self) -> list[Path]:
        return sorted(p.parent for p in self.path.rglob("checkpoint.json"))

    def read(self) -> dict:
        try:
            return json.loads((self.path / RUN_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(
                f"no {RUN_FILE} here: not a deepstrata run directory", path=str(self.path)
            ) from None
        except (ValueError, OSError, RecursionError) as error:
            raise CheckpointError(
                f"{RUN_FILE} is unreadable: {error}", path=str(self.path)
            ) from None

    def begin(self, *, config: dict, data_fingerprint: str, source: str, **extra) -> None:
        if self.path.is_dir() and any(self.path.iterdir()) and not (self.path / RUN_FILE).is_file():
            raise ConfigError(
                f"{self.path} is a directory with other files in it, not a run directory; "
                "choose an empty or new one",
                option="--run-dir",
            )
        if self.path.exists() and self.checkpoints():
            raise ConfigError(
                f"{self.path} holds an unfinished run; resume it (--resume {self.path}) "
                "or remove it to start over (--overwrite)",
                option="--run-dir",
            )
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        self.was_empty = self.path.is_dir() and not any(self.path.iterdir())
        self.created = missing[-1] if missing else None
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            write_json_atomically(
                self.path / RUN_FILE,
                {
                    "config": config,
                    "data": {"source": source, "sha256": data_fingerprint},
                    "finished": False,
                    **extra,
                },
            )
        except BaseException:  # a full disk: leave nothing begun behind
            self.abandon()
            raise

    def check(self, *, config: dict, data_fingerprint: str) -> dict:
        """The recorded run, after checking that data and options are the same."""
        recorded = self.read()
        if recorded.get("finished"):
            raise CheckpointError(
                "this run finished and wrote its bundle; there is nothing to resume",
                path=str(self.path),
            )
        if recorded["data"]["sha256"] != data_fingerprint:
            raise CheckpointError(
                f"the data differs from the data this run started on "
                f"({recorded['data']['source']}); an exact resume needs the same rows",
                path=str(self.path),
            )
        different = sorted(
            key for key in config if recorded["config"].get(key, config[key]) != config[key]
        )
        if different:
            listed = ", ".join(
                f"--{k.replace('_', '-')} {recorded['config'].get(k)!r} then, {config[k]!r} now"
                for k in different
            )
            raise CheckpointError(
                f"options differ from the run's ({listed}); resume with the same options",
                path=str(self.path),
            )
        return recorded

    def abandon(self) -> None:
        """After a failure: remove what begin() made, unless a checkpoint is worth keeping."""
        if self.checkpoints():
            return
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
        elif self.was_empty:  # the user's empty folder: empty again, but still there
            for child in self.path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    def finish(self, *, keep: bool = True) -> None:
        """Drop checkpoints and fold models (the bundle has what matters).

        With ``keep`` the logs stay (``run.json`` marked finished); without, the
        whole directory goes: the bundle holds ``metrics.jsonl`` and the sweep.
        """
        if not keep:
            if (self.path / RUN_FILE).is_file():
                shutil.rmtree(self.path, ignore_errors=True)
            return
        for directory in self.checkpoints():
            shutil.rmtree(directory, ignore_errors=True)
        for fold_model in self.path.glob("fold-*/model"):
            shutil.rmtree(fold_model, ignore_errors=True)
        recorded = self.read()
        recorded["finished"] = True
        write_json_atomically(self.path / RUN_FILE, recorded)

"""Embeddings cached on disk, keyed by row content and encoder.

``--strategy features`` runs the pretrained network once per distinct input: a row's
embedding is stored under the hash of exactly what the network sees (the decoded,
resized pixels; the token ids), in a SQLite file per encoder (network, weight-file
sha256 and input settings). A refit, another fold, another head, or ``deepstrata
embed`` on the same rows reads instead of computing. SQLite makes concurrent
writers (several fits at once) safe and a killed run leaves a consistent file.

Where: ``$DEEPSTRATA_CACHE_DIR``, else ``$XDG_CACHE_HOME/deepstrata``, else
``~/.cache/deepstrata``; ``DEEPSTRATA_CACHE_DIR=off`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

BATCH = 64  # rows per forward pass of the pretrained network


def cache_directory() -> Path | None:
    configured = os.environ.get("DEEPSTRATA_CACHE_DIR")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deepstrata"


def encoder_key(description: dict) -> str:
    """A stable name for an encoder and its input settings (a JSON-able description)."""
    text = json.dumps(description, sort_keys=True)
    return f"{description.get('name', 'encoder')}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def row_keys(block: torch.Tensor) -> list[bytes]:
    """One digest per row of ``block`` (its dtype, width and bytes)."""
    array = np.ascontiguousarray(block.numpy())
    prefix = f"{array.dtype.str}:{array.shape[1:]}".encode()
    return [hashlib.blake2b(prefix + row.tobytes(), digest_size=20).digest() for row in array]


class EmbeddingCache:
    """``lookup(keys) -> {key: vector}``, ``store({key: vector})`` for one encoder."""

    def __init__(self, directory: Path, key: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "embeddings" / f"{key}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embedding (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"
        )

    def lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # SQLite caps the parameters per query
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, vector FROM embedding WHERE key IN ({marks})", chunk
            )
            found.update((key, np.frombuffer(vector, dtype=np.float32)) for key, vector in rows)
        return found

    def store(self, vectors: dict[bytes, np.ndarray]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO embedding (key, vector) VALUES (?, ?)",
                [(key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in vectors.items()],
            )

    def close(self) -> None:
        self._db.close()


def embed(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    block: torch.Tensor,
    *,
    key: str | None,
    report: Callable[[str], None] = lambda line: None,
    what: str = "rows",
    expect: Callable[[int], None] = lambda rows: None,
    lengths: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """``(N, W)`` inputs -> ``(N, D)`` float32 embeddings, computing only uncached rows.

    ``key`` names the encoder (see :func:`encoder_key`); None, or no cache directory,
    computes everything. ``expect`` is told how many rows are to be computed before the
    first is (the runtime decides by it whether an export pays). ``lengths``, per row, how
    much of it the network reads (text: its tokens): rows are then computed shortest first,
    so a batch holds rows of like length and the padding they share is cut off (on short
    reviews, half the tokens of batches in table order). Returns the embeddings and counts
    (rows, cached, computed, seconds). Identical rows are computed once.
    """
    started = time.perf_counter()
    directory = cache_directory() if key is not None else None
    cache = EmbeddingCache(directory, key) if directory is not None else None
    keys = row_keys(block)
    known = cache.lookup(keys) if cache is not None else {}
    first_row: dict[bytes, int] = {}
    for index, k in enumerate(keys):
        first_row.setdefault(k, index)
    missing = [row for k, row in first_row.items() if k not in known]  # rows to compute
    if lengths is not None:
        missing.sort(key=lambda row: lengths[row])
    if missing:
        report(f"embedding {len(missing)} {what} ({len(known)} cached)")
        expect(len(missing))
    computed: dict[bytes, np.ndarray] = {}
    last_report = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(missing), BATCH):
            rows = missing[start : start + BATCH]
            vectors = encoder(block[rows]).float().cpu().numpy()  # (b, D)
            batch = {keys[row]: vector for row, vector in zip(rows, vectors)}
            computed.update(batch)
            if cache is not None:
                cache.store(batch)  # as it goes: a killed run keeps what it computed
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                report(f"  {start + len(rows)}/{len(missing)} {what} embedded")
    if cache is not None:
        cache.close()
    everything = {**known, **computed}
    if not keys:
        output = np.zeros((0, getattr(encoder, "out_dim", 0)), dtype=np.float32)
    else:
        output = np.stack([everything[k] for k in keys]).astype(np.float32, copy=False)
    counts = {
        "rows": len(keys),
        "cached": sum(1 for k in keys if k in known),  # rows read from earlier runs
        "computed": len(computed),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return output, counts

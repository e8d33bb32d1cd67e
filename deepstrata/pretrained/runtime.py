"""Pretrained backbones through ONNX Runtime: exported once, cached on disk, checked against torch.

On a CPU, ONNX Runtime runs the same weights several times faster than torch eager
(EfficientNet-Lite0 at 224 px on 2 cores: 13-22 images/s eager against 94-132 when issue 23
was filed; 3 against 30 on 2 cores kept busy by other work, ``bench/transfer.py`` part 0). So where ``onnxruntime`` is installed (the ``serve`` extra), the
backbones of ``--strategy features``, ``deepstrata embed`` and a features bundle's predictions
run through it (:class:`BackboneRuntime`, used by the feature extractor):

- **exported once** per network and input shape (image side; text max length) with torch's
  exporter (``torch.onnx.export(dynamo=True)``), into ``<cache>/onnx/`` beside the embedding
  cache (:func:`deepstrata.pretrained.cache.cache_directory`), the file named by the network,
  the input shape and a hash of the weight file's sha256, the shape, and the exporter's and
  runtime's versions. It is written to a temporary file and renamed into place only once it
  passed the check, so the folder holds checked exports only. With the cache off
  (``DEEPSTRATA_CACHE_DIR=off``) it is made in a temporary folder, removed once ONNX Runtime
  has read it: the session lives for the process.
- **checked before use**, once per process: the first rows it is given go through both torch
  and ONNX Runtime, and every output must agree within ``ATOL + RTOL * |torch|``.
- **torch is the fallback** for anything that fails: onnxruntime (or onnxscript) not installed,
  an export error, a mismatch, a cached file that does not load or check (removed, and exported
  again). A failure is said once per process (a warning and a progress line); every run records
  which engine computed (``metrics.json``, ``features.extraction``).
- an export costs 5-25 s, so it is made only when at least ``EXPORT_ROWS`` rows are to be
  computed; fewer rows use an export already on disk, else torch.

ONNX Runtime's intra-op threads are torch's thread count (``torch.get_num_threads()``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch
from torch import nn

ATOL = 1e-4  # embeddings are of order 1 (image features 0..6, unit-length text vectors)
RTOL = 1e-4
CHECK_ROWS = 4  # rows of the first batch run by both engines
EXPORT_ROWS = 256  # fewer rows to compute: torch, unless an export is already on disk
FORMAT = 1  # of the exported graphs (their inputs, outputs, pooling); part of the file's key
EXTRA = "serve"  # the extra that installs onnx, onnxscript and onnxruntime
EXPORTER = ("onnx", "onnxscript", "onnxruntime")  # packages whose versions key an export
INPUT, OUTPUT = "inputs", "vectors"  # the graph's names ("embedding" clashes inside BERT)


@dataclass
class Graph:
    """What a backbone exports for one input shape: its ``onnx_graph(row_shape)``.

    ``module`` maps ``backbone.onnx_feed(x)`` (what the input becomes in Python first: text
    has the padding every row shares cut off) to what ``backbone(x)`` gives; ``example`` is
    an input to trace with (more than one row, so the batch axis stays symbolic);
    ``dynamic`` the symbolic axes of the one input (``{0: Dim("batch"), ...}``).
    """

    module: nn.Module
    example: torch.Tensor
    dynamic: dict


def session_options(onnxruntime):
    """ONNX Runtime session options: torch's thread count, threads that sleep when idle."""
    options = onnxruntime.SessionOptions()
    # Busy-waiting threads cost a shared CPU more than they save (2 cores, other work beside).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = torch.get_num_threads()
    return options


@functools.cache  # per process: a features bundle may predict one row at a time
def versions() -> dict:
    """The exporter's and runtime's versions (a change re-exports); a PackageNotFoundError
    names one that is not installed. Read from the metadata: importing onnxscript takes
    seconds, and a cached export needs only ONNX Runtime."""
    return {"torch": torch.__version__, **{name: version(name) for name in EXPORTER}}


def export_name(network: str, sha256: str, row_shape: tuple[int, ...]) -> str:
    """``efficientnet-lite0-3x224x224-<hash>.onnx``: the file an export is cached under."""
    description = {
        "network": network,
        "sha256": sha256,
        "shape": list(row_shape),
        "format": FORMAT,
        **versions(),
    }
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
    return f"{network}-{'x'.join(map(str, row_shape))}-{digest[:16]}.onnx"


def export_graph(graph: Graph, path: Path) -> None:
    """Export ``graph`` to ``path`` (one self-contained file) with torch's exporter."""
    onnx_export(
        graph.module.eval(),
        (graph.example,),
        path,
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_shapes=(graph.dynamic,),
        external_data=False,
    )


def onnx_export(
    module, example: tuple, path: Path, *, external_data: bool | None = None, **settings
) -> None:
    """``torch.onnx.export`` (the dynamo exporter) of ``module`` on ``example`` to ``path``,
    without its chatter ("torchvision is not installed", warnings): the one call that both
    the backbones here and :mod:`deepstrata.export.onnx` make. ``external_data``: as
    ``ONNXProgram.save`` takes it (None: torch decides by size)."""
    chatter = logging.getLogger("torch.onnx")
    level = chatter.level
    chatter.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, example, dynamo=True, verbose=False, **settings)
            program.save(str(path), external_data=external_data)
    finally:
        chatter.setLevel(level)


def largest_difference(expected: np.ndarray, actual: np.ndarray) -> float | None:
    """The largest absolute difference, or None when any is beyond ``ATOL + RTOL * |expected|``
    (or the shapes differ)."""
    if expected.shape != actual.shape:
        return None
    expected, actual = expected.astype(np.float64), actual.astype(np.float64)
    difference = np.abs(actual - expected)
    if not np.all(difference <= ATOL + RTOL * np.abs(expected)):  # NaN fails too
        return None
    return float(difference.max()) if difference.size else 0.0


class Fallback(Exception):
    """Why ONNX Runtime cannot run a backbone here (the message says so; torch runs it)."""


# Per process: the checked sessions, and what could not be made (said once), by export name
# and thread count. A lock: a server may embed from several threads.
_SESSIONS: dict[tuple[str, int], object] = {}
_FAILED: dict[tuple[str, int], str] = {}
_LOCK = threading.Lock()


class BackboneRuntime:
    """Call it as the backbone: ``(B, *row_shape) -> (B, D)``, through ONNX Runtime where it
    can, else through torch (see the module docstring).

    The backbone lists what it exports (``onnx_graph(row_shape) -> Graph``) and what its
    input becomes first, in Python (``onnx_feed(x)``). ``expect(rows)`` says how many rows
    are about to be computed (an export is made for ``EXPORT_ROWS`` or more); ``engines``
    says, per input shape, what computed them. ``report`` receives progress lines.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        network: str,
        sha256: str,
        report: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.backbone = backbone
        self.network = network  # its name, and its weight file's sha256: the export's key
        self.sha256 = sha256
        self.report = report
        self.rows = 0
        self.engines: dict[str, str] = {}
        self._sessions: dict[tuple[int, ...], object | None] = {}

    def expect(self, rows: int) -> None:
        self.rows = rows

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape[1:])
        if shape not in self._sessions:
            self._sessions[shape] = self._session(shape, x)
        session = self._sessions[shape]
        if session is None:
            return self.backbone(x)
        return torch.from_numpy(session.run(None, {INPUT: self._feed(x)})[0])

    def _feed(self, x: torch.Tensor) -> np.ndarray:
        return self.backbone.onnx_feed(x).contiguous().numpy()

    def _session(self, shape: tuple[int, ...], x: torch.Tensor):
        described = "x".join(map(str, shape))
        try:
            with _LOCK:
                session = self._checked_session(shape, x)
        except Fallback as why:
            self.engines[described] = f"torch: {why}"
            return None
        self.engines[described] = "onnxruntime"
        return session

    def _checked_session(self, shape: tuple[int, ...], x: torch.Tensor):
        try:
            import onnxruntime
        except ImportError:
            raise Fallback(
                f"onnxruntime is not installed (pip install 'deepstrata[{EXTRA}]')"
            ) from None
        if not callable(getattr(self.backbone, "onnx_graph", None)):
            raise Fallback("the backbone has no ONNX graph")
        try:
            name = export_name(self.network, self.sha256, shape)
        except PackageNotFoundError as error:  # onnx or onnxscript: the exporter's packages
            raise Fallback(
                f"{error.name} is not installed (pip install 'deepstrata[{EXTRA}]')"
            ) from None
        key = (name, torch.get_num_threads())
        if key in _SESSIONS:
            return _SESSIONS[key]
        if key in _FAILED:
            raise Fallback(_FAILED[key])
        sample = x[:CHECK_ROWS]
        cached = _cached_path(name)
        if cached is not None and cached.is_file():
            try:
                session, _ = self._load_and_check(cached, sample, onnxruntime)
            except Fallback as why:
                self._say(f"{self.network}: the cached export {cached.name} {why}; removed it")
                cached.unlink(missing_ok=True)
            else:
                _SESSIONS[key] = session
                return session
        if self.rows < EXPORT_ROWS:
            raise Fallback(f"{self.rows} rows, fewer than {EXPORT_ROWS} to be worth an export")
        try:
            session = self._export(shape, sample, cached, onnxruntime)
        except Fallback as why:
            _FAILED[key] = str(why)
            self._say(f"{self.network} runs in torch (slower): {why}")
            raise
        _SESSIONS[key] = session
        return session

    def _export(
        self, shape: tuple[int, ...], sample: torch.Tensor, target: Path | None, onnxruntime
    ):
        """Export to a temporary file, check it, and move it to ``target`` (None: no cache)."""
        started = time.perf_counter()
        folder = None
        if target is not None:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                folder = target.parent
            except OSError:  # a read-only cache: the export lives for this process only
                target = None
        with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch:
            path = Path(scratch) / "backbone.onnx"
            try:
                export_graph(self.backbone.onnx_graph(shape), path)
            except Exception as error:
                raise Fallback(f"torch.onnx.export failed: {_first_line(error)}") from error
            session, worst = self._load_and_check(path, sample, onnxruntime)
            if target is not None:
                os.replace(path, target)  # atomic: a reader sees no export or a whole one
        where = str(target) if target is not None else "a temporary folder"
        self.report(
            f"{self.network}: exported to ONNX in {time.perf_counter() - started:.1f}s ({where}); "
            f"matches torch on {len(sample)} rows within {worst:.1e}"
        )
        return session

    def _load_and_check(
        self, path: Path, sample: torch.Tensor, onnxruntime
    ) -> tuple[object, float]:
        """A session of ``path`` whose outputs on ``sample`` match the backbone's, and the
        largest difference; Fallback else."""
        try:
            session = onnxruntime.InferenceSession(
                str(path),
                sess_options=session_options(onnxruntime),
                providers=["CPUExecutionProvider"],
            )
            actual = session.run(None, {INPUT: self._feed(sample)})[0]
        except Exception as error:  # a truncated or foreign file, an unsupported operator
            raise Fallback(f"does not load in ONNX Runtime ({_first_line(error)})") from error
        with torch.inference_mode():
            expected = self.backbone(sample).float().numpy()
        worst = largest_difference(expected, actual)
        if worst is None:
            shown = (
                f"{np.abs(actual - expected).max():.3g}"
                if actual.shape == expected.shape
                else f"shape {actual.shape} against {expected.shape}"
            )
            raise Fallback(
                f"differs from torch by {shown} on {len(sample)} rows, beyond the tolerance "
                f"{ATOL:g} + {RTOL:g}·|value|"
            )
        return session, worst

    def _say(self, line: str) -> None:
        """A failure, said once per process: a progress line and a warning."""
        self.report(line)
        warnings.warn(line, RuntimeWarning, stacklevel=2)


def cached_export(network: str, sha256: str, row_shape: tuple[int, ...]) -> Path | None:
    """Where the export of ``network`` for inputs of ``row_shape`` is (or would be) cached;
    None with the cache off."""
    return _cached_path(export_name(network, sha256, tuple(row_shape)))


def _cached_path(name: str) -> Path | None:
    from deepstrata.pretrained.cache import cache_directory

    directory = cache_directory()
    return directory / "onnx" / name if directory is not None else None


def _first_line(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

"""Backbones through ONNX Runtime: the same outputs as torch, exported once, torch when not.

Most tests use a tiny convolutional backbone, exported once for the module (an export takes
seconds; the other tests copy that file where they would export); the installed
EfficientNet-Lite0 and all-MiniLM-L6-v2 go through the feature extractor at the end, on a
few small inputs.
"""

from __future__ import annotations

import shutil
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from deepstrata.pretrained import runtime
from deepstrata.pretrained.runtime import EXPORT_ROWS, BackboneRuntime, Graph

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


class TinyBackbone(nn.Module):
    """``(B, 3, S, S)`` -> ``(B, 4)``: a convolution, average-pooled."""

    out_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))

    def onnx_feed(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def onnx_graph(self, row_shape: tuple[int, ...]) -> Graph:
        example = torch.rand(2, *row_shape)
        return Graph(module=self, example=example, dynamic={0: torch.export.Dim("batch")})


def new_tiny(shift: float = 0.0) -> TinyBackbone:
    """The tiny backbone, the same weights each time; ``shift`` added to its bias: weights the
    module's export was not made from."""
    torch.manual_seed(0)
    tiny = TinyBackbone().eval()
    with torch.no_grad():
        tiny.conv.bias += shift
    return tiny


def images(rows: int = 6, size: int = 8) -> torch.Tensor:
    return torch.rand(rows, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One real export of the tiny backbone (the other tests copy it: an export takes seconds),
    with what came out of it."""
    cache = tmp_path_factory.mktemp("runtime-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "_SESSIONS", {})
        patch.setattr(runtime, "_FAILED", {})
        patch.setenv("DEEPSTRATA_CACHE_DIR", str(cache))
        tiny = new_tiny()
        engine = BackboneRuntime(tiny, network="tiny", sha256="0" * 64)
        engine.expect(EXPORT_ROWS)
        with torch.inference_mode():
            outputs = (engine(images()), tiny(images()))
    (path,) = (cache / "onnx").iterdir()
    return {"path": path, "engines": engine.engines, "outputs": outputs}


@pytest.fixture(autouse=True)
def new_process(monkeypatch, tmp_path, exported):
    """Each test starts as a new process would: no session open, nothing said yet; its own
    cache folder. An export copies the module's one real export (same weights, same shape)
    and is counted."""
    forget_sessions(monkeypatch)
    monkeypatch.setenv("DEEPSTRATA_CACHE_DIR", str(tmp_path / "cache"))
    exports = []

    def copied(graph, path):
        exports.append(path)
        shutil.copyfile(exported["path"], path)

    monkeypatch.setattr(runtime, "export_graph", copied)
    return exports


def forget_sessions(monkeypatch) -> None:
    """What a later process sees: only the files on disk."""
    monkeypatch.setattr(runtime, "_SESSIONS", {})
    monkeypatch.setattr(runtime, "_FAILED", {})


def run(backbone: nn.Module, x: torch.Tensor, rows: int = EXPORT_ROWS) -> BackboneRuntime:
    engine = BackboneRuntime(backbone, network="tiny", sha256="0" * 64)
    engine.expect(rows)
    with torch.inference_mode():
        torch.testing.assert_close(engine(x), backbone(x), atol=runtime.ATOL, rtol=runtime.RTOL)
    return engine


def cached_files(tmp_path) -> list:
    folder = tmp_path / "cache" / "onnx"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def test_the_onnx_runtime_path_gives_torchs_outputs(exported):
    assert exported["engines"] == {"3x8x8": "onnxruntime"}
    assert exported["path"].name.startswith("tiny-3x8x8-") and exported["path"].suffix == ".onnx"
    through_onnx, through_torch = exported["outputs"]
    torch.testing.assert_close(through_onnx, through_torch, atol=runtime.ATOL, rtol=runtime.RTOL)


def test_an_export_is_made_once_then_read_from_disk(tmp_path, new_process, monkeypatch):
    tiny = new_tiny()
    run(tiny, images())
    run(tiny, images(rows=3))  # same process, same shape: the open session
    forget_sessions(monkeypatch)
    assert run(tiny, images(rows=2), rows=1).engines == {"3x8x8": "onnxruntime"}  # from disk
    assert len(new_process) == 1 and len(cached_files(tmp_path)) == 1


def test_few_rows_run_in_torch_unless_an_export_is_on_disk(new_process, monkeypatch):
    tiny = new_tiny()
    few = run(tiny, images(), rows=EXPORT_ROWS - 1)
    assert few.engines["3x8x8"].startswith("torch: ") and "worth an export" in few.engines["3x8x8"]
    assert not new_process
    run(tiny, images())
    forget_sessions(monkeypatch)
    assert run(tiny, images(), rows=1).engines == {"3x8x8": "onnxruntime"}


def test_a_corrupt_cached_export_is_removed_and_made_again(tmp_path, new_process, monkeypatch):
    tiny = new_tiny()
    run(tiny, images())
    (cached,) = (tmp_path / "cache" / "onnx").iterdir()
    cached.write_bytes(b"not an onnx file")
    forget_sessions(monkeypatch)
    lines = []
    engine = BackboneRuntime(tiny, network="tiny", sha256="0" * 64, report=lines.append)
    engine.expect(EXPORT_ROWS)
    with pytest.warns(RuntimeWarning, match="cached export .* does not load"), torch.no_grad():
        torch.testing.assert_close(engine(images()), tiny(images()), atol=1e-4, rtol=1e-4)
    assert engine.engines == {"3x8x8": "onnxruntime"} and len(new_process) == 2
    assert any("removed it" in line for line in lines)
    assert cached.read_bytes() != b"not an onnx file"


def test_a_mismatching_cached_export_with_few_rows_falls_back_to_torch(tmp_path, monkeypatch):
    run(new_tiny(), images())
    (cached,) = (tmp_path / "cache" / "onnx").iterdir()
    forget_sessions(monkeypatch)
    changed = new_tiny(shift=1.0)  # other weights under the same key: the export does not match
    with pytest.warns(RuntimeWarning, match="cached export .* differs from torch by 1"):
        engine = run(changed, images(), rows=1)
    assert engine.engines["3x8x8"].startswith("torch: ") and not cached.exists()


def test_an_export_that_differs_from_torch_is_not_used_and_said_once(tmp_path, new_process):
    shifted = new_tiny(shift=0.01)  # the export made is of other weights
    with pytest.warns(
        RuntimeWarning, match=r"runs in torch \(slower\): differs from torch by 0.01"
    ):
        engine = run(shifted, images())
    assert engine.engines["3x8x8"].startswith("torch: differs from torch")
    assert not cached_files(tmp_path)  # only checked exports are kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per process: no second warning, no export
        again = run(shifted, images())
    assert again.engines == engine.engines and len(new_process) == 1


def test_an_export_error_falls_back_to_torch(monkeypatch):
    tiny = new_tiny()

    def broken(shape):
        raise RuntimeError("unsupported operator\nmore detail")

    monkeypatch.setattr(tiny, "onnx_graph", broken)
    with pytest.warns(RuntimeWarning, match="torch.onnx.export failed: RuntimeError: unsupported"):
        engine = run(tiny, images())
    assert engine.engines["3x8x8"].startswith("torch: torch.onnx.export failed")


def test_without_onnxruntime_torch_runs_and_nothing_is_said(monkeypatch, new_process):
    tiny = new_tiny()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime: ImportError
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine = run(tiny, images())
    assert engine.engines == {
        "3x8x8": "torch: onnxruntime is not installed (pip install 'deepstrata[serve]')"
    }
    assert not new_process


def test_with_the_cache_off_the_export_lives_for_the_process(monkeypatch, new_process):
    monkeypatch.setenv("DEEPSTRATA_CACHE_DIR", "off")
    tiny = new_tiny()
    assert run(tiny, images()).engines == {"3x8x8": "onnxruntime"}
    assert run(tiny, images()).engines == {"3x8x8": "onnxruntime"}
    assert len(new_process) == 1  # exported once for the process, kept in memory


def test_the_export_key_changes_with_weights_shape_and_versions(monkeypatch):
    name = runtime.export_name("net", "a" * 64, (3, 8, 8))
    assert name.startswith("net-3x8x8-") and name == runtime.export_name("net", "a" * 64, (3, 8, 8))
    assert name != runtime.export_name("net", "b" * 64, (3, 8, 8))
    assert name != runtime.export_name("net", "a" * 64, (3, 9, 9))
    monkeypatch.setattr(runtime, "version", lambda package: "0.0-other")
    runtime.versions.cache_clear()
    try:
        assert name != runtime.export_name("net", "a" * 64, (3, 8, 8))
    finally:
        monkeypatch.undo()
        runtime.versions.cache_clear()


def test_largest_difference_allows_the_tolerance_and_refuses_nan_or_shape():
    expected = np.array([[1.0, 100.0]])
    assert runtime.largest_difference(expected, expected + 5e-5) == pytest.approx(5e-5)
    assert runtime.largest_difference(expected, expected + np.array([[0, 0.015]])) is None
    assert runtime.largest_difference(expected, np.array([[np.nan, 100.0]])) is None
    assert runtime.largest_difference(expected, expected[:, :1]) is None


@pytest.fixture
def real_networks(monkeypatch, tmp_path):
    """The installed networks' extractors, exporting for a few rows; the cache in ``tmp_path``."""
    from deepstrata.encoders.pretrained import ImagePixels, PretrainedEncoder
    from deepstrata.model.extractor import FeatureExtractor
    from deepstrata.pretrained.registry import get

    monkeypatch.setattr(runtime, "EXPORT_ROWS", 1)
    monkeypatch.setattr(runtime, "export_graph", REAL_EXPORT)  # not the copy of the tiny one
    image = PretrainedEncoder(
        backbone=get("efficientnet-lite0").build(),
        network="efficientnet-lite0",
        widths=[3 * 32 * 32],
        prepare=[ImagePixels(size=32)],
    )
    text = PretrainedEncoder(
        backbone=get("all-minilm-l6-v2").build(), network="all-minilm-l6-v2", widths=[12, 12]
    )
    return FeatureExtractor({"image": image, "text": text})


REAL_EXPORT = runtime.export_graph


@pytest.mark.slow  # two real exports: 20 s to minutes on 2 shared cores (the tiny one is fast)
def test_efficientnet_and_minilm_through_onnx_runtime_give_torchs_embeddings(real_networks):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (5, 24), generator=generator)
    ids[:, 0] = ids[:, 12] = 101  # [CLS] per column, then padding of several lengths
    for row, length in enumerate([3, 5, 12, 7, 2]):
        ids[row, length:12] = ids[row, 12 + length :] = 0
    inputs = {
        "image": torch.randint(0, 256, (5, 3 * 32 * 32), dtype=torch.uint8, generator=generator),
        "text": ids,
    }
    vectors, counts = real_networks.extract(inputs, cache=False)
    assert counts["image"]["engines"] == {"3x32x32": "onnxruntime"}
    assert counts["text"]["engines"] == {"12": "onnxruntime"}
    with torch.inference_mode():
        expected = real_networks(inputs).numpy()  # eager PyTorch (no runtime outside extract)
    assert vectors.shape == expected.shape == (5, 1280 + 2 * 384)
    np.testing.assert_allclose(vectors, expected, atol=runtime.ATOL, rtol=runtime.RTOL)

import json

import pytest
import torch

from deepstrata.bundle import read_bundle, write_bundle
from deepstrata.errors import BundleError


def write(path, **kwargs):
    return write_bundle(
        path,
        config={"hello": "world"},
        weights={"layer.weight": torch.arange(6.0).reshape(2, 3)},
        metrics={"accuracy": 1.0},
        versions={"deepstrata": "test"},
        **kwargs,
    )


def test_round_trip_and_manifest(tmp_path):
    path = write(tmp_path / "bundle")
    config, weights, metrics = read_bundle(path)
    assert config == {"hello": "world"} and metrics == {"accuracy": 1.0}
    assert torch.equal(weights["layer.weight"], torch.arange(6.0).reshape(2, 3))
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"config.json", "weights.safetensors", "metrics.json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no staging left behind


@pytest.mark.parametrize("name", ["config.json", "weights.safetensors", "metrics.json"])
def test_a_changed_byte_is_refused_naming_the_file(tmp_path, name):
    path = write(tmp_path / "bundle")
    data = bytearray((path / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (path / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=name):
        read_bundle(path)


def test_extra_and_missing_files_are_refused(tmp_path):
    path = write(tmp_path / "bundle")
    (path / "model.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(BundleError, match=r"model\.pkl"):
        read_bundle(path)
    (path / "model.pkl").unlink()
    (path / "metrics.json").unlink()
    with pytest.raises(BundleError, match=r"metrics\.json.*missing"):
        read_bundle(path)


def test_existing_bundle_needs_overwrite(tmp_path):
    path = write(tmp_path / "bundle")
    with pytest.raises(BundleError, match="already exists"):
        write(path)
    write(path, overwrite=True)
    read_bundle(path)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        read_bundle(tmp_path)
    with pytest.raises(BundleError, match="does not exist"):
        read_bundle(tmp_path / "nowhere")


def test_a_bundle_is_readable_by_others_under_the_usual_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = write(tmp_path / "bundle")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o755
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in path.iterdir())

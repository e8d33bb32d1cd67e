import json
import os
import re
import struct
import subprocess

import pytest
import torch
from safetensors import SafetensorError

import deepstrata.bundle.write as bundle_write
from deepstrata.bundle import read_bundle, write_bundle, write_manifest
from deepstrata.bundle.lock import lock_path, locked
from deepstrata.bundle.manifest import sha256_of
from deepstrata.bundle.write import atomic_directory, process_alive
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


# -- hostile bundles: one BundleError each, never a traceback (issue 24) ----------------------


def rehash(path):
    """Re-sign a tampered bundle, as whoever hands one over can: the manifest then agrees."""
    write_manifest(path, versions={"deepstrata": "test"})


def safetensors_bytes(header: bytes, header_length: int | None = None) -> bytes:
    """A safetensors file: the header's length (8 bytes, little-endian), then the header."""
    length = len(header) if header_length is None else header_length
    return struct.pack("<Q", length) + header


HUGE = {"w": {"dtype": "F32", "shape": [25 * 10**9], "data_offsets": [0, 10**11]}}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        # a header claiming a 100 GB tensor in a file of a few bytes
        (safetensors_bytes(json.dumps(HUGE).encode()), "not a valid safetensors file"),
        (safetensors_bytes(b"{}", 2**63), "not a valid safetensors file"),
    ],
    ids=["100GB-tensor", "2**63-header"],
)
def test_a_hostile_weights_header_is_a_bundle_error(tmp_path, content, reason):
    path = write(tmp_path / "bundle")
    (path / "weights.safetensors").write_bytes(content)
    rehash(path)
    with pytest.raises(BundleError, match=reason) as caught:
        read_bundle(path)
    assert "weights.safetensors" in str(caught.value) and caught.value.path == str(path)


@pytest.mark.parametrize("name", ["config.json", "metrics.json", "manifest.json"])
def test_json_nested_100000_levels_deep_is_a_bundle_error(tmp_path, name):
    path = write(tmp_path / "bundle")
    (path / name).write_text("[" * 100_000 + "]" * 100_000)
    if name != "manifest.json":
        rehash(path)
    with pytest.raises(BundleError, match=rf"{re.escape(name)} is nested more than 100 levels"):
        read_bundle(path)


def test_json_a_little_too_deep_to_walk_safely_is_refused_too(tmp_path):
    path = write(tmp_path / "bundle")
    (path / "config.json").write_text("[" * 101 + "]" * 101)  # parses; later code would recurse
    rehash(path)
    with pytest.raises(BundleError, match="nested more than 100 levels"):
        read_bundle(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: {**m, "files": sorted(m["files"])}, "'files' must map names to entries"),
        (
            lambda m: {**m, "files": {**m["files"], "config.json": "abc"}},
            "the entry of 'config.json' must be an object",
        ),
        (
            lambda m: {**m, "files": {**m["files"], "config.json": {"sha256": 1, "bytes": 2}}},
            "the entry of 'config.json' must be an object",
        ),
        (lambda m: [m], "must hold a JSON object, found a list"),
        (lambda m: {"files": m["files"]}, "'format_version'"),
        (lambda m: {**m, "format_version": [1]}, r"bundle format \[1\] is not supported"),
    ],
    ids=["files-list", "entry-string", "entry-types", "manifest-list", "no-version", "version"],
)
def test_a_manifest_of_the_wrong_shape_is_a_bundle_error(tmp_path, edit, message):
    path = write(tmp_path / "bundle")
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps(edit(manifest)))
    with pytest.raises(BundleError, match=message):
        read_bundle(path)


@pytest.mark.parametrize(
    "config", ["[1, 2]", '"a string"', "{not json"], ids=["list", "str", "bad"]
)
def test_a_config_that_is_not_an_object_is_a_bundle_error(tmp_path, config):
    path = write(tmp_path / "bundle")
    (path / "config.json").write_text(config)
    rehash(path)
    with pytest.raises(BundleError, match=r"config\.json (must hold a JSON object|is not valid)"):
        read_bundle(path)


def list_outside_file(path, name, outside):
    """Add ``name`` to the manifest with the true hash and size of the file ``outside``."""
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_of(outside), "bytes": outside.stat().st_size}
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "symlinked-folder"])
def test_manifest_names_outside_the_bundle_are_refused(tmp_path, how):
    path = write(tmp_path / "bundle")
    secret = tmp_path / "secret.txt"
    secret.write_text("not the bundle's")
    if how == "dot-dot":
        name = "../" * (len(path.parts) - 1) + secret.as_posix().lstrip("/")
    elif how == "absolute":
        name = str(secret)
    else:
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "secret.txt").write_text("not the bundle's")
        (path / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        secret, name = tmp_path / "elsewhere" / "secret.txt", "linked/secret.txt"
    list_outside_file(path, name, secret)
    expected = "unexpected file 'linked'" if how == "symlinked-folder" else "not a plain name"
    with pytest.raises(BundleError, match=expected):
        read_bundle(path)


def test_a_listed_symlink_is_reported_as_a_symlink(tmp_path):
    path = write(tmp_path / "bundle")
    real = tmp_path / "metrics.json"
    (path / "metrics.json").rename(real)
    (path / "metrics.json").symlink_to(real)  # same bytes, same hash: only the link differs
    with pytest.raises(BundleError, match=r"'metrics\.json' listed in the manifest is a symlink"):
        read_bundle(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, value):
    weights = {"ok": torch.ones(3), "layer.bias": torch.tensor([0.0, value])}
    path = write_bundle(tmp_path / "bundle", config={}, weights=weights, metrics={}, versions={})
    with pytest.raises(BundleError, match=r"tensor 'layer\.bias' .* NaN or infinite"):
        read_bundle(path)


def test_integer_weights_are_not_checked_for_finiteness(tmp_path):
    weights = {"counts": torch.arange(4), "mask": torch.tensor([True, False])}
    path = write_bundle(tmp_path / "bundle", config={}, weights=weights, metrics={}, versions={})
    assert read_bundle(path)[1]["counts"].tolist() == [0, 1, 2, 3]


# -- a full disk: one line, the old bundle whole (issue 24, point 3) -----------------------------


def test_a_full_disk_in_safetensors_is_a_bundle_error_saying_the_space(tmp_path, monkeypatch):
    path = write(tmp_path / "bundle")
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def full(*args, **kwargs):  # what safetensors raises when the disk fills up
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr("deepstrata.bundle.write.save_file", full)
    with pytest.raises(BundleError, match="No space left on device") as caught:
        write(path, overwrite=True)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert re.search(r"it needs about [\d.]+ kB, [\d.]+ (bytes|[kMG]B) free there", message)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_another_write_error_is_said_in_the_systems_words(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: Permission denied (os error 13)")

    monkeypatch.setattr("deepstrata.bundle.write.save_file", denied)
    with pytest.raises(BundleError, match=r"could not write the bundle: .*Permission denied") as e:
        write(tmp_path / "bundle")
    assert "needs about" not in str(e.value)


# -- what a killed writer leaves beside a bundle is swept at the next write (point 7) ---------


@pytest.fixture
def dead_pid():
    """The PID of a process that has ended (reaped, so os.kill says there is none)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_staging_directory_is_named_after_its_writer(tmp_path):
    with atomic_directory(tmp_path / "out") as staging:
        assert re.fullmatch(rf"\.out\.[A-Za-z0-9]+-{os.getpid()}-[a-z0-9_]+\.partial", staging.name)
        (staging / "a.txt").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_leftovers_of_a_dead_writer_are_swept_at_the_next_write_with_a_warning(tmp_path, dead_pid):
    path = write(tmp_path / "bundle")
    partial = bundle_write._sibling(path, "partial", create=True, pid=dead_pid)
    (partial / "weights.safetensors").write_bytes(b"half")
    old = bundle_write._sibling(path, "old", create=True, pid=dead_pid)
    deleting = bundle_write._sibling(path, "deleting", create=True, pid=dead_pid)
    live = bundle_write._sibling(path, "partial", create=True, pid=os.getpid())
    stranger = tmp_path / ".bundle.notes"  # not a writer's: never touched
    stranger.write_text("mine")
    with pytest.warns(UserWarning, match="interrupted write") as caught:
        write(path, overwrite=True)
    said = str(caught[0].message)
    assert all(p.name in said for p in (partial, old, deleting)) and live.name not in said
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["bundle", live.name, stranger.name]
    )
    read_bundle(path)


def test_an_old_version_set_aside_by_a_killed_publish_is_put_back(tmp_path, dead_pid):
    path = write(tmp_path / "bundle")
    aside = bundle_write._sibling(path, "old", pid=dead_pid)
    os.replace(path, aside)  # killed between its two renames: no bundle at the path
    partial = bundle_write._sibling(path, "partial", create=True, pid=dead_pid)
    with (
        pytest.warns(UserWarning, match=r"put back .*bundle"),
        pytest.raises(BundleError, match="already exists"),  # the old bundle is back
    ):
        write(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"] and not partial.exists()
    read_bundle(path)


def test_publish_leaves_no_sibling_behind(tmp_path):
    path = write(tmp_path / "bundle")
    write(path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_process_is_alive_or_not(dead_pid):
    assert process_alive(os.getpid()) and not process_alive(dead_pid)


def test_a_lock_file_no_process_holds_is_swept_and_a_held_one_kept(tmp_path):
    path = write(tmp_path / "bundle")
    lock_path(path).write_text("999999999\n")  # a killed fit's: no flock on it any more
    with pytest.warns(UserWarning, match=r"removed \.bundle\.lock"):
        write(path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    with locked(path, option="--out"):  # held (by this process): no sweep removes it
        write(path, overwrite=True)
        assert lock_path(path).exists()


def test_bundle_kind_is_a_safe_look_at_config_json(tmp_path):
    """predict picks the forecaster's or the detector's loader by config.json's kind: a
    missing, malformed or absurdly nested file is no kind (the model loader then names it),
    never a crash of the quick look."""
    from deepstrata.bundle.read import bundle_kind

    assert bundle_kind(tmp_path) is None  # no config.json
    (tmp_path / "config.json").write_text('{"kind": "anomaly"}')
    assert bundle_kind(tmp_path) == "anomaly"
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert bundle_kind(tmp_path) is None
    (tmp_path / "config.json").write_text("not json")
    assert bundle_kind(tmp_path) is None


@pytest.mark.parametrize(
    "kind, said",
    [
        ("forecast", r"this is a forecaster .*; `predict`, `serve` and `report` read it"),
        ("anomaly", r"this is an anomaly detector .*; `predict` reads it"),
        ("later", r"this is a bundle of kind 'later'"),
    ],
)
def test_a_model_reader_handed_another_kind_of_bundle_says_what_it_is(tmp_path, kind, said):
    """evaluate, explain, drift, attack ... load models; a forecaster's or a detector's bundle
    is named as such with the commands that read it, not a KeyError of the model's layout."""
    from deepstrata.model.model import load

    path = write_bundle(
        tmp_path / "bundle",
        config={"kind": kind},
        weights={"w": torch.zeros(1)},
        metrics={},
        versions={"deepstrata": "test"},
    )
    with pytest.raises(BundleError, match=said):
        load(path)

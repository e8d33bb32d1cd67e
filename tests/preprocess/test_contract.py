"""The registry contract: every registered kind round-trips and trains.

For each kind: fit/transform give ``(rows, width)`` of the declared dtype; the
JSON state rebuilds an identical preprocessor; the kind's encoder gives
``(B, out_dim)`` and passes gradients back to its parameters.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from deepstrata.data.schema import KINDS
from deepstrata.data.sources import read_table
from deepstrata.kinds import REGISTRY

SAMPLES = {
    "number": [1.5, 2.0, np.nan, 400.0, -3.0, 2.5, 2.0, 1.0],
    "boolean": ["yes", "no", "Yes", None, "no", "yes", "no", "yes"],
    "datetime": [
        "2024-01-01",
        "2024-03-05 10:30",
        None,
        "2023-12-31",
        "2024-06-01",
        "2024-06-02",
        "2024-02-29",
        "2025-01-01",
    ],
    "category": ["a", "b", "a", None, "c", "b", "a", "b"],
    "text": [
        "good movie",
        "bad plot, good cast",
        None,
        "good",
        "very bad",
        "bad bad",
        "good good good",
        "movie",
    ],
}


# Small settings, so that every kind's encoder is quick to build and run.
OPTIONS = {
    "min_category_count": 1,
    "text_max_length": 6,
    "text_vocabulary": 50,
    "text_width": 16,
    "image_size": 8,
    "image_width": 4,
    "image_depth": 2,
    "audio_seconds": 0.25,
    "audio_mels": 16,
    "audio_width": 4,
    "audio_depth": 2,
}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, list]:
    """Image and audio samples: absolute paths to small real files, one cell missing."""
    import soundfile
    from PIL import Image

    folder = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    images, clips = [], []
    for i in range(8):
        image = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(image)
        clip = folder / f"{i}.wav"
        soundfile.write(clip, rng.normal(0, 0.1, 4000 + 500 * i).astype(np.float32), 16000)
        images.append(str(image))
        clips.append(str(clip))
    images[2] = clips[3] = None
    return {"image": images, "audio": clips}


@pytest.fixture
def sample(media):
    return lambda kind: pd.Series(media.get(kind) or SAMPLES[kind], name="col")


def test_every_schema_kind_is_registered():
    assert set(REGISTRY) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_fit_transform_and_state_round_trip(kind, sample):
    column = sample(kind)
    table = read_table(pd.DataFrame({"col": column}))
    pre = REGISTRY[kind].new_preprocessor(OPTIONS)
    pre.fit(column, table)
    out = pre.transform(column, table)
    assert out.shape == (len(column), pre.width)
    assert out.dtype == np.dtype(pre.dtype)
    if pre.dtype == "float32":
        assert np.isfinite(out).all()
    assert np.isfinite(pre.transform(column.iloc[[0]], table)).all()  # one row alone

    state = json.loads(json.dumps(pre.state()))  # plain JSON, nothing else
    rebuilt = REGISTRY[kind].preprocessor.from_state(state)
    np.testing.assert_array_equal(rebuilt.transform(column, table), out)
    assert rebuilt.width == pre.width


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_encoder_shape_and_gradient(kind, sample):
    column = sample(kind)
    table = read_table(pd.DataFrame({"col": column}))
    pre = REGISTRY[kind].new_preprocessor(OPTIONS).fit(column, table)
    encoder = REGISTRY[kind].build_encoder([pre, pre], OPTIONS)  # two columns of the kind
    block = torch.from_numpy(np.concatenate([pre.transform(column, table)] * 2, axis=1))
    if block.dtype == torch.float32:
        block.requires_grad_(True)
    output = encoder(block)
    assert output.shape == (len(column), encoder.out_dim)
    output.square().sum().backward()
    parameters = list(encoder.parameters())
    if parameters:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in parameters)
    else:
        assert block.grad is not None and block.grad.abs().sum() > 0

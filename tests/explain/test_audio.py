"""Audio explained by integrated gradients over the log-mel spectrogram: a time x
frequency map per clip that adds up to the column's attribution, drawn as a PNG."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.explain import explain
from deepstrata.explain.output import write_folder
from tests.conftest import torch_threads

pytest.importorskip("captum", reason="the explain extra (captum) is not installed")


def test_audio_maps_add_up_to_the_clips_attribution(tmp_path):
    import soundfile

    rng = np.random.default_rng(0)
    paths = []
    for index in range(8):  # low or high tones
        tone = np.sin(2 * np.pi * (300 if index % 2 else 2000) * np.arange(4000) / 8000)
        path = tmp_path / f"clip{index}.wav"
        soundfile.write(path, (0.5 * tone + rng.normal(0, 0.05, 4000)).astype(np.float32), 8000)
        paths.append(str(path))
    frame = pd.DataFrame({"clip": paths, "y": ["high", "low"] * 4})
    with torch_threads(1):
        model = deepstrata.fit(
            frame, target="y", columns={"clip": "audio"}, ensemble=False, max_epochs=1,
            progress=False, seed=0, sample_rate=8000, audio_seconds=0.5, audio_mels=16,
            audio_width=4, audio_depth=1, decode_workers=0,
        )  # fmt: skip
        explanation = explain(
            model, frame.drop(columns="y").head(3), method="ig", steps=100, faithfulness=False
        )
    pre = model.members[0].preprocessors["clip"]
    maps = explanation.maps["clip"]
    assert maps.shape == (3, pre.n_mels, pre.frames)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), explanation.values[:, 0], rtol=1e-5)
    assert explanation.settings["map_kinds"] == {"clip": "audio"}
    folder = write_folder(explanation, tmp_path / "out", title="Which sounds?")
    assert len(list((folder / "maps" / "clip").glob("*.png"))) == 3
    assert "mel frequency" in (folder / "explain.html").read_text()

"""Audio explained by integrated gradients over the log-mel spectrogram: a time x
frequency map per clip that adds up to the column's attribution, drawn as a PNG."""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.explain import explain
from deepstrata.explain.output import write_folder
from tests.conftest import torch_threads

pytest.importorskip("captum", reason="the explain extra (captum) is not installed")


def test_audio_maps_add_up_to_the_clips_attribution(tones, tmp_path):
    model, frame = tones
    with torch_threads(1):
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

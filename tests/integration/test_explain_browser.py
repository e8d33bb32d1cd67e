"""explain.html in a real browser: Debian's chromium, headless, driven by Playwright, as
the report is (tests/integration/test_report_browser.py): no console error, no request
leaving the file, every image decoded. A screenshot is kept at
build/screenshots/explain.png for a person to look at."""

from __future__ import annotations

import shutil

import pytest

import deepstrata
from deepstrata.explain.output import write_folder
from tests.browser import CHROMIUM, SCREENSHOTS, visit
from tests.conftest import make_churn_frame, torch_threads

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"Debian's chromium is not installed ({CHROMIUM})"
    ),
]
pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("captum", reason="the explain extra is not installed")
SCREENSHOT = SCREENSHOTS / "explain.png"


def test_explain_page_loads_cleanly_in_chromium(fitted_churn_bundle, tmp_path):
    model = deepstrata.load(fitted_churn_bundle)
    with torch_threads(1):
        explanation = model.explain(
            make_churn_frame(seed=3).head(30), method="ig", compare=("exact",)
        )
    page_file = write_folder(explanation, tmp_path / "out", title="Why churned?") / "explain.html"
    seen = visit(page_file, tmp_path / "profile", screenshot=tmp_path / "explain.png")
    problems, requested, images = seen.problems, seen.requested, seen.images
    sections, text = seen.sections, seen.text
    assert problems == []
    assert [url for url in requested if not url.startswith(("file:", "data:"))] == []
    assert images and all(complete and width > 0 for _, complete, width in images), images
    assert sections == 4
    assert "What drives the predictions" in text and "rank agreement with exact" in text
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "explain.png", SCREENSHOT)


def test_audio_maps_and_token_words_load_cleanly_in_chromium(tmp_path):
    """A hand-made explanation (no fit): a time x frequency map (16 mels x 21 frames, not
    square) of an audio column and integrated gradients per token over a text column."""
    import numpy as np

    from deepstrata.explain.explanation import Explanation

    rng = np.random.default_rng(0)
    explanation = Explanation(
        method="ig",
        columns=["clip", "review"],
        values=rng.normal(size=(3, 2)),
        base_values=np.zeros(3),
        predictions=np.full(3, 0.8),
        rows=np.arange(3),
        classes=["high", "low", "high"],
        settings={
            "map_kinds": {"clip": "audio"},
            "map_notes": {"clip": "Integrated gradients per time and mel frequency of clip."},
            "words": "integrated gradients per token (padding-token baseline), pieces merged",
        },
        maps={"clip": rng.normal(size=(3, 16, 21))},
        pixels={"clip": rng.integers(0, 255, (3, 16, 21, 3)).astype(np.uint8)},
        words={
            "review": [
                {"words": ["an", "excellent", "film"], "values": [0.0, 0.7, 0.1], "base_value": 0.1}
            ]
            * 3
        },
    )
    folder = write_folder(explanation, tmp_path / "out", title="Which sounds?")
    assert len(list((folder / "maps" / "clip").glob("*.png"))) == 3
    seen = visit(folder / "explain.html", tmp_path / "profile")
    assert seen.problems == []
    assert [url for url in seen.requested if not url.startswith(("file:", "data:"))] == []
    assert seen.images and all(complete and width > 0 for _, complete, width in seen.images)
    assert "Where in clip" in seen.text and "Which words in review" in seen.text
    assert "per time and mel frequency" in seen.text

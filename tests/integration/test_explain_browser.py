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

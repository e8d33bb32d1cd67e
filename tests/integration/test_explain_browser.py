"""explain.html in a real browser: Debian's chromium, headless, driven by Playwright, as
the report is (tests/integration/test_report_browser.py): no console error, no request
leaving the file, every image decoded. A screenshot is kept at
build/screenshots/explain.png for a person to look at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import deepstrata
from deepstrata.explain.output import write_folder
from tests.conftest import make_churn_frame, torch_threads
from tests.integration.test_report_browser import CHROMIUM, FLAGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"Debian's chromium is not installed ({CHROMIUM})"
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("captum", reason="the explain extra is not installed")
SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "explain.png"


def test_explain_page_loads_cleanly_in_chromium(fitted_churn_bundle, tmp_path):
    model = deepstrata.load(fitted_churn_bundle)
    with torch_threads(1):
        explanation = model.explain(
            make_churn_frame(seed=3).head(30), method="ig", compare=("exact",)
        )
    page_file = write_folder(explanation, tmp_path / "out", title="Why churned?") / "explain.html"
    problems: list[str] = []
    requested: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 900},
            timeout=60_000,
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
            page.on("request", lambda request: requested.append(request.url))
            page.goto(page_file.as_uri(), wait_until="load", timeout=60_000)
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
            )
            sections = page.evaluate("Array.from(document.querySelectorAll('section')).length")
            text = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "explain.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert [url for url in requested if not url.startswith(("file:", "data:"))] == []
    assert images and all(complete and width > 0 for _, complete, width in images), images
    assert sections == 4
    assert "What drives the predictions" in text and "rank agreement with exact" in text
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "explain.png", SCREENSHOT)

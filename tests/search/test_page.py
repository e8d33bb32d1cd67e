"""search.html (the search's page) in headless chromium: it loads with no error and no outside request, and
its figures decode (screenshot: build/screenshots/search.png)."""

from __future__ import annotations

import shutil

import pytest

from tests.browser import CHROMIUM, SCREENSHOTS, visit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"Debian's chromium is not installed ({CHROMIUM}): `apt-get install chromium`",
    ),
]
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")


def test_search_page_loads_cleanly_in_chromium(searched, tmp_path):
    out, _ = searched
    seen = visit(out / "search.html", tmp_path / "profile", screenshot=tmp_path / "search.png")
    assert seen.problems == [] and seen.outside_requests() == []
    assert len(seen.images) >= 2  # trials over time, Pareto front (importances need more)
    assert all(complete and width > 0 for _, complete, width in seen.images), seen.images
    assert seen.title == "deepstrata search: y" and seen.sections >= 4
    assert "Pareto front" in seen.text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "search.png", SCREENSHOTS / "search.png")

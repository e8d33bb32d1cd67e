"""A forecaster's report.html in headless chromium (as the report's and explain's pages
are): no console error, no request leaving the file, every fan image decoded."""

from __future__ import annotations

import pytest

from tests.browser import CHROMIUM, visit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"Debian's chromium is not installed ({CHROMIUM})"
    ),
]
pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def test_forecast_report_loads_cleanly_in_chromium(forecaster, tmp_path):
    bundle = forecaster.save(tmp_path / "bundle")
    seen = visit(bundle / "report.html", tmp_path / "profile", screenshot=tmp_path / "forecast.png")
    assert seen.problems == [] and seen.outside_requests() == []
    assert len(seen.images) == 2 and all(
        complete and width > 0 for _, complete, width in seen.images
    )
    assert "seasonal naive" in seen.text and "MASE" in seen.text

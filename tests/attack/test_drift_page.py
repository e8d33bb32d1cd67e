"""drift.html: the report as a self-contained page, opened in headless chromium."""

from __future__ import annotations

import pytest

from deepstrata.attack.drift import check_drift
from deepstrata.attack.drift_page import drift_page
from tests.browser import CHROMIUM, visit
from tests.conftest import make_churn_frame


def _page(bundle) -> str:
    frame = make_churn_frame(seed=4)
    frame["monthly"] += 20
    frame.loc[:9, "plan"] = "<script>alert(1)</script>"  # a value never seen, to be escaped
    report = check_drift(bundle, frame).to_dict()
    return drift_page(report, title="Drift of new.csv against churn")


def test_the_page_shows_every_column_and_escapes_values(fitted_churn_bundle):
    page = _page(fitted_churn_bundle)
    for name in ("tenure", "monthly", "plan", "paperless", "signup", "prediction"):
        assert f"<h3>{name} " in page
    assert "<script>" not in page and "&lt;other&gt;" in page
    assert "http://" not in page and "https://" not in page
    assert "Drifted: <b>monthly" in page


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Debian's chromium is not installed ({CHROMIUM})"
)
def test_the_page_loads_cleanly_in_chromium(fitted_churn_bundle, tmp_path):
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    page = tmp_path / "drift.html"
    page.write_text(_page(fitted_churn_bundle), encoding="utf-8")
    seen = visit(page, tmp_path / "profile", screenshot=tmp_path / "drift.png")
    assert seen.problems == [] and seen.outside_requests() == []
    assert seen.title == "Drift of new.csv against churn"
    assert seen.sections == 3 and "monthly" in seen.text

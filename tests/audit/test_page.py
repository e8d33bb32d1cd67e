"""audit.html: every name from the data escaped, the four-fifths rule flagged when it
fails, too-small groups listed; and the page loads cleanly in headless chromium."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepstrata.audit.fairness import Outcomes, audit_fairness
from deepstrata.audit.groups import groupings
from deepstrata.audit.page import render_audit
from deepstrata.audit.run import write_audit
from deepstrata.data.sources import read_table


def result_for(names: list[str], rows: int = 600) -> dict:
    rng = np.random.default_rng(0)
    group = rng.choice(names, rows, p=[0.49, 0.49, 0.02])
    truth = rng.integers(0, 2, rows)
    positive = np.clip(rng.random(rows) * 0.6 + (group == names[0]) * 0.4, 0, 1)
    said = (positive > 0.5).astype(int)
    outcomes = Outcomes("binary", truth, said, np.column_stack([1 - positive, positive]))
    split = groupings(read_table(pd.DataFrame({"who": group})), ["who"], min_group_size=30)
    result = audit_fairness(outcomes, split, resamples=50)
    return {
        "bundle": "runs/x",
        "data": "x.csv",
        "target": "<b>y</b>",
        "task": "binary",
        "kind": "binary",
        "sensitive": ["who"],
        "min_group_size": 30,
        "rows": rows,
        "positive": "yes",
        **result,
    }


def test_names_are_escaped_and_failures_flagged():
    page = render_audit(result_for(["<script>alert(1)</script>", "plain", "tiny & rare"]))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;y&lt;/b&gt;" in page
    assert 'class="bad"' in page and "FAILS" in page  # 0.4 more selected in one group
    assert "too small to score: tiny &amp; rare" in page
    assert page.count("data:image/png;base64,") == 1


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Debian's chromium is not installed ({CHROMIUM})"
)
def test_audit_page_loads_cleanly_in_chromium(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the dev extra brings playwright")
    from tests.integration.test_report_browser import FLAGS

    out = write_audit(result_for(["a", "b", "c"]), tmp_path / "audit")
    assert json.loads((out / "audit.json").read_text())["kind"] == "binary"
    problems, requested = [], []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            timeout=60_000,
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: requested.append(request.url))
            page.goto((out / "audit.html").as_uri(), wait_until="load", timeout=60_000)
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.complete, i.naturalWidth])"
            )
            sections = page.evaluate("document.querySelectorAll('section').length")
            title = page.title()
        finally:
            browser.close()
    assert problems == []
    assert [u for u in requested if not u.startswith(("file:", "data:"))] == []
    assert images and all(complete and width > 0 for complete, width in images)
    assert sections == 2 and title == "deepstrata fairness audit: <b>y</b>"

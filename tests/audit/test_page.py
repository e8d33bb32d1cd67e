"""audit.html: every name from the data escaped, the four-fifths rule flagged when it
fails, too-small groups listed; and the page loads cleanly in headless chromium."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepstrata.audit.fairness import Outcomes, audit_fairness
from deepstrata.audit.groups import groupings
from deepstrata.audit.page import render_audit
from deepstrata.audit.run import write_audit
from deepstrata.data.sources import read_table
from tests.browser import CHROMIUM, visit


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


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Debian's chromium is not installed ({CHROMIUM})"
)
def test_audit_page_loads_cleanly_in_chromium(tmp_path):
    pytest.importorskip("playwright.sync_api", reason="the dev extra brings playwright")

    out = write_audit(result_for(["a", "b", "c"]), tmp_path / "audit")
    assert json.loads((out / "audit.json").read_text())["kind"] == "binary"
    seen = visit(out / "audit.html", tmp_path / "profile")
    problems, requested, title, sections = seen.problems, seen.requested, seen.title, seen.sections
    images = [(complete, width) for _, complete, width in seen.images]
    assert problems == []
    assert [u for u in requested if not u.startswith(("file:", "data:"))] == []
    assert images and all(complete and width > 0 for complete, width in images)
    assert sections == 2 and title == "deepstrata fairness audit: <b>y</b>"

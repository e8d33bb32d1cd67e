"""report.html in a real browser: Debian's chromium, headless, driven by Playwright.

The page of a real tiny fit must load with no console error, no failed request and no
request leaving the file, and every image must decode. A screenshot is kept at
build/screenshots/report.png (and in the test's tmp folder) for a person to look at.
`make test` installs chromium when it can; without it this test skips, saying why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import deepstrata
from deepstrata.bundle.manifest import write_manifest
from deepstrata.report.render import write_report
from tests.browser import CHROMIUM, SCREENSHOTS, visit
from tests.conftest import FAST_FIT, make_churn_frame, torch_threads
from tests.report.test_render import data_summary, predictions_csv

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"Debian's chromium is not installed ({CHROMIUM}): `apt-get install chromium`, "
        "or run `make test` as root, which installs it",
    ),
]
pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (the dev extra brings it)"
)
SCREENSHOT = SCREENSHOTS / "report.png"


@pytest.fixture
def bundle_with_report(tmp_path) -> Path:
    """A real fit's bundle with the files fit adds, and its report written by write_report."""
    frame = make_churn_frame()
    with torch_threads(1):
        model = deepstrata.fit(frame, target="churned", **FAST_FIT)
        folder = model.save(tmp_path / "churn")
        rows = frame.sample(40, random_state=0).index
        extra = {
            "validation_predictions.csv": predictions_csv(model, frame, rows),
            "data_summary.json": data_summary(model, frame, "churn.csv", len(rows)),
        }
    for name, content in extra.items():
        (folder / name).write_bytes(content)
    versions = json.loads((folder / "manifest.json").read_text())["versions"]
    write_manifest(folder, versions=versions)  # as fit will, once it writes these files
    write_report(folder)
    deepstrata.load(folder)
    return folder


def test_report_loads_cleanly_in_chromium(bundle_with_report, tmp_path):
    report = bundle_with_report / "report.html"
    seen = visit(report, tmp_path / "profile", screenshot=tmp_path / "report.png")
    problems, images, title, sections = seen.problems, seen.images, seen.title, seen.sections
    requested = seen.requested
    assert problems == []
    assert [url for url in requested if not url.startswith(("file:", "data:"))] == []
    assert len(images) >= 5, images  # confusion matrix, ROC/PR, reliability, curves, sweep
    broken = [alt for alt, complete, width in images if not complete or width == 0]
    assert broken == [], f"images that did not load: {broken}"
    assert title == "deepstrata report: churned from churn.csv"
    assert sections >= 7
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "report.png", SCREENSHOT)
    assert (tmp_path / "report.png").stat().st_size > 10_000

"""audit_data.html: self-contained, names escaped, thumbnails of an image folder's rows
as data: URIs; loaded in headless Chromium."""

from __future__ import annotations

import pytest

from tests.browser import CHROMIUM, visit


def test_text_rows_show_as_escaped_snippets():
    from deepstrata.audit.data_page import shown

    assert str(shown(3, {3: "<script>x</script>"})) == "3: <q>&lt;script&gt;x&lt;/script&gt;</q>"
    assert str(shown(4, {})) == "4"


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Debian's chromium is not installed ({CHROMIUM})"
)
def test_the_data_audit_page_loads_cleanly_with_thumbnails(tmp_path):
    pytest.importorskip("playwright.sync_api", reason="the dev extra brings playwright")
    from deepstrata.audit.data_page import render_data_page, thumbnails
    from deepstrata.data.sources import read_table
    from tests.audit.test_backdoor import digits_folder

    folder, _ = digits_folder(tmp_path / "digits", count=40, share=0.2)
    table = read_table(folder)
    result = {
        "data": str(folder),
        "rows": 40,
        "target": "<b>label</b>",
        "inputs": ["image"],
        "duplicates": {
            "exact": {"rows": 1, "groups_found": 1, "conflicting_groups": 0, "groups": []},
            "near": {"pairs_found": 0, "rows": 0, "pairs": []},
            "near_embeddings": {
                "on": "pretrained embeddings",
                "pairs_found": 1,
                "rows": 1,
                "pairs": [{"rows": [1, 2], "distance": 0.01, "labels": ["0", "0"]}],
            },
        },
        "label_issues": {
            "folds": 3,
            "rows_checked": 40,
            "found": 1,
            "share": 0.025,
            "worst": [{"row": 3, "given": "0", "suggested": "1", "quality": 0.1}],
        },
        "leakage": {
            "test_rows": 5,
            "exact": {"rows": 0, "test_rows": []},
            "near": {"rows": 0, "pairs": []},
        },
        "backdoor": {
            "method": "activation clustering",
            "classes": [
                {"class": "7", "rows": 30, "checked": True, "small_share": 0.1}
                | {"elsewhere": 1.0, "moved_to": "1", "poisoned": True}
            ],
            "flagged_classes": ["7"],
            "found": 2,
            "rows": [4, 5],
        },
    }
    page = tmp_path / "audit_data.html"
    page.write_text(render_data_page(result, thumbnails(table, "image", [1, 2, 3, 4, 5])))
    seen = visit(page, tmp_path / "profile")
    assert seen.problems == [] and seen.outside_requests() == []
    assert len(seen.images) == 5 and all(done and width > 0 for _, done, width in seen.images)
    assert seen.sections == 4 and seen.title == "deepstrata data audit: <b>label</b>"
    assert "POISONED?" in seen.text

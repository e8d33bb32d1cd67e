"""attack.html from a result dict: self-contained, the table and the examples side by side."""

from __future__ import annotations

import json

from deepstrata.attack.page import render, write_folder

RESULT = {
    "attack": "pgd",
    "norm": "linf",
    "steps": 10,
    "step_size": "0.25 x epsilon",
    "random_start": True,
    "rows": 4,
    "units": {"image": "pixels in [0, 1]"},
    "clean_accuracy": 1.0,
    "epsilons": [
        {
            "epsilon": 8 / 255,
            "robust_accuracy": 0.25,
            "success_rate": 0.75,
            "seconds": 1.0,
            "seconds_per_1000_rows": 250.0,
        },
    ],
    "examples": [
        {
            "row": 2,
            "epsilon": 8 / 255,
            "label": "cat",
            "clean_prediction": "cat",
            "adversarial_prediction": "dog",
            "image": {"size": 2, "pixels": [10] * 12},
            "adversarial_image": {"size": 2, "pixels": [18] * 12},
        }
    ],
}


def test_the_page_holds_the_table_and_three_pictures_per_example():
    page = render(RESULT, title="under attack")
    assert "Robust accuracy per epsilon" in page and "0.25" in page and "8/255" in page
    assert page.count('src="data:image/png;base64,') == 1 + 3  # the plot, then 3 per example
    assert "adversarial dog" in page and "pixels in [0, 1]" in page


def test_write_folder_replaces_atomically(tmp_path):
    folder = write_folder(RESULT, tmp_path / "out", title="t")
    assert json.loads((folder / "attack.json").read_text())["rows"] == 4
    write_folder({**RESULT, "rows": 5}, folder, title="t")
    assert json.loads((folder / "attack.json").read_text())["rows"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

"""``deepstrata attack``: the table, attack.json and attack.html; refusals write nothing.
The page is opened in headless chromium (tests/browser.py): no console error, no request
leaving the file, every image decoded."""

from __future__ import annotations

import json

import pytest

from tests.browser import CHROMIUM, visit
from tests.conftest import make_churn_frame, torch_threads


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "test.csv"
    make_churn_frame(rows=40, seed=7).to_csv(path, index=False)
    return path


def test_attack_writes_json_and_a_self_contained_page(cli, churn_bundle, data, tmp_path):
    out = tmp_path / "attacked"
    with torch_threads(1):
        result = cli(
            "attack", churn_bundle, data, "--epsilon", "0.1,0.5", "--steps", "3", "-o", out, "-q"
        )
    assert result.code == 0, result.err
    assert "robust accuracy" in result.out and "clean accuracy" in result.out
    report = json.loads((out / "attack.json").read_text())
    assert [e["epsilon"] for e in report["epsilons"]] == [0.1, 0.5]
    page = (out / "attack.html").read_text()
    assert "Robust accuracy per epsilon" in page and "http" not in page.replace("http-equiv", "")
    if CHROMIUM.exists():
        pytest.importorskip("playwright.sync_api")
        seen = visit(out / "attack.html", tmp_path / "profile")
        assert seen.problems == [] and seen.outside_requests() == []
        assert seen.images and all(complete and width > 0 for _, complete, width in seen.images)
        assert "attack success rate" in seen.text


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--epsilon", "8"), "--epsilon"),
        (("--attack", "nope"), "--attack"),
        (("--steps", "0"), "--steps"),
    ],
)
def test_refusals_name_the_flag_and_write_nothing(cli, churn_bundle, data, tmp_path, args, flag):
    out = tmp_path / "attacked"
    result = cli("attack", churn_bundle, data, "-o", out, *args)
    assert flag in result.error_line()
    assert not out.exists()


def test_an_existing_folder_needs_overwrite(cli, churn_bundle, data, tmp_path):
    out = tmp_path / "attacked"
    out.mkdir()
    assert "--overwrite" in cli("attack", churn_bundle, data, "-o", out).error_line()

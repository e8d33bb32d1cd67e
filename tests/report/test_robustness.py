"""The report's adversarial-training section, from a fitted bundle's files with an
``adversarial`` record added to metrics.json."""

from __future__ import annotations

import json

from deepstrata.report.inputs import parse
from deepstrata.report.render import render_report
from deepstrata.report.robustness import robustness_section

RECORD = {
    "method": "pgd",
    "epsilon": 4 / 255,
    "steps": 7,
    "step_size": "0.3571 x epsilon",
    "random_start": True,
    "seconds_perturbing": 70.0,
    "seconds_training": 80.0,
    "time_factor": 8.0,
    "validation_clean_accuracy": 0.91,
    "validation_robust_accuracy": 0.62,
    "robust_attack": "pgd-10, L-inf, random start, at the training epsilon",
}


def _files(bundle, record=None) -> dict:
    files = {p.name: p.read_bytes() for p in bundle.iterdir() if p.is_file()}
    if record is not None:
        metrics = json.loads(files["metrics.json"])
        files["metrics.json"] = json.dumps({**metrics, "adversarial": record}).encode()
    return files


def test_the_section_shows_cost_and_robustness(fitted_churn_bundle):
    page = render_report(_files(fitted_churn_bundle, RECORD))
    assert "Adversarial training" in page
    assert "x plain training" in page and "0.62" in page and "4/255" in page


def test_no_section_without_adversarial_training(fitted_churn_bundle):
    assert robustness_section(parse(_files(fitted_churn_bundle))) is None

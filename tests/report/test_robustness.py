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


TWIN = {
    "trained": "the undefended twin: same rows, split, seed and settings, no perturbation",
    "validation_clean_accuracy": 0.95,
    "validation_robust_accuracy": 0.03,
    "epoch_seconds": 1.25,
    "epochs": 20,
}


def test_the_section_sets_the_undefended_twin_beside_the_defended_network(fitted_churn_bundle):
    record = {
        **RECORD, "epoch_seconds": 2.5, "epochs": 20, "undefended": TWIN,
        "clean_accuracy_cost": 0.04, "robust_accuracy_gain": 0.59, "time_factor": 2.0,
        "time_factor_basis": "measured: median epoch seconds against the twin's",
        "time_factor_estimated": 8.0,
    }  # fmt: skip
    page = render_report(_files(fitted_churn_bundle, record))
    assert "undefended" in page and "adversarially trained" in page
    assert "Clean-accuracy cost 0.0400" in page and "gain 0.5900" in page
    assert "0.9500" in page and "0.0300" in page and "measured: median epoch" in page
    assert "not measured" not in page and "estimated within the run" in page


def test_the_section_says_when_the_cost_was_not_measured(fitted_churn_bundle):
    record = {**RECORD, "cost_not_measured": "--no-adversarial-reference: no twin was trained"}
    page = render_report(_files(fitted_churn_bundle, record))
    assert "cost was not measured: --no-adversarial-reference" in page
    assert "0.6200" in page and "adversarially trained" in page

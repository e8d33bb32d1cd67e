"""The model card: filled from a real bundle, the owner's card.yaml and an audit.json;
printed by ``deepstrata card``, and carried by every report."""

from __future__ import annotations

import json

import pytest

from deepstrata.bundle import read_bundle
from deepstrata.report.card import UNSTATED, model_card


def test_card_of_a_bundle_says_what_it_knows_and_what_it_does_not(fitted_churn_bundle):
    config, _, metrics = read_bundle(fitted_churn_bundle)
    card = model_card(config, metrics)
    for heading in (
        "## Model details",
        "## Intended use",
        "## Data",
        "## Evaluation",
        "## Metrics by group",
        "## Limitations",
        "## Ethical considerations",
    ):
        assert heading in card
    assert "`tenure` (number)" in card and "Classes: `no`, `yes`" in card
    accuracy = metrics["validation"]["accuracy"]
    assert f"| accuracy | {accuracy:.4f} |" in card
    assert f"Training rows: {metrics['rows']['train']}" in card
    assert f"Trained on {metrics['rows']['train']} rows" in card  # a small-data limitation
    assert UNSTATED.format(key="intended_use") in card
    assert "No groups known" in card


def test_the_command_with_the_owners_card_and_an_audit(cli, fitted_churn_bundle, tmp_path):
    (tmp_path / "card.yaml").write_text(
        "name: Churn early warning\nowner: Retention team\n"
        "intended_use: Rank accounts for a courtesy call.\n"
        "limitations: [Trained on one year of accounts]\n"
    )
    audit = {
        "data": "test.csv",
        "rows": 100,
        "groupings": [
            {
                "name": "plan",
                "groups": [
                    {"group": "pro", "count": 60, "metrics": {"accuracy": {"value": 0.9}}},
                    {"group": "basic", "count": 40, "metrics": {"accuracy": {"value": 0.8}}},
                ],
                "too_small": [{"group": "max", "count": 3}],
                "disparities": {"accuracy_difference": {"value": 0.1}},
            }
        ],
    }
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    out = tmp_path / "CARD.md"
    result = cli(
        "card",
        fitted_churn_bundle,
        "--card",
        tmp_path / "card.yaml",
        "--audit",
        tmp_path / "audit.json",
        "-o",
        out,
    )
    assert result.code == 0, result.err
    card = out.read_text()
    assert card.startswith("# Model card: Churn early warning")
    assert "- Owner: Retention team" in card
    assert "Rank accounts for a courtesy call." in card
    assert "- Trained on one year of accounts" in card
    assert "| pro | 60 | 0.9000 |" in card and "Too small to score: max (3)." in card
    assert "- accuracy difference: 0.1000" in card
    printed = cli("card", fitted_churn_bundle)
    assert printed.code == 0 and printed.out.startswith("# Model card: predict `churned`")


@pytest.mark.parametrize(
    ("content", "message"),
    [("intended: x\n", "--card: unknown key(s) intended"), ("- a\n- b\n", "must hold a mapping")],
)
def test_a_bad_card_file_is_named(cli, fitted_churn_bundle, tmp_path, content, message):
    (tmp_path / "card.yaml").write_text(content)
    result = cli("card", fitted_churn_bundle, "--card", tmp_path / "card.yaml")
    assert message in result.error_line()


def test_every_report_carries_the_card(fitted_churn_bundle):
    report = (fitted_churn_bundle / "report.html").read_text()
    assert '<section id="card"><h2>Model card</h2>' in report
    assert "# Model card: predict `churned`" in report

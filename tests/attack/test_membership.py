"""Membership inference: the scores, both attacks on a model that memorises and on one
that cannot, the command, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepstrata.attack.membership import attack_scores, membership_risk
from deepstrata.errors import ConfigError, DataError
from tests.conftest import make_churn_frame, torch_threads


def test_scores_read_the_tpr_at_one_percent_fpr():
    rng = np.random.default_rng(0)
    others = rng.normal(size=1000)
    # 5 members far above every non-member, the rest like them: AUC near 0.5, TPR 5 %
    members = np.r_[np.full(5, 10.0), rng.normal(size=95)]
    scores = attack_scores(members, others)
    assert scores["tpr_at_1pct_fpr"] >= 0.05
    assert 0.45 < scores["auc"] < 0.6
    assert attack_scores(np.array([1.0]), np.array([1.0]))["auc"] == 0.5


def test_loss_attack_finds_a_memorising_model_and_not_a_simple_one(
    memorising_model, simple_model, member_frame, outside_frame
):
    with torch_threads(1):
        memorised = membership_risk(
            memorising_model, member_frame, outside_frame, attacks=("loss",)
        )
        simple = membership_risk(simple_model, member_frame, outside_frame, attacks=("loss",))
    assert memorised["members"].startswith("the fit's training rows")
    loss, baseline = memorised["attacks"]["loss"], simple["attacks"]["loss"]
    assert loss["auc"] > 0.75, loss
    assert abs(baseline["auc"] - 0.5) < 0.1, baseline
    assert set(loss["per_class"]) == {"no", "yes"}
    gap = memorised["generalisation"]
    assert gap["members"]["accuracy"] > gap["non_members"]["accuracy"] + 0.15


def test_shadow_attack_trains_shadows_as_the_bundle_was(
    memorising_model, member_frame, outside_frame
):
    with torch_threads(1):
        result = membership_risk(
            memorising_model, member_frame, outside_frame, attacks=("shadow",), shadows=1
        )
    shadow = result["attacks"]["shadow"]
    assert shadow["shadows"] == 1 and shadow["attacker_rows"] == 200
    assert shadow["auc"] > 0.6, shadow  # the shadows memorise too, and so reveal members
    assert set(shadow["per_class"]) == {"no", "yes"}


def test_refusals_before_any_work(memorising_model, member_frame, outside_frame):
    with pytest.raises(ConfigError, match="--attacks"):
        membership_risk(memorising_model, member_frame, outside_frame, attacks=("guess",))
    with pytest.raises(ConfigError, match="--shadows"):
        membership_risk(memorising_model, member_frame, outside_frame, shadows=0)
    with pytest.raises(DataError, match="target column 'y'"):
        unlabelled = outside_frame.drop(columns="y")
        membership_risk(memorising_model, member_frame, unlabelled, attacks=("loss",))


def test_privacy_command_prints_and_writes(cli, fitted_churn_bundle, tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    make_churn_frame().to_csv(train, index=False)  # the rows the session's bundle was fitted on
    make_churn_frame(seed=1).to_csv(test, index=False)
    out = tmp_path / "privacy.json"
    result = cli("privacy", fitted_churn_bundle, train, test, "--attacks", "loss", "--out", out)
    assert result.code == 0, result.err
    assert "TPR@1%FPR" in result.out and "loss" in result.out
    written = json.loads(out.read_text())
    assert written["members"].startswith("the fit's training rows")
    assert 0.0 <= written["attacks"]["loss"]["tpr_at_1pct_fpr"] <= 1.0
    refused = cli("privacy", fitted_churn_bundle, train, test, "--shadows", "0",
                  "--out", tmp_path / "no.json")  # fmt: skip
    assert "--shadows" in refused.error_line()
    assert not (tmp_path / "no.json").exists()

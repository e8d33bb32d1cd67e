"""``deepstrata drift``: the table, ``--json``, ``-o``, ``--check``'s exit status, and its
refusals (missing columns, an old bundle, bad flags) before any work, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

from deepstrata.cli.drift import DRIFT_FOUND
from tests.conftest import make_churn_frame

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy"


def test_drift_prints_a_table_and_flags_a_moved_column(cli, fitted_churn_bundle, tmp_path):
    calm, moved = tmp_path / "calm.csv", tmp_path / "moved.csv"
    frame = make_churn_frame(seed=3)
    frame.to_csv(calm, index=False)
    frame.assign(monthly=frame["monthly"] + 20).to_csv(moved, index=False)
    result = cli("drift", fitted_churn_bundle, calm, "--check")
    assert result.code == 0, result.err
    assert "drifted: nothing" in result.out and "tenure" in result.out
    out = tmp_path / "drift.json"
    result = cli("drift", fitted_churn_bundle, moved, "--check", "--json", "-o", out)
    assert result.code == DRIFT_FOUND
    payload = json.loads(result.out)
    assert payload["drift"] and payload["drifted"] == ["monthly"]
    assert json.loads(out.read_text()) == payload
    again = cli("drift", fitted_churn_bundle, moved, "-o", out)  # no --overwrite
    assert "--output" in again.error_line()


def test_drift_refuses_bad_input_before_any_work(cli, fitted_churn_bundle, tmp_path):
    data, out = tmp_path / "new.csv", tmp_path / "drift.json"
    make_churn_frame(rows=30).drop(columns=["tenure"]).to_csv(data, index=False)
    line = cli("drift", fitted_churn_bundle, data, "-o", out).error_line()
    assert "new.csv" in line and "'tenure'" in line and "missing" in line
    line = cli("drift", fitted_churn_bundle, data, "--alpha", "0").error_line()
    assert "--alpha" in line
    old = cli("drift", LEGACY / "bundles" / "binary", LEGACY / "inputs" / "binary.csv")
    assert "refit it with this version" in old.error_line()
    assert not out.exists()

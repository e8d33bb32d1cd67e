"""An anomaly detector's bundle: written by the atomic writer (manifest, no pickle), read
back to the same scores, refused when changed or when its files do not describe a detector."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepstrata.anomaly.bundle import (
    SCORES,
    is_anomaly_bundle,
    load_detector,
    save_detector,
    score_rows,
)
from deepstrata.anomaly.run import check_request, find_anomalies
from deepstrata.errors import BundleError, DataError
from tests.conftest import make_churn_frame

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    frame = make_churn_frame(rows=80).drop(columns=["churned"])
    found = find_anomalies(check_request(frame, ignore=["customer_id"]), max_epochs=2)
    path = tmp_path_factory.mktemp("anomaly") / "detector"
    save_detector(path, found.detector, metrics=found.metrics, files={SCORES: b"row,score\n"})
    return path, frame, found


def test_the_bundle_holds_json_and_safetensors_under_a_manifest(saved):
    path, _, found = saved
    names = {p.name for p in path.iterdir()}
    assert names == {"config.json", "weights.safetensors", "metrics.json", SCORES, "manifest.json"}
    config = json.loads((path / "config.json").read_text())
    assert config["kind"] == "anomaly" and config["threshold"] == found.detector.threshold
    assert set(config["preprocessors"]) == {"tenure", "monthly", "plan", "paperless", "signup"}
    manifest = json.loads((path / "manifest.json").read_text())
    assert SCORES in json.dumps(manifest)
    assert is_anomaly_bundle(path) and not is_anomaly_bundle(path / "nothing")


def test_a_loaded_detector_scores_rows_as_the_fitted_one_did(saved):
    path, frame, found = saved
    detector, metrics = load_detector(path)
    assert metrics["rows"] == 80 and detector.threshold == found.detector.threshold
    scored = score_rows(path, frame, keep=["customer_id"])
    assert list(scored.columns) == ["customer_id", "row", "score", "flagged"]
    np.testing.assert_allclose(scored["score"], found.scores, rtol=1e-5)
    np.testing.assert_array_equal(scored["flagged"], found.flagged)


def test_missing_columns_at_scoring_time_are_named(saved):
    path, frame, _ = saved
    with pytest.raises(DataError, match="'plan'"):
        score_rows(path, frame.drop(columns=["plan"]))


def test_a_changed_or_foreign_bundle_is_refused(saved, tmp_path):
    import shutil

    import torch

    from deepstrata.bundle import write_bundle

    path, _, _ = saved
    copy = shutil.copytree(path, tmp_path / "changed")
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("0", "1"))
    with pytest.raises(BundleError, match=r"changed|sha256|hash"):
        load_detector(copy)
    foreign = write_bundle(  # a fitted model's kind of bundle, not a detector
        tmp_path / "model",
        config={"members": []},
        weights={"w": torch.ones(1)},
        metrics={},
        versions={},
    )
    assert not is_anomaly_bundle(foreign)
    with pytest.raises(BundleError, match="anomaly detector"):
        load_detector(foreign)

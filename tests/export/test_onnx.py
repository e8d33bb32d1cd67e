"""ONNX export: checked against PyTorch, written beside the bundle, and served."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import deepstrata
from deepstrata.bundle import verify_manifest
from deepstrata.data.sources import read_table
from deepstrata.errors import BundleError, ConfigError
from deepstrata.export import onnx as serve_onnx
from deepstrata.export.onnx import (
    ATOL,
    EXPORT_FILE,
    ExportError,
    default_export_path,
    export_onnx,
    network_members,
    with_onnx_networks,
)
from deepstrata.preprocess.frame import transform_frame
from deepstrata.serve.predictor import Predictor
from tests.conftest import make_churn_frame, torch_threads
from tests.serve.conftest import records_of, serving

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(fitted_churn_bundle, tmp_path_factory):
    """(bundle, export directory, export.json) of the session's churn bundle."""
    target = tmp_path_factory.mktemp("onnx") / "churn-onnx"
    with torch_threads(1):
        record = export_onnx(fitted_churn_bundle, target)
    return fitted_churn_bundle, target, record


def test_export_writes_checked_networks_beside_the_untouched_bundle(exported):
    bundle, target, record = exported
    assert sorted(p.name for p in target.iterdir()) == [EXPORT_FILE, "member-0.onnx"]
    assert json.loads((target / EXPORT_FILE).read_text()) == record
    [entry] = record["members"]
    assert entry["inputs"] == ["number", "boolean", "datetime", "category"]
    assert 0 <= entry["max_abs_error"] <= ATOL
    assert record["check"] == {"rows": 256, "atol": ATOL, "rtol": 1e-4}
    verify_manifest(bundle)  # nothing was added to the bundle
    assert default_export_path(bundle) == bundle.with_name(bundle.name + "-onnx")


def test_onnx_runtime_matches_pytorch_for_any_batch_size(exported, churn_model):
    bundle, target, _ = exported
    onnx_model = with_onnx_networks(churn_model, bundle, target)
    rows = make_churn_frame(rows=50, seed=11)
    table = read_table(rows)
    member = churn_model.members[0]
    inputs = transform_frame(member.preprocessors, table.frame, table)
    for size in (1, 2, 50):  # the batch axis is dynamic
        part = {kind: block[:size] for kind, block in inputs.items()}
        with torch.no_grad():
            expected = member.network(part).numpy()
        got = onnx_model.members[0].network(part).numpy()
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=1e-4)
    np.testing.assert_allclose(
        onnx_model.predict_proba(rows), churn_model.predict_proba(rows), atol=1e-5
    )
    assert churn_model.members[0].network is member.network  # the original is untouched


def test_serving_the_onnx_backend_answers_as_pytorch(exported, churn_model, churn_rows):
    bundle, target, _ = exported
    body = {"records": records_of(churn_rows)}
    with serving(churn_model) as client:
        expected = client.post("/predict", json=body).json()
    onnx_model = with_onnx_networks(churn_model, bundle, target)
    app_predictor = Predictor(onnx_model, backend="onnx")
    from fastapi.testclient import TestClient

    from deepstrata.serve.app import create_app
    from tests.serve.conftest import wait_ready

    with TestClient(create_app(app_predictor)) as client:
        wait_ready(client.get)
        assert client.get("/readyz").json()["backend"] == "onnx"
        got = client.post("/predict", json=body).json()
    assert got["predictions"] == expected["predictions"]
    for mine, reference in zip(got["probabilities"], expected["probabilities"]):
        assert mine == pytest.approx(reference, abs=1e-5)


def test_a_changed_or_foreign_export_is_refused(exported, churn_model, tmp_path):
    bundle, target, record = exported
    changed = shutil.copytree(target, tmp_path / "changed")
    with open(changed / "member-0.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="has changed since it was exported"):
        with_onnx_networks(churn_model, bundle, changed)
    foreign = shutil.copytree(target, tmp_path / "foreign")
    (foreign / EXPORT_FILE).write_text(json.dumps({**record, "bundle_weights_sha256": "0" * 64}))
    with pytest.raises(BundleError, match="another bundle"):
        with_onnx_networks(churn_model, bundle, foreign)
    with pytest.raises(ConfigError, match="deepstrata export") as caught:
        with_onnx_networks(churn_model, bundle, tmp_path / "nowhere")
    assert caught.value.option == "--onnx"


def test_outputs_beyond_the_tolerance_fail_the_export_and_write_nothing(
    fitted_churn_bundle, tmp_path, monkeypatch
):
    real_session = serve_onnx._session

    class Drifting:
        def __init__(self, session):
            self.session = session

        def run(self, names, feeds):
            return [out + 1e-3 for out in self.session.run(names, feeds)]

    monkeypatch.setattr(serve_onnx, "_session", lambda *a: Drifting(real_session(*a)))
    target = tmp_path / "drifted"
    with pytest.raises(ExportError, match=r"differ from PyTorch's by up to 0\.001"):
        export_onnx(fitted_churn_bundle, target)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no staging directory left behind


def test_an_existing_export_or_a_path_inside_the_bundle_is_refused(exported, tmp_path):
    bundle, target, _ = exported
    with pytest.raises(ConfigError, match="already exists") as caught:
        export_onnx(bundle, target)
    assert caught.value.option == "--output"
    with pytest.raises(ConfigError, match="beside the bundle"):
        export_onnx(bundle, bundle / "onnx")


def test_an_output_holding_the_bundle_is_refused_and_nothing_is_deleted(churn_bundle):
    """``export runs/churn --output runs --overwrite`` once wiped ``runs/``."""
    beside = churn_bundle.parent / "other" / "notes.txt"
    beside.parent.mkdir()
    beside.write_text("keep me")
    for output in (churn_bundle.parent, churn_bundle.parent.parent):
        with pytest.raises(ConfigError, match="holds the bundle") as caught:
            export_onnx(churn_bundle, output, overwrite=True)
        assert caught.value.option == "--output"
    assert beside.read_text() == "keep me"
    verify_manifest(churn_bundle)


def test_overwrite_replaces_only_an_earlier_export(churn_bundle, tmp_path):
    folder = tmp_path / "not-an-export"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("keep me too")
    for output in (folder, a_file):
        with pytest.raises(ConfigError, match="is not an ONNX export") as caught:
            export_onnx(churn_bundle, output, overwrite=True)
        assert str(output) in str(caught.value) and caught.value.option == "--output"
    assert (folder / "notes.txt").read_text() == "keep me"
    assert a_file.read_text() == "keep me too"


def test_a_failed_overwrite_leaves_the_earlier_export_and_a_good_one_replaces_it(
    exported, tmp_path, monkeypatch
):
    bundle, target, _ = exported
    earlier = shutil.copytree(target, tmp_path / "churn-onnx")
    (earlier / "stale.txt").write_text("from an earlier export")
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    real_session = serve_onnx._session

    class Drifting:
        def __init__(self, session):
            self.session = session

        def run(self, names, feeds):
            return [out + 1e-3 for out in self.session.run(names, feeds)]

    with monkeypatch.context() as patched:
        patched.setattr(serve_onnx, "_session", lambda *a: Drifting(real_session(*a)))
        with pytest.raises(ExportError):
            export_onnx(bundle, earlier, overwrite=True, rows=16)
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before
    record = export_onnx(bundle, earlier, overwrite=True, rows=16)
    assert sorted(p.name for p in earlier.iterdir()) == [EXPORT_FILE, "member-0.onnx"]
    assert json.loads((earlier / EXPORT_FILE).read_text()) == record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["churn-onnx"]  # nothing set aside


def test_a_model_without_a_network_is_refused_naming_why():
    classical = SimpleNamespace(head=SimpleNamespace(name="logreg"))
    with pytest.raises(ConfigError, match="--strategy features") as caught:
        network_members(SimpleNamespace(members=[classical]))
    assert caught.value.option == "--format"
    assert "logreg" in str(caught.value)


def test_each_network_of_a_k_fold_ensemble_is_exported(tmp_path):
    frame = make_churn_frame(rows=120, seed=5)
    model = deepstrata.fit(
        frame, target="churned", folds=2, cv_model="ensemble", max_epochs=2, progress=False
    )
    bundle = model.save(tmp_path / "ensemble")
    record = export_onnx(bundle)
    assert [entry["member"] for entry in record["members"]] == [0, 1]
    onnx_model = with_onnx_networks(deepstrata.load(bundle), bundle)
    rows = make_churn_frame(rows=30, seed=6)
    np.testing.assert_allclose(onnx_model.predict_proba(rows), model.predict_proba(rows), atol=1e-5)


def test_a_network_and_classical_ensemble_exports_its_network_only(tmp_path):
    frame = make_churn_frame(rows=300, seed=3)
    model = deepstrata.fit(
        frame.iloc[:240], target="churned", ensemble=True, max_epochs=5, progress=False
    )
    assert len(model.members) == 2, "on this table (seed 3) fit keeps the mix"
    bundle = model.save(tmp_path / "mixed")
    record = export_onnx(bundle)
    assert [entry["member"] for entry in record["members"]] == [0]  # the classical one stays
    onnx_model = with_onnx_networks(deepstrata.load(bundle), bundle)
    assert onnx_model.weights == model.weights
    rows = frame.iloc[240:]
    np.testing.assert_allclose(onnx_model.predict_proba(rows), model.predict_proba(rows), atol=1e-5)

"""The engine behind ``fit``: K-fold cross-validation (a K-network ensemble or a refit on
all rows), temperature calibration, the run directory (``run.json``, logs, checkpoints,
what a failure leaves behind, exact resume) and the ``fit`` command over all of them.

Every fit here is tiny (90-150 rows, a 16-wide layer, 3-6 epochs, a fixed learning
rate unless the range test is what is tested) and trains on one torch thread.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import deepstrata
import deepstrata.datasets
from deepstrata.calibrate.temperature import expected_calibration_error
from deepstrata.data.sources import read_table
from deepstrata.data.split import train_validation_split
from deepstrata.errors import CheckpointError, ConfigError, DataWarning
from deepstrata.train.callbacks import Callback
from deepstrata.train.checkpoint import CHECKPOINT_FILE
from deepstrata.train.run import RUN_FILE, fingerprint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"max_epochs": 3, "hidden_dims": [16], "learning_rate": 0.01, "progress": False}
CLI_FAST = ("--max-epochs", "3", "--hidden-dims", "16", "--learning-rate", "0.01", "--quiet")
CLASSIFICATION_METRICS = {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"}
REGRESSION_METRICS = {"rmse", "mae", "r2"}


def engine_frame(rows: int = 90, seed: int = 0) -> pd.DataFrame:
    """Two numbers, a category, a learnable yes/no ``label`` and a regression ``amount``.

    Values are rounded so that a CSV round trip gives back the very same numbers.
    """
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0, 1, rows).round(4)
    x2 = rng.normal(0, 1, rows).round(4)
    group = rng.choice(["a", "b", "c"], rows)
    score = x1 + 0.5 * x2 + (group == "a") + rng.normal(0, 0.7, rows)
    amount = 3 * x1 - 2 * x2 + (group == "b") * 1.5 + rng.normal(0, 0.3, rows)
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "group": group,
            "label": np.where(score > 0.3, "yes", "no"),
            "amount": amount.round(4),
        }
    )


def classification_frame(rows: int = 90) -> pd.DataFrame:
    return engine_frame(rows).drop(columns="amount")


def read_oof(model) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(model.artifacts["oof_predictions.csv"]))


def tree(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes() if p.is_file() else None
        for p in sorted(directory.rglob("*"))
    }


def weights_of(model) -> list[torch.Tensor]:
    return [t for m in model.members for t in m.network.state_dict().values()]


def assert_cv_summary(cv: dict, folds: int, names: set[str]) -> None:
    """``cross_validation``: mean and (population) std of every metric over ``per_fold``."""
    assert cv["folds"] == folds
    assert len(cv["per_fold"]) == folds
    assert set(cv["mean"]) == set(cv["std"]) == names
    for name in names:
        values = [fold[name] for fold in cv["per_fold"]]
        assert np.all(np.isfinite(values)), (name, values)
        assert cv["mean"][name] == pytest.approx(np.mean(values), rel=1e-12)
        assert cv["std"][name] == pytest.approx(np.std(values), rel=1e-12, abs=1e-15)
        assert cv["std"][name] >= 0
    for fold in cv["per_fold"]:
        assert fold["best_epoch"] >= 1 and fold["stopped"]


class RaiseAt(Callback):
    """A callback that fails at the end of epoch ``epoch`` of the ``fit``-th training run."""

    def __init__(self, *, epoch: int, fit: int = 1) -> None:
        self.epoch, self.fit, self.started = epoch, fit, 0

    def on_fit_start(self, trainer) -> None:
        self.started += 1
        if self.epoch == 0 and self.started == self.fit:
            raise RuntimeError("callback failed at the start")

    def on_epoch_end(self, trainer, record) -> None:
        if self.started == self.fit and record["epoch"] == self.epoch:
            raise RuntimeError(f"callback failed after epoch {self.epoch}")


# -- cross-validation: the K-fold ensemble ------------------------------------------------------


@pytest.fixture(scope="module")
def ensemble(one_torch_thread):
    """A 3-fold ensemble on 90 rows of which one has no target (row 5)."""
    frame = classification_frame()
    frame.loc[4, "label"] = None
    with pytest.warns(DataWarning, match="1 row"):
        model = deepstrata.fit(frame, target="label", folds=3, cv_model="ensemble", **FAST)
    return frame, model


def test_cv_ensemble_keeps_one_network_per_fold_and_summarises_the_folds(ensemble):
    _frame, model = ensemble
    assert len(model.members) == 3
    with pytest.raises(TypeError, match="ensemble of 3"):
        model.network  # noqa: B018 - an ensemble has no single network
    metrics = model.metrics
    assert metrics["cross_validation"]["model"] == "ensemble"
    assert_cv_summary(metrics["cross_validation"], 3, CLASSIFICATION_METRICS)
    assert metrics["rows"] == {"train": 89, "validation": 89}
    assert set(metrics["validation"]) == CLASSIFICATION_METRICS
    # the three networks are different networks
    first, second = (
        torch.cat([p.flatten() for p in m.network.parameters()]) for m in model.members[:2]
    )
    assert not torch.equal(first, second)


def test_cv_ensemble_out_of_fold_predictions_cover_every_labelled_row_once(ensemble):
    frame, model = ensemble
    oof = read_oof(model)
    assert list(oof.columns) == ["row", "fold", "target", "prediction", "proba_no", "proba_yes"]
    labelled = frame["label"].notna().to_numpy()
    # one line per labelled row, by its 1-based row number: row 5 (no target) is absent
    assert oof["row"].tolist() == (np.flatnonzero(labelled) + 1).tolist()
    assert oof["target"].tolist() == frame["label"][labelled].tolist()
    assert sorted(oof["fold"].unique()) == [1, 2, 3]
    assert oof["fold"].value_counts().between(29, 30).all()
    proba = oof[["proba_no", "proba_yes"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (oof["prediction"] == np.where(proba[:, 1] > proba[:, 0], "yes", "no")).all()

    # the out-of-fold metrics and each fold's metrics are those of these very lines
    accuracy = (oof["prediction"] == oof["target"]).mean()
    assert model.metrics["validation"]["accuracy"] == pytest.approx(accuracy)
    for number, fold in enumerate(model.metrics["cross_validation"]["per_fold"], start=1):
        held_out = oof[oof["fold"] == number]
        assert fold["accuracy"] == pytest.approx(
            (held_out["prediction"] == held_out["target"]).mean()
        )

    # member k's preprocessors were fitted on the rows outside fold k only
    for number, member in enumerate(model.members, start=1):
        training_rows = oof.loc[oof["fold"] != number, "row"].to_numpy() - 1
        assert member.preprocessors["x1"].center == pytest.approx(
            np.median(frame["x1"].to_numpy()[training_rows])
        )


def test_cv_ensemble_predicts_the_mean_probability_and_survives_a_round_trip(ensemble, tmp_path):
    frame, model = ensemble
    rows = frame.drop(columns="label")
    proba = model.predict_proba(rows)
    assert proba.shape == (len(frame), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    table = read_table(rows)
    each = [m.network.head.probabilities(m.outputs(table, "binary")) for m in model.members]
    np.testing.assert_allclose(proba, np.mean(each, axis=0), rtol=1e-9, atol=1e-12)
    labels = model.predict(rows)
    assert labels.tolist() == np.where(proba[:, 1] > proba[:, 0], "yes", "no").tolist()
    scores = model.evaluate(frame.dropna(subset=["label"]))
    assert set(scores) == CLASSIFICATION_METRICS and scores["accuracy"] > 0.7

    path = model.save(tmp_path / "ensemble")
    assert {"oof_predictions.csv", "metrics.jsonl"} <= {p.name for p in path.iterdir()}
    config = json.loads((path / "config.json").read_text())
    assert config["format"] == 2 and len(config["members"]) == 3
    assert [m["temperature"] for m in config["members"]] == [m.temperature for m in model.members]
    fold_log = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert sorted({line["fold"] for line in fold_log}) == [1, 2, 3]

    loaded = deepstrata.load(path)
    assert len(loaded.members) == 3
    np.testing.assert_array_equal(loaded.predict_proba(rows), proba)
    np.testing.assert_array_equal(loaded.predict(rows), labels)
    assert loaded.metrics["cross_validation"] == model.metrics["cross_validation"]
    assert loaded.evaluate(frame.dropna(subset=["label"])) == scores


# -- cross-validation: refit on all rows --------------------------------------------------------


def test_cv_ensemble_keeps_every_folds_learning_rate_sweep():
    model = deepstrata.fit(
        classification_frame(),
        target="label",
        folds=2,
        cv_model="ensemble",
        **{**FAST, "learning_rate": "auto"},
    )
    for number, fold in enumerate(model.metrics["cross_validation"]["per_fold"], start=1):
        sweep = json.loads(model.artifacts[f"lr_range.fold-{number}.json"])
        assert fold["learning_rate"] == sweep["suggestion"] and sweep["rule"].startswith("valley")
        assert model.artifacts[f"lr_range.fold-{number}.png"].startswith(b"\x89PNG")


def test_cv_refit_trains_one_network_on_every_row(tmp_path):
    frame = classification_frame()
    model = deepstrata.fit(frame, target="label", folds=3, cv_model="refit", **FAST)
    assert len(model.members) == 1
    metrics = model.metrics
    cv = metrics["cross_validation"]
    assert cv["model"] == "refit"
    assert_cv_summary(cv, 3, CLASSIFICATION_METRICS)

    # trained on all 90 rows, for the folds' mean best epoch, with nothing held out
    assert metrics["rows"]["train"] == 90
    epochs = max(1, round(np.mean([fold["best_epoch"] for fold in cv["per_fold"]])))
    assert metrics["training"] == f"refit on all rows for {epochs} epochs"
    assert [r["epoch"] for r in metrics["history"]["epochs"]] == list(range(1, epochs + 1))
    assert all("val_loss" not in record for record in metrics["history"]["epochs"])
    assert model.preprocessors["x1"].center == pytest.approx(np.median(frame["x1"]))
    # the temperature comes from the folds' out-of-fold logits
    assert metrics["calibration"]["fitted_on"] == "out-of-fold logits (90 rows)"
    assert model.members[0].temperature == metrics["calibration"]["temperature"]
    assert len(read_oof(model)) == 90

    path = model.save(tmp_path / "refit")
    loaded = deepstrata.load(path)
    assert len(loaded.members) == 1
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    assert loaded.metrics["cross_validation"] == cv


def test_cv_regression_ensemble(tmp_path):
    frame = engine_frame().drop(columns="label")
    model = deepstrata.fit(frame, target="amount", folds=3, cv_model="ensemble", **FAST)
    assert model.task == "regression" and len(model.members) == 3
    assert_cv_summary(model.metrics["cross_validation"], 3, REGRESSION_METRICS)
    assert "calibration" not in model.metrics

    oof = read_oof(model)
    assert list(oof.columns) == ["row", "fold", "target", "prediction"]  # no proba_* columns
    assert oof["row"].tolist() == list(range(1, 91))
    assert sorted(oof["fold"].unique()) == [1, 2, 3]
    np.testing.assert_array_equal(oof["target"], frame["amount"])
    rmse = np.sqrt(np.mean((oof["prediction"] - oof["target"]) ** 2))
    assert model.metrics["validation"]["rmse"] == pytest.approx(rmse, rel=1e-6)  # float32

    # the ensemble predicts the mean of its networks' (standardised) outputs
    table = read_table(frame)
    mean = np.mean([m.outputs(table, "regression") for m in model.members], axis=0)
    np.testing.assert_allclose(
        model.predict(frame), model.target_encoder.decode(mean), rtol=1e-6, atol=1e-6
    )
    with pytest.raises(TypeError):
        model.predict_proba(frame)
    loaded = deepstrata.load(model.save(tmp_path / "regression"))
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


# -- calibration --------------------------------------------------------------------------------


def test_calibration_records_ece_and_lowers_the_validation_loss():
    frame = classification_frame(120)
    # the network alone (its calibration), on the schedule these figures were first taken with
    options = {**FAST, "max_epochs": 4, "ensemble": False, "schedule": "onecycle"}
    calibrated = deepstrata.fit(frame, target="label", **options)
    raw = deepstrata.fit(frame, target="label", calibrate=False, **options)
    # calibration changes the temperature only, never the weights
    assert all(
        torch.equal(a, b) for a, b in zip(weights_of(calibrated), weights_of(raw), strict=True)
    )

    report = calibrated.metrics["calibration"]
    temperature = calibrated.members[0].temperature
    assert report["method"] == "temperature scaling"
    assert report["temperature"] == temperature and temperature != 1.0
    assert report["fitted_on"] == "validation (24 rows)"
    assert 0 <= report["ece_after"] <= report["ece_before"]

    # the figures are those of the validation rows, before and after dividing by T
    labels = (frame["label"] == "yes").to_numpy().astype(np.int64)
    _, validation = train_validation_split(labels, stratify=True, fraction=0.2, seed=0)
    rows = frame.iloc[validation]
    before, after = raw.predict_proba(rows), calibrated.predict_proba(rows)
    y = labels[validation]
    assert report["ece_before"] == pytest.approx(expected_calibration_error(before, y), abs=1e-9)
    assert report["ece_after"] == pytest.approx(expected_calibration_error(after, y), abs=1e-9)
    nll = lambda p: -np.mean(np.log(p[np.arange(len(y)), y]))  # noqa: E731
    assert nll(after) <= nll(before)
    assert calibrated.metrics["validation"]["log_loss"] == pytest.approx(nll(after), rel=1e-6)
    # dividing the logits by T > 0 never changes a predicted class
    np.testing.assert_array_equal(calibrated.predict(frame), raw.predict(frame))


def test_without_calibration_no_temperature_is_fitted(tmp_path):
    frame = classification_frame()
    single = deepstrata.fit(frame, target="label", calibrate=False, ensemble=False, **FAST)
    folded = deepstrata.fit(
        frame, target="label", calibrate=False, folds=3, cv_model="ensemble", **FAST
    )
    for model in (single, folded):
        assert "calibration" not in model.metrics
        assert [m.temperature for m in model.members] == [1.0] * len(model.members)
        config = json.loads(
            (model.save(tmp_path / str(len(model.members))) / "config.json").read_text()
        )
        assert [m["temperature"] for m in config["members"]] == [1.0] * len(model.members)
    # predict_proba is then the plain sigmoid of the network's output
    member = single.members[0]
    logits = member.outputs(read_table(frame), "binary")
    np.testing.assert_allclose(
        single.predict_proba(frame)[:, 1], 1 / (1 + np.exp(-logits)), rtol=1e-6
    )


# -- the run directory --------------------------------------------------------------------------


def test_a_run_directory_records_the_run_and_keeps_only_the_logs(tmp_path):
    frame = classification_frame()
    run_dir = tmp_path / "runs" / "one"
    model = deepstrata.fit(
        frame, target="label", run_dir=run_dir, run_record={"note": "hi"}, **FAST
    )
    assert tree(run_dir) == ["metrics.jsonl", RUN_FILE]  # the checkpoint is gone
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert record["config"] == model.config.to_dict()
    assert record["config"]["max_epochs"] == 3 and record["config"]["target"] == "label"
    assert record["data"] == {
        "source": "<DataFrame>",
        "sha256": fingerprint(read_table(frame).frame),
    }
    assert record["finished"] is True and record["note"] == "hi"
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged == model.metrics["history"]["epochs"] and len(logged) == 3


def test_cv_run_directory_has_one_folder_per_fold(tmp_path):
    run_dir = tmp_path / "cv"
    deepstrata.fit(
        classification_frame(), target="label", run_dir=run_dir, folds=3, cv_model="refit", **FAST
    )
    assert tree(run_dir) == [
        *(f"fold-{k}{leaf}" for k in (1, 2, 3) for leaf in ("", "/metrics.jsonl")),
        "refit",
        "refit/metrics.jsonl",
        RUN_FILE,
    ]  # fold models and checkpoints removed, logs kept


def test_resume_refuses_other_data_and_other_options(tmp_path):
    frame = classification_frame()
    run_dir = tmp_path / "run"
    deepstrata.fit(frame, target="label", run_dir=run_dir, keep_checkpoints=True, **FAST)
    assert (run_dir / "checkpoint" / CHECKPOINT_FILE).is_file()
    before = snapshot(run_dir)

    changed = frame.copy()
    changed.loc[7, "x1"] += 1.0  # one value of ninety rows by five columns
    with pytest.raises(CheckpointError, match="the data differs") as error:
        deepstrata.fit(changed, target="label", run_dir=run_dir, resume=True, **FAST)
    assert error.value.path == str(run_dir)
    with pytest.raises(CheckpointError, match="--max-epochs 3 then, 4 now"):
        deepstrata.fit(
            frame, target="label", run_dir=run_dir, resume=True, **{**FAST, "max_epochs": 4}
        )
    with pytest.raises(CheckpointError, match=r"--dropout 0\.1 then, 0\.2 now"):
        deepstrata.fit(frame, target="label", run_dir=run_dir, resume=True, dropout=0.2, **FAST)
    # starting over in an unfinished run's directory is refused too, naming both ways out
    with pytest.raises(ConfigError, match="unfinished run") as error:
        deepstrata.fit(frame, target="label", run_dir=run_dir, **FAST)
    assert error.value.option == "--run-dir" and "--resume" in str(error.value)
    with pytest.raises(ConfigError, match="run directory") as error:
        deepstrata.fit(frame, target="label", resume=True, **FAST)
    assert error.value.option == "--resume"
    assert snapshot(run_dir) == before  # nothing refused touched the run


def test_a_fit_failing_before_any_checkpoint_leaves_nothing(tmp_path):
    frame = classification_frame()
    run_dir = tmp_path / "new" / "run"
    for failing in (RaiseAt(epoch=0), RaiseAt(epoch=1)):
        with pytest.raises(RuntimeError, match="callback failed"):
            deepstrata.fit(frame, target="label", run_dir=run_dir, callbacks=[failing], **FAST)
        assert list(tmp_path.iterdir()) == []  # every folder begin() made is gone


def test_a_fit_failing_in_an_existing_empty_run_directory_leaves_it_empty(tmp_path):
    """abandon() promises to remove what begin() made: here run.json (and the log)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(RuntimeError, match="callback failed"):
        deepstrata.fit(
            classification_frame(),
            target="label",
            run_dir=run_dir,
            callbacks=[RaiseAt(epoch=0)],
            **FAST,
        )
    assert tree(run_dir) == []


def test_a_cv_run_failing_in_fold_two_keeps_its_checkpoint_and_resumes_exactly(tmp_path):
    frame = classification_frame()
    options = {**FAST, "folds": 3, "cv_model": "ensemble"}
    reference = deepstrata.fit(frame, target="label", **options)

    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="after epoch 2"):
        deepstrata.fit(
            frame, target="label", run_dir=run_dir, callbacks=[RaiseAt(epoch=2, fit=2)], **options
        )
    # fold 1 finished (its model is saved), fold 2 stopped after its epoch-1 checkpoint
    assert (run_dir / "fold-1" / "model" / "config.json").is_file()
    state = json.loads((run_dir / "fold-2" / "checkpoint" / CHECKPOINT_FILE).read_text())["state"]
    assert (state["epoch"], state["batch"]) == (2, 0)
    assert not (run_dir / "fold-3").exists()
    assert json.loads((run_dir / RUN_FILE).read_text())["finished"] is False

    resumed = deepstrata.fit(frame, target="label", run_dir=run_dir, resume=True, **options)
    np.testing.assert_array_equal(resumed.predict_proba(frame), reference.predict_proba(frame))
    assert all(
        torch.equal(a, b) for a, b in zip(weights_of(resumed), weights_of(reference), strict=True)
    )
    assert [m.temperature for m in resumed.members] == [m.temperature for m in reference.members]
    assert resumed.metrics["validation"] == reference.metrics["validation"]
    assert tree(run_dir) == [
        *(f"fold-{k}{leaf}" for k in (1, 2, 3) for leaf in ("", "/metrics.jsonl")),
        RUN_FILE,
    ]


# -- the fit command: killed, resumed -----------------------------------------------------------

KILL_ARGS = (
    "--target",
    "label",
    "--max-epochs",
    "6",
    "--hidden-dims",
    "16",
    "--batch-size",
    "8",
    "--checkpoint-minutes",
    "0.0001",  # a checkpoint after (nearly) every step: resume mid-epoch
    "--seed",
    "3",
    "--quiet",
    "--no-ensemble",  # the network's exact resume is what is tested
)  # learning rate "auto": the range test runs once, before the first checkpoint


def run_cli(*args: object) -> tuple[int, str, str]:
    """``deepstrata ARGS…`` in this process: (exit status, stdout, stderr)."""
    from deepstrata.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(arg) for arg in args])
            code = 0
        except SystemExit as exit_:
            code = 0 if exit_.code is None else int(exit_.code)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, one_torch_thread):
    """``deepstrata fit`` in a subprocess, SIGKILLed once a checkpoint past epoch 1 is on disk.

    Where exactly the kill lands (mid-epoch, mid-checkpoint) is left to timing on
    purpose: an exact resume must not depend on it. The window is wide (a checkpoint
    with fsyncs after every step, about 60 steps still to go), and the test checks
    that the process was indeed killed before writing its bundle.
    """
    work = tmp_path_factory.mktemp("killed")
    data = work / "data.csv"
    classification_frame(150).to_csv(data, index=False)
    out = work / "out"
    run_dir = work / "out.run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = work / "stderr.txt"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "deepstrata", "fit", data, "--out", out, *KILL_ARGS],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=work,
        )
        record = run_dir / "checkpoint" / CHECKPOINT_FILE
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    if json.loads(record.read_text())["state"]["epoch"] >= 2:
                        break
                except (FileNotFoundError, ValueError, KeyError):
                    pass
                time.sleep(0.005)
            else:
                raise AssertionError(f"no checkpoint past epoch 1:\n{log.read_text()}")
            process.send_signal(signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, log.read_text()
    return data, out, run_dir


def test_fit_resume_with_another_flag_is_refused(killed_run, cli):
    _data, out, run_dir = killed_run
    before = snapshot(run_dir)
    for extra, named in [
        (("--max-epochs", "3"), "--max-epochs"),
        (("--seed", "3"), "--seed"),
        (("--out", out.with_name("elsewhere")), "--config/--out/--run-dir"),
    ]:
        line = cli("fit", "--resume", run_dir, *extra).error_line()
        assert line == (
            f"error: --resume: a resumed run keeps the options it started with; leave out {named}"
        )
    assert (
        cli("fit", "--resume", out.with_name("nowhere"))
        .error_line()
        .endswith("no run.json here: not a deepstrata run directory")
    )
    assert snapshot(run_dir) == before and not out.exists()


@pytest.fixture(scope="module")
def resumed_run(killed_run):
    """The killed run resumed, and the same command run without interruption to ``out2``."""
    data, out, run_dir = killed_run
    assert not out.exists()
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert record["finished"] is False and record["out"] == str(out.resolve())
    code, stdout, stderr = run_cli("fit", "--resume", run_dir)
    assert code == 0, stderr
    assert f"bundle written to {out.resolve()}" in stdout
    out2 = out.with_name("out2")
    code, stdout, stderr = run_cli("fit", data, "--out", out2, *KILL_ARGS)
    assert code == 0, stderr
    return out, out2, run_dir


def test_a_killed_fit_resumes_to_the_bundle_an_uninterrupted_fit_writes(killed_run, resumed_run):
    data, _, _ = killed_run
    out, out2, run_dir = resumed_run
    resumed, uninterrupted = deepstrata.load(out), deepstrata.load(out2)
    np.testing.assert_array_equal(resumed.predict_proba(data), uninterrupted.predict_proba(data))
    assert all(
        torch.equal(a, b)
        for a, b in zip(weights_of(resumed), weights_of(uninterrupted), strict=True)
    )
    assert resumed.members[0].temperature == uninterrupted.members[0].temperature
    assert resumed.metrics["validation"] == uninterrupted.metrics["validation"]
    epochs = [
        [{k: v for k, v in r.items() if k != "seconds"} for r in m.metrics["history"]["epochs"]]
        for m in (resumed, uninterrupted)
    ]
    assert epochs[0] == epochs[1] and len(epochs[0]) == 6
    config = [json.loads((b / "config.json").read_text()) for b in (out, out2)]
    assert config[0]["training"] == config[1]["training"]
    # the default run directory goes once the bundle is written; the bundle keeps the log
    assert not run_dir.exists()
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in logged] == [1, 2, 3, 4, 5, 6]  # no epoch twice after the replay


def test_a_resumed_bundle_keeps_what_the_range_test_found(resumed_run):
    """The learning-rate range test ran before the kill; its result belongs in the bundle."""
    out, out2, _ = resumed_run
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in out2.iterdir())
    rates = [json.loads((b / "metrics.json").read_text())["learning_rate"] for b in (out, out2)]
    assert rates[0] == rates[1] and "suggestion" in rates[1]


# -- the fit command: cross-validation, TensorBoard, bad --folds --------------------------------


def test_fit_command_with_folds_prints_mean_and_std_and_the_bundle_predicts(tmp_path, cli):
    penguins = pd.read_csv(deepstrata.datasets.penguins_path())
    sample = penguins.groupby("species").sample(40, random_state=0).reset_index(drop=True)
    data = tmp_path / "penguins.csv"
    sample.to_csv(data, index=False)
    bundle = tmp_path / "bundle"
    result = cli(
        "fit",
        data,
        "--target",
        "species",
        "--out",
        bundle,
        "--folds",
        "3",
        "--cv-model",
        "ensemble",
        *CLI_FAST,
    )
    assert result.code == 0, result.err
    metrics = json.loads((bundle / "metrics.json").read_text())
    cv = metrics["cross_validation"]
    lines = result.out.splitlines()
    title = lines.index("3-fold cross-validation (mean ± std over folds)")
    assert lines[title + 1].split() == ["metric", "mean", "std"]
    shown = {line.split()[0]: line.split()[1:] for line in lines[title + 2 : title + 7]}
    assert shown == {
        n: [f"{cv['mean'][n]:.4f}", f"{cv['std'][n]:.4f}"] for n in CLASSIFICATION_METRICS
    }
    assert "out-of-fold metrics (120 rows)" in lines
    assert lines[-1] == f"bundle written to {bundle}"

    # the default run directory goes once the bundle is written; the bundle has the logs
    assert not (tmp_path / "bundle.run").exists()
    assert (bundle / "oof_predictions.csv").is_file()
    logged = [json.loads(line) for line in (bundle / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["fold"] for r in logged}) == [1, 2, 3] and len(logged) == 9  # 3 epochs each

    predicted = cli("predict", bundle, data, "--proba")
    assert predicted.code == 0, predicted.err
    table = pd.read_csv(io.StringIO(predicted.out))
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    assert list(table.columns) == ["prediction", *(f"proba_{c}" for c in classes)]
    model = deepstrata.load(bundle)
    assert len(model.members) == 3
    np.testing.assert_allclose(
        table[[f"proba_{c}" for c in classes]], model.predict_proba(data), rtol=1e-12
    )
    assert (table["prediction"] == model.predict(data)).all()
    assert model.evaluate(data)["accuracy"] > 0.8


def test_fit_command_with_tensorboard_writes_event_files_into_the_run_directory(tmp_path, cli):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = tmp_path / "data.csv"
    classification_frame().to_csv(data, index=False)
    result = cli(
        "fit", data, "--target", "label", "--out", tmp_path / "out", "--tensorboard", *CLI_FAST
    )
    assert result.code == 0, result.err
    run_dir = tmp_path / "out.run"
    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    accumulator = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert {"loss", "val_loss", "val_accuracy", "learning_rate"} <= set(
        accumulator.Tags()["scalars"]
    )
    for tag in ("loss", "val_loss"):
        scalars = accumulator.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3]
        np.testing.assert_allclose([s.value for s in scalars], [r[tag] for r in logged], rtol=1e-6)


def test_tensorboard_without_a_run_directory_is_refused():
    with pytest.raises(ConfigError, match="run directory") as error:
        deepstrata.fit(classification_frame(), target="label", tensorboard=True, **FAST)
    assert error.value.option == "--tensorboard"


@pytest.mark.parametrize("folds", ["1", "0", "-2"])
def test_fewer_than_two_folds_is_refused_naming_the_flag(tmp_path, cli, folds):
    data = tmp_path / "data.csv"
    classification_frame().to_csv(data, index=False)
    line = cli("fit", data, "--target", "label", "--folds", folds, *CLI_FAST).error_line()
    assert line == f"error: --folds: must be >= 2, got {folds}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]  # no run, no bundle
    with pytest.raises(ConfigError) as error:
        deepstrata.fit(data, target="label", folds=int(folds), **FAST)
    assert error.value.option == "--folds"


def test_more_folds_than_rows_is_refused_naming_the_flag():
    with pytest.raises(
        ConfigError, match="91 folds need at least 91 labelled rows, found 90"
    ) as error:
        deepstrata.fit(classification_frame(), target="label", folds=91, **FAST)
    assert error.value.option == "--folds"


def test_fractional_folds_from_a_config_file_are_refused_naming_the_flag(tmp_path, cli):
    data = tmp_path / "data.csv"
    classification_frame().to_csv(data, index=False)
    config = tmp_path / "fit.yaml"
    config.write_text("folds: 2.5\n", encoding="utf-8")
    line = cli("fit", data, "--target", "label", "--config", config, *CLI_FAST).error_line()
    assert line.startswith("error: --folds: ") and "2.5" in line


def test_more_folds_than_a_class_has_rows_still_holds_every_row_out_once():
    """StratifiedKFold spreads a class of 2 rows over 2 of 3 folds; one fold never sees it."""
    frame = classification_frame()
    frame.loc[[0, 1], "label"] = "maybe"
    model = deepstrata.fit(frame, target="label", folds=3, cv_model="ensemble", **FAST)
    assert model.task == "multiclass" and len(model.members) == 3
    assert_cv_summary(model.metrics["cross_validation"], 3, CLASSIFICATION_METRICS)
    oof = read_oof(model)
    assert oof["row"].tolist() == list(range(1, 91))
    assert sorted(oof.loc[oof["target"] == "maybe", "fold"].tolist()) in ([1, 2], [1, 3], [2, 3])
    assert model.predict_proba(frame).shape == (90, 3)


# -- --resume and --run-dir misuse --------------------------------------------------------------


def test_resuming_a_finished_run_is_refused_and_the_bundle_is_left_alone(tmp_path, cli):
    data = tmp_path / "data.csv"
    classification_frame().to_csv(data, index=False)
    run_dir, out = tmp_path / "run", tmp_path / "out"
    result = cli("fit", data, "--target", "label", "--run-dir", run_dir, "--out", out, *CLI_FAST)
    assert result.code == 0, result.err
    before = snapshot(out)
    assert cli("fit", "--resume", run_dir).error_line() == (
        f"error: --resume: {run_dir} is a finished run; its bundle is at {out.resolve()}"
    )
    assert snapshot(out) == before
    with pytest.raises(CheckpointError, match="finished"):
        deepstrata.fit(data, target="label", run_dir=run_dir, resume=True, **FAST)


def test_a_run_started_from_python_is_not_resumed_by_the_cli(tmp_path, cli):
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="after epoch 2"):
        deepstrata.fit(
            classification_frame(),
            target="label",
            run_dir=run_dir,
            callbacks=[RaiseAt(epoch=2)],
            **FAST,
        )
    assert cli("fit", "--resume", run_dir).error_line() == (
        f"error: --resume: {run_dir} was started from Python (deepstrata.fit(..., run_dir=...)); "
        "resume it there with resume=True"
    )


@pytest.mark.parametrize("run_dir", ["same", "same/inside"])
def test_a_run_directory_overlapping_the_bundle_is_refused_before_training(tmp_path, cli, run_dir):
    data = tmp_path / "data.csv"
    classification_frame().to_csv(data, index=False)
    line = cli(
        "fit",
        data,
        "--target",
        "label",
        "--run-dir",
        tmp_path / run_dir,
        "--out",
        tmp_path / "same",
        *CLI_FAST,
    ).error_line()
    assert line.startswith("error: --run-dir: the run directory") and "must not overlap" in line
    assert not (tmp_path / "same").exists()

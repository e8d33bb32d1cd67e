"""The command line: it starts fast, and each command works on files, end to end.

Commands run in this process through ``deepstrata.cli.main`` (torch stays
imported, so a fit takes a fraction of a second); a subprocess only where the
start-up itself or the process's exit status is what is tested.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_churn_frame

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = ("--max-epochs", "3", "--quiet")
HEAVY_MODULES = ("torch", "pandas", "sklearn", "pyarrow", "safetensors")
CHURN_KINDS = {
    "customer_id": ("category", "ignore"),
    "tenure": ("number", "input"),
    "monthly": ("number", "input"),
    "plan": ("category", "input"),
    "paperless": ("boolean", "input"),
    "signup": ("datetime", "input"),
    "churned": ("category", "target"),
}
CLASSIFICATION_METRICS = {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"}
REGRESSION_METRICS = {"rmse", "mae", "r2"}


@pytest.fixture(autouse=True)
def _work_in_tmp_path(tmp_path, monkeypatch):
    """A command given no --out writes under runs/ in the working directory: keep that here."""
    monkeypatch.chdir(tmp_path)


def deepstrata_command() -> list[str]:
    """The installed ``deepstrata`` script beside this Python, else ``python -m deepstrata``."""
    script = Path(sys.executable).with_name("deepstrata")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "deepstrata"]


def run_process(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*deepstrata_command(), *map(str, args)], capture_output=True, text=True, timeout=60
    )


def fit_bundle(cli, data: Path, out: Path, *args: object, target: str = "churned") -> Path:
    result = cli("fit", data, "--target", target, "--out", out, *FAST, *args)
    assert result.code == 0, result.err
    assert f"bundle written to {out}" in result.out
    return out


def bundle_config(bundle: Path) -> dict:
    return json.loads((bundle / "config.json").read_text(encoding="utf-8"))


# -- start-up -----------------------------------------------------------------------------------


def test_help_answers_fast():
    best = math.inf
    for _ in range(3):  # the best of three, so that one busy moment on the machine does not fail it
        start = time.perf_counter()
        done = run_process("--help")
        best = min(best, time.perf_counter() - start)
        assert done.returncode == 0, done.stderr
        if best < 1.5:
            break
    assert best < 1.5, f"deepstrata --help took {best:.2f} s"
    for command in ("inspect", "fit", "predict", "evaluate", "demo"):
        assert command in done.stdout


def test_importing_the_cli_and_asking_for_help_imports_no_heavy_library():
    code = f"""
import json, sys
from deepstrata.cli import main
for args in (["--help"], ["fit", "--help"], ["predict", "--help"], ["evaluate", "--help"]):
    try:
        main(args)
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_a_user_error_exits_1_with_one_line(tmp_path):
    missing = tmp_path / "nowhere.csv"
    done = run_process("inspect", missing)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: {missing}: file not found (looked for {missing.resolve()})"
    ]
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit"], "Missing argument 'DATA'"),
        (["fit", "data.csv", "--max-epochs", "many"], "Invalid value for '--max-epochs'"),
        (["fit", "data.csv", "--epochs", "3"], "No such option: --epochs"),
        (["train"], "No such command 'train'"),
    ],
)
def test_a_usage_error_exits_2_with_the_usage(args, message):
    done = run_process(*args)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2
    assert message in done.stderr and "Usage: " in done.stderr


# -- inspect ------------------------------------------------------------------------------------


def test_inspect_prints_one_row_per_column(churn_csv, cli):
    result = cli("inspect", churn_csv, "--target", "churned")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"{churn_csv}: 200 rows, task binary"
    rows = {line.split()[0]: line.split() for line in lines[2:] if line.strip()}
    assert {name: tuple(row[1:3]) for name, row in rows.items()} == CHURN_KINDS
    assert "identifier" in " ".join(rows["customer_id"])


def test_inspect_json(churn_csv, cli):
    result = cli("inspect", churn_csv, "--target", "churned", "--json")
    assert result.code == 0, result.err
    schema = json.loads(result.out)
    assert (schema["target"], schema["task"], schema["rows"]) == ("churned", "binary", 200)
    kinds = {f["name"]: (f["kind"], f["role"]) for f in schema["features"]}
    assert kinds == CHURN_KINDS
    tenure = next(f for f in schema["features"] if f["name"] == "tenure")
    assert tenure["missing"] == 9  # every 23rd row


def test_inspect_without_a_target(churn_csv, cli):
    schema = json.loads(cli("inspect", churn_csv, "--json").out)
    assert schema["task"] == ""
    assert {f["name"]: f["role"] for f in schema["features"]}["churned"] == "input"


def test_inspect_says_when_a_column_looks_like_a_group(tmp_path, cli):
    path = tmp_path / "visits.csv"
    frame = make_churn_frame().assign(patient=lambda f: [f"p{i % 25}" for i in range(len(f))])
    frame.to_csv(path, index=False)
    result = cli("inspect", path, "--target", "churned")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == (
        "column patient looks like a group (25 values, 8 rows each on average): "
        "--group patient keeps each on one side of validation"
    )
    grouped = cli("inspect", path, "--target", "churned", "--group", "patient")
    row = next(line.split() for line in grouped.out.splitlines() if "p0, p1" in line)
    assert row[1:3] == ["category", "group"] and "looks like a group" not in grouped.out
    missing = cli("inspect", path, "--target", "churned", "--group", "patiet")
    assert (
        missing.code != 0 and "--group" in missing.err and "did you mean 'patient'" in missing.err
    )


def test_inspect_takes_a_folders_groups_from_the_file_names(tmp_path, cli):
    for word in ("yes", "no"):
        for speaker in ("ann", "bob"):
            path = tmp_path / "words" / word / f"{speaker}_1.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{word} from {speaker}", encoding="utf-8")
    result = cli("inspect", tmp_path / "words", "--group-pattern", r"^[^/]+/(\w+)_", "--json")
    assert result.code == 0, result.err
    roles = {f["name"]: f["role"] for f in json.loads(result.out)["features"]}
    assert roles["group"] == "group" and roles["label"] == "target"


# -- fit, predict, evaluate ---------------------------------------------------------------------


def test_fit_predict_evaluate_round_trip(tmp_path, churn_csv, churn_frame, cli):
    bundle = fit_bundle(cli, churn_csv, tmp_path / "runs" / "churn")
    assert sorted(p.name for p in bundle.iterdir()) == [
        "config.json",
        "data_summary.json",
        "drift_reference.json",
        "lr_range.json",
        "lr_range.png",
        "manifest.json",
        "metrics.json",
        "metrics.jsonl",
        "report.html",
        "validation_predictions.csv",
        "weights.safetensors",
    ]

    output = tmp_path / "predictions.csv"
    result = cli("predict", bundle, churn_csv, "-o", output, "--proba", "--keep", "customer_id")
    assert result.code == 0, result.err
    assert result.out == ""
    assert f"200 predictions written to {output}" in result.err
    predictions = pd.read_csv(output)
    assert list(predictions.columns) == ["customer_id", "prediction", "proba_no", "proba_yes"]
    assert predictions["customer_id"].tolist() == churn_frame["customer_id"].tolist()
    assert set(predictions["prediction"]) <= {"no", "yes"}
    np.testing.assert_allclose(predictions[["proba_no", "proba_yes"]].sum(axis=1), 1.0, atol=1e-6)
    chosen = np.where(predictions["proba_yes"] > predictions["proba_no"], "yes", "no")
    assert (predictions["prediction"] == chosen).all()

    result = cli("evaluate", bundle, churn_csv, "--json")
    assert result.code == 0, result.err
    metrics = json.loads(result.out)
    assert set(metrics) == CLASSIFICATION_METRICS
    assert all(0 <= metrics[name] <= 1 for name in CLASSIFICATION_METRICS - {"log_loss"})
    assert metrics["log_loss"] > 0

    table = cli("evaluate", bundle, churn_csv)
    assert table.code == 0 and all(name in table.out for name in CLASSIFICATION_METRICS)


def test_predict_without_output_prints_csv_to_stdout(
    tmp_path, churn_csv, churn_frame, fitted_churn_bundle, cli
):
    result = cli("predict", fitted_churn_bundle, churn_csv, "--keep", "customer_id")
    assert result.code == 0, result.err
    predictions = pd.read_csv(io.StringIO(result.out))
    assert list(predictions.columns) == ["customer_id", "prediction"]
    assert len(predictions) == len(churn_frame)
    assert list(tmp_path.iterdir()) == [churn_csv]  # nothing written to a file


def test_predict_keeps_an_existing_output_unless_overwrite(
    tmp_path, churn_csv, fitted_churn_bundle, cli
):
    output = tmp_path / "predictions.csv"
    output.write_text("precious\n")
    line = cli("predict", fitted_churn_bundle, churn_csv, "-o", output).error_line()
    assert "--output" in line and str(output) in line and "--overwrite" in line
    assert output.read_text() == "precious\n"
    assert cli("predict", fitted_churn_bundle, churn_csv, "-o", output, "--overwrite").code == 0
    assert len(pd.read_csv(output)) == 200


def test_predict_keep_of_an_unknown_column_names_it(churn_csv, fitted_churn_bundle, cli):
    line = cli("predict", fitted_churn_bundle, churn_csv, "--keep", "account").error_line()
    assert "column 'account'" in line and str(churn_csv) in line


def test_a_regression_target_is_evaluated_with_regression_metrics(
    tmp_path, churn_csv, churn_frame, cli
):
    schema = json.loads(cli("inspect", churn_csv, "--target", "monthly", "--json").out)
    assert schema["task"] == "regression"
    bundle = fit_bundle(cli, churn_csv, tmp_path / "bundle", target="monthly")
    metrics = json.loads(cli("evaluate", bundle, churn_csv, "--json").out)
    assert set(metrics) == REGRESSION_METRICS
    assert metrics["rmse"] >= metrics["mae"] >= 0

    result = cli("predict", bundle, churn_csv)
    predictions = pd.read_csv(io.StringIO(result.out))
    assert list(predictions.columns) == ["prediction"] and len(predictions) == len(churn_frame)
    assert np.isfinite(predictions["prediction"]).all()
    assert "--proba" in cli("predict", bundle, churn_csv, "--proba").error_line()


# -- overrides: --config, --column, --task ------------------------------------------------------


@pytest.mark.parametrize("spelling", ["max-epochs", "max_epochs"])
def test_a_config_file_is_honoured(tmp_path, churn_csv, cli, spelling):
    config = tmp_path / "fit.yaml"
    config.write_text(f"{spelling}: 3\ncolumn: [tenure=category]\nseed: 5\n", encoding="utf-8")
    bundle = tmp_path / "bundle"
    result = cli("fit", churn_csv, "--target", "churned", "--config", config, "--out", bundle, "-q")
    assert result.code == 0, result.err
    saved = bundle_config(bundle)
    assert (saved["training"]["max_epochs"], saved["training"]["seed"]) == (3, 5)
    assert saved["training"]["columns"] == {"tenure": "category"}
    assert saved["members"][0]["preprocessors"]["tenure"]["kind"] == "category"
    history = json.loads((bundle / "metrics.json").read_text())["history"]
    assert len(history["epochs"]) <= 3


def test_a_flag_beats_the_config_file(tmp_path, churn_csv, cli):
    config = tmp_path / "fit.yaml"
    config.write_text("max-epochs: 3\nseed: 5\n", encoding="utf-8")
    bundle = fit_bundle(
        cli, churn_csv, tmp_path / "bundle", "--config", config, "--max-epochs", "2"
    )
    assert (bundle_config(bundle)["training"]["max_epochs"]) == 2
    assert bundle_config(bundle)["training"]["seed"] == 5


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("bogus_option", ""),
        ("max_epoch", "; did you mean '--max-epochs'?"),
        pytest.param("bogus-option", ""),
        pytest.param("max-epoch", "; did you mean '--max-epochs'?"),
    ],
)
def test_an_unknown_config_key_is_refused_naming_it(tmp_path, churn_csv, cli, key, suggestion):
    config = tmp_path / "fit.yaml"
    config.write_text(f"{key}: 3\n", encoding="utf-8")
    bundle = tmp_path / "bundle"
    result = cli(
        "fit", churn_csv, "--target", "churned", "--config", config, "--out", bundle, *FAST
    )
    assert result.error_line() == f"error: {key}: unknown key in {config}{suggestion}"
    assert not bundle.exists()


def test_an_invalid_config_value_names_the_flag(tmp_path, churn_csv, cli):
    config = tmp_path / "fit.yaml"
    config.write_text("learning-rate: -1\n", encoding="utf-8")
    line = cli("fit", churn_csv, "--target", "churned", "--config", config, *FAST).error_line()
    assert line == "error: --learning-rate: must be > 0 or auto, got -1"


def test_column_overrides_a_kind(tmp_path, churn_csv, cli):
    result = cli(
        "inspect", churn_csv, "--target", "churned", "--column", "tenure=category", "--json"
    )
    tenure = next(f for f in json.loads(result.out)["features"] if f["name"] == "tenure")
    assert (tenure["kind"], tenure["reason"]) == ("category", "set by --column")

    bundle = fit_bundle(
        cli, churn_csv, tmp_path / "bundle", "--column", "tenure=category", "--column", "plan=text"
    )
    kinds = {
        name: entry["kind"]
        for name, entry in bundle_config(bundle)["members"][0]["preprocessors"].items()
    }
    assert (kinds["tenure"], kinds["plan"]) == ("category", "text")


@pytest.mark.parametrize(
    ("override", "named"),
    [("tenure=banana", "unknown kind 'banana'"), ("tenur=number", "did you mean 'tenure'")],
)
def test_a_bad_column_override_is_refused(tmp_path, churn_csv, cli, override, named):
    for command in ("inspect", "fit"):
        line = cli(command, churn_csv, "--target", "churned", "--column", override).error_line()
        assert line.startswith("error: --column: ") and named in line, line


def test_task_overrides_the_inferred_task(tmp_path, churn_frame, cli):
    churn_frame["rating"] = (churn_frame["monthly"] // 20).clip(1, 5).astype(int)
    data = tmp_path / "ratings.csv"
    churn_frame.drop(columns="churned").to_csv(data, index=False)
    inferred = json.loads(cli("inspect", data, "--target", "rating", "--json").out)
    assert inferred["task"] == "multiclass"

    bundle = fit_bundle(cli, data, tmp_path / "bundle", "--task", "regression", target="rating")
    assert bundle_config(bundle)["members"][0]["architecture"]["task"] == "regression"
    assert set(json.loads(cli("evaluate", bundle, data, "--json").out)) == REGRESSION_METRICS

    line = cli("fit", data, "--target", "rating", "--task", "binary", *FAST).error_line()
    assert "--task binary needs 2 classes" in line and "column 'rating'" in line
    line = cli("fit", data, "--target", "rating", "--task", "ordinal", *FAST).error_line()
    assert line.startswith("error: --task: ") and "ordinal" in line


def test_files_written_atomically_get_the_permissions_of_a_plain_open(tmp_path):
    """mkstemp makes owner-only files; a prediction file others may read must not be one."""
    import os

    from deepstrata.cli.common import write_atomically

    target = tmp_path / "predictions.csv"
    write_atomically(target, lambda temporary: Path(temporary).write_text("a\n"))
    plain = tmp_path / "plain.csv"
    plain.write_text("a\n")
    assert target.read_text() == "a\n"
    assert os.stat(target).st_mode & 0o777 == os.stat(plain).st_mode & 0o777

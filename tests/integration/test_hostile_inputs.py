"""Hostile inputs: every bad table or bundle is refused with a named error, and nothing is left half-written.

Each refusal is checked twice: through the Python API (the error's type and its
``file`` / ``column`` / ``row`` / ``line`` or ``path`` attributes) and through the
CLI (exit status 1 and one ``error: …`` line on stderr naming the same place).
After a refusal the working directory holds exactly what it held before: no
bundle at ``--out``, no ``.partial`` staging directory beside it, no predictions
file and no temporary file beside that.

Line numbers: the CSV header is line 1, so the frame row at position ``p`` is
data row ``p + 1`` on line ``p + 2``.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepstrata
from deepstrata.errors import BundleError, ConfigError, DataError, DataWarning

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]

PACKAGE = Path(deepstrata.__file__).resolve().parent
FAST = {"max_epochs": 3, "progress": False}
CLI_FAST = ("--max-epochs", "3", "--quiet")


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every path under ``directory`` (hidden ones too), with the bytes of each file."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes() if path.is_file() else None
        for path in sorted(directory.rglob("*"))
    }


def leftovers_beside(path: Path) -> list[str]:
    """Staging, retired or temporary entries a writer of ``path`` may have left beside it."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def assert_names_place(line: str, *, file=None, column=None, row=None, line_number=None) -> None:
    """The CLI's error line names the file, the column, the row and the line it was given."""
    if file is not None:
        assert str(file) in line, line
    if column is not None:
        assert f"column {column!r}" in line, line
    if row is not None:
        assert f"row {row}" in line, line
    if line_number is not None:
        assert f"line {line_number}" in line, line


def write_rows(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def edit_line(path: Path, frame: pd.DataFrame, number: int, edit: Callable[[str], str]) -> Path:
    """``frame`` as CSV with its 1-based line ``number`` passed through ``edit``."""
    lines = frame.to_csv(index=False).splitlines()
    lines[number - 1] = edit(lines[number - 1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- fit: bad tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A data file that is refused, and where the error must say the problem is."""

    write: Callable[[Path, pd.DataFrame], Path]  # (directory, churn frame) -> the data file
    message: str  # a regular expression the error message matches
    column: str | None = None
    row: int | None = None
    line: int | None = None
    target: str = "churned"
    columns: dict[str, str] = field(default_factory=dict)  # --column NAME=KIND


def _one_class(directory, frame):
    return write_rows(directory / "one-class.csv", frame.assign(churned="yes"))


def _all_missing_column(directory, frame):
    return write_rows(directory / "all-missing.csv", frame.assign(empty=np.nan))


def _all_missing_target(directory, frame):
    return write_rows(directory / "no-labels.csv", frame.assign(churned=np.nan))


def _infinity(directory, frame):
    frame.loc[5, "monthly"] = np.inf
    return write_rows(directory / "infinity.csv", frame)


def _infinity_after_an_unlabelled_row(directory, frame):
    # The unlabelled row is dropped before training: the error must still name the file's row.
    frame.loc[2, "churned"] = np.nan
    frame.loc[5, "monthly"] = -np.inf
    return write_rows(directory / "infinity.csv", frame)


def _empty(directory, frame):
    path = directory / "empty.csv"
    path.write_bytes(b"")
    return path


def _header_only(directory, frame):
    path = directory / "header.csv"
    path.write_text(",".join(frame.columns) + "\n", encoding="utf-8")
    return path


def _too_many_fields(directory, frame):
    return edit_line(directory / "ragged.csv", frame, 6, lambda line: line + ",surplus")


def _too_few_fields(directory, frame):
    return edit_line(directory / "ragged.csv", frame, 6, lambda line: line.rsplit(",", 1)[0])


def _not_utf8(directory, frame):
    frame.loc[9, "plan"] = "café"
    path = directory / "latin-1.csv"
    frame.to_csv(path, index=False, encoding="latin-1")  # é is the single byte 0xe9
    return path


FIT_REFUSALS = {
    "missing target column": Refusal(
        lambda directory, frame: write_rows(directory / "churn.csv", frame),
        message="target column 'cancelled' not found",
        column="cancelled",
        target="cancelled",
    ),
    "target with one class": Refusal(_one_class, message="single value", column="churned"),
    "target with no values": Refusal(_all_missing_target, message="no values", column="churned"),
    "all-missing column forced as a number": Refusal(
        _all_missing_column,
        message="every value is missing",
        column="empty",
        columns={"empty": "number"},
    ),
    "infinity in a number": Refusal(
        _infinity, message="expected a finite number", column="monthly", row=6, line=7
    ),
    "infinity after an unlabelled row": Refusal(
        _infinity_after_an_unlabelled_row,
        message="expected a finite number",
        column="monthly",
        row=6,
        line=7,
    ),
    "empty file": Refusal(_empty, message="file is empty"),
    "header only": Refusal(_header_only, message="no data rows"),
    "row with too many fields": Refusal(
        _too_many_fields, message="expected 7 fields .*found 8", row=5, line=6
    ),
    "row with too few fields": Refusal(
        _too_few_fields, message="expected 7 fields .*found 6", row=5, line=6
    ),
    "bytes that are not UTF-8": Refusal(_not_utf8, message="not valid UTF-8", line=11),
}


@pytest.mark.filterwarnings(
    "ignore::deepstrata.errors.DataWarning"
)  # rows left out, columns ignored
@pytest.mark.parametrize("case", FIT_REFUSALS.values(), ids=FIT_REFUSALS.keys())
def test_fit_refuses_bad_data_naming_the_place(tmp_path, churn_frame, case):
    data = case.write(tmp_path, churn_frame)
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match=case.message) as caught:
        deepstrata.fit(data, target=case.target, columns=case.columns, **FAST)
    error = caught.value
    assert (error.file, error.column, error.row, error.line) == (
        str(data),
        case.column,
        case.row,
        case.line,
    )
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", FIT_REFUSALS.values(), ids=FIT_REFUSALS.keys())
def test_fit_command_refuses_bad_data_and_writes_nothing(tmp_path, churn_frame, cli, case):
    data = case.write(tmp_path, churn_frame)
    out = tmp_path / "runs" / "bundle"
    before = snapshot(tmp_path)
    overrides = [
        arg for name, kind in case.columns.items() for arg in ("--column", f"{name}={kind}")
    ]
    result = cli("fit", data, "--target", case.target, "--out", out, *overrides, *CLI_FAST)
    line = result.error_line()
    assert re.search(case.message, line), line
    assert_names_place(line, file=data, column=case.column, row=case.row, line_number=case.line)
    assert snapshot(tmp_path) == before  # no bundle, no runs/ folder, no staging directory


def test_an_all_missing_column_is_ignored_with_a_warning(tmp_path, churn_frame, cli):
    data = write_rows(tmp_path / "all-missing.csv", churn_frame.assign(empty=np.nan))
    with pytest.warns(DataWarning, match="'empty' is ignored: every value is missing"):
        model = deepstrata.fit(data, target="churned", **FAST)
    assert "empty" not in {f.name for f in model.schema.inputs}
    assert next(f for f in model.schema.features if f.name == "empty").role == "ignore"

    result = cli("fit", data, "--target", "churned", "--out", tmp_path / "bundle", *CLI_FAST)
    assert result.code == 0, result.err
    assert any("'empty'" in line for line in result.warning_lines()), result.err
    assert (tmp_path / "bundle" / "manifest.json").is_file()


def test_missing_numbers_are_imputed_at_fit_and_at_predict(tmp_path, churn_frame, cli):
    churn_frame.loc[::7, "monthly"] = np.nan
    data = write_rows(tmp_path / "gaps.csv", churn_frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # missing numbers are normal: no warning
        model = deepstrata.fit(data, target="churned", **FAST)
        probabilities = model.predict_proba(data)
    assert np.isfinite(probabilities).all()

    bundle, predictions = tmp_path / "bundle", tmp_path / "predictions.csv"
    assert cli("fit", data, "--target", "churned", "--out", bundle, *CLI_FAST).code == 0
    result = cli("predict", bundle, data, "-o", predictions, "--proba")
    assert result.code == 0, result.err
    written = pd.read_csv(predictions)
    assert len(written) == len(churn_frame)
    assert written[["proba_no", "proba_yes"]].notna().all().all()


def test_a_number_first_missing_at_predict_is_imputed(
    tmp_path, churn_frame, fitted_churn_bundle, cli
):
    churn_frame.loc[::5, "monthly"] = np.nan  # never missing in the training rows
    data = write_rows(tmp_path / "new.csv", churn_frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        probabilities = deepstrata.load(fitted_churn_bundle).predict_proba(data)
    assert np.isfinite(probabilities).all()
    result = cli("predict", fitted_churn_bundle, data, "--proba")
    assert result.code == 0 and result.err == "", result.err
    assert len(pd.read_csv(io.StringIO(result.out))) == len(churn_frame)


# -- predict: bad tables ------------------------------------------------------------------------


def _predict_infinity(directory, frame):
    frame.loc[5, "tenure"] = np.inf
    return write_rows(directory / "new.csv", frame)


def _predict_text_in_a_number(directory, frame):
    frame["monthly"] = frame["monthly"].astype(object)
    frame.loc[9, "monthly"] = "n/a yet"
    return write_rows(directory / "new.csv", frame)


def _predict_missing_column(directory, frame):
    return write_rows(directory / "new.csv", frame.drop(columns="plan"))


PREDICT_REFUSALS = {
    "infinity in a number": Refusal(
        _predict_infinity, message="expected a finite number", column="tenure", row=6, line=7
    ),
    "text in a number column": Refusal(
        _predict_text_in_a_number,
        message="expected a number, got 'n/a yet'",
        column="monthly",
        row=10,
        line=11,
    ),
    "missing input column": Refusal(
        _predict_missing_column, message="input column 'plan' missing", column="plan"
    ),
}


@pytest.mark.parametrize("case", PREDICT_REFUSALS.values(), ids=PREDICT_REFUSALS.keys())
def test_predict_refuses_bad_data_naming_the_place(
    tmp_path, churn_frame, fitted_churn_bundle, case
):
    data = case.write(tmp_path, churn_frame)
    model = deepstrata.load(fitted_churn_bundle)
    for predict in (model.predict, model.predict_proba, model.predictions, model.evaluate):
        with pytest.raises(DataError, match=case.message) as caught:
            predict(data)
        error = caught.value
        assert (error.file, error.column, error.row, error.line) == (
            str(data),
            case.column,
            case.row,
            case.line,
        )


@pytest.mark.parametrize("case", PREDICT_REFUSALS.values(), ids=PREDICT_REFUSALS.keys())
def test_predict_command_refuses_bad_data_and_writes_nothing(
    tmp_path, churn_frame, fitted_churn_bundle, cli, case
):
    data = case.write(tmp_path, churn_frame)
    output = tmp_path / "out" / "predictions.csv"
    before = snapshot(tmp_path)
    line = cli("predict", fitted_churn_bundle, data, "-o", output, "--proba").error_line()
    assert re.search(case.message, line), line
    assert_names_place(line, file=data, column=case.column, row=case.row, line_number=case.line)
    assert snapshot(tmp_path) == before  # no predictions file, no temporary file, no out/ folder


def test_infinity_in_a_data_frame_names_the_row(churn_frame, fitted_churn_bundle):
    churn_frame.loc[5, "tenure"] = np.inf
    with pytest.raises(DataError, match="finite") as caught:
        deepstrata.load(fitted_churn_bundle).predict(churn_frame)
    error = caught.value
    assert (error.file, error.column, error.row, error.line) == ("<DataFrame>", "tenure", 6, None)


def test_a_bad_value_is_shown_as_the_user_wrote_it(tmp_path, churn_frame, fitted_churn_bundle):
    data = _predict_infinity(tmp_path, churn_frame)
    with pytest.raises(DataError) as caught:
        deepstrata.load(fitted_churn_bundle).predict(data)
    assert "np." not in caught.value.message, caught.value.message
    assert caught.value.message.endswith("got inf"), caught.value.message


def test_an_unseen_category_is_predicted_with_a_warning(
    tmp_path, churn_frame, fitted_churn_bundle, cli
):
    churn_frame.loc[7, "plan"] = "platinum"
    data = write_rows(tmp_path / "new.csv", churn_frame)
    model = deepstrata.load(fitted_churn_bundle)
    with pytest.warns(DataWarning, match=r"column 'plan'.*'platinum'"):
        labels = model.predict(data)
    assert len(labels) == len(churn_frame)

    output = tmp_path / "predictions.csv"
    result = cli("predict", fitted_churn_bundle, data, "-o", output)
    assert result.code == 0, result.err
    assert any("column 'plan'" in line and "platinum" in line for line in result.warning_lines())
    assert not [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(pd.read_csv(output)) == len(churn_frame)


# -- bundles that cannot be trusted -------------------------------------------------------------


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["weights.safetensors", "config.json"])
def test_a_flipped_byte_is_refused_naming_the_file(tmp_path, churn_csv, churn_bundle, cli, name):
    flip_a_byte(churn_bundle / name)
    with pytest.raises(BundleError, match=rf"{re.escape(name)}.*changed") as caught:
        deepstrata.load(churn_bundle)
    assert caught.value.path == str(churn_bundle)
    output = tmp_path / "predictions.csv"
    line = cli("predict", churn_bundle, churn_csv, "-o", output).error_line()
    assert name in line and str(churn_bundle) in line, line
    assert not output.exists() and leftovers_beside(output) == []
    assert name in cli("evaluate", churn_bundle, churn_csv).error_line()


class _WritesAFileWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_an_extra_pickle_is_refused_and_never_opened(tmp_path, churn_csv, churn_bundle, cli):
    marker = tmp_path / "unpickled"
    (churn_bundle / "model.pkl").write_bytes(pickle.dumps(_WritesAFileWhenUnpickled(marker)))
    with pytest.raises(BundleError, match=r"unexpected file 'model\.pkl'") as caught:
        deepstrata.load(churn_bundle)
    assert caught.value.path == str(churn_bundle)
    line = cli("predict", churn_bundle, churn_csv).error_line()
    assert "model.pkl" in line, line
    assert not marker.exists()


@pytest.mark.parametrize(
    "name", ["weights.safetensors", "config.json", "metrics.json", "manifest.json"]
)
def test_a_missing_file_is_refused_naming_it(tmp_path, churn_csv, churn_bundle, cli, name):
    (churn_bundle / name).unlink()
    with pytest.raises(BundleError, match=rf"{re.escape(name)}.*missing") as caught:
        deepstrata.load(churn_bundle)
    assert caught.value.path == str(churn_bundle)
    line = cli("predict", churn_bundle, churn_csv, "-o", tmp_path / "p.csv").error_line()
    assert name in line, line
    assert not (tmp_path / "p.csv").exists()


# -- writing bundles: never over an old one by accident, never half --------------------------------


def test_fit_onto_an_existing_bundle_is_refused_before_training(
    churn_csv, churn_bundle, cli, monkeypatch
):
    before = snapshot(churn_bundle)

    def no_training(*args, **kwargs):
        raise AssertionError("training started although --out exists")

    monkeypatch.setattr(deepstrata.api, "fit", no_training)
    line = cli(
        "fit", churn_csv, "--target", "churned", "--out", churn_bundle, *CLI_FAST
    ).error_line()
    assert "--out" in line and str(churn_bundle) in line and "--overwrite" in line, line
    assert snapshot(churn_bundle) == before
    assert leftovers_beside(churn_bundle) == []
    deepstrata.load(churn_bundle)


def test_saving_onto_an_existing_bundle_needs_overwrite(churn_frame, churn_bundle):
    before = snapshot(churn_bundle)
    model = deepstrata.fit(churn_frame, target="churned", **FAST)
    with pytest.raises(BundleError, match="already exists") as caught:
        model.save(churn_bundle)
    assert caught.value.path == str(churn_bundle)
    assert snapshot(churn_bundle) == before


def test_fit_with_overwrite_replaces_the_bundle(tmp_path, churn_csv, churn_bundle, cli):
    old_config = json.loads((churn_bundle / "config.json").read_text())
    (churn_bundle / "notes.txt").write_text("an old file the new bundle must not keep")
    args = ("--overwrite", "--max-epochs", "2", "--seed", "7", "--quiet", "--no-ensemble")
    result = cli("fit", churn_csv, "--target", "churned", "--out", churn_bundle, *args)
    assert result.code == 0, result.err
    assert sorted(p.name for p in churn_bundle.iterdir()) == [
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
    config = json.loads((churn_bundle / "config.json").read_text())
    assert old_config["training"]["max_epochs"] != 2
    assert (config["training"]["max_epochs"], config["training"]["seed"]) == (2, 7)
    assert leftovers_beside(churn_bundle) == []
    deepstrata.load(churn_bundle)


def test_fit_with_overwrite_and_bad_data_keeps_the_old_bundle(
    tmp_path, churn_frame, churn_bundle, cli
):
    data = _infinity(tmp_path, churn_frame)
    before = snapshot(churn_bundle)
    result = cli(
        "fit", data, "--target", "churned", "--out", churn_bundle, "--overwrite", *CLI_FAST
    )
    assert "expected a finite number" in result.error_line()
    assert snapshot(churn_bundle) == before
    assert leftovers_beside(churn_bundle) == []


@pytest.mark.parametrize(
    ("crash", "expected"),
    [(OSError("No space left on device"), BundleError), (KeyboardInterrupt(), KeyboardInterrupt)],
)
def test_a_crash_while_writing_leaves_no_half_bundle(
    tmp_path, churn_frame, monkeypatch, crash, expected
):
    model = deepstrata.fit(churn_frame, target="churned", **FAST)

    def save_file(*args, **kwargs):
        raise crash

    monkeypatch.setattr("deepstrata.bundle.write.save_file", save_file)
    target = tmp_path / "runs" / "bundle"
    with pytest.raises(expected):  # a full disk is the user's to fix: a BundleError, no traceback
        model.save(target)
    assert not target.exists()
    assert leftovers_beside(target) == []


def test_a_crash_while_overwriting_keeps_the_old_bundle(
    tmp_path, churn_frame, churn_bundle, monkeypatch
):
    model = deepstrata.fit(churn_frame, target="churned", **FAST)
    before = snapshot(churn_bundle)

    def save_file(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("deepstrata.bundle.write.save_file", save_file)
    with pytest.raises(BundleError, match="No space"):
        model.save(churn_bundle, overwrite=True)
    assert snapshot(churn_bundle) == before
    assert leftovers_beside(churn_bundle) == []
    deepstrata.load(churn_bundle)


# -- configuration mistakes ---------------------------------------------------------------------


def test_an_unknown_column_override_is_a_config_error(churn_csv):
    with pytest.raises(ConfigError, match="did you mean 'tenure'") as caught:
        deepstrata.fit(churn_csv, target="churned", columns={"tenur": "number"}, **FAST)
    assert caught.value.option == "--column"


# -- no code path can unpickle ------------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve"}
UNSAFE_CALLS = {"torch.load", "pickle.load", "pickle.loads", "joblib.load"}
UNSAFE_ATTRIBUTES = {"read_pickle", "to_pickle"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def unsafe_uses(source: str) -> list[str]:
    """Imports of pickling modules, calls that unpickle, and ``allow_pickle=True``, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in UNSAFE_MODULES:
                found.append(module)
            found += [
                f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in UNSAFE_CALLS
            ]
        elif isinstance(node, ast.Attribute) and (
            _dotted(node) in UNSAFE_CALLS or node.attr in UNSAFE_ATTRIBUTES
        ):
            found.append(_dotted(node))
        elif isinstance(node, ast.keyword) and node.arg in ("allow_pickle", "weights_only"):
            found.append(f"{node.arg}=")
    return found


def test_the_scan_finds_what_it_looks_for():
    source = (
        "import pickle\nfrom joblib import dump\nfrom torch import load\nimport torch\n"
        "torch.load('w.pt')\nframe.to_pickle('x')\nnp.load('a', allow_pickle=True)\n"
    )
    assert sorted(unsafe_uses(source)) == [
        "allow_pickle=",
        "frame.to_pickle",
        "joblib",
        "pickle",
        "torch.load",
        "torch.load",
    ]


# The one exception, kept to one line: EfficientNet-Lite0's weights ship as a .pth, which
# torch reads with its restricted unpickler (weights_only=True: tensors and plain
# containers only, no code). It reads an installed package's file, never a bundle.
WEIGHTS_ONLY_LOAD = "pretrained/efficientnet.py"


def test_no_module_can_unpickle():
    offenders = {
        path.relative_to(PACKAGE).as_posix(): uses
        for path in sorted(PACKAGE.rglob("*.py"))
        if (uses := unsafe_uses(path.read_text(encoding="utf-8")))
    }
    assert offenders.pop(WEIGHTS_ONLY_LOAD) == ["torch.load", "weights_only="]
    assert offenders == {}
    source = (PACKAGE / WEIGHTS_ONLY_LOAD).read_text(encoding="utf-8")
    assert len(re.findall(r"torch\.load\(", source)) == 1
    assert re.search(r"torch\.load\([^)]*weights_only=True[^)]*\)", source)
    # Belt and braces: the plain text, in case a call hides from the syntax tree (getattr, exec).
    pattern = re.compile(r"\b(import\s+(pickle|joblib|dill|cloudpickle)|torch\s*\.\s*load\b)")
    texts = {
        path: path.read_text(encoding="utf-8")
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).as_posix() != WEIGHTS_ONLY_LOAD
    }
    assert [str(path) for path, text in texts.items() if pattern.search(text)] == []

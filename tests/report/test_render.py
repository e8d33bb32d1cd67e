"""report.html: rendered from real tiny fits, with the files fit is about to add
(validation_predictions.csv, data_summary.json) and compare.json made here from the
model's own predictions, as their producers will write them."""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import deepstrata
from deepstrata.bundle.manifest import sha256_of
from deepstrata.cli.report import report
from deepstrata.errors import BundleError
from deepstrata.report.html import fmt
from deepstrata.report.plots import learning_curve_png
from deepstrata.report.render import render_report, write_report
from deepstrata.report.validation import cell
from tests.conftest import make_churn_frame, torch_threads

PNG = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<script>alert(1)</script>"
VOID = {"meta", "img", "br", "hr", "input", "link", "col", "wbr", "source"}


# -- helpers ---------------------------------------------------------------------------------------


def bundle_files(folder: Path) -> dict[str, bytes]:
    """What render_report gets from fit: the bundle's files but the manifest."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "manifest.json"}


def predictions_csv(model, frame: pd.DataFrame, rows, data=None, paths=None) -> bytes:
    """validation_predictions.csv as fit will write it, for ``rows`` (labels of ``frame``);
    ``data`` is what the model predicts from (default: those rows of ``frame``)."""
    part = frame.loc[rows]
    data = part if data is None else data
    out = pd.DataFrame(
        {
            "_row": np.asarray(rows) + 1,
            "_target": part[model.schema.target].to_numpy(),
            "_prediction": model.predict(data),
        }
    )
    if model.task != "regression":
        for index, label in enumerate(model.classes):
            out[f"_proba:{label}"] = model.predict_proba(data)[:, index]
    for feature in model.schema.inputs:
        out[feature.name] = part[feature.name].to_numpy() if paths is None else paths
    return out.to_csv(index=False).encode()


def data_summary(model, frame: pd.DataFrame, source: str, validation: int) -> bytes:
    target = model.schema.target
    summary: dict = {"name": target, "task": model.task}
    if model.task == "regression":
        column = frame[target]
        summary["summary"] = {
            "mean": float(column.mean()),
            "std": float(column.std()),
            "min": float(column.min()),
            "max": float(column.max()),
        }
    else:
        summary["classes"] = {str(k): int(v) for k, v in frame[target].value_counts().items()}
    return json.dumps(
        {
            "source": source,
            "rows": len(frame),
            "split": {"train": len(frame) - validation, "validation": validation},
            "columns": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "role": f.role,
                    "missing": int(frame[f.name].isna().sum()),
                    "distinct": int(frame[f.name].nunique()),
                }
                for f in model.schema.features
            ],
            "target": summary,
        }
    ).encode()


def fitted_files(tmp: Path, frame: pd.DataFrame, target: str, **options) -> dict[str, bytes]:
    """A tiny real fit on ``frame``, saved; 40 of its rows stand for the validation rows."""
    with torch_threads(1):
        model = deepstrata.fit(frame, target=target, max_epochs=2, progress=False, **options)
        files = bundle_files(model.save(tmp / "bundle"))
        rows = frame.sample(40, random_state=0).index
        files["validation_predictions.csv"] = predictions_csv(model, frame, rows)
    files["data_summary.json"] = data_summary(model, frame, f"/data/{target}.csv", len(rows))
    return files


class Page(HTMLParser):
    """The parts of a page the tests look at; fails on an end tag that closes nothing."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.open: list[str] = []
        self.images: list[dict] = []
        self.links: list[str] = []
        self.sections: list[str] = []
        self.scripts = 0
        self.feed(text)
        self.close()
        assert self.open == [], f"unclosed tags: {self.open}"

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag not in VOID:
            self.open.append(tag)
        if tag == "img":
            self.images.append(attributes)
        if tag == "script":
            self.scripts += 1
        if tag == "section":
            self.sections.append(attributes["id"])
        self.links += [v for k, v in attrs if k in ("href", "src", "action") and v]

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def check_page(text: str) -> Page:
    """What every report must be: one well-formed, self-contained document, small."""
    assert text.startswith("<!DOCTYPE html>")
    page = Page(text)
    assert page.scripts == 0
    assert "default-src 'none'" in text  # the page's CSP: nothing may load from elsewhere
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert all(link.startswith(("data:image/", "#")) for link in page.links), page.links
    assert all(image["alt"] for image in page.images)
    assert len(text.encode()) < 1_500_000
    return page


def section(text: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', text, re.DOTALL)
    assert match, f"no section {key!r}"
    return match.group(1)


def first_cells(text: str) -> list[str]:
    """The first cell of every body row of the tables in ``text``."""
    return re.findall(r"<tr><td[^>]*>(.*?)</td>", text)


# -- fixtures: one tiny fit per task, shared by the module -------------------------------------------


@pytest.fixture(scope="module")
def binary(fitted_churn_bundle) -> dict[str, bytes]:
    frame = make_churn_frame()
    model = deepstrata.load(fitted_churn_bundle)
    files = bundle_files(fitted_churn_bundle)
    rows = frame.index[-40:]
    files["validation_predictions.csv"] = predictions_csv(model, frame, rows)
    files["data_summary.json"] = data_summary(model, frame, "/data/churn.csv", len(rows))
    return files


@pytest.fixture(scope="module")
def light(binary) -> dict[str, bytes]:
    """The binary bundle's files without the figures' inputs: for the sections from metrics."""
    return {
        k: v for k, v in binary.items() if k not in ("validation_predictions.csv", "lr_range.png")
    }


@pytest.fixture(scope="module")
def binary_page(binary) -> str:
    return render_report(binary)


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory) -> dict[str, bytes]:
    frame = pd.read_csv(Path(deepstrata.__file__).parent / "datasets" / "penguins.csv")
    return fitted_files(tmp_path_factory.mktemp("penguins"), frame, "species")


@pytest.fixture(scope="module")
def regression(tmp_path_factory) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"size": rng.uniform(20, 200, 160), "rooms": rng.integers(1, 6, 160)})
    frame["city"] = rng.choice(["north", "south"], 160)
    frame["price"] = 3 * frame["size"] + 20 * frame["rooms"] + rng.normal(0, 15, 160)
    return fitted_files(tmp_path_factory.mktemp("houses"), frame, "price")


# -- the page, per task ------------------------------------------------------------------------------


def test_binary_report_has_every_section_in_order(binary_page):
    page = check_page(binary_page)
    assert page.sections == [
        "summary",
        "data",
        "classes",
        "curves",
        "calibration",
        "worst",
        "training",
        "configuration",
        "card",  # every report carries a model card (tests/report/test_card.py)
    ]
    for key in page.sections:  # the table of contents links every section
        assert f'<a href="#{key}">' in binary_page
    assert "Predict <code>churned</code>" in binary_page
    assert "task binary, 2 classes" in binary_page and "data churn.csv" in binary_page
    # figures: confusion matrix, ROC/PR, reliability, training curves, the range test
    assert len(page.images) == 5
    assert all(image["src"].startswith("data:image/png;base64,") for image in page.images)
    assert "positive class: yes." in binary_page
    data = section(binary_page, "data")
    assert "200 rows; 160 for training, 40 held out for validation" in data
    assert "tenure" in data and "9 (4.5%)" in data  # the missing tenures, every 23rd row
    assert "most often predicted instead" in section(binary_page, "classes")
    assert "no training curves" not in binary_page


def test_worst_examples_are_the_rows_least_sure_of_their_class(binary, binary_page):
    predictions = pd.read_csv(
        io.BytesIO(binary["validation_predictions.csv"]), dtype={"_target": str}
    )
    p_true = np.where(
        predictions["_target"] == "yes", predictions["_proba:yes"], predictions["_proba:no"]
    )
    expected = predictions["_row"].to_numpy()[np.argsort(p_true, kind="stable")[:10]]
    worst = section(binary_page, "worst")
    assert first_cells(worst) == [str(row) for row in expected]
    assert "<th>plan</th>" in worst and "<th>customer_id</th>" not in worst  # inputs only


def test_multiclass_report_lists_every_class(multiclass):
    text = render_report(multiclass)
    check_page(text)
    classes = section(text, "classes")
    assert sorted(first_cells(classes)) == ["Adelie", "Chinstrap", "Gentoo"]
    assert "one class against the rest." in section(text, "curves")
    assert "confidence (highest probability)" not in text  # it is in the figure, not the page
    assert "class balance of species" in section(text, "data")


def test_regression_report_has_residuals_not_a_confusion_matrix(regression):
    text = render_report(regression)
    page = check_page(text)
    assert "regression" in page.sections and "worst" in page.sections
    assert not {"classes", "curves", "calibration"} & set(page.sections)
    assert "distribution of price" in text and "RMSE" in text
    predictions = pd.read_csv(io.BytesIO(regression["validation_predictions.csv"]))
    error = (predictions["_prediction"] - predictions["_target"]).abs().to_numpy()
    expected = predictions["_row"].to_numpy()[np.argsort(-error, kind="stable")[:10]]
    assert first_cells(section(text, "worst")) == [str(row) for row in expected]


def test_a_features_model_says_why_it_has_no_curves(light):
    metrics = json.loads(light["metrics.json"])
    metrics["history"] = {"epochs": [], "best_epoch": 0, "stopped": "head logreg fit on embeddings"}
    metrics["strategy"] = {"used": "features", "requested": "auto", "reason": "small data"}
    metrics["head"] = {
        "chosen": "logreg",
        "requested": "auto",
        "candidates": [
            {"head": "logreg", "score": 0.91, "scored_by": "validation", "seconds": 0.2},
            {"head": "svm", "skipped": "more than 20000 training rows"},
        ],
    }
    files = {**light, "metrics.json": json.dumps(metrics).encode()}
    files.pop("metrics.jsonl")
    text = render_report(files)
    page = check_page(text)
    training = section(text, "training")
    assert (
        "no training curves: the features strategy fits a logreg head on pretrained "
        "embeddings, without epochs." in training
    )
    assert "model" in page.sections
    assert "more than 20000 training rows" in section(text, "model")


def test_cross_validation_and_ensemble_sections(light):
    metrics = json.loads(light["metrics.json"])
    per_fold = [{"accuracy": 0.8 + 0.01 * k, "best_epoch": k + 2} for k in range(3)]
    metrics["cross_validation"] = {
        "folds": 3,
        "model": "refit",
        "mean": {"accuracy": 0.81},
        "std": {"accuracy": 0.0082},
        "per_fold": per_fold,
    }
    metrics["ensemble"] = {
        "kept": False,
        "reason": "the ensemble was not better on validation",
        "weight_network": 0.5,
        "classical": "gbm",
        "validation": {"network": 0.8, "classical": 0.78, "ensemble": 0.79},
        "metric": "accuracy",
    }
    del metrics["history"]  # a K-fold ensemble: each fold's epochs are in metrics.jsonl
    folds = [
        json.dumps({"fold": fold, "epoch": epoch, "loss": 1 / epoch, "val_loss": 1.2 / epoch})
        for fold in (1, 2, 3)
        for epoch in (1, 2, 3)
    ]
    metrics_jsonl = "\n".join(folds).encode()
    text = render_report(
        {**light, "metrics.json": json.dumps(metrics).encode(), "metrics.jsonl": metrics_jsonl}
    )
    page = check_page(text)
    assert [image["alt"] for image in page.images] == ["training curves"]
    assert "0.8100 ± 0.0082" in section(text, "cross-validation")
    model = section(text, "model")
    assert "network + gbm ensemble: not kept" in model and "not better on validation" in model


def test_learning_curves_from_compare(light):
    points = [
        {"family": f, "fraction": fr, "rows": int(160 * fr), "seed": s, "value": v, "seconds": 1.0}
        for f, base in (("network", 0.7), ("gbm", 0.75))
        for fr in (0.25, 1.0)
        for s, v in ((0, base + fr / 10), (1, base + fr / 8), (2, float("nan")))
    ]
    compare = {
        "data": "churn.csv",
        "target": "churned",
        "metric": "accuracy",
        "higher_is_better": True,
        "test_rows": 40,
        "fractions": [0.25, 1.0],
        "seeds": [0, 1, 2],
        "points": points,
        "skipped": {"svm": "too many rows for an SVM"},
        "winners": [{"fraction": 1.0, "rows": 160, "family": "gbm", "mean": 0.86}],
    }
    text = render_report({**light, "compare.json": json.dumps(compare).encode()})
    check_page(text)
    curves = section(text, "compare")
    assert first_cells(curves) == ["1"] and "gbm" in curves and "svm skipped" in curves


def test_learning_curve_png_is_a_small_png():
    png = learning_curve_png(
        {
            "metric": "rmse",
            "higher_is_better": False,
            "points": [
                {"family": "$5 net$", "fraction": f, "rows": r, "seed": s, "value": 10 / r + s}
                for f, r in ((0.5, 50), (1.0, 100))
                for s in (0, 1)
            ],
        }
    )
    assert png.startswith(PNG) and len(png) < 60_000
    assert learning_curve_png({"metric": "rmse", "points": []}).startswith(PNG)


# -- what is missing, what is hostile ------------------------------------------------------------------


def test_a_bundle_with_only_its_config_still_renders(binary):
    text = render_report({"config.json": binary["config.json"]})
    page = check_page(text)
    assert page.images == []
    assert "no validation_predictions.csv in the bundle" in text
    assert "no training curves: the bundle records no per-epoch history." in text
    bare = render_report({k: binary[k] for k in ("config.json", "metrics.json")})
    assert [image["alt"] for image in check_page(bare).images] == ["training curves"]
    assert "suggested" in section(bare, "training")  # the sweep's rule, without its plot


def test_unreadable_files_are_bundle_errors(binary):
    with pytest.raises(BundleError, match=r"config\.json is missing"):
        render_report({"metrics.json": binary["metrics.json"]})
    with pytest.raises(BundleError, match=r"metrics\.json is not valid JSON"):
        render_report({**binary, "metrics.json": b"{"})
    with pytest.raises(BundleError, match="lacks the column"):
        render_report({**binary, "validation_predictions.csv": b"a,b\n1,2\n"})


def test_hostile_names_and_values_are_escaped(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            HOSTILE: rng.normal(size=60),
            "note": rng.choice(['<img src=x onerror="alert(2)">', "a & b"], 60),
            "label": rng.choice(["<b>bold</b>", "$5-$10"], 60),
        }
    )
    text = render_report(fitted_files(tmp_path, frame, "label", learning_rate=0.01))
    check_page(text)
    assert HOSTILE not in text and "<b>bold</b>" not in text and "<img src=x" not in text
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in section(text, "worst")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section(text, "worst")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section(text, "data")
    assert "&lt;b&gt;bold&lt;/b&gt;" in section(text, "classes")


def test_cells_are_cut_and_numbers_formatted():
    assert str(cell("x" * 500, "text")).endswith("…") and len(cell("x" * 500, "text")) == 160
    assert len(cell("y" * 100, "category")) == 40
    assert "missing" in cell("", "number")
    assert [cell("42.41984705035103", "number"), cell("4.0", "number")] == ["42.4198", "4.0"]
    assert [fmt(1234), fmt(np.int64(7)), fmt(0.98554), fmt(3.2e-5), fmt(float("nan"))] == [
        "1,234",
        "7",
        "0.9855",
        "3.2e-05",
        "—",
    ]


def test_image_rows_show_thumbnails_while_the_file_exists(tmp_path):
    from PIL import Image

    from deepstrata.data.sources import read_table

    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for label, color in (("cat", (200, 60, 60)), ("dog", (60, 60, 200))):
        (root / label).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(np.array(color) + rng.normal(0, 30, (12, 16, 3)), 0, 255)
            Image.fromarray(pixels.astype("uint8")).save(root / label / f"{i}.png")
    table = read_table(root)
    paths = [str(root / name) for name in table.frame["image"]]
    with torch_threads(1):
        model = deepstrata.fit(
            table,
            max_epochs=1,
            progress=False,
            strategy="scratch",
            image_size=16,
            image_width=4,
            image_depth=1,
            learning_rate=0.01,
        )
        files = bundle_files(model.save(tmp_path / "bundle"))
        files["validation_predictions.csv"] = predictions_csv(
            model, table.frame, table.frame.index, data=table, paths=paths
        )
    thumbnails = [i for i in check_page(render_report(files)).images if i.get("class") == "thumb"]
    assert len(thumbnails) == 10
    assert all(image["src"].startswith("data:image/jpeg;base64,") for image in thumbnails)
    moved = thumbnails[0]["title"]
    Path(moved).unlink()  # a file moved since the fit: its path is shown instead
    text = render_report(files)
    assert len([i for i in check_page(text).images if i.get("class") == "thumb"]) == 9
    assert f'<span class="path">{moved}</span>' in section(text, "worst")


# -- into a bundle, and the command --------------------------------------------------------------------


def test_write_report_rehashes_the_manifest_and_the_bundle_still_loads(churn_bundle):
    started = time.perf_counter()
    path = write_report(churn_bundle)
    seconds = time.perf_counter() - started
    assert path == churn_bundle / "report.html"
    manifest = json.loads((churn_bundle / "manifest.json").read_text())
    assert manifest["files"]["report.html"]["sha256"] == sha256_of(path)
    assert manifest["versions"]["deepstrata"] == deepstrata.__version__
    assert not list(churn_bundle.parent.glob(".*partial"))
    check_page(path.read_text(encoding="utf-8"))
    deepstrata.load(churn_bundle)  # verifies every hash
    write_report(churn_bundle)  # again: report.html is replaced, not read as an input
    deepstrata.load(churn_bundle)
    assert seconds < 20  # a small bundle renders in about a second


def test_write_report_refuses_a_changed_bundle(churn_bundle):
    before = (churn_bundle / "report.html").read_bytes()  # fit wrote one
    manifest = (churn_bundle / "manifest.json").read_bytes()
    (churn_bundle / "metrics.json").write_text("{}")
    with pytest.raises(BundleError, match="sha256 mismatch") as error:
        write_report(churn_bundle)
    assert str(churn_bundle) in str(error.value)
    assert (churn_bundle / "report.html").read_bytes() == before
    assert (churn_bundle / "manifest.json").read_bytes() == manifest


def test_report_command(churn_bundle, tmp_path):
    app = typer.Typer()
    app.command("report")(report)
    app.command("other")(lambda: None)  # two commands: `report` is named, as in the CLI
    result = CliRunner().invoke(app, ["report", str(churn_bundle)])
    assert result.exit_code == 0, result.output
    assert f"report written to {churn_bundle / 'report.html'}" in result.output
    deepstrata.load(churn_bundle)
    missing = tmp_path / "nowhere"
    with pytest.raises(BundleError, match="does not exist") as error:
        report(missing)
    assert str(missing) in str(error.value)
    shutil.copy(churn_bundle / "config.json", tmp_path / "file.json")
    with pytest.raises(BundleError, match="is not a directory"):
        report(tmp_path / "file.json")


def test_a_compare_beside_the_bundle_goes_into_it_and_its_report(tmp_path):
    """`deepstrata compare` writes runs/churn.compare/; a bundle saved at runs/churn (by
    fit, or re-rendered by `deepstrata report`) carries its learning curves."""
    from deepstrata.compare.run import compare

    frame = make_churn_frame(rows=120)
    with torch_threads(1):
        result = compare(
            frame,
            target="churned",
            fractions=(0.5, 1.0),
            seeds=(0,),
            families=("network", "logreg"),
            progress=False,
            max_epochs=2,
        )
        beside = result.save(tmp_path / "churn.compare")
        model = deepstrata.fit(frame, target="churned", max_epochs=2, progress=False)
    bundle = model.save(tmp_path / "churn")
    assert (bundle / "compare.json").read_bytes() == (beside / "compare.json").read_bytes()
    curves = section((bundle / "report.html").read_text(encoding="utf-8"), "compare")
    assert "logreg" in curves and "<img" in curves  # the winners table and the plot
    deepstrata.load(bundle)

    plain = model.save(tmp_path / "other")  # nothing beside it: no learning curves
    assert not (plain / "compare.json").exists()
    shutil.copytree(beside, tmp_path / "other.compare")  # compare ran later: report re-renders
    write_report(plain)
    assert (plain / "compare.json").is_file()
    assert "logreg" in section((plain / "report.html").read_text(encoding="utf-8"), "compare")
    deepstrata.load(plain)


def test_a_report_that_fails_half_way_leaves_the_bundle_as_it_was(churn_bundle, monkeypatch):
    import deepstrata.bundle.write as write

    before = {p.name: p.read_bytes() for p in churn_bundle.iterdir()}
    (churn_bundle.parent / "bundle.compare").mkdir()
    compare = {"target": "churned", "metric": "accuracy", "points": []}
    (churn_bundle.parent / "bundle.compare" / "compare.json").write_text(json.dumps(compare))

    def crash(staging, target):
        raise OSError("disk full")

    monkeypatch.setattr(write, "publish", crash)
    with pytest.raises(OSError, match="disk full"):
        write_report(churn_bundle)
    assert {p.name: p.read_bytes() for p in churn_bundle.iterdir()} == before
    assert not list(churn_bundle.parent.glob(".*partial"))
    deepstrata.load(churn_bundle)


def test_a_compare_of_another_target_is_left_out_with_a_warning(churn_bundle):
    (churn_bundle.parent / "bundle.compare").mkdir()
    compare = {"target": "plan", "metric": "accuracy", "points": []}
    (churn_bundle.parent / "bundle.compare" / "compare.json").write_text(json.dumps(compare))
    with pytest.warns(UserWarning, match="about target 'plan', not 'churned'"):
        write_report(churn_bundle)
    assert not (churn_bundle / "compare.json").exists()
    deepstrata.load(churn_bundle)

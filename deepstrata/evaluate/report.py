"""report.html: one self-contained page about a bundle (inline CSS, embedded PNGs, no script).

``render_report(files)`` turns a bundle's files, by name, into the HTML document; each
section appears only when the files it needs are there. ``write_report(bundle_dir)``
writes it into a bundle and rehashes the manifest; ``report`` is the CLI command.
Everything a user named (columns, classes, cells, paths) is escaped.

Heavy libraries (numpy, pandas, scikit-learn, matplotlib) are imported inside the
functions, so the command line starts fast.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from deepstrata.errors import BundleError
from deepstrata.evaluate.html import CSP, CSS, Html, Section, esc, fmt, image, note, table

REPORT = "report.html"
PREDICTIONS = "validation_predictions.csv"
SUMMARY = "data_summary.json"
COMPARE = "compare.json"
METRIC_NAMES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "f1_macro": "F1 (macro)",
    "roc_auc": "ROC AUC",
    "log_loss": "log loss",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
}


@dataclass
class Inputs:
    """The bundle's files, parsed; absent optional files are None or empty."""

    config: dict
    metrics: dict
    files: Mapping[str, bytes]
    summary: dict | None = None
    compare: dict | None = None
    predictions: Any = None  # pandas.DataFrame of validation_predictions.csv, all text
    epochs: list[dict] = field(default_factory=list)

    @property
    def task(self) -> str:
        return str(self.config.get("schema", {}).get("task") or "unknown")

    @property
    def target(self) -> str:
        return str(self.config.get("schema", {}).get("target") or "?")

    @property
    def classifier(self) -> bool:
        return self.task in ("binary", "multiclass")

    def inputs(self) -> list[dict]:
        features = self.config.get("schema", {}).get("features", [])
        return [f for f in features if f.get("role") == "input"]


def _json(files: Mapping[str, bytes], name: str, required: bool = False) -> dict | None:
    if name not in files:
        if required:
            raise BundleError(f"{name} is missing: the report needs it")
        return None
    try:
        value = json.loads(files[name].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise BundleError(f"{name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise BundleError(f"{name} should hold a JSON object, not {type(value).__name__}")
    return value


def parse(files: Mapping[str, bytes]) -> Inputs:
    import pandas as pd

    inputs = Inputs(
        config=_json(files, "config.json", required=True),
        metrics=_json(files, "metrics.json") or {},
        files=files,
        summary=_json(files, SUMMARY),
        compare=_json(files, COMPARE),
    )
    inputs.epochs = list(inputs.metrics.get("history", {}).get("epochs") or [])
    if not inputs.epochs and "metrics.jsonl" in files:  # a K-fold ensemble logs every fold here
        lines = files["metrics.jsonl"].decode("utf-8", "replace").splitlines()
        try:
            inputs.epochs = [json.loads(line) for line in lines if line.strip()]
        except ValueError as error:
            raise BundleError(f"metrics.jsonl has a line that is not JSON: {error}") from None
    if PREDICTIONS in files:
        try:
            frame = pd.read_csv(io.BytesIO(files[PREDICTIONS]), dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError) as error:
            raise BundleError(f"{PREDICTIONS} is not a readable CSV: {error}") from None
        needed = {"_row", "_target", "_prediction"}
        if not needed <= set(frame.columns):
            missing = ", ".join(sorted(needed - set(frame.columns)))
            raise BundleError(f"{PREDICTIONS} lacks the column(s) {missing}")
        inputs.predictions = frame
    return inputs


# -- sections ------------------------------------------------------------------------------------


def overview(bundle: Inputs) -> Section:
    metrics = bundle.metrics
    validation = metrics.get("validation", {})
    cv = metrics.get("cross_validation")
    cards = "".join(
        f'<div class="card"><div class="value">{esc(fmt(value))}</div>'
        f'<div class="label">{esc(METRIC_NAMES.get(name, name))}</div></div>'
        for name, value in validation.items()
        if isinstance(value, int | float)
    )
    rows, facts = metrics.get("rows", {}), []
    if cv:
        facts.append(("evaluated on", f"out-of-fold predictions of {cv.get('folds')} folds"))
    elif rows:
        facts.append(
            ("rows", f"{fmt(rows.get('train'))} training, {fmt(rows.get('validation'))} validation")
        )
    strategy = metrics.get("strategy", {})
    if strategy:
        facts.append(("strategy", f"{strategy.get('used')} — {strategy.get('reason', '')}"))
    if "head" in metrics:
        facts.append(("head", f"{metrics['head'].get('chosen')} on pretrained embeddings"))
    rate = metrics.get("learning_rate", {})
    if rate.get("used") is not None:
        how = "the range test's suggestion" if rate.get("configured") == "auto" else "set by hand"
        facts.append(("learning rate", f"{rate['used']:.3g} ({how})"))
    history = metrics.get("history", {})
    if history.get("best_epoch"):
        facts.append(
            (
                "best epoch",
                f"{history['best_epoch']} of {len(history.get('epochs', []))}; {history.get('stopped', '')}",
            )
        )
    calibration = metrics.get("calibration")
    if calibration:
        facts.append(
            (
                "calibration",
                f"temperature {fmt(calibration.get('temperature'), 3)}, expected calibration "
                f"error {fmt(calibration.get('ece_before'))} → {fmt(calibration.get('ece_after'))}",
            )
        )
    if metrics.get("device"):
        facts.append(("device", metrics["device"]))
    listing = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    subject = "out-of-fold" if cv else "validation"
    body = f'<h3>{esc(subject)} metrics</h3><div class="cards">{cards}</div>' if cards else ""
    return Section("summary", "Summary", body + f"<dl>{listing}</dl>")


def data_section(bundle: Inputs) -> Section:
    summary = bundle.summary or {}
    schema = bundle.config.get("schema", {})
    parts = []
    rows = summary.get("rows", schema.get("rows"))
    line = f"{fmt(rows)} rows"
    if summary.get("source"):
        line = f"{summary['source']}: {line}"
    if summary.get("labelled") not in (None, rows):
        line += f", {fmt(summary['labelled'])} with a value in {bundle.target}"
    split = summary.get("split") or bundle.metrics.get("rows") or {}
    if {"train", "validation"} <= set(split):
        line += (
            f"; {fmt(split['train'])} for training, "
            f"{fmt(split['validation'])} held out for validation"
        )
    elif split:
        line += "; " + ", ".join(f"{k} {fmt(v)}" for k, v in split.items())
    parts.append(f"<p>{esc(line)}.</p>")
    target = summary.get("target", {})
    if target.get("classes"):
        counts = {str(k): int(v) for k, v in target["classes"].items()}
        total = sum(counts.values()) or 1
        biggest = max(counts.values()) or 1
        shown = sorted(counts.items(), key=lambda kv: -kv[1])
        lines = [
            [
                label,
                count,
                f"{100 * count / total:.1f}%",
                Html(f'<span class="bar" style="width:{100 * count / biggest:.0f}px"></span>'),
            ]
            for label, count in shown[:50]
        ]
        parts.append(f"<h3>class balance of {esc(bundle.target)}</h3>")
        parts.append(table(["class", "rows", "share", ""], lines, numeric=(1, 2)))
        if len(shown) > 50:
            parts.append(note(f"{len(shown) - 50} rarer classes not shown."))
    elif target.get("summary"):
        stats = target["summary"]
        parts.append(f"<h3>distribution of {esc(bundle.target)}</h3>")
        parts.append(table(list(stats), [list(stats.values())], numeric=tuple(range(len(stats)))))
    columns = summary.get("columns") or schema.get("features", [])
    if columns:
        total = summary.get("rows", schema.get("rows")) or 0
        lines = []
        for column in columns:
            missing = int(column.get("missing") or 0)
            share = f" ({100 * missing / total:.1f}%)" if total and missing else ""
            distinct = column.get("distinct", column.get("unique"))
            lines.append(
                [
                    column.get("name"),
                    column.get("kind"),
                    column.get("role"),
                    f"{missing:,}{share}",
                    distinct,
                ]
            )
        parts.append("<h3>columns</h3>")
        parts.append(
            table(["column", "kind", "role", "missing", "distinct"], lines, numeric=(3, 4))
        )
    return Section("data", "Data", "".join(parts))


def training_section(bundle: Inputs) -> Section:
    from deepstrata.evaluate import plots

    metrics, parts = bundle.metrics, []
    history = metrics.get("history", {})
    if bundle.epochs:
        parts.append(
            image(
                plots.training_curves_png(bundle.epochs, best_epoch=history.get("best_epoch")),
                "training curves",
            )
        )
        best = history.get("best_epoch")
        stopped = history.get("stopped")
        parts.append(
            note(
                (f"best epoch {best} (dotted line); " if best else "")
                + (f"training stopped: {stopped}." if stopped else "")
            )
        )
    elif "head" in metrics or bundle.metrics.get("strategy", {}).get("used") == "features":
        head = metrics.get("head", {}).get("chosen", "classical")
        parts.append(
            note(
                f"no training curves: the features strategy fits a {head} head on pretrained embeddings, without epochs."
            )
        )
    else:
        parts.append(note("no training curves: the bundle records no per-epoch history."))
    rate = metrics.get("learning_rate", {})
    sweep = next(
        (bundle.files[n] for n in ("lr_range.png", "lr_range.fold-1.png") if n in bundle.files),
        None,
    )
    if sweep or rate:
        parts.append("<h3>learning-rate range test</h3>")
        if rate.get("rule"):
            suggestion = float(rate.get("suggestion", math.nan))
            parts.append(f"<p>suggested {suggestion:.3g}: {esc(rate['rule'])}.</p>")
        if sweep:
            caption = "loss against learning rate in a short sweep before training"
            parts.append(image(sweep, "learning-rate range test", caption))
    return Section("training", "Training", "".join(parts))


def cross_validation_section(bundle: Inputs) -> Section | None:
    cv = bundle.metrics.get("cross_validation")
    if not cv:
        return None
    names = list(cv.get("mean", {}))
    rows = [
        [f"fold {i}", *(fold.get(n) for n in names), fold.get("best_epoch")]
        for i, fold in enumerate(cv.get("per_fold", []), 1)
    ]
    rows.append(
        [
            Html("<b>mean ± std</b>"),
            *(f"{fmt(cv['mean'][n])} ± {fmt(cv['std'][n])}" for n in names),
            "",
        ]
    )
    body = f"<p>{esc(cv.get('folds'))} folds; the model kept: {esc(cv.get('model', '?'))}.</p>"
    body += table(
        ["", *(METRIC_NAMES.get(n, n) for n in names), "best epoch"],
        rows,
        numeric=tuple(range(1, len(names) + 2)),
    )
    return Section("cross-validation", "Cross-validation", body)


def model_choice_section(bundle: Inputs) -> Section | None:
    metrics, parts = bundle.metrics, []
    head = metrics.get("head")
    if head:
        parts.append(
            f"<p>head {esc(head.get('chosen'))} chosen (requested: {esc(head.get('requested'))}).</p>"
        )
        candidates = head.get("candidates") or []
        keys = [k for k in dict.fromkeys(k for c in candidates for k in c) if k != "head"]
        rows = [[c.get("head"), *(c.get(k) for k in keys)] for c in candidates]
        parts.append(table(["head", *keys], rows, numeric=tuple(range(1, len(keys) + 1))))
    ensemble = metrics.get("ensemble")
    if ensemble:
        kept = "kept" if ensemble.get("kept") else "not kept"
        parts.append(
            f"<h3>network + {esc(ensemble.get('classical', 'classical'))} ensemble: {esc(kept)}</h3>"
            f"<p>{esc(ensemble.get('reason', ''))}</p>"
        )
        scores = ensemble.get("validation", {})
        rows = [[name, value] for name, value in scores.items()]
        if ensemble.get("weight_network") is not None:
            rows.append(["weight of the network", ensemble["weight_network"]])
        scored = "out-of-fold" if ensemble.get("cross_fitted") else "validation"
        parts.append(table(["", f"{scored} {ensemble.get('metric', '')}"], rows, numeric=(1,)))
    return Section("model", "Model choice", "".join(parts)) if parts else None


def learning_curve_section(bundle: Inputs) -> Section | None:
    from deepstrata.evaluate.plots import learning_curve_png

    compare = bundle.compare
    if not compare:
        return None
    parts = [
        f"<p>{esc(compare.get('metric'))} of each model family trained on growing fractions of "
        f"{esc(compare.get('data', 'the data'))} (seeds {esc(', '.join(map(str, compare.get('seeds', []))))}); "
        "the line is the mean, the band spans the seeds.</p>",
        image(learning_curve_png(compare), "learning curves"),
    ]
    winners = compare.get("winners") or []
    if winners:
        rows = [
            [f"{w.get('fraction', 0):g}", w.get("rows"), w.get("family"), w.get("mean")]
            for w in winners
        ]
        parts.append(
            table(["fraction", "training rows", "best family", "mean"], rows, numeric=(0, 1, 3))
        )
    for family, reason in (compare.get("skipped") or {}).items():
        parts.append(note(f"{family} skipped: {reason}"))
    return Section("compare", "Learning curves", "".join(parts))


def configuration_section(bundle: Inputs) -> Section:
    training = bundle.config.get("training", {})
    rows = [
        [k.replace("_", " "), json.dumps(v) if isinstance(v, list | dict) else v]
        for k, v in training.items()
    ]
    versions = bundle.config.get("versions", {})
    files = [[name, len(content)] for name, content in sorted(bundle.files.items())]
    body = (
        f"<details><summary>training configuration</summary>{table(['option', 'value'], rows)}</details>"
        f"<details><summary>bundle files</summary>{table(['file', 'bytes'], files, numeric=(1,))}</details>"
        f"<p class=note>{esc(' · '.join(f'{k} {v}' for k, v in versions.items()))}</p>"
    )
    return Section("configuration", "Configuration", body)


# -- the page ------------------------------------------------------------------------------------


def render_report(files: Mapping[str, bytes]) -> str:
    """One self-contained HTML document about the bundle whose files (name -> bytes) are given.

    config.json is required; metrics.json, metrics.jsonl, lr_range.png, data_summary.json,
    validation_predictions.csv and compare.json each add sections when present. Figures are
    embedded PNGs; there is no script and no external URL. Raises BundleError for a file
    that cannot be read.

    ``write_report(bundle_dir)`` calls it with the files of a bundle directory.
    """
    from deepstrata.evaluate.validation import analysis_sections

    bundle = parse(files)
    sections = [
        overview(bundle),
        data_section(bundle),
        cross_validation_section(bundle),
        *analysis_sections(bundle),
        training_section(bundle),
        model_choice_section(bundle),
        learning_curve_section(bundle),
        configuration_section(bundle),
    ]
    sections = [s for s in sections if s is not None]
    return page(bundle, sections)


def page(bundle: Inputs, sections: list[Section]) -> str:
    summary = bundle.summary or {}
    source = Path(str(summary.get("source", ""))).name if summary.get("source") else ""
    task = bundle.task
    classes = bundle.config.get("target", {}).get("classes") or []
    if bundle.classifier and classes:
        task += f", {len(classes)} classes"
    strategy = bundle.metrics.get("strategy", {}).get("used") or bundle.config.get(
        "training", {}
    ).get("strategy")
    subtitle = " · ".join(
        part
        for part in (
            f"data {source}" if source else "",
            f"target {bundle.target}",
            f"task {task}",
            f"strategy {strategy}" if strategy else "",
        )
        if part
    )
    contents = "".join(f'<li><a href="#{s.key}">{esc(s.title)}</a></li>' for s in sections)
    body = "".join(
        f'<section id="{s.key}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections
    )
    title = f"deepstrata report: {bundle.target}" + (f" from {source}" if source else "")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{CSP}<style>{CSS}</style></head><body><header><h1>Predict <code>{esc(bundle.target)}</code></h1>"
        f'<p class="subtitle">{esc(subtitle)}</p></header>'
        f"<nav><ol>{contents}</ol></nav><main>{body}</main>"
        f"<footer>written by deepstrata {esc(bundle.config.get('versions', {}).get('deepstrata', ''))}</footer>"
        "</body></html>\n"
    )


# -- writing into a bundle, and the command -------------------------------------------------------


def compare_beside(bundle_dir: str | Path, target: str) -> bytes | None:
    """The compare.json that ``deepstrata compare`` left beside the bundle
    (``runs/churn.compare/`` for ``runs/churn``), if any and if it predicted the same
    ``target`` (another target's curves are left out, with a warning)."""
    path = Path(bundle_dir)
    beside = path.with_name(path.name + ".compare") / COMPARE
    if not beside.is_file():
        return None
    content = beside.read_bytes()
    try:
        compared = json.loads(content).get("target")
    except (ValueError, AttributeError):
        compared = None
    if compared != target:
        import warnings

        from deepstrata.errors import DataWarning

        warnings.warn(
            f"{beside} is about target {compared!r}, not {target!r}: its learning curves "
            "are left out of the report",
            DataWarning,
            stacklevel=3,
        )
        return None
    return content


def write_report(bundle_dir: str | Path) -> Path:
    """Render ``bundle_dir``'s report.html from its files, write it atomically and rehash
    the manifest (its recorded versions kept). A compare.json beside the bundle (see
    :func:`compare_beside`) is copied in first, so the learning curves appear. The bundle
    is verified first, so a tampered bundle is refused rather than re-signed. Returns the
    report's path."""
    from deepstrata.bundle.manifest import MANIFEST, verify_manifest, write_manifest
    from deepstrata.bundle.write import publish, staging_directory

    directory = Path(bundle_dir)
    manifest = verify_manifest(directory)
    files = {
        path.name: path.read_bytes()
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name not in (REPORT, MANIFEST)
    }
    try:
        target = json.loads(files["config.json"])["schema"]["target"]
    except (KeyError, TypeError, ValueError):  # render_report says what is wrong
        target = None
    beside = compare_beside(directory, target)
    if beside is not None:
        files[COMPARE] = beside
    try:
        document = render_report(files)
    except BundleError as error:
        raise BundleError(error.message, path=str(directory)) from None
    files[REPORT] = document.encode("utf-8")
    # The new version is built beside the bundle and renamed into place, as write_bundle
    # does: a crash leaves the old bundle whole, never one its manifest does not describe.
    staging = staging_directory(directory)
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        write_manifest(staging, versions=manifest.get("versions", {}))
        publish(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory / REPORT


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="A bundle directory written by `deepstrata fit`.")
    ],
) -> None:
    """Render the bundle's report.html again from its files (and update its manifest)."""
    if not run_dir.exists():
        raise BundleError("does not exist; pass a bundle directory", path=str(run_dir))
    if not run_dir.is_dir():
        raise BundleError("is not a directory; pass a bundle directory", path=str(run_dir))
    print(f"report written to {write_report(run_dir)}")

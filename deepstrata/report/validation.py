"""The report's sections read from validation_predictions.csv: where the model is wrong.

Classification: confusion matrix, per-class precision/recall/F1, ROC and
precision-recall curves (one-vs-rest for several classes), a reliability diagram.
Regression: predicted against true values and residuals. Both: the worst-predicted
rows with their inputs (image files as thumbnails while the file is still there).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepstrata.report import plots
from deepstrata.report.html import Html, Section, esc, fmt, image, note, table
from deepstrata.report.inputs import Inputs

PROBA = "_proba:"  # validation_predictions.csv: one column per class, "_proba:<label>"
WORST = 10  # worst-predicted rows shown
MAX_CURVES = 8  # one-vs-rest ROC/PR curves: the most frequent classes
MAX_MATRIX = 30  # confusion matrix classes; the rest become "other"
MAX_INPUTS = 8  # input columns shown beside the worst rows
TEXT_CHARS = 160  # characters of a text cell shown
CELL_CHARS = 40
THUMBNAIL = 72  # pixels per side


@dataclass
class Predictions:
    """Validation rows the report can use. Classification: ``true``/``predicted`` are class
    indices into ``classes`` and ``proba`` is (n, K); regression: they are numbers."""

    frame: pd.DataFrame  # the CSV as text, rows kept
    true: np.ndarray
    predicted: np.ndarray
    classes: list[str]
    proba: np.ndarray | None = None


def read_predictions(bundle: Inputs) -> Predictions | None:
    frame = bundle.predictions
    if bundle.prediction == "labels":
        return _read_labels(frame)
    if bundle.classifier:
        columns = [c for c in frame.columns if c.startswith(PROBA)]
        if not columns:
            return None
        classes = [c.removeprefix(PROBA) for c in columns]
        lookup = {label: index for index, label in enumerate(classes)}
        proba = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        true = frame["_target"].map(lookup).fillna(-1).to_numpy(dtype=int)
        predicted = frame["_prediction"].map(lookup).fillna(-1).to_numpy(dtype=int, copy=True)
        unnamed = predicted < 0
        predicted[unnamed] = np.nan_to_num(proba[unnamed], nan=-1).argmax(axis=1)
        keep = (true >= 0) & np.isfinite(proba).all(axis=1)
        return Predictions(
            frame[keep].reset_index(drop=True), true[keep], predicted[keep], classes, proba[keep]
        )
    true = pd.to_numeric(frame["_target"], errors="coerce").to_numpy(dtype=float)
    predicted = pd.to_numeric(frame["_prediction"], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(true) & np.isfinite(predicted)
    return Predictions(frame[keep].reset_index(drop=True), true[keep], predicted[keep], [])


def analysis_sections(bundle: Inputs) -> list[Section]:
    """The sections from validation_predictions.csv; one note when it is absent."""
    if bundle.predictions is None:
        return [
            Section(
                "predictions",
                "Validation predictions",
                note(
                    "no validation_predictions.csv in the bundle: no confusion matrix, "
                    "curves or worst-predicted examples."
                ),
            )
        ]
    predictions = read_predictions(bundle)
    if predictions is None or len(predictions.true) == 0:
        return [
            Section("predictions", "Validation predictions", note("no usable validation rows."))
        ]
    if bundle.prediction == "labels":
        return [labels_section(predictions), worst_labels_section(bundle, predictions)]
    if bundle.classifier:
        sections = [
            classes_section(predictions),
            curves_section(predictions),
            calibration_section(bundle, predictions),
        ]
    else:
        sections = [regression_section(bundle, predictions)]
    return [*(s for s in sections if s is not None), worst_section(bundle, predictions)]


def classes_section(p: Predictions) -> Section:
    from sklearn import metrics

    count = len(p.classes)
    labels = np.arange(count)
    matrix = metrics.confusion_matrix(p.true, p.predicted, labels=labels)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        p.true, p.predicted, labels=labels, zero_division=0
    )
    names: list[str] = list(p.classes)
    shown = matrix
    if count > MAX_MATRIX:  # the most frequent classes, and the rest as one
        top = np.argsort(-support, kind="stable")[: MAX_MATRIX - 1]
        bucket = np.full(count, MAX_MATRIX - 1)
        bucket[top] = np.arange(len(top))
        shown = np.zeros((MAX_MATRIX, MAX_MATRIX), dtype=matrix.dtype)
        np.add.at(shown, (bucket[:, None], bucket[None, :]), matrix)
        names = [p.classes[i] for i in top] + [f"other ({count - len(top)} classes)"]
    parts = [image(plots.confusion_matrix_png(shown, names), "confusion matrix")]
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    rows = []
    for k in np.argsort(-support, kind="stable"):
        worst = int(off[k].argmax())
        confused = f"{p.classes[worst]} ({off[k, worst]:,})" if off[k, worst] else "—"
        rows.append([p.classes[k], int(support[k]), precision[k], recall[k], f1[k], confused])
    parts.append("<h3>per class</h3>")
    parts.append(
        table(
            ["class", "support", "precision", "recall", "F1", "most often predicted instead"],
            rows[:50],
            numeric=(1, 2, 3, 4),
        )
    )
    if count > 50:
        parts.append(note(f"the {count - 50} rarest classes are not listed."))
    return Section("classes", "Confusion matrix and per-class metrics", "".join(parts))


def curves_section(p: Predictions) -> Section | None:
    if len(p.classes) == 2:
        positive = p.true == 1
        curves = (
            [(p.classes[1], positive, p.proba[:, 1])] if 0 < positive.sum() < len(positive) else []
        )
        text = f"positive class: {p.classes[1]}."
    else:
        support = np.bincount(p.true, minlength=len(p.classes))
        usable = [k for k in np.argsort(-support, kind="stable") if 0 < support[k] < len(p.true)]
        curves = [(p.classes[k], p.true == k, p.proba[:, k]) for k in usable[:MAX_CURVES]]
        text = "one class against the rest"
        if len(usable) > MAX_CURVES:
            text += f"; the {MAX_CURVES} most frequent of {len(usable)} classes"
        text += "."
    if not curves:
        return None
    body = image(plots.roc_pr_png(curves), "ROC and precision-recall curves", text)
    return Section("curves", "ROC and precision–recall curves", body)


def calibration_section(bundle: Inputs, p: Predictions) -> Section:
    if len(p.classes) == 2:
        confidence, hit = p.proba[:, 1], p.true == 1
        what = f"predicted probability of {plots.short(p.classes[1])}"
        outcome = f"are {p.classes[1]}"
    else:
        confidence, hit = p.proba.max(axis=1), p.predicted == p.true
        what = "confidence (highest probability)"
        outcome = "are predicted right"
    parts = [image(plots.reliability_png(confidence, hit, what=what), "reliability diagram")]
    calibration = bundle.metrics.get("calibration") or {}
    text = f"points on the diagonal are calibrated: of the rows given 0.8, 80% {outcome}."
    if "ece_after" in calibration:
        text += (
            f" Expected calibration error {fmt(calibration.get('ece_before'))} before temperature"
            f" scaling, {fmt(calibration['ece_after'])} after (temperature"
            f" {fmt(calibration.get('temperature'), 3)}, fitted on"
            f" {calibration.get('fitted_on', 'the validation rows')})."
        )
    if calibration.get("note"):
        text += f" {calibration['note']}."
    parts.append(note(text))
    return Section("calibration", "Calibration", "".join(parts))


def regression_section(bundle: Inputs, p: Predictions) -> Section:
    error = np.abs(p.true - p.predicted)
    body = image(
        plots.regression_png(p.true, p.predicted, target=bundle.target), "predicted vs true"
    )
    quantiles = [float(np.quantile(error, q)) for q in (0.5, 0.9, 1.0)]
    body += table(
        ["rows", "median |error|", "90th percentile |error|", "largest |error|"],
        [[len(error), *quantiles]],
        numeric=(0, 1, 2, 3),
    )
    return Section("regression", "Predicted vs true", body)


def worst_section(bundle: Inputs, p: Predictions) -> Section:
    inputs = [f for f in bundle.inputs() if f.get("name") in p.frame.columns]
    shown = inputs[:MAX_INPUTS]
    if bundle.classifier:
        p_true = p.proba[np.arange(len(p.true)), p.true]
        order = np.argsort(p_true, kind="stable")[:WORST]
        header, numeric = ["row", "true", "predicted", "p(true)"], (0, 3)
        lead = [
            [p.frame["_row"][i], p.classes[p.true[i]], p.classes[p.predicted[i]], float(p_true[i])]
            for i in order
        ]
        why = "lowest probability given to the true class"
    else:
        error = p.true - p.predicted  # the residual, as in the figure
        order = np.argsort(-np.abs(error), kind="stable")[:WORST]
        header, numeric = ["row", "true", "predicted", "true − predicted"], (0, 1, 2, 3)
        lead = [
            [p.frame["_row"][i], float(p.true[i]), float(p.predicted[i]), float(error[i])]
            for i in order
        ]
        why = "largest absolute error"
    rows = []
    for line, i in zip(lead, order):
        if bundle.classifier and p.true[i] != p.predicted[i]:
            line[2] = Html(f'<span class="bad">{esc(line[2])}</span>')
        rows.append(line + [cell(p.frame[f["name"]][i], f.get("kind", "")) for f in shown])
    parts = [
        note(
            f"the {len(order)} validation rows with the {why}; row numbers count the rows of the data as given."
        ),
        table(header + [f["name"] for f in shown], rows, numeric=numeric, wide=True),
    ]
    if len(inputs) > len(shown):
        parts.append(note(f"{len(inputs) - len(shown)} more input columns not shown."))
    return Section("worst", "Worst-predicted examples", "".join(parts))


def cell(value: str, kind: str) -> Html:
    """A value of a column of ``kind`` as its kind says to show it (:attr:`Kind.show`)."""
    from deepstrata.kinds import KINDS

    show = KINDS[kind].show if kind in KINDS else "plain"
    if value == "":
        return Html('<span class="missing">missing</span>')
    if show in ("image", "file"):
        picture = thumbnail(value) if show == "image" else None
        name = esc(Path(value).name)
        if picture:
            return Html(f'<img class="thumb" src="{picture}" alt="{name}" title="{esc(value)}">')
        return Html(f'<span class="path">{esc(value)}</span>')
    if show == "number" and len(value) > 10:  # 42.41984705035103: as many digits as matter
        try:
            return esc(f"{float(value):.6g}")
        except ValueError:
            pass
    limit = TEXT_CHARS if show == "text" else CELL_CHARS
    return esc(value if len(value) <= limit else value[: limit - 1] + "…")


def thumbnail(path: str) -> str | None:
    """A data URI of a small copy of the image at ``path``; None if it cannot be read."""
    import base64

    from PIL import Image, ImageOps

    file = Path(path)
    if not file.is_file():
        return None
    try:
        with Image.open(file) as picture:
            picture.draft("RGB", (THUMBNAIL * 2, THUMBNAIL * 2))  # JPEG: decode at a fraction
            small = ImageOps.exif_transpose(picture)
            small.thumbnail((THUMBNAIL, THUMBNAIL))
            opaque = "A" not in small.getbands() and "transparency" not in small.info
            small = small.convert("RGB" if opaque else "RGBA")
            buffer = io.BytesIO()
            small.save(buffer, "JPEG" if opaque else "PNG", quality=85, optimize=True)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    mime = "image/jpeg" if opaque else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


# -- multilabel: several labels per row ----------------------------------------------------------


def _read_labels(frame: pd.DataFrame) -> Predictions | None:
    """``true`` and ``predicted`` as (n, L) 0/1 indicators from the ``a|b`` cells."""
    columns = [c for c in frame.columns if c.startswith(PROBA)]
    if not columns:
        return None
    labels = [c.removeprefix(PROBA) for c in columns]

    def indicator(cells: pd.Series) -> np.ndarray:
        sets = [set(filter(None, str(text).split("|"))) for text in cells]
        return np.array([[label in row for label in labels] for row in sets], dtype=int)

    proba = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(proba).all(axis=1)
    frame = frame[keep].reset_index(drop=True)
    return Predictions(
        frame, indicator(frame["_target"]), indicator(frame["_prediction"]), labels, proba[keep]
    )


def labels_section(p: Predictions) -> Section:
    """Per label: rows holding it, precision, recall and F1 of the predictions."""
    from sklearn import metrics

    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        p.true, p.predicted, zero_division=0
    )
    rows = [
        [
            p.classes[k],
            int(support[k]),
            precision[k],
            recall[k],
            f1[k],
            int(p.predicted[:, k].sum()),
        ]
        for k in np.argsort(-support, kind="stable")
    ]
    exact = float((p.true == p.predicted).all(axis=1).mean())
    parts = [
        note(
            f"{len(p.true)} validation rows; every label of {exact:.1%} of them right "
            "(subset accuracy). A label is predicted when its probability reaches its threshold."
        ),
        table(
            ["label", "rows with it", "precision", "recall", "F1", "predicted"],
            rows[:50],
            numeric=(1, 2, 3, 4, 5),
        ),
    ]
    return Section("labels", "Per-label metrics", "".join(parts))


def worst_labels_section(bundle: Inputs, p: Predictions) -> Section:
    """The rows with the most labels wrong."""
    inputs = [f for f in bundle.inputs() if f.get("name") in p.frame.columns][:MAX_INPUTS]
    wrong = (p.true != p.predicted).sum(axis=1)
    order = np.argsort(-wrong, kind="stable")[:WORST]
    rows = [
        [
            p.frame["_row"][i],
            p.frame["_target"][i] or "—",
            Html(f'<span class="bad">{esc(p.frame["_prediction"][i] or "—")}</span>')
            if wrong[i]
            else p.frame["_prediction"][i] or "—",
            int(wrong[i]),
            *(cell(p.frame[f["name"]][i], f.get("kind", "")) for f in inputs),
        ]
        for i in order
    ]
    header = ["row", "true", "predicted", "labels wrong", *(f["name"] for f in inputs)]
    body = note(f"the {len(order)} validation rows with the most labels wrong.") + table(
        header, rows, numeric=(0, 3), wide=True
    )
    return Section("worst", "Worst-predicted examples", body)

"""Figures for reports, as PNG bytes.

Each function draws on a matplotlib ``Figure`` of its own with the Agg canvas (no
pyplot: no global state, no window, nothing left open), in one house style, and
returns a small palette PNG, ready for a ``data:image/png;base64,`` URI or a file.
matplotlib is imported inside the functions, so importing this module is cheap.

>>> png = learning_curve_png({"metric": "accuracy", "higher_is_better": True,
...     "points": [{"family": "network", "fraction": 1.0, "rows": 80, "seed": 0, "value": 0.9}]})
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np

DPI = 90  # small files, still sharp enough on screen
WIDE, HEIGHT = 8.4, 3.2  # inches: two panels side by side
PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"]
STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 7.5,
}
MAX_LABEL = 24  # characters of a class label shown in a figure


@contextmanager
def _figure(width: float = WIDE, height: float = HEIGHT) -> Iterator:
    from cycler import cycler
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with rc_context({**STYLE, "axes.prop_cycle": cycler(color=PALETTE)}):
        figure = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(figure)  # Agg, whatever the global backend is
        yield figure


def _png(figure) -> bytes:
    """The figure as an 8-bit palette PNG: a third of the RGBA file's size for line art."""
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def short(label: object, limit: int = MAX_LABEL) -> str:
    """A user's label for a figure: cut to ``limit`` characters, and ``$`` kept literal
    (matplotlib reads text between two ``$`` as TeX; a class may be "$5-$10")."""
    text = str(label)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def training_curves_png(epochs: Sequence[Mapping], *, best_epoch: int | None = None) -> bytes:
    """Loss, the validation metric and the learning rate against the epoch.

    ``epochs`` are metrics.jsonl records (``epoch``, ``loss``, ``val_loss``, ``val_<metric>``,
    ``learning_rate``); records with a ``fold`` field are drawn one line per fold.
    """
    runs: dict[object, list[Mapping]] = defaultdict(list)
    for record in epochs:
        runs[record.get("fold")].append(record)
    metric = next((k for r in epochs for k in r if k.startswith("val_") and k != "val_loss"), None)
    panels = ["loss"] + ([metric] if metric else []) + ["learning_rate"]
    with _figure(WIDE, 2.9) as figure:
        axes = figure.subplots(1, len(panels))
        for number, (fold, records) in enumerate(runs.items()):
            x = [r["epoch"] for r in records]
            name = f"fold {fold} " if fold is not None else ""
            alpha = 1.0 if len(runs) == 1 else 0.7
            for ax, panel in zip(axes, panels):
                if panel == "loss":
                    for key, style in (("loss", "-"), ("val_loss", "--")):
                        y = [r.get(key, math.nan) for r in records]
                        if not np.all(np.isnan(np.asarray(y, dtype=float))):
                            color = PALETTE[number % len(PALETTE)] if len(runs) > 1 else None
                            label = f"{name}{'training' if key == 'loss' else 'validation'}"
                            ax.plot(x, y, style, color=color, alpha=alpha, label=label, marker=".")
                else:
                    y = [r.get(panel, math.nan) for r in records]
                    ax.plot(x, y, color=PALETTE[number % len(PALETTE)], alpha=alpha, marker=".")
        for ax, panel in zip(axes, panels):
            ax.set_xlabel("epoch")
            ax.set_title(
                {"loss": "loss", "learning_rate": "learning rate"}.get(
                    panel, f"validation {panel.removeprefix('val_')}"
                )
            )
            if best_epoch and len(runs) == 1:
                ax.axvline(best_epoch, color="#6b7280", linestyle=":", linewidth=1)
            ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0].legend(loc="best")
        axes[-1].ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        return _png(figure)


def confusion_matrix_png(matrix: np.ndarray, labels: Sequence[object]) -> bytes:
    """Counts ``matrix[true, predicted]``, shaded by the share of each true class (row)."""
    matrix = np.asarray(matrix)
    count = len(labels)
    side = min(7.0, 2.4 + 0.38 * count)
    with _figure(side + 0.9, side) as figure:
        ax = figure.add_subplot()
        totals = matrix.sum(axis=1, keepdims=True)
        shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ax.grid(False)
        names = [short(label, 16) for label in labels]
        ax.set_xticks(range(count), names, rotation=45 if count > 3 else 0, ha="right")
        ax.set_yticks(range(count), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if count <= 20:
            for i in range(count):
                for j in range(count):
                    ax.text(
                        j,
                        i,
                        f"{matrix[i, j]:,}",
                        ha="center",
                        va="center",
                        fontsize=7.5 if count > 8 else 8.5,
                        color="white" if shares[i, j] > 0.55 else "#111827",
                    )
        figure.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
        return _png(figure)


def roc_pr_png(curves: Sequence[tuple[object, np.ndarray, np.ndarray]]) -> bytes:
    """ROC and precision-recall curves, one per ``(label, is_positive (n,), score (n,))``."""
    from sklearn import metrics

    with _figure() as figure:
        roc, pr = figure.subplots(1, 2)
        for label, positive, score in curves:
            fpr, tpr, _ = metrics.roc_curve(positive, score)
            auc = metrics.auc(fpr, tpr)
            roc.plot(fpr, tpr, label=f"{short(label)} (AUC {auc:.3f})", linewidth=1.4)
            precision, recall, _ = metrics.precision_recall_curve(positive, score)
            ap = metrics.average_precision_score(positive, score)
            pr.step(recall, precision, where="post", label=f"{short(label)} (AP {ap:.3f})")
            if len(curves) == 1:  # a classifier that guesses scores the base rate
                pr.axhline(np.mean(positive), color="#9ca3af", linestyle=":", linewidth=1)
        roc.plot([0, 1], [0, 1], color="#9ca3af", linestyle=":", linewidth=1)
        roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
        pr.set(xlabel="recall", ylabel="precision", title="precision–recall curve")
        for ax in (roc, pr):
            ax.set_xlim(-0.01, 1.01)
            ax.set_ylim(-0.01, 1.02)
            ax.set_aspect("equal")
        roc.legend(loc="lower right")
        pr.legend(loc="lower left")
        return _png(figure)


def reliability_png(
    confidence: np.ndarray, correct: np.ndarray, *, what: str, bins: int = 10
) -> bytes:
    """A reliability diagram: observed frequency against predicted probability in ``bins``
    equal-width bins (dot size: rows), with the rows per bin beneath. ``what`` names the
    probability on the x axis."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    filled = counts > 0
    mean_conf = np.bincount(index, confidence, bins)[filled] / counts[filled]
    mean_true = np.bincount(index, correct, bins)[filled] / counts[filled]
    with _figure(4.6, 4.2) as figure:
        top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        top.plot([0, 1], [0, 1], color="#9ca3af", linestyle=":", linewidth=1, label="perfect")
        top.plot(mean_conf, mean_true, marker="o", label="model")
        top.set(ylabel="observed frequency", title="reliability", ylim=(-0.02, 1.02))
        top.legend(loc="upper left")
        bottom.bar(edges[:-1], counts, width=1 / bins, align="edge", color="#93c5fd")
        bottom.set(xlabel=what, ylabel="rows", xlim=(0, 1))
        return _png(figure)


def regression_png(true: np.ndarray, predicted: np.ndarray, *, target: str) -> bytes:
    """Predicted against true values (the diagonal is perfect) and residuals against predicted."""
    true = np.asarray(true, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    alpha = 0.8 if len(true) < 200 else 0.35
    with _figure() as figure:
        left, right = figure.subplots(1, 2)
        low = float(np.nanmin([true.min(), predicted.min()]))
        high = float(np.nanmax([true.max(), predicted.max()]))
        left.plot([low, high], [low, high], color="#9ca3af", linestyle=":", linewidth=1)
        left.scatter(true, predicted, s=10, alpha=alpha, edgecolors="none")
        left.set(xlabel=f"true {short(target)}", ylabel="predicted", title="predicted vs true")
        right.axhline(0, color="#9ca3af", linestyle=":", linewidth=1)
        right.scatter(predicted, true - predicted, s=10, alpha=alpha, edgecolors="none")
        right.set(xlabel="predicted", ylabel="true − predicted", title="residuals")
        return _png(figure)


def learning_curve_png(compare: Mapping) -> bytes:
    """The metric against training rows (log axis) for each model family of a ``compare``
    result: the mean over seeds, with a band from the lowest to the highest seed.

    ``compare`` is compare.json: ``metric``, ``higher_is_better``, ``points`` (``family``,
    ``rows``, ``value``; a NaN value is a failed run and left out), optional ``test_rows``.
    """
    by_family: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for point in compare.get("points", []):
        value = float(point["value"])
        if math.isfinite(value):
            by_family[str(point["family"])][int(point["rows"])].append(value)
    metric = short(compare.get("metric", "score"))
    better = "higher" if compare.get("higher_is_better", True) else "lower"
    with _figure(6.4, 3.6) as figure:
        ax = figure.add_subplot()
        for family, per_rows in sorted(by_family.items()):
            rows = sorted(per_rows)
            values = [np.asarray(per_rows[r]) for r in rows]
            mean = [v.mean() for v in values]
            (line,) = ax.plot(rows, mean, marker="o", markersize=4, label=short(family))
            ax.fill_between(
                rows,
                [v.min() for v in values],
                [v.max() for v in values],
                color=line.get_color(),
                alpha=0.15,
                linewidth=0,
            )
        if by_family:
            ax.set_xscale("log")
            ax.legend(loc="best")
        else:
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
        tested = compare.get("test_rows")
        ax.set_xlabel("training rows")
        ax.set_ylabel(f"{metric} ({better} is better)")
        ax.set_title(f"learning curves: {metric}" + (f" on {tested:,} test rows" if tested else ""))
        return _png(figure)


def tradeoff_png(rows: Sequence[Mapping], chosen: Mapping) -> bytes:
    """Accuracy against the disparity on held-out rows, one point per strength of the
    fairness thresholds (``fit --fairness``); the chosen strength circled."""
    with _figure(width=4.6, height=3.2) as figure:
        axis = figure.add_subplot(1, 1, 1)
        disparity = [row["disparity"] for row in rows]
        accuracy = [row["accuracy"] for row in rows]
        axis.plot(disparity, accuracy, "o-", color=PALETTE[0])
        for row in rows:
            axis.annotate(
                f"{row['strength']:g}",
                (row["disparity"], row["accuracy"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        held = chosen["held_out"]
        axis.plot([held["disparity"]], [held["accuracy"]], "o", mfc="none", ms=12, color=PALETTE[1])
        axis.set_xlabel(f"{chosen['constraint'].replace('_', ' ')} difference")
        axis.set_ylabel("accuracy")
        axis.set_title("accuracy against disparity (labels: strength)")
        return _png(figure)


def intervals_png(
    labels: Sequence[object],
    values: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    *,
    xlabel: str,
    title: str,
) -> bytes:
    """One point with its interval per label, top to bottom (the fairness audit's groups)."""
    with _figure(width=6.0, height=0.6 + 0.32 * max(len(labels), 1)) as figure:
        axis = figure.add_subplot(1, 1, 1)
        positions = np.arange(len(labels))
        below = np.asarray(values, dtype=float) - np.asarray(lows, dtype=float)
        above = np.asarray(highs, dtype=float) - np.asarray(values, dtype=float)
        axis.errorbar(values, positions, xerr=[below, above], fmt="o", color=PALETTE[0], capsize=3)
        axis.set_yticks(positions, [short(label) for label in labels])
        axis.invert_yaxis()
        axis.set_xlabel(xlabel)
        axis.set_title(title)
        return _png(figure)

"""attack.html: one self-contained page over an attack's result (attack.json): the
robust-accuracy table and plot, the settings, a few adversarial examples (images side by
side: clean, adversarial, the change magnified; or number columns before and after).
Inline CSS, figures as data: PNGs, no script, the report's Content-Security-Policy."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from deepstrata.report.html import Html, Section, esc, fmt, image, note, standalone_page, table

SIDE = 112  # pixels per side of an example as shown


def accuracy_png(result: dict) -> bytes:
    """Robust accuracy against epsilon, clean accuracy at 0."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    xs = [0.0] + [e["epsilon"] for e in result["epsilons"]]
    ys = [result["clean_accuracy"]] + [e["robust_accuracy"] for e in result["epsilons"]]
    axes.plot(xs, ys, marker="o", color="#2563eb")
    axes.set_xlabel("epsilon")
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1.02)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def picture_png(pixels: np.ndarray) -> bytes:
    """``(S, S, 3)`` uint8 -> a PNG enlarged without blur."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((SIDE, SIDE), Image.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


def _hwc(image_entry: dict) -> np.ndarray:
    size = image_entry["size"]
    flat = np.asarray(image_entry["pixels"], dtype=np.uint8)
    return flat.reshape(3, size, size).transpose(1, 2, 0)


def _summary(result: dict) -> Section:
    rows = [["clean (no attack)", fmt(result["clean_accuracy"]), "—", "—"]]
    rows += [
        [
            f"{e['epsilon']:.4g} ({e['epsilon'] * 255:.3g}/255)",
            fmt(e["robust_accuracy"]),
            fmt(e["success_rate"]),
            fmt(e["seconds_per_1000_rows"], 3),
        ]
        for e in result["epsilons"]
    ]
    body = table(
        ["epsilon", "accuracy", "attack success rate", "seconds per 1,000 rows"],
        rows,
        numeric=(1, 2, 3),
    )
    body += image(accuracy_png(result), "robust accuracy against epsilon")
    body += note(
        "success rate: of the rows the model gets right without attack, the share the "
        "attack turns wrong."
    )
    return Section("accuracy", "Robust accuracy per epsilon", Html(body))


def _settings(result: dict) -> Section:
    keys = ("attack", "norm", "steps", "step_size", "random_start", "rows", "median_distance")
    rows = [[key, str(result[key])] for key in keys if key in result]
    rows += [[f"units: {kind}", units] for kind, units in result.get("units", {}).items()]
    return Section("settings", "Attack and units", Html(table(["setting", "value"], rows)))


def _examples(result: dict) -> Section | None:
    examples = result.get("examples") or []
    if not examples:
        return None
    parts = []
    for example in examples:
        caption = (
            f"row {example['row']}: label {example['label']}, clean prediction "
            f"{example['clean_prediction']}, adversarial {example['adversarial_prediction']}"
        )
        if "image" in example:
            before, after = _hwc(example["image"]), _hwc(example["adversarial_image"])
            change = after.astype(np.int16) - before.astype(np.int16)
            scale = max(int(np.abs(change).max()), 1)
            magnified = (128 + change * (127 / scale)).clip(0, 255).astype(np.uint8)
            figures = "".join(
                image(picture_png(pixels), f"row {example['row']} {what}", what)
                for pixels, what in (
                    (before, "clean"),
                    (after, "adversarial"),
                    (magnified, f"change x{127 / scale:.3g}"),
                )
            )
            parts.append(Html(f"<h3>{esc(caption)}</h3><div class='grid'>{figures}</div>"))
        if "numbers" in example:
            rows = [[n["column"], fmt(n["before"]), fmt(n["after"])] for n in example["numbers"]]
            parts.append(
                Html(f"<h3>{esc(caption)}</h3>")
                + table(["column", "before", "after"], rows, numeric=(1, 2))
            )
    return Section("examples", "Adversarial examples", Html("".join(parts)))


def render(result: dict, *, title: str) -> str:
    """The whole page."""
    sections = [s for s in (_summary(result), _examples(result), _settings(result)) if s]
    subtitle = (
        f"{result['attack']} ({result['norm']}) on {result['rows']} rows · clean accuracy "
        f"{fmt(result['clean_accuracy'])}"
    )
    return standalone_page(title, esc(title), subtitle, sections)


def write_folder(result: dict, folder: Path, *, title: str) -> Path:
    """attack.json and attack.html into ``folder``, written to a temporary folder beside
    it and renamed into place (nothing half-written is left)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    (scratch / "attack.json").write_text(json.dumps(result, indent=2))
    (scratch / "attack.html").write_text(render(result, title=title), encoding="utf-8")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    os.replace(scratch, folder)
    return folder

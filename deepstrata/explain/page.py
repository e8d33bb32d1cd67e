"""explain.html: one self-contained page over an :class:`Explanation` (inline CSS, the
importance plot embedded as a PNG, no script, the report's Content-Security-Policy)."""

from __future__ import annotations

import io

import numpy as np

from deepstrata.explain.explanation import Explanation
from deepstrata.report.html import Html, Section, esc, fmt, image, note, standalone_page, table

ROWS_SHOWN = 50


def importance_png(importance) -> bytes:
    """Mean |attribution| per column with its bootstrap interval, largest on top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = importance.head(25).iloc[::-1]
    figure = Figure(figsize=(7, 0.35 * len(shown) + 1.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    errors = np.vstack([shown.importance - shown.low, shown.high - shown.importance])
    axes.barh(shown.column.astype(str), shown.importance, xerr=errors, color="#60a5fa")
    axes.set_xlabel("mean |attribution| (95 % bootstrap interval)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


MAPS_SHOWN = 12
MAP_SIDE = 128  # pixels per side of a heat map as shown


def heatmap_png(pixels: np.ndarray, attributions: np.ndarray, *, flip: bool = False) -> bytes:
    """An image ``(H, W, 3)`` uint8 with its attributions ``(H, W)`` laid over it: red where
    a pixel moved the prediction up, blue where down, as strong as the largest |value|.
    ``flip``: upside down (a spectrogram: low frequencies at the bottom). The longer side
    is drawn MAP_SIDE pixels long."""
    from PIL import Image

    if flip:
        pixels, attributions = pixels[::-1], attributions[::-1]
    scale = float(np.abs(attributions).max()) or 1.0
    strength = np.clip(np.abs(attributions) / scale, 0, 1)[..., None]  # (S, S, 1)
    colour = np.where(attributions[..., None] > 0, [220, 38, 38], [37, 99, 235])
    grey = pixels.mean(axis=2, keepdims=True).repeat(3, axis=2)  # the image, dimmed to grey
    mixed = (1 - 0.7 * strength) * grey + 0.7 * strength * colour
    height, width = attributions.shape
    long = max(height, width)
    shown = (max(1, MAP_SIDE * width // long), max(1, MAP_SIDE * height // long))
    image = Image.fromarray(mixed.astype(np.uint8)).resize(shown, Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _maps(explanation: Explanation) -> list[Section]:
    sections = []
    for column, maps in explanation.maps.items():
        pixels = explanation.pixels[column]
        audio = explanation.settings.get("map_kinds", {}).get(column) == "audio"
        figures = "".join(
            image(
                heatmap_png(pixels[i], maps[i], flip=audio),
                f"{column}, row {explanation.rows[i]}",
                f"row {explanation.rows[i]}"
                + (f": {explanation.classes[i]}" if explanation.classes else ""),
            )
            for i in range(min(MAPS_SHOWN, len(maps)))
        )
        what = explanation.settings.get("map_notes", {}).get(column) or (
            f"Integrated gradients per pixel of {column}: red moved the prediction up from the "
            "mean image, blue down."
        )
        body = note(what) + Html(f'<div class="grid">{figures}</div>')
        sections.append(Section(f"map-{len(sections)}", f"Where in {column}", Html(body)))
    return sections


def _words(explanation: Explanation) -> list[Section]:
    sections = []
    for column, per_row in explanation.words.items():
        lines = []
        for index, entry in enumerate(per_row[:ROWS_SHOWN]):
            scale = max((abs(v) for v in entry["values"]), default=0.0)
            words = " ".join(
                _cell(v, scale, text=w) for w, v in zip(entry["words"], entry["values"])
            )
            lines.append([explanation.rows[index], Html(words or "<i>empty</i>")])
        body = note(
            f"{explanation.settings.get('words', 'KernelSHAP')} over the words of {column}: "
            "red moved the prediction up, blue down."
        ) + table(["row", column], lines, numeric=(0,))
        sections.append(Section(f"words-{len(sections)}", f"Which words in {column}", Html(body)))
    return sections


def dependence_png(dependence: dict, explained: str) -> bytes:
    """One panel per column: the mean explained value against the column's value."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = [c for c in dependence if c != "class"]
    figure = Figure(figsize=(3.2 * len(columns), 2.6), layout="constrained")
    FigureCanvasAgg(figure)
    for number, column in enumerate(columns, start=1):
        axes = figure.add_subplot(1, len(columns), number)
        axes.plot(dependence[column]["values"], dependence[column]["mean"], marker="o", ms=3)
        axes.set_xlabel(column)
        if number == 1:
            axes.set_ylabel(explained)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _importance(explanation: Explanation) -> Section:
    frame = explanation.global_importance()
    rows = [[r.column, r.importance, r.low, r.high] for r in frame.itertuples()]
    body = image(importance_png(frame), "global importance", "mean |attribution| per column")
    body += table(["column", "mean |attribution|", "low", "high"], rows, numeric=(1, 2, 3))
    dependence = explanation.dependence
    if any(c != "class" for c in dependence):
        chosen = dependence.get("class")
        explained = f"P({chosen})" if chosen is not None else "mean prediction"
        body += image(
            dependence_png(dependence, explained),
            "partial dependence",
            f"partial dependence of the top numeric columns: mean {explained} over the rows "
            "with the column set to each value",
        )
    return Section("importance", "What drives the predictions", Html(body))


FAITHFULNESS_WORDS = {
    "deletion_area": "deletion area (attribution order; lower is more faithful)",
    "deletion_area_random": "deletion area (random order)",
    "insertion_area": "insertion area (attribution order; higher is more faithful)",
    "insertion_area_random": "insertion area (random order)",
    "completeness_gap": "completeness gap |Σ attributions - (f(x) - f(baseline))|, relative",
    "completeness_max_abs_gap": "largest completeness gap of a row",
    "randomisation_rank_correlation": "rank correlation after re-initialising the weights",
    "randomisation_passed": "model-randomisation check passed (correlation < 0.3)",
    "rows": "rows the curves were drawn on",
    "randomisation_rows": "rows the randomisation check explained",
}
PER_COLUMN_WORDS = {  # measures of one column's parts: ``<measure>:<column>``
    "words_deletion_area": "deletion area over {column}'s words (attribution order)",
    "words_deletion_area_random": "deletion area over {column}'s words (random order)",
    "words_rows": "texts of {column} the word curve was drawn on",
    "regions_deletion_area": "deletion area over {column}'s regions (attribution order; "
    "lower is more faithful)",
    "regions_deletion_area_random": "deletion area over {column}'s regions (random order)",
    "regions_insertion_area": "insertion area over {column}'s regions (attribution order; "
    "higher is more faithful)",
    "regions_insertion_area_random": "insertion area over {column}'s regions (random order)",
    "regions_rows": "rows the region curves of {column} were drawn on",
    "regions_cells": "regions (grid cells) of {column}",
}


def _measure_words(key: str) -> str:
    measure, _, column = key.partition(":")
    if column and measure in PER_COLUMN_WORDS:
        return PER_COLUMN_WORDS[measure].format(column=column)
    return FAITHFULNESS_WORDS.get(key, key)


def _faithfulness(explanation: Explanation) -> Section:
    rows = []
    for key, value in explanation.faithfulness.items():
        if isinstance(value, dict):
            rows += [[f"rank agreement with {other}", v] for other, v in value.items()]
        else:
            rows.append([_measure_words(key), value])
    body = table(["measure", "value"], rows, numeric=(1,)) if rows else note("not measured")
    return Section("faithfulness", "How faithful", Html(body))


def _cell(value: float, scale: float, *, text: str | None = None) -> Html:
    shade = min(1.0, abs(value) / scale) if scale > 0 else 0.0
    colour = "220,38,38" if value > 0 else "37,99,235"
    return Html(
        f'<span style="background:rgba({colour},{shade * 0.5:.2f});padding:0 4px">'
        f"{esc(fmt(float(value)) if text is None else text)}</span>"
    )


def _rows(explanation: Explanation) -> Section:
    frame = explanation.frame().head(ROWS_SHOWN)
    scale = float(np.abs(explanation.values).max()) if explanation.values.size else 0.0
    front = [c for c in ("row", "class", "prediction", "base_value") if c in frame.columns]
    rows = [
        [*(row[c] for c in front), *(_cell(row[c], scale) for c in explanation.columns)]
        for _, row in frame.iterrows()
    ]
    body = note(
        "Red moves the prediction up from the base value (the prediction with every column at "
        "its baseline), blue down."
    ) + table([*front, *explanation.columns], rows, numeric=(0,), wide=True)
    shown = f"the first {ROWS_SHOWN} of {len(explanation.rows)}"
    if len(frame) == len(explanation.rows):
        shown = f"all {len(frame)}"
    return Section("rows", f"Attributions per row ({shown} rows)", Html(body))


def _settings(explanation: Explanation) -> Section:
    settings = {k: v for k, v in explanation.settings.items() if k != "baselines"}
    rows = [[key, str(value)] for key, value in settings.items()]
    baselines = [[c, b] for c, b in explanation.settings.get("baselines", {}).items()]
    body = table(["setting", "value"], rows) + Html("<h3>Baselines</h3>")
    body += table(["column", "baseline"], baselines)
    return Section("settings", "Method and settings", Html(body))


def render(explanation: Explanation, *, title: str) -> str:
    """The whole page."""
    sections = [
        _importance(explanation),
        *_maps(explanation),
        *_words(explanation),
        _faithfulness(explanation),
        _rows(explanation),
        _settings(explanation),
    ]
    subtitle = (
        f"method {explanation.method} · {len(explanation.rows)} rows · explains the "
        f"{explanation.settings.get('explained', 'prediction')}"
    )
    return standalone_page(title, esc(title), subtitle, sections)

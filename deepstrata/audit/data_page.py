"""audit_data.html: ``deepstrata audit-data``'s findings as one self-contained page (inline
CSS, images as data: URIs, no script), in the report's style.

Sections: the counts; the likely label errors (given and suggested label, quality, and
the row itself: a thumbnail of its image or a snippet of its text); exact and near
duplicates; leakage into a test set; the backdoor check (per class: the small cluster's
share and how many of it another class claims; the flagged rows as thumbnails).
"""

from __future__ import annotations

import base64
import io

from deepstrata.report.html import CSP, CSS, Html, esc, fmt, note, table

THUMBNAIL = 48  # pixels, the longer side
SNIPPET = 160  # characters of a text cell


def thumbnails(table, column: str, rows: list[int]) -> dict[int, str]:
    """``{row: data URI}`` of small PNGs of the image files of ``rows`` (1-based);
    unreadable files are left out."""
    from pathlib import Path

    from PIL import Image

    from deepstrata.data.files import base_folder

    base, found = base_folder(table), {}
    for row in dict.fromkeys(rows):
        cell = table.frame[column].iloc[row - 1]
        path = Path(str(cell))
        path = path if path.is_absolute() else base / path
        try:
            with Image.open(path) as opened:
                picture = opened.convert("RGB")
        except (OSError, ValueError):
            continue
        scale = THUMBNAIL / max(picture.size)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        buffer = io.BytesIO()
        picture.resize(size, Image.NEAREST).save(buffer, format="PNG")
        found[row] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return found


def snippets(table, column: str, rows: list[int]) -> dict[int, str]:
    """``{row: the first characters of its text}``."""
    values = table.frame[column]
    return {row: str(values.iloc[row - 1])[:SNIPPET] for row in dict.fromkeys(rows)}


def shown(row: int, looks: dict[int, str]) -> Html:
    """A row's thumbnail or snippet (escaped), or its number alone."""
    look = looks.get(row)
    if look is None:
        return Html(esc(row))
    if look.startswith("data:image/"):
        return Html(f'{esc(row)} <img src="{esc(look)}" alt="row {esc(row)}" class="thumb">')
    return Html(f"{esc(row)}: <q>{esc(look)}</q>")


def _labels_section(found: dict, looks: dict) -> str:
    rows = [
        [shown(issue["row"], looks), issue["given"], issue["suggested"], issue["quality"]]
        for issue in found["worst"]
    ]
    how = found.get("model", f"{found['folds']} networks, out of fold")
    return (
        '<section id="labels"><h2>Likely label errors</h2>'
        + note(
            f"{found['found']} of {found['rows_checked']} rows ({found['share']:.1%}), by "
            f"confident learning (cleanlab) on out-of-fold probabilities from {how}; "
            "worst first (label_issues.csv lists every one)."
        )
        + table(["row", "given", "suggested", "quality"], rows, numeric=(3,))
        + "</section>"
    )


def _duplicates_section(result: dict, looks: dict) -> str:
    exact = result["duplicates"]["exact"]
    parts = [
        note(
            f"{exact['rows']} exact duplicate rows in {exact['groups_found']} groups "
            f"({exact['conflicting_groups']} with different labels)."
        )
    ]
    groups = [
        [Html(" ".join(shown(r, looks) for r in group["rows"])), ", ".join(group["labels"])]
        for group in exact["groups"]
    ]
    if groups:
        parts.append(table(["rows", "labels"], groups))
    for key in ("near", "near_embeddings"):
        near = result["duplicates"].get(key)
        if not near:
            continue
        on = near.get("on", "the inputs")
        parts.append(note(f"{near['pairs_found']} near-duplicate pairs on {on}."))
        pairs = [
            [
                shown(p["rows"][0], looks),
                shown(p["rows"][1], looks),
                p["distance"],
                ", ".join(p.get("labels", [])),
            ]
            for p in near["pairs"]
        ]
        if pairs:
            parts.append(table(["row", "row", "distance", "labels"], pairs, numeric=(2,)))
    return '<section id="duplicates"><h2>Duplicates</h2>' + "".join(parts) + "</section>"


def _leakage_section(leak: dict) -> str:
    parts = [
        note(f"{leak['exact']['rows']} of {leak['test_rows']} test rows equal a training row.")
    ]
    for key in ("near", "near_embeddings"):
        near = leak.get(key)
        if near:
            on = near.get("on", "the inputs")
            parts.append(note(f"{near['rows']} test rows nearly equal one, on {on}."))
            pairs = [[p["test_row"], p["train_row"], p["distance"]] for p in near["pairs"]]
            if pairs:
                parts.append(table(["test row", "training row", "distance"], pairs, numeric=(2,)))
    return '<section id="leakage"><h2>Leakage</h2>' + "".join(parts) + "</section>"


def _backdoor_section(check: dict, looks: dict) -> str:
    rows = [
        [
            entry["class"],
            entry["rows"],
            entry.get("small_share"),
            entry.get("elsewhere"),
            entry.get("moved_to") or "",
            "POISONED?" if entry.get("poisoned") else ("-" if entry.get("checked") else "too few"),
        ]
        for entry in check["classes"]
    ]
    flagged = check["flagged_classes"]
    verdict = (
        f"Classes {', '.join(flagged)} split into a small cluster that the other rows place "
        f"in another class: {check['found']} rows, listed in backdoor.csv."
        if flagged
        else "No class splits into a small cluster that another class claims."
    )
    header = ["class", "rows", "small cluster share", "claimed elsewhere", "by", "verdict"]
    parts = [note(f"{check['method']}. {verdict}"), table(header, rows, numeric=(1, 2, 3))]
    if check["rows"]:
        parts.append(Html("<p>" + " ".join(shown(r, looks) for r in check["rows"]) + "</p>"))
    return '<section id="backdoor"><h2>Backdoor check</h2>' + "".join(parts) + "</section>"


def render_data_page(result: dict, looks: dict[int, str] | None = None) -> str:
    """The HTML document of ``audit_data``'s result; ``looks``: each row's thumbnail (a
    data: URI) or text snippet. Every value from the data is escaped."""
    looks = looks or {}
    sections = [_duplicates_section(result, looks)]
    if "label_issues" in result:
        sections.insert(0, _labels_section(result["label_issues"], looks))
    if "leakage" in result:
        sections.append(_leakage_section(result["leakage"]))
    if "backdoor" in result:
        sections.append(_backdoor_section(result["backdoor"], looks))
    title = f"deepstrata data audit: {result['target']}"
    facts = f"{fmt(result['rows'])} rows of {result['data']}; inputs {', '.join(result['inputs'])}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{CSP}<style>{CSS} img.thumb{{width:{THUMBNAIL}px;image-rendering:pixelated;"
        "vertical-align:middle}</style></head><body><header><h1>Data audit: "
        f'<code>{esc(result["target"])}</code></h1><p class="subtitle">{esc(facts)}</p>'
        f"</header><main>{''.join(sections)}</main></body></html>\n"
    )

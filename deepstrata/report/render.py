"""report.html: one self-contained page about a bundle (inline CSS, embedded PNGs, no script).

``render_report(files)`` turns a bundle's files, by name, into the HTML document; each
section appears only when the files it needs are there. ``write_report(bundle_dir)``
writes it into a bundle and rehashes the manifest; ``report`` is the CLI command.
Everything a user named (columns, classes, cells, paths) is escaped.

Heavy libraries (numpy, pandas, scikit-learn, matplotlib) are imported inside the
functions, so the command line starts fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from deepstrata.errors import BundleError
from deepstrata.report.html import CSP, CSS, Section, esc
from deepstrata.report.inputs import COMPARE, PREDICTIONS, REPORT, SUMMARY, Inputs, parse
from deepstrata.report.sections import (
    configuration_section,
    cross_validation_section,
    data_section,
    explanation_section,
    learning_curve_section,
    model_choice_section,
    overview,
    training_section,
)

__all__ = [
    "COMPARE",
    "PREDICTIONS",
    "REPORT",
    "SUMMARY",
    "compare_beside",
    "render_report",
    "write_report",
]


def render_report(files: Mapping[str, bytes]) -> str:
    """One self-contained HTML document about the bundle whose files (name -> bytes) are given.

    config.json is required; metrics.json, metrics.jsonl, lr_range.png, data_summary.json,
    validation_predictions.csv and compare.json each add sections when present. Figures are
    embedded PNGs; there is no script and no external URL. Raises BundleError for a file
    that cannot be read.

    ``write_report(bundle_dir)`` calls it with the files of a bundle directory.
    """
    from deepstrata.report.card import card_section, groups_section
    from deepstrata.report.privacy import privacy_section
    from deepstrata.report.validation import analysis_sections

    bundle = parse(files)
    sections = [
        overview(bundle),
        data_section(bundle),
        cross_validation_section(bundle),
        *analysis_sections(bundle),
        explanation_section(bundle),
        groups_section(bundle),
        training_section(bundle),
        privacy_section(bundle),
        model_choice_section(bundle),
        learning_curve_section(bundle),
        configuration_section(bundle),
        card_section(bundle),
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


def write_report(bundle_dir: str | Path, *, add: Mapping[str, bytes] | None = None) -> Path:
    """Render ``bundle_dir``'s report.html from its files, write it atomically and rehash
    the manifest (its recorded versions kept). A compare.json beside the bundle (see
    :func:`compare_beside`) is copied in first, so the learning curves appear. The bundle
    is verified first, so a tampered bundle is refused rather than re-signed. ``add``:
    files to put in the bundle with it (``explain.json``), every other file unchanged.
    Returns the report's path."""
    from deepstrata.bundle.manifest import MANIFEST, verify_manifest, write_manifest
    from deepstrata.bundle.write import atomic_directory

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
    files.update(add or {})
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
    with atomic_directory(directory) as staging:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        write_manifest(staging, versions=manifest.get("versions", {}))
    return directory / REPORT

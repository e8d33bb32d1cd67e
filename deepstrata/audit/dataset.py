"""``deepstrata audit-data``: a table's likely label errors, duplicates and leakage.

:func:`audit_data` checks its input first (the target, the folds, the test set's
columns), then looks for exact and near duplicates (cheap; a file column by the files' contents), the rows of a given test set
that are also in the training rows (leakage), and, with ``folds``, the likely label
errors (:mod:`deepstrata.audit.labels`: K networks' out-of-fold probabilities).
``audit_data.json`` holds the counts and the first examples; ``label_issues.csv``,
``duplicates.csv`` and ``leakage.csv`` list every row found.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from deepstrata.audit.duplicates import DEFAULT_TOLERANCE, duplicates, leakage
from deepstrata.config import FitConfig
from deepstrata.errors import ConfigError

EXAMPLES = 20  # rows, groups or pairs shown in audit_data.json; the CSV files list all


def input_columns(table, cfg: FitConfig) -> tuple[list[str], list[str]]:
    """The columns a model would read (the schema's inputs), and those of file paths."""
    from deepstrata.recipes.prepare import schema_for

    schema = schema_for(table, cfg)
    from deepstrata.kinds import FILE_KINDS

    inputs = [f.name for f in schema.inputs]
    return inputs, [f.name for f in schema.inputs if f.kind in FILE_KINDS]


def name_files(rows: pd.DataFrame, table, files: list[str]) -> None:
    """Put each file column's path beside ``rows``' 1-based ``row`` (a folder's rows are
    files: say which file each is)."""
    for name in files:
        rows.insert(1, name, table.frame[name].iloc[rows["row"] - 1].to_numpy())


def with_contents(table, files: list[str]):
    """The table's frame with each file path replaced by the sha256 of the file's bytes, so
    that two copies of one image under two names are duplicates (unreadable: missing)."""
    import hashlib
    from pathlib import Path

    from deepstrata.data.files import base_folder

    if not files:
        return table.frame
    base, frame = base_folder(table), table.frame.copy()

    def digest(cell):
        if cell is None or (isinstance(cell, float) and cell != cell):
            return None
        path = Path(str(cell))
        path = path if path.is_absolute() else base / path
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None

    for name in files:
        frame[name] = frame[name].map(digest)
    return frame


def check_test(test, columns: list[str]) -> None:
    missing = [c for c in columns if c not in test.frame.columns]
    if missing:
        raise test.error(
            f"the test set lacks input column(s) {', '.join(map(repr, missing))}",
            column=missing[0],
            hint="--test needs the training table's columns",
        )


def audit_data(
    data,
    cfg: FitConfig,
    *,
    test=None,
    labels: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    embeddings: bool | None = None,
    backdoor: bool | None = None,
    progress=False,
) -> tuple[dict, dict[str, bytes]]:
    """``(audit_data.json's content, the other files by name)`` for the table ``data``
    (``cfg.target`` its target; ``cfg.folds`` for label errors) and a ``test`` table.

    ``embeddings`` (None: when an input is an image or text column): label errors and
    near duplicates on pretrained embeddings (:mod:`deepstrata.audit.embedded`);
    ``backdoor`` (None: when an input is an image column): activation clustering
    (:mod:`deepstrata.audit.backdoor`). The files: the CSV lists and audit_data.html."""
    from deepstrata.audit.embedded import embedded_columns
    from deepstrata.audit.labels import check_for_labels
    from deepstrata.data.sources import read_table

    if cfg.target is None:
        raise ConfigError("name the target column", option="--target")
    if tolerance < 0:
        raise ConfigError(f"must be >= 0, got {tolerance}", option="--near-tolerance")
    table = read_table(data)
    columns, file_columns = input_columns(table, cfg)
    embedded = embedded_columns(table, cfg)
    embeddings = bool(embedded) if embeddings is None else embeddings
    images = [name for name, kind in embedded if kind == "image"]
    backdoor = bool(images) if backdoor is None else backdoor
    _check_choices(embeddings, embedded, backdoor, images)
    if labels:
        from deepstrata.audit.requirements import cleanlab_filter

        cleanlab_filter()  # a missing package fails before any work
        check_for_labels(table, cfg)
    test_table = read_table(test) if test is not None else None
    if test_table is not None:
        check_test(test_table, columns)
    frame = with_contents(table, file_columns)  # files compared by content, not by name
    result = {"data": table.source, "rows": len(table.frame), "target": cfg.target}
    result["inputs"] = columns
    result["duplicates"] = duplicates(frame, columns, target=cfg.target, tolerance=tolerance)
    if test_table is not None:
        leaked = leakage(
            frame, with_contents(test_table, file_columns), columns, tolerance=tolerance
        )
        result["leakage"] = {"test": test_table.source, **leaked}
    vectors = None
    if embeddings:
        vectors = _embedded(result, table, test_table, embedded, progress)
    if labels:
        result["label_issues"], issues = _label_issues(table, cfg, vectors, progress)
        name_files(issues, table, file_columns)
        result["label_issues"]["worst"] = issues.head(EXAMPLES).to_dict(orient="records")
    if backdoor:
        from deepstrata.audit.backdoor import check_images

        result["backdoor"] = check_images(table, cfg, progress=progress)
        result["backdoor"]["found"] = len(result["backdoor"]["rows"])
    files = _files(result, issues if labels else None, table, file_columns)
    shortened = _shortened(result)
    files["audit_data.html"] = _page(shortened, table, embedded)
    return shortened, files


def _check_choices(embeddings, embedded, backdoor, images) -> None:
    if embeddings and not embedded:
        raise ConfigError(
            "no input column is an image or text: there is nothing to embed", option="--embeddings"
        )
    if backdoor and not images:
        raise ConfigError(
            "the backdoor check is for image data; no input column is an image",
            option="--backdoor",
        )


def _embedded(result: dict, table, test_table, embedded, progress) -> np.ndarray:
    """Near duplicates (and leakage) on the pretrained embeddings; the training vectors."""
    from deepstrata.audit.embedded import near_duplicates, near_leakage, vectors_of

    vectors = vectors_of(table, embedded, progress=progress)
    labels = table.frame[result["target"]].astype("string").fillna("").to_numpy()
    result["duplicates"]["near_embeddings"] = near_duplicates(vectors, labels)
    if test_table is not None:
        test_vectors = vectors_of(test_table, embedded, progress=progress)
        result["leakage"]["near_embeddings"] = near_leakage(vectors, test_vectors)
    return vectors


NETWORK_STRATEGIES = ("scratch", "finetune")  # label errors from the K networks, not embeddings


def _label_issues(table, cfg, vectors, progress) -> tuple[dict, pd.DataFrame]:
    """The label-error entry and every issue: from K networks' out-of-fold probabilities,
    or, with ``vectors``, from a logistic regression's on the embeddings. ``--strategy
    scratch`` or ``finetune`` asks for the networks even then: on digits as 8x8 PNGs with
    10 % of labels flipped, CNNs from scratch flag them at precision 0.97, recall 0.92;
    the embeddings at 0.56 (tests/audit/test_labels.py)."""
    from deepstrata.audit.labels import label_issues, out_of_fold

    if vectors is None or cfg.strategy in NETWORK_STRATEGIES:
        model, rows, given, probabilities = out_of_fold(table, cfg, progress=progress)
        how = f"{cfg.folds} networks" + (
            f" ({cfg.strategy})" if cfg.strategy in NETWORK_STRATEGIES else ""
        )
        classes, scored = model.classes, model.metrics["validation"]
    else:
        from deepstrata.audit.embedded import out_of_fold as embedded_out_of_fold
        from deepstrata.evaluate.metrics import classification_metrics

        target = table.frame[cfg.target]
        rows = np.flatnonzero(target.notna().to_numpy())
        names = target.iloc[rows].astype(str)
        classes = sorted(names.unique())
        given = names.map({c: i for i, c in enumerate(classes)}).to_numpy()
        probabilities = embedded_out_of_fold(
            vectors[rows], given, len(classes), folds=cfg.folds, seed=cfg.seed
        )
        how = f"a logistic regression on pretrained embeddings, {cfg.folds} folds"
        scored = classification_metrics(given, probabilities)
    issues = label_issues(given, probabilities, classes=classes, rows=rows)
    entry = {
        "folds": cfg.folds,
        "model": how,
        "rows_checked": len(rows),
        "found": len(issues),
        "share": len(issues) / max(len(rows), 1),
        "out_of_fold": scored,
    }
    return entry, issues


def _files(result: dict, issues, table, file_columns) -> dict[str, bytes]:
    files = {"duplicates.csv": _duplicates_csv(result["duplicates"])}
    if "leakage" in result:
        files["leakage.csv"] = _leakage_csv(result["leakage"])
    if issues is not None:
        files["label_issues.csv"] = _csv(issues)
    if "backdoor" in result:
        rows = result["backdoor"]["rows"]
        listing = pd.DataFrame({"row": rows})
        for name in file_columns:
            listing[name] = table.frame[name].iloc[np.asarray(rows, dtype=int) - 1].to_numpy()
        files["backdoor.csv"] = _csv(listing)
    return files


def _page(result: dict, table, embedded) -> bytes:
    """audit_data.html, with a thumbnail or snippet of each row it shows."""
    from deepstrata.audit.data_page import render_data_page, snippets, thumbnails

    rows = [issue["row"] for issue in result.get("label_issues", {}).get("worst", [])]
    for key in ("near", "near_embeddings"):
        for pair in result["duplicates"].get(key, {}).get("pairs", []):
            rows += pair["rows"]
    for group in result["duplicates"]["exact"]["groups"]:
        rows += group["rows"]
    rows += result.get("backdoor", {}).get("rows", [])
    looks: dict[int, str] = {}
    for name, kind in embedded[:1]:  # the first image or text column shows the row
        looks = (thumbnails if kind == "image" else snippets)(table, name, rows)
    return render_data_page(result, looks).encode()


def _csv(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _duplicates_csv(found: dict) -> bytes:
    lines = [
        {"kind": "exact", "group": number, "row": row}
        for number, group in enumerate(found["exact"]["groups"], start=1)
        for row in group["rows"]
    ]
    lines += [
        {"kind": "near", "group": number, "row": row, "distance": pair["distance"]}
        for number, pair in enumerate(found["near"]["pairs"], start=1)
        for row in pair["rows"]
    ]
    return _csv(pd.DataFrame(lines, columns=["kind", "group", "row", "distance"]))


def _leakage_csv(leaked: dict) -> bytes:
    lines = [{"kind": "exact", "test_row": row} for row in leaked["exact"]["test_rows"]]
    lines += [{"kind": "near", **pair} for pair in leaked["near"]["pairs"]]
    return _csv(pd.DataFrame(lines, columns=["kind", "test_row", "train_row", "distance"]))


def _shortened(result: dict) -> dict:
    """The JSON's lists cut to their first examples (the CSV files hold every row)."""
    result = json.loads(json.dumps(result, default=float))
    result["duplicates"]["exact"]["groups"] = result["duplicates"]["exact"]["groups"][:EXAMPLES]
    result["duplicates"]["near"]["pairs"] = result["duplicates"]["near"]["pairs"][:EXAMPLES]
    if "near_embeddings" in result["duplicates"]:
        near = result["duplicates"]["near_embeddings"]
        near["pairs"] = near["pairs"][:EXAMPLES]
    if "leakage" in result:
        leak = result["leakage"]
        leak["exact"]["test_rows"] = leak["exact"]["test_rows"][:EXAMPLES]
        for key in ("near", "near_embeddings"):
            if key in leak:
                leak[key]["pairs"] = leak[key]["pairs"][:EXAMPLES]
    if "backdoor" in result:
        result["backdoor"]["rows"] = result["backdoor"]["rows"][: EXAMPLES * 5]
    return result

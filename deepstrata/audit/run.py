"""``deepstrata audit``: a bundle's predictions on labelled rows, audited by group.

:func:`audit_bundle` checks everything it is given first (the bundle, the data, the
target, each sensitive column, the positive class, the output folder), then predicts and
audits (:mod:`deepstrata.audit.fairness`); :func:`write_audit` writes ``audit.json`` and
``audit.html`` into a folder, atomically: a refused audit writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepstrata.audit.fairness import Outcomes, audit_fairness
from deepstrata.audit.groups import DEFAULT_MIN_GROUP_SIZE, check_sensitive, groupings
from deepstrata.errors import ConfigError

AUDIT_JSON, AUDIT_HTML = "audit.json", "audit.html"


def outcomes_of(model, table, *, positive: str | None = None) -> tuple[Outcomes, dict]:
    """What ``model`` predicted for the labelled rows of ``table``, as the audit reads it,
    and facts about it (rows audited, rows without a target, the positive class).
    Rows whose target is missing are left out."""
    spec, target = model.spec, model.schema.target
    if target not in table.frame.columns:
        raise table.error(f"the target column {target!r} is needed to audit", column=target)
    if spec.classifier and not spec.stratify:
        raise ConfigError(
            f"the fairness audit is for one class or one value per row; this model is {model.task}",
            option="BUNDLE",
        )
    missing = spec.missing_targets(table.frame[target])
    labelled = table.frame.loc[~missing].reset_index(drop=True)
    outputs = model.outputs_of(_table_of(labelled, table))
    facts = {"rows": len(labelled), "rows_without_target": int(missing.sum())}
    if not spec.classifier:
        truth = labelled[target].to_numpy(dtype=float)
        return Outcomes("regression", truth, model.decode(outputs).astype(float)), facts
    encoded = model.target_encoder.encode(labelled[target], table)
    predicted = model.point_predictions(outputs, model.groups_of(labelled))  # its decisions
    probabilities = model.probabilities_of(outputs)
    classes = [str(c) for c in model.classes]
    if len(classes) != 2:
        if positive is not None:
            raise ConfigError("a positive class is for two classes", option="--positive")
        return Outcomes("classes", encoded, predicted, probabilities), facts
    index = classes.index(positive) if positive is not None else 1
    truth, said = (encoded == index).astype(int), (predicted == index).astype(int)
    p = probabilities[:, index]
    facts["positive"] = classes[index]
    return Outcomes("binary", truth, said, np.column_stack([1 - p, p])), facts


def _table_of(frame, table):
    from deepstrata.data.table import Table

    return Table(frame, table.source, None)


def check_positive(model, positive: str | None) -> None:
    if positive is None:
        return
    classes = [str(c) for c in model.classes] if model.spec.classifier else []
    if positive not in classes:
        raise ConfigError(
            f"{positive!r} is not a class of this model (classes: {', '.join(classes) or 'none'})",
            option="--positive",
        )


def audit_bundle(
    bundle: str | Path,
    data,
    sensitive: list[str],
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    positive: str | None = None,
) -> dict:
    """The fairness audit of the bundle at ``bundle`` on ``data`` (rows with the target
    and the ``sensitive`` columns), as the dictionary written to audit.json."""
    from deepstrata.audit.requirements import fairlearn_metrics
    from deepstrata.data.sources import read_table
    from deepstrata.model.model import load

    fairlearn_metrics()  # a missing package fails before any work
    if min_group_size < 1:
        raise ConfigError(f"must be >= 1, got {min_group_size}", option="--min-group-size")
    if resamples < 10:
        raise ConfigError(f"must be >= 10, got {resamples}", option="--bootstrap")
    model = load(bundle)
    check_positive(model, positive)
    table = read_table(data)
    check_sensitive(table, sensitive, min_group_size=min_group_size, target=model.schema.target)
    outcomes, facts = outcomes_of(model, table, positive=positive)
    kept = table.frame.loc[~model.spec.missing_targets(table.frame[model.schema.target])]
    split = groupings(
        _table_of(kept.reset_index(drop=True), table), sensitive, min_group_size=min_group_size
    )
    result = audit_fairness(outcomes, split, resamples=resamples, level=level, seed=seed)
    return {
        "bundle": str(bundle),
        "data": table.source,
        "target": model.schema.target,
        "task": model.task,
        "kind": outcomes.kind,
        "sensitive": list(sensitive),
        "min_group_size": min_group_size,
        **facts,
        **result,
    }


def default_output(bundle: str | Path) -> Path:
    """``runs/loans`` -> ``runs/loans.audit``."""
    path = Path(bundle)
    return path.with_name(path.name + ".audit")


def check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite", option="--output")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder", option="--output")


def write_folder(out: Path, files: dict[str, bytes]) -> Path:
    """``files`` (name -> bytes) as the folder ``out``, built beside it and renamed into
    place: a failure leaves the old folder whole and no half-written one."""
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def write_audit(result: dict, out: Path) -> Path:
    """audit.json and audit.html in the folder ``out``."""
    from deepstrata.audit.page import render_audit

    return write_folder(
        out,
        {
            AUDIT_JSON: json.dumps(result, indent=2).encode(),
            AUDIT_HTML: render_audit(result).encode("utf-8"),
        },
    )

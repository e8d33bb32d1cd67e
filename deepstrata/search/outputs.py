"""A finished search's files: ``search.json``, ``search.html``, ``best.yaml`` (a file
``fit --config`` takes) and the refit ``bundle/`` whose report has a search section."""

from __future__ import annotations

import json
from pathlib import Path

from deepstrata.search.result import best_options, summarise

__all__ = ["BEST", "BUNDLE", "RECORD", "refit", "write_outputs"]

RECORD = "search.json"
PAGE = "search.html"
BEST = "best.yaml"
BUNDLE = "bundle"


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def write_outputs(directory: Path, study, search, rule, *, record: dict) -> dict:
    """Summarise ``study`` into the directory's files; returns the summary."""
    import yaml

    from deepstrata.config import DEFAULTS
    from deepstrata.search.page import render_search

    summary = summarise(study, search, rule)
    summary["run"] = record
    given = {*record.get("given", []), "target"}
    options = best_options(
        summary, {k: v for k, v in search.settings.items() if k in given}, DEFAULTS
    )
    for resolved in ("ensemble", "cv_model"):  # set for the trials, or resolved by fit
        if resolved not in given:
            options.pop(resolved, None)
    summary["best_options"] = options
    directory.mkdir(parents=True, exist_ok=True)
    write_atomically(directory / RECORD, json.dumps(summary, indent=1, default=str))
    write_atomically(directory / PAGE, render_search(summary))
    header = (
        f"# the configuration deepstrata search picked (trial "
        f"{(summary.get('best') or {}).get('number')}); use: deepstrata fit DATA --config {BEST}\n"
    )
    write_atomically(directory / BEST, header + yaml.safe_dump(options, sort_keys=True))
    return summary


def refit(directory: Path, summary: dict, data, *, progress: bool = True, overwrite: bool = True):
    """Fit the picked configuration on the data and write ``bundle/`` with the search."""
    from deepstrata import api
    from deepstrata.config import FitConfig

    config = FitConfig.from_dict(summary["best_options"], source=str(directory / BEST))
    model = api.fit(data, config=config, progress=progress)
    model.artifacts[RECORD] = json.dumps(summary, default=str).encode()
    return model.save(directory / BUNDLE, overwrite=overwrite), model

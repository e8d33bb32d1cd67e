"""The search's figures and the bundle report's "Search" section, drawn from
``search.json`` (what ``deepstrata search`` found; the refit bundle carries it).

The figures: every trial's first objective over time with the best so far, the
Pareto front of the first two objectives, and the decisions' importances.
"""

from __future__ import annotations

import json

from deepstrata.report.html import Html, Section, esc, fmt, image, note, table
from deepstrata.report.plots import _figure, _png

SEARCH = "search.json"
COLOURS = {"complete": "#2563eb", "pruned": "#f59e0b", "fail": "#dc2626"}


def _finished(summary: dict) -> list[dict]:
    return [t for t in summary.get("trials", []) if t.get("finished") is not None]


def progress_png(summary: dict) -> bytes:
    """Each trial's first objective (or its last report when pruned) against the minutes
    since the search began, and the best so far."""
    trials = sorted(_finished(summary), key=lambda t: t["finished"])
    objective = summary["objectives"][0]
    lower = summary["directions"][0] == "minimize"
    with _figure(6.4, 3.2) as figure:
        axes = figure.add_subplot()
        best, steps = None, []
        for trial in trials:
            values = trial.get("values")
            if not values:
                continue
            x = trial["finished"] / 60
            axes.scatter([x], [values[0]], s=14, color=COLOURS.get(trial["state"], "#6b7280"))
            if trial["state"] == "complete":
                if best is None or (values[0] < best if lower else values[0] > best):
                    best = values[0]
                steps.append((x, best))
        if steps:
            xs, ys = zip(*steps)
            axes.step(xs, ys, where="post", color="#111827", linewidth=1.4, label="best so far")
            axes.legend(loc="upper right")
        axes.set_xlabel("minutes since the search began")
        axes.set_ylabel(objective)
        axes.set_title("trials over time (blue complete, amber pruned)")
        return _png(figure)


def front_png(summary: dict) -> bytes:
    """The first two objectives of every complete trial; the Pareto front joined."""
    objectives = summary["objectives"]
    trials = [t for t in summary.get("trials", []) if t["state"] == "complete" and t.get("values")]
    front = set(summary.get("pareto_front", []))
    with _figure(6.4, 3.4) as figure:
        axes = figure.add_subplot()
        others = [t for t in trials if t["number"] not in front]
        axes.scatter([t["values"][1] for t in others], [t["values"][0] for t in others],
                     s=12, color="#9ca3af", label="dominated")  # fmt: skip
        line = sorted((t["values"][1], t["values"][0]) for t in trials if t["number"] in front)
        if line:
            xs, ys = zip(*line)
            axes.plot(xs, ys, "o-", color="#2563eb", markersize=4, label="Pareto front")
        best = summary.get("best")
        if best and best.get("values"):
            axes.scatter([best["values"][1]], [best["values"][0]], s=80, facecolors="none",
                         edgecolors="#dc2626", label="picked")  # fmt: skip
        axes.set_xlabel(objectives[1])
        axes.set_ylabel(objectives[0])
        axes.legend(loc="upper right")
        return _png(figure)


def importance_png(importances: dict) -> bytes:
    names = list(importances)[:12][::-1]
    with _figure(6.4, 0.4 + 0.28 * len(names)) as figure:
        axes = figure.add_subplot()
        axes.barh(names, [importances[n] for n in names], color="#2563eb")
        axes.set_xlabel("share of the first objective's variance (fANOVA)")
        return _png(figure)


def facts(summary: dict) -> list[list]:
    """The search in a few rows: sampler, trials by state, best, default, pruning."""
    tally, pruning = summary.get("counts", {}), summary.get("pruning", {})
    best, baseline = summary.get("best") or {}, summary.get("baseline") or {}
    objective = summary["objectives"][0]
    rows = [
        ["sampler", f"{summary.get('sampler')} ({summary.get('sampler_reason', '')})"],
        ["objectives", ", ".join(summary["objectives"])],
        [
            "trials",
            f"{tally.get('complete', 0)} complete, {tally.get('pruned', 0)} pruned, "
            f"{tally.get('fail', 0)} failed of {summary.get('trials_asked')}",
        ],
        [
            f"best {objective}",
            fmt(best.get("values", [None])[0]) + f" (trial {best.get('number')})",
        ],
    ]
    if baseline.get("values"):
        rows.append([f"default configuration's {objective}", fmt(baseline["values"][0])])
    if pruning.get("pruned"):
        rows.append(
            [
                "pruning saved",
                f"{fmt(pruning.get('seconds_saved'))} s of training "
                f"({100 * pruning.get('fraction_saved', 0):.0f} %), {fmt(pruning.get('epochs_saved'))} epochs",
            ]
        )
    return rows


def search_section(bundle) -> Section | None:
    """The report's "Search" section, when the bundle came from ``deepstrata search``."""
    raw = bundle.files.get(SEARCH)
    if raw is None:
        return None
    summary = json.loads(raw)
    best = summary.get("best") or {}
    parts = [table(["", ""], facts(summary))]
    if best.get("params"):
        parts.append(table(["decision", "value"], [[k, v] for k, v in best["params"].items()]))
    parts.append(image(progress_png(summary), "trials over time and the best so far"))
    if summary.get("importances"):
        parts.append(image(importance_png(summary["importances"]), "decision importances"))
    parts.append(note("This bundle was refit with the configuration the search picked."))
    return Section("search", "Search", Html("".join(parts)))


__all__ = [
    "SEARCH",
    "esc",
    "facts",
    "front_png",
    "importance_png",
    "progress_png",
    "search_section",
]

"""``search.html``: one self-contained page about a search (inline CSS, figures as
embedded PNGs, no script, no external URL), drawn from ``search.json`` only."""

from __future__ import annotations

from deepstrata.report.html import Html, Section, esc, fmt, image, note, standalone_page, table
from deepstrata.report.search import facts, front_png, importance_png, progress_png

__all__ = ["render_search"]


def render_search(summary: dict) -> str:
    """The HTML document for ``summary`` (what :func:`~deepstrata.search.result.summarise`
    returns)."""
    sections = [("summary", "Summary", table(["", ""], facts(summary)))]
    best = summary.get("best") or {}
    if best.get("params"):
        rows = [[k, v] for k, v in best["params"].items()]
        sections.append(
            ("best", f"Picked trial {best['number']}", table(["decision", "value"], rows))
        )
    if any(t.get("finished") is not None and t.get("values") for t in summary.get("trials", [])):
        sections.append(
            (
                "progress",
                "Trials over time",
                image(progress_png(summary), "trials over time and the best so far"),
            )
        )
    if len(summary["objectives"]) > 1 and summary.get("pareto_front"):
        sections.append(
            (
                "front",
                "Pareto front",
                Html(
                    image(front_png(summary), "Pareto front")
                    + note(
                        f"{len(summary['pareto_front'])} trials no other beats on every "
                        f"objective; picked by {summary['pick']['rule']} "
                        f"{fmt(summary['pick']['tolerance'])}."
                    )
                ),
            )
        )
    if summary.get("importances"):
        sections.append(
            (
                "importance",
                "What mattered",
                image(importance_png(summary["importances"]), "decision importances"),
            )
        )
    else:
        sections.append(("importance", "What mattered", note("Too few complete trials to tell.")))
    sections.append(("trials", "Every trial", _trials_table(summary)))
    title = f"deepstrata search: {summary.get('target')}"
    heading = Html(f"Search for <code>{esc(summary.get('target'))}</code>")
    subtitle = (
        f"study {summary.get('study')} · {summary.get('sampler')} · "
        f"{', '.join(summary['objectives'])}"
    )
    return standalone_page(title, heading, subtitle, [Section(*s) for s in sections])


def _trials_table(summary: dict) -> Html:
    objectives = summary["objectives"]
    rows = []
    for trial in summary.get("trials", []):
        values = trial.get("values") or [None] * len(objectives)
        rows.append(
            [
                trial["number"],
                trial["state"]
                + (f" at epoch {trial['pruned_at']}" if trial.get("pruned_at") else ""),
                *values[: len(objectives)],
                trial.get("epochs"),
                ", ".join(f"{k}={fmt(v, 3)}" for k, v in trial.get("params", {}).items()),
            ]
        )
    header = ["trial", "state", *objectives, "epochs", "decisions"]
    return table(header, rows, numeric=tuple(range(2, 3 + len(objectives))), wide=True)

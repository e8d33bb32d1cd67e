"""audit.html: the fairness audit as one self-contained page (inline CSS, embedded PNGs,
no script), in the report's style (:mod:`deepstrata.report.html`).

Per grouping: a table of the scored groups (each value with its interval), the groups too
small to score, the disparities (the four-fifths rule flagged when it fails) and a figure
of the main rate per group with its interval.
"""

from __future__ import annotations

from deepstrata.report.html import CSP, CSS, Html, esc, fmt, image, note, table

NAMES = {
    "selection_rate": "selection rate",
    "true_positive_rate": "TPR",
    "false_positive_rate": "FPR",
    "precision": "precision",
    "accuracy": "accuracy",
    "ece": "ECE",
    "mean_error": "mean abs. error",
    "mean_residual": "mean residual",
    "demographic_parity_difference": "demographic-parity difference",
    "demographic_parity_ratio": "demographic-parity ratio",
    "equalized_odds_difference": "equalized-odds difference",
    "equal_opportunity_difference": "equal-opportunity difference",
    "accuracy_difference": "accuracy difference",
    "ece_difference": "ECE difference",
    "mean_error_difference": "mean-abs.-error difference",
    "mean_residual_difference": "mean-residual difference",
}
MAIN = {"binary": "selection_rate", "classes": "accuracy", "regression": "mean_residual"}


def estimate(value: dict) -> Html:
    """``0.512 [0.47, 0.55]``."""
    if value.get("value") is None:
        return Html("—")
    interval = ""
    if value.get("low") is not None:
        interval = f' <span class="note">[{esc(fmt(value["low"], 3))}, {esc(fmt(value["high"], 3))}]</span>'
    return Html(f"{esc(fmt(value['value'], 3))}{interval}")


def groups_table(grouping: dict) -> Html:
    names = list(grouping["groups"][0]["metrics"]) if grouping["groups"] else []
    header = ["group", "rows", *(NAMES.get(n, n) for n in names)]
    rows = [
        [group["group"], group["count"], *(estimate(group["metrics"][n]) for n in names)]
        for group in grouping["groups"]
    ]
    return table(header, rows, numeric=tuple(range(1, len(header))), wide=True)


def disparities_table(grouping: dict) -> Html:
    rows = [[NAMES.get(k, k), estimate(v)] for k, v in grouping["disparities"].items()]
    rule = grouping.get("four_fifths")
    if rule:
        verdict = "passes" if rule["passes"] else "FAILS"
        text = (
            f"{fmt(rule['ratio'], 3)}: {verdict} (lowest selection rate {rule['lowest']}, "
            f"highest {rule['highest']})"
        )
        cell = Html(f'<span class="bad">{esc(text)}</span>') if not rule["passes"] else text
        rows.append(["four-fifths rule (ratio ≥ 0.8)", cell])
    return table(["disparity", "value [interval]"], rows, numeric=(1,))


def figure(grouping: dict, metric: str, level: float) -> Html:
    """The main metric per group with its interval, as an embedded PNG."""
    from deepstrata.report.plots import intervals_png

    shown = [g for g in grouping["groups"] if g["metrics"][metric]["value"] is not None]
    estimates = [g["metrics"][metric] for g in shown]
    png = intervals_png(
        [g["group"] for g in shown],
        [e["value"] for e in estimates],
        [e["value"] if e["low"] is None else e["low"] for e in estimates],
        [e["value"] if e["high"] is None else e["high"] for e in estimates],
        xlabel=f"{NAMES.get(metric, metric)} ({level:.0%} interval)",
        title=grouping["name"],
    )
    return image(png, f"{NAMES.get(metric, metric)} by {grouping['name']}")


def grouping_section(grouping: dict, kind: str, level: float) -> str:
    parts = [groups_table(grouping)]
    if grouping["too_small"]:
        small = ", ".join(f"{g['group']} ({g['count']} rows)" for g in grouping["too_small"])
        parts.append(note(f"too small to score: {small}"))
    if len(grouping["groups"]) >= 2:
        parts.append(disparities_table(grouping))
    if grouping["groups"]:
        parts.append(figure(grouping, MAIN[kind], level))
    return (
        f'<section id="by-{esc(grouping["name"])}"><h2>By {esc(grouping["name"])}</h2>'
        + "".join(parts)
        + "</section>"
    )


def render_audit(result: dict) -> str:
    """The HTML document of an audit result (what :func:`~deepstrata.audit.run.audit_bundle`
    returns). Every name from the data is escaped."""
    level = result["bootstrap"]["level"]
    overall = result["overall"]
    cards = "".join(
        f'<div class="card"><div class="value">{esc(fmt(v, 3))}</div>'
        f'<div class="label">{esc(NAMES.get(k, k))}</div></div>'
        for k, v in overall.items()
        if v is not None
    )
    facts = [
        ("bundle", result["bundle"]),
        ("data", result["data"]),
        ("rows audited", fmt(result["rows"])),
        ("sensitive columns", ", ".join(result["sensitive"])),
        ("smallest group scored", f"{result['min_group_size']} rows"),
        (
            "intervals",
            f"{level:.0%} bootstrap percentile intervals, {result['bootstrap']['resamples']} "
            "resamples within each group",
        ),
    ]
    if "positive" in result:
        facts.insert(3, ("positive class", result["positive"]))
    listing = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    sections = "".join(grouping_section(g, result["kind"], level) for g in result["groupings"])
    title = f"deepstrata fairness audit: {result['target']}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{CSP}<style>{CSS}</style></head><body><header><h1>Fairness audit: "
        f"<code>{esc(result['target'])}</code></h1>"
        f'<p class="subtitle">task {esc(result["task"])} · by {esc(", ".join(result["sensitive"]))}</p>'
        f'</header><main><section id="overall"><h2>Overall</h2><div class="cards">{cards}</div>'
        f"<dl>{listing}</dl></section>{sections}</main></body></html>\n"
    )

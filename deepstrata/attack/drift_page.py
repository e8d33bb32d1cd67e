"""``drift.html``: a drift report (:meth:`~deepstrata.attack.drift.DriftReport.to_dict`) as
one self-contained page: the verdict, a table of every column's statistics, and per column
the training and new shares of each bin or category side by side (inline bars, no script,
nothing loaded from outside)."""

from __future__ import annotations

from deepstrata.report.html import CSP, CSS, Html, esc, fmt, table

_EXTRA_CSS = ".bar.new{background:#fca5a5}td.bars{min-width:180px}"
_BAR_WIDTH = 160  # pixels of a share of 1


def _bar(share: float, new: bool = False) -> Html:
    width = max(round(share * _BAR_WIDTH), 1 if share > 0 else 0)
    kind = "bar new" if new else "bar"
    return Html(f'<span class="{kind}" style="width:{width}px"></span> {esc(fmt(share, 3))}')


def _verdict(entry: dict) -> Html:
    return Html('<span class="bad">drift</span>') if entry["drifted"] else esc("ok")


def _summary(report: dict) -> Html:
    flagged = report["drifted"] + (
        ["prediction"] if report["prediction"] and report["prediction"]["drifted"] else []
    )
    cards = [
        (fmt(report["rows"]), "rows checked"),
        (str(len(flagged)), "flagged"),
        (fmt(report["alpha"]), "alpha"),
        (fmt(report["psi_threshold"]), "PSI threshold"),
    ]
    body = "".join(
        f'<div class="card"><div class="value">{esc(value)}</div>'
        f'<div class="label">{esc(label)}</div></div>'
        for value, label in cards
    )
    said = ", ".join(flagged) if flagged else "nothing"
    return Html(f'<div class="cards">{body}</div><p>Drifted: <b>{esc(said)}</b></p>')


def _overview(entries: list[dict]) -> Html:
    rows = [
        [
            entry["column"],
            entry.get("kind", "output"),
            entry["test"],
            entry["statistic"],
            entry["p_value"],
            entry["psi"],
            entry.get("mean_shift"),
            _verdict(entry),
        ]
        for entry in entries
    ]
    header = ["column", "kind", "test", "statistic", "p-value", "PSI", "mean shift", "verdict"]
    return table(header, rows, numeric=(3, 4, 5, 6))


def _column(entry: dict) -> Html:
    title = f"<h3>{esc(entry['column'])} {_verdict(entry)}</h3>"
    bins = entry.get("bins")
    if bins is None:  # text, image, audio: vectors, no bins
        said = (
            f"MMD² {fmt(entry['statistic'])} (p = {fmt(entry['p_value'])}); the means are "
            f"{fmt(entry['mean_shift'])} training spreads apart."
        )
        return Html(title + f'<p class="note">{esc(said)}</p>')
    rows = [
        [label, _bar(old), _bar(new, new=True)]
        for label, old, new in zip(bins["labels"], bins["reference"], bins["new"])
        if old > 0 or new > 0
    ]
    return Html(title + table(["bin or category", "training", "new rows"], rows))


def drift_page(report: dict, *, title: str) -> str:
    """The page of ``report`` (a dict as ``DriftReport.to_dict`` gives)."""
    entries = [*report["columns"], *([report["prediction"]] if report["prediction"] else [])]
    sections = [
        ("Summary", _summary(report)),
        ("Columns", _overview(entries)),
        ("Shares", Html("".join(_column(entry) for entry in entries))),
    ]
    body = "".join(
        f"<section><h2>{esc(name)}</h2>{content}</section>" for name, content in sections
    )
    notes = "".join(f'<p class="note">{esc(line)}</p>' for line in report.get("notes", []))
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{CSP}'
        f"<title>{esc(title)}</title><style>{CSS}{_EXTRA_CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p class=subtitle>Each input against the training "
        "rows the bundle kept; a column is flagged when its test rejects at alpha and its "
        f"PSI reaches the threshold.</p></header>{body}{notes}</body></html>"
    )

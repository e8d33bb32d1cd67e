"""The outcome of ``deepstrata compare``: every fit's test score, the table, the winners,
and ``compare.json`` and ``compare.html`` (the learning-curve page).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepstrata.errors import ConfigError

SPREAD = "half the range over seeds, (max - min) / 2"


@dataclass
class CompareResult:
    """Every fit's test score (``points``), and what the table and the plot show."""

    data: str
    target: str
    task: str
    metric: str
    higher_is_better: bool
    test_rows: int
    fractions: list[float]
    seeds: list[int]
    families: list[str]
    points: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    strategy: str = "scratch"  # what the network family used (see the module docstring)

    def summary(self, family: str, fraction: float) -> tuple[float, float, int] | None:
        """(mean, half range, rows) over seeds of one family at one fraction; None if none ran."""
        found = [p for p in self.points if p["family"] == family and p["fraction"] == fraction]
        values = [p["value"] for p in found if math.isfinite(p["value"])]
        if not values:
            return None
        return float(np.mean(values)), (max(values) - min(values)) / 2, found[0]["rows"]

    def winners(self) -> list[dict]:
        """Per fraction, the family with the best mean (ties: the first in ``families``)."""
        result = []
        for fraction in self.fractions:
            best = None
            for family in self.families:
                summary = self.summary(family, fraction)
                if summary is None:
                    continue
                mean, _, rows = summary
                better = best is None or (
                    mean > best["mean"] if self.higher_is_better else mean < best["mean"]
                )
                if better:
                    best = {"fraction": fraction, "rows": rows, "family": family, "mean": mean}
            if best is not None:
                result.append(best)
        return result

    def to_dict(self) -> dict:
        """The ``compare.json`` format (read by the report renderer)."""
        return {
            "data": self.data,
            "target": self.target,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "test_rows": self.test_rows,
            "fractions": list(self.fractions),
            "seeds": list(self.seeds),
            "points": list(self.points),
            "skipped": dict(self.skipped),
            "winners": self.winners(),
        }

    def table(self) -> tuple[list[str], list[list[str]]]:
        """(header, rows): one row per family, one ``mean ± spread`` column per size."""
        columns = {}
        for fraction in self.fractions:
            rows = {p["rows"] for p in self.points if p["fraction"] == fraction}
            columns[fraction] = f"{fraction:.0%}" + (f" ({rows.pop()} rows)" if rows else "")
        body = []
        for family in self.families:
            cells = []
            for fraction in self.fractions:
                summary = self.summary(family, fraction)
                cells.append("-" if summary is None else f"{summary[0]:.4f} ± {summary[1]:.4f}")
            body.append([family, *cells])
        return ["family", *columns.values()], body

    def lines(self) -> list[str]:
        """One sentence per size naming the winner, then what was skipped and why."""
        said = []
        for w in self.winners():
            tied = [
                family
                for family in self.families
                if family != w["family"]
                and (summary := self.summary(family, w["fraction"])) is not None
                and summary[0] == w["mean"]
            ]
            also = f" (tied with {', '.join(tied)})" if tied else ""
            said.append(
                f"{w['rows']} rows ({w['fraction']:.0%}): {w['family']} wins{also}, "
                f"{self.metric} {w['mean']:.4f}"
            )
        return said + [f"{family} skipped: {why}" for family, why in self.skipped.items()]

    def html(self) -> str:
        """A self-contained page: the learning-curve plot (inline PNG), the table, the winners."""
        return render_html(self)

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``compare.json`` and ``compare.html`` into ``directory``, atomically: a
        temporary sibling renamed into place. An existing directory is replaced only with
        ``overwrite``, and only if it is a compare output (or empty)."""
        from deepstrata.bundle.write import atomic_directory

        directory = Path(directory)
        check_destination(directory, overwrite=overwrite)
        with atomic_directory(directory) as staging:
            (staging / "compare.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
            (staging / "compare.html").write_text(self.html(), encoding="utf-8")
        return directory


def check_destination(directory: Path, *, overwrite: bool) -> None:
    """Refuse an output directory that exists (without ``overwrite``) or that is not a
    compare output (never replaced): a ConfigError naming ``--out``."""
    if not directory.exists():
        return
    if not overwrite:
        raise ConfigError(
            f"{directory} already exists; pass --overwrite or choose another --out",
            option="--out",
        )
    if not directory.is_dir() or (
        any(directory.iterdir()) and not (directory / "compare.json").is_file()
    ):
        raise ConfigError(
            f"{directory} is not a compare output (no compare.json); refusing to replace it",
            option="--out",
        )


def render_html(result: CompareResult) -> str:
    """compare.html: inline CSS, the plot as a data: URI, every string escaped (the report's
    pieces: :mod:`deepstrata.report.html`, :mod:`deepstrata.report.plots`)."""
    from deepstrata.report.html import CSP, CSS, Html, esc, image, note, table
    from deepstrata.report.plots import learning_curve_png

    header, rows = result.table()
    winners = {w["fraction"]: w["family"] for w in result.winners()}
    for row in rows:  # the winner of each size in bold
        for index, fraction in enumerate(result.fractions, start=1):
            if winners.get(fraction) == row[0]:
                row[index] = Html(f"<b>{esc(row[index])}</b>")
    direction = "higher" if result.higher_is_better else "lower"
    items = "".join(f"<li>{esc(line)}</li>" for line in result.lines())
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(f"compare: {result.target}")}'
        f"</title>{CSP}<style>{CSS}</style></head><body><header><h1>{esc(result.data)}: "
        f"{esc(result.target)}</h1></header>"
        + note(
            f"Task {result.task}; test {result.metric} ({direction} is better) on "
            f"{result.test_rows} held-out rows, the same for every fit; seeds "
            f"{', '.join(map(str, result.seeds))}; network strategy {result.strategy}. "
            f"Cells: mean ± {SPREAD}."
        )
        + image(learning_curve_png(result.to_dict()), "learning curves")
        + table(header, rows, numeric=tuple(range(1, len(header))))
        + f"<ul>{items}</ul></body></html>\n"
    )

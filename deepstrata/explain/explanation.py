"""An :class:`Explanation`: attributions per explained row and raw input column.

``values[i, j]`` is how much column ``j`` moved row ``i``'s explained value (the
probability of ``classes[i]``, or the regressed value) away from ``base_values[i]``,
its value with every column at the baseline. For Shapley values and integrated
gradients the row sums to ``predictions[i] - base_values[i]`` (up to the method's gap,
reported in ``faithfulness``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Explanation:
    """Attributions of ``method`` for ``len(rows)`` rows over ``columns``.

    ``rows``: positions of the explained rows in the data; ``classes``: the class
    explained per row (None for regression); ``settings``: what the method ran with
    (baselines, steps, samples, seed); ``faithfulness``: its measured faithfulness;
    ``maps``: for image columns explained pixel by pixel, ``{column: (rows, S, S)}``
    attributions (colour channels summed), and ``pixels`` the images ``(rows, S, S, 3)``
    uint8 they are laid over; ``words``: for text columns, ``{column: [{"words",
    "values", "base_value"} per row]}`` (:mod:`deepstrata.explain.words`);
    ``dependence``: partial dependence of the top numeric columns
    (:mod:`deepstrata.explain.dependence`)."""

    method: str
    columns: list[str]
    values: np.ndarray  # (rows, columns)
    base_values: np.ndarray  # (rows,)
    predictions: np.ndarray  # (rows,)
    rows: np.ndarray  # (rows,)
    classes: list | None
    settings: dict = field(default_factory=dict)
    faithfulness: dict = field(default_factory=dict)
    maps: dict = field(default_factory=dict)
    pixels: dict = field(default_factory=dict)
    words: dict = field(default_factory=dict)
    dependence: dict = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """One row per explained row, one column per input column, then ``row``,
        ``class`` (classifiers), ``prediction`` and ``base_value`` in front."""
        front = {"row": self.rows}
        if self.classes is not None:
            front["class"] = [str(c) for c in self.classes]
        front["prediction"] = self.predictions
        front["base_value"] = self.base_values
        attributions = pd.DataFrame(self.values, columns=self.columns)
        return pd.concat([pd.DataFrame(front), attributions], axis=1)

    def global_importance(
        self, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
    ) -> pd.DataFrame:
        """Mean |attribution| per column with a percentile bootstrap interval over rows,
        most important first: columns ``column, importance, low, high``.

        >>> e = Explanation("x", ["a", "b"], np.array([[1.0, 0.1], [-3.0, 0.0]]),
        ...                 np.zeros(2), np.zeros(2), np.arange(2), None)
        >>> e.global_importance(resamples=50)[["column", "importance"]].values.tolist()
        [['a', 2.0], ['b', 0.05]]
        """
        magnitude = np.abs(self.values)  # (N, M)
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(magnitude), (resamples, len(magnitude)))  # (R, N)
        means = magnitude[picks].mean(axis=1)  # (R, M)
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(means, [tail, 100 - tail], axis=0)
        frame = pd.DataFrame(
            {
                "column": self.columns,
                "importance": magnitude.mean(axis=0),
                "low": low,
                "high": high,
            }
        )
        return frame.sort_values("importance", ascending=False, kind="stable").reset_index(
            drop=True
        )

    def top_columns(self, count: int = 2) -> np.ndarray:
        """``(rows, count)`` column indices with the largest |attribution| per row."""
        return np.argsort(-np.abs(self.values), axis=1, kind="stable")[:, :count]

    def to_dict(self, *, rows: bool = True) -> dict:
        """explain.json: method, settings, global importance, faithfulness and (with
        ``rows``) every row's attributions."""
        out = {
            "method": self.method,
            "columns": self.columns,
            "settings": self.settings,
            "global_importance": self.global_importance().to_dict(orient="records"),
            "faithfulness": self.faithfulness,
        }
        if self.dependence:
            out["partial_dependence"] = self.dependence
        if self.words and rows:
            out["words"] = self.words
        if rows:
            out["rows"] = [
                {
                    "row": int(row),
                    **({"class": str(self.classes[i])} if self.classes is not None else {}),
                    "prediction": float(self.predictions[i]),
                    "base_value": float(self.base_values[i]),
                    "attributions": dict(zip(self.columns, map(float, self.values[i]))),
                }
                for i, row in enumerate(self.rows)
            ]
        return out

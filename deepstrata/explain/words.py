"""Which words: KernelSHAP over the words of each text column, on the raw text.

A text column's players are its words (split on whitespace, so a word's pieces are one
player, whatever each member's tokenizer makes of it); a coalition keeps its words, in
order, and drops the others, and the row's other columns stay as they are. The model is
called on those texts as on any data, so the words' values are of the prediction users
get, every member tokenizing for itself, and they sum to f(x) - f(x with that text
empty). shap's KernelExplainer fits them, with 2W + 512 coalitions for W words (every
coalition when there are fewer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepstrata.data.table import Table
from deepstrata.explain.library import require
from deepstrata.explain.shapley import _Seeded

EXTRA_SAMPLES = 512
MAX_WORDS = 128  # words past these stay in every coalition (a text longer than the model reads)


def text_columns(model) -> list[str]:
    return [f.name for f in model.schema.inputs if f.kind == "text"]


def _values(target, row: int, column: str, words: list[str], masks: np.ndarray) -> np.ndarray:
    """The explained value of ``row`` with only the kept words of ``column``."""
    frame = target.table.frame.iloc[[row] * len(masks)].reset_index(drop=True)
    frame[column] = [
        " ".join(word for word, keep in zip(words, mask) if keep) for mask in masks > 0.5
    ]
    outputs = target.model.outputs_of(Table(frame=frame, source=target.table.source, lines=None))
    if target.classes is None:
        return np.asarray(target.model.decode(outputs), dtype=np.float64)
    return target.spec.probabilities(outputs)[:, target.classes[row]].astype(np.float64)


def word_values(target, column: str, *, seed: int = 0) -> list[dict]:
    """Per row ``{"words": [...], "values": [...], "base_value": f(empty text)}``."""
    shap = require("shap", "shap")
    out = []
    for row in range(target.rows):
        text = target.table.frame[column].iloc[row]
        words = text.split() if isinstance(text, str) else []
        players = min(len(words), MAX_WORDS)
        if players == 0:
            out.append({"words": [], "values": [], "base_value": float(target.predictions[row])})
            continue
        fixed = np.ones(len(words) - players)

        def value(masks, row=row, words=words, fixed=fixed):
            masks = np.hstack([np.asarray(masks), np.tile(fixed, (len(masks), 1))])
            return _values(target, row, column, words, masks)

        explainer = shap.KernelExplainer(value, np.zeros((1, players)))
        with _Seeded(seed + row):
            values = explainer.shap_values(
                np.ones((1, players)),
                nsamples=2 * players + EXTRA_SAMPLES,
                l1_reg=False,
                silent=True,
            )
        out.append(
            {
                "words": words[:players],
                "values": [float(v) for v in np.asarray(values).reshape(players)],
                "base_value": float(np.asarray(explainer.expected_value).reshape(-1)[0]),
            }
        )
    return out


def words_frame(words: dict[str, list[dict]], rows: np.ndarray) -> pd.DataFrame:
    """One line per (row, column, word): ``row, column, position, word, attribution``."""
    lines = [
        (int(rows[index]), column, position, word, value)
        for column, per_row in words.items()
        for index, entry in enumerate(per_row)
        for position, (word, value) in enumerate(zip(entry["words"], entry["values"]))
    ]
    return pd.DataFrame(lines, columns=["row", "column", "position", "word", "attribution"])

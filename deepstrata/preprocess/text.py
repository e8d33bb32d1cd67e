"""Free text, the light way: lower-cased word tokens -> ids of a training vocabulary.

This is the table-column baseline (a bag of embeddings downstream). Subword
tokenisers and transformer encoders for text are a separate, heavier kind.
Ids: 0 pads, 1 is an out-of-vocabulary word, 2.. the vocabulary.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from deepstrata.data.sources import Table
from deepstrata.preprocess.base import Preprocessor

PAD, OUT_OF_VOCABULARY, FIRST = 0, 1, 2
_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(column: pd.Series) -> list[list[str]]:
    return [_WORD.findall(str(v).lower()) if isinstance(v, str) else [] for v in column.tolist()]


class TextPreprocessor(Preprocessor):
    kind = "text"
    dtype = "int64"

    def __init__(
        self, *, max_length: int = 64, max_vocabulary: int = 20000, min_count: int = 2
    ) -> None:
        self.max_length = max_length
        self.max_vocabulary = max_vocabulary
        self.min_count = min_count
        self.vocabulary: list[str] = []

    def fit(self, column: pd.Series, table: Table) -> TextPreprocessor:
        counts = Counter(word for words in tokenize(column) for word in words)
        common = [(w, c) for w, c in counts.items() if c >= self.min_count]
        common.sort(key=lambda item: (-item[1], item[0]))
        self.vocabulary = [w for w, _ in common[: self.max_vocabulary]]
        return self

    def transform(self, column: pd.Series, table: Table) -> np.ndarray:
        index = {w: i + FIRST for i, w in enumerate(self.vocabulary)}
        out = np.full((len(column), self.max_length), PAD, dtype=np.int64)
        for row, words in enumerate(tokenize(column)):
            ids = [index.get(w, OUT_OF_VOCABULARY) for w in words[: self.max_length]]
            out[row, : len(ids)] = ids
        return out

    @property
    def width(self) -> int:
        return self.max_length

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary) + FIRST

    def state(self) -> dict:
        return {
            "max_length": self.max_length,
            "max_vocabulary": self.max_vocabulary,
            "min_count": self.min_count,
            "vocabulary": self.vocabulary,
        }

    @classmethod
    def from_state(cls, state: dict) -> TextPreprocessor:
        pre = cls(
            max_length=state["max_length"],
            max_vocabulary=state["max_vocabulary"],
            min_count=state["min_count"],
        )
        pre.vocabulary = list(state["vocabulary"])
        return pre

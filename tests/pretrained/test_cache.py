"""The embedding cache: computed once per distinct input and encoder, read after."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepstrata.pretrained.cache import embed, encoder_key


class CountingEncoder(nn.Module):
    """``(B, W)`` -> ``(B, 2)`` (the row's sum and max), counting the rows it saw."""

    out_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0

    def forward(self, block: torch.Tensor) -> torch.Tensor:
        self.rows += len(block)
        x = block.float()
        return torch.stack([x.sum(dim=1), x.max(dim=1).values], dim=1)


def test_rows_are_computed_once_then_read_from_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSTRATA_CACHE_DIR", str(tmp_path))
    block = torch.tensor([[1, 2, 3], [4, 5, 6], [1, 2, 3], [7, 8, 9]])
    encoder = CountingEncoder()
    key = encoder_key({"name": "counting", "version": 1})

    first, counts = embed(encoder, block, key=key)
    assert encoder.rows == 3  # the repeated row once
    assert counts == {"rows": 4, "cached": 0, "computed": 3, "seconds": counts["seconds"]}
    assert first.tolist() == [[6, 3], [15, 6], [6, 3], [24, 9]]

    more = torch.tensor([[4, 5, 6], [0, 0, 1]])
    second, counts = embed(encoder, more, key=key)
    assert encoder.rows == 4  # only the new row
    assert counts["cached"] == 1 and counts["computed"] == 1
    assert second.tolist() == [[15, 6], [1, 1]]
    assert (tmp_path / "embeddings" / f"{key}.sqlite").is_file()


def test_another_encoder_key_or_dtype_does_not_share_entries():
    block = torch.tensor([[1, 2]], dtype=torch.int64)
    encoder = CountingEncoder()
    embed(encoder, block, key=encoder_key({"name": "a"}))
    embed(encoder, block, key=encoder_key({"name": "b"}))
    embed(encoder, block.to(torch.int32), key=encoder_key({"name": "a"}))
    assert encoder.rows == 3


def test_the_cache_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPSTRATA_CACHE_DIR", "off")
    encoder = CountingEncoder()
    block = torch.tensor([[1, 1]])
    embed(encoder, block, key="k")
    embed(encoder, block, key="k")
    assert encoder.rows == 2


def test_no_rows_give_an_empty_matrix_of_the_encoder_width():
    vectors, counts = embed(CountingEncoder(), torch.zeros(0, 3), key=None)
    assert vectors.shape == (0, 2) and counts["rows"] == 0


def test_rows_are_computed_shortest_first_when_lengths_are_given():
    seen = []

    def encoder(block: torch.Tensor) -> torch.Tensor:
        seen.extend(block[:, 0].tolist())
        return block.float()

    block = torch.tensor([[10, 0], [11, 1], [12, 2], [13, 3]])
    vectors, _ = embed(encoder, block, key=None, lengths=np.array([3, 1, 2, 1]))
    assert seen == [11, 13, 12, 10]  # by length, ties in table order
    assert vectors[:, 0].tolist() == [10, 11, 12, 13]  # the output keeps the table's order

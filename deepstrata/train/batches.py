"""Batches from pre-built tensors: how big, which rows, on which device, and eval in chunks.

The trainer never uses a DataLoader: the inputs are a dict of tensors, one per
feature kind, built once per fit (images and audio decoded, text tokenized), and
a batch is an index into them. These are the helpers for that, shared by the
training loop and by prediction.
"""

from __future__ import annotations

import math

import torch
from torch import nn

Inputs = dict[str, torch.Tensor]
EVAL_CHUNK = 8192  # rows per forward pass when evaluating, at most
EVAL_ROW_VALUES = 2**18  # input values per evaluation forward pass, about


def auto_batch_size(rows: int, row_values: int = 1) -> int:
    """About 50 steps per epoch on small data, 512 rows per step at most, 16 at least.

    Wide rows (images, spectrograms: ``row_values`` input values each) lower the
    ceiling, since their activations, not the rows, fill memory:
    2**21 values per batch, e.g. 128 images of 3x64x64.
    """
    ceiling = 2 ** int(math.log2(min(512, max(16, 2**21 // max(row_values, 1)))))
    return int(min(ceiling, max(16, 2 ** round(math.log2(max(rows, 1) / 50)))))


def rows_of(inputs: Inputs) -> int:
    return next(iter(inputs.values())).shape[0]


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The data goes to the accelerator once per fit. From pinned (page-locked) memory the
    copy runs by DMA without a staging copy, and asynchronously (images: gigabytes)."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def take(inputs: Inputs, index: torch.Tensor) -> Inputs:
    # index_select, not block[index]: the same rows, 5-8x faster for wide rows (images).
    return {kind: block.index_select(0, index) for kind, block in inputs.items()}


@torch.no_grad()
def forward_in_chunks(network: nn.Module, inputs: Inputs, chunk: int | None = None) -> torch.Tensor:
    """Eval-mode outputs for every row, ``chunk`` rows at a time.

    The default chunk shrinks as rows widen: a row of an image or a long text makes
    activations hundreds of times its own size, a row of a small table does not.
    """
    if chunk is None:
        width = sum(block[0].numel() for block in inputs.values()) if rows_of(inputs) else 1
        chunk = int(min(EVAL_CHUNK, max(32, EVAL_ROW_VALUES // max(width, 1))))
    # eval() and train() each walk every submodule (together about half as long as
    # a single-row forward): skip them when the network is in eval mode already, as
    # a Model's network always is.
    was_training = network.training
    if was_training:
        network.eval()
    rows = rows_of(inputs)
    outputs = [
        network({k: v[start : start + chunk] for k, v in inputs.items()})
        for start in range(0, rows, chunk)
    ]
    if was_training:
        network.train()
    return torch.cat(outputs) if outputs else torch.empty(0)

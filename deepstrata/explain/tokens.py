"""Integrated gradients per token of a text column, merged into words.

Token ids are integers, which a gradient cannot follow, so the integral runs over the
token embeddings (Captum's ``IntegratedGradients`` on the embedding layer's output, fed
back into the network by a forward hook), from the padding token's embedding at every
place to the text's own. The attention mask (which tokens are real) comes from the ids
and is never interpolated: an unscaled second input on the path gives wrong
attributions (Captum issue #956), so the mask stays the text's own at every step, and
position (and BERT's segment) embeddings stay in place. A token's attribution is its
embedding's summed over the embedding's width; a word's, its pieces' ("##"-continued)
sum; [CLS] and [SEP] have none of their own (they are the same in every text) and are
left out. The words of a row sum to f(x) - f(every token at padding, mask kept), the
gap reported per column.

Served for the transformer and CNN text encoders trained here (their ``tokens``
embedding) and for all-MiniLM-L6-v2 fine-tuned (its ``word_embeddings``); the bag of
embeddings pools inside its embedding and has no per-token output, so its words come
from KernelSHAP.
"""

from __future__ import annotations

import numpy as np
import torch

from deepstrata.explain.gradients import explained, member_weights, target_classes
from deepstrata.explain.library import require
from deepstrata.preprocess.text import PAD

SPECIAL = {"[CLS]", "[SEP]"}


def merge_pieces(pieces: list[str], values) -> tuple[list[str], list[float]]:
    """Word pieces and their values -> words and theirs ("##"-continued pieces summed in);
    [CLS] and [SEP] left out.

    >>> merge_pieces(["[CLS]", "un", "##real", "film", "[SEP]"], [9, 1, 2, 3, 9])
    (['unreal', 'film'], [3.0, 3.0])
    """
    words: list[str] = []
    out: list[float] = []
    for piece, value in zip(pieces, values):
        if piece in SPECIAL:
            continue
        if piece.startswith("##") and words:
            words[-1] += piece[2:]
            out[-1] += float(value)
        else:
            words.append(piece)
            out.append(float(value))
    return words, out


def embedding_layer(member, column: str):
    """``(layer, index, calls)``: the embedding module whose output holds ``column``'s
    tokens, the column's index among the text columns and which call of the layer in one
    forward pass is this column's (a pretrained backbone is shared by the columns); None
    where the encoder has no per-token embedding."""
    encoders = getattr(getattr(member, "network", None), "encoders", {})
    if "text" not in encoders:
        return None
    encoder = encoders["text"]
    names = [n for n, p in member.preprocessors.items() if p.kind == "text"]
    index = names.index(column)
    columns = getattr(encoder, "columns", None)
    if columns is not None and hasattr(columns[index], "tokens"):  # transformer, cnn
        return columns[index].tokens, index, 0
    bert = getattr(getattr(encoder, "backbone", None), "bert", None)
    if bert is not None:  # MiniLM: one backbone, called once per text column in order
        return bert.embeddings.word_embeddings, index, index
    return None


def applies(model, column: str) -> bool:
    return all(embedding_layer(member, column) is not None for member in model.members)


class _Replace:
    """A forward hook putting ``values`` in place of the ``call``-th output of a layer."""

    def __init__(self, layer, call: int) -> None:
        self.layer, self.call, self.seen, self.values, self.captured = layer, call, 0, None, None

    def __call__(self, module, args, output):
        mine = self.seen == self.call
        self.seen += 1
        if not mine:
            return None
        self.captured = output
        return self.values

    def run(self, function, values=None):
        self.seen, self.values = 0, values
        handle = self.layer.register_forward_hook(self)
        try:
            return function()
        finally:
            handle.remove()


def token_values(
    target, inputs, weight: float, column: str, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, T)`` one member's weighted attribution per token position of ``column``, and
    ``(rows,)`` its weighted explained value with every token at padding."""
    captum = require("captum.attr", "captum")
    member = inputs.member
    layer, _, call = embedding_layer(member, column)
    kinds = list(inputs.blocks)
    classes = target_classes(target)
    hook = _Replace(layer, call)

    def forward(embeddings, *blocks_and_classes):
        blocks, chosen = blocks_and_classes[:-1], blocks_and_classes[-1]
        raw = hook.run(lambda: member.network(dict(zip(kinds, blocks))), embeddings)
        return weight * explained(target, member, raw, chosen)

    blocks = tuple(inputs.blocks[k] for k in kinds)
    with torch.no_grad():  # the text's own embeddings, at the length the encoder cuts to
        hook.run(lambda: member.network(dict(zip(kinds, blocks))))
    own = hook.captured.detach()  # (N, T', D)
    with torch.no_grad():
        padding = layer(torch.full(own.shape[:2], PAD, dtype=torch.long))  # (N, T', D)
    method = captum.IntegratedGradients(forward)
    with torch.no_grad():
        base = forward(padding, *blocks, classes).double().numpy()
    out = np.zeros((target.rows, own.shape[1]))
    per_pass = max(1, 2048 // steps)
    for start in range(0, target.rows, per_pass):
        part = slice(start, start + per_pass)
        values = method.attribute(
            own[part],
            baselines=padding[part],
            additional_forward_args=(*(b[part] for b in blocks), classes[part]),
            n_steps=steps,
        )
        out[part] = values.detach().double().sum(dim=2).numpy()
    return out, base


def pieces_of(pre, text) -> list[str]:
    """The pieces at the positions ``pre.transform`` gives ([CLS] and [SEP] included for a
    pretrained tokenizer)."""
    if not isinstance(text, str):
        return []
    encoding = pre._fitted().encode(text, add_special_tokens=pre.pretrained is not None)
    return encoding.tokens[: sum(encoding.attention_mask)][: pre.max_length]


def token_ig_words(target, column: str, *, steps: int = 50) -> list[dict]:
    """Per row ``{"words", "values", "base_value"}`` (the base: f with every token of the
    column at padding); the members' weighted token attributions, merged into words."""
    totals, base = np.zeros((target.rows, 0)), np.zeros(target.rows)
    for weight, inputs in zip(member_weights(target), target.inputs):
        values, member_base = token_values(target, inputs, weight, column, steps)
        width = max(totals.shape[1], values.shape[1])
        totals = np.pad(totals, ((0, 0), (0, width - totals.shape[1])))
        totals[:, : values.shape[1]] += values
        base += member_base
    pre = target.model.members[0].preprocessors[column]
    out = []
    for row in range(target.rows):
        pieces = pieces_of(pre, target.table.frame[column].iloc[row])
        words, values = merge_pieces(pieces, totals[row, : len(pieces)])
        out.append({"words": words, "values": values, "base_value": float(base[row])})
    return out


def completeness_gap(target, entries: list[dict]) -> float:
    """How far the words' sums are from f(x) - f(padding), relative to the total change
    (the [CLS] and [SEP] tokens' share, left out of the words, counts in the gap)."""
    change = np.array([target.predictions[i] - e["base_value"] for i, e in enumerate(entries)])
    sums = np.array([sum(e["values"]) for e in entries])
    total = float(np.abs(change).sum())
    return float(np.abs(sums - change).sum() / total) if total > 0 else 0.0

"""Attention rollout (Abnar & Zuidema, 2020) for text columns under the transformer
encoder or all-MiniLM-L6-v2 (fine-tuned): how much of each word the pooled text vector
draws on, through every layer.

Per layer the heads' weights are averaged and the residual path added (0.5 A + 0.5 I,
rows renormalised); the layers' matrices are multiplied, first layer rightmost. The
encoder pools by the mean over real tokens, so a token's relevance is its column of the
rollout averaged over the real query tokens; a row's relevances sum to 1. Word pieces
("##"-continued) are summed into their word.

It is written here: Captum and shap have no rollout, and the weights come from the
encoder itself (``TransformerTextEncoder.attention``) or from Hugging Face's BERT with
``output_attentions`` (run with the eager attention for the call: the default SDPA
returns no weights). MiniLM pools by the mean over real tokens too; its [CLS] and
[SEP] get relevance like any token and are left out of the words. Attention is not an attribution
of the prediction (it knows no class and no baseline): the explanation's columns come
from another method, and these word weights sit beside them.
"""

from __future__ import annotations

import numpy as np
import torch

from deepstrata.errors import ConfigError
from deepstrata.explain.tokens import merge_pieces, pieces_of


def rollout(layers: list[torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` relevance of each token for ``layers`` of ``(B, heads, T, T)`` weights and
    ``real`` ``(B, T)`` bool (not padding).

    >>> uniform = torch.full((1, 2, 3, 3), 1 / 3)
    >>> rollout([uniform, uniform], torch.ones(1, 3, dtype=torch.bool))
    tensor([[0.3333, 0.3333, 0.3333]])
    """
    batch, tokens = real.shape
    eye = torch.eye(tokens).expand(batch, tokens, tokens)
    total = eye.clone()
    for weights in layers:
        mixed = 0.5 * weights.float().mean(dim=1) + 0.5 * eye  # (B, T, T)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        total = mixed @ total
    queries = real.float() / real.float().sum(dim=1, keepdim=True).clamp(min=1)  # (B, T)
    relevance = (queries[:, :, None] * total).sum(dim=1)  # (B, T)
    return relevance * real.float()


class _MiniLMAttention:
    """MiniLM's per-layer attention weights for one text column, as ``attention`` gives
    them for the encoder trained here."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.lengths = encoder.widths

    def attention(self, block: torch.Tensor, *, column: int = 0) -> list[torch.Tensor]:
        from deepstrata.pretrained.minilm import PAD

        bert = self.encoder.backbone.bert
        ids = block.split(self.lengths, dim=1)[column]
        previous = bert.config._attn_implementation
        bert.set_attn_implementation("eager")  # SDPA gives no weights (LIBRARIES.md)
        try:
            out = bert(input_ids=ids, attention_mask=(ids != PAD).long(), output_attentions=True)
        finally:
            bert.set_attn_implementation(previous)
        return list(out.attentions)  # (B, heads, T, T) per layer


def _transformer(model, column: str):
    """The first network member whose text encoder has attention weights (the transformer
    trained here, or MiniLM), its encoder (with ``attention`` and ``lengths``) and the
    column's index among the kind's columns."""
    for member in model.members:
        encoders = getattr(getattr(member, "network", None), "encoders", {})
        encoder = encoders["text"] if "text" in encoders else None  # noqa: SIM401 (ModuleDict: no .get)
        if encoder is not None and hasattr(getattr(encoder, "backbone", None), "bert"):
            encoder = _MiniLMAttention(encoder)
        if encoder is not None and hasattr(encoder, "attention"):
            names = [n for n, p in member.preprocessors.items() if p.kind == "text"]
            return member, encoder, names.index(column)
    return None


def attention_refusal(model, columns: list[str]) -> str | None:
    """Why attention rollout does not apply, or None."""
    if not columns:
        return "attention needs a text column; this model has none"
    if _transformer(model, columns[0]) is None:
        return (
            "attention needs a text column under the transformer encoder (--text-encoder "
            "transformer) or MiniLM fine-tuned (--strategy finetune)"
        )
    return None


def attention_words(target, column: str) -> list[dict]:
    """Per row ``{"words", "values"}``: each word's share of the rollout."""
    found = _transformer(target.model, column)
    if found is None:
        raise ConfigError(attention_refusal(target.model, [column]), option="--method")
    member, encoder, index = found
    pre = member.preprocessors[column]
    block = target.inputs[target.model.members.index(member)].blocks["text"]
    part = block.split(encoder.lengths, dim=1)[index]  # (N, L)
    with torch.no_grad():
        relevance = rollout(encoder.attention(block, column=index), part != 0).numpy()
    out = []
    for row in range(target.rows):
        pieces = pieces_of(pre, target.table.frame[column].iloc[row])
        words, values = merge_pieces(pieces, relevance[row, : len(pieces)])
        out.append({"words": words, "values": values, "base_value": 0.0})
    return out


def relevance_sums(entries: list[dict]) -> np.ndarray:
    """Each row's total relevance (1 for a non-empty text): a check on the rollout."""
    return np.array([sum(entry["values"]) for entry in entries])

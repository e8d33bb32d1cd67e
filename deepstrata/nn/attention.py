"""A pre-norm transformer encoder: self-attention with a key padding mask, then a GELU MLP.

Written out rather than ``nn.TransformerEncoder``, which cannot return attention
weights. The fast path is ``F.scaled_dot_product_attention``; when the weights are
wanted (``need_weights=True``, or ``keep_attention = True`` on a
:class:`SelfAttention`) the softmax is computed explicitly, which gives the same
output, and the weights come back as ``(B, heads, T, T)``.

Padding: ``padding_mask`` is ``(B, T)`` bool, True at padding positions (the
convention of ``nn.MultiheadAttention``'s ``key_padding_mask``). No query attends
to a padded key. A row that is padding only would leave softmax nothing to
normalise over (NaN), so such a row attends to all of its (padding) keys: its
outputs are finite, and callers ignore them (mean-pooling over real tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attendable_keys(padding_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``(B, T)`` padding mask -> ``(B, 1, 1, T)`` bool, True where a key may be attended.

    Rows that are all padding may attend to every key (see the module docstring).
    """
    if padding_mask is None:
        return None
    attendable = ~padding_mask | padding_mask.all(dim=1, keepdim=True)  # (B, T)
    return attendable[:, None, None, :]  # (B, 1, 1, T): broadcast over heads and queries


class SelfAttention(nn.Module):
    """Multi-head self-attention: ``(B, T, dim) -> (B, T, dim)``.

    ``forward`` returns ``(output, weights)``; ``weights`` is ``(B, heads, T, T)``
    (rows sum to 1 over the keys) when ``need_weights`` or ``self.keep_attention``,
    else None. With ``keep_attention`` the weights are also kept, detached, in
    ``self.attention_weights``. Weights are taken before attention dropout.
    """

    def __init__(self, *, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)  # rows: all of q, then k, then v (as in_proj_weight)
        self.out = nn.Linear(dim, dim)
        self.keep_attention = False
        self.attention_weights: torch.Tensor | None = None

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        *,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, dim = x.shape
        # (B, T, 3 * dim) -> 3 x (B, heads, T, head_dim)
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).unbind(dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        attendable = attendable_keys(padding_mask)  # (B, 1, 1, T) or None
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights or self.keep_attention:
            scores = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5)  # (B, heads, T, T)
            if attendable is not None:
                scores = scores.masked_fill(~attendable, float("-inf"))
            # float32 softmax: under bf16 autocast the weights still sum to 1.
            weights = scores.softmax(dim=-1, dtype=torch.float32).to(v.dtype)  # (B, heads, T, T)
            attended = F.dropout(weights, dropout, training=self.training) @ v  # (B, heads, T, hd)
            if self.keep_attention:
                self.attention_weights = weights.detach()
        else:
            attended = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attendable, dropout_p=dropout
            )  # (B, heads, T, head_dim)
        attended = attended.transpose(1, 2).reshape(batch, length, dim)  # (B, T, dim)
        return self.out(attended), weights


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``; ``(B, T, dim)``.

    In eval mode the same computation as ``nn.TransformerEncoderLayer(norm_first=True,
    activation="gelu", batch_first=True)``. ``forward`` returns ``(output, weights)``
    like :class:`SelfAttention`.

    Dropout: ``dropout`` on the two residual branches (as nanoGPT), not inside the
    MLP; ``attention_dropout`` on the attention weights, 0 by default. On a CPU,
    drawing random masks costs more than the matrix products of a block this small,
    and the ``(B, heads, T, T)`` weights are its largest tensor.
    """

    def __init__(
        self,
        *,
        dim: int,
        heads: int,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim=dim, heads=heads, dropout=attention_dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(),
            nn.Linear(mlp_ratio * dim, dim),
        )
        self.residual_dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        *,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(
            self.attention_norm(x), padding_mask, need_weights=need_weights
        )
        x = x + self.residual_dropout(attended)  # (B, T, dim)
        x = x + self.residual_dropout(self.mlp(self.mlp_norm(x)))  # (B, T, dim)
        return x, weights


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerBlock` and a final LayerNorm: ``(B, T, dim) -> (B, T, dim)``.

    ``forward`` returns ``(output, weights)``; ``weights`` is a list with one
    ``(B, heads, T, T)`` tensor per layer when ``need_weights``, else None.

    >>> encoder = TransformerEncoder(dim=8, heads=2, layers=2).eval()
    >>> x, padding = torch.randn(3, 5, 8), torch.tensor([[False] * 5, [False] * 2 + [True] * 3, [True] * 5])
    >>> out, weights = encoder(x, padding, need_weights=True)
    >>> out.shape, len(weights), weights[0].shape
    (torch.Size([3, 5, 8]), 2, torch.Size([3, 2, 5, 5]))
    >>> bool((weights[0][1, :, :, 2:] == 0).all())  # no attention on row 1's padding
    True
    """

    def __init__(
        self,
        *,
        dim: int,
        heads: int,
        layers: int,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim=dim,
                heads=heads,
                mlp_ratio=mlp_ratio,
                dropout=dropout,
                attention_dropout=attention_dropout,
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)  # pre-norm blocks leave the residual stream unnormalised

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        *,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        all_weights = []
        for block in self.blocks:
            x, weights = block(x, padding_mask, need_weights=need_weights)  # (B, T, dim)
            all_weights.append(weights)
        return self.norm(x), (all_weights if need_weights else None)

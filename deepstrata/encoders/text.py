"""Text columns: WordPiece ids -> one vector per column, by one of three encoders.

``build_text_encoder`` picks by ``options["text_encoder"]``:

- ``"transformer"`` (default): token and learned position embeddings, a small
  pre-norm transformer, the mean over the real (non-padding) tokens. Word order
  and context count; the most accurate and the slowest.
- ``"cnn"``: embeddings, 1-D convolutions of a few widths (n-gram detectors),
  the max over real tokens. Local order counts; fast.
- ``"bag"``: the mean of the token embeddings. Order is lost; the cheapest.

Every encoder takes the kind's block ``(B, sum of the columns' lengths)`` int64,
splits it per column, encodes each column with its own module and returns
``(B, out_dim)``, the column vectors side by side. Padding (id 0) never changes
the output: an encoder fed ``[5, 6, 0, 0]`` gives what it gives for ``[5, 6]``,
and a text that is empty or missing (all padding) gives a finite vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepstrata.config import with_defaults
from deepstrata.encoders.pretrained import build_pretrained_encoder, uses_pretrained
from deepstrata.errors import ConfigError
from deepstrata.kinds import get as kind
from deepstrata.nn.attention import TransformerEncoder
from deepstrata.preprocess.text import PAD, TextPreprocessor

TEXT_ENCODERS = kind("text").options[0].constraint.choices  # transformer, cnn, bag
TEXT_DROPOUT = 0.1  # inside the transformer and the CNN (not an option)


def masked_mean(x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``(B, T, C)`` and ``(B, T)`` bool -> ``(B, C)``: the mean over real tokens; 0 for none."""
    total = (x * real.unsqueeze(-1).to(x.dtype)).sum(dim=1)  # (B, C)
    count = real.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1); 1 keeps empty rows at 0, not NaN
    return total / count.to(x.dtype)


def without_trailing_padding(ids: torch.Tensor) -> torch.Tensor:
    """``(B, T) -> (B, T')``: columns after the batch's longest text dropped (at least one).

    Texts in tables are often far shorter than ``max_length``; attention and
    convolutions over padding cost time and change nothing (padding is masked). An
    exported graph (ONNX) keeps every column: its shapes cannot depend on the data.
    """
    if torch.compiler.is_exporting():
        return ids
    used = int((ids != PAD).any(dim=0).nonzero().max()) + 1 if (ids != PAD).any() else 1
    return ids if used == ids.shape[1] else ids[:, :used]


class TokenDropout(nn.Module):
    """While training, drop each real token with probability ``p`` (it becomes padding,
    which every encoder masks out): word dropout, a strong regulariser for text
    classifiers on little data (Iyyer et al., 2015). Identity in eval mode."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"token dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return ids
        dropped = torch.rand(ids.shape, device=ids.device) < self.p  # (B, T)
        return ids.masked_fill(dropped, PAD)


def encode_columns(
    ids: torch.Tensor, *, lengths: Sequence[int], columns: nn.ModuleList, token_dropout: nn.Module
) -> torch.Tensor:
    """Every text encoder's forward: ``(B, sum of lengths) -> (B, sum of column widths)``.

    Word dropout (training only), the block split per column, each column's trailing
    padding cut, each column encoded by its own module, the results concatenated.
    """
    parts = token_dropout(ids).split(list(lengths), dim=1)  # C tensors of (B, L_c)
    encoded = [column(without_trailing_padding(part)) for column, part in zip(columns, parts)]
    return torch.cat(encoded, dim=1)


def new_embedding(vocabulary_size: int, width: int) -> nn.Embedding:
    """Token embeddings, small at first (GPT-2's 0.02); the padding row stays 0."""
    embedding = nn.Embedding(vocabulary_size, width, padding_idx=PAD)
    nn.init.normal_(embedding.weight, std=0.02)
    with torch.no_grad():
        embedding.weight[PAD].zero_()
    return embedding


class TransformerColumn(nn.Module):
    """One text column: ``(B, T) int64 -> (B, width)``, for any ``T <= max_length``."""

    def __init__(
        self,
        *,
        vocabulary_size: int,
        max_length: int,
        width: int = 64,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.tokens = new_embedding(vocabulary_size, width)
        self.positions = nn.Embedding(max_length, width)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(dim=width, heads=heads, layers=layers, dropout=dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.encode(ids)[0]  # (B, width)

    def encode(
        self, ids: torch.Tensor, *, need_weights: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """``(pooled (B, width), weights)``; weights as :class:`TransformerEncoder` gives them."""
        real = ids != PAD  # (B, T)
        positions = torch.arange(ids.shape[1], device=ids.device)  # (T,)
        x = self.dropout(self.tokens(ids) + self.positions(positions))  # (B, T, width)
        x, weights = self.encoder(x, ~real, need_weights=need_weights)  # (B, T, width)
        return masked_mean(x, real), weights  # (B, width)


class TransformerTextEncoder(nn.Module):
    """``(B, sum of lengths) int64 -> (B, columns * width)``, a transformer per column.

    >>> encoder = TransformerTextEncoder(vocabulary_sizes=[30, 50], lengths=[6, 4], width=16)
    >>> ids = torch.tensor([[3, 4, 5, 0, 0, 0, 7, 0, 0, 0], [0] * 10])  # row 1: both texts empty
    >>> encoder(ids).shape
    torch.Size([2, 32])
    >>> [w.shape for w in encoder.attention(ids, column=1)]  # one per layer
    [torch.Size([2, 4, 4, 4]), torch.Size([2, 4, 4, 4])]
    """

    def __init__(
        self,
        *,
        vocabulary_sizes: Sequence[int],
        lengths: Sequence[int],
        width: int = 64,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        token_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.token_dropout = TokenDropout(token_dropout)
        self.lengths = list(lengths)
        self.columns = nn.ModuleList(
            TransformerColumn(
                vocabulary_size=size,
                max_length=length,
                width=width,
                layers=layers,
                heads=heads,
                dropout=dropout,
            )
            for size, length in zip(vocabulary_sizes, lengths)
        )
        self.out_dim = width * len(self.lengths)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return encode_columns(
            ids, lengths=self.lengths, columns=self.columns, token_dropout=self.token_dropout
        )

    def attention(self, ids: torch.Tensor, *, column: int = 0) -> list[torch.Tensor]:
        """Attention weights of one text column, for visualisation.

        ``ids`` is the whole block, as ``forward`` takes it; ``column`` the index of
        the text column among this kind's columns (one column at a time, because
        columns differ in length). Returns one ``(B, heads, L, L)`` tensor per layer,
        ``L`` the column's length; ``[b, h, i, j]`` is how much token ``i`` attends
        to token ``j``, 0 where ``j`` is padding. Call it in eval mode, under
        ``torch.no_grad()`` unless gradients are wanted.
        """
        part = ids.split(self.lengths, dim=1)[column]  # (B, L)
        _, weights = self.columns[column].encode(part, need_weights=True)
        return weights


class BagOfEmbeddingsEncoder(nn.Module):
    """``(B, sum of lengths) int64 -> (B, columns * width)``: the mean token embedding per column."""

    def __init__(
        self,
        *,
        vocabulary_sizes: Sequence[int],
        lengths: Sequence[int],
        width: int = 64,
        token_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.token_dropout = TokenDropout(token_dropout)
        self.lengths = list(lengths)
        self.bags = nn.ModuleList(
            nn.EmbeddingBag(size, width, mode="mean", padding_idx=PAD) for size in vocabulary_sizes
        )
        self.out_dim = width * len(self.lengths)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return encode_columns(
            ids, lengths=self.lengths, columns=self.bags, token_dropout=self.token_dropout
        )


class ConvColumn(nn.Module):
    """One text column: ``(B, T) int64 -> (B, len(kernel_widths) * width)``.

    Odd kernel widths with "same" zero padding and a zero padding embedding: a
    window that runs past the text sees zeros whether the text was padded or not.
    """

    def __init__(
        self,
        *,
        vocabulary_size: int,
        width: int = 64,
        kernel_widths: Sequence[int] = (3, 5, 7),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if any(k % 2 == 0 for k in kernel_widths):
            raise ValueError(f"kernel widths must be odd, got {list(kernel_widths)}")
        self.tokens = new_embedding(vocabulary_size, width)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(width, width, kernel_size=k, padding=k // 2) for k in kernel_widths
        )
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        real = ids != PAD  # (B, T)
        x = self.tokens(ids).transpose(1, 2)  # (B, width, T): Conv1d wants channels first
        features = torch.cat([conv(x) for conv in self.convolutions], dim=1)  # (B, K * width, T)
        features = self.activation(features)
        lowest = torch.finfo(features.dtype).min
        pooled = features.masked_fill(~real.unsqueeze(1), lowest).amax(dim=2)  # (B, K * width)
        has_tokens = real.any(dim=1, keepdim=True)  # (B, 1)
        pooled = torch.where(has_tokens, pooled, torch.zeros_like(pooled))  # empty text -> 0
        return self.dropout(pooled)


class ConvTextEncoder(nn.Module):
    """``(B, sum of lengths) int64 -> (B, columns * len(kernel_widths) * width)``."""

    def __init__(
        self,
        *,
        vocabulary_sizes: Sequence[int],
        lengths: Sequence[int],
        width: int = 64,
        kernel_widths: Sequence[int] = (3, 5, 7),
        dropout: float = 0.1,
        token_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.token_dropout = TokenDropout(token_dropout)
        self.lengths = list(lengths)
        self.columns = nn.ModuleList(
            ConvColumn(
                vocabulary_size=size, width=width, kernel_widths=kernel_widths, dropout=dropout
            )
            for size in vocabulary_sizes
        )
        self.out_dim = width * len(kernel_widths) * len(self.lengths)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return encode_columns(
            ids, lengths=self.lengths, columns=self.columns, token_dropout=self.token_dropout
        )


def build_text_encoder(preprocessors: Sequence[TextPreprocessor], options: dict) -> nn.Module:
    """The encoder for a kind's text columns, chosen by ``options["text_encoder"]``.

    Options read: ``text_encoder`` (transformer, bag or cnn), ``text_width`` (the
    embedding and model width), ``text_layers`` and ``text_heads`` for the transformer,
    ``text_token_dropout``; a missing one is its default (:mod:`deepstrata.kinds`). With
    ``strategy`` finetune or features the pretrained network (all-MiniLM-L6-v2) encodes
    every column instead.
    """
    options = with_defaults(options)
    if uses_pretrained(options):
        return build_pretrained_encoder("text", [pre.width for pre in preprocessors], options)
    choice = options["text_encoder"]
    common = {
        "vocabulary_sizes": [pre.vocabulary_size for pre in preprocessors],
        "lengths": [pre.width for pre in preprocessors],
        "width": options["text_width"],
        "token_dropout": options["text_token_dropout"],
    }
    dropout = TEXT_DROPOUT
    if choice == "transformer":
        return TransformerTextEncoder(
            **common,
            layers=options["text_layers"],
            heads=options["text_heads"],
            dropout=dropout,
        )
    if choice == "cnn":
        return ConvTextEncoder(**common, dropout=dropout)
    if choice == "bag":
        return BagOfEmbeddingsEncoder(**common)
    raise ConfigError(
        f"expected one of {', '.join(TEXT_ENCODERS)}, got {choice!r}", option="text_encoder"
    )

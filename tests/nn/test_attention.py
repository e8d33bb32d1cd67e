import pytest
import torch
from torch import nn

from deepstrata.nn.attention import SelfAttention, TransformerBlock, TransformerEncoder

TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}  # float32, a few reductions of width 16


def inputs(seed=0, batch=4, length=6, dim=16):
    """Random ``(B, T, dim)`` input and a padding mask: rows with 6, 4, 1 and 0 real tokens."""
    torch.manual_seed(seed)
    x = torch.randn(batch, length, dim)
    real_tokens = torch.tensor([6, 4, 1, 0])[:batch]
    padding = torch.arange(length)[None, :] >= real_tokens[:, None]  # (B, T), True = padding
    return x, padding


def copy_attention(ours: SelfAttention, reference: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        ours.qkv.weight.copy_(reference.in_proj_weight)
        ours.qkv.bias.copy_(reference.in_proj_bias)
        ours.out.weight.copy_(reference.out_proj.weight)
        ours.out.bias.copy_(reference.out_proj.bias)


def test_attention_matches_multihead_attention():
    x, padding = inputs()
    x, padding = x[:3], padding[:3]  # the reference gives NaN for the all-padding row
    reference = nn.MultiheadAttention(16, num_heads=4, batch_first=True).eval()
    ours = SelfAttention(dim=16, heads=4).eval()
    copy_attention(ours, reference)
    expected, expected_weights = reference(
        x, x, x, key_padding_mask=padding, need_weights=True, average_attn_weights=False
    )
    fast, no_weights = ours(x, padding)
    explicit, weights = ours(x, padding, need_weights=True)
    assert no_weights is None
    torch.testing.assert_close(fast, expected, **TOLERANCE)
    torch.testing.assert_close(explicit, expected, **TOLERANCE)
    torch.testing.assert_close(weights, expected_weights, **TOLERANCE)  # (B, heads, T, T)


def test_block_matches_transformer_encoder_layer():
    x, padding = inputs(seed=1)
    x, padding = x[:3], padding[:3]
    reference = nn.TransformerEncoderLayer(
        16,
        nhead=4,
        dim_feedforward=64,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    ).eval()
    ours = TransformerBlock(dim=16, heads=4, mlp_ratio=4).eval()
    copy_attention(ours.attention, reference.self_attn)
    pairs = [
        (ours.attention_norm, reference.norm1),
        (ours.mlp_norm, reference.norm2),
        (ours.mlp[0], reference.linear1),
        (ours.mlp[2], reference.linear2),
    ]
    with torch.no_grad():
        for mine, theirs in pairs:
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
    expected = reference(x, src_key_padding_mask=padding)
    out, _ = ours(x, padding)
    real = ~padding
    # Only real positions: PyTorch's fast path may leave padded positions at 0.
    torch.testing.assert_close(out[real], expected[real], **TOLERANCE)


def test_weights_sum_to_one_over_real_keys_and_are_zero_on_padding():
    x, padding = inputs()
    encoder = TransformerEncoder(dim=16, heads=4, layers=2).eval()
    _, weights = encoder(x, padding, need_weights=True)
    assert len(weights) == 2
    for layer in weights:
        assert layer.shape == (4, 4, 6, 6)  # (B, heads, T, T)
        keys_padded = padding[:3, None, None, :].expand(3, 4, 6, 6)
        assert (layer[:3][keys_padded] == 0).all()
        torch.testing.assert_close(layer.sum(dim=-1), torch.ones(4, 4, 6))
        assert torch.isfinite(layer).all()


def test_padding_does_not_change_the_real_positions():
    torch.manual_seed(2)
    encoder = TransformerEncoder(dim=16, heads=4, layers=2).eval()
    x = torch.randn(2, 3, 16)
    padded = torch.cat([x, torch.randn(2, 4, 16)], dim=1)  # 4 positions of junk, masked
    padding = torch.arange(7)[None, :].expand(2, 7) >= 3
    out, _ = encoder(x)
    out_padded, _ = encoder(padded, padding)
    torch.testing.assert_close(out_padded[:, :3], out, **TOLERANCE)


def test_an_all_padding_row_gives_finite_outputs_and_gradients():
    x, padding = inputs()
    x.requires_grad_(True)
    encoder = TransformerEncoder(
        dim=16, heads=4, layers=2, dropout=0.1, attention_dropout=0.1
    ).train()
    for need_weights in (False, True):
        out, _ = encoder(x, padding, need_weights=need_weights)
        assert torch.isfinite(out).all()
        out.square().sum().backward()
        assert torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())


def test_keep_attention_stores_the_weights():
    x, padding = inputs()
    attention = SelfAttention(dim=16, heads=4).eval()
    attention.keep_attention = True
    _, returned = attention(x, padding)
    assert attention.attention_weights.shape == (4, 4, 6, 6)
    torch.testing.assert_close(attention.attention_weights, returned.detach())


def test_width_must_split_into_heads():
    with pytest.raises(ValueError, match="multiple of heads"):
        SelfAttention(dim=10, heads=4)

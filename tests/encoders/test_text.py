import pandas as pd
import pytest
import torch

from deepstrata.data.sources import read_table
from deepstrata.encoders.text import (
    TEXT_ENCODERS,
    BagOfEmbeddingsEncoder,
    ConvTextEncoder,
    TransformerTextEncoder,
    build_text_encoder,
)
from deepstrata.errors import ConfigError
from deepstrata.preprocess.text import PAD, TextPreprocessor

TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}  # float32
SMALL = {"text_width": 16, "text_layers": 2, "text_heads": 4}


class Fitted:
    """Stands in for a fitted TextPreprocessor: the two numbers an encoder needs."""

    def __init__(self, vocabulary_size: int, width: int) -> None:
        self.vocabulary_size, self.width = vocabulary_size, width


def encoder_of(choice: str, columns=((30, 8),), seed=0, **options):
    torch.manual_seed(seed)
    pres = [Fitted(size, length) for size, length in columns]
    return build_text_encoder(pres, {**SMALL, "text_encoder": choice, **options})


def random_ids(rows, length, vocabulary_size=30, seed=0):
    """``(rows, length)`` ids; row i has ``length - i`` real tokens, the last row none."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocabulary_size, (rows, length), generator=generator)
    real = torch.arange(length)[None, :] < (length - torch.arange(rows))[:, None]
    ids[rows - 1] = PAD
    return ids.masked_fill(~real, PAD)


def test_the_builder_picks_by_option_and_defaults_to_the_transformer():
    chosen = {choice: type(encoder_of(choice)) for choice in TEXT_ENCODERS}
    assert chosen == {
        "transformer": TransformerTextEncoder,
        "bag": BagOfEmbeddingsEncoder,
        "cnn": ConvTextEncoder,
    }
    assert isinstance(build_text_encoder([Fitted(30, 8)], {}), TransformerTextEncoder)
    with pytest.raises(ConfigError, match=r"text_encoder.*transformer, bag, cnn"):
        encoder_of("lstm")


@pytest.mark.parametrize("choice", TEXT_ENCODERS)
def test_output_shape_and_gradients_reach_every_parameter(choice):
    encoder = encoder_of(choice).train()
    ids = random_ids(5, 8)
    out = encoder(ids)
    assert out.shape == (5, encoder.out_dim) and torch.isfinite(out).all()
    out.square().sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("choice", TEXT_ENCODERS)
def test_padding_does_not_change_the_output(choice):
    long = encoder_of(choice, columns=[(30, 8)]).eval()
    short = encoder_of(choice, columns=[(30, 3)]).eval()
    # The same weights; a shorter position table is the first rows of the longer one.
    short_state = short.state_dict()
    short.load_state_dict(
        {
            key: value[tuple(slice(0, n) for n in short_state[key].shape)]
            for key, value in long.state_dict().items()
        }
    )
    ids = torch.tensor([[5, 6, 7], [9, 0, 0]])  # (B, 3)
    padded = torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)  # (B, 8)
    with torch.no_grad():
        torch.testing.assert_close(long(padded), short(ids), **TOLERANCE)


@pytest.mark.parametrize("choice", TEXT_ENCODERS)
def test_empty_text_gives_finite_outputs_and_gradients(choice):
    encoder = encoder_of(choice).train()
    ids = torch.zeros(3, 8, dtype=torch.long)
    ids[0, :2] = torch.tensor([4, 5])  # one row with text, two without
    out = encoder(ids)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)


@pytest.mark.parametrize("choice", TEXT_ENCODERS)
def test_two_columns_are_encoded_separately(choice):
    encoder = encoder_of(choice, columns=[(30, 8), (50, 4)]).eval()
    assert encoder.out_dim == 2 * encoder_of(choice).out_dim
    first, second = random_ids(4, 8), random_ids(4, 4, vocabulary_size=50, seed=1)
    other_second = random_ids(4, 4, vocabulary_size=50, seed=2)
    with torch.no_grad():
        out = encoder(torch.cat([first, second], dim=1))
        changed = encoder(torch.cat([first, other_second], dim=1))
    half = encoder.out_dim // 2
    torch.testing.assert_close(out[:, :half], changed[:, :half])  # column 0 unchanged
    assert not torch.allclose(out[:3, half:], changed[:3, half:])  # column 1 changed


def test_attention_weights_of_one_column():
    encoder = encoder_of("transformer", columns=[(30, 8), (50, 4)]).eval()
    first, second = random_ids(4, 8), random_ids(4, 4, vocabulary_size=50)
    with torch.no_grad():
        weights = encoder.attention(torch.cat([first, second], dim=1), column=0)
    assert len(weights) == SMALL["text_layers"]
    padded_keys = (first == PAD)[:, None, None, :].expand(4, 4, 8, 8)  # (B, heads, T, T)
    for layer in weights:
        assert layer.shape == (4, SMALL["text_heads"], 8, 8)
        assert (layer[:3][padded_keys[:3]] == 0).all()  # row 3 is all padding
        torch.testing.assert_close(layer.sum(dim=-1), torch.ones(4, 4, 8))
    assert encoder.attention(torch.cat([first, second], dim=1), column=1)[0].shape[-1] == 4


def test_built_from_fitted_preprocessors():
    column = pd.Series(["a good movie", "a bad plot", None, "good cast"], name="review")
    table = read_table(pd.DataFrame({"review": column}))
    pre = TextPreprocessor(max_length=6).fit(column, table)
    encoder = build_text_encoder([pre, pre], SMALL)
    ids = torch.from_numpy(pre.transform(column, table))
    assert encoder(torch.cat([ids, ids], dim=1)).shape == (4, 32)

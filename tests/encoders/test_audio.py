import pytest
import torch
from torch import nn

from deepstrata.encoders.audio import AudioEncoder, build_audio_encoder
from deepstrata.nn.spectrogram import SpecAugment
from deepstrata.preprocess.audio import AudioPreprocessor

SHAPES = [(16, 20), (8, 12)]  # two columns: (n_mels, frames)


def block(rows=3, shapes=SHAPES, seed=0):
    """A standardised-looking ``(rows, sum of n_mels * frames)`` block."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, sum(m * f for m, f in shapes), generator=generator)


def test_output_shape_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    encoder = AudioEncoder(shapes=SHAPES, width=4, depth=2)
    x = block().requires_grad_(True)
    out = encoder(x)
    assert out.shape == (3, encoder.out_dim) and encoder.out_dim == 2 * 8
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_each_column_is_encoded_on_its_own():
    torch.manual_seed(0)
    encoder = AudioEncoder(shapes=SHAPES, width=4, depth=2).eval()
    x = block()
    changed = x.clone()
    changed[:, 16 * 20 :] = 0.0  # only the second column
    first_dim = encoder.networks[0].out_dim
    before, after = encoder(x), encoder(changed)
    torch.testing.assert_close(after[:, :first_dim], before[:, :first_dim])
    assert not torch.allclose(after[:, first_dim:], before[:, first_dim:])


def test_eval_is_deterministic_and_independent_of_the_batch():
    torch.manual_seed(0)
    encoder = AudioEncoder(shapes=SHAPES, width=4, depth=2).eval()
    x = block(rows=5)
    torch.testing.assert_close(encoder(x), encoder(x))
    torch.testing.assert_close(encoder(x[:1]), encoder(x)[:1])


def test_spec_augment_runs_in_training_only_and_can_be_turned_off():
    torch.manual_seed(0)
    encoder = AudioEncoder(shapes=SHAPES, width=4, depth=2)
    x = block()
    evaluated = encoder.eval()(x)
    torch.manual_seed(1)
    assert not torch.allclose(encoder.train()(x), evaluated)  # masks changed the input
    plain = AudioEncoder(shapes=SHAPES, width=4, depth=2, spec_augment=False)
    plain.load_state_dict(encoder.state_dict())
    torch.testing.assert_close(plain.train()(x), evaluated)  # no masks, and no batch statistics


def test_a_missing_row_gives_finite_features():
    encoder = AudioEncoder(shapes=SHAPES, width=4, depth=2).eval()
    assert torch.isfinite(encoder(torch.zeros(2, 16 * 20 + 8 * 12))).all()


def test_builder_reads_the_shapes_from_the_preprocessors_and_the_options():
    pres = [
        AudioPreprocessor.from_state(
            {
                "sample_rate": 8000,
                "seconds": 0.2,
                "n_mels": 16,
                "mean": [0.0] * 16,
                "std": [1.0] * 16,
            }
        ),
        AudioPreprocessor(seconds=0.1, n_mels=8),
    ]
    encoder = build_audio_encoder(pres, {"audio_width": 4, "audio_depth": 2, "spec_augment": False})
    assert encoder.shapes == [(16, 21), (8, 11)]
    assert isinstance(encoder.augment, nn.Identity) and encoder.out_dim == 16
    out = encoder(torch.zeros(2, sum(p.width for p in pres)))
    assert out.shape == (2, 16)
    defaults = build_audio_encoder(pres[:1], {})
    assert isinstance(defaults.augment, SpecAugment) and defaults.out_dim == 32 * 4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_forward_and_backward_on_cuda():
    torch.manual_seed(0)
    encoder = AudioEncoder(shapes=SHAPES, width=4, depth=2).cuda().train()
    x = block().cuda().requires_grad_(True)
    out = encoder(x)
    out.sum().backward()
    assert out.device.type == "cuda" and x.grad is not None and torch.isfinite(x.grad).all()

import pytest
import torch
from torch import nn

from deepstrata.encoders.audio import AudioEncoder, LogMelInput, build_audio_encoder
from deepstrata.nn.spectrogram import LogMelAugment, SpecAugment, per_clip_normalise
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


def fitted(n_mels=16, seconds=0.2, normalise=True):
    """An audio preprocessor as a fit leaves it: per-bin statistics, the normalise switch."""
    state = {
        "sample_rate": 8000,
        "seconds": seconds,
        "n_mels": n_mels,
        "normalise": normalise,
        "mean": torch.linspace(-8, 2, n_mels).tolist(),
        "std": torch.linspace(1, 3, n_mels).tolist(),
    }
    return AudioPreprocessor.from_state(state)


OPTIONS = {"audio_width": 4, "audio_depth": 2, "spec_augment": False}


def test_voice_augmentations_change_training_batches_but_not_eval_outputs():
    pre = fitted()
    torch.manual_seed(0)
    augmented = build_audio_encoder([pre], {**OPTIONS, "audio_augment": "speed,pitch,noise,shift"})
    plain = build_audio_encoder([pre], {**OPTIONS, "audio_augment": "none"})
    assert augmented.state_dict().keys() == plain.state_dict().keys()  # bundles load either way
    plain.load_state_dict(augmented.state_dict())
    x = block(rows=4, shapes=[(16, pre.frames)])
    torch.testing.assert_close(augmented.eval()(x), plain.eval()(x))
    spectrogram = x.reshape(-1, 1, 16, pre.frames)
    prepare = augmented.inputs[0].train()
    assert isinstance(prepare.augment, LogMelAugment)
    assert not torch.allclose(prepare(spectrogram), plain.inputs[0].train()(spectrogram))
    torch.manual_seed(1)
    assert not torch.allclose(augmented.train()(x), plain.train()(x))


def test_normalise_is_read_from_the_preprocessor_and_applied_in_eval_too():
    x = block(rows=2, shapes=[(16, 21)])
    on = build_audio_encoder([fitted()], {**OPTIONS, "audio_augment": "none"}).eval()
    off = build_audio_encoder([fitted(normalise=False)], {**OPTIONS, "audio_augment": "none"})
    spectrogram = x.reshape(-1, 1, 16, 21)
    assert torch.equal(off.inputs[0].eval()(spectrogram), spectrogram)  # bit for bit: as before
    pre = fitted()
    mean, std = torch.tensor(pre.mean).float()[:, None], torch.tensor(pre.std).float()[:, None]
    torch.testing.assert_close(
        on.inputs[0](spectrogram), per_clip_normalise(spectrogram * std + mean)
    )


def test_augmenting_without_normalising_returns_to_the_standardised_scale():
    pre = fitted(normalise=False)
    prepare = LogMelInput(mean=pre.mean, std=pre.std, augment=nn.Identity()).train()
    x = block(rows=2, shapes=[(16, 21)]).reshape(-1, 1, 16, 21)
    torch.testing.assert_close(prepare(x), x, atol=1e-5, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_forward_and_backward_on_cuda():
    torch.manual_seed(0)
    encoder = AudioEncoder(shapes=SHAPES, width=4, depth=2).cuda().train()
    x = block().cuda().requires_grad_(True)
    out = encoder(x)
    out.sum().backward()
    assert out.device.type == "cuda" and x.grad is not None and torch.isfinite(x.grad).all()

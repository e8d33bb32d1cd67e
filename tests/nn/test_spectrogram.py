import numpy as np
import pytest
import torch

from deepstrata.nn.spectrogram import (
    LOG_SILENCE,
    LogMelAugment,
    SpecAugment,
    hz_to_mel,
    log_mel_spectrogram,
    mel_centre_frequencies,
    mel_filterbank,
    mel_to_hz,
    per_clip_normalise,
)


def reference_filterbank(n_fft, n_mels, sample_rate):
    """The textbook HTK filterbank, one filter and one bin at a time."""
    top = 2595 * np.log10(1 + (sample_rate / 2) / 700)
    edges = [700 * (10 ** (top * i / (n_mels + 1) / 2595) - 1) for i in range(n_mels + 2)]
    weights = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        lower, centre, upper = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sample_rate / n_fft
            if lower < f <= centre:
                weights[m, k] = (f - lower) / (centre - lower)
            elif centre < f < upper:
                weights[m, k] = (upper - f) / (upper - centre)
    return weights


def reference_log_mel(waveform, sample_rate, n_fft, hop_length, n_mels):
    """Plain NumPy: reflect-pad, periodic Hann frames, |rfft|^2, filterbank, log."""
    padded = np.pad(waveform, n_fft // 2, mode="reflect")
    frames = 1 + (len(padded) - n_fft) // hop_length
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    power = np.stack(
        [
            np.abs(np.fft.rfft(padded[t * hop_length : t * hop_length + n_fft] * window)) ** 2
            for t in range(frames)
        ],
        axis=1,
    )  # (n_fft // 2 + 1, frames)
    return np.log(reference_filterbank(n_fft, n_mels, sample_rate) @ power + 1e-6)


def tone(frequency, sample_rate=16000, seconds=0.5):
    t = np.arange(round(sample_rate * seconds)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def test_mel_scale_round_trips():
    frequencies = np.array([0.0, 440.0, 1000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(frequencies)), frequencies, atol=1e-9)
    np.testing.assert_allclose(hz_to_mel(1000.0), 999.99, atol=0.01)  # HTK: 1 kHz ~ 1000 mel


def test_filterbank_matches_the_textbook_triangles():
    filters = mel_filterbank(n_fft=400, n_mels=40, sample_rate=16000)
    assert filters.shape == (40, 201) and filters.dtype == torch.float32
    np.testing.assert_allclose(filters.numpy(), reference_filterbank(400, 40, 16000), atol=1e-6)


def test_filters_are_triangles_peaking_at_their_centres_and_cover_the_band():
    n_fft, sample_rate = 512, 16000
    filters = mel_filterbank(n_fft=n_fft, n_mels=32, sample_rate=sample_rate).double().numpy()
    centres = mel_centre_frequencies(n_mels=32, sample_rate=sample_rate)
    bin_frequencies = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    for row, centre in zip(filters, centres):
        support = np.flatnonzero(row > 0)
        assert np.all(np.diff(support) == 1)  # one contiguous piece
        peak = int(np.argmax(row))
        assert abs(bin_frequencies[peak] - centre) <= sample_rate / n_fft  # peaks at the centre
        assert np.all(np.diff(row[support[0] : peak + 1]) >= 0)  # rises ...
        assert np.all(np.diff(row[peak : support[-1] + 1]) <= 0)  # ... then falls
        assert row.max() <= 1.0
    # Neighbouring triangles add up to 1 between the first and the last centre.
    inside = (bin_frequencies >= centres[0]) & (bin_frequencies <= centres[-1])
    np.testing.assert_allclose(filters[:, inside].sum(axis=0), 1.0, atol=1e-6)


def test_too_many_mel_bins_for_the_window_is_refused():
    with pytest.raises(ValueError, match="128 mel bins are too many"):
        mel_filterbank(n_fft=400, n_mels=128, sample_rate=16000)


def test_log_mel_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    waveform = rng.normal(0, 0.1, 4000).astype(np.float32)
    got = log_mel_spectrogram(torch.from_numpy(waveform), sample_rate=16000, n_mels=40)
    expected = reference_log_mel(waveform.astype(np.float64), 16000, 400, 160, 40)
    assert got.shape == (40, 1 + 4000 // 160)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_batched_and_single_waveforms_agree():
    rng = np.random.default_rng(1)
    batch = torch.from_numpy(rng.normal(0, 0.1, (3, 1600)).astype(np.float32))
    together = log_mel_spectrogram(batch, sample_rate=16000)
    assert together.shape == (3, 64, 11)
    torch.testing.assert_close(together[1], log_mel_spectrogram(batch[1], sample_rate=16000))


@pytest.mark.parametrize("frequency", [300.0, 1000.0, 3000.0])
def test_a_pure_tone_peaks_at_the_mel_bin_centred_nearest_it(frequency):
    log_mel = log_mel_spectrogram(torch.from_numpy(tone(frequency)), sample_rate=16000)
    centres = mel_centre_frequencies(n_mels=64, sample_rate=16000)
    assert int(log_mel.mean(dim=1).argmax()) == int(np.argmin(np.abs(centres - frequency)))


def test_silence_is_finite():
    log_mel = log_mel_spectrogram(torch.zeros(1600), sample_rate=16000)
    torch.testing.assert_close(log_mel, torch.full_like(log_mel, float(np.log(1e-6))))


# -- SpecAugment --------------------------------------------------------------------------------
def test_spec_augment_is_the_identity_in_eval_mode():
    augment = SpecAugment().eval()
    x = torch.randn(4, 1, 64, 101)
    assert augment(x) is x


def masked_rows_and_columns(sample):
    """Rows (mel bins) and columns (frames) that are all zero in a (n_mels, frames) sample."""
    zero = sample == 0
    return zero.all(dim=1), zero.all(dim=0)


def runs(flags):
    """Number of contiguous runs of True in a 1-D bool tensor."""
    padded = torch.cat([torch.zeros(1, dtype=torch.bool), flags])
    return int((padded[1:] & ~padded[:-1]).sum())


def test_spec_augment_masks_whole_bands_and_spans_within_bounds():
    torch.manual_seed(0)
    augment = SpecAugment(frequency_masks=2, max_frequency_width=5, time_masks=3, max_time_width=4)
    x = torch.ones(64, 1, 20, 30)  # (B, C, n_mels, frames)
    out = augment.train()(x)
    for sample in out[:, 0]:
        rows, columns = masked_rows_and_columns(sample)
        # Every zero lies in a masked band or span; nothing else changed.
        expected = torch.where(rows[:, None] | columns[None, :], 0.0, 1.0)
        assert torch.equal(sample, expected)
        assert int(rows.sum()) <= 2 * 5 and runs(rows) <= 2
        assert int(columns.sum()) <= 3 * 4 and runs(columns) <= 3
    masks = (out[:, 0] == 0).flatten(1)
    assert masks.any(dim=1).float().mean() > 0.5  # most samples get some mask ...
    assert len({tuple(m.tolist()) for m in masks}) > 32  # ... and each its own


def test_spec_augment_is_deterministic_under_a_seed_and_takes_three_dimensions():
    augment = SpecAugment(max_frequency_width=6, max_time_width=6).train()
    x = torch.randn(8, 16, 25)  # (B, n_mels, frames), no channel dimension
    torch.manual_seed(3)
    first = augment(x)
    torch.manual_seed(3)
    torch.testing.assert_close(augment(x), first)
    assert first.shape == x.shape


def test_spec_augment_widths_larger_than_the_input_are_clamped():
    torch.manual_seed(0)
    out = SpecAugment(max_frequency_width=50, max_time_width=50).train()(torch.ones(16, 4, 5))
    assert out.shape == (16, 4, 5) and set(out.unique().tolist()) <= {0.0, 1.0}


# -- LogMelAugment: new voices of a log-mel ------------------------------------------------


def word_like(batch=2, tone_hz=1000.0, n_mels=64):
    """``(batch, 1, n_mels, 101)`` log-mels of a 0.5 s tone then 0.5 s of digital silence."""
    waveform = torch.zeros(batch, 16000)
    waveform[:, :8000] = torch.from_numpy(tone(tone_hz))
    return log_mel_spectrogram(waveform, sample_rate=16000, n_mels=n_mels)[:, None]


def voices(transforms, **ranges):
    return LogMelAugment(
        sample_rate=16000, n_fft=400, n_mels=64, transforms=transforms, **ranges
    ).train()


def test_log_mel_augment_is_the_identity_in_eval_mode_and_keeps_no_state():
    augment = voices(("speed", "pitch", "noise", "shift")).eval()
    x = word_like()
    assert torch.equal(augment(x), x)
    assert augment.state_dict() == {}  # nothing a bundle would have to store


def test_a_time_shift_moves_the_clip_by_whole_frames_with_silence_coming_in():
    torch.manual_seed(0)
    x = word_like(batch=8)
    moved = voices(("shift",), shift=0.1)(x)
    for original, shifted in zip(x[:, 0], moved[:, 0]):
        offsets = [
            k
            for k in range(-10, 11)
            if torch.allclose(shifted[:, 20:80], original[:, 20 - k : 80 - k], atol=1e-3)
        ]
        assert len(offsets) == 1
        if offsets[0] > 0:  # silence came in at the start
            torch.testing.assert_close(
                shifted[:, : offsets[0]],
                torch.full_like(shifted[:, : offsets[0]], LOG_SILENCE),
                atol=1e-3,
                rtol=0,
            )


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_a_pitch_warp_moves_a_tone_by_its_factor_and_keeps_its_length(factor):
    x = word_like(tone_hz=2000.0)
    warped = voices(("pitch",), pitch=(factor, factor))(x)
    centres = mel_centre_frequencies(n_mels=64, sample_rate=16000)
    peak = centres[int(warped[0, 0, :, 10].argmax())]
    nearest = centres[np.abs(centres - 2000.0 * factor).argmin()]
    assert peak == nearest
    assert warped[0, 0, :, 60].max() < LOG_SILENCE + 0.5  # still silent where it was


def test_speed_plays_the_clip_faster_or_slower():
    x = word_like()
    sounding = (x[0, 0].max(dim=0).values > LOG_SILENCE + 1).sum()  # about 50 frames
    fast = voices(("speed",), speed=(1.1, 1.1))(x)
    slow = voices(("speed",), speed=(0.9, 0.9))(x)
    frames = [(y[0, 0].max(dim=0).values > LOG_SILENCE + 1).sum() for y in (fast, slow)]
    assert abs(frames[0] - sounding / 1.1) <= 2 and abs(frames[1] - sounding / 0.9) <= 2


def test_noise_comes_at_the_signal_to_noise_ratio_asked():
    torch.manual_seed(0)
    x = word_like(batch=4)
    power = x.exp().sum(dim=-2).mean(dim=-1)  # (B, 1): as the augment measures the signal
    for snr in (10.0, 30.0):
        noisy = voices(("noise",), snr=(snr, snr), noise_probability=1.0)(x)
        silence = noisy[..., 60:].exp().sum(dim=-2).mean(dim=-1)  # noise alone there
        ratio = 10 * torch.log10(power / silence)
        assert torch.all((ratio - snr).abs() < 1.0), ratio
        assert torch.all(noisy >= x - 1e-4)  # power is only ever added


def test_noise_is_added_to_about_half_the_clips():
    torch.manual_seed(0)
    x = word_like(batch=1).expand(200, -1, -1, -1)
    clean = (voices(("noise",))(x) == x).flatten(1).all(dim=1)
    assert 70 < int(clean.sum()) < 130


def test_augmentations_are_random_per_clip_and_follow_the_seed():
    augment = voices(("speed", "pitch", "noise", "shift"))
    x = word_like(batch=3)
    torch.manual_seed(5)
    first = augment(x)
    torch.manual_seed(5)
    assert torch.equal(augment(x), first)
    assert not torch.allclose(first[0], first[1])  # the same clip, two voices
    assert torch.isfinite(first).all()


def test_per_clip_normalise_gives_each_clip_mean_zero_and_variance_one():
    x = word_like(batch=2) * torch.tensor([1.0, 3.0]).view(2, 1, 1, 1) + 7
    normalised = per_clip_normalise(x)
    torch.testing.assert_close(normalised.mean(dim=(-2, -1)), torch.zeros(2, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        normalised.std(dim=(-2, -1), unbiased=False), torch.ones(2, 1), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        normalised[0], normalised[1], atol=1e-4, rtol=0
    )  # gain and offset gone

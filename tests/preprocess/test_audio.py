import json

import numpy as np
import pandas as pd
import pytest
import soundfile

from deepstrata.config import with_defaults
from deepstrata.data.sources import read_table
from deepstrata.errors import DataError
from deepstrata.nn.spectrogram import mel_centre_frequencies
from deepstrata.preprocess.audio import (
    AudioPreprocessor,
    decode_audio,
    fit_length,
    read_waveform,
)

SECONDS = 0.25  # short clips keep every test fast: 26 frames of 64 mel bins


def tone(frequency, sample_rate, seconds=SECONDS, amplitude=0.5):
    t = np.arange(round(sample_rate * seconds)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def write(path, data, sample_rate=16000, **options):
    soundfile.write(path, data, sample_rate, **options)
    return path


def peak_mel_bin(spectrogram, n_mels=64):
    return int(spectrogram.reshape(n_mels, -1).mean(axis=1).argmax())


def table_of(tmp_path, cells):
    """A CSV in ``tmp_path`` with one column ``clip`` of ``cells``, read back as a Table."""
    pd.DataFrame({"clip": cells}).to_csv(tmp_path / "clips.csv", index=False)
    table = read_table(tmp_path / "clips.csv")
    return table.frame["clip"], table


@pytest.mark.parametrize(
    "suffix, options",
    [(".wav", {}), (".flac", {}), (".ogg", {"format": "OGG", "subtype": "VORBIS"})],
)
def test_wav_flac_and_ogg_decode_to_the_same_peak(tmp_path, suffix, options):
    path = write(tmp_path / f"tone{suffix}", tone(1000, 16000), **options)
    waveform = read_waveform(path, sample_rate=16000)
    assert waveform.dtype == np.float32 and abs(len(waveform) - 4000) <= 64  # OGG may pad a little
    spectrogram = decode_audio(path, sample_rate=16000, seconds=SECONDS, n_mels=64)
    assert spectrogram.shape == (64 * 26,) and spectrogram.dtype == np.float32
    centres = mel_centre_frequencies(n_mels=64, sample_rate=16000)
    assert peak_mel_bin(spectrogram) == int(np.argmin(np.abs(centres - 1000)))


def test_stereo_is_mixed_to_the_mean_of_its_channels(tmp_path):
    left = tone(440, 16000)
    path = write(
        tmp_path / "stereo.wav", np.stack([left, np.zeros_like(left)], axis=1), subtype="FLOAT"
    )
    np.testing.assert_allclose(read_waveform(path, sample_rate=16000), left / 2, atol=1e-7)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_other_rates_are_resampled_and_a_tone_keeps_its_frequency(tmp_path, rate):
    path = write(tmp_path / f"tone{rate}.wav", tone(1000, rate), sample_rate=rate)
    assert len(read_waveform(path, sample_rate=16000)) == 4000
    native = write(tmp_path / "tone16000.wav", tone(1000, 16000))
    settings = {"sample_rate": 16000, "seconds": SECONDS, "n_mels": 64}
    assert peak_mel_bin(decode_audio(path, **settings)) == peak_mel_bin(
        decode_audio(native, **settings)
    )


def test_short_clips_are_padded_with_silence_at_the_end():
    waveform = np.ones(10, dtype=np.float32)
    fitted = fit_length(waveform, 16)
    np.testing.assert_array_equal(fitted, np.r_[np.ones(10), np.zeros(6)])
    np.testing.assert_array_equal(fit_length(waveform, 10), waveform)


def test_long_clips_keep_their_loudest_window(tmp_path):
    rng = np.random.default_rng(0)
    quiet = rng.normal(0, 0.001, 16000).astype(np.float32)  # 1 s of near-silence ...
    quiet[9000:11000] += tone(1000, 16000, seconds=0.125)  # ... with a 1 kHz burst at 0.56 s
    fitted = fit_length(quiet, 4000)
    assert np.abs(fitted).max() > 0.4  # the burst is in the window
    assert np.sum(fitted**2) == pytest.approx(np.sum(quiet[9000:11000] ** 2), rel=0.01)
    path = write(tmp_path / "long.wav", quiet, subtype="FLOAT")
    spectrogram = decode_audio(path, sample_rate=16000, seconds=SECONDS, n_mels=64)
    centres = mel_centre_frequencies(n_mels=64, sample_rate=16000)
    assert peak_mel_bin(spectrogram) == int(np.argmin(np.abs(centres - 1000)))


def test_every_bad_file_is_listed_in_one_error_with_its_row(tmp_path):
    write(tmp_path / "good.wav", tone(440, 16000))
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(2000))
    write(tmp_path / "no-frames.wav", np.zeros((0, 1), dtype=np.float32))
    cells = ["good.wav", "empty.wav", "noise.wav", None, "missing.wav", "no-frames.wav"]
    column, table = table_of(tmp_path, cells)
    pre = AudioPreprocessor(seconds=SECONDS)
    with pytest.raises(DataError) as caught:
        pre.fit(column, table)
    error = caught.value
    assert error.row == 2 and error.line == 3 and error.column == "clip"
    message = str(error)
    assert "4 audio files could not be read" in message
    assert "line 3: empty.wav: empty file" in message
    assert "line 4: noise.wav: not a readable audio file: Format not recognised" in message
    assert "line 6: missing.wav: file not found" in message
    assert "line 7: no-frames.wav: no audio samples" in message
    bad = pre.bad_files(column, table)
    assert [(b.position, b.path) for b in bad] == [
        (1, "empty.wav"),
        (2, "noise.wav"),
        (4, "missing.wav"),
        (5, "no-frames.wav"),
    ]


def test_samples_that_are_not_finite_are_a_bad_file(tmp_path):
    data = tone(440, 16000)
    data[100] = np.nan
    write(tmp_path / "nan.wav", data, subtype="FLOAT")
    column, table = table_of(tmp_path, ["nan.wav"])
    with pytest.raises(DataError, match="not finite"):
        AudioPreprocessor(seconds=SECONDS).fit(column, table)


def test_statistics_come_from_the_training_rows_only(tmp_path):
    rng = np.random.default_rng(0)
    for i, frequency in enumerate([300, 500, 2000]):
        write(tmp_path / f"tone{i}.wav", tone(frequency, 16000))
    write(tmp_path / "loud.wav", rng.uniform(-1, 1, 4000).astype(np.float32), subtype="FLOAT")
    column, table = table_of(tmp_path, ["tone0.wav", "tone1.wav", "tone2.wav", "loud.wav"])
    train = column.iloc[:3]
    pre = AudioPreprocessor(seconds=SECONDS).fit(train, table)
    spectrograms = np.stack(
        [
            decode_audio(tmp_path / f"tone{i}.wav", sample_rate=16000, seconds=SECONDS, n_mels=64)
            for i in range(3)
        ]
    ).reshape(3, 64, 26)
    np.testing.assert_allclose(pre.mean, spectrograms.mean(axis=(0, 2)), rtol=1e-5, atol=1e-5)
    expected_std = np.maximum(spectrograms.std(axis=(0, 2)), 0.1)
    np.testing.assert_allclose(pre.std, expected_std, rtol=1e-4, atol=1e-5)
    standardised = pre.transform(train, table).reshape(3, 64, 26)
    np.testing.assert_allclose(standardised.mean(axis=(0, 2)), 0.0, atol=1e-4)
    assert pre.transform(column, table)[3].mean() > 1.0  # broadband noise: louder than the tones


def test_state_round_trip_transforms_identically(tmp_path):
    write(tmp_path / "a.wav", tone(440, 16000))
    write(tmp_path / "b.flac", tone(3000, 22050), sample_rate=22050)
    column, table = table_of(tmp_path, ["a.wav", "b.flac", ""])
    pre = AudioPreprocessor(seconds=SECONDS, n_mels=32).fit(column, table)
    state = json.loads(json.dumps(pre.state()))  # plain JSON, nothing else
    rebuilt = AudioPreprocessor.from_state(state)
    assert (rebuilt.width, rebuilt.n_mels, rebuilt.frames) == (pre.width, 32, 26)
    np.testing.assert_array_equal(rebuilt.transform(column, table), pre.transform(column, table))


def test_missing_cells_become_the_training_mean(tmp_path):
    path = write(tmp_path / "a.wav", tone(440, 16000))
    table = read_table(pd.DataFrame({"clip": [str(path), None, "  ", np.nan]}))
    column = table.frame["clip"]
    pre = AudioPreprocessor(seconds=SECONDS).fit(column, table)
    out = pre.transform(column, table)
    assert out.shape == (4, pre.width) and out.dtype == np.float32
    assert np.isfinite(out).all() and not out[1:].any()


def test_a_column_without_any_file_fits_to_the_identity_scaling(tmp_path):
    column, table = table_of(tmp_path, [None, None])
    pre = AudioPreprocessor(seconds=SECONDS).fit(column, table)
    np.testing.assert_array_equal(pre.std, 1.0)
    assert not pre.transform(column, table).any()


def test_impossible_settings_are_refused_before_decoding(tmp_path):
    column, table = table_of(tmp_path, ["never-read.wav"])
    with pytest.raises(ValueError, match="mel bins are too many"):
        AudioPreprocessor(n_mels=128).fit(column, table)
    with pytest.raises(ValueError, match="seconds must be at least"):
        AudioPreprocessor(seconds=0.01).fit(column, table)


def test_normalise_is_part_of_the_state_and_an_older_state_means_off(tmp_path):
    write(tmp_path / "a.wav", tone(440, 16000))
    column, table = table_of(tmp_path, ["a.wav", ""])
    assert AudioPreprocessor.from_options(with_defaults({})).normalise  # new fits: on
    for normalise in (True, False):
        pre = AudioPreprocessor(seconds=SECONDS, n_mels=32, normalise=normalise).fit(column, table)
        state = json.loads(json.dumps(pre.state()))
        assert state["normalise"] is normalise
        assert AudioPreprocessor.from_state(state).normalise is normalise
    del state["normalise"]  # what a bundle made before the switch holds
    older = AudioPreprocessor.from_state(state)
    assert older.normalise is False
    np.testing.assert_array_equal(older.transform(column, table), pre.transform(column, table))


def test_an_audio_bundle_made_before_normalise_and_augment_loads_unchanged(tmp_path):
    import deepstrata
    from deepstrata.bundle.manifest import MANIFEST, write_manifest

    for word, frequency in (("low", 300), ("high", 3000)):
        (tmp_path / "clips" / word).mkdir(parents=True)
        for take in range(6):
            data = tone(frequency * (1 + take / 20), 16000)
            write(tmp_path / "clips" / word / f"{take}.wav", data)
    options = {"audio_seconds": SECONDS, "audio_mels": 16, "audio_width": 4, "audio_depth": 1}
    model = deepstrata.fit(
        tmp_path / "clips", max_epochs=1, learning_rate=0.01, progress=False, **options
    )
    path = model.save(tmp_path / "bundle")
    config_path = path / "config.json"
    config = json.loads(config_path.read_text())
    new_keys = {"normalise", "audio_normalise", "audio_augment", "group", "group_pattern"}
    assert new_keys <= keys_of(config)
    older = without(config, new_keys)  # as a bundle made before these options holds it
    assert not new_keys & keys_of(older)
    config_path.write_text(json.dumps(older))
    versions = json.loads((path / MANIFEST).read_text())["versions"]
    write_manifest(path, versions=versions)
    loaded = deepstrata.load(path)
    assert loaded.members[0].preprocessors["audio"].normalise is False  # as it was made
    # ... and so it predicts what a model of those days did: no per-clip normalisation
    model.members[0].preprocessors["audio"].normalise = False
    model.members[0].network.encoders["audio"].inputs[0].normalise = False
    frame = pd.DataFrame({"audio": sorted(str(p) for p in (tmp_path / "clips").rglob("*.wav"))})
    np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(frame), atol=1e-6)


def keys_of(data) -> set:
    """Every key of every mapping inside ``data`` (a config.json)."""
    if isinstance(data, dict):
        return set(data) | set().union(*(keys_of(value) for value in data.values()))
    if isinstance(data, list):
        return set().union(*(keys_of(value) for value in data))
    return set()


def without(data, keys: set):
    """``data`` with every entry named in ``keys`` left out, at every depth."""
    if isinstance(data, dict):
        return {k: without(v, keys) for k, v in data.items() if k not in keys}
    if isinstance(data, list):
        return [without(value, keys) for value in data]
    return data

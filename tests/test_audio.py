"""Audio loading: formats, rates, channels, blocks and every AudioError case."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.signal.audio import AudioError, audio_duration, iter_blocks, load_audio


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("suffix", "fmt", "subtype"),
    [
        (".wav", "WAV", "PCM_U8"),
        (".wav", "WAV", "PCM_16"),
        (".wav", "WAV", "PCM_24"),
        (".wav", "WAV", "PCM_32"),
        (".wav", "WAV", "FLOAT"),
        (".flac", "FLAC", "PCM_16"),
        (".ogg", "OGG", "VORBIS"),
        (".mp3", "MP3", "MPEG_LAYER_III"),
    ],
)
def test_formats_decode_to_the_same_tone(tmp_path: Path, suffix: str, fmt: str, subtype: str):
    path = tmp_path / f"tone{suffix}"
    reference = tone(1.0, 16000)
    sf.write(path, reference, 16000, format=fmt, subtype=subtype)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - len(reference)) <= 1200  # lossy codecs add encoder delay/padding
    # Same energy as the original, whatever the encoding.
    assert np.sqrt(np.mean(wave**2)) == pytest.approx(np.sqrt(np.mean(reference**2)), rel=0.1)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampled_to_16k_keeps_pitch(tmp_path: Path, rate: int):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(1.0, rate, freq=1000.0), rate)
    wave = load_audio(path)
    assert len(wave) == pytest.approx(16000, abs=2)
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) == pytest.approx(1000, abs=2)  # 1 Hz bins over 1 s


def test_channels_are_averaged(tmp_path: Path):
    path = tmp_path / "stereo.wav"
    left, right = np.full(1600, 0.5, np.float32), np.full(1600, -0.1, np.float32)
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), 0.2, atol=1e-6)


def test_six_channels(tmp_path: Path):
    path = tmp_path / "surround.wav"
    sf.write(path, np.full((800, 6), 0.25, np.float32), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), 0.25, atol=1e-6)


def test_missing_file():
    with pytest.raises(AudioError, match="nope.wav: no such file"):
        load_audio("nope.wav")


def test_directory(tmp_path: Path):
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)


def test_zero_byte_file(tmp_path: Path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioError, match=r"empty.wav: empty file"):
        load_audio(path)


def test_text_file_named_wav(tmp_path: Path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match=r"notes.wav: not a readable audio file"):
        load_audio(path)


def test_truncated_header(tmp_path: Path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(0.5, 16000), 16000)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(AudioError, match="cut.wav"):
        load_audio(path)


def test_zero_samples(tmp_path: Path):
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="zero samples"):
        load_audio(path)
    with pytest.raises(AudioError, match="zero samples"):
        list(iter_blocks(path))


def test_non_finite_samples(tmp_path: Path):
    path = tmp_path / "nan.wav"
    wave = tone(0.2, 16000)
    wave[100] = np.nan
    sf.write(path, wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        load_audio(path)
    with pytest.raises(AudioError, match="non-finite"):
        list(iter_blocks(path))


def test_audio_error_is_a_value_error_with_path(tmp_path: Path):
    error = AudioError(tmp_path / "x.wav", "broken")
    assert isinstance(error, ValueError) and error.path.name == "x.wav"


def test_duration_from_header(tmp_path: Path):
    path = tmp_path / "two.flac"
    sf.write(path, tone(2.0, 22050), 22050)
    assert audio_duration(path) == pytest.approx(2.0)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_blocks_concatenate_to_the_whole(tmp_path: Path, rate: int):
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal(rate * 5)).astype(np.float32), rate, subtype="FLOAT")
    whole = load_audio(path)
    blocks = list(iter_blocks(path, block_seconds=0.7))
    assert len(blocks) >= 7
    assert all(len(b) <= 1.05 * 0.7 * 16000 for b in blocks)  # resampler delay varies a little
    joined = np.concatenate(blocks)
    assert len(joined) == pytest.approx(len(whole), abs=2)
    n = min(len(joined), len(whole))
    # Streamed resampling equals one-shot resampling away from the very ends.
    np.testing.assert_allclose(joined[100 : n - 100], whole[100 : n - 100], atol=1e-3)


def test_block_size_must_be_positive(tmp_path: Path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(0.1, 16000), 16000)
    with pytest.raises(ValueError, match="block_seconds"):
        list(iter_blocks(path, block_seconds=0))


def test_level_db_of_a_long_signal_is_computed_slice_by_slice_exactly():
    from emofuse.signal.audio import level_db

    wave = (np.random.default_rng(0).standard_normal(3_000_000) * 0.1 + 0.01).astype(np.float32)
    centred = wave.astype(np.float64) - wave.mean(dtype=np.float64)
    direct = 10 * np.log10(np.mean(np.square(centred)))
    assert level_db(wave) == pytest.approx(direct, abs=1e-9)


def test_blocks_are_joined_in_place_or_beyond_a_header_that_says_less():
    from emofuse.signal.audio import _joined

    blocks = [np.full(3, i, np.float32) for i in range(3)]
    np.testing.assert_array_equal(_joined(iter(blocks), 9), np.repeat([0, 1, 2], 3))
    np.testing.assert_array_equal(_joined(iter(blocks), 4), np.repeat([0, 1, 2], 3))  # more
    np.testing.assert_array_equal(_joined(iter(blocks[:1]), 9), np.zeros(3))  # cut short

"""The one PCM conversion (:func:`emofuse.inference.windows.as_mono`) behind arrays, live chunks
and raw PCM: every dtype and shape treated one way, the array path bitwise as before."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.inference.stream import decode_pcm
from emofuse.inference.windows import as_mono

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_signed_pcm_is_scaled_as_soundfile_does(dtype):
    low = np.iinfo(dtype).min
    pcm = np.array([low, low // 2, 0, -(low // 2), np.iinfo(dtype).max], dtype)
    got = as_mono(pcm)
    assert got.dtype == np.float32 and got[:4].tolist() == [-1.0, -0.5, 0.0, 0.5]
    assert got[4] == np.float32(np.iinfo(dtype).max / -float(low))


def test_uint8_is_centred_on_128():
    got = as_mono(np.array([0, 64, 128, 255], np.uint8))
    assert got.tolist() == [-1.0, -0.5, 0.0, 127 / 128]


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, bool, np.complex64, object])
def test_other_dtypes_are_refused(dtype):
    with pytest.raises(ValueError, match="signed integer PCM or float.*got dtype"):
        as_mono(np.zeros(8, dtype))


def test_float_and_int16_arrays_are_bitwise_the_old_conversion():
    """Scale, average the channels, then cast to float32: the order the array path always used
    (predictions of arrays stay bitwise the same)."""
    for audio in (RNG.standard_normal((999, 3)).astype(np.float32) * 0.3,
                  RNG.standard_normal((999, 2)) * 0.3,
                  RNG.integers(-32768, 32768, (999, 2)).astype(np.int16),
                  RNG.integers(-32768, 32768, 999).astype(np.int16)):  # fmt: skip
        scaled = audio / 32768.0 if audio.dtype == np.int16 else audio
        old = (scaled.mean(axis=1) if scaled.ndim == 2 else scaled).astype(np.float32)
        np.testing.assert_array_equal(as_mono(audio), old, strict=True)


def test_channels_are_averaged():
    stereo = np.stack([np.full(4, 0.5, np.float32), np.full(4, -0.25, np.float32)], axis=1)
    assert as_mono(stereo).tolist() == [0.125] * 4
    assert as_mono(np.full((4, 1), 3, np.int16)).tolist() == [3 / 32768] * 4


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(0, np.float32), "non-empty"),
        (np.zeros((0, 2), np.int16), "non-empty"),
        (np.zeros((2, 16000), np.float32), r"\(samples, channels\), got shape \(2, 16000\)"),
        (np.zeros((4, 0), np.float32), "at least one channel"),
        (np.zeros((1, 1, 4), np.float32), r"got shape \(1, 1, 4\)"),
        (np.float32(0.5), r"got shape \(\)"),
        (np.array([0.1, np.nan], np.float32), "non-finite"),
        (np.array([0.1, -np.inf]), "non-finite"),
        (np.array([1e300, 0.0]), "non-finite"),  # finite in float64, not in float32
        (b"\x00\x00", "decode_pcm"),
    ],
)
def test_bad_clips_are_refused(audio, message):
    with pytest.raises(ValueError, match=message):
        as_mono(audio)


def test_a_chunk_may_be_empty_or_shorter_than_its_channels():
    """Live chunks: nothing may have arrived yet, and a short chunk of a stereo stream may hold
    one sample; the other checks stay."""
    assert as_mono(np.zeros(0, np.int16), chunk=True).shape == (0,)
    assert as_mono(np.zeros((0, 2), np.float32), chunk=True).dtype == np.float32
    assert as_mono(np.array([[0.5, -0.5]]), chunk=True).tolist() == [0.0]
    for bad in (np.array([np.nan]), np.zeros((2, 0)), np.zeros(3, np.uint16), np.zeros((1, 1, 1))):
        with pytest.raises(ValueError):
            as_mono(bad, chunk=True)


def test_raw_pcm_goes_through_the_same_conversion():
    pcm = RNG.integers(-32768, 32768, 480).astype("<i2")
    np.testing.assert_array_equal(as_mono(decode_pcm(pcm.tobytes(), "s16le")), pcm / 32768.0)
    floats = RNG.standard_normal(480).astype("<f4")
    np.testing.assert_array_equal(as_mono(decode_pcm(floats.tobytes(), "f32le")), floats)

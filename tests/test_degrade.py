"""Recording conditions: each does what it says, measured on tones and noise."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.signal.degrade import (
    add_noise,
    codec,
    gain,
    random_conditions,
    reverberate,
    speed,
    telephone,
)

RATE = 16000


def tone(hz: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def power(x: np.ndarray) -> float:
    return float(np.mean(x.astype(np.float64) ** 2))


def test_gain_in_decibels_and_clipped():
    wave = tone(440)
    assert 10 * np.log10(power(gain(wave, -6)) / power(wave)) == pytest.approx(-6, abs=0.01)
    assert np.abs(gain(wave, 20)).max() <= 1.0


@pytest.mark.parametrize("tilt", [0.0, -1.0])
def test_noise_at_the_asked_snr(tilt):
    wave = tone(440)
    noisy = add_noise(wave, 10.0, np.random.default_rng(0), tilt)
    snr = 10 * np.log10(power(wave) / power(noisy - wave))
    assert snr == pytest.approx(10.0, abs=0.1)


def test_telephone_band_keeps_speech_band_only():
    low, mid = tone(100, 2.0), tone(1000, 2.0)
    assert power(telephone(low, RATE)[RATE:]) < 0.02 * power(low)
    assert power(telephone(mid, RATE)[RATE:]) == pytest.approx(power(mid), rel=0.05)


def test_speed_changes_length_and_pitch():
    wave = tone(500, 1.0)
    fast = speed(wave, 1.1)
    assert fast.size == pytest.approx(wave.size / 1.1, abs=2)
    peak = np.argmax(np.abs(np.fft.rfft(fast))) * RATE / fast.size
    assert peak == pytest.approx(550, abs=5)
    assert speed(wave, 1.0) is wave


def test_reverb_keeps_level_and_smears_time():
    rng = np.random.default_rng(1)
    click = np.zeros(RATE, np.float32)
    click[100] = 0.5
    wet = reverberate(click, RATE, 0.5, rng)
    assert wet.size == click.size
    assert power(wet) == pytest.approx(power(click), rel=0.01)
    assert np.abs(wet[RATE // 4 :]).max() > 0  # energy long after the click


@pytest.mark.parametrize("fmt", ["OGG", "MP3"])
def test_codec_round_trip_is_close_but_lossy(fmt):
    wave = tone(700, 1.0) + 0.01 * np.random.default_rng(2).standard_normal(RATE).astype(np.float32)
    decoded = codec(wave, RATE, fmt)
    assert decoded.shape == wave.shape and decoded.dtype == np.float32
    lag = int(np.argmax(np.correlate(decoded[:4000], wave[:2000], "valid")))
    aligned = decoded[lag : lag + 8000]
    assert np.corrcoef(aligned, wave[:8000])[0, 1] > 0.9
    assert not np.array_equal(decoded, wave)


def test_random_conditions_repeat_with_the_seed():
    wave = tone(300, 1.5)
    first, applied = random_conditions(wave, RATE, np.random.default_rng(5))
    second, again = random_conditions(wave, RATE, np.random.default_rng(5))
    np.testing.assert_array_equal(first, second)
    assert applied == again and applied[-1].startswith("gain") and len(applied) >= 2
    assert np.isfinite(first).all() and np.abs(first).max() <= 1.0

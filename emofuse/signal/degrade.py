"""Recording conditions applied to a waveform: level, noise, room, telephone band, speed, codec.

Used to train heads on frozen-encoder features that carry less of the recording and more of the
voice (each degraded copy of a corpus is written once and its features cached). Every function
takes and returns a float32 waveform ``(samples,)`` at ``rate`` Hz; :func:`random_conditions`
draws a chain of them.

>>> rng = np.random.default_rng(0)
>>> wave = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
>>> out, applied = random_conditions(wave, 16000, rng)
>>> out.dtype, out.ndim, len(applied) >= 1
(dtype('float32'), 1, True)
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

__all__ = [
    "add_noise",
    "codec",
    "gain",
    "random_conditions",
    "reverberate",
    "speed",
    "telephone",
]


def gain(wave: np.ndarray, db: float) -> np.ndarray:
    """``wave`` scaled by ``db`` decibels, clipped to [-1, 1]."""
    return np.clip(wave * 10 ** (db / 20), -1.0, 1.0).astype(np.float32)


def add_noise(
    wave: np.ndarray, snr_db: float, rng: np.random.Generator, tilt: float = 0.0
) -> np.ndarray:
    """``wave`` plus Gaussian noise at ``snr_db`` below its power; ``tilt`` in [-1, 1] colours
    the noise (negative: more low frequencies, like room or traffic noise; 0: white)."""
    noise = rng.standard_normal(wave.size)
    if tilt:
        spectrum = np.fft.rfft(noise)
        freqs = np.arange(1, spectrum.size + 1, dtype=np.float64)
        noise = np.fft.irfft(spectrum * freqs ** (tilt / 2), n=wave.size)
    power = float(np.mean(wave.astype(np.float64) ** 2)) + 1e-12
    noise *= np.sqrt(power / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))
    return np.clip(wave + noise, -1.0, 1.0).astype(np.float32)


def reverberate(wave: np.ndarray, rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """``wave`` convolved with a synthetic room: a direct path, then exponentially decaying
    noise reaching -60 dB after ``rt60`` seconds; the level of ``wave`` is kept."""
    from scipy.signal import fftconvolve

    t = np.arange(int(rt60 * rate)) / rate
    response = rng.standard_normal(t.size) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 60 dB
    response[0] = 1.0 / 0.3  # direct path dominates the first reflections a little
    wet = fftconvolve(wave.astype(np.float64), response)[: wave.size]
    level = np.sqrt(np.mean(wave.astype(np.float64) ** 2) / (np.mean(wet**2) + 1e-12))
    return np.clip(wet * level, -1.0, 1.0).astype(np.float32)


def telephone(wave: np.ndarray, rate: int, low: float = 300.0, high: float = 3400.0):
    """``wave`` band-passed to the telephone band (4th-order Butterworth, ``low``-``high`` Hz)."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, [low, high], btype="bandpass", fs=rate, output="sos")
    return sosfilt(sos, wave).astype(np.float32)


def speed(wave: np.ndarray, factor: float) -> np.ndarray:
    """``wave`` played ``factor`` times faster: tempo and pitch change together."""
    import soxr

    if factor == 1.0:
        return wave
    return soxr.resample(wave, factor, 1.0).astype(np.float32)  # fewer samples: faster, higher


def codec(wave: np.ndarray, rate: int, fmt: str = "OGG") -> np.ndarray:
    """``wave`` encoded lossily (``"OGG"`` Vorbis or ``"MP3"``, libsndfile) and decoded again."""
    import soundfile as sf

    buffer = io.BytesIO()
    subtype = "VORBIS" if fmt == "OGG" else "MPEG_LAYER_III"
    sf.write(buffer, wave, rate, format=fmt, subtype=subtype)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32")
    out = np.zeros_like(wave)
    out[: min(wave.size, decoded.size)] = decoded[: wave.size]
    return out


def random_conditions(
    wave: np.ndarray, rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """A random chain of recording conditions applied to ``wave``, and their descriptions.

    Each condition is drawn independently (room 50 %, telephone band 25 %, noise 60 %, speed
    50 %, codec 25 %), then the level is always moved by up to +-10 dB; at least one other
    condition is applied.
    """
    steps: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = []
    while not steps:
        if rng.random() < 0.5:
            rt60 = float(rng.uniform(0.2, 0.8))
            steps.append(
                (f"reverb rt60 {rt60:.2f} s", lambda w, r=rt60: reverberate(w, rate, r, rng))
            )
        if rng.random() < 0.25:
            steps.append(("telephone 300-3400 Hz", lambda w: telephone(w, rate)))
        if rng.random() < 0.6:
            snr, tilt = float(rng.uniform(5, 30)), float(rng.uniform(-1.0, 0.0))
            steps.append(
                (f"noise {snr:.0f} dB SNR", lambda w, s=snr, c=tilt: add_noise(w, s, rng, c))
            )
        if rng.random() < 0.5:
            factor = float(rng.uniform(0.9, 1.1))
            steps.append((f"speed x{factor:.2f}", lambda w, f=factor: speed(w, f)))
        if rng.random() < 0.25:
            fmt = "MP3" if rng.random() < 0.5 else "OGG"
            steps.append((f"codec {fmt}", lambda w, f=fmt: codec(w, rate, f)))
    db = float(rng.uniform(-10, 10))
    steps.append((f"gain {db:+.1f} dB", lambda w: gain(w, db)))
    for _, step in steps:
        wave = step(wave)
    return wave, [name for name, _ in steps]

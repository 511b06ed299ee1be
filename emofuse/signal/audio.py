"""Audio loading: any format libsndfile reads, resampled to one rate, mixed to mono.

>>> import numpy as np, soundfile as sf, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
>>> sf.write(path, np.zeros((8000, 2), dtype="float32") + 0.1, 8000)
>>> wave = load_audio(path, sample_rate=16000)
>>> wave.shape, wave.dtype
((16000,), dtype('float32'))
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "AudioError",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "check_sample_rate",
    "load_audio",
    "decode_audio",
    "iter_blocks",
    "resample",
    "audio_duration",
    "level_db",
]

PathLike = str | os.PathLike
LOAD_BLOCK_SECONDS = 30  # load_audio decodes in blocks of this many seconds (native rate)
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192_000  # Hz, of arrays and live audio: check_sample_rate


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def check_sample_rate(value: object, name: str = "sample_rate") -> int:
    """``value`` as an int when it is a whole number of Hz from :data:`MIN_SAMPLE_RATE` to
    :data:`MAX_SAMPLE_RATE` (a Python or NumPy integer, not a bool or float), else a ValueError
    naming ``name`` and the value. The one range of arrays and live streams in the library,
    ``emofuse live --rate`` and the service's ``WS /v1/stream`` (files at any rate are
    resampled as they are read).

    Why 8-192 kHz: below 8 kHz (telephone audio) speech has lost the band that voice activity
    detection (Silero, which runs at 8 or 16 kHz) and the models' features (mels up to 8 kHz)
    rely on, so an answer would not mean much; 192 kHz is the highest rate audio interfaces
    record, and a larger number is a mistake (bytes or samples given for Hz).

    >>> check_sample_rate(48000)
    48000
    >>> check_sample_rate(4000, "--rate")
    Traceback (most recent call last):
    ...
    ValueError: --rate must be an integer from 8000 to 192000 Hz, got 4000
    """
    whole = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not whole or not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
        raise ValueError(f"{name} must be an integer from {MIN_SAMPLE_RATE} to "
                         f"{MAX_SAMPLE_RATE} Hz, got {value!r}")  # fmt: skip
    return int(value)


def _open(path: PathLike) -> sf.SoundFile:
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "no such file")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "permission denied (the file is not readable)")
    try:
        # Bytes, so that any name the file system holds opens (soundfile encodes a str name
        # strictly as UTF-8, which fails on undecodable bytes kept as surrogates).
        return sf.SoundFile(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(path, f"not a readable audio file ({_reason(error)})") from None


def _reason(error: Exception) -> str:
    """libsndfile's own words, without its "Error opening <name>:" prefix (the name is ours)."""
    text = getattr(error, "error_string", None) or str(error)
    return text.replace("Error : ", "").strip().rstrip(".")


def _mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) float32, channels averaged."""
    return block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32)


def _check_finite(path: PathLike, wave: np.ndarray, offset: float, rate: int) -> None:
    """``offset``: seconds of the file before ``wave`` (named in the message with ``rate``)."""
    bad = ~np.isfinite(wave)
    if bad.any():
        first = offset + int(np.argmax(bad)) / rate
        raise AudioError(
            path, f"contains non-finite samples (NaN or infinity), the first at {first:.3f} s"
        )


def _blocks(path: PathLike, f: sf.SoundFile, block_frames: int) -> Iterator[np.ndarray]:
    """Consecutive mono float32 blocks of ``f`` at its own rate, each checked to be finite;
    the last one is shorter than ``block_frames`` (possibly empty).

    A file whose audio ends before its header says (a cut WAV) yields what it holds, as
    libsndfile reads it; a decoder error part-way (a cut or damaged FLAC) is an AudioError.
    """
    rate, done = f.samplerate, 0
    while True:
        try:
            data = f.read(block_frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as error:
            at = max(f.tell(), done)  # where the decoder stopped, when libsndfile knows
            raise AudioError(
                path,
                f"truncated or corrupt audio: decoding failed at about {at / rate:.2f} s of the "
                f"{f.frames / rate:.2f} s in its header ({_reason(error)})",
            ) from None
        wave = _mono(data)
        _check_finite(path, wave, done / rate, rate)
        done += len(wave)
        yield wave
        if len(wave) < block_frames:
            return


def resample(wave: np.ndarray, orig_rate: int, sample_rate: int) -> np.ndarray:
    """Resample a mono float32 signal (samples,) with soxr ("HQ")."""
    if orig_rate == sample_rate:
        return wave.astype(np.float32, copy=False)
    return soxr.resample(wave, orig_rate, sample_rate, quality="HQ").astype(np.float32)


def audio_duration(path: PathLike) -> float:
    """Duration in seconds read from the file header (no decoding)."""
    with _open(path) as f:
        return f.frames / f.samplerate


def load_audio(path: PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode a whole file to a mono float32 array (samples,) at ``sample_rate``.

    Any rate is resampled, any channel count averaged, any sample format (8-bit unsigned to
    float) scaled to [-1, 1]. A WAV cut short gives the samples it holds; a FLAC (or other
    compressed file) whose decoder fails part-way is an error, not a silently shorter clip.

    Raises:
        AudioError: missing, empty, unreadable (permissions), undecodable, truncated or corrupt
            compressed, zero-length or non-finite audio; the message names the file.
    """
    with _open(path) as f:
        orig_rate = f.samplerate
        wave = _joined(_blocks(path, f, max(1, LOAD_BLOCK_SECONDS * orig_rate)), f.frames)
    if wave.size == 0:
        raise AudioError(path, "contains zero samples")
    return resample(wave, orig_rate, sample_rate)


def _joined(blocks: Iterator[np.ndarray], expected: int) -> np.ndarray:
    """The blocks in one array, filled in place when the header's length holds them (no
    second copy of a long file), else concatenated."""
    out, filled, extra = np.empty(max(0, expected), np.float32), 0, []
    for block in blocks:
        if not extra and filled + block.size <= out.size:
            out[filled : filled + block.size] = block
            filled += block.size
        else:
            extra.append(block)
    return np.concatenate([out[:filled], *extra]) if extra else out[:filled]


def decode_audio(
    data: bytes,
    sample_rate: int = 16000,
    name: str = "upload",
    *,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode audio held in memory (the bytes of a file) as :func:`load_audio` decodes a file:
    a mono float32 array (samples,) at ``sample_rate``. Nothing is written to disk.

    ``name`` stands for the file in error messages. ``max_seconds``: refuse, before decoding, a
    file whose header says it is longer (a few compressed megabytes can hold hours of audio).

    Raises:
        AudioError: empty bytes, not audio, truncated or corrupt, zero samples, non-finite
            samples, or longer than ``max_seconds``; the message names ``name`` and the reason.
    """
    if len(data) == 0:
        raise AudioError(name, "empty file (0 bytes)")
    try:
        f = sf.SoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(name, f"not a readable audio file ({_reason(error)})") from None
    with f:
        orig_rate = f.samplerate
        if orig_rate <= 0:
            raise AudioError(name, f"not a readable audio file (sample rate {orig_rate})")
        seconds = f.frames / orig_rate
        if max_seconds is not None and seconds > max_seconds:
            raise AudioError(name, f"longer than the limit: {seconds:.1f} s > {max_seconds:g} s")
        wave = _joined(_blocks(name, f, max(1, LOAD_BLOCK_SECONDS * orig_rate)), f.frames)
    if wave.size == 0:
        raise AudioError(name, "contains zero samples")
    return resample(wave, orig_rate, sample_rate)


def iter_blocks(
    path: PathLike, *, block_seconds: float = 60.0, sample_rate: int = 16000
) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks (about ``block_seconds`` each) at ``sample_rate``.

    Memory stays bounded by the block size, whatever the file's length. Each block is resampled
    as it is read, so the concatenated blocks equal :func:`load_audio` up to resampler edge
    effects.
    """
    if block_seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds}")
    with _open(path) as f:
        orig_rate = f.samplerate
        if f.frames == 0:
            raise AudioError(path, "contains zero samples")
        resampler = (
            None
            if orig_rate == sample_rate
            else soxr.ResampleStream(orig_rate, sample_rate, 1, dtype="float32", quality="HQ")
        )
        block_frames = max(1, int(block_seconds * orig_rate))
        for wave in _blocks(path, f, block_frames):
            last = len(wave) < block_frames
            if resampler is not None:
                wave = resampler.resample_chunk(wave, last=last)
            if wave.size:
                yield wave


def level_db(wave: np.ndarray) -> float:
    """RMS of the mean-removed signal in dBFS (-inf for a constant or empty signal)."""
    if wave.size == 0:
        return -math.inf
    mean, total, step = wave.mean(dtype=np.float64), 0.0, 1 << 20
    for start in range(0, wave.size, step):  # in float64 a slice at a time: a long file is
        centred = wave[start : start + step] - mean  # not copied whole (no BLAS: its threads
        # would contend with the model's)
        total += float(np.square(centred).sum())
    power = total / wave.size
    return 10 * math.log10(power) if power > 0 else -math.inf

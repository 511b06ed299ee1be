"""Waveforms into model inputs: mono float arrays, the spans of evaluation windows, DC removal
and tiling of short windows, padded batches within a sample budget."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["MIN_SECONDS", "PaddedBatch", "as_mono", "batches", "padded", "prepare", "window_spans"]

MIN_SECONDS = 0.5  # a shorter window is tiled up to this


def window_spans(total: int, window: int, hop: int) -> list[tuple[int, int]]:
    """(start, end) of the evaluation windows over ``total`` samples: one every ``hop``
    samples from 0, plus one ending at the end if the last one does not; at most ``window``
    samples are one window (as :func:`emofuse.training.batches.windows` cuts frames).

    >>> window_spans(10, window=4, hop=3)
    [(0, 4), (3, 7), (6, 10)]
    >>> window_spans(11, window=4, hop=3), window_spans(3, window=4, hop=3)
    ([(0, 4), (3, 7), (6, 10), (7, 11)], [(0, 3)])
    """
    spans, start, covered = [], 0, 0
    while start + window <= total:
        spans.append((start, start + window))
        covered, start = start + window, start + hop
    if covered < total:
        spans.append((max(0, total - window), total))
    return spans


def prepare(window: np.ndarray, min_samples: int) -> np.ndarray:
    """Subtract the mean, then tile a window shorter than ``min_samples`` up to it."""
    window = (window - window.mean(dtype=np.float64)).astype(np.float32)
    if window.size < min_samples:
        window = np.tile(window, math.ceil(min_samples / window.size))[:min_samples]
    return window


def batches(sizes: Sequence[int], budget: int) -> Iterator[slice]:
    """Consecutive runs of windows whose padded batch (count x longest) stays within
    ``budget`` samples (a longer single window is a batch of its own).

    >>> list(batches([3, 3, 3, 5, 1], budget=9))
    [slice(0, 3, None), slice(3, 4, None), slice(4, 5, None)]
    """
    start, longest = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start + 1) * max(longest, size) > budget:
            yield slice(start, i)
            start, longest = i, 0
        longest = max(longest, size)
    if start < len(sizes):
        yield slice(start, len(sizes))


class PaddedBatch(NamedTuple):
    """Zero-padded waveforms (N, S) float32 and their lengths (N,) int64: a backend's input."""

    waveforms: np.ndarray
    lengths: np.ndarray


def padded(windows: list[np.ndarray], multiple: int = 1) -> PaddedBatch:
    """Windows of any lengths -> zero-padded float32 (N, S) and int64 lengths (N,), S the
    longest rounded up to a ``multiple`` of samples.

    The models mask padding, so the width changes no answer; a whole second as the multiple
    leaves few distinct tensor shapes, so freed memory is reused instead of fragmenting the
    heap (a folder of mixed-length files otherwise grows the process by hundreds of MB:
    ``bench/real_folders.py``).

    >>> batch, lengths = padded([np.ones(3, np.float32), np.ones(5, np.float32)], multiple=4)
    >>> batch.shape, lengths.tolist()
    ((2, 8), [3, 5])
    """
    lengths = np.array([w.size for w in windows], dtype=np.int64)
    width = -(-int(lengths.max()) // multiple) * multiple
    batch = np.zeros((len(windows), width), np.float32)  # (N, S)
    for row, w in zip(batch, windows, strict=True):
        row[: w.size] = w
    return PaddedBatch(batch, lengths)


def as_mono(audio: np.ndarray, *, chunk: bool = False) -> np.ndarray:
    """Samples (samples,) or (samples, channels) -> mono float32 (samples,): the one PCM
    conversion of arrays, live chunks and raw PCM (:func:`~emofuse.inference.stream.decode_pcm`).

    - float: taken as it is, [-1, 1] full scale;
    - signed integer PCM (int8 to int64): divided by ``-iinfo.min`` (int16: 32768), as
      soundfile scales it; uint8 (8-bit PCM is unsigned, centred on 128): ``(x - 128) / 128``;
      other unsigned, bool, complex and any other dtype are refused;
    - 2-D is (samples, channels); the channels are averaged after scaling, then the result is
      cast to float32 (float64 in, the mean is float64);
    - the result must be finite (NaN or infinity, also from an overflowing cast, is refused).

    ``chunk``: a piece of a live recording, not a whole clip. A clip must be non-empty and a
    2-D clip with more channels than samples is refused as transposed; a chunk may be empty
    (nothing arrived yet; the result is then empty) and a short chunk of a multichannel stream
    may have fewer samples than channels, so its orientation is not guessed.

    >>> as_mono(np.array([[-32768, 0], [16384, 16384]], np.int16)).tolist()
    [-0.5, 0.5]
    >>> as_mono(np.array([0, 128, 255], np.uint8)).tolist()
    [-1.0, 0.0, 0.9921875]

    Raises:
        ValueError: bytes (decode them first), another shape or dtype, no channels, an empty
            clip, a transposed clip, non-finite samples; the message names the shape or dtype.
    """
    if isinstance(audio, bytes | bytearray | memoryview):
        raise ValueError("audio must be an array of samples, got bytes: decode raw PCM with "
                         "emofuse.inference.stream.decode_pcm(data, 'pcm_s16le')")  # fmt: skip
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2):
        raise ValueError(f"audio must be (samples,) or (samples, channels), got shape "
                         f"{audio.shape}")  # fmt: skip
    if audio.ndim == 2 and audio.shape[1] == 0:
        raise ValueError(f"2-D audio needs at least one channel, got shape {audio.shape}")
    if not chunk and audio.size == 0:
        raise ValueError(f"audio must be non-empty, got shape {audio.shape}")
    if not chunk and audio.ndim == 2 and audio.shape[1] > audio.shape[0]:
        raise ValueError(f"2-D audio must be (samples, channels), got shape {audio.shape}; "
                         "transpose it")  # fmt: skip
    if audio.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        audio = (audio.astype(np.float32) - 128) / 128
    elif audio.dtype.kind == "i":  # PCM, scaled as soundfile does
        audio = audio / -float(np.iinfo(audio.dtype).min)
    elif audio.dtype.kind != "f":
        raise ValueError(f"audio must be signed integer PCM or float (or 8-bit unsigned PCM), "
                         f"got dtype {audio.dtype}")  # fmt: skip
    with np.errstate(over="ignore"):  # a float64 beyond float32's range: refused just below
        wave = (audio.mean(axis=1) if audio.ndim == 2 else audio).astype(np.float32)
    if not np.isfinite(wave).all():
        raise ValueError("audio contains non-finite samples (NaN or infinity)")
    return wave

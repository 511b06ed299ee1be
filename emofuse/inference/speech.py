"""Which clips get an emotion: silence and the absence of speech, told before the model runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from emofuse.inference.windows import batches
from emofuse.signal.audio import level_db
from emofuse.signal.vad import SpeechDetector
from emofuse.signal.vad_segmenter import VADSettings, speech_regions

__all__ = ["VAD_BATCH_SECONDS", "SpeechCheck", "find_speech", "no_speech_reasons", "only_speech",
           "speech_of", "scored_in_blocks"]  # fmt: skip

VAD_BATCH_SECONDS = 30.0  # padded audio per voice activity pass (about 1 MB of memory per second)


class SpeechCheck(NamedTuple):
    """:func:`find_speech`'s answer for each wave: why it gets no emotion (None: it holds
    speech), and its speech regions ``[(start, end)]`` in samples (None without a detector)."""

    reasons: list[str | None]
    regions: list[list[tuple[int, int]] | None]


def no_speech_reasons(
    waves: Sequence[np.ndarray],
    sample_rate: int,
    silence_db: float,
    vad: SpeechDetector | None,
    settings: VADSettings,
) -> list[str | None]:
    """Why each mono wave at ``sample_rate`` gets no emotion (None: it holds speech):
    :func:`find_speech`'s reasons."""
    return find_speech(waves, sample_rate, silence_db, vad, settings).reasons


def find_speech(
    waves: Sequence[np.ndarray],
    sample_rate: int,
    silence_db: float,
    vad: SpeechDetector | None,
    settings: VADSettings,
) -> SpeechCheck:
    """Why each mono wave at ``sample_rate`` gets no emotion (None: it holds speech): its RMS
    under ``silence_db``, or no speech region by ``vad`` (when given); and the speech regions
    ``[(start, end)]`` in samples of each wave with speech (None without ``vad``). Batched voice
    activity passes over the audible waves, shortest first, each padded batch within
    ``VAD_BATCH_SECONDS`` (a long file is not padded against short ones); a longer file is
    scored block by block (the same probabilities, bounded memory)."""
    reasons: list[str | None] = [None] * len(waves)
    regions: list[list[tuple[int, int]] | None] = [None] * len(waves)
    audible = []
    for i, wave in enumerate(waves):
        if level_db(wave) < silence_db:
            reasons[i] = f"silent (below {silence_db:g} dBFS)"
        else:
            audible.append(i)
    if vad is None or not audible:
        return SpeechCheck(reasons, regions)
    audible.sort(key=lambda i: waves[i].size)
    budget = round(VAD_BATCH_SECONDS * sample_rate)
    short = [i for i in audible if waves[i].size <= budget]
    probabilities = [p for batch in batches([waves[i].size for i in short], budget)
                     for p in vad.probabilities([waves[i] for i in short[batch]])]  # fmt: skip
    probabilities += [scored_in_blocks(vad, waves[i], budget) for i in audible[len(short):]]
    for i, probs in zip(audible, probabilities, strict=True):
        regions[i] = speech_regions(probs, waves[i].size, settings)
        if not regions[i]:
            reasons[i] = (f"no speech detected (voice activity at most "
                          f"{probs.max(initial=0):.2f}, threshold {settings.threshold:g})")
    return SpeechCheck(reasons, regions)


def speech_of(
    wave: np.ndarray, sample_rate: int, vad: SpeechDetector, settings: VADSettings
) -> np.ndarray:
    """The speech ``vad`` finds in one mono wave, joined (the whole wave when it finds none)."""
    found = find_speech([wave], sample_rate, float("-inf"), vad, settings)
    return only_speech(wave, found.regions[0])


def only_speech(wave: np.ndarray, regions: Sequence[tuple[int, int]] | None) -> np.ndarray:
    """The samples of ``wave`` inside ``regions``, joined (the whole wave when None or empty).

    >>> only_speech(np.arange(10), [(1, 3), (6, 8)]).tolist()
    [1, 2, 6, 7]
    """
    if not regions:
        return wave
    return np.concatenate([wave[start:end] for start, end in regions])


def scored_in_blocks(vad: SpeechDetector, wave: np.ndarray, block: int) -> np.ndarray:
    """``vad.probabilities([wave])[0]`` computed ``block`` samples at a time."""
    detector = vad.stream()
    parts = [detector.feed(wave[start : start + block]) for start in range(0, wave.size, block)]
    return np.concatenate([*parts, detector.finish()])

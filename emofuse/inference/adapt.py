"""Adaptation to the user's audio without labels: re-estimate a model's normalisation
statistics on a folder of their unlabelled recordings (microphone, language, speakers).

Every stream's normaliser standardises frames with the mean and variance of its training
corpora; on unseen corpora those statistics are the main mismatch (DESIGN.md 6b: standardising
with the target corpus's own unlabelled statistics raised cross-corpus UA by 8 to 38 points).
:func:`adapt_pipeline` recomputes them from the frames of the given files, silent files left
out, and refuses fewer than ``min_seconds`` of audio: a few seconds would replace robust
statistics with noisy ones. One call pools every file (per corpus); adapting to one speaker is
the same call on that speaker's files (it helps when each speaker covers many emotions, and
hurts when they cover few).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence

import torch

from emofuse.model.blocks import lengths_to_mask
from emofuse.pipeline import EmotionPipeline
from emofuse.signal.audio import AudioError, level_db, load_audio

__all__ = ["AdaptationError", "adapt_pipeline", "MIN_SECONDS"]

MIN_SECONDS = 60.0
CHUNK_SECONDS = 30.0  # frames are computed 30 s at a time: memory stays flat on long files


class AdaptationError(ValueError):
    """Too little usable audio to re-estimate the statistics; the message says how much."""


def adapt_pipeline(
    pipeline: EmotionPipeline,
    paths: Sequence[str | os.PathLike],
    *,
    min_seconds: float = MIN_SECONDS,
    silence_db: float = -60.0,
    on_error: Callable[[str | os.PathLike, AudioError], None] | None = None,
) -> tuple[EmotionPipeline, dict]:
    """A copy of ``pipeline`` whose normalisers are fitted on the frames of ``paths``, and a
    report (``files``, ``seconds`` used, ``skipped_silent``). Unreadable files go to
    ``on_error`` (raised when it is None); silent ones are skipped.

    Raises:
        AdaptationError: less than ``min_seconds`` of non-silent audio.
    """
    device = next(pipeline.parameters()).device
    rate = pipeline.sample_rate
    chunk = round(CHUNK_SECONDS * rate)
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    used, seconds, silent = 0, 0.0, 0
    for path in paths:
        try:
            wave = load_audio(path, rate)
        except AudioError as error:
            if on_error is None:
                raise
            on_error(path, error)
            continue
        if level_db(wave) < silence_db:
            silent += 1
            continue
        used, seconds = used + 1, seconds + wave.size / rate
        for start in range(0, wave.size, chunk):
            piece = torch.from_numpy(wave[start : start + chunk].copy()).to(device)
            if piece.numel() < rate // 10:  # a tail under 0.1 s adds nothing reliable
                continue
            length = torch.tensor([piece.numel()], device=device)
            with torch.inference_mode():
                streams = pipeline.frontend(piece[None], length)
            for name, (frames, lengths) in streams.items():
                mask = lengths_to_mask(lengths, frames.shape[-1]).unsqueeze(1)  # (1, 1, T)
                valid = frames.double() * mask  # (1, dims, T)
                sums[name] = sums.get(name, 0) + valid.sum(dim=(0, 2)).cpu()
                squares[name] = squares.get(name, 0) + valid.square().sum(dim=(0, 2)).cpu()
                counts[name] = counts.get(name, 0) + int(lengths.sum())
    if seconds < min_seconds:
        raise AdaptationError(
            f"adaptation needs at least {min_seconds:g} s of non-silent audio, got "
            f"{seconds:.1f} s from {used} file(s) ({silent} silent skipped)"
        )
    adapted = copy.deepcopy(pipeline)
    adapted.fit_normalizers({n: (sums[n], squares[n], counts[n]) for n in sums})
    return adapted.eval(), {"files": used, "seconds": round(seconds, 1), "skipped_silent": silent}

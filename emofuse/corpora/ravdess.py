"""RAVDESS speech, audio only (Livingstone & Russo, 2018): 24 North-American English actors.

Raw layout::

    <root>/Actor_01/03-01-05-02-01-01-01.wav   (or .flac)

Name fields: modality, vocal channel (01 speech, 02 song), emotion, intensity (01 normal,
02 strong), statement, repetition, actor. Emotion: 01 neutral, 02 calm, 03 happy, 04 sad,
05 angry, 06 fearful, 07 disgusted, 08 surprised (others: label ``None``). Song files
(vocal channel 02) are not speech and are skipped with a ``CorpusWarning``.
Speaker: the actor field (``"01"``..``"24"``); odd actors male, even female; no sessions.
``extras``: ``code`` (emotion field), ``intensity``, ``statement``, ``repetition``.
"""

from __future__ import annotations

import re
from pathlib import Path

from emofuse.corpora.base import Utterance, collect, find_audio, require_dir

NAME = "ravdess"
CODES = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgusted",
    "08": "surprised",
}
EXPECTED = "<root>/Actor_NN/03-01-EE-II-SS-RR-NN.wav (or .flac), vocal channel 01 (speech)"
_STEM = re.compile(r"^\d{2}-01-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per speech file in the ``Actor_*`` folders."""
    root = require_dir(root, NAME, EXPECTED)
    return collect(find_audio(root, "Actor_*/*"), _parse, corpus=NAME, root=root, expected=EXPECTED)


def _parse(path: Path) -> Utterance | None:
    match = _STEM.match(path.stem)
    if match is None:
        return None
    code, intensity, statement, repetition, actor = match.groups()
    return Utterance(
        id=path.stem,
        path=path,
        label=CODES.get(code),
        speaker=actor,
        session=None,
        gender="M" if int(actor) % 2 else "F",
        corpus=NAME,
        extras={
            "code": code,
            "intensity": {"01": "normal", "02": "strong"}.get(intensity, intensity),
            "statement": statement,
            "repetition": repetition,
        },
    )

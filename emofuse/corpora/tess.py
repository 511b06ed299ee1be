"""TESS, the Toronto Emotional Speech Set (Dupuis & Pichora-Fuller, 2010): 2 English actresses.

Raw layout (any folder depth above the file is accepted)::

    <root>/OAF_angry/OAF_back_angry.wav   (or .flac)
    <root>/YAF_pleasant_surprised/YAF_back_ps.wav

Name: speaker (OAF older, YAF younger actress), word, emotion. Emotions (any case): angry,
disgust disgusted, fear fearful, happy, neutral, ps surprised (pleasant surprise), sad; others
get label ``None``. Speaker ``"OAF"``/``"YAF"``, gender ``"F"``; no sessions.
``extras``: ``code`` (the emotion field), ``word``.
"""

from __future__ import annotations

import re
from pathlib import Path

from emofuse.corpora.base import Utterance, collect, find_audio, require_dir

NAME = "tess"
CODES = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprised",
    "sad": "sad",
}
EXPECTED = "<root>/<SPK>_<emotion>/<SPK>_<word>_<emotion>.wav (or .flac), SPK OAF or YAF"
_STEM = re.compile(r"^(OAF|YAF)_([^_]+)_([A-Za-z]+)$", re.IGNORECASE)


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per ``OAF_*``/``YAF_*`` audio file found anywhere under ``root``."""
    root = require_dir(root, NAME, EXPECTED)
    return collect(find_audio(root), _parse, corpus=NAME, root=root, expected=EXPECTED)


def _parse(path: Path) -> Utterance | None:
    match = _STEM.match(path.stem)
    if match is None:
        return None
    speaker, word, code = match.groups()
    return Utterance(
        id=path.stem,
        path=path,
        label=CODES.get(code.lower()),
        speaker=speaker.upper(),
        session=None,
        gender="F",
        corpus=NAME,
        extras={"code": code, "word": word},
    )

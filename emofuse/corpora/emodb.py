"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al., 2005): 10 German actors.

Raw layout::

    <root>/wav/03a01Fa.wav   (or .flac)

Name: speaker (2 digits), text code (``a01``), emotion letter, version letter. Letters:
W angry, L bored, E disgusted, A fearful, F happy, T sad, N neutral (others: label ``None``).
Speaker ``"03"``; gender from the corpus documentation (03 10 11 12 15 male; 08 09 13 14 16
female); no sessions. ``extras``: ``code`` (the letter), ``text``, ``version``.
"""

from __future__ import annotations

import re
from pathlib import Path

from emofuse.corpora.base import Utterance, collect, find_audio, require_dir

NAME = "emodb"
CODES = {
    "W": "angry",
    "L": "bored",
    "E": "disgusted",
    "A": "fearful",
    "F": "happy",
    "T": "sad",
    "N": "neutral",
}
GENDERS = {
    "03": "M",
    "08": "F",
    "09": "F",
    "10": "M",
    "11": "M",
    "12": "M",
    "13": "F",
    "14": "F",
    "15": "M",
    "16": "F",
}
EXPECTED = "<root>/wav/03a01Fa.wav (or .flac)"
_STEM = re.compile(r"^(\d{2})([a-z]\d{2})([A-Z])([a-z])$")


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per ``<root>/wav/*.wav|flac`` file."""
    root = require_dir(root, NAME, EXPECTED)
    return collect(find_audio(root / "wav", "*"), _parse, corpus=NAME, root=root, expected=EXPECTED)


def _parse(path: Path) -> Utterance | None:
    match = _STEM.match(path.stem)
    if match is None:
        return None
    speaker, text, code, version = match.groups()
    return Utterance(
        id=path.stem,
        path=path,
        label=CODES.get(code),
        speaker=speaker,
        session=None,
        gender=GENDERS.get(speaker),
        corpus=NAME,
        extras={"code": code, "text": text, "version": version},
    )

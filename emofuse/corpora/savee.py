"""SAVEE, Surrey Audio-Visual Expressed Emotion (Haq & Jackson, 2009): 4 male English speakers.

Raw layout, either of::

    <root>/DC_a01.wav            (flat, as commonly redistributed; or .flac)
    <root>/AudioData/DC/a01.wav  (the original release)

Speakers DC, JE, JK, KL (all male); no sessions. Codes: a angry, d disgusted, f fearful,
h happy, n neutral, sa sad, su surprised (others: label ``None``). Id ``"DC_a01"`` in both
layouts. ``extras``: ``code``, ``number``.
"""

from __future__ import annotations

import re
from pathlib import Path

from emofuse.corpora.base import Utterance, collect, find_audio, require_dir

NAME = "savee"
CODES = {
    "a": "angry",
    "d": "disgusted",
    "f": "fearful",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprised",
}
EXPECTED = "<root>/<SPK>_<code><nn>.wav or <root>/AudioData/<SPK>/<code><nn>.wav (or .flac)"
_FLAT = re.compile(r"^([A-Z]{2})_([a-z]+)(\d{2})$")
_NESTED = re.compile(r"^([a-z]+)(\d{2})$")


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per audio file in either layout."""
    root = require_dir(root, NAME, EXPECTED)
    return collect(find_audio(root), _parse, corpus=NAME, root=root, expected=EXPECTED)


def _parse(path: Path) -> Utterance | None:
    flat = _FLAT.match(path.stem)
    nested = _NESTED.match(path.stem) if re.fullmatch(r"[A-Z]{2}", path.parent.name) else None
    if flat:
        speaker, code, number = flat.groups()
    elif nested:
        speaker, (code, number) = path.parent.name, nested.groups()
    else:
        return None
    return Utterance(
        id=f"{speaker}_{code}{number}",
        path=path,
        label=CODES.get(code),
        speaker=speaker,
        session=None,
        gender="M",
        corpus=NAME,
        extras={"code": code, "number": number},
    )

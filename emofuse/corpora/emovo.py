"""EMOVO (Costantini et al., 2014): 6 Italian actors.

Raw layout::

    <root>/{f1,f2,f3,m1,m2,m3}/dis-f1-b1.wav   (or .flac)

Name: emotion code, speaker, sentence. Codes: dis disgusted, gio happy (gioia), neu neutral,
pau fearful (paura), rab angry (rabbia), sor surprised (sorpresa), tri sad (tristezza); others
get label ``None``. Speaker from the name (``"f1"``), gender its letter upper-cased; no sessions.
``extras``: ``code``, ``sentence``.
"""

from __future__ import annotations

import re
from pathlib import Path

from emofuse.corpora.base import Utterance, collect, find_audio, require_dir

NAME = "emovo"
CODES = {
    "dis": "disgusted",
    "gio": "happy",
    "neu": "neutral",
    "pau": "fearful",
    "rab": "angry",
    "sor": "surprised",
    "tri": "sad",
}
EXPECTED = "<root>/<speaker>/<code>-<speaker>-<sentence>.wav (or .flac), e.g. f1/dis-f1-b1.wav"
_STEM = re.compile(r"^([a-z]{3})-([fm]\d)-(\w+)$")


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per audio file in the speaker folders."""
    root = require_dir(root, NAME, EXPECTED)
    return collect(
        find_audio(root, "[fm][0-9]/*"), _parse, corpus=NAME, root=root, expected=EXPECTED
    )


def _parse(path: Path) -> Utterance | None:
    match = _STEM.match(path.stem)
    if match is None or match.group(2) != path.parent.name:
        return None
    code, speaker, sentence = match.groups()
    return Utterance(
        id=path.stem,
        path=path,
        label=CODES.get(code),
        speaker=speaker,
        session=None,
        gender=speaker[0].upper(),
        corpus=NAME,
        extras={"code": code, "sentence": sentence},
    )

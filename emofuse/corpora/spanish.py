"""The Spanish acted corpus of ``rcebrian/speech-emotion-recognition`` (commit f44cf6d):
16 speakers, 7 emotions, 48 kHz stereo WAV. No licence is stated in the repository.

Raw layout (the repository as cloned)::

    <root>/data/0/Alegria_1.WAV ... <root>/data/13/Tristeza_12.WAV
    <root>/tests/Test1/Ira_3.WAV, <root>/tests/Test2/...

One speaker per folder (``"0"`` .. ``"13"``, ``"Test1"``, ``"Test2"``). Name ``<Emotion>_<n>``
(the release also has ``Ira__1`` and a bare ``Neutro``): Alegria happy, Asco disgusted, Ira
angry, Miedo fearful, Neutro neutral, Sorpresa surprised, Tristeza sad. Files whose header
cannot be read (the repository README lists a few malformed ones) are skipped with a warning,
as are other names (``data/10/David_Aramburu.WAV``, a ``.zip``). No sessions, no genders.
``extras``: ``code`` (the Spanish word), ``take`` (the number, ``None`` when absent).
"""

from __future__ import annotations

import re
from pathlib import Path

from emofuse.corpora.base import Utterance, collect, find_audio, readable, require_dir

NAME = "spanish"
CODES = {
    "alegria": "happy",
    "asco": "disgusted",
    "ira": "angry",
    "miedo": "fearful",
    "neutro": "neutral",
    "sorpresa": "surprised",
    "tristeza": "sad",
}
EXPECTED = "<root>/data/<0..13>/<Emotion>_<n>.WAV and <root>/tests/Test<k>/<Emotion>_<n>.WAV"
_STEM = re.compile(r"^([A-Za-z]+?)(?:_+(\d+))?$")


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per readable ``data/*/*.WAV`` and ``tests/*/*.WAV`` file."""
    root = require_dir(root, NAME, EXPECTED)
    paths = find_audio(root, "data/*/*") + find_audio(root, "tests/*/*")
    return collect(readable(paths, NAME), _parse, corpus=NAME, root=root, expected=EXPECTED)


def _parse(path: Path) -> Utterance | None:
    match = _STEM.match(path.stem)
    if match is None or match.group(1).lower() not in CODES:
        return None
    code, take = match.groups()
    speaker = path.parent.name
    return Utterance(
        id=f"{speaker}/{path.stem}",
        path=path,
        label=CODES[code.lower()],
        speaker=speaker,
        session=None,
        gender=None,
        corpus=NAME,
        extras={"code": code, "take": None if take is None else int(take)},
    )

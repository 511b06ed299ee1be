"""TurEV-DB, the Turkish Emotion-Voice Database (Canpolat, Ormanoğlu & Zeyrek, SLTU-CCURL 2020;
``Xeonen/TurEV-DB``, commit be9873e): 6 actors speaking isolated words in four emotions.
Licence: the README says CC BY-NC-ND 4.0, the repository's LICENSE file GPL-3.0.

Raw layout (the repository as cloned)::

    <root>/Sound Source/{Angry,Calm,Happy,Sad}/1157_kz_acik.wav

Only ``Sound Source`` is read: the ``Model Output ...`` folders hold filtered copies.
Name ``<speaker>_<set>_<word>``; the folder gives the emotion (Calm is ``calm``, which the
``turkish4`` task merges into neutral). No sessions, no genders.
``extras``: ``code`` (the folder), ``set`` (the second field), ``word``.
"""

from __future__ import annotations

import re
from pathlib import Path

from emofuse.corpora.base import Utterance, collect, find_audio, require_dir

NAME = "turkish"
CODES = {"angry": "angry", "calm": "calm", "happy": "happy", "sad": "sad"}
EXPECTED = "<root>/Sound Source/{Angry,Calm,Happy,Sad}/<speaker>_<set>_<word>.wav"
_STEM = re.compile(r"^(\d+)_([A-Za-z]+)_(.+)$")


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per audio file in the four emotion folders of ``Sound Source``."""
    root = require_dir(root, NAME, EXPECTED)
    paths = find_audio(root / "Sound Source", "*/*")
    return collect(paths, _parse, corpus=NAME, root=root, expected=EXPECTED)


def _parse(path: Path) -> Utterance | None:
    match = _STEM.match(path.stem)
    folder = path.parent.name
    if match is None or folder.lower() not in CODES:
        return None
    speaker, word_set, word = match.groups()
    return Utterance(
        id=f"{folder}/{path.stem}",
        path=path,
        label=CODES[folder.lower()],
        speaker=speaker,
        session=None,
        gender=None,
        corpus=NAME,
        extras={"code": folder, "set": word_set, "word": word},
    )

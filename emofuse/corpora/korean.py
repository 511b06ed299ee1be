"""The emotional speech of the EmotionTTS open DB (``emotiontts/emotiontts_open_db``, commit
5c8ccc8; SELVAS AI / KAIST): 15 Korean speakers x 20 sentences, 22.05 kHz mono.
Licence CC BY-NC-SA 4.0, research use only (the corpus README forbids commercial use).

Raw layout (the repository as cloned; only these folders are read)::

    <root>/Dataset/SpeechCorpus/Emotional/plain-to-emotional/ema/wav/ema00101.wav
    <root>/Dataset/SpeechCorpus/Emotional/emotional-to-emotional/neo/wav/neo00301.wav

Speaker: the folder (``ema``, ``emb``, ``emf``-``emh``; ``nea``-``nee``, ``nek``-``neo``); its
last letter a-e is a woman, f-o a man (the corpus README). The number in the name gives the
label: 1-100 neutral, 101-200 happy, 201-300 angry, 301-400 sad. Session: the script set
(``plain-to-emotional``: one neutral script read in four emotions; ``emotional-to-emotional``:
scripts written for each emotion). ``extras``: ``code`` (the number), ``script``.
"""

from __future__ import annotations

import re
from pathlib import Path

from emofuse.corpora.base import Utterance, collect, find_audio, require_dir

NAME = "korean"
SETS = ("plain-to-emotional", "emotional-to-emotional")
LABELS = ("neutral", "happy", "angry", "sad")  # numbers 1-100, 101-200, 201-300, 301-400
EXPECTED = ("<root>/Dataset/SpeechCorpus/Emotional/{plain-to-emotional,emotional-to-emotional}/"
            "<speaker>/wav/<speaker><nnnnn>.wav")  # fmt: skip
_BASE = Path("Dataset", "SpeechCorpus", "Emotional")
_STEM = re.compile(r"^([a-z]{3})(\d{5})$")


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per ``wav/`` file of the two emotional script sets."""
    root = require_dir(root, NAME, EXPECTED)
    paths = [p for s in SETS for p in find_audio(root / _BASE / s, "*/wav/*")]
    return collect(paths, _parse, corpus=NAME, root=root, expected=EXPECTED)


def label_of(number: int) -> str | None:
    """The emotion of sentence ``number`` (1-400), ``None`` outside that range.

    >>> label_of(1), label_of(100), label_of(101), label_of(305), label_of(401)
    ('neutral', 'neutral', 'happy', 'sad', None)
    """
    return LABELS[(number - 1) // 100] if 1 <= number <= 400 else None


def _parse(path: Path) -> Utterance | None:
    match = _STEM.match(path.stem)
    speaker = path.parent.parent.name
    if match is None or match.group(1) != speaker:
        return None
    number = int(match.group(2))
    return Utterance(
        id=path.stem,
        path=path,
        label=label_of(number),
        speaker=speaker,
        session=path.parent.parent.parent.name,
        gender="F" if speaker[-1] <= "e" else "M",
        corpus=NAME,
        extras={"code": str(number), "script": path.parent.parent.parent.name},
    )

"""ASED, the Amharic Speech Emotion Dataset v1 (Retta et al., ACM TALLIP 2022): 65 speakers.

Raw layout::

    <root>/{01Neutral,02Fearful,03Happy,04Sad,05Angry}/a5-03-01-02-50.wav   (or .flac)

Name ``xn-yy-aa-gg-bb``: ``x`` the emotion letter (compared case-insensitively: the release has
one ``S4-...``) with ``n`` a running number, ``yy`` the sentence, ``aa`` the repetition, ``gg``
01 female / 02 male, ``bb`` the speaker. Letters: n neutral, f fearful, h happy, s sad, a angry;
the letter must agree with the emotion folder. Speaker is ``bb`` alone (the gender field
disagrees for five speakers); no sessions. ``extras``: ``code``, ``sentence``, ``repetition``,
``common`` (True for sentences 01 and 02, the two texts spoken in all five emotions; sentences
03-07 are numbered within each emotion and are texts written for that emotion, so the words
give the label away: report both, see :data:`COMMON_SENTENCES`; ``SUBSETS`` names them for
:mod:`emofuse.experiments.subsets`).
"""

from __future__ import annotations

import re
from pathlib import Path

from emofuse.corpora.base import Utterance, collect, find_audio, require_dir

NAME = "ased"
CODES = {"n": "neutral", "f": "fearful", "h": "happy", "s": "sad", "a": "angry"}
FOLDERS = {"01neutral": "n", "02fearful": "f", "03happy": "h", "04sad": "s", "05angry": "a"}
COMMON_SENTENCES = ("01", "02")
SUBSETS = {"common sentences": lambda u: u.extras.get("common", False)}
EXPECTED = ("<root>/<NNEmotion>/<letter><n>-<sentence>-<repetition>-<gender>-<speaker>.wav "
            "(or .flac), e.g. 05Angry/a5-03-01-02-50.wav")  # fmt: skip
_STEM = re.compile(r"^([A-Za-z])\d+-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per audio file in the five emotion folders."""
    root = require_dir(root, NAME, EXPECTED)
    return collect(find_audio(root, "*/*"), _parse, corpus=NAME, root=root, expected=EXPECTED)


def _parse(path: Path) -> Utterance | None:
    match = _STEM.match(path.stem)
    folder_code = FOLDERS.get(path.parent.name.lower())
    if match is None or folder_code is None:
        return None
    letter, sentence, repetition, gender, speaker = match.groups()
    code = letter.lower()
    if code != folder_code:
        return None
    return Utterance(
        id=path.stem,
        path=path,
        label=CODES.get(code),
        speaker=speaker,
        session=None,
        gender={"01": "F", "02": "M"}.get(gender),
        corpus=NAME,
        extras={
            "code": code,
            "sentence": sentence,
            "repetition": repetition,
            "common": sentence in COMMON_SENTENCES,
        },  # fmt: skip
    )

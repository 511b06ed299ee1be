"""CREMA-D (Cao et al., 2014): 91 actors (1001..1091), English.

Raw layout::

    <root>/AudioWAV/1001_DFA_ANG_XX.wav   (or .flac)
    <root>/VideoDemographics.csv           (optional: ActorID,Age,Sex,Race,Ethnicity)

Name: actor, sentence code, emotion, level. Emotions: ANG angry, DIS disgusted, FEA fearful,
HAP happy, NEU neutral, SAD sad (others: label ``None``); level LO, MD, HI or XX (unspecified).
Speaker ``"1001"``; gender from ``VideoDemographics.csv`` when present (Male/Female), else
``None``; no sessions. ``extras``: ``code``, ``sentence``, ``level``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from emofuse.corpora.base import CorpusError, Utterance, collect, find_audio, require_dir

NAME = "cremad"
CODES = {
    "ANG": "angry",
    "DIS": "disgusted",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
EXPECTED = "<root>/AudioWAV/1001_DFA_ANG_XX.wav (or .flac)"
_STEM = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per ``AudioWAV`` file; genders from ``VideoDemographics.csv`` if present."""
    root = require_dir(root, NAME, EXPECTED)
    genders = _read_genders(root / "VideoDemographics.csv")

    def parse(path: Path) -> Utterance | None:
        match = _STEM.match(path.stem)
        if match is None:
            return None
        speaker, sentence, code, level = match.groups()
        return Utterance(
            id=path.stem,
            path=path,
            label=CODES.get(code),
            speaker=speaker,
            session=None,
            gender=genders.get(speaker),
            corpus=NAME,
            extras={"code": code, "sentence": sentence, "level": level},
        )

    return collect(
        find_audio(root / "AudioWAV", "*"), parse, corpus=NAME, root=root, expected=EXPECTED
    )


def _read_genders(path: Path) -> dict[str, str]:
    """ActorID -> "F"/"M" from the demographics table, empty when the file is absent."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"ActorID", "Sex"} <= set(reader.fieldnames or ()):
            raise CorpusError(
                f"{path}: expected columns ActorID and Sex, found {reader.fieldnames}"
            )
        sexes = {"male": "M", "female": "F"}
        return {row["ActorID"].strip(): sexes.get(row["Sex"].strip().lower()) for row in reader}
